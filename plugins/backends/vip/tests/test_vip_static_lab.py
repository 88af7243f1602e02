"""keepalived's ``static_ipaddress`` (``global.static_ipaddress``) on real kernels: the
addresses are on the box from start to stop whatever the VRRP state, never announced,
kept by the reconcile, changed by a reload (keepalived's: those no longer listed go, new
ones come, the others are not touched), removed on stop; a line without ``dev`` is refused
with its line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from halo_backend_vip.plugin import VipGlobalOptions
from halo_tool_lab.capture import arp_packets
from halo_tool_lab.netns import Host
from halo_tool_lab.pytest_plugin import HaloFactory, LabFactory
from halo_tool_lab.testing import config_errors, load_config


def config(host: Host, work: Path, priority: int, static: str = "") -> str:
    return (
        f"global:\n  router_id: {host.name}\n  state_dir: {work}/{host.name}\n"
        f"  log_format: json\n{static}"
        "backends:\n  vip:\n    type: vip\n    reconcile_interval: 0.2\n"
        "vrrp_instances:\n  VI_1:\n    interface: eth0\n    virtual_router_id: 51\n"
        f"    priority: {priority}\n    version: 3\n    advert_int: 0.1\n"
        "    virtual_ipaddress: [192.0.2.100/24]\n"
    )


def static(*lines: str) -> str:
    return "  static_ipaddress:\n" + "".join(f"    - {line}\n" for line in lines)


def test_a_static_address_needs_its_dev() -> None:
    text = "global:\n  static_ipaddress:\n    - 203.0.113.10/32 dev eth0\n    - 203.0.113.11\n"
    assert config_errors(text) == [
        "f.yaml:4:7: global.static_ipaddress[1]: needs dev INTERFACE (it belongs to no VRRP"
        " instance)"
    ]
    good = load_config(text.replace("203.0.113.11\n", "203.0.113.11 dev eth1 scope link\n"))
    listed = good.model.global_.extensions[VipGlobalOptions].static_ipaddress
    assert [str(a.address) for a in listed] == ["203.0.113.10/32", "203.0.113.11/32"]


@pytest.mark.lab
def test_static_addresses_whatever_the_state(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    lb = lab(2)
    h1, h2 = lb.hosts
    cap = lb.capture(tmp_path / "arp.pcap", filter="arp")
    start_halo(h1, config(h1, tmp_path, 150), state={"VI_1": "MASTER"})
    first = static("203.0.113.10/32 dev eth0 scope link", "198.51.100.5/24 dev eth0")
    b = start_halo(h2, config(h2, tmp_path, 100, first), state={"VI_1": "BACKUP"})
    # a BACKUP has them (added once VRRP has started), and the reconcile (every 0.2 s)
    # leaves them
    assert b.wait_log("static_ipaddress: added"), b.log
    assert h2.has_address("203.0.113.10", "eth0") and h2.has_address("198.51.100.5"), b.log
    time.sleep(0.6)
    assert h2.has_address("203.0.113.10") and h2.has_address("198.51.100.5"), b.log
    assert not h2.has_address("192.0.2.100")

    # a reload: the one no longer listed goes, the new one comes, the other stays
    b.reload(
        config(
            h2,
            tmp_path,
            100,
            static("203.0.113.10/32 dev eth0 scope link", "203.0.113.11 dev eth0"),
        )
    )
    # (a reload is validated by a child process first: slow on a loaded machine)
    assert b.wait_log(
        r"static_ipaddress: reload: added 203\.0\.113\.11/32 dev eth0, removed 198\.51\.100\.5/24",
        timeout=60,
    ), b.log
    assert h2.has_address("203.0.113.11") and not h2.has_address("198.51.100.5"), b.log
    assert h2.has_address("203.0.113.10"), b.log

    b.stop()  # keepalived removes them on stop, and so does halo
    assert not any(h2.has_address(a) for a in ("203.0.113.10", "203.0.113.11")), b.log
    frames = cap.stop()
    announced = {str(p.target_ip) for p in arp_packets(frames) if p.gratuitous}
    assert not announced & {"203.0.113.10", "203.0.113.11", "198.51.100.5"}, announced
