"""halo_lib_http's client against raw servers on 127.0.0.1 that the tests script byte by byte:
framing (Content-Length, chunked, close-delimited), bounds on what a hostile server sends,
cancellation, connection reuse, redirects and TLS."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import trustme

from halo_lib_http import (
    MAX_HEAD,
    MAX_LINE,
    CertificateError,
    Client,
    ConnectError,
    ConnectTimeout,
    Disconnected,
    HttpError,
    ProtocolError,
    TooManyRedirects,
    md5_hex,
)

pytestmark = pytest.mark.timeout(30)

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Raw:
    """A server that runs ``script`` on each connection; ``requests`` holds each request
    head it read with :func:`head`, ``connections`` counts connections, ``closed`` those the
    client closed (EOF seen by :func:`wait_closed`)."""

    port: int = 0
    host: str = "127.0.0.1"
    script: Script | None = None
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


async def head(raw: Raw, reader: asyncio.StreamReader) -> bytes:
    """Read one request head (and a Content-Length body) and note it."""
    data = await reader.readuntil(b"\r\n\r\n")
    for line in data.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            data += await reader.readexactly(int(line.split(b":")[1]))
    raw.requests.append(data)
    return data


async def wait_closed(raw: Raw, reader: asyncio.StreamReader) -> None:
    """Until the client closes (or resets) the connection."""
    try:
        while await reader.read(65536):
            pass
    except ConnectionError:
        pass
    raw.closed.set()


@pytest.fixture
async def raw() -> AsyncIterator[Raw]:
    server_state = Raw()
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_state.connections += 1
        writers.append(writer)
        try:
            assert server_state.script is not None
            await server_state.script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    server_state.port = server.sockets[0].getsockname()[1]
    yield server_state
    server.close()
    for writer in writers:
        writer.close()
    await server.wait_closed()


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    c = Client()
    yield c
    await c.close()


def reply(raw: Raw, response: bytes, *, keep: bool = False) -> None:
    """Answer every request on a connection with ``response``; close after the first
    unless ``keep``."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await head(raw, reader)
            writer.write(response)
            await writer.drain()
            if not keep:
                return

    raw.script = script


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n"


# --------------------------------------------------------------------------- framing


async def test_content_length_body_and_request_head(raw: Raw, client: Client) -> None:
    reply(raw, OK)
    response = await client.request(
        "get",
        raw.url + "/a b/é?x=1 2".replace(" ", "%20"),
        headers={"Connection": "close", "X-Probe": "1", "X-Name": "café"},
    )
    async with response:
        assert (response.status, response.reason, response.version) == (200, "OK", 1)
        assert response.headers["content-type"] == "text/plain"
        assert await response.read(100) == (b"ok\n", False)
    request = raw.requests[0].decode()
    assert request.startswith("GET /a%20b/%C3%A9?x=1%202 HTTP/1.1\r\n")
    assert f"\r\nHost: 127.0.0.1:{raw.port}\r\n" in request
    assert "\r\nX-Probe: 1\r\n" in request and "\r\nConnection: close\r\n" in request
    assert "\r\nX-Name: café\r\n" in request  # UTF-8, as decoded above


async def test_chunked_body_with_extensions_and_trailer(raw: Raw, client: Client) -> None:
    reply(
        raw,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;name=value\r\nok, \r\n8\r\nhealthy\n\r\n0\r\nX-Trailer: 1\r\n\r\n",
        keep=True,
    )
    async with await client.request("GET", raw.url) as response:
        assert await response.read(1000) == (b"ok, healthy\n", False)
    assert client.idle_connections == 1  # read to its end: kept
    async with await client.request("GET", raw.url) as response:  # and reused
        body, truncated = await response.read(5)
        assert (body, truncated) == (b"ok, h", True)
    assert client.idle_connections == 0  # not read to its end: closed
    assert raw.connections == 1


