"""Timers and periodic jobs on a monotonic clock that tests can replace.

Everything in halo that waits for time — VRRP timers, checks, retries, coalescing windows —
asks a :class:`Clock` rather than the wall clock or ``asyncio.sleep``. In production that is
:class:`LoopClock` (the event loop's monotonic time); tests use a fake clock that only
moves when told to (``await clock.advance(3.6)`` runs three and a half seconds of timers
instantly and in a deterministic order), which the test tools provide.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import select
import selectors
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

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

    def now(self) -> float:
        return self.loop.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        return self.loop.call_at(when, callback)

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

    This one, the fallback where no timerfd can be made, waits the whole milliseconds
    rounded *down* in ``epoll_wait`` and the rest (under a millisecond) in ``select`` on
    the epoll descriptor itself, whose timeout is in microseconds: a second sleep and
    wake-up whenever a timer ends the wait.
    """

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        poller: select.epoll = self._selector  # type: ignore[attr-defined]
        most = max(len(self._fd_to_key), 1)  # type: ignore[attr-defined]
        try:
            if timeout is None:
                fd_events = poller.poll(-1, most)
            elif timeout <= 0:
                fd_events = poller.poll(0, most)
            else:
                end = time.monotonic() + timeout
                whole_ms = int(timeout * 1e3)
                # (n - 0.5) ms survives epoll.poll's rounding up as exactly n
                fd_events = poller.poll((whole_ms - 0.5) / 1e3, most) if whole_ms else []
                if not fd_events:
                    rest = end - time.monotonic()
                    if rest > 0 and not select.select((poller,), (), (), rest)[0]:
                        return []
                    fd_events = poller.poll(0, most)
        except InterruptedError:
            return []
        return self._ready(fd_events)

    def _ready(self, fd_events: list[tuple[int, int]]) -> list[tuple[selectors.SelectorKey, int]]:
        """The stock selector's translation of epoll events into selector keys."""
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


_CLOCK_MONOTONIC, _TFD_TIMER_ABSTIME = 1, 1
_TFD_NONBLOCK, _TFD_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC


class _TimerfdEpollSelector(_PreciseEpollSelector):
    """The daemon's selector: waits end at a timerfd armed for the loop's next timer, to
    the nanosecond, which is how keepalived waits (``os.timerfd_*`` is Python 3.13's, so
    through libc). One sleep per wait, like the stock selector, and one
    ``timerfd_settime`` per wait with a timeout; the timerfd is never read (setting it
    again clears its expiry).

    Measured against the ``select`` tail of :class:`_PreciseEpollSelector` (bench/checks,
    bench/cpu): the same punctuality, and a backup of 100 instances made half the
    context switches.
    """

    def __init__(self, timerfd: int, settime: Callable[..., int]) -> None:
        super().__init__()
        import ctypes

        class Timespec(ctypes.Structure):
            _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

        class Itimerspec(ctypes.Structure):
            _fields_ = [("it_interval", Timespec), ("it_value", Timespec)]

        self._timerfd = timerfd
        self._settime = settime
        self._spec = Itimerspec()
        self._spec_ref = ctypes.byref(self._spec)
        self._armed = False
        self._selector.register(timerfd, select.EPOLLIN)  # type: ignore[attr-defined]

    def _arm(self, deadline_ns: int) -> None:
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = divmod(deadline_ns, 1_000_000_000)
        if self._settime(self._timerfd, _TFD_TIMER_ABSTIME, self._spec_ref, None) != 0:
            raise OSError("timerfd_settime failed")
        self._armed = deadline_ns != 0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        poller: select.epoll = self._selector  # type: ignore[attr-defined]
        most = len(self._fd_to_key) + 1  # type: ignore[attr-defined]
        try:
            if timeout is None:
                if self._armed:
                    self._arm(0)  # disarmed: an old expiry must not end this wait
                fd_events = poller.poll(-1, most)
            elif timeout <= 0:
                fd_events = poller.poll(0, most)
            else:
                self._arm(time.monotonic_ns() + math.ceil(timeout * 1e9))
                fd_events = poller.poll(-1, most)
        except InterruptedError:
            return []
        return self._ready(fd_events)  # the timerfd has no key: left out

    def close(self) -> None:
        super().close()
        os.close(self._timerfd)


def _timerfd_selector() -> selectors.EpollSelector:
    """A :class:`_TimerfdEpollSelector`, or the ``select``-tail one if the C library or
    the kernel has no timerfd."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        timerfd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
    except (OSError, AttributeError):
        timerfd = -1
    if timerfd < 0:
        return _PreciseEpollSelector()
    return _TimerfdEpollSelector(timerfd, libc.timerfd_settime)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The event loop the daemon runs on: asyncio's, with timers punctual to the
    microsecond rather than late by up to two milliseconds (see
    :class:`_TimerfdEpollSelector`)."""
    if not hasattr(selectors, "EpollSelector"):  # not Linux: the stock loop
        return asyncio.new_event_loop()
    return asyncio.SelectorEventLoop(_timerfd_selector())


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
        self.random = random.Random(seed)
        self.jobs: dict[str, Job] = {}

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
