"""The ipvs backend without IPVS: the config plan, the difference, ipvsadm's format, the
ownership file, netlink message handling, and the runtime against an in-memory kernel."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic.ipvs import ipvsmsg

from halo_backend_ipvs import model, runtime
from halo_backend_ipvs.model import (
    DestAttrs,
    DestKey,
    KernelDest,
    KernelService,
    Op,
    ServiceAttrs,
    ServiceKey,
)
from halo_backend_ipvs.runtime import IpvsBackend
from halo_core import plugins
from halo_core.bus import EventBus
from halo_core.config import load
from halo_core.events import BackendApplied, BackendFailed, Event, PoolChanged, PoolMember
from halo_core.plugin_api import PluginContext
from halo_core.scheduler import Scheduler
from halo_tool_lab.clock import FakeClock
from halo_tool_lab.testing import config_errors

V4 = ServiceKey(2, 6, "203.0.113.1", 80)


def config(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "halo.yaml"
    path.write_text(textwrap.dedent(text))
    return load(str(path), plugins.load())


# ------------------------------------------------------------------------------ the plan


def test_plan_from_config(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        """
        virtual_servers:
          - {name: web, address: 203.0.113.1, port: 80, lb_algo: wrr, lb_kind: DR,
             persistence_timeout: 300, persistence_granularity: 255.255.255.0,
             real_servers: [{address: 192.0.2.13}]}
          - {name: v6, address: "2001:db8::1", port: 443, protocol: UDP, lb_algo: sh,
             persistence_timeout: 60.4, persistence_granularity: "ffff:ffff:ffff:ffff::",
             real_servers: [{address: "2001:db8::13"}]}
          - {name: mark, fwmark: 7, lb_kind: TUN, real_servers: [{address: "2001:db8::13"}]}
          - {name: rand, address: 203.0.113.1, port: 81, lb_algo: random}
        """,
    )
    planned, problems = model.plan(cfg.model, None)
    assert [(p.label, p.key, p.attrs, p.fwd) for p in planned] == [
        ("web", V4, ServiceAttrs("wrr", model.F_PERSISTENT, 300, 24), 3),
        ("v6", ServiceKey(10, 17, "2001:db8::1", 443), ServiceAttrs("sh", 1, 60, 64), 0),
        ("mark", ServiceKey(10, 0, "", 0, 7), ServiceAttrs("wlc", 0, 0, 128), 2),
    ]
    assert problems[0].startswith("rand: IPVS has no 'random' scheduler")
    # (two virtual servers for one service: halo check refuses them before a plan is made)
    only, problems = model.plan(cfg.model, ["v6", "nosuch"])
    assert [p.label for p in only] == ["v6"]
    assert problems[0] == "virtual server 'nosuch' is not in the configuration"


def test_dests_of_members() -> None:
    members = [
        PoolMember("192.0.2.13", 8080, 3),
        PoolMember("192.0.2.14", None, 0),
        PoolMember("192.0.2.13", 8080, 1, sorry=True),  # same address/port: first wins
    ]
    planned = model.Planned("web", ServiceKey(2, 6, "203.0.113.1", 0), ServiceAttrs("rr"), 0)
    assert model.dests_of(members, planned) == {
        DestKey("192.0.2.13", 8080): DestAttrs(0, 3),
        DestKey("192.0.2.14", 0): DestAttrs(0, 0),
    }


def test_group_is_one_service_per_address_and_mark(tmp_path: Path) -> None:
    """keepalived's virtual_server_group: ranges expand to one service per address, fwmark
    entries are services of their own, and a member without a port takes each service's."""
    cfg = config(
        tmp_path,
        """
        virtual_servers:
          - name: farm
            group: ["203.0.113.1 80", "203.0.113.10-11 8080", "203.0.113.12/32 8080",
                    "fwmark 7", "2001:db8::a-2001:db8::b 443"]
            lb_algo: mh
            lb_flags: [mh-fallback, mh-port]
            lb_kind: TUN
            tun_type: gue
            tun_port: 6080
            tun_checksum: remcsum
            real_servers: [{address: 192.0.2.13}]
        """,
    )
    planned, problems = model.plan(cfg.model, None)
    assert problems == []
    assert [str(p.key) for p in planned] == [
        "TCP 203.0.113.1:80",
        "TCP 203.0.113.10:8080",
        "TCP 203.0.113.11:8080",
        "TCP 203.0.113.12:8080",
        "FWM 7 (IPv4)",
        "TCP [2001:db8::a]:443",
        "TCP [2001:db8::b]:443",
    ]
    flags = model.F_SCHED1 | model.F_SCHED2
    assert {p.attrs for p in planned} == {
        ServiceAttrs("mh", flags, 0, 32),
        ServiceAttrs("mh", flags, 0, 128),
    }
    assert {(p.label, p.fwd, p.tunnel) for p in planned} == {("farm", 2, (1, 6080, 2))}
    dests = model.dests_of([PoolMember("192.0.2.13", None, 2)], planned[1])
    assert dests == {DestKey("192.0.2.13", 8080): DestAttrs(2, 2, 0, 0, 1, 6080, 2)}
    table = model.render(
        [model.KernelService(p.key, p.attrs) for p in planned[:1]], "IP Virtual Server"
    )
    assert "TCP  203.0.113.1:80 mh (mh-fallback,mh-port)" in table


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ('group: ["203.0.113.1-0 80"]', "the range ends before it starts"),
        ('group: ["203.0.113.1-256 80"]', "the range end '256' is too large"),
        ('group: ["203.0.0.0/16 80"]', "more than 4096 addresses"),
        ('group: ["2001:db8::a-g 80"]', "the range end 'g' is no number"),
        ('group: ["fwmark x"]', "fwmark needs a number"),
        ('group: ["nohost 80"]', "'nohost' is not an IP address"),
        ("address: 203.0.113.1\n    port: 80\n    group: [fwmark 7]", "needs one of"),
        ('group: ["203.0.113.1 80"]\n    lb_flags: [sh-port]', "sh-port needs lb_algo sh"),
        ('group: ["203.0.113.1 80"]\n    tun_type: gre', "tun_type: only for lb_kind TUN"),
        (
            'group: ["203.0.113.1 80"]\n    lb_kind: TUN\n    tun_type: gue',
            "tun_type gue needs tun_port",
        ),
        (
            'group: ["203.0.113.1 80"]\n    lb_kind: TUN\n    tun_checksum: csum',
            "ipip tunnels have no checksum option",
        ),
    ],
)
def test_group_and_tunnel_errors_have_a_location(extra: str, error: str) -> None:
    errors = config_errors("virtual_servers:\n  - name: farm\n    " + extra + "\n")
    assert any(error in e and e.startswith("f.yaml:") for e in errors), errors


