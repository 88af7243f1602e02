"""A small HTTP/1.1 client on asyncio streams: what a health check or a webhook needs (the
http and ssl checkers and the webhook notifier use it).

Why not aiohttp: importing it adds about 11.5 MB to a process's resident memory, to send one
request per check. This client does requests with bodies of known size, responses framed by
Content-Length, chunked transfer coding or the end of the connection, redirects (bounded),
persistent connections (per :class:`Client`, bounded in number and idle time), a source
address, a connect time-out (which covers the TLS handshake) and TLS with SNI. ``ssl`` is
imported only when a request is https: a process making plain HTTP requests never loads
OpenSSL through it.

Everything a server sends is read within bounds: a line of the response head is at most
:data:`MAX_LINE` bytes, the head at most :data:`MAX_HEAD` bytes with :data:`MAX_HEADERS`
fields, and a body is read only as far as the caller asks (:meth:`Response.read`). There is
no overall time-out: the caller bounds a request (``asyncio.timeout``, or the cancellation of
its task); a request cancelled at any point closes its connection.

Failures are :class:`HttpError` subclasses whose text is a short reason for people (no class
names, no tracebacks); a bad argument (URL, header) is a ``ValueError``.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import quote, urljoin, urlsplit

if TYPE_CHECKING:  # only for annotations: importing ssl loads OpenSSL (4.4 MB)
    import ssl

__all__ = [
    "MAX_HEAD",
    "MAX_HEADERS",
    "MAX_LINE",
    "CertificateError",
    "Client",
    "ConnectError",
    "ConnectTimeout",
    "Disconnected",
    "Headers",
    "HttpError",
    "ProtocolError",
    "Response",
    "TlsError",
    "TooManyRedirects",
    "md5_hex",
]

MAX_LINE = 8 * 1024  # one line of a response head (status line, field, chunk size)
MAX_HEAD = 64 * 1024  # the whole response head, and a chunked body's trailer
MAX_HEADERS = 100  # fields in a response head
MAX_INFORMATIONAL = 10  # 1xx responses before the final one
MAX_REDIRECTS = 10  # aiohttp's and requests' default is 10 and 30
KEEPALIVE_TIMEOUT = 15.0  # an idle connection is closed after this long (aiohttp's 15 s)
MAX_IDLE = 4  # idle connections kept per origin
DRAIN_LIMIT = 64 * 1024  # body of a redirect read so that its connection can be reused

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_STATUS_LINE = re.compile(rb"HTTP/1\.([0-9]) ([0-9]{3})(?: (.*))?")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
# What a request target may hold as it is; anything else (a space, non-ASCII) is escaped.
_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"


# --------------------------------------------------------------------------- errors


class HttpError(Exception):
    """A request that failed; ``str()`` says why, in a few words."""


class ConnectError(HttpError):
    """No connection: refused, unreachable, a name that does not resolve."""


class ConnectTimeout(ConnectError):
    """The connection (TCP and TLS handshake) took longer than ``connect_timeout``."""


class TlsError(HttpError):
    """The TLS handshake failed, or TLS broke down later (an alert)."""


class CertificateError(TlsError):
    """The server's certificate was rejected (chain, name, expiry)."""


class Disconnected(HttpError):
    """The server closed the connection before a response (or in its head)."""


class ProtocolError(HttpError):
    """The server's answer is not HTTP/1.x within the bounds, or its body was cut short."""


class TooManyRedirects(HttpError):
    """More redirects than allowed; ``status`` is the last one's."""

    def __init__(self, status: int, limit: int) -> None:
        super().__init__(f"too many redirects (last status {status})")
        self.status = status
        self.limit = limit


# --------------------------------------------------------------------------- headers


