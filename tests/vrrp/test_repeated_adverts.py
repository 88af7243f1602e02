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

from vrrp_targets import ipv4_datagram, vrrp_targets

from halo_core.vrrp import fsm, packet
from halo_core.vrrp.transport import POLL_AT_MOST, POLL_EVERY

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
    assert runtime._repeat_at is None and runtime._repeat_adv is None
    assert runtime.machine.master_down_timer == 1001.5 + runtime.machine.skew_time
    # A lower-priority master is discarded (preempt): its adverts are not repeats either.
    low = replace(adv, priority=50)
    runtime.on_advert(low, MASTER, GROUP, 1001.6)
    runtime.on_advert(low, MASTER, GROUP, 1001.7)
    assert runtime._repeat_adv is None and runtime._repeat_at is None


def test_an_early_wake_up_leaves_the_repeat_pending() -> None:
    """A backup's timer wakes about three times a Master_Down_Interval to find it moved on
    by its master's adverts: that costs no machine step; the repeat is applied once due."""
    runtime, adv = backup()
    runtime.on_advert(adv, MASTER, GROUP, 1000.0)
    runtime.on_advert(adv, MASTER, GROUP, 1000.9)
    runtime.clock.t = 1001.0
    runtime._wake()
    assert runtime._repeat_at == 1000.9  # still pending
    deadline = runtime.machine.master_down_timer  # applied now
    assert deadline is not None and deadline > 1001.0
    assert deadline - 0.2 < runtime._wake_at < deadline  # re-armed for the moved deadline


def test_a_repeat_read_before_a_near_look_moves_it_on() -> None:
    """A backup's early look at its Master_Down_Timer that would come before its master's
    next advert is read is moved on in the pass that reads this one: no wake-up of its own
    only to find the deadline moved."""
    runtime, adv = backup()
    interval = adv.interval_cs / 100
    runtime.on_advert(adv, MASTER, GROUP, 1000.0)
    first = runtime._wake_at
    assert first < 1000.0 + 3 * interval + runtime.machine.skew_time
    for k in (1, 2):  # the look is still further away than the next advert: left alone
        runtime.clock.t = 1000.0 + k * interval
        runtime.on_advert(adv, MASTER, GROUP, runtime.clock.t)
        assert runtime._wake_at == first
    runtime.clock.t = 1000.0 + 3 * interval
    runtime.on_advert(adv, MASTER, GROUP, runtime.clock.t)
    assert runtime._repeat_at == runtime.clock.t  # still pending: not stepped
    deadline = runtime.clock.t + runtime._repeat_down
    assert first < deadline - 0.2 < runtime._wake_at < deadline


def test_polling_period_is_half_the_smallest_skew_time() -> None:
    """A socket of dense traffic is read on a timer; adverts wait at most half the smallest
    Skew_Time of its instances (within POLL_EVERY and POLL_AT_MOST), so a priority-0 advert
    still gives its backup time to take over on time."""
    runtime, _adv = backup()
    sock = runtime.sock
    sock.receivers = {51: runtime}
    sock.retune()
    skew = runtime.machine.skew_time
    assert sock._polling_period() == min(POLL_AT_MOST, max(POLL_EVERY, skew / 2))
    # a higher priority (tracking) shortens the Skew_Time: the socket is told
    runtime.step(fsm.PriorityChanged(priority=254))
    assert runtime.machine.skew_time < skew
    assert sock._polling_period() == max(POLL_EVERY, runtime.machine.skew_time / 2)


def test_a_repeat_differing_only_in_ip_id_is_looked_up_other_header_bytes_are_not() -> None:
    """The socket remembers decoded adverts by the bytes from the IP source on and compares
    the header's other bytes: a master's repeat (new IP ID and checksum) is a cache hit, but
    the same bytes with another TTL (an off-link sender) or IP options must be decoded and
    judged again, not taken for the remembered advert."""
    runtime, adv = backup()
    sock = runtime.sock
    sock.receivers = {51: runtime}
    payload = packet.AdvertTemplate(adv, MASTER, GROUP).encode(adv.priority)
    sock.take(ipv4_datagram(payload, MASTER, GROUP, ident=1), [], None, 1000.0, 0.0)
    assert runtime.counters["adverts_received"] == 1 and len(sock._decoded) == 1
    sock.take(ipv4_datagram(payload, MASTER, GROUP, ident=2), [], None, 1000.1, 0.0)
    assert runtime.counters["adverts_received"] == 2 and len(sock._decoded) == 1  # a hit
    sock.take(ipv4_datagram(payload, MASTER, GROUP, ident=3, ttl=254), [], None, 1000.2, 0.0)
    assert runtime.counters["adverts_received"] == 2
    assert sock.counters[packet.RejectReason.BAD_TTL.value] == 1  # dropped in decoding
    # IP options shift the message: the bytes after the source address differ, and a
    # header with options is never remembered
    sock.take(
        ipv4_datagram(payload, MASTER, GROUP, ident=4, options=b"\x01\x01\x01\x00"),
        [],
        None,
        1000.3,
        0.0,
    )
    assert runtime.counters["adverts_received"] == 3 and len(sock._decoded) == 1
