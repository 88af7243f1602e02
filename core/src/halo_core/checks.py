"""Running checks: the options every checker shares, implemented once.

A :class:`CheckRunner` owns one configured check: it builds the plugin's checker, runs it on
the scheduler (first run after a random ``warmup`` delay, later runs spread by the scheduler
so that a thousand checks don't fire together), enforces ``timeout`` (a hanging checker is
cancelled and counted as a failure with the reason), retries ``retry`` times with
``delay_before_retry``, and turns results into an up/down state with ``rise``/``fall``
hysteresis. Every result is published as :class:`CheckResultEvent`; changes of state as
:class:`CheckStateChanged` and through ``on_change`` (which the VRRP engine's tracking and the
real-server pools use). A checker can never affect VRRP timing: it runs in its own task,
bounded by its timeout, and the scheduler caps how many run at once.

A check whose checker cannot be built (its runtime module fails to import, its factory
raises) is not left out: it runs on its schedule like any other and every round is a failed
result saying why (:attr:`CheckRunner.start_error`), so that it shows as down in the status
and a VRRP instance or pool tracking it sees failures, with the usual ``fall``.

A checker that misbehaves is a failed check, reported once with its plugin's name: one that
returns something other than a CheckResult, raises anything (even ``SystemExit`` or
``KeyboardInterrupt``), blocks the event loop past its timeout (its late result does not
count), or swallows the cancellation at its timeout and never finishes (counted failed at
every interval until it does). In the worker process none of this can reach VRRP
(docs/processes.md).

A checker that blocks the event loop (``time.sleep``, a busy loop, a blocking library call:
one step of its coroutine holding the loop for ``BLOCKING_STEP`` or more) would starve every
other check of the worker. The second time one does, it is moved to a thread of its own
with an event loop of its own (:class:`CheckerThread`), rebuilt there by its factory: from
then on its timeout holds (a blocked thread does not stop the worker's loop from timing it
out) and the other checks run on time. A checker that spins the CPU in pure Python still
shares the interpreter lock, but gives it up every few milliseconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any

from halo_core import log as halo_log
from halo_core.bus import EventBus
from halo_core.events import CheckResultEvent, CheckStateChanged
from halo_core.plugin_api import Checker, CheckerConfig, CheckResult, CheckTarget, PluginType
from halo_core.scheduler import Job, Scheduler

log = logging.getLogger("halo.checks")

STUCK_GRACE = 1.0
"""Seconds past its timeout a cancelled checker has to return before it counts as stuck."""

BLOCKING_STEP = 0.1
"""Seconds one step of a checker's coroutine may hold the event loop before it counts as
blocking it (a well-behaved step takes microseconds)."""
BLOCKING_RUNS = 2
"""Runs that block the loop before the checker is moved to a thread of its own: one could
be a pause that is not the checker's (swapping, a long garbage collection)."""

StateCallback = Callable[[str, bool, CheckResult], None]


class TimedSteps:
    """Await a coroutine, noting the longest time one of its steps (the code between two of
    its suspensions) held the event loop."""

    __slots__ = ("coro", "longest")

    def __init__(self, coro: Coroutine[Any, Any, object]) -> None:
        self.coro = coro
        self.longest = 0.0

    def __await__(self) -> Generator[Any, Any, object]:
        coro, clock = self.coro, time.perf_counter
        value: Any = None
        error: BaseException | None = None
        while True:
            start = clock()
            try:
                yielded = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as stop:
                return stop.value
            finally:
                self.longest = max(self.longest, clock() - start)
            try:
                value, error = (yield yielded), None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # the task's cancellation, passed on
                value, error = None, exc


class CheckerThread:
    """A checker in a thread of its own with an event loop of its own, for one that blocked
    the worker's loop. It is built there (by ``build``, on the first check), so that what it
    holds belongs to that loop. Implements the Checker protocol for :class:`CheckRunner`."""

    def __init__(self, name: str, build: Callable[[], Checker]) -> None:
        self.build = build
        self.checker: Checker | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=f"check {name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def _there(self, coro: Coroutine[Any, Any, Any]) -> Awaitable[Any]:
        future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return asyncio.wrap_future(future)  # cancelling it cancels the task there

    async def _check(self) -> object:
        if self.checker is None:
            self.checker = self.build()
        return await self.checker.check()

    async def check(self) -> CheckResult:
        result: CheckResult = await self._there(self._check())
        return result

    async def _close(self) -> None:
        if self.checker is not None:
            await self.checker.close()

    async def close(self) -> None:
        try:
            await self._there(self._close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)


