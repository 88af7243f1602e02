"""Sync groups, interface tracking and file tracking between halo nodes on real kernels.

- A sync group moves together: when one member of the master's group faults (its tracked
  interface goes down), every member goes, and the backup's group takes over as a whole.
- Interface tracking with a weight lowers the priority instead (no FAULT).
- The instance's own interface losing carrier puts it in FAULT (keepalived's rule).
- track_file: the number in the file times the weight moves the priority.
"""

from __future__ import annotations

import time
from pathlib import Path

from halo_tool_lab.halo import Halo
from halo_tool_lab.netns import Host, Lab, wait_until
from halo_tool_lab.pytest_plugin import HaloFactory

V3 = "    version: 3\n    advert_int: 0.1\n"


def instance(name: str, vrid: int, prio: int, vip: str, dev: str = "eth0", extra: str = "") -> str:
    return (
        f"  {name}:\n    interface: {dev}\n    virtual_router_id: {vrid}\n    priority: {prio}\n"
        f"{V3}    virtual_ipaddress: [{vip}/24]\n{extra}"
    )


def start(start_halo: HaloFactory, host: Host, work: Path, text: str) -> Halo:
    return start_halo(host, f"global: {{state_dir: {work}/{host.name}, log_format: json}}\n" + text)


def add_second_link(lab: Lab, host: Host) -> str:
    """A second interface on the host (a veth whose peer stays in the host): the tracked
    uplink. Returns the peer, whose state drives the tracked end's carrier."""
    host.ip("link", "add", "up0", "type", "veth", "peer", "name", "up1")
    host.ip("link", "set", "up0", "up")
    host.ip("link", "set", "up1", "up")
    return "up1"


def test_sync_group_moves_together_on_interface_fault(
    start_halo: HaloFactory, tmp_path: Path
) -> None:
    with Lab(["a", "b"]) as lab:
        a, b = lab.hosts
        add_second_link(lab, a)
        track = "    track:\n      - interface: up0\n"
        groups = "vrrp_sync_groups:\n  G1:\n    group: [VI_1, VI_2]\n"
        halo_a = start(
            start_halo, a, tmp_path,
            "vrrp_instances:\n" + instance("VI_1", 51, 150, "192.0.2.100", extra=track)
            + instance("VI_2", 52, 150, "192.0.2.110") + groups,
        )  # fmt: skip
        assert wait_until(lambda: a.has_address("192.0.2.100") and a.has_address("192.0.2.110"), 10)
        halo_b = start(
            start_halo, b, tmp_path,
            "vrrp_instances:\n" + instance("VI_1", 51, 100, "192.0.2.100")
            + instance("VI_2", 52, 100, "192.0.2.110") + groups,
        )  # fmt: skip
        time.sleep(1)
        assert not b.has_address("192.0.2.100") and not b.has_address("192.0.2.110")
        # The uplink VI_1 tracks (weight 0) goes down: VI_1 faults and VI_2 follows it.
        a.ip("link", "set", "up1", "down")
        assert wait_until(lambda: b.has_address("192.0.2.100") and b.has_address("192.0.2.110"), 5)
        assert not a.has_address("192.0.2.100") and not a.has_address("192.0.2.110")
        msgs = halo_a.messages()
        assert any(m.startswith("VI_1: entering FAULT state") for m in msgs), msgs
        assert any(
            m.startswith("VI_2: entering FAULT state (sync group G1: VI_1 is FAULT)") for m in msgs
        )
        assert any(m == "G1: group entering FAULT state" for m in msgs)
        assert any(m == "G1: group entering MASTER state" for m in halo_b.messages())
        # The uplink comes back: the group preempts back together.
        a.ip("link", "set", "up1", "up")
        assert wait_until(lambda: a.has_address("192.0.2.100") and a.has_address("192.0.2.110"), 5)
        assert wait_until(
            lambda: not b.has_address("192.0.2.100") and not b.has_address("192.0.2.110"), 5
        )


def test_interface_weight_file_weight_and_own_carrier(
    start_halo: HaloFactory, tmp_path: Path
) -> None:
    with Lab(["a", "b"]) as lab:
        a, b = lab.hosts
        add_second_link(lab, a)
        prio_file = tmp_path / "prio"
        prio_file.write_text("0\n")
        track = (
            "    track:\n      - interface: up0\n        weight: -60\n"
            f"      - file: {prio_file}\n        weight: 10\n"
        )
        halo_a = start(
            start_halo,
            a,
            tmp_path,
            "vrrp_instances:\n" + instance("VI_1", 51, 150, "192.0.2.100", extra=track),
        )
        assert wait_until(lambda: a.has_address("192.0.2.100"), 10)
        start(
            start_halo, b, tmp_path, "vrrp_instances:\n" + instance("VI_1", 51, 100, "192.0.2.100")
        )
        time.sleep(0.5)
        # Weighted interface down: 150 - 60 = 90 < 100, b preempts; no FAULT on a.
        a.ip("link", "set", "up1", "down")
        assert wait_until(lambda: b.has_address("192.0.2.100"), 5)
        assert any("priority 150 -> 90" in m for m in halo_a.messages())
        assert not any("entering FAULT" in m for m in halo_a.messages())
        # The file says 2: 90 + 2 x 10 = 110 > 100, a preempts back (polled every second).
        prio_file.write_text("2\n")
        assert wait_until(lambda: a.has_address("192.0.2.100"), 5)
        assert any("priority 90 -> 110" in m for m in halo_a.messages())
        # a's own interface loses carrier: FAULT, b takes over.
        cable = lab.unplug(a)
        assert wait_until(lambda: b.has_address("192.0.2.100"), 5)
        assert wait_until(
            lambda: any(m.startswith("VI_1: entering FAULT state") for m in halo_a.messages()), 5
        )
        cable.remove()
        assert wait_until(lambda: a.has_address("192.0.2.100"), 10)
