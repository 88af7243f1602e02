"""The nftables backend on a real kernel: halo itself (``python -m halo_core.cli run``) in a
director namespace, TCP checks on three real servers, and real HTTP traffic from a client.

Topology (one lab segment 192.0.2.0/24 + 2001:db8::/64, documentation addresses only)::

    client   192.0.2.11   + 198.51.100.10/24, .20/24 and 2001:db8:1::10/64 ("outside")
    director 192.0.2.12   + 198.51.100.1/24, 2001:db8:1::1/64 (forwarding on, no redirects)
    rs1..3   192.0.2.13-15, route to the outside via the director (a NAT topology)

The client reaches the virtual addresses (203.0.113.0/24, 2001:db8:ffff::/64) through the
director; real servers answer through it, so plain DNAT works end to end and each answer
names the client address the server saw. One-arm traffic (client and servers on the same
subnet) needs the masquerade option.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from halo_tool_lab.halo import Halo
from halo_tool_lab.netns import Host, Lab, Proc, lab_unavailable_reason, wait_until
from halo_tool_lab.tools import needs_tools

pytestmark = [pytest.mark.lab, needs_tools("nft")]

FARM = Path(__file__).with_name("farm.py")
VIP = "203.0.113.10"
VIP6 = "2001:db8:ffff::10"
VIP_ONE_ARM = "203.0.113.20"
CLIENT = "198.51.100.10"
CLIENT_B = "198.51.100.20"
CLIENT6 = "2001:db8:1::10"
RS = {"rs1": "192.0.2.13", "rs2": "192.0.2.14", "rs3": "192.0.2.15"}
RS6 = {"rs1": "2001:db8::13", "rs2": "2001:db8::14", "rs3": "2001:db8::15"}
PORTS = list(range(8081, 8090))  # each test balances its own port: no state leaks


@dataclass
class Farm:
    lab: Lab
    client: Host
    director: Host
    servers: dict[str, Host]
    ctl: dict[str, Path]
    tmp: Path

    def get(
        self, host: str, port: int, count: int, source: str | None = None, timeout: float = 2.0
    ) -> dict[str, Any]:
        argv = [sys.executable, FARM, "get", host, str(port), "--count", str(count)]
        argv += ["--timeout", str(timeout)] + (["--source", source] if source else [])
        out = self.client.run(*argv, timeout=count * timeout + 30).stdout
        return dict(json.loads(out.strip().splitlines()[-1]))

    def down(self, rs: str, port: int) -> None:
        (self.ctl[rs] / f"down-{port}").write_text("")
        assert wait_until(lambda: not (self.ctl[rs] / f"ready-{port}").exists(), 5)

    def up(self, rs: str, port: int) -> None:
        (self.ctl[rs] / f"down-{port}").unlink(missing_ok=True)
        assert wait_until(lambda: (self.ctl[rs] / f"ready-{port}").exists(), 5)

    def nft(self, *args: str, check: bool = True) -> str:
        return self.director.run("nft", *args, check=check).stdout

    def table(self, family: str = "inet", name: str = "halo") -> Any:
        cp = self.director.run("nft", "-j", "list", "table", family, name, check=False)
        return json.loads(cp.stdout) if cp.returncode == 0 else None

    def chain_targets(self, chain: str, table: str = "halo") -> set[str] | None:
        """Addresses (with ports) a service chain DNATs to; None when it has no rule."""
        cp = self.director.run("nft", "-j", "list", "chain", "inet", table, chain, check=False)
        if cp.returncode != 0:
            return None
        rules = [i["rule"] for i in json.loads(cp.stdout)["nftables"] if "rule" in i]
        if not rules:
            return None
        found: set[str] = set()
        collect(rules, found)
        return found


def collect(node: Any, out: set[str]) -> None:
    """Every DNAT target (``addr`` or ``addr . port``) in an nft JSON rule."""
    if isinstance(node, dict):
        if "concat" in node and len(node["concat"]) == 2 and isinstance(node["concat"][1], int):
            out.add(f"{node['concat'][0]}:{node['concat'][1]}")
            return
        if "dnat" in node and isinstance(node["dnat"].get("addr"), str):
            d = node["dnat"]
            out.add(f"{d['addr']}:{d['port']}" if "port" in d else d["addr"])
            return
        for v in node.values():
            collect(v, out)
    elif isinstance(node, list):
        for v in node:
            collect(v, out)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(f"lab unavailable: {reason}")
    tmp = tmp_path_factory.mktemp("nft-farm")
    with Lab(["client", "director", "rs1", "rs2", "rs3"]) as lab:
        client, director = lab.host("client"), lab.host("director")
        servers = {name: lab.host(name) for name in RS}
        client.ip("addr", "add", f"{CLIENT}/24", "dev", "eth0")
        client.ip("addr", "add", f"{CLIENT_B}/24", "dev", "eth0")
        client.ip("addr", "add", f"{CLIENT6}/64", "dev", "eth0", "nodad")
        client.ip("route", "add", "203.0.113.0/24", "via", "198.51.100.1")
        client.ip("route", "add", f"{VIP_ONE_ARM}/32", "via", "192.0.2.12", "src", "192.0.2.11")
        client.ip("route", "add", "2001:db8:ffff::/64", "via", "2001:db8:1::1")
        director.ip("addr", "add", "198.51.100.1/24", "dev", "eth0")
        director.ip("addr", "add", "2001:db8:1::1/64", "dev", "eth0", "nodad")
        # Forwarding between the "outside" and the servers on one segment: without this
        # the director would ICMP-redirect the servers' replies straight to the client,
        # around the NAT that must undo them.
        director.sysctl(
            {
                "net.ipv4.ip_forward": 1,
                "net.ipv6.conf.all.forwarding": 1,
                "net.ipv4.conf.all.send_redirects": 0,
                "net.ipv4.conf.eth0.send_redirects": 0,
            }
        )
        for name, host in servers.items():
            host.ip("route", "add", "198.51.100.0/24", "via", "192.0.2.12")
            host.ip("route", "add", "2001:db8:1::/64", "via", "2001:db8::12")
            host.sysctl(
                {
                    "net.ipv4.conf.all.accept_redirects": 0,
                    "net.ipv4.conf.eth0.accept_redirects": 0,
                    "net.ipv6.conf.all.accept_redirects": 0,
                    "net.ipv6.conf.eth0.accept_redirects": 0,
                }
            )
            ctl = tmp / f"ctl-{name}"
            ctl.mkdir()
            ports = [a for p in PORTS for a in ("--port", str(p))]
            host.spawn(
                sys.executable, FARM, "serve", name, *ports, "--ctl", ctl, log=tmp / f"{name}.log"
            )
        ctls = {name: tmp / f"ctl-{name}" for name in RS}
        ready = [ctls[name] / f"ready-{p}" for name in RS for p in PORTS]
        assert wait_until(lambda: all(f.exists() for f in ready), 10)
        yield Farm(lab, client, director, servers, ctls, tmp)


@contextmanager
def halo(farm: Farm, name: str, config: dict[str, Any]) -> Iterator[Halo]:
    config.setdefault("global", {}).update(
        {"log_format": "json", "state_dir": str(farm.tmp / f"{name}-state")}
    )
    # JSON is YAML
    daemon = Halo(farm.director, json.dumps(config, indent=1), farm.tmp, name=name)
    try:
        yield daemon
    finally:
        if daemon.proc.running:
            assert daemon.stop() == 0, daemon.log
    for rs in farm.ctl:
        for p in PORTS:  # leave every server up for the next test
            farm.up(rs, p)


def service(
    name: str,
    address: str,
    port: int,
    servers: dict[str, int],
    *,
    v6: bool = False,
    rs_port: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A virtual server with a fast TCP check per real server."""
    addresses = RS6 if v6 else RS
    return {
        "name": name,
        "address": address,
        "port": port,
        "delay_loop": 0.2,
        "real_servers": [
            {
                "address": addresses[rs],
                "port": rs_port or port,
                "weight": weight,
                "checks": [{"type": "tcp", "timeout": 0.5}],
            }
            for rs, weight in servers.items()
        ],
        **extra,
    }