@dataclass
class CheckStats:
    runs: int = 0
    successes: int = 0
    failures: int = 0
    timeouts: int = 0
    errors: int = 0  # the checker raised
    last_latency: float = 0.0
    last_result: CheckResult | None = None
    last_change: float | None = None
    transitions: int = 0
    warnings: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class CheckRunner:
    """One configured check at run time."""

    def __init__(
        self,
        name: str,
        ptype: PluginType,
        config: CheckerConfig,
        *,
        target: CheckTarget | None = None,
        scheduler: Scheduler,
        bus: EventBus,
        on_change: StateCallback | None = None,
        initial_up: bool = True,
        default_interval: float = 1.0,
    ) -> None:
        self.name = name
        self.ptype = ptype
        self.config = config
        self.target = target or CheckTarget(name)
        self.scheduler = scheduler
        self.clock = scheduler.clock
        self.bus = bus
        self.on_change = on_change
        # keepalived: a tracked script starts up (unless init_fail) and a real server starts
        # up (unless alpha); the first results move it with rise/fall like any other.
        self.up = initial_up
        self.streak = 0  # consecutive results contradicting the current state
        self.stats = CheckStats()
        self.checker: Checker | None = None
        self.job: Job | None = None
        self.dynamic_weight: int | None = None
        self.start_error: str | None = None  # why the checker could not be built
        self.interval = float(config.interval if config.interval is not None else default_interval)
        self._reported: set[str] = set()  # kinds of plugin misbehaviour already logged
        self.blocking_runs = 0  # runs in which the checker blocked the event loop
        self.in_thread = False  # moved to a CheckerThread
        self._closing: asyncio.Task[None] | None = None  # the replaced checker's close
        self._stuck_timer: asyncio.TimerHandle | None = None

    @property
    def timeout(self) -> float:
        return float(self.config.timeout) if self.config.timeout is not None else self.interval

    def start(self) -> None:
        try:
            self.checker = self.ptype.load_factory()(self.config, self.target)
        except Exception as exc:  # plugin territory: the check stays, failing with the reason
            self.start_error = f"cannot start: {type(exc).__name__}: {' '.join(str(exc).split())}"
            log.error(
                "check %s (%s): %s",
                self.name,
                self.ptype.name,
                self.start_error,
                extra=halo_log.fields(check=self.name, reason=self.start_error),
            )
        warmup = float(self.config.warmup)
        first = self.scheduler.random.uniform(0, warmup) if warmup > 0 else None
        self.job = self.scheduler.every(
            f"check:{self.name}",
            self.interval,
            self.run_once,
            jitter=0.0,
            first_delay=first,
        )

    async def run_alone(self) -> tuple[CheckResult, float]:
        """Build the checker, run one round (with ``timeout``, ``retry`` and
        ``delay_before_retry``, as the scheduler would) and close it: ``halo check --run``.
        Gives the result and the seconds the round took."""
        self.checker = self.ptype.load_factory()(self.config, self.target)
        start = time.perf_counter()
        try:
            await self.run_once()
        finally:
            await self.stop()
        assert self.stats.last_result is not None
        return self.stats.last_result, time.perf_counter() - start

    async def stop(self) -> None:
        if self._stuck_timer is not None:
            self._stuck_timer.cancel()
        if self.job is not None:
            self.scheduler.cancel(self.job.name)
            self.job = None
        if self.checker is not None:
            await self._close_checker(self.checker)  # no task: a SystemExit stays here

    async def probe(self) -> tuple[CheckResult, float]:
        """One attempt, never raising: a time-out or an exception is a failed result."""
        if self.start_error is not None:
            self.stats.errors += 1
            return CheckResult(False, self.start_error), 0.0
        assert self.checker is not None
        start = time.perf_counter()
        steps: TimedSteps | None = None
        loop = asyncio.get_running_loop()
        # A checker that swallows the cancellation at its timeout never returns: this
        # counts it failed meanwhile (an asyncio timer: free unless it fires).
        self._stuck_timer = loop.call_later(self.timeout + STUCK_GRACE, self._stuck, start)
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for wraps the check in a task of its
            # own, a cost paid thousands of times a second under load.
            call = self.checker.check()
            steps = TimedSteps(call) if asyncio.iscoroutine(call) else None
            async with asyncio.timeout(self.timeout):
                outcome: object = await (steps or call)
            if isinstance(outcome, CheckResult):
                result = outcome
            else:
                self.stats.errors += 1
                what = f"returned {type(outcome).__name__}, not a CheckResult"
                result = CheckResult(False, f"checker error: {what}")
                self._misbehaved(what)
        except TimeoutError:
            self.stats.timeouts += 1
            result = CheckResult(False, f"timed out after {self.timeout:g}s")
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # even SystemExit: the checker's, a failed check
            self.stats.errors += 1
            result = CheckResult(False, f"checker error: {type(exc).__name__}: {exc}")
            if not isinstance(exc, Exception):
                self._misbehaved(f"raised {type(exc).__name__}")
        finally:
            if self._stuck_timer is not None:
                self._stuck_timer.cancel()
                self._stuck_timer = None
        latency = time.perf_counter() - start
        if steps is not None and steps.longest >= BLOCKING_STEP:
            self._blocked(steps.longest)
        if result.ok and latency > self.timeout:
            # The timeout could not fire: the checker blocked the event loop (time.sleep,
            # a busy loop) or swallowed the cancellation. Its late success does not count.
            self.stats.timeouts += 1
            result = CheckResult(False, f"took {latency:.3g}s, over its {self.timeout:g}s timeout")
            self._misbehaved(f"took {latency:.3g}s past its timeout (it blocks the event loop?)")
        return result, latency

    def _blocked(self, held: float) -> None:
        """The checker held the event loop for ``held`` seconds in one step: the second time,
        it moves to a thread of its own (see the module's docstring)."""
        self.blocking_runs += 1
        if self.in_thread or self.blocking_runs < BLOCKING_RUNS or self.checker is None:
            return
        old = self.checker
        self.checker = CheckerThread(
            self.name, lambda: self.ptype.load_factory()(self.config, self.target)
        )
        self.in_thread = True
        log.error(
            "check %s: checker plugin %s blocked the event loop for %.3gs; it runs in a thread"
            " of its own from now on",
            self.name,
            self.ptype.name,
            held,
            extra=halo_log.fields(check=self.name, reason="blocks the event loop"),
        )
        self._closing = asyncio.get_running_loop().create_task(
            self._close_checker(old), name=f"check:{self.name}:close"
        )

    async def _close_checker(self, checker: Checker) -> None:
        try:
            async with asyncio.timeout(5):
                await checker.close()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the plugin's, not the daemon's
            log.warning("check %s: close failed: %s", self.name, exc)

    def _stuck(self, start: float) -> None:
        """The probe outlived its timeout by STUCK_GRACE: it ignored the cancellation."""
        self.stats.timeouts += 1
        self._misbehaved("did not stop when cancelled at its timeout (swallows CancelledError?)")
        latency = time.perf_counter() - start
        self.record(CheckResult(False, f"did not finish in {latency:.3g}s"), latency)
        loop = asyncio.get_running_loop()
        self._stuck_timer = loop.call_later(self.interval, self._stuck, start)

    def _misbehaved(self, what: str) -> None:
        """Say once per check and kind what its plugin did wrong, naming the plugin."""
        if what.split()[0] in self._reported:
            return
        self._reported.add(what.split()[0])
        log.error(
            "check %s: checker plugin %s %s; counted as a failure",
            self.name,
            self.ptype.name,
            what,
            extra=halo_log.fields(check=self.name, reason=what),
        )

    async def run_once(self) -> None:
        result, latency = await self.probe()
        for _ in range(self.config.retry):
            if result.ok:
                break
            await self.clock.sleep(float(self.config.delay_before_retry))
            result, latency = await self.probe()
        self.record(result, latency)

    def record(self, result: CheckResult, latency: float) -> None:
        s = self.stats
        s.runs += 1
        s.last_latency = latency
        s.last_result = result
        if result.ok:
            s.successes += 1
        else:
            s.failures += 1
        if result.warning:
            s.warnings += 1
            log.warning(
                "check %s: %s", self.name, result.warning, extra=halo_log.fields(check=self.name)
            )
        if result.weight != self.dynamic_weight:
            self.dynamic_weight = result.weight
        if result.ok == self.up:
            self.streak = 0
        else:
            self.streak += 1
            needed = self.config.rise if result.ok else self.config.fall
            if self.streak >= needed:
                self.up = result.ok
                self.streak = 0
                s.transitions += 1
                s.last_change = time.time()
                # Down is what an operator filtering on warnings must see; up is normal.
                log.log(
                    logging.INFO if self.up else logging.WARNING,
                    "check %s: %s (%s)",
                    self.name,
                    "up" if self.up else "down",
                    result.message,
                    extra=halo_log.fields(
                        check=self.name,
                        from_state="DOWN" if self.up else "UP",
                        to_state="UP" if self.up else "DOWN",
                        reason=result.message,
                    ),
                )
                self.bus.publish(
                    CheckStateChanged(check=self.name, up=self.up, message=result.message)
                )
                if self.on_change is not None:
                    self.on_change(self.name, self.up, result)
        self.bus.publish(
            CheckResultEvent(
                check=self.name, ok=result.ok, up=self.up, message=result.message, latency=latency
            )
        )
