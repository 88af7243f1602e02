"""Checks that start without awaiting, run in batches on a shared tick.

A checker whose runtime has ``check_now()`` (:class:`halo_core.plugin_api.CheckNow`, e.g.
one that only opens a connection) is not given a periodic job and a task per round: a
:class:`CheckTicker` wakes once a tick and, in that one wake-up, starts the round of every
check due by then. The tick is the longest of :data:`TICKS` at most a tenth of the check's
interval (one ticker per scheduler and tick). ``check_now()`` gives the result at once
when it is known at once (a connection on a LAN or loopback is usually established before
``connect`` returns); only a round that must wait (an awaitable) or fail and retry goes
through the generic path of :class:`halo_core.checks.CheckRunner` (a task, the time-out,
the retries).

Why: measured in ``bench/checks/per_check.py``, most of the CPU of a connect check was not
the connection but the wake-up and the task around it; a wake-up per check cost more than
the whole check in keepalived's checker. Starting a round up to a tenth of its interval late
changes nothing a health check promises; its time-out still runs from the start of the
attempt. A check whose interval is under ten of the shortest tick keeps a job of its own.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING, cast
from weakref import WeakKeyDictionary

from halo_core.plugin_api import CheckNow, CheckResult

if TYPE_CHECKING:
    from halo_core.checks import CheckRunner
    from halo_core.scheduler import Clock, Scheduler, Timer

log = logging.getLogger("halo.checks")

TICKS = (0.1, 0.05, 0.02, 0.01, 0.005)
"""Seconds between wake-ups a ticker may have; a round starts at most one tick late."""

_tickers: WeakKeyDictionary[Scheduler, dict[float, CheckTicker]] = WeakKeyDictionary()


def tick_for(interval: float) -> float | None:
    """The tick for checks every *interval* seconds, None when it is too short to batch."""
    return next((tick for tick in TICKS if interval >= 10 * tick), None)


def ticker_for(scheduler: Scheduler, tick: float) -> CheckTicker:
    """The scheduler's ticker of *tick* seconds, made on first use."""
    tickers = _tickers.setdefault(scheduler, {})
    ticker = tickers.get(tick)
    if ticker is None:
        ticker = tickers[tick] = CheckTicker(scheduler.clock, tick)
    return ticker


class CheckTicker:
    """Starts the due rounds of its checks, all of them in one wake-up per tick."""

    def __init__(self, clock: Clock, tick: float) -> None:
        self.clock = clock
        self.tick = tick
        self.slots: dict[int, list[CheckRunner]] = {}
        self.due_at: dict[CheckRunner, float] = {}  # member -> when its next round is due
        self.timer: Timer | None = None
        self.armed_for = 0  # the slot the timer wakes for
        self.rounds = 0

    def add(self, runner: CheckRunner, first_delay: float) -> None:
        when = self.clock.now() + first_delay
        self.due_at[runner] = when
        self._slot(when).append(runner)
        if self.timer is None or math.ceil(when / self.tick) < self.armed_for:
            if self.timer is not None:  # a check added later is due before the others
                self.timer.cancel()
            self._arm()

    def remove(self, runner: CheckRunner) -> None:
        # left in its slot: the tick skips what is no longer a member
        self.due_at.pop(runner, None)
        if not self.due_at and self.timer is not None:
            self.timer.cancel()
            self.timer = None
            self.slots.clear()

    def _slot(self, when: float) -> list[CheckRunner]:
        index = math.ceil(when / self.tick)
        slot = self.slots.get(index)
        if slot is None:
            slot = self.slots[index] = []
        return slot

    def _arm(self) -> None:
        nearest = min(self.slots) if self.slots else math.ceil(self.clock.now() / self.tick)
        self.armed_for = nearest
        self.timer = self.clock.call_at(max(nearest * self.tick, self.clock.now()), self._tick)

    def _tick(self) -> None:
        now = self.clock.now()
        last = math.floor(now / self.tick + 1e-6)
        starting: list[CheckRunner] = []
        for index in sorted(i for i in self.slots if i <= last):
            for runner in self.slots.pop(index):
                when = self.due_at.get(runner)
                if when is None:
                    continue  # removed
                # fixed rate, like the scheduler's jobs; after a stall, from now on
                following = max(when + runner.interval, now + self.tick)
                self.due_at[runner] = following
                self._slot(following).append(runner)
                starting.append(runner)
        self.timer = None
        if self.due_at:
            self._arm()  # first: nothing a round does can stop the ticker
        for runner in starting:
            if runner not in self.due_at:
                continue  # removed by an earlier round's consequences (a reload)
            self.rounds += 1
            try:
                start_round(runner)
            except Exception as exc:  # e.g. an on_change callback's bug: this check's alone
                log.error("check %s: round failed: %s: %s", runner.name, type(exc).__name__, exc)


def start_round(runner: CheckRunner) -> None:
    """One round of *runner*'s check: at once when ``check_now`` decides it, else (or to
    retry a failure) in a task of the runner's generic path."""
    if runner.round_task is not None:
        return  # the previous round is still going: skipped, never stacked
    checker = runner.checker
    assert checker is not None
    start = time.perf_counter()
    try:
        outcome = cast(CheckNow, checker).check_now()
    except BaseException as exc:  # even SystemExit: the checker's, a failed round
        outcome = CheckResult(False, f"checker error: {type(exc).__name__}: {exc}")
        runner.stats.errors += 1
    if isinstance(outcome, CheckResult) and (outcome.ok or not runner.config.retry):
        runner.record(outcome, time.perf_counter() - start)
        return
    task = asyncio.get_running_loop().create_task(
        runner.run_once(first=outcome), name=f"check:{runner.name}"
    )
    runner.round_task = task
    task.add_done_callback(lambda _task: setattr(runner, "round_task", None))
