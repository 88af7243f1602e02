"""Checks whose checker starts a round without awaiting (``check_now``) run on a shared tick:
one wake-up for all the rounds due, the runner's rise/fall, time-out, retry and error rules
unchanged, on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import ClassVar

from halo_core import check_batch
from halo_core.bus import EventBus
from halo_core.checks import CheckRunner
from halo_core.plugin_api import CheckerConfig, CheckResult, CheckTarget, PluginType
from halo_core.scheduler import Scheduler
from halo_core.schema import Seconds
from halo_tool_lab.clock import FakeClock


@dataclass(frozen=True, kw_only=True)
class NowCheck(CheckerConfig):
    """Test checker config; outcomes come from a list."""


class Now:
    """``check_now`` gives the queued outcomes: True/False at once, "wait" (the rest to
    await, a success), "hang" (the rest never finishes), "raise"."""

    outcomes: ClassVar[list[object]] = []
    calls: ClassVar[list[float]] = []
    clock: ClassVar[FakeClock]

    def __init__(self, config: NowCheck, target: CheckTarget) -> None:
        self.target = target

    def check_now(self) -> CheckResult | Awaitable[CheckResult]:
        Now.calls.append(Now.clock.now())
        outcome = Now.outcomes.pop(0) if Now.outcomes else True
        if outcome == "raise":
            raise RuntimeError("broken checker")
        if outcome in ("wait", "hang"):
            return self._rest(outcome == "hang")
        return CheckResult(bool(outcome), "now")

    async def _rest(self, hang: bool) -> CheckResult:
        await asyncio.sleep(3600 if hang else 0)
        return CheckResult(True, "waited")

    async def check(self) -> CheckResult:
        outcome = self.check_now()
        return outcome if isinstance(outcome, CheckResult) else await outcome

    async def close(self) -> None:
        return None


PTYPE = PluginType("checker", "now", NowCheck, Now)


def runners(
    clock: FakeClock, count: int = 1, **opts: object
) -> tuple[list[CheckRunner], list[tuple[str, bool]]]:
    Now.clock, Now.calls, Now.outcomes = clock, [], []
    cfg = replace(NowCheck(), **{"interval": Seconds(1.0), **opts})  # type: ignore[arg-type]
    scheduler, bus = Scheduler(clock, seed=1), EventBus()
    changes: list[tuple[str, bool]] = []
    out = [
        CheckRunner(
            f"c{n}",
            PTYPE,
            cfg,
            scheduler=scheduler,
            bus=bus,
            on_change=lambda name, up, res: changes.append((name, up)),
        )
        for n in range(count)
    ]
    return out, changes


async def test_rounds_of_many_checks_share_one_wake_up_per_tick() -> None:
    clock = FakeClock(start=0.0)
    rs, _ = runners(clock, 50)
    for r in rs:
        r.start()
    assert all(r.job is None and r.ticker is not None for r in rs)
    assert clock.pending() == 1  # one timer for all fifty
    await clock.advance(3.0)
    assert sum(r.stats.runs for r in rs) == 150  # each once a second, none skipped
    tick = check_batch.tick_for(1.0)
    assert tick == 0.1
    wake_ups = sorted(set(Now.calls))
    assert len(wake_ups) <= 30  # at most one a tick, not one a check
    assert all(abs(t / tick - round(t / tick)) < 1e-6 for t in wake_ups)  # on the tick
    for r in rs:
        await r.stop()
    assert clock.pending() == 0


async def test_rise_and_fall_from_results_given_at_once() -> None:
    clock = FakeClock(start=0.0)
    (r,), changes = runners(clock, fall=2, rise=2)
    Now.outcomes = [False, False, True, True]
    r.start()
    await clock.advance(2.05)
    assert changes == [("c0", False)]
    await clock.advance(2.0)
    assert changes == [("c0", False), ("c0", True)]
    assert r.stats.runs == 4 and r.stats.failures == 2
    await r.stop()


async def test_a_round_that_must_wait_is_awaited_and_timed_out() -> None:
    clock = FakeClock(start=0.0)
    (r,), changes = runners(clock, timeout=Seconds(0.05), fall=1)
    Now.outcomes = ["wait", "hang"]
    r.start()
    await clock.advance(1.0)
    assert r.stats.runs == 1 and r.stats.last_result == CheckResult(True, "waited")
    await clock.advance(1.0)  # the hanging round starts: the real loop times it out
    assert r.round_task is not None
    await clock.advance(1.0)  # due while the previous round still runs: skipped
    assert len(Now.calls) == 2
    await asyncio.wait_for(asyncio.shield(r.round_task), 2)
    assert r.stats.timeouts == 1 and changes == [("c0", False)]
    await r.stop()


async def test_a_failure_is_retried_and_an_exception_is_a_failed_round() -> None:
    clock = FakeClock(start=0.0)
    opts = {"retry": 1, "delay_before_retry": Seconds(0.3), "fall": 1, "warmup": Seconds(0.01)}
    (r,), changes = runners(clock, **opts)
    Now.outcomes = [False, True, "raise", False]
    r.start()  # first round on the first tick, at 0.1
    await clock.advance(0.5)  # failed at once, the retry 0.3 s later succeeded
    assert len(Now.calls) == 2 and changes == [] and r.stats.runs == 1
    await clock.advance(1.0)  # raised, then the retry failed
    assert changes == [("c0", False)] and r.stats.errors == 1
    assert r.stats.last_result is not None and not r.stats.last_result.ok
    await r.stop()


async def test_a_short_interval_keeps_a_job_of_its_own() -> None:
    clock = FakeClock(start=0.0)
    (r,), _ = runners(clock, interval=Seconds(0.02))
    r.start()
    assert r.ticker is None and r.job is not None
    await r.stop()


async def test_rounds_stop_with_the_check() -> None:
    clock = FakeClock(start=0.0)
    rs, _ = runners(clock, 2)
    for r in rs:
        r.start()
    await clock.advance(1.0)
    await rs[0].stop()
    before = len(Now.calls)
    await clock.advance(2.0)
    assert len(Now.calls) == before + 2  # only the other check's rounds
    await rs[1].stop()
    assert clock.pending() == 0


async def test_a_callback_that_raises_stops_neither_the_tick_nor_other_checks() -> None:
    clock = FakeClock(start=0.0)
    rs, _ = runners(clock, 2, fall=1)

    def broken(name: str, up: bool, result: CheckResult) -> None:
        raise RuntimeError("subscriber bug")

    rs[0].on_change = broken
    Now.outcomes = [False, False]  # both go down: the first one's callback raises
    for r in rs:
        r.start()
    await clock.advance(3.0)
    assert [r.stats.runs for r in rs] == [3, 3]
    for r in rs:
        await r.stop()


async def test_a_check_added_later_is_not_held_back_by_the_others() -> None:
    clock = FakeClock(start=0.0)
    rs, _ = runners(clock, 2, interval=Seconds(10.0))
    rs[0].start()  # its first round: somewhere in the next 10 s
    first = rs[0].ticker
    assert first is not None and first.due_at[rs[0]] > 1.0  # seed 1: not right away
    rs[1].config = replace(rs[1].config, warmup=Seconds(0.1))
    rs[1].start()  # due within 0.1 s: the ticker wakes for it
    await clock.advance(0.25)
    assert rs[1].stats.runs == 1 and rs[0].stats.runs == 0
    for r in rs:
        await r.stop()