def lb(services: list[dict[str, Any]], **backend: Any) -> dict[str, Any]:
    return {
        "backends": {"lb": {"type": "nftables", "reconcile_interval": "0.5s", **backend}},
        "virtual_servers": services,
    }


def targets(*names: str, port: int, v6: bool = False) -> set[str]:
    return {f"{(RS6 if v6 else RS)[n]}:{port}" for n in names}


def wait_targets(farm: Farm, chain: str, want: set[str] | None, daemon: Halo) -> None:
    assert wait_until(lambda: farm.chain_targets(chain) == want, 10, 0.05), (
        farm.chain_targets(chain),
        daemon.log,
    )


def assert_no_false_drift(daemon: Halo) -> None:
    """Two reconciles (0.5 s) pass without a rebuild: what nft lists back matches what halo
    wrote, so drift detection does not fire on its own table."""
    time.sleep(1.2)
    assert "changed outside halo" not in daemon.log, daemon.log


# ---------------------------------------------------------------------------------------------


def test_weighted_round_robin_spreads_by_weight(farm: Farm) -> None:
    """wrr 1:2:3 over real HTTP: every sixth connection cycle hits rs1 once, rs2 twice, rs3
    three times; the servers see the client's own address (DNAT, no SNAT)."""
    port = PORTS[0]
    conf = lb([service("web", VIP, port, {"rs1": 1, "rs2": 2, "rs3": 3}, lb_algo="wrr")])
    with halo(farm, "wrr", conf) as d:
        wait_targets(farm, "vs0", targets("rs1", "rs2", "rs3", port=port), d)
        got = farm.get(VIP, port, 60)
        assert got["failed"] == 0, got
        assert got["servers"] == {"rs1": 10, "rs2": 20, "rs3": 30}, got
        assert got["peers"] == {CLIENT: 60}
        assert_no_false_drift(d)
        assert d.stop() == 0
        assert farm.table() is None, "the table is withdrawn on stop"
        assert "deleted table inet halo" in d.log


