"""Schema and hooks of the ``nftables`` backend. The runtime lives in :mod:`.runtime`.

This module is imported by every ``halo`` command, ``halo check`` included: it declares the
schema and nothing else (no subprocess, no JSON building).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import BackendConfig, PluginType
from halo_core.schema import Doc, IPAddress, Length, Pattern, Range, Seconds


@dataclass(frozen=True, kw_only=True)
class NftablesBackendConfig(BackendConfig):
    """Load balancing with nftables alone: DNAT of each virtual service to its real servers
    in a table halo owns (family ``inet``), changed only by atomic ``nft -j -f -``
    transactions. No other table is ever read for writing, flushed or deleted.

    Schedulers: ``rr``, ``wrr`` (``numgen inc`` over weighted slots), ``random`` (``numgen
    random``), ``sh``/``mh``/``hash`` and any service with ``persistence_timeout`` (``jhash``
    of the client address over consistent buckets), ``fo`` (the heaviest server). The
    others (``wlc``, ``lc``, …) need connection counts nftables does not have: they run as
    ``wrr`` (``lc`` as ``rr``), which the log says once. Only ``lb_kind: NAT`` can be done
    with DNAT; ``DR`` and ``TUN`` services are reported and left out, and so are virtual
    servers with a ``group`` (keepalived's ``virtual_server_group``). IPVS-wide settings
    have no nftables counterpart: connection timeouts (``lvs_timeouts``) are conntrack's,
    and there is no connection sync daemon (``lvs_sync_daemon``; use conntrackd): both are
    options of the ipvs backend only. ``lb_flags`` are ignored."""

    table: Annotated[
        str,
        Pattern(
            r"[A-Za-z][A-Za-z0-9_]{0,63}",
            "must be a letter followed by up to 63 letters, digits or _",
        ),
        Doc("name of halo's table (family inet); nothing outside it is ever changed"),
    ] = "halo"
    virtual_servers: Annotated[
        list[str] | None,
        Doc("names (or ADDRESS:PORT labels) of the virtual servers to balance (default: all)"),
    ] = None
    masquerade: Annotated[
        bool,
        Doc(
            "SNAT balanced connections to the outgoing interface's address, for topologies"
            " where the real servers' replies would not come back through this host"
        ),
    ] = False
    snat_to: Annotated[
        list[IPAddress],
        Length(max=2),
        Doc("SNAT balanced connections to this address instead (at most one per family)"),
    ] = field(default_factory=list)
    hash_buckets: Annotated[
        int,
        Range(1, 4096),
        Doc(
            "buckets of the source-address hash (sh, persistence): more spread weights more"
            " finely, at the cost of a larger map"
        ),
    ] = 64
    empty_service: Annotated[
        Literal["reject", "drop"],
        Doc(
            "new connections to a service without any usable real server: refused at once"
            " (TCP reset, ICMP port unreachable: needs reject in prerouting, in kernels since"
            " 2019) or dropped"
        ),
    ] = "reject"
    vip_firewall: Annotated[
        bool,
        Doc(
            "drop traffic addressed to the VIPs of a VRRP instance that is MASTER without"
            " owning them (priority < 255), like keepalived without accept mode"
        ),
    ] = False
    accept_instances: Annotated[
        list[str],
        Doc("VRRP instances in accept mode: the VIP firewall leaves their addresses alone"),
    ] = field(default_factory=list)
    reconcile_interval: Annotated[
        Seconds,
        Range(0, 3600),
        Doc(
            "read the table back this often and rebuild it when it was changed or deleted"
            " behind halo's back; a failed transaction is retried at the same pace (0: never)"
        ),
    ] = Seconds(5.0)
    startup_grace: Annotated[
        Seconds,
        Range(0, 60),
        Doc(
            "at start, wait at most this long for every service's state before the first"
            " rebuild (a table kept from the previous run stays untouched meanwhile)"
        ),
    ] = Seconds(2.0)
    keep_on_stop: Annotated[
        bool,
        Doc(
            "leave the table in place when halo stops (connections keep their NAT; the next"
            " start replaces it atomically); by default it is deleted"
        ),
    ] = False
    nft: Annotated[str, Doc("the nft program")] = "nft"
    nft_timeout: Annotated[Seconds, Range(0.1, 300), Doc("time limit of one nft run")] = Seconds(
        10.0
    )

    def __check__(self) -> list[tuple[tuple[str, ...], str]]:
        problems: list[tuple[tuple[str, ...], str]] = []
        if self.masquerade and self.snat_to:
            problems.append((("snat_to",), "use either masquerade or snat_to, not both"))
        if len({a.version for a in self.snat_to}) != len(self.snat_to):
            problems.append((("snat_to",), "at most one address per family"))
        return problems


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="backend",
            name="nftables",
            schema=NftablesBackendConfig,
            factory="halo_backend_nftables.runtime:NftablesBackend",
            summary="load balancing with nftables DNAT (atomic JSON transactions)",
        )
    ]
