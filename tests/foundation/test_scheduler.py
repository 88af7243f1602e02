"""The scheduler on a fake clock: deterministic, instant, with jitter and a concurrency cap."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import selectors
import socket
import time
from collections.abc import Iterator

import pytest

from halo_core.scheduler import (
    LoopClock,
    Scheduler,
    _PreciseEpollSelector,
    new_event_loop,
)
from halo_tool_lab.clock import FakeClock


async def test_periodic_job_on_fake_clock() -> None:
    clock = FakeClock(start=0.0)
    s = Scheduler(clock)
    runs: list[float] = []

    async def job() -> None:
        runs.append(clock.now())

    s.every("j", 1.0, job, first_delay=0.5)
    await clock.advance(3.0)
    assert runs == [0.5, 1.5, 2.5]
    # A first delay and no jitter draw nothing: the VRRP process's only job (the address
    # backend's reconcile) must not load `random` (tests/foundation/test_lean.py).
    assert "random" not in vars(s)  # the cached property was never read
    s.close()
    await clock.advance(5.0)
    assert len(runs) == 3


async def test_first_runs_are_spread_over_the_interval() -> None:
    clock = FakeClock(start=0.0)
    s = Scheduler(clock, seed=1)
    firsts: dict[str, float] = {}
    for i in range(50):
        name = f"j{i}"

        async def job(name: str = name) -> None:
            firsts.setdefault(name, clock.now())

        s.every(name, 2.0, job)
    await clock.advance(2.0)
    assert len(firsts) == 50
    assert 0 <= min(firsts.values()) < 0.3 and 1.7 < max(firsts.values()) <= 2.0
    s.close()


async def test_jitter_bounds() -> None:
    clock = FakeClock(start=0.0)
    s = Scheduler(clock, seed=7)
    times: list[float] = []

    async def job() -> None:
        times.append(clock.now())

    s.every("j", 1.0, job, jitter=0.1, first_delay=0.0)
    await clock.advance(20.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.9 - 1e-9 <= g <= 1.1 + 1e-9 for g in gaps)
    assert len(set(round(g, 6) for g in gaps)) > 1
    s.close()


async def test_overlapping_run_is_skipped_not_stacked() -> None:
    clock = FakeClock(start=0.0)
    s = Scheduler(clock)
    gate = asyncio.Event()
    started = 0

    async def slow() -> None:
        nonlocal started
        started += 1
        await gate.wait()

    job = s.every("slow", 1.0, slow, first_delay=0.0)
    await clock.advance(3.5)
    assert started == 1 and job.stats.skipped == 3
    gate.set()
    await clock.advance(1.0)
    assert started == 2
    s.close()


async def test_concurrency_cap() -> None:
    clock = FakeClock(start=0.0)
    s = Scheduler(clock, max_concurrency=3)
    running = 0
    peak = 0
    gate = asyncio.Event()

    async def job() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1

    for i in range(10):
        s.every(f"j{i}", 10.0, job, first_delay=0.0)
    await clock.advance(0.1)
    assert peak == 3
    gate.set()
    await clock.advance(0.1)
    assert peak == 3
    s.close()


async def test_failing_job_is_counted_and_keeps_its_schedule() -> None:
    clock = FakeClock(start=0.0)
    s = Scheduler(clock)

    async def bad() -> None:
        raise OSError("down")

    job = s.every("bad", 1.0, bad, first_delay=0.0)
    await clock.advance(2.5)
    assert job.stats.failures == 3 and "OSError: down" in (job.stats.last_error or "")
    s.close()


async def test_fake_clock_sleep_and_order() -> None:
    clock = FakeClock(start=0.0)
    order: list[str] = []

    async def sleeper(name: str, d: float) -> None:
        await clock.sleep(d)
        order.append(name)

    tasks = [asyncio.create_task(sleeper(n, d)) for n, d in (("b", 2.0), ("a", 1.0), ("c", 3.0))]
    await clock.advance(2.5)
    assert order == ["a", "b"]
    await clock.advance(1.0)
    assert order == ["a", "b", "c"]
    await asyncio.gather(*tasks)


async def test_loop_clock_is_monotonic() -> None:
    c = LoopClock()
    a = c.now()
    await c.sleep(0.01)
    assert c.now() > a


def test_bad_arguments() -> None:
    s = Scheduler(FakeClock())

    async def job() -> None:
        return None

    with pytest.raises(ValueError):
        s.every("x", 0, job)


@contextlib.contextmanager
def realtime() -> Iterator[None]:
    """SCHED_RR for the block, if allowed (the VRRP process's default scheduling)."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
    except OSError:
        yield
        return
    try:
        yield
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def test_daemon_loop_wakes_within_the_millisecond() -> None:
    """The VRRP process's loop ends a wait when asked, not at the next whole millisecond
    (epoll_wait's unit, which made every advert up to 1-2 ms late), and never early."""
    loop = new_event_loop()
    lateness: list[float] = []

    async def timers() -> None:
        for n in range(40):
            when = loop.time() + 0.0021 + n * 0.00037  # never a whole millisecond
            fired = loop.create_future()
            loop.call_at(when, lambda w=when, f=fired: f.set_result(loop.time() - w))
            lateness.append(await fired)
        # a wait for I/O alone
        ours, theirs = socket.socketpair()
        with ours, theirs:
            readable = loop.create_future()
            loop.add_reader(ours.fileno(), lambda: readable.done() or readable.set_result(0))
            loop.call_later(0.05, theirs.send, b"x")
            started = loop.time()
            await readable
            assert loop.time() - started >= 0.05
            loop.remove_reader(ours.fileno())

    try:
        with realtime():  # as the VRRP process runs: a busy machine's waits are not ours
            loop.run_until_complete(timers())
    finally:
        loop.close()
    assert min(lateness) >= 0
    # rounding up to whole milliseconds made the median about half a millisecond
    assert sorted(lateness)[len(lateness) // 2] < 0.0003, lateness


def test_daemon_selector_reports_io_from_a_short_wait() -> None:
    """A wait shorter than a millisecond still reports which descriptor is ready, and with
    nothing ready lasts its time."""
    selector = _PreciseEpollSelector()
    ours, theirs = socket.socketpair()
    try:
        selector.register(ours, selectors.EVENT_READ)
        start = time.monotonic()
        assert selector.select(0.0009) == []
        assert time.monotonic() - start >= 0.0009
        assert selector.select(0) == []
        theirs.send(b"x")
        ready = selector.select(0.0009)
        assert [(key.fileobj, events) for key, events in ready] == [(ours, selectors.EVENT_READ)]
        assert selector.select(0.0021) != []  # the whole milliseconds, then the rest
    finally:
        selector.close()
        ours.close()
        theirs.close()