def test_random_follows_weights_within_tolerance(farm: Farm) -> None:
    """numgen random with weights 1:1:2 over 400 connections: each share within ±40 of
    100/100/200 (about 4.5 standard deviations)."""
    port = PORTS[1]
    conf = lb([service("rand", VIP, port, {"rs1": 1, "rs2": 1, "rs3": 2}, lb_algo="random")])
    with halo(farm, "random", conf) as d:
        wait_targets(farm, "vs0", targets("rs1", "rs2", "rs3", port=port), d)
        got = farm.get(VIP, port, 400)
        assert got["failed"] == 0, got
        for name, want in {"rs1": 100, "rs2": 100, "rs3": 200}.items():
            assert abs(got["servers"].get(name, 0) - want) <= 40, got


def test_ipv6_round_robin(farm: Farm) -> None:
    """The same over IPv6: rr ignores weights, 30 connections, 10 each."""
    port = PORTS[2]
    conf = lb([service("web6", VIP6, port, {"rs1": 1, "rs2": 5, "rs3": 1}, v6=True, lb_algo="rr")])
    with halo(farm, "v6", conf) as d:
        wait_targets(farm, "vs0", targets("rs1", "rs2", "rs3", port=port, v6=True), d)
        got = farm.get(VIP6, port, 30)
        assert got["failed"] == 0, got
        assert got["servers"] == {"rs1": 10, "rs2": 10, "rs3": 10}, got
        assert got["peers"] == {CLIENT6: 30}


def test_failed_check_removes_server_for_new_connections(farm: Farm) -> None:
    """rs2's port closes: its TCP check fails, the pool drops it and new connections go to
    rs1 and rs3 only; when it comes back, so does its share. A service left without any
    server refuses new connections at once (TCP reset), and recovers."""
    port = PORTS[3]
    conf = lb([service("web", VIP, port, {"rs1": 1, "rs2": 1, "rs3": 1}, lb_algo="rr")])
    with halo(farm, "fail", conf) as d:
        wait_targets(farm, "vs0", targets("rs1", "rs2", "rs3", port=port), d)
        farm.down("rs2", port)
        t0 = time.monotonic()
        wait_targets(farm, "vs0", targets("rs1", "rs3", port=port), d)
        print(f"\nrs2 removed {time.monotonic() - t0:.2f} s after its port closed")
        got = farm.get(VIP, port, 30)
        assert got == {"servers": {"rs1": 15, "rs3": 15}, "peers": {CLIENT: 30}, "failed": 0}

        farm.up("rs2", port)
        wait_targets(farm, "vs0", targets("rs1", "rs2", "rs3", port=port), d)
        assert farm.get(VIP, port, 30)["servers"] == {"rs1": 10, "rs2": 10, "rs3": 10}

        for name in RS:
            farm.down(name, port)
        wait_targets(farm, "vs0", None, d)
        t1 = time.monotonic()
        refused = farm.get(VIP, port, 3, timeout=3.0)
        assert refused["failed"] == 3
        assert time.monotonic() - t1 < 2.0, "refused at once, not timed out"
        farm.up("rs1", port)
        wait_targets(farm, "vs0", targets("rs1", port=port), d)
        assert farm.get(VIP, port, 5)["servers"] == {"rs1": 5}


