"""Schema and hooks of the ``udp`` checker. The runtime lives in :mod:`.runtime`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import CheckerConfig, PluginType
from halo_core.schema import Alias, Doc, IPAddress, Pattern, Range

HEX = Pattern(r"(?:[0-9A-Fa-f]{2})*", "must be hexadecimal octets, e.g. 0a1b2c")


@dataclass(frozen=True, kw_only=True)
class UdpCheck(CheckerConfig):
    """Send one UDP datagram (keepalived's UDP_CHECK). With ``require_reply`` (or a
    ``reply`` pattern) success is a reply; without, success is that no ICMP port unreachable
    comes back within half the timeout. Inside a real server the address and port default
    to the server's."""

    connect_ip: Annotated[IPAddress | None, Doc("address to send to")] = None
    connect_port: Annotated[
        int | None, Range(1, 65535), Alias(("port",)), Doc("port to send to")
    ] = None
    bind_to: Annotated[IPAddress | None, Doc("source address")] = None
    bind_port: Annotated[int | None, Range(1, 65535), Doc("source port")] = None
    payload: Annotated[str, HEX, Doc("the datagram, as hexadecimal octets (default: empty)")] = ""
    require_reply: Annotated[bool, Doc("success needs a reply datagram")] = False
    reply: Annotated[
        str | None, HEX, Doc("the reply must start with these octets (implies require_reply)")
    ] = None
    min_reply_length: Annotated[int, Range(0, 65535), Doc("shortest acceptable reply")] = 0
    max_reply_length: Annotated[
        int | None, Range(0, 65535), Doc("longest acceptable reply (default: any)")
    ] = None

    def __check__(self) -> list[tuple[tuple[str, ...], str]]:
        if self.max_reply_length is not None and self.max_reply_length < self.min_reply_length:
            return [(("max_reply_length",), "is shorter than min_reply_length")]
        return []


def octets(text: str) -> bytes:
    return bytes.fromhex(re.sub(r"\s", "", text))


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="checker",
            name="udp",
            schema=UdpCheck,
            factory="halo_checker_udp.runtime:UdpChecker",
            summary="UDP request / reply",
        )
    ]


@hookimpl
def halo_convert_keepalived() -> list[Any]:
    from halo_checker_udp.keepalived import keywords

    return keywords()
