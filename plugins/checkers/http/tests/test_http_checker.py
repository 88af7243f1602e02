"""The http checker against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from typing import Any

import pytest
from aiohttp import web
from http_servers import Make, Server, free_socket

from halo_core.bus import EventBus
from halo_core.checks import CheckRunner
from halo_core.plugin_api import CheckTarget
from halo_core.plugins import Plugins
from halo_core.scheduler import Scheduler
from halo_tool_lab.clock import FakeClock

BODY = "ok, healthy\n"
DIGEST = hashlib.md5(BODY.encode()).hexdigest()


def http(server: Server, **options: Any) -> dict[str, Any]:
    return {"connect_ip": "127.0.0.1", "connect_port": server.port, **options}


# --------------------------------------------------------------------------- up and down


async def test_up_with_status_digest_and_regex(server: Server, make: Make) -> None:
    checker = make(**http(server, url=[{"path": "/health", "digest": DIGEST, "regex": "heal+thy"}]))
    result = await checker.check()
    assert result.ok, result.message
    assert result.message == (
        f"GET http://127.0.0.1:{server.port}/health: 200, digest ok, regex matched"
    )
    assert result.warning is None


async def test_digest_is_keepalived_compatible_md5_of_the_raw_body(
    server: Server, make: Make
) -> None:
    """genhash hashes the bytes after the headers; gzip must not be asked for nor undone."""
    body = bytes(range(256)) * 40
    server.reply("/bin", body, headers={"Content-Type": "application/octet-stream"})
    checker = make(**http(server, url=[{"path": "/bin", "digest": hashlib.md5(body).hexdigest()}]))
    assert (await checker.check()).ok
    assert server.seen[-1].headers["Accept-Encoding"] == "identity"
    assert server.seen[-1].headers["User-Agent"] == "KeepAliveClient"


async def test_chunked_body_digest(server: Server, make: Make) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b"ok, ", b"healthy\n"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    server.routes["/chunked"] = chunked
    checker = make(**http(server, url=[{"path": "/chunked", "digest": DIGEST}]))
    assert (await checker.check()).ok


async def test_wrong_status_fails(server: Server, make: Make) -> None:
    server.reply("/health", "down", status=503)
    result = await make(**http(server, url=[{"path": "/health"}])).check()
    assert not result.ok
    assert result.message.endswith("/health: status 503 Service Unavailable, expected 200-299")


async def test_status_codes_and_ranges(server: Server, make: Make) -> None:
    server.reply("/teapot", status=418)
    server.reply("/moved", status=302, headers={"Location": "/health"})
    checker = make(
        **http(
            server,
            url=[
                {"path": "/teapot", "status_code": [200, "400-499"]},
                {"path": "/moved", "status_code": "200-299 300-399"},
            ],
        )
    )
    result = await checker.check()
    assert result.ok, result.message
    assert "/teapot: 418" in result.message and "/moved: 302" in result.message
    strict = make(**http(server, url=[{"path": "/teapot", "status_code": 200}]))
    assert "expected 200" in (await strict.check()).message


async def test_wrong_digest_fails(server: Server, make: Make) -> None:
    result = await make(**http(server, url=[{"path": "/health", "digest": "0" * 32}])).check()
    assert not result.ok
    assert result.message.endswith(f"/health: digest {DIGEST}, expected {'0' * 32}")


async def test_regex_miss_fails_and_no_match_reverses(server: Server, make: Make) -> None:
    miss = await make(**http(server, url=[{"path": "/health", "regex": "^ready$"}])).check()
    assert not miss.ok
    assert miss.message.endswith("regex '^ready$' not found in the body")
    reverse = make(**http(server, url=[{"path": "/health", "regex": "ok", "regex_no_match": True}]))
    result = await reverse.check()
    assert not result.ok and "regex 'ok' found in the body" in result.message


async def test_regex_is_searched_in_the_text_of_the_declared_charset(
    server: Server, make: Make
) -> None:
    server.reply(
        "/latin",
        "état: prêt".encode("latin-1"),
        headers={"Content-Type": "text/plain; charset=latin-1"},
    )
    server.reply("/utf8", "état: prêt".encode(), headers={"Content-Type": "text/plain"})
    server.reply("/unknown", b"\xff ok", headers={"Content-Type": "text/plain; charset=nope"})
    checker = make(
        **http(
            server,
            url=[
                {"path": "/latin", "regex": "^état: prêt$"},
                {"path": "/utf8", "regex": "^état: prêt$"},  # no charset: UTF-8
                {"path": "/unknown", "regex": "ok$"},  # an unknown charset: UTF-8, replaced
            ],
        )
    )
    result = await checker.check()
    assert result.ok, result.message


async def test_every_url_must_pass(server: Server, make: Make) -> None:
    checker = make(**http(server, url=[{"path": "/health"}, {"path": "/missing"}]))
    result = await checker.check()
    assert not result.ok and "/missing: status 404" in result.message
    assert [s.path for s in server.seen] == ["/health", "/missing"]


async def test_connection_refused(make: Make) -> None:
    sock = free_socket()  # bound, never listening: a port nobody answers on
    try:
        result = await make(connect_ip="127.0.0.1", connect_port=sock.getsockname()[1]).check()
    finally:
        sock.close()
    assert not result.ok
    assert "connect to 127.0.0.1:" in result.message
    assert "Connection refused" in result.message


async def test_method_and_headers(server: Server, make: Make) -> None:
    server.reply("/health", "")
    checker = make(
        **http(
            server,
            method="head",
            headers={"X-Probe": "halo", "user-agent": "mine"},
            url=[{"path": "/health?full=1"}],
        )
    )
    result = await checker.check()
    assert result.ok and result.message.startswith("HEAD ")
    seen = server.seen[-1]
    assert (seen.method, seen.path, seen.headers["X-Probe"]) == ("HEAD", "/health?full=1", "halo")
    assert seen.headers["User-Agent"] == "mine"


async def test_real_server_target_gives_address_and_port(server: Server, make: Make) -> None:
    import ipaddress

    target = CheckTarget("rs", ipaddress.ip_address("127.0.0.1"), server.port)
    assert (await make(target=target, url=[{"path": "/health"}]).check()).ok


# --------------------------------------------------------------------------- HTTP behaviour


async def test_virtualhost_is_the_host_header(server: Server, make: Make) -> None:
    checker = make(
        **http(
            server,
            virtualhost="www.example.com",
            url=[{"path": "/health"}, {"path": "/health", "virtualhost": "api.example.com"}],
        )
    )
    result = await checker.check()
    assert result.ok
    assert [s.host for s in server.seen] == ["www.example.com", "api.example.com"]
    assert "(Host: www.example.com)" in result.message
    await make(**http(server, url=[{"path": "/health"}])).check()
    assert server.seen[-1].host == f"127.0.0.1:{server.port}"  # like keepalived's default


async def test_redirects_not_followed_by_default(server: Server, make: Make) -> None:
    server.reply("/old", status=301, headers={"Location": "/health"})
    result = await make(**http(server, url=[{"path": "/old"}])).check()
    assert not result.ok and "status 301" in result.message
    assert [s.path for s in server.seen] == ["/old"]
    follow = make(**http(server, follow_redirects=True, url=[{"path": "/old", "regex": "ok"}]))
    result = await follow.check()
    assert result.ok, result.message
    assert [s.path for s in server.seen] == ["/old", "/old", "/health"]


async def test_redirect_loop_is_bounded(server: Server, make: Make) -> None:
    server.reply("/loop", status=302, headers={"Location": "/loop"})
    result = await make(**http(server, follow_redirects=True, url=[{"path": "/loop"}])).check()
    assert not result.ok
    assert result.message.endswith("/loop: too many redirects (last status 302)")
    assert len(server.seen) == 11  # the request and 10 redirects


async def test_server_closing_without_a_response(make: Make) -> None:
    """A listener that accepts, reads the request and hangs up."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    silent = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        result = await make(connect_ip="127.0.0.1", connect_port=port).check()
    finally:
        silent.close()
        await silent.wait_closed()
    assert not result.ok
    assert result.message == (
        f"GET http://127.0.0.1:{port}/: the server closed the connection without a response"
    )


