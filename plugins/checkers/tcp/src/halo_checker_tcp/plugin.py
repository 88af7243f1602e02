"""Schema and hooks of the ``tcp`` checker. The runtime lives in :mod:`.runtime`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import CheckerConfig, PluginType
from halo_core.schema import Alias, Doc, IPAddress, Range


@dataclass(frozen=True, kw_only=True)
class TcpCheck(CheckerConfig):
    """Connect to a TCP port; success once the connection is established (keepalived's
    TCP_CHECK). Inside a real server the address and port default to the server's."""

    connect_ip: Annotated[IPAddress | None, Doc("address to connect to")] = None
    connect_port: Annotated[
        int | None, Range(1, 65535), Alias(("port",)), Doc("port to connect to")
    ] = None
    bind_to: Annotated[IPAddress | None, Doc("source address of the connection")] = None
    bind_port: Annotated[int | None, Range(1, 65535), Doc("source port")] = None


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="checker",
            name="tcp",
            schema=TcpCheck,
            factory="halo_checker_tcp.runtime:TcpChecker",
            summary="TCP connect",
        )
    ]


@hookimpl
def halo_convert_keepalived() -> list[Any]:
    from halo_checker_tcp.keepalived import keywords

    return keywords()
