"""Real-server pools: keepalived's virtual_server semantics with checks driven by hand."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from halo_core import plugins
from halo_core.bus import EventBus
from halo_core.config import load_text
from halo_core.events import Event, PoolChanged, RealServerChanged
from halo_core.plugin_api import CheckResult
from halo_core.scheduler import Scheduler
from halo_engine_pools.pool import Pool
from halo_tool_lab.clock import FakeClock

BASE = """
virtual_servers:
  - address: 192.0.2.100
    port: 80
    lb_algo: rr
    lb_kind: DR
    persistence_timeout: 50
{extra}    real_servers:
      - address: 192.0.2.21
        weight: 3
        checks: [{{type: tcp, connect_timeout: 3}}]
      - address: 192.0.2.22
        weight: 1
        checks: [{{type: tcp}}]
"""


def make(extra: str = "") -> tuple[Pool, list[Event]]:
    p = plugins.load()
    text = BASE.format(extra=extra).replace(", connect_timeout: 3", "")  # tcp has no such key
    cfg = load_text(text, "vs.yaml", p)
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    pool = Pool(cfg.model.virtual_servers[0], plugins=p, scheduler=Scheduler(FakeClock()), bus=bus)
    return pool, seen


def fail(pool: Pool, index: int, up: bool) -> None:
    runner = next(iter(pool.servers[index].checks.values()))
    for _ in range(runner.config.fall if not up else runner.config.rise):
        runner.record(CheckResult(up, "driven by the test"), 0.001)


def members(event: Any) -> list[tuple[str, int | None, int]]:
    return [(m.address, m.port, m.weight) for m in event.members]


async def test_desired_state_follows_checks() -> None:
    pool, seen = make()
    pool.publish("start")
    fail(pool, 0, up=False)
    await pool.bus.drain()
    pools = [e for e in seen if isinstance(e, PoolChanged)]
    assert members(pools[0]) == [("192.0.2.21", 80, 3), ("192.0.2.22", 80, 1)]
    assert members(pools[-1]) == [("192.0.2.22", 80, 1)]
    rs = [e for e in seen if isinstance(e, RealServerChanged)]
    assert [(e.real_server, e.up) for e in rs] == [("192.0.2.21:80", False)]
    fail(pool, 0, up=True)
    assert [m.address for m in pool.members()] == ["192.0.2.21", "192.0.2.22"]


async def test_inhibit_on_failure_keeps_weight_zero() -> None:
    pool, _ = make("    inhibit_on_failure: true\n")
    fail(pool, 1, up=False)
    assert [(m.address, m.weight) for m in pool.members()] == [("192.0.2.21", 3), ("192.0.2.22", 0)]


async def test_quorum_hysteresis_and_sorry_server() -> None:
    pool, _ = make("    quorum: 3\n    hysteresis: 1\n    sorry_server: 192.0.2.9 8080\n")
    assert pool.quorum  # live weight 4 >= 3
    fail(pool, 1, up=False)  # live 3: still >= quorum - hysteresis (2)
    assert pool.quorum
    fail(pool, 0, up=False)  # live 0: lost
    assert not pool.quorum
    assert [(m.address, m.port, m.weight, m.sorry) for m in pool.members()] == [
        ("192.0.2.9", 8080, 1, True)
    ]
    fail(pool, 0, up=True)  # live 3: needs quorum + hysteresis (4)
    assert not pool.quorum
    fail(pool, 1, up=True)  # live 4
    assert pool.quorum
    assert all(not m.sorry for m in pool.members())


async def test_alpha_starts_servers_down() -> None:
    pool, _ = make("    alpha: true\n")
    assert pool.members() == ()
    assert not pool.quorum
    fail(pool, 0, up=True)
    assert [m.address for m in pool.members()] == ["192.0.2.21"]


async def test_real_server_check_defaults_to_the_server() -> None:
    pool, _ = make()
    runner = next(iter(pool.servers[0].checks.values()))
    assert (str(runner.target.address), runner.target.port) == ("192.0.2.21", 80)
    assert runner.interval == 60.0  # keepalived's delay_loop default


def test_schema_errors() -> None:
    import pytest

    from halo_core.config import ConfigError

    text = """
virtual_servers:
  - port: 80
    lb_algo: fastest
    real_servers:
      - {address: 192.0.2.21, port: 80}
      - {address: 192.0.2.21}
"""
    with pytest.raises(ConfigError) as exc:
        load_text(text, "vs.yaml", plugins.load())
    assert exc.value.lines == [
        "vs.yaml:4:14: virtual_servers[0].lb_algo: must be one of 'rr', 'wrr', 'lc', 'wlc', "
        "'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'mh', 'fo', 'ovf', 'random', 'hash', "
        "not 'fastest'"
    ]
    with pytest.raises(ConfigError) as exc:
        load_text(text.replace("    lb_algo: fastest\n", ""), "vs.yaml", plugins.load())
    assert exc.value.lines == [
        "vs.yaml:3:5: virtual_servers[0]: needs one of 'address' (with 'port'), 'fwmark'"
        " or 'group'",
        "vs.yaml:6:9: virtual_servers[0].real_servers[1]: 192.0.2.21 port 80 is listed twice",
    ]


class Passing:
    """A checker that passes without probing anything."""

    def __init__(self, config: object, target: object) -> None:
        pass

    async def check(self) -> CheckResult:
        return CheckResult(True, "fine")

    async def close(self) -> None:
        return None


async def test_a_check_that_cannot_start_takes_its_server_out() -> None:
    """A real server's checker that cannot be built fails every round with the reason (the
    core's CheckRunner): the server leaves the pool after `fall` rounds, as with any
    failure, instead of staying in unchecked."""
    pool, seen = make("    delay_loop: 1\n")
    runner = next(iter(pool.servers[0].checks.values()))
    runner.ptype = replace(runner.ptype, factory="halo_no_such_module:make")
    other = next(iter(pool.servers[1].checks.values()))
    other.ptype = replace(other.ptype, factory=Passing)  # no packet leaves this host
    clock = runner.scheduler.clock
    assert isinstance(clock, FakeClock)
    pool.start()
    await clock.advance(1.5)
    await pool.bus.drain()
    assert [m.address for m in pool.members()] == ["192.0.2.22"]
    rs = [e for e in seen if isinstance(e, RealServerChanged)]
    assert [(e.real_server, e.up) for e in rs] == [("192.0.2.21:80", False)]
    assert runner.stats.last_result is not None
    assert runner.stats.last_result.message.startswith("cannot start: ModuleNotFoundError")
    await pool.stop()
