"""Schema and hooks of the ``http`` checker. The runtime (and its HTTP client, halo_lib_http)
lives in :mod:`.runtime`, imported only when a config uses the type, so ``halo check`` stays
light."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import CheckerConfig, PluginType
from halo_core.schema import Alias, Doc, IPAddress, Length, Pattern, Range, Seconds

Problems = list[tuple[tuple[str | int, ...], str]]

# keepalived accepts status codes 100 to 599 (check_http.h HTTP_STATUS_CODE_MIN/MAX).
STATUS_MIN, STATUS_MAX = 100, 599
MAX_BODY, MAX_BODY_LIMIT = 1 << 20, 1 << 30
# What a header name may be (an HTTP token), and what no header value may hold.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\r\n\x00]")
_STATUS_PATTERN = r"^\s*[0-9]{3}(-[0-9]{3})?([\s,]+[0-9]{3}(-[0-9]{3})?)*\s*$"


@dataclass(frozen=True)
class StatusCodes:
    """Accepted HTTP status codes: ``200``, ``"200-299"``, or keepalived's form with several
    codes and ranges in one string, ``"200-299 400-499 503"``."""

    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, value: Any) -> StatusCodes:
        if isinstance(value, bool):  # a YAML `yes` is not a status code
            raise ValueError(f"must be a status code or range, not {value!r}")
        if isinstance(value, int):
            words = [str(value)]
        elif isinstance(value, str):
            words = value.replace(",", " ").split()
        else:
            raise ValueError(
                f"must be a status code or range like 200 or '200-299', not {type(value).__name__}"
            )
        if not words:
            raise ValueError("must not be empty")
        ranges = []
        for word in words:
            low, sep, high = word.partition("-")
            if not low.isdigit() or (sep and not high.isdigit()):
                raise ValueError(f"{word!r} is not a status code or range like 200 or '200-299'")
            lo, hi = int(low), int(high) if sep else int(low)
            if not STATUS_MIN <= lo <= hi <= STATUS_MAX:
                raise ValueError(
                    f"{word!r} must be codes from {STATUS_MIN} to {STATUS_MAX}, low to high"
                )
            ranges.append((lo, hi))
        return cls(tuple(ranges))

    @classmethod
    def __json_schema__(cls) -> dict[str, Any]:
        return {
            "anyOf": [
                {"type": "integer", "minimum": STATUS_MIN, "maximum": STATUS_MAX},
                {"type": "string", "pattern": _STATUS_PATTERN},
            ]
        }

    def __contains__(self, status: object) -> bool:
        return isinstance(status, int) and any(lo <= status <= hi for lo, hi in self.ranges)

    def __str__(self) -> str:
        return " ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges)


DEFAULT_STATUS = StatusCodes(((200, 299),))  # keepalived's default


@dataclass(frozen=True, kw_only=True)
class Url:
    """One URL to request (keepalived's ``url`` block). Every URL of a check must pass."""

    path: Annotated[
        str,
        Pattern(r"/\S*", "must be a path starting with / (no spaces), e.g. /health?full=1"),
        Doc("path and query to request"),
    ] = "/"
    status_code: Annotated[
        StatusCodes | list[StatusCodes],
        Doc("accepted status codes and ranges, e.g. [200, '300-399'] (default 200-299)"),
    ] = DEFAULT_STATUS
    digest: Annotated[
        str | None,
        Pattern(r"[0-9a-fA-F]{32}", "must be 32 hexadecimal digits (an MD5 digest)"),
        Doc("MD5 of the body in hex, as keepalived's genhash prints it"),
    ] = None
    regex: Annotated[
        str | None, Doc("a regular expression (Python syntax) the body must contain")
    ] = None
    regex_no_match: Annotated[
        bool, Doc("reverse the regex: a match fails the check (keepalived's regex_no_match)")
    ] = False
    virtualhost: Annotated[
        str | None, Doc("Host header for this URL (default: the check's virtualhost)")
    ] = None

    @property
    def statuses(self) -> StatusCodes:
        """``status_code`` as one set of ranges."""
        if isinstance(self.status_code, StatusCodes):
            return self.status_code
        return StatusCodes(tuple(r for codes in self.status_code for r in codes.ranges))

    def __check__(self) -> Problems:
        problems: Problems = []
        if isinstance(self.status_code, list) and not self.status_code:
            problems.append((("status_code",), "must list at least one status code"))
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                problems.append((("regex",), f"not a valid regular expression: {exc}"))
        elif self.regex_no_match:
            problems.append((("regex_no_match",), "needs a regex"))
        return problems


HTTP_METHODS = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]


