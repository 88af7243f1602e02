"""Schema and hooks of the ``ping`` checker. The runtime lives in :mod:`.runtime`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import CheckerConfig, PluginType
from halo_core.schema import Doc, IPAddress, Range


@dataclass(frozen=True, kw_only=True)
class PingCheck(CheckerConfig):
    """Send an ICMP (IPv4) or ICMPv6 echo request; success on the echo reply (keepalived's
    PING_CHECK). Inside a real server the address defaults to the server's."""

    connect_ip: Annotated[IPAddress | None, Doc("address to ping")] = None
    bind_to: Annotated[IPAddress | None, Doc("source address")] = None
    size: Annotated[int, Range(0, 1400), Doc("octets of payload in the echo request")] = 16


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="checker",
            name="ping",
            schema=PingCheck,
            factory="halo_checker_ping.runtime:PingChecker",
            summary="ICMP / ICMPv6 echo",
        )
    ]


@hookimpl
def halo_convert_keepalived() -> list[Any]:
    from halo_checker_ping.keepalived import keywords

    return keywords()
