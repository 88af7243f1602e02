"""Schema and hooks of the ``ipvs`` backend. The runtime lives in :mod:`.runtime`.

This module is imported by every ``halo`` command: no pyroute2 here (``halo ipvs`` imports
it when it runs).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Annotated, Any

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import BackendConfig, PluginType
from halo_core.schema import Doc, IPAddress, Range, Seconds


@dataclass(frozen=True, kw_only=True)
class IpvsTimeouts:
    """The kernel's connection timeouts for every IPVS service (keepalived's
    ``lvs_timeouts``, ``ipvsadm --set``); an option left out keeps the kernel's value."""

    tcp: Annotated[Seconds | None, Range(1, 2**31), Doc("established TCP connections")] = None
    tcp_fin: Annotated[Seconds | None, Range(1, 2**31), Doc("TCP after a FIN")] = None
    udp: Annotated[Seconds | None, Range(1, 2**31), Doc("UDP flows")] = None


@dataclass(frozen=True, kw_only=True)
class IpvsSyncDaemon:
    """The kernel's IPVS connection sync daemon (keepalived's ``lvs_sync_daemon``): the
    master daemon while ``vrrp_instance`` is MASTER, the backup daemon otherwise, so the
    new master already knows the connections when a failover happens; without
    ``vrrp_instance``, both run as long as halo does."""

    interface: Annotated[str, Doc("interface the sync messages are sent and received on")]
    vrrp_instance: Annotated[
        str | None, Doc("the VRRP instance whose state picks master or backup daemon")
    ] = None
    syncid: Annotated[
        int | None,
        Range(0, 255),
        Doc("sync id shared by the pair (default: the instance's virtual_router_id, or 0)"),
    ] = None
    maxlen: Annotated[
        int | None, Range(1, 65507), Doc("largest sync message (default: the interface's MTU)")
    ] = None
    mcast_group: Annotated[
        IPAddress | None, Doc("multicast group of the sync messages (default 224.0.0.81)")
    ] = None
    mcast_port: Annotated[int | None, Range(1, 65535), Doc("their UDP port (default 8848)")] = None
    mcast_ttl: Annotated[int | None, Range(1, 255), Doc("their TTL (default 1)")] = None


@dataclass(frozen=True, kw_only=True)
class IpvsBackendConfig(BackendConfig):
    """keepalived's ``virtual_server`` on the kernel's IP Virtual Server, through generic
    netlink. The kernel's table is reconciled with the pools' states: only the difference
    is applied, a service that already matches is left alone (so a restart keeps every
    connection), and services halo does not own are never touched. Ownership: the services
    the config declares, recorded in a state file so that a later run can remove the ones
    a new config no longer has."""

    virtual_servers: Annotated[
        list[str] | None,
        Doc("names (or ADDRESS:PORT labels) of the virtual servers to run (default: all)"),
    ] = None
    flush_on_stop: Annotated[
        bool,
        Doc(
            "remove halo's services when halo stops (never anyone else's); by default they"
            " stay, so that a restart drops no connection"
        ),
    ] = False
    reconcile_interval: Annotated[
        Seconds,
        Range(0, 3600),
        Doc(
            "compare every owned service with the kernel this often, repairing changes made"
            " behind halo's back and retrying failed updates (0: never)"
        ),
    ] = Seconds(5.0)
    state_file: Annotated[
        str | None,
        Doc("where the owned services are recorded (default: STATE_DIR/ipvs-NAME.json)"),
    ] = None
    netlink_timeout: Annotated[
        Seconds, Range(0.1, 300), Doc("time limit of one netlink request")
    ] = Seconds(5.0)
    connection_timeouts: Annotated[
        IpvsTimeouts | None, Doc("the kernel's IPVS connection timeouts, set at start")
    ] = None
    sync_daemon: Annotated[
        IpvsSyncDaemon | None, Doc("run the IPVS connection sync daemon, following VRRP")
    ] = None


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="backend",
            name="ipvs",
            schema=IpvsBackendConfig,
            factory="halo_backend_ipvs.runtime:IpvsBackend",
            summary="IPVS virtual services (keepalived's virtual_server), reconciled",
        )
    ]


@hookimpl
def halo_add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "ipvs",
        help="show the kernel's IPVS table (like ipvsadm -Ln)",
        description="Print the kernel's IPVS virtual services and their real servers in"
        " the format of ipvsadm -Ln (numeric, same order), whoever made them. Reads the"
        " table through generic netlink; needs root (CAP_NET_ADMIN) and the ip_vs kernel"
        " module loaded.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=_cmd_ipvs)


def _cmd_ipvs(args: argparse.Namespace) -> int:
    from halo_backend_ipvs.runtime import show_table

    return show_table(as_json=args.json)


@hookimpl
def halo_convert_keepalived() -> list[Any]:
    from halo_backend_ipvs.keepalived import keywords

    return list(keywords())
