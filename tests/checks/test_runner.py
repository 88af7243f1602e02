"""The check runner: rise/fall, time-outs, exceptions, retries and warmup, on a fake clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import ClassVar

from halo_core.bus import EventBus
from halo_core.checks import CheckRunner
from halo_core.events import CheckStateChanged, Event
from halo_core.plugin_api import CheckerConfig, CheckResult, CheckTarget, PluginType
from halo_core.scheduler import Scheduler
from halo_core.schema import Seconds
from halo_tool_lab.clock import FakeClock


@dataclass(frozen=True, kw_only=True)
class ScriptedCheck(CheckerConfig):
    """Test checker config; results come from a list."""


class Scripted:
    """Returns queued outcomes: True/False, 'hang', or 'raise'."""

    outcomes: ClassVar[list[object]] = []
    calls: ClassVar[int] = 0

    def __init__(self, config: ScriptedCheck, target: CheckTarget) -> None:
        self.target = target

    async def check(self) -> CheckResult:
        Scripted.calls += 1
        outcome = Scripted.outcomes.pop(0) if Scripted.outcomes else True
        if outcome == "hang":
            await asyncio.sleep(3600)
        if outcome == "raise":
            raise RuntimeError("broken checker")
        return CheckResult(bool(outcome), "scripted")

    async def close(self) -> None:
        return None


PTYPE = PluginType("checker", "scripted", ScriptedCheck, Scripted)


def runner(clock: FakeClock, **opts: object) -> tuple[CheckRunner, list[tuple[str, bool]]]:
    cfg = replace(ScriptedCheck(), interval=Seconds(1.0), **opts)  # type: ignore[arg-type]
    changes: list[tuple[str, bool]] = []
    r = CheckRunner(
        "c",
        PTYPE,
        cfg,
        scheduler=Scheduler(clock, seed=1),
        bus=EventBus(),
        on_change=lambda n, up, res: changes.append((n, up)),
    )
    return r, changes


async def drive(r: CheckRunner, outcomes: list[object]) -> None:
    if r.checker is None:
        r.checker = Scripted(ScriptedCheck(), r.target)
    Scripted.outcomes = list(outcomes)
    for _ in outcomes:
        await r.run_once()


async def test_fall_and_rise_hysteresis() -> None:
    r, changes = runner(FakeClock(), fall=3, rise=2)
    await drive(r, [False, False, True, False, False, False])
    assert changes == [("c", False)]  # the success in between reset the streak
    await drive(r, [True, False, True, True])
    assert changes == [("c", False), ("c", True)]
    assert r.stats.transitions == 2


async def test_timeout_counts_as_failure_with_reason() -> None:
    clock = FakeClock()
    r, changes = runner(clock, timeout=Seconds(0.05))
    r.checker = Scripted(ScriptedCheck(), r.target)
    Scripted.outcomes = ["hang"]
    await r.run_once()  # the real event loop times it out after 50 ms
    assert changes == [("c", False)]
    assert r.stats.timeouts == 1
    assert r.stats.last_result is not None
    assert "timed out after 0.05s" in r.stats.last_result.message


async def test_exception_is_a_failure_not_a_crash() -> None:
    r, changes = runner(FakeClock())
    r.checker = Scripted(ScriptedCheck(), r.target)
    await drive(r, ["raise"])
    assert changes == [("c", False)]
    assert r.stats.errors == 1
    assert r.stats.last_result is not None
    assert "RuntimeError: broken checker" in r.stats.last_result.message


async def test_retry_with_delay_on_the_clock() -> None:
    clock = FakeClock(start=0.0)
    r, changes = runner(clock, retry=2, delay_before_retry=Seconds(0.5))
    r.checker = Scripted(ScriptedCheck(), r.target)
    Scripted.outcomes = [False, False, True]
    Scripted.calls = 0
    task = asyncio.create_task(r.run_once())
    await clock.advance(1.0)
    await task
    assert Scripted.calls == 3 and changes == []  # the third attempt succeeded: still up


async def test_scheduled_runs_and_warmup() -> None:
    clock = FakeClock(start=0.0)
    r, changes = runner(clock, warmup=Seconds(0.5), fall=2)
    Scripted.outcomes = [False] * 10
    r.start()
    assert r.job is not None and r.job.next_run <= 0.5
    await clock.advance(2.6)
    assert r.stats.runs == 3 and changes == [("c", False)]
    await r.stop()


async def test_events_published() -> None:
    r, _ = runner(FakeClock(), fall=1)
    seen: list[Event] = []
    r.bus.subscribe(seen.append)
    r.checker = Scripted(ScriptedCheck(), r.target)
    await drive(r, [False])
    await r.bus.drain()
    assert [e.kind for e in seen] == ["check_state", "check_result"]
    assert isinstance(seen[0], CheckStateChanged) and seen[0].up is False


async def test_a_checker_that_cannot_start_is_present_and_failing() -> None:
    """A runtime that fails to import is a check that fails every round with the reason
    (counted by ``fall`` like any failure), never a check that is missing."""
    clock = FakeClock(start=0.0)
    broken = PluginType("checker", "broken", ScriptedCheck, "halo_no_such_module:factory")
    changes: list[tuple[str, bool]] = []
    r = CheckRunner(
        "c",
        broken,
        replace(ScriptedCheck(), interval=Seconds(1.0), fall=2),
        scheduler=Scheduler(clock, seed=1),
        bus=EventBus(),
        on_change=lambda n, up, res: changes.append((n, up)),
    )
    r.start()
    assert r.start_error is not None and "ModuleNotFoundError" in r.start_error
    await clock.advance(1.1)
    assert r.up and r.stats.runs == 1  # one failure of fall=2
    await clock.advance(1.0)
    assert changes == [("c", False)] and r.stats.errors == 2
    assert r.stats.last_result is not None
    assert r.stats.last_result.message.startswith("cannot start: ModuleNotFoundError")
    await r.stop()