def test_diff_applies_only_the_difference() -> None:
    attrs = ServiceAttrs("rr")
    want = {DestKey("192.0.2.13", 80): DestAttrs(0, 1), DestKey("192.0.2.14", 80): DestAttrs(0, 2)}
    created = model.diff(V4, attrs, want, None)
    assert [str(o) for o in created] == [
        "add service rr",
        "add dest 192.0.2.13:80 weight 1",
        "add dest 192.0.2.14:80 weight 2",
    ]
    have = KernelService(V4, attrs, dests={d: KernelDest(a, active=5) for d, a in want.items()})
    assert model.diff(V4, attrs, want, have) == []  # matches: not a single request
    # sorry server in, real servers out; weight change; scheduler change
    have.dests[DestKey("192.0.2.15", 80)] = KernelDest(DestAttrs(0, 1))
    new = {DestKey("192.0.2.13", 80): DestAttrs(0, 0), DestKey("192.0.2.99", 80): DestAttrs(0, 1)}
    ops = model.diff(V4, ServiceAttrs("wlc"), new, have)
    assert [o.kind for o in ops] == ["set_service", "set_dest", "add_dest", "del_dest", "del_dest"]
    assert [str(o.dest) for o in ops[1:]] == [
        "192.0.2.13:80",
        "192.0.2.99:80",
        "192.0.2.14:80",
        "192.0.2.15:80",
    ]


# ------------------------------------------------------------------------------ ipvsadm -Ln

