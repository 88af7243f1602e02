"""A tiny web farm for the load-balancer tests, run inside lab namespaces (stdlib only).

``python farm.py serve NAME --port P [--port P2 …] [--ctl DIR]``
    HTTP on every given port, IPv4 and IPv6 (one dual-stack socket per port). Each answer
    is one JSON line ``{"server": NAME, "port": P, "peer": CLIENT_ADDRESS}``, so a test
    sees who answered and from which address the client appeared (NAT keeps it, SNAT does
    not). Keep-alive is honoured. With ``--ctl DIR`` the file ``DIR/down-P`` closes port P's
    listener (a health check then fails with "connection refused") until it is removed;
    ``DIR/ready-P`` is written whenever P listens.

``python farm.py get HOST PORT --count N [--source ADDR] [--timeout T]``
    N requests, each on a new connection, one after the other (bounded: N ≤ 5000, each
    with a time limit); prints ``{"servers": {NAME: n}, "peers": {ADDR: n}, "failed": n}``.

``python farm.py hold HOST PORT --pause S [--until FILE]``
    One connection: a request, S seconds of silence (or until FILE exists, at most S), a
    second request on the same connection; prints both answers (a restart of the load
    balancer in the pause must not break it).

Used by the tests of halo-backend-nftables and halo-backend-ipvs (by path, as a program).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any


def _peer(writer: asyncio.StreamWriter) -> str:
    host = str(writer.get_extra_info("peername")[0])
    return host.removeprefix("::ffff:")


# Seconds a kept-alive connection may wait for its next request. The IPVS tests hold one
# through a daemon restart, which under emulation on a busy host takes a minute or more.
KEEP_ALIVE = 600.0


async def serve(name: str, ports: list[int], ctl: Path | None) -> None:
    async def handler(
        port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), KEEP_ALIVE)
                body = json.dumps({"server": name, "port": port, "peer": _peer(writer)}) + "\n"
                close = b"connection: close" in head.lower()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + (b"Connection: close\r\n" if close else b"")
                    + f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
                )
                await writer.drain()
                if close:
                    break
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()

    def listen(port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::", port))
        sock.listen(512)
        return sock

    servers: dict[int, asyncio.Server] = {}

    async def open_port(port: int) -> None:
        servers[port] = await asyncio.start_server(
            lambda r, w, p=port: handler(p, r, w), sock=listen(port)
        )
        if ctl is not None:
            (ctl / f"ready-{port}").write_text("")

    for port in ports:
        await open_port(port)
    while True:  # runs until the lab kills it
        await asyncio.sleep(0.1)
        if ctl is None:
            continue
        for port in ports:
            down = (ctl / f"down-{port}").exists()
            if down and port in servers:
                servers.pop(port).close()
                with contextlib.suppress(FileNotFoundError):
                    (ctl / f"ready-{port}").unlink()
            elif not down and port not in servers:
                await open_port(port)


def _request(host: str) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def _one(host: str, port: int, source: str | None, timeout: float) -> dict[str, Any] | None:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(source, 0) if source else None),
            timeout,
        )
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(_request(host).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        data = await asyncio.wait_for(reader.read(), timeout)
        return dict(json.loads(data.split(b"\r\n\r\n", 1)[1]))
    except (OSError, TimeoutError, ValueError, IndexError):
        return None
    finally:
        writer.close()


async def get(host: str, port: int, count: int, source: str | None, timeout: float) -> None:
    servers: Counter[str] = Counter()
    peers: Counter[str] = Counter()
    failed = 0
    for _ in range(min(count, 5000)):
        answer = await _one(host, port, source, timeout)
        if answer is None:
            failed += 1
            continue
        servers[answer["server"]] += 1
        peers[answer["peer"]] += 1
    print(json.dumps({"servers": servers, "peers": peers, "failed": failed}))


async def hold(host: str, port: int, pause: float, until: Path | None, timeout: float) -> None:
    out: dict[str, Any] = {"first": None, "second": None}
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        print(json.dumps({**out, "error": str(exc)}))
        return

    async def ask() -> Any:
        writer.write(_request(host))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        return json.loads(await asyncio.wait_for(reader.readexactly(length), timeout))

    try:
        out["first"] = await ask()
        print(json.dumps({"first": out["first"]}), flush=True)  # the caller may wait for it
        deadline = time.monotonic() + pause
        while time.monotonic() < deadline and not (until is not None and until.exists()):
            await asyncio.sleep(0.1 if until is not None else deadline - time.monotonic())
        out["second"] = await ask()
    except (OSError, TimeoutError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        writer.close()
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="farm.py")
    sub = parser.add_subparsers(dest="what", required=True)
    ps = sub.add_parser("serve")
    ps.add_argument("name")
    ps.add_argument("--port", type=int, action="append", required=True)
    ps.add_argument("--ctl", type=Path)
    pg = sub.add_parser("get")
    pg.add_argument("host")
    pg.add_argument("port", type=int)
    pg.add_argument("--count", type=int, default=10)
    pg.add_argument("--source")
    pg.add_argument("--timeout", type=float, default=2.0)
    ph = sub.add_parser("hold")
    ph.add_argument("host")
    ph.add_argument("port", type=int)
    ph.add_argument("--pause", type=float, default=5.0)
    ph.add_argument("--until", type=Path)
    ph.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.what == "serve":
        asyncio.run(serve(args.name, args.port, args.ctl))
    elif args.what == "get":
        asyncio.run(get(args.host, args.port, args.count, args.source, args.timeout))
    else:
        asyncio.run(hold(args.host, args.port, min(args.pause, 600.0), args.until, args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
