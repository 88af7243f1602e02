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

A check whose configuration says it cannot run at all (:meth:`CheckerConfig.disabled`, e.g.
a script that is not there) is disabled instead, as keepalived does: it never runs, never
changes state (:attr:`CheckRunner.disabled` says why), and the VRRP instances tracking it
ignore it.

A checker that misbehaves is a failed check, reported once with its plugin's name: one that
returns something other than a CheckResult, raises anything (even ``SystemExit`` or
``KeyboardInterrupt``), blocks the event loop past its timeout (its late result does not
count), or swallows the cancellation at its timeout and never finishes (counted failed at
every interval until it does). In the worker process none of this can reach VRRP
(docs/processes.md).

A checker that blocks the event loop (``time.sleep``, a busy loop, a blocking library call:
one step of its coroutine holding the loop for ``BLOCKING_STEP`` or more) would starve every
other check of the worker. The second time one does, it is moved to a process of its own
(:class:`CheckerProcess`), rebuilt there by its factory: from then on its timeout holds and
the other checks run on time. (A thread would not do: a checker spinning in Python holds
the interpreter lock, and the worker's loop waited 5 ms for it after every system call.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from halo_core import log as halo_log
from halo_core.bus import EventBus
from halo_core.events import CheckResultEvent, CheckStateChanged
from halo_core.plugin_api import (
    Checker,
    CheckerConfig,
    CheckResult,
    CheckTarget,
    PluginType,
    disabled_reason,
)
from halo_core.scheduler import Job, Scheduler

if TYPE_CHECKING:
    from halo_core.check_batch import CheckTicker

log = logging.getLogger("halo.checks")

STUCK_GRACE = 1.0
"""Seconds past its timeout a cancelled checker has to return before it counts as stuck."""

BLOCKING_STEP = 0.1
"""Seconds one step of a checker's coroutine may hold the event loop before it counts as
blocking it (a well-behaved step takes microseconds)."""
BLOCKING_RUNS = 2
"""Runs that block the loop before the checker is moved to a thread of its own: one could
be a pause that is not the checker's (swapping, a long garbage collection)."""

CHECKER_NICE = 10
"""Added to the nice value of a checker's own process: a checker that spins the CPU gets
what the worker's other checks leave."""
CHECKER_START_LIMIT = 60.0
"""Seconds a checker's own process may take to start before the run waiting for it fails
(spawning an interpreter takes seconds on a machine starved of CPU)."""
CHECKER_RESTART_DELAY = 10.0
"""Seconds before a checker's own process that exited is started again."""

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


class CheckerProcess:
    """A checker in a process of its own, for one that blocked the worker's event loop.

    The process (``multiprocessing``, spawned, not forked: it starts clean) builds the
    checker with its factory and runs one ``check()`` per request on an event loop of its
    own. It takes no CPU from the worker's loop, not even the interpreter lock a thread
    would share. A request is answered or, at the check's timeout, given up; while one is
    unanswered the next run fails at once (requests do not pile up behind a checker that
    sleeps longer than its interval). If the process exits (the checker killed it), the
    run fails saying so and a new process starts ``CHECKER_RESTART_DELAY`` later. It runs
    ``CHECKER_NICE`` nicer than the worker and dies with it (PR_SET_PDEATHSIG). It
    implements the Checker protocol for :class:`CheckRunner`.
    """

    def __init__(self, name: str, ptype: PluginType, config: CheckerConfig, target: CheckTarget):
        self.name = name
        self.args = (ptype, config, target)
        self.loop = asyncio.get_running_loop()
        self.process: Any = None
        self.conn: Any = None
        self.waiting: asyncio.Future[object] | None = None
        self.outstanding = False  # a request the process has not answered yet
        self.starts = 0
        self.answers = 0
        self.starting: asyncio.Task[None] | None = None
        self.exited: str | None = None  # how the last process ended, if it died
        self.restart_at = 0.0  # loop time before which a dead process is not replaced

    def _spawn(self) -> tuple[Any, Any]:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        conn, theirs = ctx.Pipe()
        process = ctx.Process(
            target=serve_checker, args=(theirs, *self.args), name=f"halo check {self.name}"
        )
        process.daemon = True
        process.start()
        theirs.close()
        return conn, process

    def begin(self) -> asyncio.Task[None]:
        """Start the process unless it is starting: the task that starts it."""
        if self.starting is None:
            self.starting = self.loop.create_task(self._start(), name=f"check:{self.name}")
        return self.starting

    async def _start(self) -> None:
        # In a thread: starting a process (fork, exec, handing it its arguments) can take
        # longer than the worker's loop may stall. A task of its own (self.starting): a
        # check timed out meanwhile must not lose the process.
        try:
            self.conn, self.process = await asyncio.to_thread(self._spawn)
        finally:
            self.starting = None
        self.starts += 1
        self.outstanding = False
        self.loop.add_reader(self.conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            ok, value = self.conn.recv()
        except (EOFError, OSError):
            self._gone()
            return
        self.outstanding = False
        self.answers += 1
        waiting, self.waiting = self.waiting, None
        if waiting is not None and not waiting.done():
            if ok:
                waiting.set_result(value)
            else:
                waiting.set_exception(CheckerProcessError(value))

    def _gone(self) -> None:
        self.loop.remove_reader(self.conn.fileno())
        self.conn.close()
        self.process.join(0.1)
        self.exited = f"its process exited (status {self.process.exitcode})"
        self.process = None
        self.restart_at = self.loop.time() + CHECKER_RESTART_DELAY
        waiting, self.waiting = self.waiting, None
        if waiting is not None and not waiting.done():
            waiting.set_exception(CheckerProcessError(self.exited))

    async def check(self) -> CheckResult:
        if self.process is None:
            if self.loop.time() < self.restart_at:  # one that kills itself: not a fork bomb
                raise CheckerProcessError(f"{self.exited}; a new one starts shortly")
            await asyncio.shield(self.begin())
        if self.outstanding:
            raise CheckerProcessError("its previous run has not finished")
        self.waiting = self.loop.create_future()
        self.outstanding = True
        self.conn.send("check")
        result: CheckResult = await self.waiting  # type: ignore[assignment]
        return result

    async def close(self) -> None:
        if self.starting is not None:
            with contextlib.suppress(Exception):
                await self.starting
        if self.process is None:
            return
        with contextlib.suppress(OSError):
            self.conn.send("close")
        process = self.process
        for _ in range(50):  # its checker's close(), then it exits
            if not process.is_alive():
                break
            await asyncio.sleep(0.02)
        if process.is_alive():
            process.kill()
        if self.process is not None:
            self.loop.remove_reader(self.conn.fileno())
            self.conn.close()
            self.process = None
        process.join(1.0)


class CheckerProcessError(Exception):
    """What a checker in its own process did instead of returning a result."""


def serve_checker(conn: Any, ptype: PluginType, config: CheckerConfig, target: CheckTarget) -> None:
    """The life of a :class:`CheckerProcess`: build the checker, answer each request with
    one check's outcome, until told to close or the worker is gone."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):  # die with the worker
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when this one stops
    with contextlib.suppress(OSError):  # one that spins takes what the worker leaves
        os.nice(CHECKER_NICE)
    loop = asyncio.new_event_loop()
    checker: Checker | None = None
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            break
        if request == "close":
            if checker is not None:
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(asyncio.wait_for(checker.close(), 5))
            break
        answer: tuple[bool, object]
        try:
            if checker is None:
                checker = ptype.load_factory()(config, target)
            answer = (True, loop.run_until_complete(checker.check()))
        except BaseException as exc:  # even SystemExit: the checker's, a failed check
            answer = (False, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(answer)
        except Exception as exc:  # an unpicklable result
            conn.send((False, f"returned what cannot be passed on: {exc}"))


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
        self.disabled: str | None = None  # why the check cannot run at all (it never runs)
        self.interval = float(config.interval if config.interval is not None else default_interval)
        self._reported: set[str] = set()  # kinds of plugin misbehaviour already logged
        self.blocking_runs = 0  # runs in which the checker blocked the event loop
        self.in_process = False  # moved to a CheckerProcess
        self._closing: asyncio.Task[None] | None = None  # the replaced checker's close
        self._stuck_timer: asyncio.TimerHandle | None = None
        self.ticker: CheckTicker | None = None  # starts the rounds instead of a job
        self.round_task: asyncio.Task[None] | None = None  # such a round that must wait

    @property
    def timeout(self) -> float:
        return float(self.config.timeout) if self.config.timeout is not None else self.interval

    def build(self) -> None:
        """Build the checker with its plugin's factory; raises what the factory raises. A
        reload builds the checkers it adds or changes first (before anything is applied:
        one that cannot be built refuses the reload); :meth:`start` uses what was built."""
        self.checker = self.ptype.load_factory()(self.config, self.target)

    def start(self) -> None:
        self.disabled = disabled_reason(self.config)
        if self.disabled is not None:
            log.warning(
                "check %s (%s): disabled: %s; it never runs, and instances tracking it ignore"
                " it (as keepalived does)",
                self.name,
                self.ptype.name,
                self.disabled,
                extra=halo_log.fields(check=self.name, reason=self.disabled),
            )
            return
        try:
            if self.checker is None:
                self.build()
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
        if self._start_batched(first):
            return
        self.job = self.scheduler.every(
            f"check:{self.name}",
            self.interval,
            self.run_once,
            jitter=0.0,
            first_delay=first,
        )

    def _start_batched(self, first: float | None) -> bool:
        """Checkers that can start a round without awaiting run on the shared tick of
        :mod:`halo_core.check_batch` (far less CPU per round than a job and a task)."""
        from halo_core import check_batch

        tick = check_batch.tick_for(self.interval)
        if tick is None or not callable(getattr(self.checker, "check_now", None)):
            return False
        delay = self.scheduler.random.uniform(0, self.interval) if first is None else first
        self.ticker = check_batch.ticker_for(self.scheduler, tick)
        self.ticker.add(self, delay)
        return True

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
        if self.ticker is not None:
            self.ticker.remove(self)
            self.ticker = None
        if self.round_task is not None:
            self.round_task.cancel()
        if self.checker is not None:
            await self._close_checker(self.checker)  # no task: a SystemExit stays here

    async def probe(
        self, attempt: Awaitable[CheckResult] | None = None
    ) -> tuple[CheckResult, float]:
        """One attempt, never raising: a time-out or an exception is a failed result.
        *attempt*: the rest of one the checker's ``check_now`` started (else ``check()``)."""
        if self.start_error is not None:
            self.stats.errors += 1
            return CheckResult(False, self.start_error), 0.0
        assert self.checker is not None
        if isinstance(self.checker, CheckerProcess) and self.checker.starting is not None:
            # a checker just moved to its own process: starting the process (seconds on a
            # loaded machine) is not the check's time, or the move itself fails a run
            try:
                async with asyncio.timeout(CHECKER_START_LIMIT):
                    await asyncio.shield(self.checker.starting)
            except TimeoutError:
                self.stats.errors += 1
                return CheckResult(False, "checker error: its process did not start"), 0.0
        start = time.perf_counter()
        steps: TimedSteps | None = None
        loop = asyncio.get_running_loop()
        # A checker that swallows the cancellation at its timeout never returns: this
        # counts it failed meanwhile (an asyncio timer: free unless it fires).
        self._stuck_timer = loop.call_later(self.timeout + STUCK_GRACE, self._stuck, start)
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for wraps the check in a task of its
            # own, a cost paid thousands of times a second under load.
            call = attempt if attempt is not None else self.checker.check()
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
        if self.in_process or self.checker is None:
            return
        self.blocking_runs += 1
        if self.blocking_runs < BLOCKING_RUNS:
            return
        old = self.checker
        self.checker = CheckerProcess(self.name, self.ptype, self.config, self.target)
        self.checker.begin()  # now, not in the next run's time
        self.in_process = True
        log.error(
            "check %s: checker plugin %s blocked the event loop for %.3gs; it runs in a process"
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

    async def run_once(self, first: CheckResult | Awaitable[CheckResult] | None = None) -> None:
        """One round. *first*: how ``check_now`` began it (a failed result to retry, or
        the rest of the attempt to await)."""
        if isinstance(first, CheckResult):
            result, latency = first, 0.0
        else:
            result, latency = await self.probe(first)
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
        weight_changed = result.weight != self.dynamic_weight
        if weight_changed:
            self.dynamic_weight = result.weight
        if result.ok == self.up:
            self.streak = 0
            if weight_changed and self.on_change is not None:
                # a new dynamic weight without a change of state: the pool applies it
                self.on_change(self.name, self.up, result)
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