# Printed by ipvsadm 1.31 -Ln for this very table, inside the IPVS VM.
IPVSADM_LN = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  203.0.113.1:80 rr
  -> 192.0.2.13:8080              Masq    1      0          0         
  -> 192.0.2.14:8080              Route   2      0          0         
TCP  203.0.113.2:0 wrr persistent 300 mask 255.255.255.0
SCTP 203.0.113.3:80 mh
TCP  [2001:db8::1]:443 sh
  -> [2001:db8::13]:8080          Masq    1      0          0         
  -> [2001:db8::14]:8080          Tunnel  2      0          0         
UDP  [2001:db8::2]:443 sh persistent 60 mask 64
FWM  7 lc
  -> 192.0.2.13:8080              Masq    1      7          12        
FWM  8 IPv6 wlc
"""  # noqa: W291 (ipvsadm pads its columns)


def test_render_matches_ipvsadm() -> None:
    def dests(*items: tuple[str, int, int]) -> dict[DestKey, KernelDest]:
        return {DestKey(a, 8080): KernelDest(DestAttrs(fwd, w)) for a, fwd, w in items}

    services = [  # in the kernel's dump order (hash order; destinations newest first)
        KernelService(
            ServiceKey(10, 6, "2001:db8::1", 443),
            ServiceAttrs("sh", netmask=128),
            dests=dests(("2001:db8::14", 2, 2), ("2001:db8::13", 0, 1)),
        ),
        KernelService(ServiceKey(2, 0, "", 0, 8 - 1), ServiceAttrs("lc")),
        KernelService(ServiceKey(10, 0, "", 0, 8), ServiceAttrs("wlc", netmask=128)),
        KernelService(ServiceKey(2, 132, "203.0.113.3", 80), ServiceAttrs("mh")),
        KernelService(ServiceKey(2, 6, "203.0.113.2", 0), ServiceAttrs("wrr", 1, 300, 24)),
        KernelService(
            ServiceKey(10, 17, "2001:db8::2", 443), ServiceAttrs("sh", 1, 60, netmask=64)
        ),
        KernelService(
            ServiceKey(2, 6, "203.0.113.1", 80),
            ServiceAttrs("rr"),
            dests=dests(("192.0.2.14", 3, 2), ("192.0.2.13", 0, 1)),
        ),
    ]
    services[1].dests = {DestKey("192.0.2.13", 8080): KernelDest(DestAttrs(0, 1), 7, 12)}
    assert model.render(services, "IP Virtual Server version 1.2.1 (size=4096)") == IPVSADM_LN
    doc = model.to_json(services)
    assert doc[-1]["service"] == "TCP 203.0.113.1:80"
    assert doc[-1]["dests"][1] == {
        "address": "192.0.2.14",
        "port": 8080,
        "forward": "Route",
        "weight": 2,
        "active": 0,
        "inactive": 0,
    }


# ------------------------------------------------------------------------------ netlink


@pytest.mark.parametrize(("af", "prefix"), [(2, 32), (2, 24), (2, 0), (10, 128), (10, 64)])
def test_netmask_attribute_round_trip(af: int, prefix: int) -> None:
    assert runtime._netmask_prefix(af, runtime._netmask_attr(af, prefix)) == prefix


def test_requests_carry_every_field_and_parse_back() -> None:
    key = ServiceKey(10, 17, "2001:db8::2", 443)
    attrs = ServiceAttrs("sh", model.F_PERSISTENT, 60, 64)
    msg = ipvsmsg()
    msg["cmd"] = 1
    msg["version"] = 1
    msg["attrs"] = [("IPVS_CMD_ATTR_SERVICE", runtime._service_request(key, attrs).dump_nla())]
    msg.encode()
    back = ipvsmsg(msg.data)
    back.decode()
    parsed = runtime.parse_service(back)
    assert (parsed.key, parsed.attrs) == (key, attrs)

    dest = runtime._dest_request(DestKey("192.0.2.13", 8080), DestAttrs(fwd=0, weight=3))
    assert (dest["fwd_method"], dest["weight"], dest["port"]) == (0, 3, 8080)
    msg = ipvsmsg()
    msg["cmd"] = 5
    msg["version"] = 1
    msg["attrs"] = [("IPVS_CMD_ATTR_DEST", dest.dump_nla())]
    msg.encode()
    back = ipvsmsg(msg.data)
    back.decode()
    assert runtime.parse_dest(back) == (
        DestKey("192.0.2.13", 8080),
        KernelDest(DestAttrs(fwd=0, weight=3)),
    )


def test_fwmark_request_has_no_address() -> None:
    svc = runtime._service_request(ServiceKey(2, 0, "", 0, 7), ServiceAttrs("rr"))
    assert svc["fwmark"] == 7 and "addr" not in svc and svc["netmask"] == "255.255.255.255"


# ------------------------------------------------------------------------------ ownership


def test_owned_file_round_trip_and_damage(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ipvs-lb.json"
    assert model.read_owned(path) == (set(), None)
    keys = {V4, ServiceKey(2, 0, "", 0, 7)}
    model.write_owned(path, keys)
    assert model.read_owned(path) == (keys, None)
    assert [p.name for p in path.parent.iterdir()] == ["ipvs-lb.json"]  # no temp file left
    path.write_text("{not json")
    owned, problem = model.read_owned(path)
    assert owned == set() and problem is not None and problem.startswith(f"cannot read {path}")


# ------------------------------------------------------------------------------ runtime


class FakeKernel:
    """An in-memory IPVS table with the kernel's error codes."""

    def __init__(self) -> None:
        self.table: dict[ServiceKey, KernelService] = {}
        self.requests: list[Op] = []
        self.refuse: dict[str, int] = {}  # str(dest) → errno for dest adds
        self.opened = self.closed = False

    async def open(self, *, modprobe: bool = True) -> None:
        self.opened = True

    def close(self) -> None:
        self.closed = True

    async def services(self) -> list[KernelService]:
        return [KernelService(s.key, s.attrs) for s in self.table.values()]

    async def dests(self, key: ServiceKey) -> dict[DestKey, KernelDest]:
        return dict(self.table[key].dests)

    async def get(self, key: ServiceKey) -> KernelService | None:
        have = self.table.get(key)
        if have is None:
            return None
        return KernelService(have.key, have.attrs, dests=dict(have.dests))

    async def execute(self, op: Op) -> None:
        self.requests.append(op)
        svc = self.table.get(op.service)
        if op.kind == "add_service":
            assert op.attrs is not None
            self.table[op.service] = KernelService(op.service, op.attrs)
        elif op.kind == "set_service":
            assert svc is not None and op.attrs is not None
            svc.attrs = op.attrs
        elif op.kind == "del_service":
            self.table.pop(op.service, None)
        else:
            assert svc is not None and op.dest is not None
            if op.kind == "del_dest":
                svc.dests.pop(op.dest, None)
                return
            code = self.refuse.get(str(op.dest))
            if code:
                raise NetlinkError(code)
            assert op.dest_attrs is not None
            svc.dests[op.dest] = KernelDest(op.dest_attrs)


