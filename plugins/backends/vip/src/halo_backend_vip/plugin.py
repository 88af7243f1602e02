"""Hooks of the ``vip`` backend. Its options live in :mod:`.options`, the runtime in
:mod:`.runtime`.

This module is imported by ``halo check``: it must stay free of pyroute2 and sockets.
"""

from __future__ import annotations

from typing import Any

from halo_backend_vip.options import VipBackendConfig, VipGlobalOptions, VipInstanceOptions
from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import PluginType

__all__ = ["VipBackendConfig", "VipGlobalOptions", "VipInstanceOptions"]


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="backend",
            name="vip",
            schema=VipBackendConfig,
            factory="halo_backend_vip.runtime:VipBackend",
            summary="virtual addresses with gratuitous ARP / unsolicited NA",
            provides=frozenset({"addresses"}),
        )
    ]


@hookimpl
def halo_config_extensions() -> dict[str, type]:
    return {"vrrp_instance": VipInstanceOptions, "global": VipGlobalOptions}


@hookimpl
def halo_convert_keepalived() -> list[Any]:
    from halo_backend_vip.keepalived import keywords

    return list(keywords())