@dataclass(frozen=True, kw_only=True)
class HttpCheck(CheckerConfig):
    """Request one or more URLs over HTTP; success when every response has an accepted status
    and, if asked, the expected body digest or a regex match (keepalived's HTTP_GET). Inside a
    real server the address and port default to the server's."""

    connect_ip: Annotated[IPAddress | None, Doc("address to connect to")] = None
    connect_port: Annotated[
        int | None,
        Range(1, 65535),
        Alias(("port",)),
        Doc("port to connect to (default: the real server's, else 80)"),
    ] = None
    bind_to: Annotated[
        IPAddress | None, Alias(("bindto",)), Doc("source address of the connections")
    ] = None
    connect_timeout: Annotated[
        Seconds | None,
        Range(0.001, 3600),
        Doc("limit on establishing the connection (default: only the check's timeout)"),
    ] = None
    virtualhost: Annotated[
        str | None, Doc("Host header to send (default: the address and port connected to)")
    ] = None
    url: Annotated[
        list[Url], Alias(("urls",)), Length(min=1), Doc("URLs to request (default: just /)")
    ] = field(default_factory=lambda: [Url()])
    method: Annotated[HTTP_METHODS, Doc("request method")] = "GET"
    headers: Annotated[
        dict[str, str],
        Doc("extra request headers (default User-Agent: KeepAliveClient, as keepalived)"),
    ] = field(default_factory=dict)
    max_body: Annotated[
        int,
        Range(0),
        Doc("read at most this many bytes of a body for digest and regex (at most 1 GiB)"),
    ] = MAX_BODY
    follow_redirects: Annotated[
        bool, Doc("follow 3xx redirects (keepalived does not: a redirect is judged by status)")
    ] = False
    keepalive: Annotated[
        bool, Doc("keep the connection open for the next check instead of a new one per check")
    ] = False

    def __check__(self) -> Problems:
        problems: Problems = []
        if self.max_body > MAX_BODY_LIMIT:
            # Checked here, not with Range, to print the bound as a number of bytes.
            problems.append((("max_body",), f"must be at most {MAX_BODY_LIMIT} (1 GiB)"))
        for name, value in self.headers.items():
            if name.lower() == "host":
                problems.append((("headers", name), "set the Host header with virtualhost"))
            elif not _TOKEN.fullmatch(name):
                problems.append((("headers", name), "is not a header name (letters, digits, -)"))
            elif _CONTROL.search(value):
                problems.append((("headers", name), "must be one line (no CR, LF or NUL)"))
        for where, host in [(("virtualhost",), self.virtualhost)] + [
            (("url", i, "virtualhost"), url.virtualhost) for i, url in enumerate(self.url)
        ]:
            if host is not None and (not host or _CONTROL.search(host) or " " in host):
                problems.append((where, "must be a host name, with a port if need be"))
        if (
            self.connect_ip is not None
            and self.bind_to is not None
            and self.connect_ip.version != self.bind_to.version
        ):
            problems.append((("bind_to",), f"must be an IPv{self.connect_ip.version} address"))
        return problems


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="checker",
            name="http",
            schema=HttpCheck,
            factory="halo_checker_http.runtime:HttpChecker",
            summary="HTTP request: status, body digest or regex",
        )
    ]


@hookimpl
def halo_convert_keepalived() -> list[Any]:
    from halo_checker_http.keepalived import keywords

    return keywords()
