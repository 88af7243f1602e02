"""Schema and hooks of the ``bgp`` backend. The runtime lives in :mod:`.runtime`.

This module is imported by ``halo check``: it must stay free of processes and sockets.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import BackendConfig, PluginType
from halo_core.schema import Alias, Doc, IPAddress, Length, Range, Seconds

Prefix = ipaddress.IPv4Network | ipaddress.IPv6Network
Family = Literal["ipv4", "ipv6"]

COMMUNITY = re.compile(r"^(\d{1,5}):(\d{1,5})$")
WELL_KNOWN_COMMUNITIES = ("no-export", "no-advertise", "no-export-subconfed", "blackhole")
ASN_MAX = 4294967295


@dataclass(frozen=True, kw_only=True)
class BgpPeer:
    """One BGP neighbour (a router) of the ExaBGP speaker."""

    address: Annotated[IPAddress, Doc("the router's address")]
    peer_as: Annotated[int, Range(1, ASN_MAX), Alias(("as", "remote_as")), Doc("its AS number")]
    local_address: Annotated[
        IPAddress, Doc("this node's address the session starts from (same family as address)")
    ]
    families: Annotated[
        list[Family] | None,
        Doc("address families of the session (default: the family of address)"),
    ] = None
    passive: Annotated[bool, Doc("wait for the router to connect instead of connecting")] = False
    md5_password: Annotated[str | None, Doc("TCP MD5 signature password (RFC 2385)")] = None
    hold_time: Annotated[
        int | None, Range(3, 65535), Doc("override the backend's hold_time for this peer")
    ] = None

    def session_families(self) -> list[Family]:
        if self.families:
            return list(dict.fromkeys(self.families))
        return ["ipv4" if self.address.version == 4 else "ipv6"]


@dataclass(frozen=True, kw_only=True)
class BgpBackendConfig(BackendConfig):
    """Announce service addresses as host routes over BGP through a real speaker: ExaBGP,
    run by halo as a child process, or an FRR already running on the node.

    ``mode: follow`` announces the virtual addresses of VRRP instances while they are
    MASTER (/32, /128); ``mode: anycast`` announces ``prefixes`` while every listed check is
    up and every listed virtual server has quorum."""

    speaker: Annotated[
        Literal["exabgp", "frr"],
        Doc(
            "exabgp: halo runs ExaBGP with a generated configuration and drives it through its"
            " API; frr: halo adds and removes `network` statements in a running FRR (vtysh)"
        ),
    ] = "exabgp"
    mode: Annotated[
        Literal["follow", "anycast"],
        Doc(
            "follow: announce VRRP instances' addresses while MASTER; anycast: announce"
            " prefixes while the listed checks and virtual servers are healthy"
        ),
    ] = "follow"
    local_as: Annotated[int, Range(1, ASN_MAX), Alias(("asn",)), Doc("this node's AS number")]
    router_id: Annotated[
        ipaddress.IPv4Address | None,
        Doc("BGP identifier (exabgp; default: the first IPv4 local_address of the peers)"),
    ] = None
    peers: Annotated[
        list[BgpPeer],
        Alias(("neighbors", "neighbours")),
        Length(max=64),
        Doc("the routers (exabgp; with frr the neighbours are FRR's own configuration)"),
    ] = field(default_factory=list)
    hold_time: Annotated[
        int,
        Range(3, 65535),
        Doc("BGP hold time in seconds (exabgp): a dead node's routes go after this long"),
    ] = 9
    instances: Annotated[
        list[str] | None,
        Doc("follow: the VRRP instances to follow (default: every instance with addresses)"),
    ] = None
    prefixes: Annotated[
        list[Prefix],
        Length(max=1000),
        Doc("anycast: the prefixes to announce, e.g. 203.0.113.10/32 (a bare address is /32)"),
    ] = field(default_factory=list)
    checks: Annotated[
        list[str], Doc("anycast: announce only while each of these named checks is up")
    ] = field(default_factory=list)
    virtual_servers: Annotated[
        list[str],
        Doc("anycast: announce only while each of these virtual servers has quorum"),
    ] = field(default_factory=list)
    next_hop: Annotated[
        list[IPAddress],
        Length(max=2),
        Doc("next hop of the routes, at most one per family (default: this node, next-hop self)"),
    ] = field(default_factory=list)
    communities: Annotated[
        list[str],
        Length(max=32),
        Doc("standard communities to attach, ASN:VALUE or no-export, no-advertise…"),
    ] = field(default_factory=list)
    med: Annotated[
        int | None, Range(0, ASN_MAX), Doc("MULTI_EXIT_DISC: lower is preferred by the routers")
    ] = None
    local_preference: Annotated[
        int | None, Range(0, ASN_MAX), Doc("LOCAL_PREF (iBGP peers only): higher is preferred")
    ] = None
    as_path_prepend: Annotated[
        int,
        Range(0, 16),
        Doc("prepend local_as this many extra times: a longer path makes this node a standby"),
    ] = 0
    exabgp: Annotated[
        str | None,
        Doc("the exabgp program (default: the one installed with this plugin, then PATH)"),
    ] = None
    vtysh: Annotated[
        list[str],
        Length(min=1, max=16),
        Doc("frr: the vtysh command, e.g. [vtysh, --vty_socket, /run/frr/blue]"),
    ] = field(default_factory=lambda: ["vtysh"])
    restart_delay: Annotated[
        Seconds, Range(0.1, 60), Doc("wait this long before restarting a speaker that died")
    ] = Seconds(1.0)
    restart_limit: Annotated[
        int,
        Range(1, 100),
        Doc(
            "failed restarts in a row before halo gives up for now: followed instances go to"
            " FAULT, anycast stops announcing (halo keeps retrying every 10 s)"
        ),
    ] = 3
    check_interval: Annotated[
        Seconds,
        Range(0.1, 3600),
        Doc("frr: how often to check that bgpd answers and still has halo's networks"),
    ] = Seconds(2.0)
    withdraw_grace: Annotated[
        Seconds,
        Range(0, 30),
        Doc("on stop, wait this long after the withdrawals before stopping the speaker"),
    ] = Seconds(0.5)

    def __check__(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.speaker == "exabgp":
            if not self.peers:
                problems.append((("peers",), "the exabgp speaker needs at least one peer"))
            for i, peer in enumerate(self.peers):
                if peer.local_address.version != peer.address.version:
                    problems.append(
                        (("peers", i, "local_address"), "address family differs from address")
                    )
            v4 = [p.local_address for p in self.peers if p.local_address.version == 4]
            if self.peers and self.router_id is None and not v4:
                problems.append((("router_id",), "needed when no peer has an IPv4 local_address"))
        if self.mode == "anycast":
            if not self.prefixes:
                problems.append((("prefixes",), "anycast mode needs the prefixes to announce"))
            if self.instances is not None:
                problems.append((("instances",), "only for mode: follow"))
        else:
            for key in ("prefixes", "checks", "virtual_servers"):
                if getattr(self, key):
                    problems.append(((key,), "only for mode: anycast"))
        if len({a.version for a in self.next_hop}) != len(self.next_hop):
            problems.append((("next_hop",), "at most one address per family"))
        for i, community in enumerate(self.communities):
            m = COMMUNITY.match(community)
            ok = community in WELL_KNOWN_COMMUNITIES or (
                m is not None and max(int(m[1]), int(m[2])) <= 65535
            )
            if not ok:
                problems.append(
                    (
                        ("communities", i),
                        f"{community!r} is not ASN:VALUE (0-65535 each) nor one of "
                        + ", ".join(WELL_KNOWN_COMMUNITIES),
                    )
                )
        return problems


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="backend",
            name="bgp",
            schema=BgpBackendConfig,
            factory="halo_backend_bgp.runtime:BgpBackend",
            summary="service addresses as BGP host routes (ExaBGP or FRR): follow VRRP, or anycast",
        )
    ]
