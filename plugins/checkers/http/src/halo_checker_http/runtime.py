"""The ``http`` checker at run time: one request per URL per check, on a shared aiohttp session.

Every checker of the process shares one :class:`aiohttp.ClientSession` (one per source
address, since aiohttp binds the source address per connector): a thousand checks cost one
session and one connection pool, not a thousand. The session is made on first use, on the
running loop, and closed when the last checker closes.

Connections are not kept alive between checks unless the check says ``keepalive: true``:
keepalived opens a new connection per check, and a check should see what a new client sees
(a listener that stopped accepting, a full backlog), not ride an old connection. Such a
request says ``Connection: close`` and its connection is closed after the response.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import os
import re
import ssl
from dataclasses import dataclass

import aiohttp
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace

from halo_checker_http.plugin import HttpCheck, StatusCodes, Url
from halo_core.plugin_api import CheckResult, CheckTarget

# keepalived's User-Agent: web servers are often set up to leave it out of their access logs.
USER_AGENT = "KeepAliveClient"


# --------------------------------------------------------------------------- the connection


@dataclass
class Peer:
    """What the connection of the last request was: filled in by the connector, in the task
    that made the request, and read by :meth:`HttpChecker.inspect` (the ssl checker reads the
    server's certificate there)."""

    certificate: bytes | None = None  # DER, when the connection is TLS


_PEER: contextvars.ContextVar[Peer | None] = contextvars.ContextVar("halo_http_peer", default=None)


class _Connector(aiohttp.TCPConnector):
    """A connector that notes the peer's certificate of every connection it hands out.

    The response cannot tell it: aiohttp gives the connection back to the pool (and drops
    ``response.connection``) as soon as the body has arrived, which for a small health page
    is before the caller sees the response at all. ``connect`` runs in the requesting task,
    so a context variable carries the note back to the checker that asked.
    """

    async def connect(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        conn = await super().connect(req, traces, timeout)
        peer = _PEER.get()
        transport = conn.transport
        if peer is not None and transport is not None:
            tls = transport.get_extra_info("ssl_object")
            # Binary form: the parsed form is empty when verification is off.
            peer.certificate = tls.getpeercert(binary_form=True) if tls is not None else None
        return conn


class _Sessions:
    """The process's shared client sessions, one per source address, counted by users."""

    def __init__(self) -> None:
        self.users = 0
        self.sessions: dict[
            str | None, tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession]
        ] = {}

    def acquire(self) -> None:
        self.users += 1

    async def release(self) -> None:
        self.users -= 1
        if self.users <= 0:
            self.users = 0
            sessions, self.sessions = self.sessions, {}
            loop = asyncio.get_running_loop()
            for owner, session in sessions.values():
                if owner is loop:  # a session of a finished loop cannot be closed any more
                    await session.close()

    def get(self, local_addr: str | None) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        entry = self.sessions.get(local_addr)
        if entry is not None and entry[0] is loop and not entry[1].closed:
            return entry[1]
        connector = _Connector(
            # The core's scheduler already bounds how many checks run at once; aiohttp's
            # default cap of 100 connections would queue checks behind each other into
            # false time-outs.
            limit=0,
            local_addr=(local_addr, 0) if local_addr is not None else None,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            # Checks are independent: no cookie of one response goes with the next request.
            cookie_jar=aiohttp.DummyCookieJar(),
            # The digest is over the body as sent (keepalived's), and the request asks for
            # it uncompressed.
            auto_decompress=False,
            # The core's CheckRunner bounds every check with its timeout.
            timeout=aiohttp.ClientTimeout(total=None),
        )
        self.sessions[local_addr] = (loop, session)
        return session


SESSIONS = _Sessions()


# --------------------------------------------------------------------------- the checker


@dataclass(frozen=True)
class Verdict:
    """What :meth:`HttpChecker.inspect` makes of a connection: an error fails the check, a
    warning rides along an ok result, a note is added to the ok message."""

    error: str | None = None
    warning: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class _Request:
    url: str
    label: str
    headers: dict[str, str]
    statuses: StatusCodes
    digest: str | None
    regex: re.Pattern[str] | None
    regex_no_match: bool
    server_hostname: str | None


class HttpChecker:
    """``factory(config, target)`` of the ``http`` type; the ``ssl`` type derives from it."""

    scheme = "http"
    default_port = 80

    def __init__(self, config: HttpCheck, target: CheckTarget) -> None:
        address = config.connect_ip or target.address
        if address is None:
            raise ValueError(f"check {target.name}: connect_ip is needed outside a real server")
        port = config.connect_port or target.port or self.default_port
        self.config = config
        self.name = target.name
        host = f"[{address}]" if address.version == 6 else str(address)
        self.origin = f"{self.scheme}://{host}" + (f":{port}" if port != self.default_port else "")
        self.local_addr = str(config.bind_to) if config.bind_to is not None else None
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            connect=float(config.connect_timeout) if config.connect_timeout else None,
        )
        self.requests = [self._prepare(url) for url in config.url]
        self._closed = False
        SESSIONS.acquire()

    def _prepare(self, url: Url) -> _Request:
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if not self.config.keepalive:
            headers["Connection"] = "close"
        for name, value in self.config.headers.items():  # the check's own win, in any case
            headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
            headers[name] = value
        host = url.virtualhost or self.config.virtualhost
        if host is not None:
            headers["Host"] = host
        full = self.origin + url.path
        return _Request(
            url=full,
            label=f"{self.config.method} {full}" + (f" (Host: {host})" if host else ""),
            headers=headers,
            statuses=url.statuses,
            digest=url.digest.lower() if url.digest else None,
            regex=re.compile(url.regex) if url.regex is not None else None,
            regex_no_match=url.regex_no_match,
            server_hostname=self.server_hostname(host),
        )

    # Hooks for the ssl checker.

    def server_hostname(self, host: str | None) -> str | None:
        """The TLS server name (SNI) for a request with Host ``host``."""
        return None

    def ssl_context(self) -> ssl.SSLContext | bool:
        """The TLS setup of requests; may raise ``OSError``/``ssl.SSLError`` (a failed check)."""
        return True  # plain http: only used by a redirect to https, with default verification

    def inspect(self, peer: Peer) -> Verdict:
        """Judge the connection a response came on."""
        return Verdict()

    # The check.

    async def check(self) -> CheckResult:
        notes: list[str] = []
        warnings: list[str] = []
        for request in self.requests:
            ok, message, warning = await self._probe(request)
            if not ok:
                return CheckResult(False, message)
            notes.append(message)
            if warning and warning not in warnings:
                warnings.append(warning)
        return CheckResult(True, "; ".join(notes), warning="; ".join(warnings) or None)

    async def _probe(self, request: _Request) -> tuple[bool, str, str | None]:
        try:
            context = self.ssl_context()
        except (OSError, ValueError) as exc:
            return False, f"{request.label}: TLS setup: {exc}", None
        peer = Peer()
        token = _PEER.set(peer)
        try:
            session = SESSIONS.get(self.local_addr)
            async with session.request(
                self.config.method,
                request.url,
                headers=request.headers,
                allow_redirects=self.config.follow_redirects,
                timeout=self.timeout,
                ssl=context,
                server_hostname=request.server_hostname,
            ) as response:
                return await self._judge(request, response, peer)
        except aiohttp.ClientError as exc:
            return False, f"{request.label}: {self.explain(exc)}", None
        except ssl.SSLError as exc:  # a TLS alert after the handshake (TLS 1.3 client auth)
            return False, f"{request.label}: TLS: {exc.reason or exc}", None
        except OSError as exc:  # one aiohttp did not wrap
            return False, f"{request.label}: {exc.strerror or exc}", None
        finally:
            _PEER.reset(token)

    async def _judge(
        self, request: _Request, response: aiohttp.ClientResponse, peer: Peer
    ) -> tuple[bool, str, str | None]:
        reuse = False
        try:
            verdict = self.inspect(peer)
            if verdict.error:
                return False, f"{request.label}: {verdict.error}", None
            status = response.status
            if status not in request.statuses:
                reason = f" {response.reason}" if response.reason else ""
                return (
                    False,
                    f"{request.label}: status {status}{reason}, expected {request.statuses}",
                    None,
                )
            parts = [str(status)]
            if request.digest is not None or request.regex is not None or self.config.keepalive:
                # Read the body only when it is judged, or to leave the connection reusable.
                body, truncated = await self._read(response)
                reuse = self.config.keepalive and not truncated
                if request.digest is not None:
                    if truncated:
                        return (
                            False,
                            f"{request.label}: body larger than max_body "
                            f"({self.config.max_body} bytes): cannot check its digest",
                            None,
                        )
                    got = hashlib.md5(body, usedforsecurity=False).hexdigest()
                    if got != request.digest:
                        return (
                            False,
                            f"{request.label}: digest {got}, expected {request.digest}",
                            None,
                        )
                    parts.append("digest ok")
                if request.regex is not None:
                    matched = request.regex.search(_text(body, response.charset)) is not None
                    where = f" (first {len(body)} bytes)" if truncated else ""
                    if matched == request.regex_no_match:
                        found = "found" if matched else "not found"
                        return (
                            False,
                            f"{request.label}: regex {request.regex.pattern!r} {found} in the"
                            f" body{where}",
                            None,
                        )
                    parts.append("regex " + ("matched" if matched else "not matched"))
            if verdict.note:
                parts.append(verdict.note)
            return True, f"{request.label}: {', '.join(parts)}", verdict.warning
        finally:
            if not reuse:
                # Close, don't pool: no keep-alive asked, or a body left half read.
                response.close()

    async def _read(self, response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        """At most ``max_body`` bytes of the body, and whether there was more."""
        limit = self.config.max_body
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = await response.content.read(limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        body = b"".join(chunks)
        return body[:limit], size > limit

    def explain(self, exc: aiohttp.ClientError) -> str:
        """A short reason for a failed request, without aiohttp's class names."""
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            err = exc.certificate_error
            return "certificate rejected: " + str(
                getattr(err, "verify_message", None) or getattr(err, "reason", None) or err
            )
        if isinstance(exc, aiohttp.ClientConnectorSSLError):
            return f"TLS handshake failed: {getattr(exc.os_error, 'reason', None) or exc.os_error}"
        if isinstance(exc, aiohttp.ClientConnectorError):
            err = exc.os_error
            # asyncio's strerror is "Connect call failed (addr)"; the errno says why.
            reason = os.strerror(err.errno) if err.errno else str(err)
            return f"connect to {exc.host}:{exc.port}: {reason}"
        if isinstance(exc, aiohttp.ServerTimeoutError):
            limit = self.config.connect_timeout
            return f"connect timed out after {limit:g}s" if limit else f"timed out: {exc}"
        if isinstance(exc, aiohttp.TooManyRedirects):
            return f"too many redirects (last status {exc.status})"
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return "the server closed the connection without a response"
        if isinstance(exc, aiohttp.ClientResponseError):
            return f"bad response: {exc.message}"
        if isinstance(exc, aiohttp.ClientPayloadError):
            return f"body cut short: {exc}"
        if isinstance(exc, aiohttp.ClientOSError) and isinstance(exc.__cause__, ssl.SSLError):
            cause = exc.__cause__
            return f"TLS: {cause.reason or cause}"
        return str(exc) or type(exc).__name__

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await SESSIONS.release()


def _text(body: bytes, charset: str | None) -> str:
    """The body as text for the regex: its declared charset, else UTF-8; never failing."""
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return body.decode("utf-8", errors="replace")
