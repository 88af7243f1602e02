"""The nftables backend without a kernel: ruleset generation, the config plan, drift
comparison, and the runtime's transaction logic against a fake ``nft`` program."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections import Counter
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from halo_backend_nftables import ruleset
from halo_backend_nftables.plugin import NftablesBackendConfig
from halo_backend_nftables.ruleset import Dest, Options, Service, State
from halo_backend_nftables.runtime import NftablesBackend, plan_services
from halo_core import plugins
from halo_core.bus import EventBus
from halo_core.config import ConfigError, load
from halo_core.events import BackendApplied, BackendFailed, Event, PoolChanged, PoolMember
from halo_core.plugin_api import PluginContext
from halo_core.scheduler import Scheduler
from halo_tool_lab.clock import FakeClock


def d(addr: str, weight: int = 1, port: int | None = 80) -> Dest:
    return Dest(ip_address(addr), port, weight)


def svc(index: int = 0, mode: Any = "wrr", **kw: Any) -> Service:
    base: dict[str, Any] = {
        "label": f"s{index}",
        "family": 4,
        "protocol": "tcp",
        "address": ip_address("203.0.113.1"),
        "port": 80,
    }
    return Service(index=index, mode=mode, **{**base, **kw})


def config(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "halo.yaml"
    path.write_text(textwrap.dedent(text))
    return load(str(path), plugins.load())


# ------------------------------------------------------------------------------ pure parts


def test_slots_divide_by_the_gcd() -> None:
    assert ruleset.slots([2, 4, 6]) == [(0, 0), (1, 2), (3, 5)]
    assert ruleset.slots([5]) == [(0, 0)]
    assert ruleset.slots([1, 1, 1]) == [(0, 0), (1, 1), (2, 2)]


def test_hash_buckets_follow_weights_and_move_only_the_failed_server() -> None:
    dests = [d("192.0.2.13", 1), d("192.0.2.14", 2), d("192.0.2.15", 3)]
    owners = {}
    for first, last, dest in ruleset.buckets(tuple(dests), 600):
        for b in range(first, last + 1):
            owners[b] = dest
    shares = Counter(o.address.exploded for o in owners.values())
    assert len(owners) == 600
    for dest in dests:  # within ±30 % of the weighted share
        assert abs(shares[dest.address.exploded] - 100 * dest.weight) < 30 * dest.weight
    # rs2 fails: only its buckets change hands
    after = {}
    for first, last, dest in ruleset.buckets((dests[0], dests[2]), 600):
        for b in range(first, last + 1):
            after[b] = dest
    moved = [b for b in owners if owners[b] != after[b]]
    assert moved and all(owners[b] == dests[1] for b in moved)
    ruleset.buckets.cache_clear()
    assert ruleset.buckets(tuple(dests), 64) == ruleset.buckets.__wrapped__(tuple(dests), 64)


def test_dnat_rule_shapes() -> None:
    opts = Options()
    rule = ruleset.dnat_rule(svc(), [d("192.0.2.13", 1), d("192.0.2.14", 2)], opts)
    assert rule is not None
    assert rule[0] == {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}
    mapping = rule[1]["dnat"]["addr"]["map"]
    assert mapping["key"] == {"numgen": {"mode": "inc", "mod": 3, "offset": 0}}
    assert mapping["data"]["set"] == [
        [0, {"concat": ["192.0.2.13", 80]}],
        [{"range": [1, 2]}, {"concat": ["192.0.2.14", 80]}],
    ]
    # rr ignores weights, random keeps them
    rr = ruleset.dnat_rule(svc(mode="rr"), [d("192.0.2.13", 1), d("192.0.2.14", 7)], opts)
    assert rr is not None and rr[1]["dnat"]["addr"]["map"]["key"]["numgen"]["mod"] == 2
    rnd = ruleset.dnat_rule(svc(mode="random"), [d("192.0.2.13", 1), d("192.0.2.14", 3)], opts)
    assert rnd is not None
    assert rnd[1]["dnat"]["addr"]["map"]["key"]["numgen"] == {
        "mode": "random",
        "mod": 4,
        "offset": 0,
    }
    # fo: the heaviest, without a map; a single server: no map either
    fo = ruleset.dnat_rule(svc(mode="fo"), [d("192.0.2.13", 1), d("192.0.2.14", 9)], opts)
    assert fo is not None and fo[1] == {"dnat": {"family": "ip", "addr": "192.0.2.14", "port": 80}}
    # weight 0, other family: not used; nothing left: None
    assert ruleset.dnat_rule(svc(), [d("192.0.2.13", 0), d("2001:db8::1")], opts) is None
    # hash of a /24: a 3-byte raw payload of the source address
    h = ruleset.dnat_rule(
        svc(mode="hash", hash_prefix=24), [d("192.0.2.13"), d("192.0.2.14")], opts
    )
    assert h is not None
    jhash = h[1]["dnat"]["addr"]["map"]["key"]["jhash"]
    assert jhash["expr"] == {"payload": {"base": "nh", "offset": 96, "len": 24}}
    assert jhash["mod"] == 64
    # IPv6 and no port (a service on every port keeps the client's port)
    v6 = svc(family=6, address=ip_address("2001:db8:ffff::1"), port=None)
    r6 = ruleset.dnat_rule(v6, [d("2001:db8::13", port=None), d("2001:db8::14", port=None)], opts)
    assert r6 is not None and r6[0]["dnat"]["family"] == "ip6"
    assert r6[0]["dnat"]["addr"]["map"]["data"]["set"][0] == [0, "2001:db8::13"]


def test_fwmark_service_matches_its_family() -> None:
    s = svc(address=None, port=None, fwmark=7, mode="rr")
    assert s.key() == {"concat": ["ipv4", 7]}
    assert s.dispatch == ("vs_mark", "empty_mark")
    rule = ruleset.dnat_rule(s, [d("192.0.2.13", port=None), d("192.0.2.14", port=None)], Options())
    assert rule is not None
    assert rule[0]["match"] == {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}


def test_full_transaction_only_touches_our_table() -> None:
    services = [svc(0), svc(1, port=443), svc(2, family=6, address=ip_address("2001:db8::1"))]
    state = State(
        members={0: (d("192.0.2.13"),), 1: (), 2: None},
        vips=frozenset({ip_address("203.0.113.5")}),
    )
    opts = Options(table="lbt", masquerade=True, vip_firewall=True)
    cmds = ruleset.full(services, state, opts)
    table = {"family": "inet", "name": "lbt"}
    assert cmds[:3] == [
        {"add": {"table": table}},
        {"delete": {"table": table}},
        {"add": {"table": table}},
    ]
    for cmd in cmds[3:]:
        ((verb, body),) = cmd.items()
        ((_, obj),) = body.items()
        assert verb == "add" and obj["family"] == "inet" and obj["table"] == "lbt"
    shape = ruleset.expected_shape(cmds)
    assert shape.chains["vs0"] == ("s0",)
    assert shape.chains["vs1"] == ()  # empty: the guard rejects it
    assert shape.chains["vs2"] == ()  # not reported yet
    assert shape.sets["empty4"] == 1 and shape.sets["vs4"] == 2 and shape.sets["vs6"] == 1
    assert shape.sets["vips4"] == 1 and shape.sets["vips6"] == 0
    assert {"guard_pre", "guard_out", "reject_empty", "snat_post", "vips_in"} <= set(shape.chains)
    # without reject: no guard chains or maps, a drop rule instead
    plain = ruleset.expected_shape(ruleset.full(services, state, Options(empty_reject=False)))
    assert "guard_pre" not in plain.chains and "empty4" not in plain.sets
    assert plain.chains["vs1"] == ("s1",)


def test_service_update_toggles_the_empty_element_idempotently() -> None:
    s = svc()
    empty = ruleset.service_update(s, (), Options())
    assert [next(iter(c)) for c in empty] == ["flush", "add"]
    full = ruleset.service_update(s, (d("192.0.2.13"),), Options())
    assert [next(iter(c)) for c in full] == ["flush", "add", "add", "delete"]
    assert full[-1]["delete"]["element"]["name"] == "empty4"


def test_drift_description() -> None:
    cmds = ruleset.full([svc()], State({0: (d("192.0.2.13"),)}), Options())
    want = ruleset.expected_shape(cmds)
    listing = {
        "nftables": [
            {"table": {"family": "inet", "name": "halo"}},
            *[{"chain": {"family": "inet", "table": "halo", "name": name}} for name in want.chains],
            *[
                {"rule": {"family": "inet", "table": "halo", "chain": name, "comment": c}}
                for name, comments in want.chains.items()
                for c in comments
                if c
            ],
            *[
                {"rule": {"family": "inet", "table": "halo", "chain": name}}
                for name, comments in want.chains.items()
                for c in comments
                if not c
            ],
            *[
                {"map": {"family": "inet", "table": "halo", "name": n, "elem": [0] * k}}
                for n, k in want.sets.items()
            ],
            {"table": {"family": "ip", "name": "halo"}},  # another family: not ours
            {"chain": {"family": "ip", "table": "halo", "name": "x"}},
        ]
    }
    have = ruleset.listed_shape(listing, "halo")
    assert have is not None and ruleset.describe_drift(want, have) is None
    assert ruleset.listed_shape({"nftables": []}, "halo") is None
    assert ruleset.describe_drift(want, None) == "the table is gone"
    listing["nftables"] = [
        i for i in listing["nftables"] if i.get("rule", {}).get("comment") != "s0"
    ]
    have = ruleset.listed_shape(listing, "halo")
    assert ruleset.describe_drift(want, have) == "chain vs0 has 0 rules instead of 1"


# ------------------------------------------------------------------------------ config


def test_plan_maps_schedulers_and_reports_what_it_cannot_do(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        """
        backends:
          lb: {type: nftables, virtual_servers: [a, b, c, d, e, g, nosuch]}
        virtual_servers:
          - {name: a, address: 203.0.113.1, port: 80, real_servers: [{address: 192.0.2.13}]}
          - {name: b, address: 203.0.113.1, port: 81, lb_kind: DR,
             real_servers: [{address: 192.0.2.13}]}
          - {name: c, address: 203.0.113.1, port: 82, lb_algo: rr, persistence_timeout: 60,
             persistence_granularity: 255.255.254.0, real_servers: [{address: 192.0.2.13}]}
          - {name: d, fwmark: 9, lb_algo: sh, real_servers: [{address: "2001:db8::13"}]}
          - {name: e, address: 203.0.113.1, port: 84, lb_algo: fo,
             real_servers: [{address: 192.0.2.13}]}
          - {name: f, address: 203.0.113.1, port: 85, real_servers: [{address: 192.0.2.13}]}
          - {name: g, group: ["203.0.113.2-3 80"], real_servers: [{address: 192.0.2.13}]}
        """,
    )
    plan = plan_services(cfg.model, cfg.model.backends["lb"].config.virtual_servers)
    modes = {s.label: (s.index, s.mode, s.family, s.hash_prefix) for s in plan.services}
    assert modes == {
        "a": (0, "wrr", 4, None),
        "c": (2, "hash", 4, 23),
        "d": (3, "hash", 6, None),
        "e": (4, "fo", 4, None),
    }
    assert plan.problems == [
        "virtual server 'nosuch' is not in the configuration",
        "b: lb_kind DR cannot be done with nftables DNAT (use the ipvs backend); service left out",
        "g: a virtual server group cannot be done with the nftables backend (use the ipvs"
        " backend); service left out",
    ]
    assert plan.notes == [
        "a: lb_algo wlc needs connection counts nftables does not keep; balancing with wrr instead",
        "c: persistence by a hash of the client address (the timeout does not apply)",
        "c: persistence_granularity /23 rounded to /16 (whole bytes)",
    ]


def test_schema_defaults_and_checks(tmp_path: Path) -> None:
    c = NftablesBackendConfig()
    assert (c.table, c.masquerade, c.empty_service, c.keep_on_stop) == (
        "halo",
        False,
        "reject",
        False,
    )
    assert float(c.reconcile_interval) == 5.0
    with pytest.raises(ConfigError) as err:
        config(tmp_path, 'backends:\n  lb: {type: nftables, table: "9bad"}\n')
    assert "backends.lb.table: must be a letter followed by" in err.value.lines[0]
    with pytest.raises(ConfigError) as err:
        config(
            tmp_path,
            """
            backends:
              lb: {type: nftables, masquerade: true, snat_to: [192.0.2.1, 192.0.2.2]}
            """,
        )
    text = "\n".join(err.value.lines)
    assert "backends.lb.snat_to: use either masquerade or snat_to, not both" in text
    assert "backends.lb.snat_to: at most one address per family" in text


def test_plugin_module_is_light() -> None:
    code = (
        "import sys, halo_backend_nftables.plugin as p; p.halo_plugin_types();"
        " print(sorted(m for m in sys.modules if m.startswith('halo_backend_nftables')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['halo_backend_nftables', 'halo_backend_nftables.plugin']"


# ------------------------------------------------------------------------------ runtime

FAKE_NFT = """\
#!{python}
# A stand-in for nft: records each transaction, refuses the ones naming a poisoned address.
import json, sys
log = {log!r}
args = sys.argv[1:]
if args[:3] == ["-j", "list", "tables"]:
    print(json.dumps({{"nftables": [{tables}]}}))
    sys.exit(0)
