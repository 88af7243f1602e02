"""#16 §3: a backup applies a repeat of the advert it stepped last lazily (when its machine
is next read), not once per advert. The machine must come out exactly as if every advert
had been stepped in turn, and anything else (another advert, priority 0, a lower-priority
master) must be stepped at once."""

from __future__ import annotations

import sys
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))

from vrrp_targets import vrrp_targets

from halo_core.vrrp import fsm, packet

MASTER = IPv4Address("192.0.2.12")
GROUP = IPv4Address("224.0.0.18")


def backup() -> tuple[object, packet.Advertisement]:
    (target,) = [t for t in vrrp_targets() if t.name == "v3/ipv4/backup"]
    exp = target.exp
    adv = packet.Advertisement(
        version=3, vrid=51, priority=200, interval_cs=exp.interval_cs, addresses=exp.addresses
    )
    return target.runtime, adv


def test_repeats_are_applied_once_and_exactly() -> None:
    runtime, adv = backup()
    assert runtime.state is fsm.State.BACKUP
    reference = runtime.machine
    times = [1000.0, 1000.9, 1001.8, 1002.7]
    for t in times:
        runtime.on_advert(adv, MASTER, GROUP, t)
        event = fsm.AdvertReceived(priority=200, source=MASTER, interval_cs=adv.interval_cs)
        reference, actions = fsm.step(reference, event, t)
        assert actions == []
    assert runtime._repeat_at == times[-1]  # not applied yet...
    assert runtime.machine == reference  # ...and exactly the stepped machine when read
    assert runtime._repeat_at is None
    assert runtime.counters["adverts_received"] == len(times)


def test_anything_but_a_repeat_is_stepped_at_once() -> None:
    runtime, adv = backup()
    runtime.on_advert(adv, MASTER, GROUP, 1000.0)
    runtime.on_advert(adv, MASTER, GROUP, 1001.0)
    # The master lets go (priority 0): stepped now, after the pending repeat.
    stop = replace(adv, priority=0)
    runtime.on_advert(stop, MASTER, GROUP, 1001.5)
    assert runtime._repeat_at is None and runtime._repeat is None
    assert runtime.machine.master_down_timer == 1001.5 + runtime.machine.skew_time
    # A lower-priority master is discarded (preempt): its adverts are not repeats either.
    low = replace(adv, priority=50)
    runtime.on_advert(low, MASTER, GROUP, 1001.6)
    runtime.on_advert(low, MASTER, GROUP, 1001.7)
    assert runtime._repeat is None and runtime._repeat_at is None
