"""The event bus: publish never waits; subscribers are isolated; per-source order holds."""

from __future__ import annotations

import asyncio

from halo_core.bus import EventBus
from halo_core.events import CheckResultEvent, Event, VrrpStateChanged


def state(instance: str, new: str) -> VrrpStateChanged:
    return VrrpStateChanged(instance=instance, old="BACKUP", new=new, priority=100, reason="test")


async def test_publish_is_synchronous_and_delivers() -> None:
    bus = EventBus()
    seen: list[Event] = []

    async def handler(e: Event) -> None:
        seen.append(e)

    bus.subscribe(handler)
    bus.publish(state("VI_1", "MASTER"))
    assert seen == []  # nothing runs inside publish
    await bus.drain()
    assert [e.new for e in seen] == ["MASTER"]  # type: ignore[attr-defined]


async def test_kinds_filter() -> None:
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(lambda e: seen.append(e.kind), kinds=["check_result"])
    bus.publish(state("VI_1", "MASTER"))
    bus.publish(CheckResultEvent(check="c", ok=True, up=True))
    await bus.drain()
    assert seen == ["check_result"]


async def test_raising_subscriber_is_isolated_and_counted() -> None:
    bus = EventBus()
    good: list[str] = []

    def bad(e: Event) -> None:
        raise ValueError("nope")

    sub = bus.subscribe(bad, name="bad")
    bus.subscribe(lambda e: good.append(e.kind), name="good")
    for _ in range(3):
        bus.publish(state("VI_1", "MASTER"))
    await bus.drain()
    assert len(good) == 3
    assert sub.stats.failed == 3 and "ValueError: nope" in (sub.stats.last_error or "")


async def test_blocking_subscriber_times_out_without_delaying_others() -> None:
    bus = EventBus()
    fast: list[float] = []
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def hang(e: Event) -> None:
        await asyncio.sleep(3600)

    slow = bus.subscribe(hang, name="hang", timeout=0.2)
    bus.subscribe(lambda e: fast.append(loop.time() - start), name="fast")
    bus.publish(state("VI_1", "MASTER"))
    bus.publish(state("VI_1", "BACKUP"))
    await asyncio.sleep(0.05)
    assert len(fast) == 2 and max(fast) < 0.05  # the fast one was not held back
    await bus.drain(timeout=2)
    assert slow.stats.timed_out == 2


async def test_per_source_order_and_independence() -> None:
    """A slow event for VI_1 delays VI_1's later events (order kept), not VI_2's."""
    bus = EventBus()
    log: list[str] = []

    async def handler(e: Event) -> None:
        assert isinstance(e, VrrpStateChanged)
        if e.instance == "VI_1" and e.new == "BACKUP":
            await asyncio.sleep(0.1)
        log.append(f"{e.instance}:{e.new}")

    bus.subscribe(handler)
    bus.publish(state("VI_1", "BACKUP"))
    bus.publish(state("VI_1", "MASTER"))
    bus.publish(state("VI_2", "MASTER"))
    await bus.drain()
    assert log == ["VI_2:MASTER", "VI_1:BACKUP", "VI_1:MASTER"]


async def test_bounded_queue_drops_oldest() -> None:
    bus = EventBus(max_queue=5)
    got: list[int] = []
    gate = asyncio.Event()

    async def handler(e: Event) -> None:
        await gate.wait()
        got.append(e.priority)  # type: ignore[attr-defined]

    sub = bus.subscribe(handler)
    for i in range(20):
        bus.publish(VrrpStateChanged(instance="VI_1", old="B", new="M", priority=i, reason=""))
    gate.set()
    await bus.drain()
    assert sub.stats.dropped > 0
    assert got[-1] == 19 and len(got) <= 6


def test_events_are_immutable() -> None:
    e = state("VI_1", "MASTER")
    try:
        e.new = "BACKUP"  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("events must be frozen")
    assert e.source == "vrrp:VI_1"
