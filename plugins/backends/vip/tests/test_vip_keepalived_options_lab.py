"""keepalived's instance options the vip backend carries out, on real kernels:

- ``accept: false`` (keepalived's ``no_accept``, RFC 5798 Accept_Mode off): ping and TCP
  to the VIP of a MASTER that is not the address owner are dropped by halo's nftables
  table, and so is what the master itself sends from it (keepalived's output rule); with
  ``accept`` (the default) and for the address owner they pass; IPv6 neighbour discovery
  for such an address still works; the table goes on stop.
- The instance-level gratuitous ARP settings (``garp_master_repeat``, ``garp_master_delay``,
  ``garp_master_refresh``, ``garp_master_refresh_repeat``, ``garp_interval``) override the
  backend's for that instance only, counted and timed on a capture; so do
  ``garp_lower_prio_repeat`` and ``garp_lower_prio_delay`` when a split brain heals.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from scapy.layers.l2 import ARP, Ether

from halo_tool_lab.capture import arp_packets
from halo_tool_lab.netns import Host, wait_until
from halo_tool_lab.probes import send_from
from halo_tool_lab.pytest_plugin import HaloFactory, LabFactory
from halo_tool_lab.tools import needs_tools

pytestmark = pytest.mark.lab

# A TCP connection attempt to a port nobody listens on: "refused" (a RST came back, the
# packet was accepted) or "timeout" (dropped).
CONNECT = r"""
import socket, sys
s = socket.socket()
s.settimeout(1.0)
try:
    s.connect((sys.argv[1], 9))
    print("connected")
except ConnectionRefusedError:
    print("refused")
except OSError:
    print("timeout")
