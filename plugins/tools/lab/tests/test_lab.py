"""The network-namespace lab itself: connectivity, isolation, cleanup, capture, impairments."""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from halo_tool_lab.capture import arp_packets, parse_ip, read_pcap, vrrp_adverts
from halo_tool_lab.netns import Host, Lab, LabError, sweep_stale_labs, wait_until
from halo_tool_lab.pytest_plugin import LabFactory
from halo_tool_lab.tools import needs_tools

pytestmark = pytest.mark.lab

# Sends N raw IP protocol-112 packets (a VRRPv3-looking header) to DST, v4 or v6.
SEND_112 = r"""
import socket, sys
dst, n = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
with socket.socket(fam, socket.SOCK_RAW, 112) as s:
    for _ in range(n):
        s.sendto(bytes([0x31, 7, 100, 0, 0, 100, 0, 0]), (dst, 0))
"""


def send_112(src: Host, dst: Any, n: int = 3) -> None:
    src.run(sys.executable, "-c", SEND_112, str(dst), str(n), timeout=10)


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 :][:1] in (b"Z", b"X")


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout
    return {e["name"] for e in json.loads(out)} if out.strip() else set()


def root_snapshot() -> tuple[Any, Any]:
    def ip_json(*args: str) -> Any:
        out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    links = sorted(
        (
            link["ifindex"],
            link["ifname"],
            tuple(link.get("flags", [])),
            link.get("address"),
            link.get("master"),
        )
        for link in ip_json("link", "show")
    )
    addrs = sorted(
        (link["ifname"], a.get("local"), a.get("prefixlen"))
        for link in ip_json("addr", "show")
        for a in link.get("addr_info", [])
    )
    return links, addrs


def test_hosts_reach_each_other_v4_v6(lab: LabFactory) -> None:
    lb = lab(3)
    h1, h2, h3 = lb.hosts
    assert [str(h.ipv4) for h in lb.hosts] == ["192.0.2.11", "192.0.2.12", "192.0.2.13"]
    assert str(h2.ipv6) == "2001:db8::12"
    assert h1.has_address(h1.ipv4) and h1.has_address(h1.ipv6)
    assert h1.has_address(h1.link_local)  # derived from the MAC, as the kernel does
    assert len({h.mac for h in lb.hosts}) == 3
    addr = next(a for a in h1.addresses() if a.ip == h1.ipv6)
    assert addr.dev == "eth0" and addr.scope == "global" and "nodad" in addr.flags
    for src, dst in ((h1, h2), (h2, h3), (h3, h1)):
        for target in (dst.ipv4, dst.ipv6, dst.link_local):
            res = src.ping(target, count=2)
            assert res.ok, f"{src.name} -> {target}: {res}"


def test_root_namespace_untouched(lab: LabFactory) -> None:
    before = root_snapshot()
    lb = lab(2)
    assert root_snapshot() == before  # nothing appears in the root namespace
    assert lb.hosts[0].ping(lb.hosts[1].ipv4, count=1).ok
    names = lb.namespaces
    assert set(names) <= netns_names()
    assert all(n.startswith(lb.prefix) for n in names)
    lb.close()
    assert root_snapshot() == before
    assert not set(names) & netns_names()


def test_close_on_exception_removes_everything(lab_root: None) -> None:
    procs = []
    with pytest.raises(RuntimeError, match="boom"), Lab(2) as lb:
        names = lb.namespaces
        procs.append(lb.hosts[0].spawn("sleep", "60"))
        raise RuntimeError("boom")
    assert lb.closed
    assert not set(names) & netns_names()
    assert all(gone(p.pid) for p in procs)
    lb.close()  # idempotent


def test_close_kills_every_process(lab: LabFactory, tmp_path: Path) -> None:
    lb = lab(2)
    h1, h2 = lb.hosts
    direct = h1.spawn("sleep", "60")
    tree = h1.spawn("sh", "-c", "sleep 61 & sleep 62 & wait")
    # Leaves the process group: only the sweep of the namespace can find it.
    h2.spawn("setsid", "-f", "sleep", "63")
    assert wait_until(lambda: len(h1.pids()) >= 4 and len(h2.pids()) >= 1, 5)
    pids = h1.pids() + h2.pids()
    stubborn = h2.spawn("sh", "-c", "trap '' TERM; echo started; sleep 64", log=tmp_path / "s.log")
    assert wait_until(lambda: "started" in stubborn.log_text(), 5)
    lb.close()
    assert all(gone(p) for p in pids)  # close() waits for them
    assert direct.returncode is not None and tree.returncode is not None
    assert stubborn.returncode == -signal.SIGKILL
    with pytest.raises(LabError):
        h1.spawn("true")