def test_persistence_pins_each_client(farm: Farm) -> None:
    """persistence_timeout: a hash of the client address picks the server, so every
    connection of one client lands on the same one; after a server fails, clients of the
    others stay where they were (consistent buckets)."""
    port = PORTS[4]
    conf = lb(
        [
            service(
                "sticky",
                VIP,
                port,
                {"rs1": 1, "rs2": 1, "rs3": 1},
                lb_algo="rr",
                persistence_timeout=300,
            )
        ]
    )
    with halo(farm, "persist", conf) as d:
        wait_targets(farm, "vs0", targets("rs1", "rs2", "rs3", port=port), d)
        assert d.wait_log(r"sticky: persistence by a hash of the client address")
        homes = {}
        for source in (CLIENT, CLIENT_B):
            got = farm.get(VIP, port, 15, source=source)
            assert got["failed"] == 0 and len(got["servers"]) == 1, got
            homes[source] = next(iter(got["servers"]))
        assert_no_false_drift(d)  # the hash map reads back as written
        other = next(n for n in RS if n not in homes.values())
        farm.down(other, port)
        wait_targets(farm, "vs0", targets(*(n for n in RS if n != other), port=port), d)
        for source, home in homes.items():
            assert farm.get(VIP, port, 5, source=source)["servers"] == {home: 5}


def test_masquerade_for_one_arm_topology(farm: Farm) -> None:
    """Client and servers on one subnet: the servers would answer the client directly and
    break the NAT. With masquerade they see the director's address and it works."""
    port = PORTS[5]
    conf = lb([service("onearm", VIP_ONE_ARM, port, {"rs1": 1, "rs2": 1})], masquerade=True)
    with halo(farm, "masq", conf) as d:
        wait_targets(farm, "vs0", targets("rs1", "rs2", port=port), d)
        got = farm.get(VIP_ONE_ARM, port, 10)
        assert got == {"servers": {"rs1": 5, "rs2": 5}, "peers": {"192.0.2.12": 10}, "failed": 0}
    conf = lb([service("onearm", VIP_ONE_ARM, port, {"rs1": 1, "rs2": 1})])
    with halo(farm, "nomasq", conf) as d:
        wait_targets(farm, "vs0", targets("rs1", "rs2", port=port), d)
        assert farm.get(VIP_ONE_ARM, port, 2, timeout=1.0)["failed"] == 2


FOREIGN = """
table inet filter {
    chain input { type filter hook input priority filter; policy accept; tcp dport 22 accept; }
}
table ip nat {
    chain POSTROUTING {
        type nat hook postrouting priority srcnat; policy accept; oifname "eth0" masquerade;
    }
}
table ip halo {
    chain keep { ip daddr 192.0.2.99 drop; }
}
"""


def test_other_tables_are_never_touched(farm: Farm) -> None:
    """Tables of firewalld / iptables-nft users (and an ``ip halo`` of another family) are
    byte-for-byte the same after start, changes, a drift repair and stop."""
    port = PORTS[6]
    farm.director.run("nft", "-f", "-", input=FOREIGN)
    try:
        names = [("inet", "filter"), ("ip", "nat"), ("ip", "halo")]
        before = {n: farm.table(*n) for n in names}
        assert all(before.values())
        conf = lb([service("web", VIP, port, {"rs1": 1, "rs2": 1})])
        with halo(farm, "foreign", conf) as d:
            wait_targets(farm, "vs0", targets("rs1", "rs2", port=port), d)
            farm.down("rs1", port)
            wait_targets(farm, "vs0", targets("rs2", port=port), d)
            farm.nft("delete", "table", "inet", "halo")
            assert d.wait_log(r"was changed outside halo \(the table is gone\); rebuilding")
            wait_targets(farm, "vs0", targets("rs2", port=port), d)
            assert {n: farm.table(*n) for n in names} == before
        assert farm.table() is None
        assert {n: farm.table(*n) for n in names} == before
    finally:
        for family, name in [("inet", "filter"), ("ip", "nat"), ("ip", "halo")]:
            farm.nft("delete", "table", family, name, check=False)