CONF = """
global: {{state_dir: {state}}}
backends:
  lb: {{type: ipvs, reconcile_interval: 1s, flush_on_stop: {flush}}}
virtual_servers:
  - {{name: a, address: 203.0.113.1, port: 80, lb_algo: rr,
     real_servers: [{{address: 192.0.2.13}}, {{address: 192.0.2.14}}]}}
  - {{name: b, address: 203.0.113.1, port: 81, lb_algo: wrr,
     real_servers: [{{address: 192.0.2.13}}]}}
"""
A = ServiceKey(2, 6, "203.0.113.1", 80)
B = ServiceKey(2, 6, "203.0.113.1", 81)
FOREIGN = ServiceKey(2, 6, "203.0.113.99", 80)
STALE = ServiceKey(2, 6, "203.0.113.98", 80)


class Rig:
    def __init__(self, tmp_path: Path, flush: bool = False) -> None:
        self.state = tmp_path / "state"
        self.cfg = config(tmp_path, CONF.format(state=self.state, flush=str(flush).lower()))
        self.bus = EventBus()
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append, name="test")
        self.clock = FakeClock()
        ctx = PluginContext("lb", self.cfg.model, self.bus, self.clock, Scheduler(self.clock))
        self.backend = IpvsBackend(self.cfg.model.backends["lb"].config, ctx)
        self.kernel = FakeKernel()
        self.backend.kernel = self.kernel  # type: ignore[assignment]

    def pool(self, name: str, *members: tuple[str, int]) -> PoolChanged:
        vs = next(v for v in self.cfg.model.virtual_servers if v.label == name)
        ms = tuple(PoolMember(a, vs.port, w) for a, w in members)
        return PoolChanged(virtual_server=name, service=vs, members=ms, quorum=True, reason="t")

    async def events_of(self, kind: type) -> list[Any]:
        await self.bus.drain()
        return [e for e in self.events if isinstance(e, kind)]