"""


def instance(name: str, vrid: int, prio: int, vip: str, extra: str = "") -> str:
    return (
        f"  {name}:\n    interface: eth0\n    virtual_router_id: {vrid}\n"
        f"    priority: {prio}\n    version: 3\n    advert_int: 0.1\n"
        f"    virtual_ipaddress: [{vip}/24]\n{extra}"
    )


def config(host: Host, work: Path, instances: str, backend: str = "") -> str:
    return (
        f"global:\n  router_id: {host.name}\n  state_dir: {work}/{host.name}\n"
        f"  log_format: json\n{backend}vrrp_instances:\n{instances}"
    )


def connect(client: Host, address: str) -> str:
    return client.run(sys.executable, "-c", CONNECT, address, timeout=10).stdout.strip()


def nft_tables(host: Host) -> str:
    return host.run("nft", "list", "tables").stdout


@needs_tools("nft")
def test_no_accept_drops_traffic_to_the_vips(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    lb = lab(2)
    h1, client = lb.hosts
    instances = (
        instance("NOACCEPT", 51, 150, "192.0.2.100", "    accept: false\n")
        + instance("ACCEPT", 52, 150, "192.0.2.101")
        + instance("OWNER", 53, 255, "192.0.2.102", "    accept: false\n")
        + instance("NOACCEPT6", 54, 150, "2001:db8::100", "    accept: false\n").replace(
            "/24", "/64"
        )
    )
    a = start_halo(
        h1,
        config(h1, tmp_path, instances),
        state={"NOACCEPT": "MASTER", "ACCEPT": "MASTER", "OWNER": "MASTER", "NOACCEPT6": "MASTER"},
    )
    assert wait_until(lambda: all(h1.has_address(f"192.0.2.10{i}") for i in range(3)), 5), a.log
    assert wait_until(lambda: h1.has_address("2001:db8::100"), 5), a.log
    assert "halo_no_accept" in nft_tables(h1)
    # no_accept, not the owner: the address answers ARP (it is routed for) but takes nothing,
    # and the master sends nothing from it either (keepalived's output rule).
    assert not client.ping("192.0.2.100", count=2, timeout=2).ok
    assert connect(client, "192.0.2.100") == "timeout"
    assert send_from(h1, "192.0.2.12", "192.0.2.100") == "blocked"
    # IPv6: the same both ways, but neighbour discovery passes: the client learns the MAC.
    client.run("ip", "-6", "neigh", "flush", "dev", "eth0", check=False)
    assert not client.ping("2001:db8::100", count=2, timeout=2).ok
    neigh = client.run("ip", "-6", "neigh", "show", "2001:db8::100").stdout
    assert "lladdr" in neigh, neigh
    assert send_from(h1, "2001:db8::12", "2001:db8::100") == "blocked"
    # accept (keepalived's default), and the address owner even with no_accept.
    for vip in ("192.0.2.101", "192.0.2.102"):
        assert client.ping(vip, count=1, timeout=3).ok, vip
        assert connect(client, vip) == "refused", vip
        assert send_from(h1, "192.0.2.12", vip) == "sent", vip
    a.stop()
    assert "halo_no_accept" not in nft_tables(h1)


@needs_tools("nft")
def test_no_table_without_no_accept(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    (h1,) = lab(1).hosts
    a = start_halo(
        h1, config(h1, tmp_path, instance("VI_1", 51, 150, "192.0.2.100")), state={"VI_1": "MASTER"}
    )
    assert "halo_no_accept" not in h1.run("nft", "list", "tables", check=False).stdout, a.log


def test_instance_garp_settings_override_the_backend(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    lb = lab(1)
    (h1,) = lb.hosts
    cap = lb.capture(tmp_path / "wire.pcap", filter="arp")
    own = (
        "    garp_master_repeat: 2\n    garp_master_delay: 0.5\n    garp_master_refresh: 1\n"
        "    garp_master_refresh_repeat: 1\n    garp_interval: 0.05\n"
    )
    backend = "backends:\n  vip:\n    type: vip\n    garp_master_repeat: 3\n"
    backend += "    garp_master_delay: 10\n"
    instances = instance("OWN", 51, 150, "192.0.2.100", own) + instance(
        "BACKEND", 52, 150, "192.0.2.101"
    )
    a = start_halo(
        h1, config(h1, tmp_path, instances, backend), state={"OWN": "MASTER", "BACKEND": "MASTER"}
    )
    time.sleep(2.4)  # start, second burst at 0.5 s, refreshes at 1 s and 2 s
    frames = cap.stop()
    a.stop()

    def times(vip: str) -> list[float]:
        return [p.time for p in arp_packets(frames) if p.gratuitous and str(p.target_ip) == vip]

    own_times, backend_times = times("192.0.2.100"), times("192.0.2.101")
    assert len(backend_times) == 3, backend_times  # the backend's 3, no second burst yet
    # 2 + 2 (second burst) + 1 (refresh at 1 s) + 1 (refresh at 2 s)
    assert len(own_times) == 6, own_times
    t0 = own_times[0]
    rel = [round(t - t0, 2) for t in own_times]
    assert 0.04 <= rel[1] < 0.2, rel  # garp_interval paces the burst
    assert 0.45 <= rel[2] < 0.75 and 0.04 <= rel[3] - rel[2] < 0.2, rel
    assert 0.9 <= rel[4] < 1.3 and 1.9 <= rel[5] < 2.3, rel


@needs_tools("nft")  # the split brain is a partition (nftables)
def test_instance_lower_priority_settings(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    """A split brain heals: the winner hears the loser's lower-priority advert and sends its
    own garp_lower_prio_repeat at once and again garp_lower_prio_delay later (the
    instance's settings; the backend's are keepalived's defaults). h1's adverts are lost
    one way, so that h1 surely hears h2 as master."""
    lb = lab(2, ipv6=False)
    h1, h2 = lb.hosts
    own = "    garp_lower_prio_repeat: 2\n    garp_lower_prio_delay: 0.5\n"
    own += "    garp_master_delay: 0\n"
    a = start_halo(h1, config(h1, tmp_path, instance("VI_1", 51, 150, "192.0.2.100", own)))
    assert h1.wait_address("192.0.2.100", timeout=10), a.log
    b = start_halo(
        h2,
        config(h2, tmp_path, instance("VI_1", 51, 100, "192.0.2.100", own)),
        state={"VI_1": "BACKUP"},
    )
    cap = lb.capture(tmp_path / "heal.pcap", filter="arp")
    with lb.partition(h1, 112, direction="from"):
        assert h2.wait_address("192.0.2.100", timeout=5), b.log
        assert a.wait_log(r"VI_1: announcing again \(split-brain"), a.log
        heard = time.time()
    time.sleep(1.0)
    frames = cap.stop()
    # h1's gratuitous ARPs that are not answers to h2's claims (those carry "HALO" in the
    # ARP padding, see claims.py)
    own_garps = [
        f.time
        for f, p in zip(frames, [Ether(f.data) for f in frames], strict=True)
        if p.src == h1.mac and ARP in p and p[ARP].psrc == p[ARP].pdst and b"HALO" not in bytes(p)
    ]
    # An announcement per lower-priority advert heard: h2, master on its side, may get a
    # second advert out (7/8 of an interval after its first, as it reaches the advert
    # grid: fsm._next_advert) before h1's adverts reach it again. Each is a burst of
    # garp_lower_prio_repeat GARPs (back to back) and another garp_lower_prio_delay later.
    bursts: list[list[float]] = []
    for t in own_garps:
        if bursts and t - bursts[-1][-1] < 0.02:
            bursts[-1].append(t)
        else:
            bursts.append([t])
    starts = [b[0] - bursts[0][0] for b in bursts]
    assert bursts and all(len(b) == 2 for b in bursts), (own_garps, heard)
    announced = [s for s in starts if s < 0.3]
    assert 1 <= len(announced) <= 2, (own_garps, heard)
    for s in announced:  # each one's repeat, garp_lower_prio_delay (0.5 s) later
        assert any(0.4 < r - s < 0.6 for r in starts), (own_garps, heard)