def test_drift_is_repaired(farm: Farm) -> None:
    """Someone deletes halo's table, or flushes a service chain, or adds a rule to it: the
    next reconcile (0.5 s here) rebuilds the table, and traffic flows again."""
    port = PORTS[7]
    conf = lb([service("web", VIP, port, {"rs1": 1, "rs2": 1, "rs3": 1}, lb_algo="rr")])
    with halo(farm, "drift", conf) as d:
        want = targets("rs1", "rs2", "rs3", port=port)
        wait_targets(farm, "vs0", want, d)
        for damage, symptom in (
            (["delete", "table", "inet", "halo"], "the table is gone"),
            (["flush", "chain", "inet", "halo", "vs0"], "chain vs0 has 0 rules instead of 1"),
            (["add", "rule", "inet", "halo", "vs0", "drop"], "chain vs0 has 2 rules instead of 1"),
            (["flush", "map", "inet", "halo", "vs4"], "set vs4 has 0 elements instead of 1"),
        ):
            farm.nft(*damage)
            assert d.wait_log(re.escape(symptom)), d.log
            wait_targets(farm, "vs0", want, d)
            assert wait_until(lambda: farm.get(VIP, port, 3)["failed"] == 0, 5), damage
        assert farm.get(VIP, port, 30)["servers"] == {"rs1": 10, "rs2": 10, "rs3": 10}


def test_keep_on_stop_and_seamless_restart(farm: Farm) -> None:
    """keep_on_stop: the table survives halo's stop (a held connection keeps working); the
    next start leaves it serving until the pools have reported, then replaces it."""
    port = PORTS[8]
    conf = lb([service("web", VIP, port, {"rs1": 1, "rs2": 1})], keep_on_stop=True)
    held: Proc | None = None
    try:
        with halo(farm, "keep1", conf) as d:
            wait_targets(farm, "vs0", targets("rs1", "rs2", port=port), d)
            out = farm.tmp / "hold.json"
            held = farm.client.spawn(
                sys.executable, FARM, "hold", VIP, str(port), "--pause", "3", log=out
            )
            time.sleep(0.5)
            assert d.stop() == 0
            assert "keeping table inet halo" in d.log
        assert farm.chain_targets("vs0") == targets("rs1", "rs2", port=port)
        assert farm.get(VIP, port, 4)["servers"] == {"rs1": 2, "rs2": 2}
        with halo(farm, "keep2", conf) as d2:
            assert d2.wait_log(r"from a previous run serves until every service has reported")
            assert d2.wait_log(r"table inet halo built \(web: start\)")
            assert held.wait(10) == 0
            answer = json.loads(out.read_text().strip().splitlines()[-1])
            assert answer["first"]["server"] == answer["second"]["server"], answer
            assert farm.get(VIP, port, 4)["failed"] == 0
    finally:
        if held is not None and held.running:
            held.kill()
        farm.nft("delete", "table", "inet", "halo", check=False)


