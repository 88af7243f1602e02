"""The ``vip`` backend's options: its own and those it adds to VRRP instances and to ``global``.

Apart from :mod:`.plugin` (the hooks), so that the VRRP process, which reads these in its
configuration, imports neither the hooks nor pluggy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from halo_core.config.model import VirtualAddress
from halo_core.plugin_api import BackendConfig
from halo_core.schema import Alias, Doc, Range, Seconds


@dataclass(frozen=True, kw_only=True)
class VipBackendConfig(BackendConfig):
    """Put each VRRP master's virtual addresses (``virtual_ipaddress`` and
    ``virtual_ipaddress_excluded``) on its interfaces and announce them with gratuitous ARP
    (IPv4) and unsolicited neighbour advertisements (IPv6); withdraw them on leaving MASTER.
    The announcement knobs are keepalived's ``global_defs`` ones (``vrrp_`` prefix optional).
    Created automatically with these defaults when an instance has virtual addresses."""

    garp_master_delay: Annotated[
        Seconds,
        Range(0, 3600),
        Alias(("vrrp_garp_master_delay",)),
        Doc(
            "delay of the second burst of announcements after becoming MASTER (0: no second"
            " burst); an instance's own garp_master_delay wins"
        ),
    ] = Seconds(5.0)
    garp_master_repeat: Annotated[
        int,
        Range(0, 255),
        Alias(("vrrp_garp_master_repeat",)),
        Doc("announcements per address in each burst (0: never announce)"),
    ] = 5
    garp_master_refresh: Annotated[
        Seconds,
        Range(0, 86400),
        Alias(("vrrp_garp_master_refresh",)),
        Doc("re-announce periodically while MASTER, this often (0: never)"),
    ] = Seconds(0.0)
    garp_master_refresh_repeat: Annotated[
        int,
        Range(1, 255),
        Alias(("vrrp_garp_master_refresh_repeat",)),
        Doc("announcements per address in each refresh"),
    ] = 1
    garp_lower_prio_delay: Annotated[
        Seconds | None,
        Range(0, 3600),
        Alias(("vrrp_garp_lower_prio_delay",)),
        Doc(
            "after the announcements for a lower-priority master heard, another set this much"
            " later (default: garp_master_delay; 0: none)"
        ),
    ] = None
    garp_lower_prio_repeat: Annotated[
        int | None,
        Range(0, 255),
        Alias(("vrrp_garp_lower_prio_repeat",)),
        Doc(
            "announcements per address when a MASTER must announce again at once: it heard a"
            " lower-priority master, i.e. a split brain healed (default: garp_master_repeat;"
            " 0: don't)"
        ),
    ] = None
    garp_interval: Annotated[
        Seconds,
        Range(0, 1),
        Alias(("vrrp_garp_interval",)),
        Doc("pause between two gratuitous ARPs of a burst (0: back to back)"),
    ] = Seconds(0.0)
    gna_interval: Annotated[
        Seconds,
        Range(0, 1),
        Alias(("vrrp_gna_interval",)),
        Doc("pause between two unsolicited neighbour advertisements of a burst (0: back to back)"),
    ] = Seconds(0.0)
    reconcile_interval: Annotated[
        Seconds,
        Range(0, 3600),
        Doc(
            "compare the kernel's addresses with the wanted ones this often, on top of reacting"
            " to address-deletion events at once (0: events only)"
        ),
    ] = Seconds(5.0)
    promote_secondaries: Annotated[
        bool,
        Doc(
            "set net.ipv4.conf.DEV.promote_secondaries while halo manages IPv4 addresses on DEV"
            " (restored on stop), so that removing a VIP that happens to be the primary address"
            " of its subnet does not make the kernel drop the other addresses of that subnet"
        ),
    ] = True


@dataclass(frozen=True, kw_only=True)
class VipInstanceOptions:
    """What this backend adds to every VRRP instance (written among the instance's keys):
    keepalived's instance-level announcement settings, each overriding the vip backend's
    setting of the same name for this instance."""

    garp_master_delay: Annotated[
        Seconds | None, Range(0, 3600), Doc("delay of the second burst after becoming MASTER")
    ] = None
    garp_master_repeat: Annotated[
        int | None, Range(0, 255), Doc("announcements per address in each burst")
    ] = None
    garp_master_refresh: Annotated[
        Seconds | None, Range(0, 86400), Doc("re-announce this often while MASTER (0: never)")
    ] = None
    garp_master_refresh_repeat: Annotated[
        int | None, Range(1, 255), Doc("announcements per address in each refresh")
    ] = None
    garp_lower_prio_delay: Annotated[
        Seconds | None,
        Range(0, 3600),
        Doc("delay of the second set after hearing a lower-priority master"),
    ] = None
    garp_lower_prio_repeat: Annotated[
        int | None,
        Range(0, 255),
        Doc("announcements per address after hearing a lower-priority master"),
    ] = None
    garp_interval: Annotated[
        Seconds | None, Range(0, 1), Doc("pause between two gratuitous ARPs of a burst")
    ] = None
    gna_interval: Annotated[
        Seconds | None,
        Range(0, 1),
        Doc("pause between two unsolicited neighbour advertisements of a burst"),
    ] = None


@dataclass(frozen=True, kw_only=True)
class VipGlobalOptions:
    """What this backend adds to the ``global:`` settings: keepalived's ``static_ipaddress``."""

    static_ipaddress: Annotated[
        list[VirtualAddress],
        Doc(
            "addresses added when halo starts, whatever the VRRP states, and removed when it"
            " stops; never announced (keepalived's static_ipaddress). Each names its dev"
        ),
    ] = field(default_factory=list)

    def __check__(self) -> list[tuple[tuple[str | int, ...], str]]:
        return [
            (("static_ipaddress", i), "needs dev INTERFACE (it belongs to no VRRP instance)")
            for i, address in enumerate(self.static_ipaddress)
            if address.dev is None
        ]
