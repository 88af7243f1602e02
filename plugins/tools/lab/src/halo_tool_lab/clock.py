"""A clock that only moves when told to, for tests: it stands in for the daemon's
:class:`~halo_core.scheduler.LoopClock` wherever a :class:`~halo_core.scheduler.Clock` is
taken, and ``await clock.advance(3.6)`` runs three and a half seconds of timers instantly
and in a deterministic order."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from halo_core.scheduler import Timer


@dataclass(order=True)
class _FakeTimer:
    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that only moves when told to. Callbacks run in time order, ties in the order
    they were scheduled; between callbacks the event loop gets to run ready tasks."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._heap: list[_FakeTimer] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = _FakeTimer(when, next(self._seq), callback)
        heapq.heappush(self._heap, timer)
        return timer

    async def sleep(self, delay: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        self.call_at(self._now + max(0.0, delay), wake)
        await fut

    def pending(self) -> int:
        return sum(1 for t in self._heap if not t.cancelled)

    async def advance(self, delta: float) -> None:
        """Move time forward by ``delta``, running every timer that falls due on the way."""
        target = self._now + delta
        await _settle()
        while self._heap and self._heap[0].when <= target:
            timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            self._now = max(self._now, timer.when)
            timer.callback()
            await _settle()
        self._now = target
        await _settle()


async def _settle(rounds: int = 20) -> None:
    # Let tasks woken by a timer run (and the tasks they wake, a few levels deep).
    for _ in range(rounds):
        await asyncio.sleep(0)
