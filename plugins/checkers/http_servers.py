"""Test servers for the http and ssl checkers: real aiohttp servers on 127.0.0.1, plain or
TLS, and the files of a test CA made by trustme."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    host: str | None
    peer_port: int
    headers: dict[str, str]
    peer_host: str = ""


@dataclass
class Server:
    """A running test server: set ``routes`` (path → handler); read ``seen`` and ``sni``."""

    port: int
    tls: bool
    routes: dict[str, Handler] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)

    def reply(
        self,
        path: str,
        body: bytes | str = b"",
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body

        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(body=data, status=status, headers=headers)

        self.routes[path] = handler

    @property
    def peer_ports(self) -> list[int]:
        return [s.peer_port for s in self.seen]


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class ServerFactory:
    runners: list[web.AppRunner] = field(default_factory=list)

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> Server:
        sock = free_socket()
        server = Server(port=sock.getsockname()[1], tls=ssl_context is not None)
        if ssl_context is not None:
            ssl_context.sni_callback = lambda obj, name, ctx: server.sni.append(name)

        async def dispatch(request: web.Request) -> web.StreamResponse:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            server.seen.append(
                Seen(
                    request.method,
                    request.path_qs,
                    request.headers.get("Host"),
                    peer[1] if peer else 0,
                    dict(request.headers),
                    peer[0] if peer else "",
                )
            )
            handler = server.routes.get(request.path)
            if handler is None:
                return web.Response(status=404, text="not found")
            return await handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", dispatch)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        await web.SockSite(runner, sock, ssl_context=ssl_context).start()
        self.runners.append(runner)
        return server


@dataclass
class Pki:
    """The test CA and files made from it."""

    ca: trustme.CA
    dir: Path

    @property
    def ca_file(self) -> str:
        path = self.dir / "ca.pem"
        if not path.exists():
            self.ca.cert_pem.write_to_path(str(path))
        return str(path)

    def server_context(self, leaf: trustme.LeafCert | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (leaf or self.ca.issue_cert("halo.test", "127.0.0.1")).configure_cert(ctx)
        return ctx

    def client_files(self, name: str = "client") -> tuple[str, str]:
        leaf = self.ca.issue_cert(f"{name}.halo.test")
        cert, key = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        for blob in leaf.cert_chain_pems:
            with cert.open("ab") as out:
                out.write(blob.bytes())
        leaf.private_key_pem.write_to_path(str(key))
        return str(cert), str(key)


Make = Callable[..., Any]