async def test_start_removes_stale_services_and_never_touches_foreign_ones(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    rig.kernel.table[FOREIGN] = KernelService(FOREIGN, ServiceAttrs("rr"))
    rig.kernel.table[STALE] = KernelService(STALE, ServiceAttrs("wlc"))
    model.write_owned(rig.state / "ipvs-lb.json", {STALE, A})
    await rig.backend.start()
    assert set(rig.kernel.table) == {FOREIGN}
    assert [str(o) for o in rig.kernel.requests] == ["del service TCP 203.0.113.98:80"]
    assert model.read_owned(rig.state / "ipvs-lb.json") == ({A, B}, None)
    await rig.backend.handle(rig.pool("a", ("192.0.2.13", 1), ("192.0.2.14", 1)))
    await rig.backend.handle(rig.pool("b", ("192.0.2.13", 1)))
    assert set(rig.kernel.table) == {FOREIGN, A, B}
    n = len(rig.kernel.requests)
    await rig.backend.handle(rig.pool("a", ("192.0.2.13", 1), ("192.0.2.14", 1)))  # again
    await rig.backend.reconcile()
    assert len(rig.kernel.requests) == n  # nothing differs: nothing sent
    await rig.backend.stop()
    assert set(rig.kernel.table) == {FOREIGN, A, B}  # kept by default
    assert rig.kernel.closed


async def test_errors_are_per_service_reported_once_and_retried(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.backend.start()
    rig.kernel.refuse["192.0.2.14:80"] = errno.EINVAL
    await rig.backend.handle(rig.pool("a", ("192.0.2.13", 1), ("192.0.2.14", 1)))
    await rig.backend.handle(rig.pool("b", ("192.0.2.13", 1)))
    for _ in range(3):
        await rig.backend.reconcile()
    failed = await rig.events_of(BackendFailed)
    assert [e.error for e in failed] == [
        "a: add dest 192.0.2.14:80 weight 1: Invalid argument (errno 22)"
    ]
    assert set(rig.kernel.table[B].dests) == {DestKey("192.0.2.13", 81)}
    assert rig.backend.status()["services"]["a"]["error"] == "Invalid argument (errno 22)"
    rig.kernel.refuse.clear()
    await rig.backend.reconcile()
    assert set(rig.kernel.table[A].dests) == {DestKey("192.0.2.13", 80), DestKey("192.0.2.14", 80)}
    assert rig.backend.status()["services"]["a"]["error"] is None
    await rig.backend.stop()


async def test_drift_is_repaired_by_the_periodic_reconcile(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.backend.start()
    await rig.backend.handle(rig.pool("a", ("192.0.2.13", 2), ("192.0.2.14", 1)))
    del rig.kernel.table[A].dests[DestKey("192.0.2.14", 80)]  # ipvsadm -d behind our back
    rig.kernel.table[A].dests[DestKey("192.0.2.13", 80)].attrs = DestAttrs(3, 2)  # NAT → DR
    await rig.clock.advance(1.01)  # the scheduler's reconcile job
    dests = {d: kd.attrs for d, kd in rig.kernel.table[A].dests.items()}
    assert dests == {
        DestKey("192.0.2.13", 80): DestAttrs(0, 2),
        DestKey("192.0.2.14", 80): DestAttrs(0, 1),
    }
    applied = await rig.events_of(BackendApplied)
    assert (
        applied[-1].detail == "a: set dest 192.0.2.13:80 weight 2; add dest 192.0.2.14:80 weight 1"
    )
    assert rig.backend.counters["repaired"] == 1
    await rig.backend.stop()


async def test_flush_on_stop_removes_only_ours(tmp_path: Path) -> None:
    rig = Rig(tmp_path, flush=True)
    rig.kernel.table[FOREIGN] = KernelService(FOREIGN, ServiceAttrs("rr"))
    await rig.backend.start()
    await rig.backend.handle(rig.pool("a", ("192.0.2.13", 1)))
    await rig.backend.stop()
    assert set(rig.kernel.table) == {FOREIGN}
    assert model.read_owned(rig.state / "ipvs-lb.json") == (set(), None)


async def test_unexpected_errors_never_reach_the_bus(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    await rig.backend.start()

    async def boom(key: ServiceKey) -> None:
        raise RuntimeError("kernel exploded")

    rig.kernel.get = boom  # type: ignore[method-assign,assignment]
    await rig.backend.handle(rig.pool("a", ("192.0.2.13", 1)))  # does not raise
    failed = await rig.events_of(BackendFailed)
    assert failed[-1].error == "RuntimeError: kernel exploded"
    await rig.backend.stop()


# ------------------------------------------------------------------------------ the plugin


def test_plugin_module_does_not_import_pyroute2() -> None:
    code = "import sys, halo_backend_ipvs.plugin; print('pyroute2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(os.path.exists("/proc/net/ip_vs"), reason="this kernel has IPVS")
async def test_no_ipvs_is_a_clear_start_error() -> None:
    kernel = runtime.KernelIpvs()
    with pytest.raises(runtime.IpvsUnavailable, match="IPVS is not available in this kernel"):
        await kernel.open(modprobe=False)


@pytest.mark.skipif(os.path.exists("/proc/net/ip_vs"), reason="this kernel has IPVS")
def test_halo_ipvs_command_without_ipvs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "halo_core.cli", "ipvs", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith("halo ipvs: IPVS is not available in this kernel (ip_vs)")


def test_halo_ipvs_help_lists_the_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "halo_core.cli", "ipvs", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ipvsadm -Ln" in out and "--json" in out


def test_settings_requests_encode_the_kernel_attributes() -> None:
    """lvs_timeouts and lvs_sync_daemon as IPVS_CMD_SET_CONFIG / IPVS_CMD_NEW_DAEMON: the
    attributes read back as sent (the kernel test checks them with ipvsadm)."""
    from ipaddress import IPv4Address

    from halo_backend_ipvs.plugin import IpvsSyncDaemon, IpvsTimeouts
    from halo_core.schema import Seconds

    msg = runtime.timeouts_request(IpvsTimeouts(tcp=Seconds(900), udp=Seconds(30)))
    msg.encode()
    back = runtime.ipvs_settings_msg(msg.data)
    back.decode()
    assert back["cmd"] == 12
    assert back.get_attr("IPVS_CMD_ATTR_TIMEOUT_TCP") == 900
    assert back.get_attr("IPVS_CMD_ATTR_TIMEOUT_UDP") == 30
    assert back.get_attr("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN") is None  # left to the kernel

    sync = IpvsSyncDaemon(
        interface="eth1",
        vrrp_instance="VI_1",
        syncid=5,
        maxlen=1400,
        mcast_group=IPv4Address("239.0.0.5"),
        mcast_port=8849,
        mcast_ttl=2,
    )
    msg = runtime.daemon_request(sync, "master", start=True)
    msg.encode()
    back = runtime.ipvs_settings_msg(msg.data)
    back.decode()
    daemon = back.get_attr("IPVS_CMD_ATTR_DAEMON")
    assert back["cmd"] == 9
    assert [
        daemon.get_attr(f"IPVS_DAEMON_ATTR_{k}") for k in ("STATE", "MCAST_IFN", "SYNC_ID")
    ] == [
        1,
        "eth1",
        5,
    ]
    assert daemon.get_attr("IPVS_DAEMON_ATTR_MCAST_GROUP") == "239.0.0.5"
    assert daemon.get_attr("IPVS_DAEMON_ATTR_MCAST_PORT") == 8849
    stop = runtime.daemon_request(sync, "backup", start=False)
    assert stop["cmd"] == 10 and stop["attrs"][0][1]["attrs"] == [("IPVS_DAEMON_ATTR_STATE", 2)]
