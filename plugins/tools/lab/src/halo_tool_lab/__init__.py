"""The network-namespace lab used by the tests, the benchmarks and ``halo demo``.

* :mod:`halo_tool_lab.netns` - :class:`Lab` (hosts on a bridged segment), :class:`Host`,
  :class:`Proc`, impairments (partition, loss, unplug).
* :mod:`halo_tool_lab.capture` - AF_PACKET capture to pcap in a helper process, pcap reader
  and small VRRP / ARP / neighbour-advertisement parsers.
* :mod:`halo_tool_lab.keepalived` - run the real keepalived inside a lab host.
* :mod:`halo_tool_lab.halo` - run halo itself inside a lab host and follow its log.
* :mod:`halo_tool_lab.pytest_plugin` - the ``lab_root``, ``lab`` and ``start_halo`` fixtures.

Names are imported lazily so that ``python -m halo_tool_lab.capture`` (started inside a
namespace for every capture) stays quick to start and free of runpy warnings.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from halo_tool_lab.capture import (
        ArpPacket,
        Capture,
        Frame,
        NeighbourAdvert,
        VrrpAdvert,
        arp_packets,
        neighbour_adverts,
        read_pcap,
        vrrp_adverts,
    )
    from halo_tool_lab.halo import Halo
    from halo_tool_lab.keepalived import Keepalived, keepalived_available
    from halo_tool_lab.netns import (
        Address,
        Host,
        Impairment,
        Lab,
        LabError,
        Namespace,
        PingResult,
        Proc,
        lab_unavailable_reason,
        sweep_stale_labs,
        wait_until,
    )

_WHERE = {
    "Address": "netns",
    "Host": "netns",
    "Impairment": "netns",
    "Lab": "netns",
    "LabError": "netns",
    "Namespace": "netns",
    "PingResult": "netns",
    "Proc": "netns",
    "lab_unavailable_reason": "netns",
    "sweep_stale_labs": "netns",
    "wait_until": "netns",
    "ArpPacket": "capture",
    "Capture": "capture",
    "Frame": "capture",
    "NeighbourAdvert": "capture",
    "VrrpAdvert": "capture",
    "arp_packets": "capture",
    "neighbour_adverts": "capture",
    "read_pcap": "capture",
    "vrrp_adverts": "capture",
    "Keepalived": "keepalived",
    "Halo": "halo",
    "keepalived_available": "keepalived",
}

__all__ = [
    "Address",
    "ArpPacket",
    "Capture",
    "Frame",
    "Halo",
    "Host",
    "Impairment",
    "Keepalived",
    "Lab",
    "LabError",
    "Namespace",
    "NeighbourAdvert",
    "PingResult",
    "Proc",
    "VrrpAdvert",
    "arp_packets",
    "keepalived_available",
    "lab_unavailable_reason",
    "neighbour_adverts",
    "read_pcap",
    "sweep_stale_labs",
    "vrrp_adverts",
    "wait_until",
]


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
