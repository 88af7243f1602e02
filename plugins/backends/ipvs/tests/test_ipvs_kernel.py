"""The ipvs backend on a kernel with IPVS: halo itself (``python -m halo_core.cli run``) in a
director namespace with TCP checks, and real TCP (HTTP) traffic from a client namespace.

Runs directly where the kernel has IPVS; on machines without it ``test_ipvs_vm.py`` runs
this module inside a QEMU VM (one VM for the whole module), where Python is about 15 times
slower: waits are generous, and the module is one scenario sharing one lab, one web farm
and one daemon, in file order (the restart and the final stop come last).

Topology (documentation addresses only; IPVS tables are per network namespace)::

    client   192.0.2.11 + 198.51.100.10/24, 2001:db8:1::10/64, routes to the VIPs via director
    director 192.0.2.12 + 198.51.100.1/24, 2001:db8:1::1/64; VRRP instance VI_1 holds
             203.0.113.10 (the vip backend), 2001:db8:ffff::10 on lo; forwarding on
    rs1..3   192.0.2.13-15 (+ ::13-15), return route to the client via the director (NAT)
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from halo_tool_lab.halo import Halo
from halo_tool_lab.netns import Host, Lab, lab_unavailable_reason, wait_until
from halo_tool_lab.tools import needs_tools, tool_path, uses_tools

FARM = Path(__file__).resolve().parents[2] / "nftables" / "tests" / "farm.py"
IN_VM = os.environ.get("HALO_IPVS_VM") == "1"
SLOW = 1.0 if IN_VM else 0.1  # a factor for waits: Python is ~15x slower under emulation
CHECK_INTERVAL = 1.0 if IN_VM else 0.3  # 17 TCP checks: keep their load small in the VM
IPVSADM = tool_path("ipvsadm")  # a cross-check where installed
POLL = 0.2  # seconds between reads of the daemon's log: parsing it is slow in the VM
STOP = 60.0  # seconds a graceful stop may take (flushing the table, under emulation)

VIP = "203.0.113.10"
VIP6 = "2001:db8:ffff::10"
CLIENT = "198.51.100.10"
RS = {"rs1": "192.0.2.13", "rs2": "192.0.2.14", "rs3": "192.0.2.15"}
RS6 = {"rs1": "2001:db8::13", "rs2": "2001:db8::14", "rs3": "2001:db8::15"}
PORTS = {"rr": 8001, "wrr": 8002, "persist": 8003, "sorry": 8004, "broken": 8005, "v6": 8006}
SORRY_PORT = 8090
FOREIGN = ("-A", "-t", "203.0.113.99:80", "-s", "rr")  # somebody else's service
STALE = "203.0.113.98:80"  # halo's in a previous config, gone from this one


def ipvs_unavailable_reason() -> str | None:
    # Collection never loads a module: with ip_vs built but not loaded, `modprobe ip_vs`
    # first to run these directly.
    if not os.path.exists("/proc/net/ip_vs"):
        return "no IPVS in this kernel (test_ipvs_vm.py runs these tests in a VM)"
    return lab_unavailable_reason()


_reason = ipvs_unavailable_reason()
pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(_reason is not None, reason=_reason or ""),
    uses_tools("ipvsadm"),
]


# ---------------------------------------------------------------------------------------------
# the client side without processes: under emulation a Python process costs seconds to start,
# so requests and table reads run in a thread of this process moved into the namespace

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """``fn()`` in a fresh thread that has joined namespace ``ns`` (the thread then ends, so
    nothing else ever runs there). Sockets it creates stay in that namespace."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            with open(f"/run/netns/{ns}") as fh:
                if _libc.setns(fh.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"netns-{ns}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _ask(sock: socket.socket, host: str, close: bool) -> dict[str, Any]:
    extra = "Connection: close\r\n" if close else ""
    sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before an answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("short answer")
        body += chunk
    return dict(json.loads(body[:length]))


def http_get(host: str, port: int, count: int, timeout: float) -> dict[str, Any]:
    """``count`` requests, each on a new connection: who answered, whom they saw."""
    servers: Counter[str] = Counter()
    peers: Counter[str] = Counter()
    failed = 0
    for _ in range(count):
        try:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                answer = _ask(sock, host, close=True)
        except (OSError, ValueError, IndexError):
            failed += 1
            continue
        servers[answer["server"]] += 1
        peers[answer["peer"]] += 1
    return {"servers": dict(servers), "peers": dict(peers), "failed": failed}


# ---------------------------------------------------------------------------------------------
# reading the table: /proc/net/ip_vs needs no tool and is per namespace


def _hex_endpoint(text: str) -> str:
    if text.startswith("["):
        host, port = text[1:].split("]:")
        return f"[{ipaddress.IPv6Address(host)}]:{int(port, 16)}"
    host, port = text.split(":")
    return f"{ipaddress.IPv4Address(int(host, 16))}:{int(port, 16)}"


def _read_proc() -> str:
    with open("/proc/thread-self/net/ip_vs") as fh:
        return fh.read()


def ipvs_table(host: Host) -> dict[str, dict[str, tuple[str, int]]]:
    """{"TCP 203.0.113.10:8001": {"192.0.2.13:8001": ("Masq", weight)}} from /proc."""
    out: dict[str, dict[str, tuple[str, int]]] = {}
    current = ""
    for line in in_netns(host.ns, _read_proc).splitlines()[3:]:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "->":
            out[current][_hex_endpoint(parts[1])] = (parts[2], int(parts[3]))
        elif parts[0] == "FWM":
            current = f"FWM {int(parts[1], 16)}"
            out[current] = {}
        else:
            current = f"{parts[0]} {_hex_endpoint(parts[1])}"
            out[current] = {}
    return out


def svc(name: str) -> str:
    return f"TCP [{VIP6}]:{PORTS[name]}" if name == "v6" else f"TCP {VIP}:{PORTS[name]}"


def dests(*names: str, port: int, v6: bool = False) -> dict[str, tuple[str, int]]:
    return {
        (f"[{RS6[n]}]:{port}" if v6 else f"{RS[n]}:{port}"): ("Masq", w)
        for n, w in (x.split("=") if "=" in x else (x, "1") for x in names)
        for w in [int(w)]
    }


# ---------------------------------------------------------------------------------------------
# the scenario's lab, farm and daemon


def config(state_dir: Path, *, flush_on_stop: bool = False) -> dict[str, Any]:
    def server(name: str, port: int, checks: bool = True, weight: int = 1) -> dict[str, Any]:
        rs: dict[str, Any] = {"address": RS[name], "port": port, "weight": weight}
        if checks:
            rs["checks"] = [{"type": "tcp", "timeout": 2 * SLOW + 0.5}]
        return rs

    def vs(name: str, servers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "address": VIP,
            "port": PORTS[name],
            "lb_kind": "NAT",
            "delay_loop": CHECK_INTERVAL,
            "real_servers": servers,
            **extra,
        }

    return {
        "global": {"state_dir": str(state_dir), "log_format": "json"},
        "backends": {
            "lb": {"type": "ipvs", "reconcile_interval": "1s", "flush_on_stop": flush_on_stop}
        },
        "vrrp_instances": {
            "VI_1": {
                "interface": "eth0",
                "virtual_router_id": 51,
                "priority": 100,
                "version": 3,
                "advert_int": 1,
                "virtual_ipaddress": [VIP],
            }
        },
        "virtual_servers": [
            vs("rr", [server(n, PORTS["rr"]) for n in RS], lb_algo="rr"),
            vs(
                "wrr",
                [server(n, PORTS["wrr"], weight=w) for n, w in zip(RS, (1, 2, 3), strict=True)],
                lb_algo="wrr",
            ),
            vs(
                "persist",
                [server(n, PORTS["persist"]) for n in RS],
                lb_algo="rr",
                persistence_timeout=60,
            ),
            vs(
                "sorry",
                [server(n, PORTS["sorry"]) for n in RS],
                lb_algo="rr",
                sorry_server=f"{RS['rs3']}:{SORRY_PORT}",
            ),
            # IPVS refuses an IPv6 real server behind an IPv4 NAT service: a netlink error
            # that concerns this service only.
            vs(
                "broken",
                [server("rs1", PORTS["broken"]), {"address": RS6["rs2"], "port": PORTS["broken"]}],
                lb_algo="rr",
            ),
            {
                "name": "v6",
                "address": VIP6,
                "port": PORTS["v6"],
                "lb_algo": "rr",
                "delay_loop": CHECK_INTERVAL,
                "real_servers": [
                    {
                        "address": RS6[n],
                        "port": PORTS["v6"],
                        "checks": [{"type": "tcp", "timeout": 2 * SLOW + 0.5}],
                    }
                    for n in RS
                ],
            },
            # IPVS has no "random" scheduler: reported, left out
            {"name": "rand", "address": VIP, "port": 8007, "lb_algo": "random"},
        ],
    }


@dataclass
class Scenario:
    lab: Lab
    client: Host
    director: Host
    ctl: dict[str, Path]
    tmp: Path
    daemon: Halo
    state_dir: Path
    foreign_before: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    def get(self, host: str, port: int, count: int, timeout: float = 5.0) -> dict[str, Any]:
        return in_netns(self.client.ns, lambda: http_get(host, port, count, timeout))

    def table(self) -> dict[str, dict[str, tuple[str, int]]]:
        return ipvs_table(self.director)

    def wait_dests(self, service: str, want: dict[str, tuple[str, int]], timeout: float) -> None:
        assert wait_until(lambda: self.table().get(service) == want, timeout, 0.2), (
            f"{self.table().get(service)}\n{self.daemon.proc.log_text()[-6000:]}"
        )

    def down(self, rs: str, port: int) -> None:
        (self.ctl[rs] / f"down-{port}").write_text("")

    def up(self, rs: str, port: int) -> None:
        (self.ctl[rs] / f"down-{port}").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("ipvs")
    with Lab(["client", "director", "rs1", "rs2", "rs3"]) as lab:
        client, director = lab.host("client"), lab.host("director")
        ctl: dict[str, Path] = {}
        for name in RS:
            host = lab.host(name)
            host.ip("route", "add", "198.51.100.0/24", "via", "192.0.2.12")
            host.ip("route", "add", "2001:db8:1::/64", "via", "2001:db8::12")
            # IPv6 has no send_redirects knob: the director redirects the servers' replies
            # straight to the client (around the NAT) unless the servers ignore redirects.
            host.sysctl(
                {
                    f"net.ipv{v}.conf.{dev}.accept_redirects": 0
                    for v in (4, 6)
                    for dev in ("all", "eth0")
                }
            )
            ctl[name] = tmp / f"ctl-{name}"
            ctl[name].mkdir()
            ports = [*PORTS.values()] + ([SORRY_PORT] if name == "rs3" else [])
            argv = [a for p in ports for a in ("--port", str(p))]
            host.spawn(sys.executable, FARM, "serve", name, *argv, "--ctl", ctl[name])
        client.ip("addr", "add", f"{CLIENT}/24", "dev", "eth0")
        client.ip("addr", "add", "2001:db8:1::10/64", "dev", "eth0", "nodad")
        client.ip("route", "add", "203.0.113.0/24", "via", "198.51.100.1")
        client.ip("route", "add", "2001:db8:ffff::/64", "via", "2001:db8:1::1")
        director.ip("addr", "add", "198.51.100.1/24", "dev", "eth0")
        director.ip("addr", "add", "2001:db8:1::1/64", "dev", "eth0", "nodad")
        director.ip("addr", "add", f"{VIP6}/128", "dev", "lo")
        sysctls: dict[str, str | int] = {
            "net.ipv4.ip_forward": 1,
            "net.ipv6.conf.all.forwarding": 1,
        }
        for key in ("all", "eth0"):  # no redirects around the NAT (see the nftables tests)
            sysctls[f"net.ipv4.conf.{key}.send_redirects"] = 0
        director.sysctl(sysctls)
        state_dir = tmp / "state"
        state_dir.mkdir()
        foreign = ""
        if IPVSADM:
            director.run(IPVSADM, *FOREIGN)
            director.run(IPVSADM, "-a", "-t", "203.0.113.99:80", "-r", "192.0.2.15:80", "-m")
            director.run(IPVSADM, "-A", "-t", STALE, "-s", "wlc")
            foreign = director.run(IPVSADM, "-Ln", "-t", "203.0.113.99:80").stdout
            stale = {"af": 2, "protocol": 6, "address": STALE.split(":")[0], "port": 80}
            (state_dir / "ipvs-lb.json").write_text(json.dumps({"services": [stale]}))
        ready = [ctl[n] / f"ready-{p}" for n in RS for p in PORTS.values()]
        assert wait_until(lambda: all(f.exists() for f in ready), 120 * SLOW + 10)
        t0 = time.monotonic()
        daemon = Halo(director, json.dumps(config(state_dir)), tmp, name="halo1")
        s = Scenario(lab, client, director, ctl, tmp, daemon, state_dir, foreign)
        try:
            s.wait_dests(svc("rr"), dests("rs1", "rs2", "rs3", port=PORTS["rr"]), 120 * SLOW + 10)
            s.notes["daemon_start"] = time.monotonic() - t0
            assert director.wait_address(VIP, timeout=60 * SLOW + 10), daemon.log
            yield s
        finally:
            if s.daemon.running:
                s.daemon.stop(STOP)
            print(f"\nscenario notes: {s.notes}")


# ---------------------------------------------------------------------------------------------


def test_table_matches_the_config(scenario: Scenario) -> None:
    """Every configured service with its NAT real servers; `halo ipvs` prints what `ipvsadm
    -Ln` prints; the ownership file names the configured services."""
    s = scenario
    port = PORTS
    s.wait_dests(svc("wrr"), dests("rs1=1", "rs2=2", "rs3=3", port=port["wrr"]), 30 * SLOW + 5)
    s.wait_dests(svc("sorry"), dests("rs1", "rs2", "rs3", port=port["sorry"]), 30 * SLOW + 5)
    s.wait_dests(svc("v6"), dests("rs1", "rs2", "rs3", port=port["v6"], v6=True), 30 * SLOW + 5)
    table = s.table()
    assert f"TCP {VIP}:8007" not in table  # "random": left out
    owned = json.loads((s.state_dir / "ipvs-lb.json").read_text())["services"]
    assert sorted((o["address"], o["port"]) for o in owned) == sorted(
        [(VIP, p) for n, p in PORTS.items() if n != "v6"] + [(VIP6, PORTS["v6"])]
    )
    shown = s.director.run(sys.executable, "-m", "halo_core.cli", "ipvs", timeout=120).stdout
    if IPVSADM:
        assert shown == s.director.run(IPVSADM, "-Ln").stdout
    assert f"TCP  {VIP}:{port['rr']} rr\n  -> {RS['rs1']}:{port['rr']}" in shown
    assert f"TCP  {VIP}:{port['persist']} rr persistent 60\n" in shown


def test_round_robin_spreads_over_nat(scenario: Scenario) -> None:
    """rr: 30 connections, 10 per server; NAT end to end (the servers see the client's own
    address, replies come back through the director)."""
    got = scenario.get(VIP, PORTS["rr"], 30)
    assert got == {"servers": {"rs1": 10, "rs2": 10, "rs3": 10}, "peers": {CLIENT: 30}, "failed": 0}
    assert all(fwd == "Masq" for fwd, _ in scenario.table()[svc("rr")].values())


def test_weights_are_respected(scenario: Scenario) -> None:
    got = scenario.get(VIP, PORTS["wrr"], 60)
    assert got["failed"] == 0 and got["servers"] == {"rs1": 10, "rs2": 20, "rs3": 30}, got


def test_ipv6_service(scenario: Scenario) -> None:
    got = scenario.get(VIP6, PORTS["v6"], 9)
    assert got["servers"] == {"rs1": 3, "rs2": 3, "rs3": 3}, got
    assert got["peers"] == {"2001:db8:1::10": 9}


def test_persistence_pins_the_client(scenario: Scenario) -> None:
    got = scenario.get(VIP, PORTS["persist"], 12)
    assert got["failed"] == 0 and len(got["servers"]) == 1, got


def test_failed_check_stops_new_connections(scenario: Scenario) -> None:
    s, port = scenario, PORTS["rr"]
    s.down("rs1", port)
    try:
        s.wait_dests(svc("rr"), dests("rs2", "rs3", port=port), 30 * SLOW + 5)
        got = s.get(VIP, port, 20)
        assert got["failed"] == 0 and got["servers"] == {"rs2": 10, "rs3": 10}, got
    finally:
        s.up("rs1", port)
    s.wait_dests(svc("rr"), dests("rs1", "rs2", "rs3", port=port), 30 * SLOW + 5)


def test_sorry_server_takes_over_when_all_are_down(scenario: Scenario) -> None:
    s, port = scenario, PORTS["sorry"]
    for name in RS:
        s.down(name, port)
    try:
        s.wait_dests(svc("sorry"), {f"{RS['rs3']}:{SORRY_PORT}": ("Masq", 1)}, 30 * SLOW + 5)
        got = s.get(VIP, port, 6)
        assert got["servers"] == {"rs3": 6} and got["failed"] == 0, got
    finally:
        for name in RS:
            s.up(name, port)
    s.wait_dests(svc("sorry"), dests("rs1", "rs2", "rs3", port=port), 30 * SLOW + 5)


def test_netlink_error_stays_with_its_service_and_vrrp_carries_on(scenario: Scenario) -> None:
    """The IPv6 real server of an IPv4 NAT service is refused by the kernel: reported once
    for that service (though retried every second), its IPv4 server is there, every other
    service works, and the VRRP instance stays MASTER."""
    s = scenario
    s.wait_dests(svc("broken"), dests("rs1", port=PORTS["broken"]), 30 * SLOW + 5)
    time.sleep(3)  # a few retries
    errors = [
        r["message"]
        for r in s.daemon.records()
        if r.get("level") == "error"
        and r.get("logger", "").startswith(("halo.backend", "halo.vrrp"))
    ]
    broken = [m for m in errors if m.startswith("lb: broken: ")]
    assert len(broken) == 1, errors
    assert "add dest [2001:db8::14]:8005" in broken[0]
    assert any("IPVS has no 'random' scheduler" in m for m in errors)
    assert not [m for m in errors if "broken" not in m and "random" not in m], errors
    assert re.search(r"VI_1: entering MASTER", s.daemon.log)
    assert "VI_1: entering FAULT" not in s.daemon.log
    assert s.director.has_address(VIP)


@needs_tools("ipvsadm")
def test_changes_made_behind_halos_back_are_repaired(scenario: Scenario) -> None:
    s = scenario
    want = dests("rs1=1", "rs2=2", "rs3=3", port=PORTS["wrr"])
    s.director.run(
        IPVSADM, "-d", "-t", f"{VIP}:{PORTS['wrr']}", "-r", f"{RS['rs2']}:{PORTS['wrr']}"
    )
    s.wait_dests(svc("wrr"), want, 20 * SLOW + 5)
    s.director.run(IPVSADM, "-D", "-t", f"{VIP}:{PORTS['wrr']}")
    s.wait_dests(svc("wrr"), want, 20 * SLOW + 5)
    assert s.daemon.wait_log(r"wrr differed from the wanted state .*; repaired", 10, POLL)


@needs_tools("ipvsadm")
def test_foreign_services_untouched_and_stale_ones_removed(scenario: Scenario) -> None:
    s = scenario
    assert s.director.run(IPVSADM, "-Ln", "-t", "203.0.113.99:80").stdout == s.foreign_before
    assert f"TCP {STALE}" not in s.table()
    assert re.search(
        r"removed TCP 203\.0\.113\.98:80: halo's, no longer in the config", s.daemon.log
    )


def test_restart_keeps_connections(scenario: Scenario) -> None:
    """halo stops (services stay) and starts again: a connection held through the restart
    keeps its server, and the new run changes nothing in the kernel for services that
    already match. The new run has flush_on_stop (see the next test)."""
    s, port = scenario, PORTS["rr"]
    sock = in_netns(s.client.ns, lambda: socket.create_connection((VIP, port), timeout=10))
    try:
        first = _ask(sock, VIP, close=False)
        assert s.daemon.stop(STOP) == 0
        assert s.table()[svc("rr")] == dests("rs1", "rs2", "rs3", port=port)
        t0 = time.monotonic()
        conf = json.dumps(config(s.state_dir, flush_on_stop=True))
        s.daemon = Halo(s.director, conf, s.tmp, name="halo2")
        assert s.daemon.wait_log(r"halo .* started with", 120 * SLOW + 10, POLL), s.daemon.log
        assert s.daemon.wait_log(r"VI_1: entering MASTER", 60 * SLOW + 10, POLL), s.daemon.log
        # The worker (it holds the IPVS backend) has applied its first reconcile when ready.
        assert s.daemon.wait_log(r"worker process \d+ ready", 120 * SLOW + 10, POLL), s.daemon.log
        time.sleep(2 * SLOW + 1)  # one more reconcile passed
        s.notes["restart"] = time.monotonic() - t0
        second = _ask(sock, VIP, close=True)
    finally:
        sock.close()
    assert first["server"] == second["server"], (first, second)
    applied = [m for m in s.daemon.log.splitlines() if m.startswith("lb: rr:")]
    assert applied == [], applied  # nothing to change: the service already matched
    assert s.get(VIP, port, 3)["failed"] == 0


def test_flush_on_stop_removes_only_halos_services(scenario: Scenario) -> None:
    s = scenario
    assert s.daemon.stop(STOP) == 0, s.daemon.log[-3000:]
    left = s.table()
    ours = [k for k in left if k.startswith(f"TCP {VIP}") or "2001:db8:ffff" in k]
    assert ours == [], s.daemon.log[-3000:]
    if IPVSADM:
        assert "TCP 203.0.113.99:80" in left
    assert json.loads((s.state_dir / "ipvs-lb.json").read_text())["services"] == []


# ---------------------------------------------------------------------------------------------
# keepalived's virtual_server_group, lvs_method TUN, the mh scheduler's flags, lvs_timeouts and
# lvs_sync_daemon: a daemon of its own in a namespace of its own (its own IPVS table)

GROUP_VIP = "203.0.113.20"


def test_group_tunnel_mh_timeouts_and_sync_daemon(tmp_path: Path) -> None:
    """A group of one address, a range of two and a firewall mark: four services with the same
    real servers, forwarded through GUE tunnels, scheduled by mh with both flags; the kernel's
    timeouts as configured; the sync daemon backup at start, master once VI_2 is MASTER, gone
    when halo stops. `halo ipvs` prints what `ipvsadm -Ln` prints."""
    conf = {
        "global": {"state_dir": str(tmp_path / "state"), "log_format": "json"},
        "backends": {
            "lb": {
                "type": "ipvs",
                "reconcile_interval": "1s",
                "flush_on_stop": True,
                "connection_timeouts": {"tcp": 900, "tcp_fin": 60, "udp": 200},
                "sync_daemon": {"interface": "eth0", "vrrp_instance": "VI_2", "syncid": 5},
            }
        },
        "vrrp_instances": {
            "VI_2": {
                "interface": "eth0",
                "virtual_router_id": 52,
                "priority": 100,
                "version": 3,
                "advert_int": 1,
                "virtual_ipaddress": [GROUP_VIP],
            }
        },
        "virtual_servers": [
            {
                "name": "farm",
                "group": [f"{GROUP_VIP} 80", "203.0.113.21-22 8080", "fwmark 9"],
                "lb_algo": "mh",
                "lb_flags": ["mh-fallback", "mh-port"],
                "lb_kind": "TUN",
                "tun_type": "gue",
                "tun_port": 6080,
                "tun_checksum": "csum",
                "real_servers": [{"address": "192.0.2.31", "weight": 2}, {"address": "192.0.2.32"}],
            }
        ],
    }
    with Lab(["lvs"]) as lab:
        lvs = lab.host("lvs")
        lvs.ip("addr", "add", "192.0.2.30/24", "dev", "eth0")
        daemon = Halo(lvs, json.dumps(conf), tmp_path, name="halo-group")
        try:
            want = {
                f"TCP {GROUP_VIP}:80": {
                    "192.0.2.31:80": ("Tunnel", 2),
                    "192.0.2.32:80": ("Tunnel", 1),
                },
                "TCP 203.0.113.21:8080": {
                    "192.0.2.31:8080": ("Tunnel", 2),
                    "192.0.2.32:8080": ("Tunnel", 1),
                },
                "TCP 203.0.113.22:8080": {
                    "192.0.2.31:8080": ("Tunnel", 2),
                    "192.0.2.32:8080": ("Tunnel", 1),
                },
                "FWM 9": {"192.0.2.31:0": ("Tunnel", 2), "192.0.2.32:0": ("Tunnel", 1)},
            }
            assert wait_until(lambda: ipvs_table(lvs) == want, 120 * SLOW + 10, POLL), (
                f"{ipvs_table(lvs)}\n{daemon.log[-4000:]}"
            )
            shown = lvs.run(sys.executable, "-m", "halo_core.cli", "ipvs", timeout=120).stdout
            assert f"TCP  {GROUP_VIP}:80 mh (mh-fallback,mh-port)\n" in shown
            assert "FWM  9 mh (mh-fallback,mh-port)\n" in shown
            as_json = json.loads(
                lvs.run(sys.executable, "-m", "halo_core.cli", "ipvs", "--json", timeout=120).stdout
            )
            tunnels = {
                (d["address"], d["port"], json.dumps(d["tunnel"]))
                for svc_ in as_json["services"]
                for d in svc_["dests"]
            }
            assert {t[2] for t in tunnels} == {
                json.dumps({"type": "gue", "port": 6080, "checksum": "csum"})
            }, tunnels
            assert {tuple(s_["flags"]) for s_ in as_json["services"]} == {
                ("mh-fallback", "mh-port")
            }
            assert daemon.wait_log(r"VI_2: entering MASTER", 60 * SLOW + 10, POLL), daemon.log
            assert daemon.wait_log(r"IPVS sync daemon master", 30 * SLOW + 5, POLL), daemon.log
            if IPVSADM:
                assert shown == lvs.run(IPVSADM, "-Ln").stdout
                timeouts = lvs.run(IPVSADM, "-L", "--timeout").stdout
                assert "Timeout (tcp tcpfin udp): 900 60 200" in timeouts, timeouts
                sync = lvs.run(IPVSADM, "-L", "--daemon").stdout
                assert "master sync daemon (mcast=eth0, syncid=5" in sync, sync
                assert "backup sync daemon" not in sync, sync
            messages = daemon.log
            assert "IPVS sync daemon backup on eth0 (syncid 5)" in messages
        finally:
            if daemon.running:
                assert daemon.stop(STOP) == 0
        assert ipvs_table(lvs) == {}
        if IPVSADM:
            assert lvs.run(IPVSADM, "-L", "--daemon").stdout.strip() == ""
