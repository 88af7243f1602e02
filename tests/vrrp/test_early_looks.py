"""#16 §3: the early looks of an engine's backups at their Master_Down_Timers share one
timer (``EarlyLooks``). A backup of many instances hearing their masters keeps one or two
timers armed, not one per instance re-armed every third advert, and an instance whose
master falls silent still takes over exactly Master_Down_Interval after its last advert."""

from __future__ import annotations

import asyncio
import sys
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))

from vrrp_targets import ReceiveOnly

from halo_core import plugins
from halo_core.bus import EventBus
from halo_core.config import load_text
from halo_core.vrrp import fsm, packet
from halo_core.vrrp.engine import EarlyLooks, InstanceRuntime
from halo_core.vrrp.transport import Interface
from halo_tool_lab.clock import FakeClock

MASTER = IPv4Address("192.0.2.12")
GROUP = IPv4Address("224.0.0.18")
N = 20
INTERVAL = 0.1


class Quiet(ReceiveOnly):
    def drain(self) -> None:
        """Nothing queued: every advert of these tests is handed straight to its instance."""


class CountingClock(FakeClock):
    def __init__(self) -> None:
        super().__init__()
        self.armed = 0

    def call_at(self, when: float, callback: Any) -> Any:
        self.armed += 1
        return super().call_at(when, callback)


def backups(clock: FakeClock, looks: EarlyLooks | None) -> tuple[list[InstanceRuntime], list]:
    iface = Interface("eth0", 7, IPv4Address("192.0.2.11"), None, "02:48:41:00:00:01")
    sock = Quiet(iface, 2)
    text = "global: {router_id: looks}\nvrrp_instances:\n" + "".join(
        f"  VI_{v}:\n    interface: eth0\n    virtual_router_id: {v}\n    priority: 90\n"
        f"    version: 3\n    advert_int: {INTERVAL}\n"
        f"    virtual_ipaddress: [192.0.2.{100 + v}/24]\n"
        for v in range(1, N + 1)
    )
    model = load_text(text, "looks.yaml", plugins.load()).model
    took: list[tuple[str, float]] = []
    runtimes = []
    for name, cfg in model.vrrp_instances.items():
        runtime = InstanceRuntime(
            name,
            cfg,
            iface,
            sock,
            clock=clock,
            bus=EventBus(max_queue=100),
            on_state=lambda inst, change, forced: (
                took.append((inst.name, clock.now())) if change.new is fsm.State.MASTER else None
            ),
            looks=looks,
        )
        sock.receivers[cfg.virtual_router_id] = runtime
        runtime.step(fsm.Startup())
        runtimes.append(runtime)
    return runtimes, took


async def hear(clock: FakeClock, runtimes: list[InstanceRuntime], seconds: float) -> float:
    """Each instance hears its master's advert every INTERVAL (the same objects: repeats),
    staggered over the interval; returns the time of the last advert of the first one."""
    adverts = [
        packet.Advertisement(
            version=3,
            vrid=r.cfg.virtual_router_id,
            priority=200,
            interval_cs=10,
            addresses=(IPv4Address(f"192.0.2.{100 + r.cfg.virtual_router_id}"),),
        )
        for r in runtimes
    ]
    last = clock.now()
    for _ in range(round(seconds / INTERVAL)):
        for k, (runtime, adv) in enumerate(zip(runtimes, adverts, strict=True)):
            await clock.advance(INTERVAL / len(runtimes))
            runtime.on_advert(adv, MASTER, GROUP, clock.now())
            if k == 0:
                last = clock.now()
    return last


def test_backups_hearing_their_masters_keep_one_shared_timer() -> None:
    async def run(shared: bool) -> tuple[int, int]:
        clock = CountingClock()
        runtimes, took = backups(clock, EarlyLooks(clock) if shared else None)
        await hear(clock, runtimes, 1.0)
        armed = clock.armed
        await hear(clock, runtimes, 5.0)
        assert took == []
        assert all(r.state is fsm.State.BACKUP for r in runtimes)
        return clock.armed - armed, clock.pending()

    async def main() -> None:
        own, own_pending = await run(False)
        shared, shared_pending = await run(True)
        # Per instance, a look re-armed every third advert: 50 adverts each in 5 s, about
        # 330 timers. Shared, the one timer moves on about every advert interval (these
        # adverts come spread over it, as from keepalived's masters: the worst case).
        assert own >= 300 and own_pending == N
        assert shared <= 5 * 15 and shared_pending == 1

    asyncio.run(main())


def test_a_silent_master_is_taken_over_on_time_among_many() -> None:
    async def main() -> None:
        clock = FakeClock()
        looks = EarlyLooks(clock)
        runtimes, took = backups(clock, looks)
        last = await hear(clock, runtimes, 2.0)
        # VI_1's master falls silent; the others' masters go on.
        await hear(clock, runtimes[1:], 1.0)
        (name, at), *_ = took
        assert name == runtimes[0].name and len(took) == 1
        assert at == last + 3 * INTERVAL + (256 - 90) / 256 * INTERVAL
        assert all(r.state is fsm.State.BACKUP for r in runtimes[1:])

    asyncio.run(main())


def test_without_shared_looks_the_same_takeover() -> None:
    """The same run on per-instance timers (``looks=None``): the same takeover time."""

    async def run(shared: bool) -> list[tuple[str, float]]:
        clock = FakeClock()
        runtimes, took = backups(clock, EarlyLooks(clock) if shared else None)
        await hear(clock, runtimes, 2.0)
        await hear(clock, runtimes[1:], 1.0)
        return took

    async def main() -> None:
        assert await run(True) == await run(False)

    asyncio.run(main())