if args[:3] == ["-j", "-f", "-"]:
    doc = sys.stdin.read()
    with open(log, "a") as fh:
        fh.write(doc + "\\n")
    if "192.0.2.66" in doc:
        print("Error: Could not process rule: No such file or directory", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
sys.exit(2)
"""

CONF = """
backends:
  lb: {type: nftables, reconcile_interval: 0, startup_grace: 3s}
virtual_servers:
  - {name: a, address: 203.0.113.1, port: 80, real_servers: [{address: 192.0.2.13}]}
  - {name: b, address: 203.0.113.1, port: 81, real_servers: [{address: 192.0.2.14}]}
"""


class Rig:
    def __init__(self, tmp_path: Path, table_exists: bool = False) -> None:
        self.log = tmp_path / "nft.log"
        fake = tmp_path / "nft"
        table = '{"table": {"family": "inet", "name": "halo"}}' if table_exists else ""
        fake.write_text(FAKE_NFT.format(python=sys.executable, log=str(self.log), tables=table))
        fake.chmod(0o755)
        self.cfg = config(tmp_path, CONF)
        import dataclasses

        conf = dataclasses.replace(self.cfg.model.backends["lb"].config, nft=str(fake))
        self.bus = EventBus()
        self.clock = FakeClock()
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append, name="test")
        ctx = PluginContext("lb", self.cfg.model, self.bus, self.clock, Scheduler(self.clock))
        self.backend = NftablesBackend(conf, ctx)

    def pool(self, name: str, *addresses: str) -> PoolChanged:
        vs = next(v for v in self.cfg.model.virtual_servers if v.label == name)
        members = tuple(PoolMember(a, vs.port, 1) for a in addresses)
        return PoolChanged(
            virtual_server=name, service=vs, members=members, quorum=True, reason="t"
        )

    def transactions(self) -> list[list[dict[str, Any]]]:
        if not self.log.exists():
            return []
        return [json.loads(x)["nftables"] for x in self.log.read_text().splitlines()]

    async def settle(self) -> list[Event]:
        await self.bus.drain()
        return self.events


async def test_concurrent_changes_batch_and_a_refused_service_holds_nobody_back(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    await rig.backend.start()
    assert len(rig.transactions()) == 1  # the skeleton
    # both services change while one transaction runs: the second batch holds both
    await asyncio.gather(
        rig.backend.handle(rig.pool("a", "192.0.2.13")),
        rig.backend.handle(rig.pool("b", "192.0.2.14")),
    )
    assert len(rig.transactions()) == 3
    # a poisoned b and a good a together: the batch is refused, then each goes alone
    async with rig.backend.lock:  # both arrive while a transaction is under way
        tasks = [
            asyncio.create_task(rig.backend.handle(rig.pool("b", "192.0.2.66"))),
            asyncio.create_task(rig.backend.handle(rig.pool("a", "192.0.2.13", "192.0.2.15"))),
        ]
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    events = await rig.settle()
    failed = [e for e in events if isinstance(e, BackendFailed)]
    assert len(failed) == 1 and failed[0].error.startswith("b: ")
    applied = [e.detail for e in events if isinstance(e, BackendApplied)]
    assert applied[-1] == "a: 192.0.2.13:80 w1, 192.0.2.15:80 w1"
    assert len(rig.transactions()) == 6  # the refused batch of two, then one each
    assert rig.backend.status()["services"]["b"]["applied"] == "192.0.2.14:81 w1"
    await rig.backend.stop()
    assert rig.transactions()[-1] == ruleset.delete_table(Options())


async def test_a_kept_table_serves_until_every_service_reported(tmp_path: Path) -> None:
    rig = Rig(tmp_path, table_exists=True)
    await rig.backend.start()
    await rig.backend.handle(rig.pool("a", "192.0.2.13"))
    assert rig.transactions() == []  # b has not spoken: the old table keeps serving
    await rig.backend.handle(rig.pool("b", "192.0.2.14"))
    (only,) = rig.transactions()
    assert only[:2] == ruleset.delete_table(Options())  # one atomic replacement
    await rig.backend.stop()


async def test_start_up_grace_builds_without_the_silent_service(tmp_path: Path) -> None:
    rig = Rig(tmp_path, table_exists=True)
    await rig.backend.start()
    await rig.backend.handle(rig.pool("a", "192.0.2.13"))
    await rig.clock.advance(2.9)
    assert rig.transactions() == []
    await rig.clock.advance(0.2)
    for _ in range(500):  # the rebuild runs in a task of its own (a real subprocess)
        if rig.transactions():
            break
        await asyncio.sleep(0.01)
    assert len(rig.transactions()) == 1
    assert rig.backend.status()["services"]["b"]["applied"] == "not reported"
    await rig.backend.stop()


def test_unusable_real_servers_are_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(tmp_path)
    service = rig.backend.services[0]
    dests = (d("192.0.2.13"), d("2001:db8::13"), d("192.0.2.14", port=None))
    rig.backend._note_unusable(service, dests)
    rig.backend._note_unusable(service, dests)
    assert [r.getMessage() for r in caplog.records if "left out" in r.getMessage()] == [
        "lb: a: real server [2001:db8::13]:80 left out: another address family"
        " (nftables cannot translate between them)",
        "lb: a: real server 192.0.2.14 left out: no port while other real servers have one",
    ]