def test_vip_firewall_on_non_owner_master(farm: Farm) -> None:
    """vip_firewall: a MASTER with priority < 255 drops traffic addressed to its VIP (ping
    fails) while the virtual service on that VIP keeps working (DNAT comes first); an
    instance in accept_instances is left alone; leaving MASTER lifts the drop."""
    vip = "203.0.113.30"
    port = PORTS[0]
    instance = {
        "interface": "eth0",
        "virtual_router_id": 42,
        "priority": 100,
        "version": 3,
        "advert_int": 0.1,
        "virtual_ipaddress": [vip],
    }
    base = lb([service("web", vip, port, {"rs1": 1})], vip_firewall=True)
    with halo(farm, "fw", {**base, "vrrp_instances": {"VI_1": instance}}) as d:
        assert farm.director.wait_address(vip, timeout=10), d.log
        # The worker (it holds the nftables backend) may start after VRRP has added the VIP:
        # the set may not be there yet.
        assert wait_until(
            lambda: vip in farm.nft("list", "set", "inet", "halo", "vips4", check=False), 10
        ), d.log
        assert not farm.client.ping(vip, count=2, timeout=0.5).ok
        assert farm.get(vip, port, 3) == {"servers": {"rs1": 3}, "peers": {CLIENT: 3}, "failed": 0}
    accept = lb(
        [service("web", vip, port, {"rs1": 1})], vip_firewall=True, accept_instances=["VI_1"]
    )
    with halo(farm, "fw-accept", {**accept, "vrrp_instances": {"VI_1": instance}}) as d:
        assert farm.director.wait_address(vip, timeout=10), d.log
        assert wait_until(lambda: farm.client.ping(vip, count=1, timeout=0.5).ok, 5), d.log


async def test_refused_transaction_leaves_previous_ruleset(
    farm: Farm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend in-process (its nft runs in the director): an update the kernel refuses
    (a bad command appended to the real one) changes nothing at all — same table, traffic
    still spread over the old members — is reported once, and applies on a later retry."""
    import dataclasses

    from halo_backend_nftables import ruleset
    from halo_backend_nftables.runtime import NftablesBackend
    from halo_core import plugins
    from halo_core.bus import EventBus
    from halo_core.config import load
    from halo_core.events import BackendFailed, Event, PoolChanged, PoolMember
    from halo_core.plugin_api import PluginContext
    from halo_core.scheduler import LoopClock, Scheduler

    port = PORTS[3]
    wrapper = farm.tmp / "nft-director"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {farm.director.ns} nft "$@"\n')
    wrapper.chmod(0o755)
    conf_path = farm.tmp / "inproc.yaml"
    conf_path.write_text(json.dumps(lb([service("web", VIP, port, {"rs1": 1, "rs2": 1})])))
    config = load(str(conf_path), plugins.load())
    vs = config.model.virtual_servers[0]
    cfg = dataclasses.replace(
        config.model.backends["lb"].config, nft=str(wrapper), reconcile_interval=0
    )
    bus, clock = EventBus(), LoopClock()
    events: list[Event] = []
    bus.subscribe(events.append, name="test")
    backend = NftablesBackend(cfg, PluginContext("lb", config.model, bus, clock, Scheduler(clock)))

    def pool(*names: str) -> PoolChanged:
        members = tuple(PoolMember(RS[n], port, 1) for n in names)
        return PoolChanged(
            virtual_server="web", service=vs, members=members, quorum=True, reason="t"
        )

    await backend.start()
    try:
        await backend.handle(pool("rs1", "rs2"))
        before = farm.table()
        assert farm.get(VIP, port, 4)["servers"] == {"rs1": 2, "rs2": 2}

        real = ruleset.service_update

        def refused(*args: Any, **kwargs: Any) -> list[Any]:
            bad = {"delete": {"chain": {"family": "inet", "table": "halo", "name": "nosuch"}}}
            return [*real(*args, **kwargs), bad]

        monkeypatch.setattr(ruleset, "service_update", refused)
        await backend.handle(pool("rs1"))
        await backend.reconcile()  # the retry fails the same way: not reported twice
        await bus.drain()
        failures = [e for e in events if isinstance(e, BackendFailed)]
        assert len(failures) == 1, failures
        assert (
            failures[0].error.startswith("web: ")
            and "No such file or directory" in failures[0].error
        )
        assert farm.table() == before
        assert farm.get(VIP, port, 4)["servers"] == {"rs1": 2, "rs2": 2}
        assert backend.status()["services"]["web"]["error"]

        monkeypatch.undo()
        await backend.reconcile()
        assert farm.chain_targets("vs0") == targets("rs1", port=port)
        assert farm.get(VIP, port, 4)["servers"] == {"rs1": 4}
        assert backend.status()["services"]["web"]["error"] is None
    finally:
        await backend.stop()
        await bus.close()
    assert farm.table() is None
