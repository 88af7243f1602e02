"""Timers and periodic jobs on a monotonic clock that tests can replace.

Everything in halo that waits for time — VRRP timers, checks, retries, coalescing windows —
asks a :class:`Clock` rather than the wall clock or ``asyncio.sleep``. In production that is
:class:`LoopClock` (the event loop's monotonic time); tests use a fake clock that only
moves when told to (``await clock.advance(3.6)`` runs three and a half seconds of timers
instantly and in a deterministic order), which the test tools provide.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import select
import selectors
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import random

log = logging.getLogger("halo.scheduler")


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time in seconds and callbacks at points in it."""

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer: ...

    async def sleep(self, delay: float) -> None: ...


class LoopClock:
    """The running event loop's monotonic clock."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    # now and call_at skip the property once the loop is known: a backup of many
    # instances calls them for about a third of the adverts it reads (InstanceRuntime).
    def now(self) -> float:
        loop = self._loop
        return (loop if loop is not None else self.loop).time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        loop = self._loop
        return (loop if loop is not None else self.loop).call_at(when, callback)

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(delay)


def grid_before(when: float) -> float:
    """``when`` moved back to the whole millisecond of the clock at or before it.

    The daemon's loop wakes to the microsecond (:func:`new_event_loop`), so timers that
    need not be punctual (a backup's early looks at its Master_Down_Timer, polling a busy
    socket) would each cost a wake-up of their own: on the millisecond grid, those due
    together share one, as they did when every wait was rounded to milliseconds.
    """
    return math.floor(when * 1e3) / 1e3


def grid_after(when: float) -> float:
    """``when`` moved on to the whole millisecond at or after it (see :func:`grid_before`)."""
    return math.ceil(when * 1e3) / 1e3


class _PreciseEpollSelector(selectors.EpollSelector):
    """``EpollSelector`` whose waits end within microseconds of the time asked for.

    ``epoll_wait`` counts whole milliseconds and the stock selector rounds the timeout up
    (twice: ``ceil(t * 1e3) * 1e-3`` is a hair above the whole number, which ``epoll.poll``
    rounds up again), so every timer of the loop fired up to 1-2 ms late, and a master's
    next advert, armed from the late one, inherited the delay: advert intervals jittered
    by up to a millisecond with nothing else running.

    Here a wait with a timeout is a ``select`` on the epoll descriptor itself (readable
    when an event is ready; the timeout in microseconds, no timer slack for the real-time
    VRRP process), and only when it reports events does ``epoll_wait(0)`` fetch them. One
    sleep per wait as before; a timer that ends the wait costs no more than it did, I/O
    one non-blocking call more. Measured beside the alternatives (bench/checks, and
    backups and masters of 100 instances at 0.1 s, the variants at once): waiting the
    whole milliseconds in ``epoll_wait`` and the rest in ``select`` made two sleeps of
    every timer's wait (a backup: 200 → 340 context switches a second); a timerfd
    re-armed per wait through ctypes (``timerfd_settime`` is slow in this VM) cost a
    master 15-35 % more CPU than main, with the same punctuality. (Same code as the stock
    ``select`` otherwise.)
    """

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        poller: select.epoll = self._selector  # type: ignore[attr-defined]
        most = max(len(self._fd_to_key), 1)  # type: ignore[attr-defined]
        try:
            if timeout is None:
                fd_events = poller.poll(-1, most)
            elif timeout <= 0 or select.select((poller,), (), (), timeout)[0]:
                fd_events = poller.poll(0, most)
            else:
                return []
        except InterruptedError:
            return []
        ready = []
        for fd, event in fd_events:
            events = 0
            if event & ~select.EPOLLIN:
                events |= selectors.EVENT_WRITE
            if event & ~select.EPOLLOUT:
                events |= selectors.EVENT_READ
            key = self._fd_to_key.get(fd)  # type: ignore[attr-defined]
            if key:
                ready.append((key, events & key.events))
        return ready


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The event loop the daemon runs on: asyncio's, with timers punctual to the
    microsecond rather than late by up to two milliseconds (see
    :class:`_PreciseEpollSelector`)."""
    if not hasattr(selectors, "EpollSelector"):  # not Linux: the stock loop
        return asyncio.new_event_loop()
    loop = asyncio.SelectorEventLoop(_PreciseEpollSelector())
    loop._clock_resolution = TIMER_BATCH  # type: ignore[attr-defined]
    return loop


