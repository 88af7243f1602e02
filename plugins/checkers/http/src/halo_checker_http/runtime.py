"""The ``http`` checker at run time: one request per URL per check, with halo_lib_http.

Each checker has its own :class:`halo_lib_http.Client` (and source address): the core's
scheduler bounds how many checks run at once, so there is no pool to share or queue behind.
Connections are not kept alive between checks unless the check says ``keepalive: true``:
keepalived opens a new connection per check, and a check should see what a new client sees
(a listener that stopped accepting, a full backlog), not ride an old connection. Such a
request says ``Connection: close`` and its connection is closed after the response. With
``keepalive`` the connection a response was read to the end on is kept for the next check
(at most 15 s idle).

Neither aiohttp (11.5 MB resident) nor, for plain http, ``ssl`` (4.4 MB) is imported: the
client imports ``ssl`` only for an https request (the ssl checker, or a redirect to https).
The core's CheckRunner bounds every check with its timeout by cancelling it; a cancelled
request closes its connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from halo_checker_http.plugin import HttpCheck, StatusCodes, Url
from halo_core.plugin_api import CheckResult, CheckTarget
from halo_lib_http import Client, ConnectTimeout, HttpError, Response, md5_hex

if TYPE_CHECKING:  # annotations only: plain http never loads OpenSSL
    import ssl

# keepalived's User-Agent: web servers are often set up to leave it out of their access logs.
USER_AGENT = "KeepAliveClient"


@dataclass
class Peer:
    """What the connection of a response was, for :meth:`HttpChecker.inspect` (the ssl
    checker reads the server's certificate there)."""

    certificate: bytes | None = None  # DER, when the connection is TLS


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
        self.connect_timeout = float(config.connect_timeout) if config.connect_timeout else None
        self.client = Client(local_addr=str(config.bind_to) if config.bind_to is not None else None)
        self.requests = [self._prepare(url) for url in config.url]
        self._closed = False

    def _prepare(self, url: Url) -> _Request:
        headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity"}
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

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS setup of requests; may raise ``OSError``/``ValueError`` (a failed check).
        None: the client's default (the system's CAs, verified), which only a redirect to
        https uses here."""
        return None

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
        try:
            response = await self.client.request(
                self.config.method,
                request.url,
                headers=request.headers,
                tls=context,
                server_hostname=request.server_hostname,
                connect_timeout=self.connect_timeout,
                follow_redirects=self.config.follow_redirects,
            )
            # Closed on the way out: kept for the next check if it was read to its end and
            # keepalive is on, else closed (aborted if the check was cancelled).
            async with response:
                return await self._judge(request, response)
        except HttpError as exc:
            return False, f"{request.label}: {self.explain(exc)}", None
        except ValueError as exc:  # a header or URL the client refuses
            return False, f"{request.label}: {exc}", None

    async def _judge(self, request: _Request, response: Response) -> tuple[bool, str, str | None]:
        verdict = self.inspect(Peer(certificate=response.certificate))
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
            body, truncated = await response.read(self.config.max_body)
            if request.digest is not None:
                if truncated:
                    return (
                        False,
                        f"{request.label}: body larger than max_body "
                        f"({self.config.max_body} bytes): cannot check its digest",
                        None,
                    )
                got = md5_hex(body)
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

    def explain(self, exc: HttpError) -> str:
        """A short reason for a failed request."""
        if isinstance(exc, ConnectTimeout) and self.connect_timeout:
            return f"connect timed out after {self.connect_timeout:g}s"
        return str(exc)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.client.close()


def _text(body: bytes, charset: str | None) -> str:
    """The body as text for the regex: its declared charset, else UTF-8; never failing."""
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return body.decode("utf-8", errors="replace")