class Headers(Mapping[str, str]):
    """A response's header fields, looked up without regard to case; ``[name]`` and
    ``get`` give the first value of a field, :meth:`get_all` every one, in order."""

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self.fields = list(fields)
        self._index: dict[str, list[str]] = {}
        for name, value in self.fields:
            self._index.setdefault(name.lower(), []).append(value)

    def __getitem__(self, name: str) -> str:
        return self._index[name.lower()][0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def get_all(self, name: str) -> list[str]:
        return list(self._index.get(name.lower(), ()))

    def tokens(self, name: str) -> set[str]:
        """The comma-separated tokens of every ``name`` field, lower-cased."""
        return {
            t.strip().lower() for value in self.get_all(name) for t in value.split(",") if t.strip()
        }

    def __repr__(self) -> str:
        return f"Headers({self.fields!r})"


def check_header(name: str, value: str) -> None:
    """Raise ``ValueError`` for a field a request must not carry (CR/LF would end it early)."""
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"header name {name!r} is not an HTTP token")
    if _BAD_VALUE.search(value):
        raise ValueError(f"header {name}: the value must not hold CR, LF or NUL")


# --------------------------------------------------------------------------- URLs


@dataclass(frozen=True)
class _Url:
    scheme: str
    host: str  # without brackets
    port: int
    target: str  # path and query, as sent

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.target}"


