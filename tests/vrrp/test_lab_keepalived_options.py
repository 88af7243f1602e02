"""keepalived's VRRP options that real configurations use, on real kernels:

- ``use_vmac``: a macvlan ``vrrp.VRID`` with the virtual MAC carries the VIPs; adverts and
  gratuitous ARPs leave from 00:00:5e:00:01:VRID, the backup's VMAC takes over on
  failover, the macvlan goes on stop; ``vmac_xmit_base`` sends adverts from the base MAC.
- ``dont_track_primary``: the instance's own interface going down is no FAULT.
- ``unicast_ttl`` (the TTL on the wire) and ``check_unicast_src`` (adverts from anyone but
  the peers are dropped).
- ``global.default_interface`` and ``global.dynamic_interfaces`` (an instance waits for its
  interface and starts when it appears).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from halo_tool_lab.capture import arp_packets, neighbour_adverts, vrrp_adverts
from halo_tool_lab.netns import Host, wait_until
from halo_tool_lab.pytest_plugin import HaloFactory, LabFactory

pytestmark = pytest.mark.lab

VMAC = "00:00:5e:00:01:33"  # VRID 51


def config(
    host: Host, work: Path, prio: int, extra: str = "", global_extra: str = "", vrid: int = 51
) -> str:
    return (
        f"global:\n  router_id: {host.name}\n  state_dir: {work}/{host.name}\n"
        f"  log_format: json\n{global_extra}"
        "vrrp_instances:\n  VI_1:\n    interface: eth0\n"
        f"    virtual_router_id: {vrid}\n    priority: {prio}\n    version: 3\n"
        f"    advert_int: 0.1\n    virtual_ipaddress: [192.0.2.100/24]\n{extra}"
    )


def link_exists(host: Host, name: str) -> bool:
    return host.run("ip", "link", "show", name, check=False).returncode == 0


def test_use_vmac_moves_the_virtual_mac(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    lb = lab(3)
    h1, h2, client = lb.hosts
    cap = lb.capture(tmp_path / "wire.pcap", filter="vrrp,arp")
    vmac = "    use_vmac: true\n"
    a = start_halo(h1, config(h1, tmp_path, 150, vmac), state={"VI_1": "MASTER"})
    b = start_halo(h2, config(h2, tmp_path, 100, vmac), state={"VI_1": "BACKUP"})
    for host in (h1, h2):  # the macvlan exists on both, up, with the virtual MAC
        link = host.ip_json("-d", "link", "show", "vrrp.51")[0]
        assert link["address"] == VMAC and "UP" in link["flags"]
        assert link["linkinfo"]["info_kind"] == "macvlan"
        assert link["linkinfo"]["info_data"]["mode"] == "bridge"
    assert wait_until(lambda: h1.has_address("192.0.2.100", dev="vrrp.51"), 5), a.log
    assert not h1.has_address("192.0.2.100", dev="eth0")
    # A client reaches the VIP through the virtual MAC (only the VMAC answers ARP for it).
    assert client.ping("192.0.2.100", count=1, timeout=3).ok
    neigh = client.ip_json("neigh", "show", "192.0.2.100")
    assert neigh and neigh[0]["lladdr"] == VMAC, neigh
    time.sleep(0.5)
    # Failover: the backup's VMAC takes over, with its gratuitous ARPs from the VMAC.
    a.stop()
    assert not link_exists(h1, "vrrp.51")  # removed on stop
    assert wait_until(lambda: h2.has_address("192.0.2.100", dev="vrrp.51"), 5), b.log
    time.sleep(0.3)
    assert client.ping("192.0.2.100", count=1, timeout=3).ok
    neigh = client.ip_json("neigh", "show", "192.0.2.100")
    assert neigh[0]["lladdr"] == VMAC
    frames = cap.stop()
    adverts = vrrp_adverts(frames, vrid=51)
    h1_adverts = [x for x in adverts if str(x.src) == str(h1.ipv4)]
    h2_adverts = [x for x in adverts if str(x.src) == str(h2.ipv4)]
    assert h1_adverts and h2_adverts
    # Every advert leaves from the virtual MAC, the last of h1's with priority 0.
    assert {x.src_mac for x in adverts} == {VMAC}
    assert h1_adverts[-1].priority == 0
    garps = [p for p in arp_packets(frames) if p.gratuitous and str(p.target_ip) == "192.0.2.100"]
    assert garps and {p.src_mac for p in garps} == {VMAC}
    assert {p.sender_mac for p in garps} == {VMAC}
    assert [p for p in garps if p.time >= h2_adverts[0].time], "the new master announced too"
    # The real MACs never carried the VIP.
    assert not [p for p in arp_packets(frames) if str(p.sender_ip) == "192.0.2.100"
                and p.sender_mac in (h1.mac, h2.mac)]  # fmt: skip
    b.stop()
    assert not link_exists(h2, "vrrp.51")
    # The base interface's ARP settings are back.
    assert h2.run("sysctl", "-n", "net.ipv4.conf.eth0.arp_ignore").stdout.strip() == "0"


def test_vmac_xmit_base_and_a_named_vmac(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    lb = lab(1)
    (h1,) = lb.hosts
    cap = lb.capture(tmp_path / "wire.pcap", filter="vrrp")
    extra = "    use_vmac: vip51\n    vmac_xmit_base: true\n"
    a = start_halo(h1, config(h1, tmp_path, 150, extra), state={"VI_1": "MASTER"})
    assert wait_until(lambda: h1.has_address("192.0.2.100", dev="vip51"), 5), a.log
    time.sleep(0.3)
    adverts = vrrp_adverts(cap.stop(), vrid=51)
    assert adverts and {x.src_mac for x in adverts} == {h1.mac}
    a.stop()
    assert not link_exists(h1, "vip51")


def test_dont_track_primary(lab: LabFactory, start_halo: HaloFactory, tmp_path: Path) -> None:
    """The interface goes down: FAULT by default, no FAULT with dont_track_primary."""
    (h1,) = lab(1).hosts
    (h2,) = lab(1).hosts  # a segment of its own
    a = start_halo(
        h1,
        config(h1, tmp_path / "a", 150, "    dont_track_primary: true\n"),
        name="a",
        state={"VI_1": "MASTER"},
    )
    b = start_halo(h2, config(h2, tmp_path / "b", 150), name="b", state={"VI_1": "MASTER"})
    for host in (h1, h2):
        host.ip("link", "set", "eth0", "down")
    assert b.wait_state("VI_1", "FAULT", timeout=5), b.log
    time.sleep(0.5)
    assert "FAULT" not in a.states("VI_1"), a.log
    assert not any("interface eth0 down" in m for m in a.messages())


def test_unicast_ttl_and_check_unicast_src(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    """h1 sends unicast adverts with TTL 64 to h2; h2 only accepts adverts from h3 (its
    only configured peer), so it does not hear h1 and is MASTER too; counted as unknown."""
    lb = lab(3)
    h1, h2, h3 = lb.hosts
    cap = lb.capture(tmp_path / "wire.pcap", filter="vrrp")
    a = start_halo(
        h1,
        config(h1, tmp_path, 150, f"    unicast_ttl: 64\n    unicast_peer: [{h2.ipv4}]\n"),
        state={"VI_1": "MASTER"},
    )
    b = start_halo(
        h2,
        config(h2, tmp_path, 100, f"    check_unicast_src: true\n    unicast_peer: [{h3.ipv4}]\n"),
        state={"VI_1": "MASTER"},
    )
    time.sleep(0.5)
    assert b.states("VI_1")[-1] == "MASTER", b.log
    adverts = [x for x in vrrp_adverts(cap.stop(), vrid=51) if str(x.src) == str(h1.ipv4)]
    assert adverts and {x.ttl for x in adverts} == {64}
    assert {str(x.dst) for x in adverts} == {str(h2.ipv4)}
    a.stop()
    b.stop()


def test_default_interface_and_dynamic_interfaces(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    lb = lab(1)
    (h1,) = lb.hosts
    text = (
        f"global:\n  state_dir: {tmp_path}/h1\n  log_format: json\n"
        "  default_interface: eth0\n  dynamic_interfaces: true\n"
        "vrrp_instances:\n"
        "  VI_1:\n    virtual_router_id: 51\n    priority: 150\n    version: 3\n"
        "    advert_int: 0.1\n    virtual_ipaddress: [192.0.2.100/24]\n"
        "  VI_2:\n    interface: late0\n    virtual_router_id: 52\n    priority: 150\n"
        "    version: 3\n    advert_int: 0.1\n    virtual_ipaddress: [198.51.100.100/24]\n"
    )
    a = start_halo(h1, text, state={"VI_1": "MASTER"})
    assert wait_until(lambda: h1.has_address("192.0.2.100", dev="eth0"), 5)
    assert any("late0 does not exist: waiting" in m for m in a.messages()), a.log
    # The interface appears (a veth pair inside the host), comes up: VI_2 starts.
    h1.ip("link", "add", "late0", "type", "veth", "peer", "name", "late1")
    h1.ip("addr", "add", "198.51.100.1/24", "dev", "late0")
    h1.ip("link", "set", "late1", "up")
    h1.ip("link", "set", "late0", "up")
    assert a.wait_state("VI_2", "MASTER", timeout=5), a.log
    assert wait_until(lambda: h1.has_address("198.51.100.100", dev="late0"), 5)
    # Deleted and created again (a new index): VI_2 restarts on the new interface.
    h1.ip("link", "del", "late0")
    assert a.wait_state("VI_2", "FAULT", timeout=5), a.log
    h1.ip("link", "add", "late0", "type", "veth", "peer", "name", "late1")
    h1.ip("addr", "add", "198.51.100.1/24", "dev", "late0")
    h1.ip("link", "set", "late1", "up")
    h1.ip("link", "set", "late0", "up")
    assert a.wait_state("VI_2", "MASTER", timeout=5, count=2), a.log
    assert wait_until(lambda: h1.has_address("198.51.100.100", dev="late0"), 5), a.log
    assert any("late0 was recreated: restarting" in m for m in a.messages())


def test_init_fail_starts_a_tracked_check_down(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    """keepalived's vrrp_script init_fail: the check counts as down until it succeeds, so
    an instance tracking it with weight 0 starts in FAULT, then becomes MASTER once the
    check reports up. Without init_fail it never passes through FAULT."""
    for init_fail, expected in (
        (True, ["FAULT", "BACKUP", "MASTER"]),
        (False, ["BACKUP", "MASTER"]),
    ):
        (h1,) = lab(1).hosts
        text = config(
            h1, tmp_path / str(init_fail), 150, "    track:\n      - check: ok\n        weight: 0\n"
        ) + (
            f"checks:\n  ok:\n    type: script\n    script: /bin/true\n    interval: 1\n"
            f"    init_fail: {str(init_fail).lower()}\n"
        )
        a = start_halo(h1, text, name=f"h1-{init_fail}", state={"VI_1": "MASTER"})
        assert a.states("VI_1") == expected, a.log
        a.stop()


def test_use_vmac_ipv6(lab: LabFactory, start_halo: HaloFactory, tmp_path: Path) -> None:
    """IPv6: the macvlan has 00:00:5e:00:02:VRID and no link-local address of its own; the
    VIP is on it and announced from it; adverts leave from the base interface."""
    lb = lab(1)
    (h1,) = lb.hosts
    cap = lb.capture(tmp_path / "wire.pcap", filter="vrrp,nd")
    text = config(h1, tmp_path, 150, "    use_vmac: true\n").replace(
        "[192.0.2.100/24]", "[2001:db8::100/64]"
    )
    a = start_halo(h1, text, state={"VI_1": "MASTER"})
    link = h1.ip_json("link", "show", "vrrp.51")[0]
    assert link["address"] == "00:00:5e:00:02:33"
    assert wait_until(lambda: h1.has_address("2001:db8::100", dev="vrrp.51"), 5), a.log
    assert not [x for x in h1.addresses("vrrp.51") if x.ip.is_link_local]
    time.sleep(0.3)
    frames = cap.stop()
    adverts = vrrp_adverts(frames, vrid=51)
    assert adverts and {x.src_mac for x in adverts} == {h1.mac}
    assert {str(x.src) for x in adverts} == {str(h1.link_local)}
    nas = [n for n in neighbour_adverts(frames) if str(n.target) == "2001:db8::100"]
    assert nas and {n.src_mac for n in nas} == {"00:00:5e:00:02:33"}
    a.stop()
    assert not link_exists(h1, "vrrp.51")
