"""Two real keepalived nodes in the lab: the reference behaviour halo is measured against.

The backup takes over Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time after the
master's last advertisement (RFC 3768 / RFC 5798), with Skew_Time = (256 - priority) / 256
* interval (VRRPv3; VRRPv2 uses (256 - priority) / 256 s, the same for a 1 s interval).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from halo_tool_lab.capture import VrrpAdvert, arp_packets, vrrp_adverts
from halo_tool_lab.keepalived import Keepalived
from halo_tool_lab.netns import Lab
from halo_tool_lab.tools import needs_tools

pytestmark = [
    pytest.mark.lab,
    pytest.mark.keepalived,
    needs_tools("keepalived"),
]

VIP = "192.0.2.100"
VRID = 51


def config(name: str, state: str, priority: int, version: int, interval: float) -> str:
    auth = (
        "    authentication {\n        auth_type PASS\n        auth_pass halo\n    }\n"
        if version == 2
        else ""
    )
    return (
        f"global_defs {{\n    router_id {name}\n    vrrp_version {version}\n}}\n"
        f"vrrp_instance VI_1 {{\n"
        f"    state {state}\n"
        f"    interface eth0\n"
        f"    virtual_router_id {VRID}\n"
        f"    priority {priority}\n"
        f"    advert_int {interval}\n"
        f"{auth}"
        f"    virtual_ipaddress {{\n        {VIP}/24\n    }}\n"
        f"}}\n"
    )


def master_down_interval(interval: float, priority: int) -> float:
    return 3 * interval + (256 - priority) / 256 * interval


@pytest.mark.parametrize(
    ("version", "interval", "tolerance"),
    [(2, 1.0, 0.3), (3, 0.1, 0.05)],
    ids=["v2-1s", "v3-100ms"],
)
def test_backup_takes_over_after_master_dies(
    lab: Callable[..., Lab], tmp_path: Path, version: int, interval: float, tolerance: float
) -> None:
    lb = lab(2, ipv6=False)
    h1, h2 = lb.hosts
    cap = lb.capture(tmp_path / "vrrp.pcap", filter="vrrp,arp")
    master = Keepalived(h1, config("h1", "MASTER", 100, version, interval), tmp_path)
    # Start the backup once the master's timer runs, so the master always wins the start.
    assert master.wait_log(r"Entering BACKUP STATE", 10), master.log
    backup = Keepalived(h2, config("h2", "BACKUP", 90, version, interval), tmp_path)
    assert h1.wait_address(VIP, timeout=master_down_interval(interval, 100) + 5), master.log
    assert backup.wait_log(r"Entering BACKUP STATE", 5), backup.log

    # Let the master advertise a few times, then kill the whole "machine".
    def master_adverts() -> list[VrrpAdvert]:
        return [a for a in vrrp_adverts(cap.frames(), vrid=VRID) if a.src == h1.ipv4]

    deadline = time.monotonic() + 3 * interval + 2
    while len(master_adverts()) < 2 and time.monotonic() < deadline:
        time.sleep(interval / 4)
    assert len(master_adverts()) >= 2
    assert not h2.has_address(VIP)
    killed = master.kill9()
    assert len(killed) >= 2, killed  # parent and VRRP child
    assert not master.running

    assert h2.wait_address(VIP, timeout=master_down_interval(interval, 90) + 3), backup.log
    time.sleep(min(interval, 0.3) + 0.1)  # the backup's first adverts and gratuitous ARPs
    frames = cap.stop()

    advs = vrrp_adverts(frames, vrid=VRID)
    from_master = [a for a in advs if a.src == h1.ipv4]
    from_backup = [a for a in advs if a.src == h2.ipv4]
    assert from_master and from_backup
    assert all(a.priority == 100 for a in from_master)  # kill -9: no priority-0 goodbye
    assert {a.src_mac for a in from_master} == {h1.mac}  # sent from the real MAC
    assert {a.version for a in advs} == {version}
    assert all(a.interval == interval and a.addresses == (IPv4Address(VIP),) for a in advs)
    assert all(a.ttl == 255 and str(a.dst) == "224.0.0.18" for a in advs)
    if version == 2:
        assert {a.auth_type for a in advs} == {1}  # simple text password
    last_master = from_master[-1]
    first_backup = from_backup[0]
    assert first_backup.time > last_master.time
    assert first_backup.priority == 90 and first_backup.src_mac == h2.mac
    takeover = first_backup.time - last_master.time
    expected = master_down_interval(interval, 90)
    print(
        f"\nVRRPv{version} advert_int {interval}: takeover {takeover:.4f} s, "
        f"expected {expected:.4f} s"
    )
    assert abs(takeover - expected) <= tolerance, (takeover, expected)

    garps = [
        a
        for a in arp_packets(frames)
        if a.gratuitous and a.sender_ip == IPv4Address(VIP) and a.time >= first_backup.time - 0.1
    ]
    assert garps and all(a.sender_mac == h2.mac for a in garps)
    backup.stop()