def _parse_url(url: str) -> _Url:
    if _BAD_VALUE.search(url) or " " in url:
        raise ValueError(f"URL {url!r} must not hold spaces, CR, LF or NUL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"URL {url!r}: only http and https are supported")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"URL {url!r}: bad port") from None
    if not parts.hostname:
        raise ValueError(f"URL {url!r} has no host")
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    return _Url(scheme, parts.hostname, port or DEFAULT_PORTS[scheme], target)


# --------------------------------------------------------------------------- connections


_Key = tuple[str, str, int, object, str | None]


class _Connection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: _Key
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.expiry: asyncio.TimerHandle | None = None
        tls = writer.get_extra_info("ssl_object")
        # Binary form: the parsed form is empty when verification is off.
        self.certificate: bytes | None = (
            tls.getpeercert(binary_form=True) if tls is not None else None
        )

    @property
    def usable(self) -> bool:
        """Still open, and the server has sent nothing since (not even its close)."""
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        if self.loop.is_closed():
            return  # nothing can be done on a finished loop; its sockets went with it
        self.writer.close()

    def abort(self) -> None:
        """Close at once, without a TLS close_notify: after a cancel or an error."""
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        if not self.loop.is_closed():
            self.writer.transport.abort()


# --------------------------------------------------------------------------- responses


class Response:
    """A response whose head has been read; its body is read with :meth:`read`. Close it
    (:meth:`close`, or ``async with``): a connection whose body was read to its end goes
    back to the client for the next request, any other is closed."""

    def __init__(
        self,
        client: Client,
        conn: _Connection,
        url: str,
        method: str,
        version: int,
        status: int,
        reason: str,
        headers: Headers,
        reusable: bool,
    ) -> None:
        self.url = url
        self.method = method
        self.status = status
        self.reason = reason
        self.headers = headers
        self.version = version  # 0 or 1: HTTP/1.0 or HTTP/1.1
        self.certificate = conn.certificate  # the server's, DER, when the connection is TLS
        self.history: list[int] = []  # statuses of the redirects followed to get here
        self._client = client
        self._conn: _Connection | None = conn
        self._reusable = reusable
        self._chunk_left = 0  # bytes left in the current chunk (chunked)
        self._done = False
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self._mode, self._left = "none", 0
            self._done = True
        elif "transfer-encoding" in headers:
            codings = headers.get_all("Transfer-Encoding")[-1].split(",")
            # Chunked last, else the close delimits the body (RFC 9112 §6.3). With a
            # Content-Length as well, the framing is suspect: no reuse after it.
            self._mode = "chunked" if codings[-1].strip().lower() == "chunked" else "close"
            self._left = 0
            if "content-length" in headers:
                self._reusable = False
        else:
            length = _content_length(headers)
            if length is None:
                self._mode, self._left = "close", 0
            else:
                self._mode, self._left = "length", length
                self._done = length == 0
        if self._mode == "close":
            self._reusable = False

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of Content-Type, if any."""
        value = self.headers.get("Content-Type", "")
        for param in value.split(";")[1:]:
            name, _, arg = param.partition("=")
            if name.strip().lower() == "charset" and arg.strip():
                return arg.strip().strip('"') or None
        return None

    async def read(self, limit: int) -> tuple[bytes, bool]:
        """At most ``limit`` bytes of the body, and whether there was more (then the
        connection cannot be reused: the rest is not read)."""
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            data = await self._read_some(limit + 1 - size)
            if not data:
                break
            chunks.append(data)
            size += len(data)
        body = b"".join(chunks)
        return body[:limit], size > limit

    async def _read_some(self, n: int) -> bytes:
        """Up to ``n`` bytes of the body (at least one, unless at its end)."""
        conn = self._conn
        if self._done or conn is None:
            return b""
        reader = conn.reader
        try:
            if self._mode == "length":
                data = await reader.read(min(n, self._left))
                if not data:
                    raise ProtocolError(
                        f"body cut short: the server closed the connection {self._left} bytes"
                        " before the end given by Content-Length"
                    )
                self._left -= len(data)
                self._done = self._left == 0
                return data
            if self._mode == "close":
                data = await reader.read(n)
                self._done = not data
                return data
            # chunked
            if self._chunk_left <= 0:
                size = await self._chunk_size()
                if size == 0:
                    await _read_head_lines(reader, "chunked body's trailer")
                    self._done = True
                    return b""
                self._chunk_left = size
            data = await reader.read(min(n, self._chunk_left))
            if not data:
                raise ProtocolError("body cut short: the server closed the connection in a chunk")
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                self._chunk_left = -1  # a CRLF ends the chunk's data
            return data
        except asyncio.IncompleteReadError:
            raise ProtocolError(
                "body cut short: the server closed the connection in the chunked body"
            ) from None
        except OSError as exc:
            raise _exchange_error(exc) from None

    async def _chunk_size(self) -> int:
        assert self._conn is not None
        reader = self._conn.reader
        if self._chunk_left == -1 and await _read_line(reader, "chunked body") != b"":
            raise ProtocolError("bad chunked body: no CRLF after a chunk's data")
        line = await _read_line(reader, "chunked body")
        size = line.split(b";", 1)[0].strip()
        if not _HEX.fullmatch(size):
            raise ProtocolError(f"bad chunked body: chunk size {_show(line)}")
        return int(size, 16)

    def close(self) -> None:
        """Give the connection back for reuse if its body was read to the end, else close
        it. Closing twice is harmless."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and self._reusable:
            self._client._give_back(conn)
        else:
            conn.close()

    def abort(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not isinstance(exc, Exception):
            self.abort()  # cancelled: no goodbye
        else:
            self.close()

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason!r} {self.url}>"


def _content_length(headers: Headers) -> int | None:
    values = headers.get_all("Content-Length")
    if not values:
        return None
    # Several equal values (or a list of them) are one length (RFC 9110 §8.6); others are
    # a framing attack or a broken server.
    lengths = {v.strip() for value in values for v in value.split(",")}
    if len(lengths) != 1:
        raise ProtocolError(f"bad response: conflicting Content-Length {values!r}")
    (text,) = lengths
    if not text.isdigit() or len(text) > 18:
        raise ProtocolError(f"bad response: Content-Length {_show(text.encode())}")
    return int(text)


def _show(data: bytes, limit: int = 60) -> str:
    """Bytes a server sent, quoted and shortened for a message."""
    text = data[:limit].decode("latin-1")
    return repr(text) + ("..." if len(data) > limit else "")


async def _read_line(reader: asyncio.StreamReader, where: str) -> bytes:
    """One CRLF- (or LF-) terminated line, without its end; bounded by :data:`MAX_LINE`."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise ProtocolError(f"bad response: a line of the {where} is too long") from None
    if len(line) > MAX_LINE:
        raise ProtocolError(f"bad response: a line of the {where} is longer than {MAX_LINE} bytes")
    return line.rstrip(b"\r\n")


async def _read_head_lines(reader: asyncio.StreamReader, where: str) -> list[bytes]:
    """Lines up to an empty one, within :data:`MAX_HEAD` bytes and :data:`MAX_HEADERS`."""
    lines: list[bytes] = []
    size = 0
    while True:
        line = await _read_line(reader, where)
        if not line:
            return lines
        size += len(line) + 2
        if size > MAX_HEAD or len(lines) >= MAX_HEADERS:
            raise ProtocolError(
                f"bad response: the {where} is larger than {MAX_HEAD} bytes or {MAX_HEADERS} fields"
            )
        lines.append(line)


def _parse_fields(lines: list[bytes]) -> Headers:
    fields: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):  # obsolete line folding (RFC 9112 §5.2)
            if not fields:
                raise ProtocolError(f"bad response: header line {_show(line)}")
            last, folded = fields.pop()
            fields.append((last, folded + " " + line.strip().decode("latin-1")))
            continue
        name, sep, value = line.partition(b":")
        text = name.decode("latin-1")
        if not sep or not _TOKEN.fullmatch(text):
            raise ProtocolError(f"bad response: header line {_show(line)}")
        fields.append((text, value.strip().decode("latin-1")))
    return Headers(fields)


def _exchange_error(exc: OSError) -> HttpError:
    """An ``OSError`` while talking to the server, in words."""
    ssl = sys.modules.get("ssl")  # None when marked absent (halo_core.tls)
    if ssl is not None and isinstance(exc, ssl.SSLError):
        return TlsError(f"TLS: {exc.reason or exc}")
    if isinstance(exc, ConnectionResetError):
        return Disconnected("the server reset the connection")
    return HttpError(exc.strerror or str(exc) or type(exc).__name__)


# --------------------------------------------------------------------------- the client


class Client:
    """Requests from one source address, with their persistent connections.

    A request whose headers say ``Connection: close`` gets a connection of its own, closed
    after the response; any other may reuse a connection a previous response (read to its
    end) left open to the same origin, and leaves its own for the next. An idle connection
    is closed after ``keepalive_timeout`` seconds. :meth:`close` closes them all.
    """

    def __init__(
        self,
        *,
        local_addr: str | None = None,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
        max_redirects: int = MAX_REDIRECTS,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.local_addr = local_addr
        self.keepalive_timeout = keepalive_timeout
        self.max_redirects = max_redirects
        self.headers = dict(headers or {})  # sent with every request unless it has its own
        for name, value in self.headers.items():
            check_header(name, value)
        self.idle: dict[_Key, list[_Connection]] = {}
        self._default_tls: ssl.SSLContext | None = None
        self.connections_made = 0  # how many connections this client opened

    # -- the request

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout: float | None = None,
        follow_redirects: bool = False,
    ) -> Response:
        """Send a request and read the response's head. ``tls`` is the context of https
        requests (default: ``ssl.create_default_context()``), ``server_hostname`` their
        server name (SNI and verification; default: the URL's host, an address is never
        sent as SNI). With ``follow_redirects``, a 301, 302, 303, 307 or 308 with a Location
        is followed, at most ``max_redirects`` times (303, and 301/302 after a POST, become
        a GET without body; the headers go along, except Authorization to another origin).
        """
        method = method.upper()
        if not _TOKEN.fullmatch(method):
            raise ValueError(f"method {method!r} is not an HTTP token")
        given = dict(headers or {})
        for name, value in given.items():
            check_header(name, value)
        target = _parse_url(url)
        history: list[int] = []
        while True:
            response = await self._send(
                method, target, given, body, tls, server_hostname, connect_timeout
            )
            location = response.headers.get("Location")
            if not (follow_redirects and response.status in REDIRECT_STATUSES and location):
                response.history = history
                return response
            history.append(response.status)
            try:
                if len(history) > self.max_redirects:
                    raise TooManyRedirects(response.status, self.max_redirects)
                try:
                    following = _parse_url(urljoin(str(target), location))
                except ValueError as exc:
                    raise ProtocolError(f"bad redirect: {exc}") from None
                await response.read(DRAIN_LIMIT)  # so that its connection can be reused
            except BaseException:
                response.abort()
                raise
            response.close()
            if (response.status == 303 and method != "HEAD") or (
                response.status in (301, 302) and method == "POST"
            ):
                method, body = "GET", b""
                given = {k: v for k, v in given.items() if k.lower() != "content-type"}
            if (following.scheme, following.host, following.port) != (
                target.scheme,
                target.host,
                target.port,
            ):
                given = {k: v for k, v in given.items() if k.lower() != "authorization"}
            target = following

    async def _send(
        self,
        method: str,
        url: _Url,
        headers: dict[str, str],
        body: bytes,
        tls: ssl.SSLContext | None,
        server_hostname: str | None,
        connect_timeout: float | None,
    ) -> Response:
        fields = {"Host": url.netloc, **self.headers}
        for name, value in headers.items():  # the request's own win, in any case
            fields = {k: v for k, v in fields.items() if k.lower() != name.lower()}
            fields[name] = value
        if body or method in ("POST", "PUT", "PATCH"):
            fields = {k: v for k, v in fields.items() if k.lower() != "content-length"}
            fields["Content-Length"] = str(len(body))
        closing = any(k.lower() == "connection" and "close" in v.lower() for k, v in fields.items())
        head = f"{method} {url.target} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in fields.items()
        )
        data = head.encode() + b"\r\n" + body  # UTF-8 for any non-ASCII value, as aiohttp
        context: ssl.SSLContext | None = None
        if url.scheme == "https":
            context = tls if tls is not None else self.default_tls()
        name = server_hostname or url.host
        key: _Key = (url.scheme, url.host, url.port, context, name if context else None)
        # A reused connection the server closed meanwhile fails before any answer: an
        # idempotent request is then sent once more, on a new connection.
        for _ in range(MAX_IDLE + 1):
            conn = None if closing else self._take(key)
            fresh = conn is None
            if conn is None:
                conn = await self._connect(url, key, context, name, connect_timeout)
            try:
                conn.writer.write(data)
                await conn.writer.drain()
                version, status, reason, response_headers = await self._read_head(conn)
            except (Disconnected, OSError) as exc:
                conn.abort()
                if fresh or method not in IDEMPOTENT:
                    raise exc if isinstance(exc, HttpError) else _exchange_error(exc) from None
                continue
            except BaseException:
                conn.abort()
                raise
            reusable = not closing and (
                "close" not in response_headers.tokens("Connection")
                if version == 1
                else "keep-alive" in response_headers.tokens("Connection")
            )
            try:
                return Response(
                    self,
                    conn,
                    str(url),
                    method,
                    version,
                    status,
                    reason,
                    response_headers,
                    reusable,
                )
            except BaseException:
                conn.abort()
                raise
        raise Disconnected("the server closed the connection without a response")

    async def _read_head(self, conn: _Connection) -> tuple[int, int, str, Headers]:
        reader = conn.reader
        for _ in range(MAX_INFORMATIONAL + 1):
            try:
                line = await _read_line(reader, "response head")
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise ProtocolError(
                        "bad response: the server closed the connection in the status line"
                    ) from None
                raise Disconnected("the server closed the connection without a response") from None
            match = _STATUS_LINE.fullmatch(line)
            if match is None:
                raise ProtocolError(f"bad response: status line {_show(line)}")
            try:
                lines = await _read_head_lines(reader, "response head")
            except asyncio.IncompleteReadError:
                raise ProtocolError(
                    "bad response: the server closed the connection in the response head"
                ) from None
            status = int(match[2])
            if status < 100:
                raise ProtocolError(f"bad response: status line {_show(line)}")
            headers = _parse_fields(lines)
            if 100 <= status < 200 and status != 101:
                continue  # 100 Continue, 103 Early Hints: the final response follows
            reason = (match[3] or b"").decode("latin-1").strip()
            return int(match[1]), status, reason, headers
        raise ProtocolError(f"bad response: more than {MAX_INFORMATIONAL} informational responses")

    # -- connections

    def default_tls(self) -> ssl.SSLContext:
        """The TLS context of https requests that bring none: the system's CAs, verified."""
        if self._default_tls is None:
            import ssl  # here, not at the top: plain http never loads OpenSSL through it

            self._default_tls = ssl.create_default_context()
        return self._default_tls

    async def _connect(
        self,
        url: _Url,
        key: _Key,
        context: ssl.SSLContext | None,
        server_hostname: str,
        connect_timeout: float | None,
    ) -> _Connection:
        tls_args: dict[str, object] = {}
        if context is not None:
            tls_args = {"ssl": context, "server_hostname": server_hostname}
        deadline = asyncio.timeout(connect_timeout)
        try:
            async with deadline:
                reader, writer = await asyncio.open_connection(
                    url.host,
                    url.port,
                    limit=MAX_HEAD,
                    local_addr=(self.local_addr, 0) if self.local_addr is not None else None,
                    **tls_args,  # type: ignore[arg-type]
                )
        except TimeoutError as exc:
            if connect_timeout is not None and deadline.expired():
                raise ConnectTimeout(f"connect timed out after {connect_timeout:g}s") from None
            raise _connect_error(exc, url, context is not None) from None  # ETIMEDOUT
        except OSError as exc:
            raise _connect_error(exc, url, context is not None) from None
        self.connections_made += 1
        return _Connection(reader, writer, key)

    def _take(self, key: _Key) -> _Connection | None:
        idle = self.idle.get(key)
        loop = asyncio.get_running_loop()
        while idle:
            conn = idle.pop()
            if conn.expiry is not None:
                conn.expiry.cancel()
                conn.expiry = None
            if conn.loop is loop and conn.usable:
                return conn
            conn.close()
        return None

    def _give_back(self, conn: _Connection) -> None:
        if not conn.usable or conn.loop is not asyncio.get_running_loop():
            conn.close()
            return
        idle = self.idle.setdefault(conn.key, [])
        if len(idle) >= MAX_IDLE:
            conn.close()
            return
        idle.append(conn)
        conn.expiry = conn.loop.call_later(self.keepalive_timeout, self._expire, conn)

    def _expire(self, conn: _Connection) -> None:
        conn.expiry = None
        idle = self.idle.get(conn.key, [])
        if conn in idle:
            idle.remove(conn)
        conn.close()

    @property
    def idle_connections(self) -> int:
        return sum(len(v) for v in self.idle.values())

    async def close(self) -> None:
        """Close every idle connection. The client can still be used afterwards."""
        idle, self.idle = self.idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def _connect_error(exc: OSError, url: _Url, tls: bool) -> HttpError:
    ssl = sys.modules.get("ssl") if tls else None
    if ssl is not None and isinstance(exc, ssl.SSLCertVerificationError):
        return CertificateError(
            "certificate rejected: " + str(exc.verify_message or exc.reason or exc)
        )
    if ssl is not None and isinstance(exc, ssl.SSLError):
        return TlsError(f"TLS handshake failed: {exc.reason or exc}")
    if isinstance(exc, socket.gaierror):
        reason = str(exc.strerror or exc)
    elif exc.errno:
        # asyncio's strerror is "Connect call failed (addr)"; the errno says why.
        reason = os.strerror(exc.errno)
    else:
        reason = str(exc) or type(exc).__name__
    where = f"[{url.host}]" if ":" in url.host else url.host
    return ConnectError(f"connect to {where}:{url.port}: {reason}")


def md5_hex(data: bytes) -> str:
    """The MD5 of ``data`` in hex (keepalived's HTTP_GET digest), without ``hashlib``:
    hashlib loads OpenSSL's libcrypto (3.6 MB resident) where CPython's own MD5 will do."""
    try:
        from _md5 import md5  # type: ignore[import-not-found]  # CPython's built-in MD5
    except ImportError:  # an interpreter built without it
        from hashlib import md5
    digest: str = md5(data, usedforsecurity=False).hexdigest()
    return digest
