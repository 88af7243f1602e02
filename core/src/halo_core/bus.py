"""The event bus: publish never waits, subscribers never hurt each other.

``publish`` is a plain function call that appends the event to a queue per (subscriber,
source) and returns; it never awaits, so the VRRP engine can publish from its hot path. Each
queue is drained by its own task, one event at a time, so one source's events reach a
subscriber in order, while a slow handler for one instance does not hold back another
instance's events or any other subscriber. A handler that raises is logged and counted; one
that runs past its time limit is cancelled, logged and counted. A queue that grows past its
bound drops its oldest events (counted), so a dead subscriber cannot eat memory.

One exception, for the hot path: :meth:`EventBus.subscribe_immediate` registers a plain
function that ``publish`` calls at once, before it returns. The addresses backend uses it
to send a new master's first gratuitous ARPs right after its first advert, without waiting
for a task to be scheduled. Such a handler must be quick and must not block (no I/O that
waits); it runs in the same process as the publisher.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from halo_core.events import Event

log = logging.getLogger("halo.bus")

Handler = Callable[[Event], Awaitable[None] | None]
ImmediateHandler = Callable[[Event], None]


@dataclass
class SubscriberStats:
    delivered: int = 0
    failed: int = 0
    timed_out: int = 0
    dropped: int = 0
    last_error: str | None = None


@dataclass
class Subscription:
    name: str
    handler: Handler
    kinds: frozenset[str] | None
    timeout: float
    max_queue: int
    stats: SubscriberStats = field(default_factory=SubscriberStats)
    lanes: dict[str, deque[Event]] = field(default_factory=dict)
    workers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    active: bool = True

    def wants(self, event: Event) -> bool:
        return self.kinds is None or event.kind in self.kinds


class EventBus:
    """Typed pub/sub on one asyncio loop."""

    def __init__(self, *, default_timeout: float = 30.0, max_queue: int = 10_000) -> None:
        self._subs: list[Subscription] = []
        self._immediate: list[Subscription] = []
        self.default_timeout = default_timeout
        self.max_queue = max_queue
        self.published = 0
        # Called with every event published here (not with those that came from the other
        # process): how events cross to the other process's bus (halo_core.ipc).
        self.taps: list[Callable[[Event], None]] = []

    @property
    def subscriptions(self) -> list[Subscription]:
        return self._subs + self._immediate

    def subscribe(
        self,
        handler: Handler,
        *,
        name: str | None = None,
        kinds: Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> Subscription:
        """Call ``handler(event)`` for every published event (of ``kinds`` if given).

        The handler may be a coroutine function or a plain function; it runs in a task of
        its own lane, never inside ``publish``.
        """
        sub = Subscription(
            name=name or str(getattr(handler, "__qualname__", repr(handler))),
            handler=handler,
            kinds=frozenset(kinds) if kinds is not None else None,
            timeout=self.default_timeout if timeout is None else timeout,
            max_queue=self.max_queue,
        )
        self._subs.append(sub)
        return sub

    def subscribe_immediate(
        self, handler: ImmediateHandler, *, name: str, kinds: Iterable[str]
    ) -> Subscription:
        """Call ``handler(event)`` inside ``publish`` for every event of ``kinds``, before
        any queued subscriber sees it. For a few microseconds of work that cannot wait for
        the loop (a new master's first announcements); an exception is logged and counted
        and never reaches the publisher. The queued subscribers still get every event."""
        sub = Subscription(
            name=name, handler=handler, kinds=frozenset(kinds), timeout=0.0, max_queue=0
        )
        self._immediate.append(sub)
        return sub

    def status(self) -> dict[str, Any]:
        """Counters of the bus and of each subscriber, as plain data (the status API's)."""
        return {
            "published": self.published,
            "subscribers": [
                {
                    "name": sub.name,
                    "kinds": sorted(sub.kinds) if sub.kinds is not None else None,
                    "queued": sum(len(lane) for lane in sub.lanes.values()),
                    "delivered": sub.stats.delivered,
                    "failed": sub.stats.failed,
                    "timed_out": sub.stats.timed_out,
                    "dropped": sub.stats.dropped,
                    "last_error": sub.stats.last_error,
                }
                for sub in [*self._immediate, *self._subs]
            ],
        }

    def unsubscribe(self, sub: Subscription) -> None:
        sub.active = False
        if sub in self._subs:
            self._subs.remove(sub)
        if sub in self._immediate:
            self._immediate.remove(sub)
        for task in sub.workers.values():
            task.cancel()

    def publish(self, event: Event, *, tap: bool = True) -> None:
        """Queue ``event`` for every interested subscriber. Never blocks, never raises.
        ``tap=False``: the event came from the other process; it is not sent back."""
        self.published += 1
        for now in self._immediate:
            if now.wants(event):
                self._call_now(now, event)
        if tap:
            for send in self.taps:
                send(event)
        source = event.source
        for sub in self._subs:
            if not sub.wants(event):
                continue
            lane = sub.lanes.get(source)
            if lane is None:
                lane = sub.lanes[source] = deque()
            if len(lane) >= sub.max_queue:
                lane.popleft()
                sub.stats.dropped += 1
            lane.append(event)
            if source not in sub.workers:
                try:
                    task = asyncio.get_running_loop().create_task(
                        self._drain(sub, source, lane), name=f"bus:{sub.name}:{source}"
                    )
                except RuntimeError:  # no running loop: queued until one drains it
                    continue
                sub.workers[source] = task

    @staticmethod
    def _call_now(sub: Subscription, event: Event) -> None:
        try:
            sub.handler(event)
            sub.stats.delivered += 1
        except Exception as exc:  # a subscriber's bug must not reach the publisher
            sub.stats.failed += 1
            sub.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.error("subscriber %s: failed handling %s: %s", sub.name, event.kind, exc)

    async def _drain(self, sub: Subscription, source: str, lane: deque[Event]) -> None:
        try:
            while lane and sub.active:
                event = lane.popleft()
                await self._deliver(sub, event)
        finally:
            sub.workers.pop(source, None)
            if not lane:
                sub.lanes.pop(source, None)
            elif sub.active:  # events arrived after the loop test: keep draining
                sub.workers[source] = asyncio.get_running_loop().create_task(
                    self._drain(sub, source, lane), name=f"bus:{sub.name}:{source}"
                )

    async def _deliver(self, sub: Subscription, event: Event) -> None:
        try:
            result = sub.handler(event)
            if result is not None:
                # Not wait_for: its task would let a handler's SystemExit end the loop. The
                # yield keeps what wait_for's task gave: other sources' lanes take turns, so
                # events of different sources reach a subscriber in about publication order.
                try:
                    await asyncio.sleep(0)
                except asyncio.CancelledError:
                    if inspect.iscoroutine(result):
                        result.close()  # never started: no "never awaited" warning
                    raise
                async with asyncio.timeout(sub.timeout):
                    await result
            sub.stats.delivered += 1
        except TimeoutError:
            sub.stats.timed_out += 1
            sub.stats.last_error = f"timed out after {sub.timeout:g}s on {event.kind}"
            log.warning(
                "subscriber %s: timed out after %gs handling %s", sub.name, sub.timeout, event.kind
            )
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a subscriber's bug (even SystemExit) stays its own
            sub.stats.failed += 1
            sub.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.error(
                "subscriber %s: failed handling %s: %s: %s",
                sub.name,
                event.kind,
                type(exc).__name__,
                exc,
            )

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until every queued event has been handled (for shutdown and tests)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            tasks = [t for s in self._subs for t in s.workers.values()]
            if not tasks:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await asyncio.wait(tasks, timeout=remaining)

    async def close(self) -> None:
        for sub in self._subs + self._immediate:
            self.unsubscribe(sub)