async def test_ipv6_address(make: Make) -> None:
    heads: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        writer.close()

    try:
        listener = await asyncio.start_server(answer, "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback")
    port = listener.sockets[0].getsockname()[1]
    try:
        checker = make(connect_ip="::1", connect_port=port, url=[{"path": "/", "regex": "ok"}])
        result = await checker.check()
    finally:
        listener.close()
        await listener.wait_closed()
    assert result.ok, result.message
    assert result.message == f"GET http://[::1]:{port}/: 200, regex matched"
    assert f"\r\nHost: [::1]:{port}\r\n".encode() in heads[0]


async def test_max_body_is_honoured(server: Server, make: Make) -> None:
    """An endless body: the check reads max_body bytes and stops."""
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        resp = web.StreamResponse()
        await resp.prepare(request)
        try:
            while True:
                await resp.write(b"a" * 65536)
                sent += 65536
                await asyncio.sleep(0)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return resp

    server.routes["/endless"] = endless
    head = make(**http(server, max_body=1000, url=[{"path": "/endless", "regex": "^a{1000}$"}]))
    result = await head.check()
    assert result.ok, result.message
    tail = make(**http(server, max_body=1000, url=[{"path": "/endless", "regex": "b"}]))
    result = await tail.check()
    assert not result.ok and "not found in the body (first 1000 bytes)" in result.message
    digest = make(**http(server, max_body=1000, url=[{"path": "/endless", "digest": "0" * 32}]))
    result = await digest.check()
    assert not result.ok
    assert "body larger than max_body (1000 bytes): cannot check its digest" in result.message
    # Stop after a short read; the server is not read to the end (it has no end).
    assert sent < 64 * 1024 * 1024