def test_proc_terminate_and_wait(lab: LabFactory) -> None:
    h = lab(1).hosts[0]
    polite = h.spawn("sleep", "60")
    assert polite.terminate_and_wait(5) == -signal.SIGTERM
    rude = h.spawn("sh", "-c", "trap '' TERM; sleep 60 & wait")
    assert wait_until(lambda: len(h.pids()) >= 2, 5)
    children = [p for p in h.pids() if p != rude.pid]
    t0 = time.monotonic()
    assert rude.terminate_and_wait(0.3) == -signal.SIGKILL
    assert time.monotonic() - t0 < 3
    assert wait_until(lambda: all(gone(p) for p in children), 2)  # the whole group went


def test_existing_namespaces_are_never_adopted(lab: LabFactory) -> None:
    first = lab(1)
    with pytest.raises(LabError, match="already exist"):
        Lab(1, prefix=first.prefix)
    assert set(first.namespaces) <= netns_names()
    assert first.hosts[0].has_address(first.hosts[0].ipv4)  # still intact


CHILD = r"""
import signal, sys, time
from halo_tool_lab import Lab
# A background job may inherit SIGINT ignored; this test is about KeyboardInterrupt.
signal.signal(signal.SIGINT, signal.default_int_handler)
lab = Lab(1, prefix=sys.argv[1])
lab.hosts[0].spawn("sleep", "60")
print("ready", flush=True)
time.sleep(30)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_cleans_up(lab_root: None, sig: int) -> None:
    prefix = f"halo-{os.getpid()}-{secrets.token_hex(2)}-"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 15)
        assert ready and child.stdout.readline().strip() == "ready", child.stderr
        ours = {n for n in netns_names() if n.startswith(prefix)}
        assert len(ours) == 2
        sleeper = [p for n in ours for p in _ns_pids(n)]
        assert sleeper
        child.send_signal(sig)
        rc = child.wait(15)
        assert rc == -sig  # the signal is still reported as the cause of death
        assert not any(n.startswith(prefix) for n in netns_names())
        assert all(gone(p) for p in sleeper)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for n in netns_names():  # only if the test failed: namespaces with our own prefix
            if n.startswith(prefix):
                for pid in _ns_pids(n):
                    os.kill(pid, signal.SIGKILL)
                subprocess.run(["ip", "netns", "delete", n], check=False)


def _ns_pids(ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_capture_on_bridge_sees_ping(lab: LabFactory, tmp_path: Path) -> None:
    lb = lab(2)
    h1, h2 = lb.hosts
    t0 = time.time()
    cap = lb.capture(tmp_path / "bridge.pcap")
    assert h1.ping(h2.ipv4, count=2).ok
    frames = cap.stop()
    t1 = time.time()
    assert all(t0 <= f.time <= t1 for f in frames)
    assert [f.time for f in frames] == sorted(f.time for f in frames)
    icmp = [(f, ip) for f in frames if (ip := parse_ip(f.data)) and ip.proto == 1]
    requests = [(f, ip) for f, ip in icmp if ip.payload[0] == 8]
    replies = [(f, ip) for f, ip in icmp if ip.payload[0] == 0]
    assert len(requests) == 2 and len(replies) == 2  # each frame seen exactly once
    f, ip = requests[0]
    assert (f.src_mac, f.dst_mac, ip.src, ip.dst) == (h1.mac, h2.mac, h1.ipv4, h2.ipv4)
    assert any(a.op == 1 and a.target_ip == h2.ipv4 for a in arp_packets(frames))
    # The pcap (nanosecond format) reads the same with an independent decoder.
    from scapy.layers.l2 import Ether
    from scapy.utils import rdpcap

    pkts = rdpcap(str(tmp_path / "bridge.pcap"))
    assert len(pkts) == len(frames)
    assert pkts[0].haslayer(Ether) and pkts[0][Ether].src == frames[0].src_mac
    assert bytes(pkts[0]) == frames[0].data
    assert abs(float(pkts[0].time) - frames[0].time) < 1e-6


def test_capture_in_host_with_filter(lab: LabFactory, tmp_path: Path) -> None:
    lb = lab(2)
    h1, h2 = lb.hosts
    cap = lb.capture(tmp_path / "h2.pcap", host=h2, filter="vrrp")
    assert h1.ping(h2.ipv4, count=1).ok
    send_112(h1, h2.ipv4, 2)
    send_112(h1, h2.ipv6, 2)
    frames = cap.stop()
    advs = vrrp_adverts(frames)
    assert len(frames) == len(advs) == 4
    assert {a.version for a in advs} == {3} and {a.vrid for a in advs} == {7}
    assert {str(a.src) for a in advs} == {str(h1.ipv4), str(h1.ipv6)}
    assert read_pcap(tmp_path / "h2.pcap") == frames


@needs_tools("nft")  # partitions are nftables chains in the switch
def test_partition_drops_vrrp_only(lab: LabFactory, tmp_path: Path) -> None:
    lb = lab(3)
    h1, h2, h3 = lb.hosts
    # Capture in the receiving hosts: a capture on the bridge sees frames as they enter the
    # switch, before the impairment chains drop them.
    cap1 = lb.capture(tmp_path / "h1.pcap", host=h1, filter="vrrp")
    cap2 = lb.capture(tmp_path / "h2.pcap", host=h2, filter="vrrp")
    with lb.partition(h1) as part:
        send_112(h1, h2.ipv4)
        send_112(h1, h2.ipv6)
        send_112(h3, h1.ipv4)  # "both" also stops what is sent to h1
        send_112(h3, h2.ipv4)  # others are unaffected
        assert h1.ping(h2.ipv4, count=1).ok  # other protocols pass
    assert not part.active
    send_112(h1, h2.ipv4)
    send_112(h3, h1.ipv6)
    at_h1 = [(str(a.src), str(a.dst)) for a in vrrp_adverts(cap1.stop())]
    at_h2 = [(str(a.src), str(a.dst)) for a in vrrp_adverts(cap2.stop())]
    outgoing = [(str(h1.ipv4), str(h2.ipv4))] * 3 + [(str(h1.ipv6), str(h2.ipv6))] * 3
    # h1's own capture shows what it sent during the partition, then the later packets
    assert at_h1 == [
        *outgoing,
        *[(str(h1.ipv4), str(h2.ipv4))] * 3,
        *[(str(h3.ipv6), str(h1.ipv6))] * 3,
    ]
    assert at_h2 == [(str(h3.ipv4), str(h2.ipv4))] * 3 + [(str(h1.ipv4), str(h2.ipv4))] * 3


@needs_tools("nft")
def test_partition_one_direction_and_everything(lab: LabFactory) -> None:
    lb = lab(2)
    h1, h2 = lb.hosts
    # Resolve neighbours first: an ARP/ND exchange broken by the partition would only be
    # retried a second later, slowing the pings after it for no benefit to the test.
    assert h1.ping(h2.ipv4, count=1).ok and h1.ping(h2.ipv6, count=1).ok
    with lb.partition(h1, proto=None):
        assert not h1.ping(h2.ipv4, count=1, timeout=0.3).ok
    assert h1.ping(h2.ipv4, count=1).ok
    with lb.partition(h1, proto=1, direction="to"):
        # echo requests get through, replies to h1 do not
        assert not h1.ping(h2.ipv4, count=1, timeout=0.3).ok
    with lb.loss(100, host=h2):
        assert not h1.ping(h2.ipv6, count=2, timeout=0.3).ok
    lb.loss(100)
    lb.heal()
    assert h1.ping(h2.ipv6, count=1).ok


def test_unplug(lab: LabFactory) -> None:
    lb = lab(2)
    h1, h2 = lb.hosts
    with lb.unplug(h1):
        assert wait_until(lambda: h1.ip_json("link", "show", "eth0")[0]["operstate"] != "UP", 3)
        assert not h2.ping(h1.ipv4, count=1, timeout=0.3).ok
    assert h2.ping(h1.ipv4, count=1).ok


def test_sweep_stale_labs(lab_root: None) -> None:
    # PIDs above the kernel's hard limit (2**22) never exist: this lab's creator is "dead".
    stale = f"halo-99999999-{secrets.token_hex(2)}-h1"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        alive = Lab(1)  # a live creator: must survive the sweep
        try:
            assert stale in sweep_stale_labs()
            assert stale not in netns_names()
            assert set(alive.namespaces) <= netns_names()
        finally:
            alive.close()
    finally:
        subprocess.run(["ip", "netns", "delete", stale], check=False, capture_output=True)
