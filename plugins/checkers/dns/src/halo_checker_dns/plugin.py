"""Schema and hooks of the ``dns`` checker. The runtime lives in :mod:`.runtime`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import CheckerConfig, PluginType
from halo_core.schema import Alias, Doc, IPAddress, Pattern, Range

# keepalived's DNS_CHECK types, and their numbers (RFC 1035, RFC 3596)
QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}
NAME = Pattern(
    r"\.|(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?)+",
    "must be a domain name (labels of letters, digits, _ and -) or '.'",
)


@dataclass(frozen=True, kw_only=True)
class DnsCheck(CheckerConfig):
    """Ask a DNS server one question over UDP (keepalived's DNS_CHECK); success on an
    answer to it with RCODE NOERROR. Inside a real server the address and port default to
    the server's."""

    connect_ip: Annotated[IPAddress | None, Doc("the DNS server")] = None
    connect_port: Annotated[
        int | None, Range(1, 65535), Alias(("port",)), Doc("its port (default 53)")
    ] = None
    bind_to: Annotated[IPAddress | None, Doc("source address")] = None
    query_type: Annotated[
        Literal["A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA"],
        Doc("the question's type (keepalived's type)"),
    ] = "A"
    query_name: Annotated[
        str, NAME, Doc("the name asked about (keepalived's name; default: the root, '.')")
    ] = "."


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="checker",
            name="dns",
            schema=DnsCheck,
            factory="halo_checker_dns.runtime:DnsChecker",
            summary="DNS query",
        )
    ]


@hookimpl
def halo_convert_keepalived() -> list[Any]:
    from halo_checker_dns.keepalived import keywords

    return keywords()