async def test_max_body_exactly_fits(server: Server, make: Make) -> None:
    checker = make(**http(server, max_body=len(BODY), url=[{"path": "/health", "digest": DIGEST}]))
    assert (await checker.check()).ok


async def test_keepalive_off_by_default_new_connection_per_check(
    server: Server, make: Make
) -> None:
    checker = make(**http(server, url=[{"path": "/health", "regex": "ok"}]))
    for _ in range(3):
        assert (await checker.check()).ok
    assert len(set(server.peer_ports)) == 3
    assert {s.headers.get("Connection") for s in server.seen} == {"close"}


async def test_keepalive_reuses_the_connection(server: Server, make: Make) -> None:
    checker = make(**http(server, keepalive=True, url=[{"path": "/health"}]))
    for _ in range(3):
        assert (await checker.check()).ok
    assert len(set(server.peer_ports)) == 1


async def test_checkers_run_concurrently_and_close_their_connections(
    server: Server, make: Make
) -> None:
    first = make(**http(server, url=[{"path": "/health"}]))
    kept = make(**http(server, keepalive=True, url=[{"path": "/health"}]))
    results = await asyncio.gather(*(c.check() for c in [first, kept] * 50))
    assert all(r.ok for r in results)
    assert first.client.idle_connections == 0  # Connection: close, each closed after use
    assert 1 <= kept.client.idle_connections <= 4  # kept for the next check, bounded
    (conns,) = kept.client.idle.values()
    await kept.close()
    await kept.close()  # twice is harmless
    assert kept.client.idle_connections == 0
    assert all(conn.writer.is_closing() for conn in conns)


async def test_bind_to_sets_the_source_address(server: Server, make: Make) -> None:
    """127.0.0.2 is a local address too (all of 127/8 is loopback on Linux)."""
    checker = make(**http(server, bind_to="127.0.0.2", url=[{"path": "/health"}]))
    plain = make(**http(server, url=[{"path": "/health"}]))
    assert (await checker.check()).ok and (await plain.check()).ok
    assert [s.peer_host for s in server.seen] == ["127.0.0.2", "127.0.0.1"]


async def test_connect_timeout(make: Make) -> None:
    """A listener whose accept queue is full: Linux drops further SYNs, connect hangs."""
    listener = free_socket()
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname())  # the queue's one place
    try:
        checker = make(
            connect_ip="127.0.0.1", connect_port=listener.getsockname()[1], connect_timeout=0.2
        )
        started = asyncio.get_running_loop().time()
        result = await asyncio.wait_for(checker.check(), 5)
    finally:
        filler.close()
        listener.close()
    assert not result.ok
    assert result.message.endswith("/: connect timed out after 0.2s")
    assert asyncio.get_running_loop().time() - started < 2


# --------------------------------------------------------------------------- with the runner


def runner_for(
    halo_plugins: Plugins, make: Make, server: Server, **options: Any
) -> tuple[CheckRunner, list[bool]]:
    checker = make(**http(server, **options))
    changes: list[bool] = []
    r = CheckRunner(
        "web",
        halo_plugins.type("checker", "http"),
        checker.config,
        scheduler=Scheduler(FakeClock(), seed=1),
        bus=EventBus(),
        on_change=lambda name, up, result: changes.append(up),
    )
    r.checker = checker
    return r, changes


async def test_timeout_through_the_runner(
    server: Server, make: Make, halo_plugins: Plugins
) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(text="late")

    server.routes["/slow"] = slow
    r, changes = runner_for(halo_plugins, make, server, timeout=0.2, url=[{"path": "/slow"}])
    started = asyncio.get_running_loop().time()
    await r.run_once()
    assert asyncio.get_running_loop().time() - started < 2
    assert changes == [False]
    assert r.stats.timeouts == 1
    assert r.stats.last_result is not None
    assert r.stats.last_result.message == "timed out after 0.2s"


async def test_flapping_with_rise_and_fall(
    server: Server, make: Make, halo_plugins: Plugins
) -> None:
    healthy = True

    async def toggled(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200 if healthy else 503, text="ok")

    server.routes["/health"] = toggled
    r, changes = runner_for(halo_plugins, make, server, rise=2, fall=3, url=[{"path": "/health"}])

    async def step(up: bool) -> None:
        nonlocal healthy
        healthy = up
        await r.run_once()

    for up in (False, False, True, False, False):  # a success between failures resets fall
        await step(up)
    assert changes == [] and r.up
    await step(False)
    assert changes == [False] and not r.up
    await step(True)
    await step(False)
    await step(True)
    assert changes == [False]  # one success is not enough to rise
    await step(True)
    assert changes == [False, True] and r.up
    assert r.stats.runs == 10 and r.stats.transitions == 2