TIMER_BATCH = 0.0002
"""Seconds: timers of the daemon's loop due this soon after the one that ends a wait run
with it (asyncio's ``_clock_resolution``: they may run that much early). Whole-millisecond
waits batched the timers of a master's instances for free; to the microsecond, each would
cost a pass of the loop."""


@dataclass
class JobStats:
    runs: int = 0
    failures: int = 0
    skipped: int = 0  # a run was due while the previous one was still going
    last_error: str | None = None


class Job:
    """A periodic job; see :meth:`Scheduler.every`."""

    def __init__(
        self,
        scheduler: Scheduler,
        name: str,
        interval: float,
        func: Callable[[], Awaitable[None]],
        jitter: float,
        first_delay: float,
    ) -> None:
        self.scheduler = scheduler
        self.name = name
        self.interval = interval
        self.func = func
        self.jitter = jitter
        self.stats = JobStats()
        self.running: asyncio.Task[None] | None = None
        self.next_run = scheduler.clock.now() + first_delay
        self._timer: Timer | None = scheduler.clock.call_at(self.next_run, self._due)
        self.stopped = False

    def _due(self) -> None:
        if self.stopped:
            return
        if self.running is not None and not self.running.done():
            self.stats.skipped += 1
        else:
            self.running = asyncio.get_running_loop().create_task(
                self._run(), name=f"job:{self.name}"
            )
        spread = 0.0
        if self.jitter:  # no draw without jitter: the VRRP process's jobs load no `random`
            spread = self.interval * self.jitter * (2 * self.scheduler.random.random() - 1)
        self.next_run = max(self.next_run + self.interval + spread, self.scheduler.clock.now())
        self._timer = self.scheduler.clock.call_at(self.next_run, self._due)

    async def _run(self) -> None:
        async with self.scheduler.slots:
            try:
                await self.func()
                self.stats.runs += 1
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # a job's failure (even SystemExit) is its own
                self.stats.failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.error("job %s failed: %s", self.name, self.stats.last_error)

    def stop(self) -> None:
        self.stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self.running is not None:
            self.running.cancel()


class Scheduler:
    """Periodic jobs with jitter, spread start times and a cap on how many run at once."""

    def __init__(
        self, clock: Clock | None = None, *, max_concurrency: int = 256, seed: int | None = None
    ) -> None:
        self.clock: Clock = clock or LoopClock()
        self.slots = asyncio.Semaphore(max_concurrency)
        self.max_concurrency = max_concurrency
        self._seed = seed
        self.jobs: dict[str, Job] = {}

    @functools.cached_property
    def random(self) -> random.Random:
        """The jobs' jitter and first delays; made on first use, so that the VRRP process,
        whose only jobs (an address backend's reconcile) have a first delay and no jitter,
        does without the module."""
        import random

        return random.Random(self._seed)

    def every(
        self,
        name: str,
        interval: float,
        func: Callable[[], Awaitable[None]],
        *,
        jitter: float = 0.0,
        first_delay: float | None = None,
    ) -> Job:
        """Run ``func`` every ``interval`` seconds (± ``jitter`` × interval).

        The first run comes after ``first_delay``, by default a random point within the first
        interval so that many jobs configured together do not all fire at once. A run that
        falls due while the previous one is still going is skipped and counted, never
        stacked.
        """
        if name in self.jobs:
            raise ValueError(f"a job named {name!r} is already scheduled")
        if interval <= 0:
            raise ValueError("interval must be positive")
        delay = self.random.uniform(0, interval) if first_delay is None else first_delay
        job = Job(self, name, interval, func, jitter, delay)
        self.jobs[name] = job
        return job

    def cancel(self, name: str) -> None:
        job = self.jobs.pop(name, None)
        if job:
            job.stop()

    def close(self) -> None:
        for name in list(self.jobs):
            self.cancel(name)