async def test_chunked_with_content_length_is_read_chunked_and_not_reused(
    raw: Raw, client: Client
) -> None:
    """Both framings in one response: a smuggling attempt or a broken proxy. Transfer-Encoding
    wins (RFC 9112 §6.3) and the connection is not trusted with another request."""
    reply(
        raw,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
        keep=True,
    )
    async with await client.request("GET", raw.url) as response:
        assert await response.read(100) == (b"abc", False)
    assert client.idle_connections == 0


async def test_close_delimited_body(raw: Raw, client: Client) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head(raw, reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nall of")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b" it")

    raw.script = script
    async with await client.request("GET", raw.url) as response:
        assert await response.read(100) == (b"all of it", False)
    assert client.idle_connections == 0


async def test_no_body_for_head_204_and_304(raw: Raw, client: Client) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await head(raw, reader)
            if request.startswith(b"HEAD"):  # the length the GET would have: no body follows
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            elif b" /204 " in request:
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n")
            await writer.drain()

    raw.script = script
    for method, path, status in (("HEAD", "/", 200), ("GET", "/204", 204), ("GET", "/", 304)):
        async with await client.request(method, raw.url + path) as response:
            assert response.status == status
            assert await response.read(10) == (b"", False)
    assert (raw.connections, client.idle_connections) == (1, 1)


async def test_informational_responses_are_skipped(raw: Raw, client: Client) -> None:
    reply(raw, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n" + OK)
    async with await client.request("POST", raw.url, body=b"{}") as response:
        assert response.status == 200 and await response.read(10) == (b"ok\n", False)
    assert b"\r\nContent-Length: 2\r\n" in raw.requests[0]


async def test_body_cut_short(raw: Raw, client: Client) -> None:
    reply(raw, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
    async with await client.request("GET", raw.url) as response:
        with pytest.raises(ProtocolError, match=r"body cut short: .* 95 bytes before the end"):
            await response.read(1000)
    reply(raw, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort")
    async with await client.request("GET", raw.url) as response:
        with pytest.raises(ProtocolError, match="body cut short"):
            await response.read(1000)


# --------------------------------------------------------------------------- hostile servers


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_LINE + b"\r\n\r\n", "is too long|longer than"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", "larger than"),
        (b"HTTP/1.1 200 OK\r\n" + (b"X: " + b"a" * 8000 + b"\r\n") * 9 + b"\r\n", "larger than"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "status line 'SSH-2.0-OpenSSH_9.2'"),
        (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "header line 'bad header'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "conflicting Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length '-1'"),
        (b"HTTP/1.1 100 Continue\r\n\r\n" * 11, "more than 10 informational"),
        (b"HTTP/1.1 200 O", "closed the connection in the status line"),
        (b"HTTP/1.1 200 OK\r\nX: 1\r\n", "closed the connection in the response head"),
    ],
)
async def test_bad_responses_are_refused(
    raw: Raw, client: Client, response: bytes, reason: str
) -> None:
    reply(raw, response)
    with pytest.raises(ProtocolError, match=reason):
        await client.request("GET", raw.url)
    assert client.idle_connections == 0


async def test_endless_head_is_bounded(raw: Raw, client: Client) -> None:
    """A server that sends header fields forever: refused after MAX_HEAD bytes."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head(raw, reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        while True:
            writer.write(b"X-Filler: " + b"a" * 100 + b"\r\n")
            await writer.drain()

    raw.script = script
    with pytest.raises(ProtocolError, match=f"larger than {MAX_HEAD} bytes"):
        await asyncio.wait_for(client.request("GET", raw.url), 10)


async def test_endless_line_and_chunk_trailer_are_bounded(raw: Raw, client: Client) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head(raw, reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n")
        while True:  # a trailer line that never ends
            writer.write(b"a" * 4096)
            await writer.drain()

    raw.script = script
    async with await client.request("GET", raw.url) as response:
        with pytest.raises(ProtocolError, match="too long"):
            await asyncio.wait_for(response.read(100), 10)


async def test_closed_without_a_response(raw: Raw, client: Client) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head(raw, reader)

    raw.script = script
    with pytest.raises(
        Disconnected, match=r"^the server closed the connection without a response$"
    ):
        await client.request("GET", raw.url)


async def test_silent_server_cancelled_closes_the_connection(raw: Raw, client: Client) -> None:
    """A server that reads the request and never answers: the caller's time-out (here
    asyncio.timeout; for checks the core's CheckRunner) cancels, and the connection goes."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head(raw, reader)
        await wait_closed(raw, reader)

    raw.script = script
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await client.request("GET", raw.url)
    await asyncio.wait_for(raw.closed.wait(), 5)
    assert asyncio.get_running_loop().time() - started < 2
    assert client.idle_connections == 0


async def test_slow_body_cancelled_closes_the_connection(raw: Raw, client: Client) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await head(raw, reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst bytes")
        await wait_closed(raw, reader)  # and the rest never

    raw.script = script
    task = asyncio.create_task(_read_all(client, raw.url))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(raw.closed.wait(), 5)
    assert client.idle_connections == 0


async def _read_all(client: Client, url: str) -> bytes:
    async with await client.request("GET", url) as response:
        body, _ = await response.read(1000)
        return body


# --------------------------------------------------------------------------- connections


async def test_keepalive_reuse_and_connection_close(raw: Raw, client: Client) -> None:
    reply(raw, OK, keep=True)
    for _ in range(3):
        async with await client.request("GET", raw.url) as response:
            await response.read(10)
    assert (raw.connections, client.connections_made, client.idle_connections) == (1, 1, 1)
    for _ in range(2):  # Connection: close: a connection each, none kept
        async with await client.request(
            "GET", raw.url, headers={"connection": "close"}
        ) as response:
            await response.read(10)
    assert (raw.connections, client.idle_connections) == (3, 1)
    # A body not read: the connection cannot be reused and is closed.
    async with await client.request("GET", raw.url):
        pass
    assert client.idle_connections == 0


async def test_server_saying_close_is_not_reused(raw: Raw, client: Client) -> None:
    reply(raw, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", keep=True)
    for _ in range(2):
        async with await client.request("GET", raw.url):
            pass
    assert raw.connections == 2 and client.idle_connections == 0


async def test_a_stale_kept_connection_is_retried_once(raw: Raw, client: Client) -> None:
    """The server closes a kept connection between requests (its own keep-alive time-out):
    the next GET goes out again on a new connection."""
    reply(raw, OK)  # answers and closes, without saying Connection: close
    for _ in range(3):
        async with await client.request("GET", raw.url) as response:
            assert await response.read(10) == (b"ok\n", False)
        await asyncio.sleep(0.05)  # the server's close arrives
    assert raw.connections == 3


async def test_idle_connections_expire(raw: Raw) -> None:
    client = Client(keepalive_timeout=0.1)
    reply(raw, OK, keep=True)
    async with await client.request("GET", raw.url) as response:
        await response.read(10)
    assert client.idle_connections == 1
    await asyncio.sleep(0.3)
    assert client.idle_connections == 0
    await client.close()


async def test_connect_errors(client: Client) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, not listening
    port = sock.getsockname()[1]
    try:
        with pytest.raises(
            ConnectError, match=rf"^connect to 127\.0\.0\.1:{port}: Connection refused$"
        ):
            await client.request("GET", f"http://127.0.0.1:{port}/")
    finally:
        sock.close()
    with pytest.raises(ConnectError, match=r"^connect to nothing\.invalid:80: "):
        await client.request("GET", "http://nothing.invalid/")


async def test_connect_timeout(client: Client) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname())  # the backlog is full
    try:
        with pytest.raises(ConnectTimeout, match=r"^connect timed out after 0\.2s$"):
            await client.request(
                "GET", f"http://127.0.0.1:{listener.getsockname()[1]}/", connect_timeout=0.2
            )
    finally:
        filler.close()
        listener.close()


async def test_ipv6_literal_and_source_address() -> None:
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    seen: list[tuple[bytes, str]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append((await reader.readuntil(b"\r\n\r\n"), writer.get_extra_info("peername")[0]))
        writer.write(OK)
        writer.close()

    server = await asyncio.start_server(handle, "::1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Client(local_addr="::1")
    try:
        async with await client.request("GET", f"http://[::1]:{port}/x") as response:
            assert response.status == 200
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
    assert f"\r\nHost: [::1]:{port}\r\n".encode() in seen[0][0]
    assert seen[0][1] == "::1"


async def test_bad_arguments_are_value_errors(client: Client) -> None:
    for url in ("ftp://127.0.0.1/", "http:///path", "http://127.0.0.1:99999/", "http://a/\r\n"):
        with pytest.raises(ValueError):
            await client.request("GET", url)
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        await client.request("GET", "http://127.0.0.1/", headers={"X": "a\r\nInjected: 1"})
    with pytest.raises(ValueError, match="not an HTTP token"):
        await client.request("GET", "http://127.0.0.1/", headers={"Bad Name": "1"})
    with pytest.raises(ValueError, match="not an HTTP token"):
        await client.request("GET /x", "http://127.0.0.1/")


# --------------------------------------------------------------------------- redirects


async def test_redirects_followed_and_bounded(raw: Raw) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await head(raw, reader)
            path = request.split(b" ")[1]
            if path == b"/loop":
                writer.write(
                    b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 4\r\n\r\nnext"
                )
            elif path == b"/post":
                writer.write(
                    b"HTTP/1.1 303 See Other\r\nLocation: done\r\nContent-Length: 0\r\n\r\n"
                )
            else:
                writer.write(OK)
            await writer.drain()

    raw.script = script
    client = Client(max_redirects=3)
    with pytest.raises(TooManyRedirects, match=r"^too many redirects \(last status 302\)$"):
        await client.request("GET", raw.url + "/loop", follow_redirects=True)
    assert len(raw.requests) == 4  # the request and 3 redirects followed
    assert raw.connections == 1  # each redirect's body read: one connection throughout
    async with await client.request("GET", raw.url + "/loop") as response:  # not followed
        assert response.status == 302
    raw.requests.clear()
    async with await client.request(
        "POST", raw.url + "/post", body=b"{}", headers={"Content-Type": "x"}, follow_redirects=True
    ) as response:
        assert response.status == 200 and response.history == [303]
        assert response.url == raw.url + "/done"
    assert raw.requests[1].startswith(b"GET /done HTTP/1.1\r\n")
    assert b"Content-Type" not in raw.requests[1] and b"Content-Length" not in raw.requests[1]
    await client.close()


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_https_with_sni_certificate_and_rejection(ca: trustme.CA, client: Client) -> None:
    names: list[str | None] = []
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf = ca.issue_cert("halo.test")
    leaf.configure_cert(server_ctx)
    server_ctx.sni_callback = lambda obj, name, ctx: names.append(name)  # type: ignore[assignment,misc,return-value]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(OK)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    try:
        async with await client.request(
            "GET", url, tls=trusting, server_hostname="halo.test"
        ) as response:
            assert await response.read(10) == (b"ok\n", False)
            leaf_pem = leaf.cert_chain_pems[0].bytes().decode()
            assert response.certificate == ssl.PEM_cert_to_DER_cert(leaf_pem)
        assert names == ["halo.test"]
        with pytest.raises(CertificateError, match=r"^certificate rejected: Hostname mismatch"):
            await client.request("GET", url, tls=trusting, server_hostname="other.test")
        with pytest.raises(CertificateError, match="unable to get local issuer certificate"):
            await client.request("GET", url, server_hostname="halo.test")  # system CAs
    finally:
        server.close()
        await server.wait_closed()


async def test_plain_http_server_behind_https_url(raw: Raw, client: Client) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)  # the ClientHello: answered as a web server answers garbage
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    raw.script = script
    with pytest.raises(HttpError, match=r"^TLS handshake failed: "):
        await client.request("GET", raw.url.replace("http:", "https:"))


def test_md5_hex_is_keepalived_digest() -> None:
    import hashlib

    data = bytes(range(256)) * 10
    assert md5_hex(data) == hashlib.md5(data).hexdigest()
