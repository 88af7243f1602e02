"""Rule-by-rule tests of the pure VRRP state machine, with a fake clock (plain numbers).

Each test names the rule it checks: RFC 9568 (VRRPv3) §6.1 / §6.4.x with the RFC's line
numbers where they help, RFC 3768 (VRRPv2) where v2 differs, or keepalived 2.2.7's
behaviour (keepalived.conf(5), measured timings) for what the RFCs leave open.  The last
section runs whole elections between simulated routers over a fake network.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from halo_core.vrrp.fsm import (
    Action,
    AdvertReceived,
    Announce,
    Config,
    Event,
    FaultCleared,
    FaultSet,
    ForceState,
    GroupHold,
    IPAddress,
    Machine,
    PriorityChanged,
    SendAdvert,
    Shutdown,
    Startup,
    State,
    StateChanged,
    Tick,
    initial,
    step,
)

US = IPv4Address("192.0.2.10")
LOWER = IPv4Address("192.0.2.9")  # a peer whose address is lower than ours
HIGHER = IPv4Address("192.0.2.11")  # a peer whose address is higher than ours

INIT, BACKUP, MASTER, FAULT = State.INITIALIZE, State.BACKUP, State.MASTER, State.FAULT


def config(**overrides: Any) -> Config:
    values: dict[str, Any] = {
        "name": "VI_1",
        "version": 2,
        "vrid": 51,
        "priority": 100,
        "interval_cs": 100,
        "primary_address": US,
    }
    values.update(overrides)
    return Config(**values)


def run(m: Machine, *timeline: tuple[float, Event]) -> tuple[Machine, list[Action]]:
    """Apply (time, event) pairs in order; return the machine and all actions."""
    actions: list[Action] = []
    for now, event in timeline:
        m, more = step(m, event, now)
        actions += more
    return m, actions


def backup(now: float = 0.0, **overrides: Any) -> Machine:
    """A machine that started at ``now`` and is in BACKUP."""
    m, _ = step(initial(config(**overrides)), Startup(), now)
    assert m.state is BACKUP
    return m


def master(**overrides: Any) -> tuple[Machine, float]:
    """A machine that started at 0 and won by timeout; returns it and the takeover time."""
    m = backup(**overrides)
    assert m.master_down_timer is not None
    t = m.master_down_timer
    m, _ = step(m, Tick(), t)
    assert m.state is MASTER
    return m, t


def advert(priority: int, source: IPAddress = HIGHER, interval_cs: int = 100) -> AdvertReceived:
    return AdvertReceived(priority, source, interval_cs)


def changes(actions: list[Action]) -> list[tuple[State, State]]:
    return [(a.old, a.new) for a in actions if isinstance(a, StateChanged)]


# --- §6.1 timers ------------------------------------------------------------------------


def test_v2_skew_and_master_down_interval() -> None:
    """RFC 3768 §6.1: Skew_Time = (256 - Priority) / 256 s; Master_Down_Interval =
    3 * Advertisement_Interval + Skew_Time.  keepalived measured: 1 s, priority 90 ->
    3.6484 s, no truncation."""
    m = initial(config(priority=90, interval_cs=100))
    assert m.skew_time == 166 / 256 == 0.6484375
    assert m.master_down_interval == 3.6484375


def test_v3_skew_and_master_down_interval() -> None:
    """RFC 9568 §6.1: Skew_Time = ((256 - Priority) * Active_Adver_Interval) / 256 cs;
    Active_Down_Interval = 3 * Active_Adver_Interval + Skew_Time.  keepalived measured:
    0.1 s, priority 90 -> 0.3648 s (skew 0.0648 s, not truncated to whole centiseconds)."""
    m = initial(config(version=3, priority=90, interval_cs=10))
    assert m.skew_time == pytest.approx(0.06484375, abs=1e-12)
    assert m.master_down_interval == pytest.approx(0.36484375, abs=1e-12)


def test_v3_timers_use_the_learned_master_interval() -> None:
    """RFC 9568 §6.1: both formulas use Active_Adver_Interval, the interval learned from the
    master, not our own Advertisement_Interval."""
    m = backup(version=3, priority=90, interval_cs=10)
    m, _ = step(m, advert(100, interval_cs=200), 1.0)
    assert m.master_adver_interval_cs == 200
    assert m.skew_time == pytest.approx(166 * 2 / 256)
    assert m.master_down_interval == pytest.approx(6 + 166 * 2 / 256)


def test_v2_timers_use_the_configured_interval() -> None:
    """RFC 3768 §6.1: v2 uses the configured Advertisement_Interval, and its Skew_Time does
    not depend on the interval at all."""
    m = initial(config(priority=90, interval_cs=300))
    assert m.skew_time == 0.6484375
    assert m.master_down_interval == 9.6484375


def test_skew_uses_the_effective_priority() -> None:
    """RFC 9568 §6.1: Skew_Time is computed from the local Priority, which is the effective
    priority once tracking has moved it (keepalived does the same)."""
    m, _ = step(initial(config(priority=100)), PriorityChanged(200), 0.0)
    assert m.skew_time == 56 / 256


# --- §6.4.1 Initialize --------------------------------------------------------------------


def test_owner_starts_master() -> None:
    """RFC 9568 §6.4.1, "If the Priority = 255": priority 255 sends an ADVERTISEMENT (the
    backends announce the addresses on the state change), sets the Adver_Timer and goes to
    Active (MASTER)."""
    m, actions = step(initial(config(priority=255)), Startup(), 5.0)
    assert m.state is MASTER
    assert actions == [
        StateChanged(INIT, MASTER, "startup as address owner (priority 255)"),
        SendAdvert(255),
    ]
    assert m.adver_timer == 6.0
    assert m.master_down_timer is None
    assert m.next_deadline() == 6.0


def test_non_owner_starts_backup_with_master_down_timer() -> None:
    """RFC 9568 §6.4.1, "else // Router is not the address owner": a non-owner sets
    Active_Adver_Interval to its own Advertisement_Interval, the Active_Down_Timer to
    Active_Down_Interval, goes to Backup, and sends nothing."""
    m, actions = step(initial(config(version=3, interval_cs=50)), Startup(), 10.0)
    assert actions == [StateChanged(INIT, BACKUP, "startup")]
    assert m.master_adver_interval_cs == 50
    assert m.adver_timer is None
    assert m.master_down_timer == pytest.approx(10.0 + 1.5 + 156 * 50 / 256 / 100)
    assert m.next_deadline() == m.master_down_timer


def test_state_master_below_255_still_starts_backup() -> None:
    """RFC 9568 §6.4.1 / keepalived 2.2.7 measured: ``state MASTER`` at priority 100 starts
    in BACKUP and waits a full Master_Down_Interval (3.609 s at 1 s adverts): the configured
    state is not an input of the FSM at all."""
    m, actions = step(initial(config()), Startup(), 0.0)
    assert changes(actions) == [(INIT, BACKUP)]
    assert m.master_down_timer == 3.609375


def test_owner_starts_master_whatever_the_start_state() -> None:
    """RFC 9568 §6.4.1: the rule is "If the Priority = 255"; the configured state
    does not enter into it."""
    m, _ = step(initial(config(priority=255)), Startup(), 0.0)
    assert m.state is MASTER


@pytest.mark.parametrize("state_of", [backup, lambda: master()[0]])
def test_startup_while_running_is_ignored(state_of: Any) -> None:
    """RFC 9568 §6.4.1: Startup is an event of the Initialize state only."""
    m = state_of()
    assert step(m, Startup(), 1.0) == (m, [])


def test_initialize_ignores_adverts_ticks_and_shutdown() -> None:
    """RFC 9568 §6.4.1: before Startup nothing runs, so there is nothing to react to."""
    m = initial(config())
    for event in (advert(200), Tick(), Shutdown()):
        assert step(m, event, 1.0) == (m, [])


# --- §6.4.2 Backup ------------------------------------------------------------------------


def test_backup_shutdown_cancels_timer_and_sends_nothing() -> None:
    """RFC 9568 §6.4.2 Shutdown: "Cancel the Active_Down_Timer", go to Initialize."""
    m, actions = step(backup(), Shutdown(), 1.0)
    assert actions == [StateChanged(BACKUP, INIT, "shutdown")]
    assert m.state is INIT
    assert m.next_deadline() is None


def test_backup_master_down_timer_fires() -> None:
    """RFC 9568 §6.4.2, "If the Active_Down_Timer fires": Send an
    ADVERTISEMENT, announce the addresses, set the Adver_Timer, go to Active."""
    m = backup(priority=90)
    assert m.master_down_timer == 3.6484375
    reason = "master down timer expired, no master heard"
    m, actions = step(m, Tick(), 3.6484375)
    assert actions == [StateChanged(BACKUP, MASTER, reason), SendAdvert(90)]
    assert m.adver_timer == 4.5234375  # an interval on, an eighth nearer the grid
    assert m.master_down_timer is None


def test_backup_early_tick_does_nothing() -> None:
    """RFC 9568 §6.4.2: only the timer firing moves a Backup; a Tick before the
    deadline (an early wake-up) changes nothing."""
    m = backup()
    assert step(m, Tick(), 3.6) == (m, [])


def test_backup_priority_zero_sets_timer_to_skew_time_v2() -> None:
    """RFC 3768 §6.4.2 / RFC 9568 §6.4.2: "If the Priority in the ADVERTISEMENT is 0, then:
    Set the Active_Down_Timer to Skew_Time".  keepalived measured: takeover 0.6484 s after it (v2,
    priority 90)."""
    m = backup(priority=90)
    m, actions = run(m, (1.0, advert(200)), (2.0, advert(0)))
    assert actions == []
    assert m.master_down_timer == 2.0 + 0.6484375
    m, actions = step(m, Tick(), 2.6484375)
    assert m.state is MASTER
    assert actions[0] == StateChanged(
        BACKUP, MASTER, f"master {HIGHER} stepped down (priority 0 advert)"
    )


def test_backup_priority_zero_sets_timer_to_skew_time_v3() -> None:
    """RFC 9568 §6.4.2 "Set the Active_Down_Timer to Skew_Time", §6.1: Skew_Time with the
    learned Active_Adver_Interval.  keepalived measured: 0.0648 s at 0.1 s adverts,
    priority 90."""
    m = backup(version=3, priority=90, interval_cs=10)
    m, _ = run(m, (1.0, advert(200, interval_cs=10)), (1.05, advert(0, interval_cs=10)))
    assert m.master_down_timer == pytest.approx(1.05 + 0.06484375)


def test_backup_accepts_higher_priority_and_resets_timer() -> None:
    """RFC 9568 §6.4.2: an advert with a priority greater than ours resets the
    Active_Down_Timer to Active_Down_Interval."""
    m = backup(priority=100)
    m, actions = step(m, advert(150), 2.0)
    assert actions == []
    assert m.master_down_timer == 2.0 + 3.609375
    assert (m.master_address, m.master_priority) == (HIGHER, 150)


def test_backup_accepts_equal_priority() -> None:
    """RFC 9568 §6.4.2: "greater than or equal to the local Priority" is accepted
    (in Backup there is no address tie-break)."""
    m, _ = step(backup(priority=100), advert(100, source=LOWER), 2.0)
    assert m.master_down_timer == 2.0 + 3.609375


def test_backup_preempt_discards_lower_priority_and_takes_over() -> None:
    """RFC 9568 §6.4.2 "else // preempt was true and priority was less than the local
    priority: Discard the ADVERTISEMENT"; the timer keeps running and the Backup preempts
    when it fires."""
    m = backup(priority=200)
    deadline = m.master_down_timer
    m, actions = run(m, (1.0, advert(100)), (2.0, advert(100)), (3.0, advert(100)))
    assert actions == []
    assert m.master_down_timer == deadline == 3.21875
    m, actions = step(m, Tick(), 3.21875)
    assert actions[0] == StateChanged(
        BACKUP, MASTER, f"preempting lower-priority master {HIGHER} (priority 100 < 200)"
    )


def test_backup_nopreempt_accepts_lower_priority() -> None:
    """RFC 9568 §6.4.2 "If Preempt_Mode is False, or ...": with Preempt_Mode False every
    advert resets the timer, so a higher-priority Backup never takes over from a live
    lower-priority master."""
    m = backup(priority=200, preempt=False)
    for t in range(1, 30):
        m, actions = step(m, advert(100), float(t))
        m, more = step(m, Tick(), float(t) + 0.5)
        assert actions == more == []
    assert m.state is BACKUP
    assert m.master_down_timer == 29.0 + 3.21875


def test_backup_nopreempt_with_state_master() -> None:
    """keepalived.conf(5) says nopreempt needs an initial state other than MASTER; halo
    honours it in any start state, as a non-owner always starts in BACKUP anyway."""
    m = backup(priority=200, preempt=False)
    m, _ = step(m, advert(100), 1.0)
    assert m.master_down_timer == 1.0 + 3.21875


def test_owner_always_preempts() -> None:
    """RFC 9568 §6.1 Preempt_Mode: "the router that owns the IPvX address ... always
    preempts, independent of the setting of this flag"."""
    m, _ = step(initial(config(priority=255, preempt=False)), Startup(), 0.0)
    m, _ = step(m, ForceState(BACKUP, "group"), 1.0)
    deadline = m.master_down_timer
    m, _ = step(m, advert(254), 2.0)
    assert m.master_down_timer == deadline


def test_backup_v3_learns_master_interval() -> None:
    """RFC 9568 §6.4.2: set Active_Adver_Interval to the Max Advertise
    Interval in the ADVERTISEMENT, recompute Skew_Time and Active_Down_Interval, reset
    the timer.  keepalived measured: a v3 backup adopts the master's interval."""
    m = backup(version=3, priority=100, interval_cs=100)
    m, _ = step(m, advert(200, interval_cs=50), 1.0)
    assert m.master_adver_interval_cs == 50
    assert m.master_down_timer == pytest.approx(1.0 + 1.5 + 156 * 50 / 256 / 100)


def test_backup_v2_does_not_learn_master_interval() -> None:
    """RFC 3768 §6.4.2 has no step learning the interval: v2 keeps its configured one
    (keepalived measured)."""
    m = backup(version=2, priority=100, interval_cs=100)
    m, _ = step(m, advert(200, interval_cs=300), 1.0)
    assert m.master_adver_interval_cs == 100
    assert m.master_down_timer == 1.0 + 3.609375


def test_backup_priority_zero_does_not_learn_interval() -> None:
    """RFC 9568 §6.4.2: the priority-0 branch only sets the timer."""
    m = backup(version=3)
    m, _ = step(m, advert(0, interval_cs=7), 1.0)
    assert m.master_adver_interval_cs == 100


# --- §6.4.3 Active (MASTER) ---------------------------------------------------------------


def test_master_adver_timer_fires() -> None:
    """RFC 9568 §6.4.3, "If the Adver_Timer fires": Send an ADVERTISEMENT; reset the
    Adver_Timer."""
    m, t = master(priority=100)
    assert m.adver_timer == t + 1.0 - 0.125  # an interval on, an eighth nearer the grid
    m, actions = step(m, Tick(), m.adver_timer)
    assert actions == [SendAdvert(100)]
    assert m.adver_timer == t + 2.0 - 0.25


def test_master_adver_timer_keeps_its_phase_when_late() -> None:
    """The Adver_Timer after a late tick is the deadline plus one interval, not the late
    time plus one: the phase does not drift (see the module's rules)."""
    m, _ = master(priority=100)
    m = replace(m, adver_timer=4.0)  # on the grid
    m, actions = step(m, Tick(), 4.3)
    assert actions == [SendAdvert(100)]
    assert m.adver_timer == 5.0
    # more than an interval late: an interval from now, then back to the grid
    m, actions = step(m, Tick(), 7.25)
    assert actions == [SendAdvert(100)]
    assert m.adver_timer == 8.125


@pytest.mark.parametrize(
    "now", [0.3, 0.30000000000000004, 0.29999999999999993, 12.7, 12.71, 1e6 + 0.05]
)
def test_master_adverts_reach_the_grid_never_further_apart_than_the_interval(now: float) -> None:
    """From a takeover at any time, float rounding included: each advert comes 7/8 to 1
    interval after the last, and within eight adverts they are on multiples of the
    interval (where all of a host's instances of that interval meet)."""
    m, actions = step(backup(version=3, interval_cs=10), ForceState(MASTER, "forced"), now)
    assert SendAdvert(100) in actions
    sent = [now]
    for _ in range(12):
        assert m.adver_timer is not None
        sent.append(m.adver_timer)
        m, actions = step(m, Tick(), m.adver_timer)
        assert actions == [SendAdvert(100)]
    for a, b in itertools.pairwise(sent):
        assert 0.1 * 7 / 8 - 1e-9 <= b - a <= 0.1 + 1e-9
    for t in sent[9:]:
        assert t / 0.1 == pytest.approx(round(t / 0.1), abs=1e-5)


def test_master_early_tick_does_nothing() -> None:
    """RFC 9568 §6.4.3: nothing is sent before the Adver_Timer fires."""
    m, _ = master()
    assert m.adver_timer is not None
    assert step(m, Tick(), m.adver_timer - 0.001) == (m, [])


def test_master_shutdown_sends_exactly_one_priority_zero() -> None:
    """RFC 9568 §6.4.3 Shutdown: Cancel the Adver_Timer, Send an ADVERTISEMENT with
    Priority = 0, go to Initialize.  keepalived measured: SIGTERM sends exactly one."""
    m, t = master()
    m, actions = step(m, Shutdown(), t + 0.3)
    assert actions == [StateChanged(MASTER, INIT, "shutdown"), SendAdvert(0)]
    assert m.next_deadline() is None


def test_master_priority_zero_advert_answers_at_once() -> None:
    """RFC 9568 §6.4.3: on a priority-0 advert, Send an ADVERTISEMENT and
    reset the Adver_Timer to Advertisement_Interval."""
    m, t = master(priority=100)
    m, actions = step(m, advert(0), t + 0.25)
    assert actions == [SendAdvert(100)]
    assert t + 0.25 + 0.875 <= m.adver_timer <= t + 1.25
    assert m.state is MASTER


@pytest.mark.parametrize("version", [2, 3])
def test_master_higher_priority_goes_backup(version: int) -> None:
    """RFC 9568 §6.4.3: a greater priority: cancel the Adver_Timer,
    learn the interval (v3), set the Active_Down_Timer, go to Backup - without a
    priority-0 advert."""
    m, t = master(version=version, priority=100, interval_cs=100)
    m, actions = step(m, advert(150, interval_cs=200), t + 0.5)
    assert actions == [
        StateChanged(MASTER, BACKUP, f"higher priority advert from {HIGHER} (150 > 100)")
    ]
    assert m.adver_timer is None
    if version == 3:
        assert m.master_adver_interval_cs == 200
        assert m.master_down_timer == pytest.approx(t + 0.5 + 6 + 156 * 2 / 256)
    else:  # RFC 3768 §6.4.3: no interval learning
        assert m.master_adver_interval_cs == 100
        assert m.master_down_timer == t + 0.5 + 3.609375
    assert (m.master_address, m.master_priority) == (HIGHER, 150)


def test_master_equal_priority_higher_address_goes_backup() -> None:
    """RFC 9568 §6.4.3: equal priority and the sender's primary address greater than
    ours: the sender wins."""
    m, t = master(priority=100)
    m, actions = step(m, advert(100, source=HIGHER), t + 0.5)
    assert changes(actions) == [(MASTER, BACKUP)]
    assert actions[0] == StateChanged(
        MASTER, BACKUP, f"equal priority 100 advert from higher address {HIGHER}"
    )


def test_master_equal_priority_lower_address_reasserts() -> None:
    """RFC 9568 §6.4.3: equal priority from a lower address loses: we
    stay Active, discard it, and send an advert at once (and announce: split brain)."""
    m, t = master(priority=100)
    m2, actions = step(m, advert(100, source=LOWER), t + 0.5)
    assert m2 == m
    assert actions == [
        SendAdvert(100),
        Announce(f"split-brain: equal-priority master {LOWER} with a lower address seen"),
    ]


def test_master_lower_priority_readvertises_and_announces() -> None:
    """RFC 9568 §6.4.3 "else // new Active Router logic": discard, and "Send an
    ADVERTISEMENT immediately to assert the {Active} state".  keepalived measured: sends at
    once.  Only a master sends adverts, so this is a healed split brain: re-announce the
    addresses.  The Adver_Timer is not reset."""
    m, t = master(priority=200)
    m2, actions = step(m, advert(100, source=HIGHER), t + 0.5)
    assert actions == [
        SendAdvert(200),
        Announce(f"split-brain: lower-priority master {HIGHER} (100 < 200) seen"),
    ]
    assert m2 == m


def test_master_lower_prio_no_advert_only_discards() -> None:
    """keepalived's lower_prio_no_advert (on in its strict mode): RFC 3768/5798 §6.4.3 only
    discard a lower-priority advert, so no advert goes out; the announcement is still asked
    for (the vip backend's garp_lower_prio_repeat says how many, 0 in strict mode)."""
    m, t = master(priority=200, lower_prio_no_advert=True)
    m2, actions = step(m, advert(100, source=HIGHER), t + 0.5)
    assert actions == [Announce(f"split-brain: lower-priority master {HIGHER} (100 < 200) seen")]
    assert m2 == m


def test_master_equal_priority_own_address_is_ignored() -> None:
    """RFC 9568 §6.4.3: "greater" is strict, so our own address at our priority is
    no winner; it is discarded without the reply that would ping-pong forever."""
    m, t = master(priority=100)
    assert step(m, advert(100, source=US), t + 0.5) == (m, [])


@pytest.mark.parametrize(
    ("ours", "theirs", "they_win"),
    [
        ("10.0.0.10", "10.0.0.9", False),  # as strings "10.0.0.9" > "10.0.0.10"
        ("10.0.0.9", "10.0.0.10", True),
        ("fe80::9", "fe80::10", True),
        ("fe80::ffff", "fe80::1:0", True),
        ("fe80::1:0", "fe80::ffff", False),
    ],
)
def test_tie_break_is_an_unsigned_integer_comparison(
    ours: str, theirs: str, they_win: bool
) -> None:
    """RFC 9568 §6.4.3: "based on an unsigned integer comparison of the IPvX
    addresses in network byte order"."""
    cls = IPv6Address if ":" in ours else IPv4Address
    m, t = master(version=3, primary_address=cls(ours))
    m, actions = step(m, advert(100, source=cls(theirs)), t + 0.1)
    assert (m.state is BACKUP) is they_win
    assert (SendAdvert(100) in actions) is not they_win


def test_tie_break_across_families_is_total() -> None:
    """RFC 9568 §6.4.3 compares same-family addresses; should a mixed pair ever
    arrive, the order is still total (IPv6 above IPv4), so exactly one side wins."""
    m, t = master(version=3, primary_address=IPv4Address("255.255.255.255"))
    m, _ = step(m, advert(100, source=IPv6Address("::1")), t + 0.1)
    assert m.state is BACKUP


def test_master_takes_own_interval_after_learning() -> None:
    """RFC 9568 §6.4.2 "Set the Adver_Timer to Advertisement_Interval": a new Active
    advertises its own Advertisement_Interval, so the interval learned as Backup is dropped
    on taking over."""
    m = backup(version=3, interval_cs=100)
    m, _ = step(m, advert(200, interval_cs=50), 1.0)
    m, _ = step(m, Tick(), m.master_down_timer or 0.0)
    assert m.state is MASTER
    assert m.master_adver_interval_cs == 100
    assert m.adver_timer is not None
    assert m.master_address is None


# --- FAULT (keepalived's extension) -------------------------------------------------------


def test_fault_from_backup_cancels_timer() -> None:
    """keepalived FAULT: a fault reason moves a Backup to FAULT; no timers run there."""
    m, actions = step(backup(), FaultSet("interface eth0 down"), 1.0)
    assert actions == [StateChanged(BACKUP, FAULT, "interface eth0 down")]
    assert m.next_deadline() is None


def test_fault_from_master_sends_priority_zero() -> None:
    """keepalived measured: leaving MASTER for FAULT sends priority 0, so a backup takes
    over after Skew_Time (RFC 9568 §6.4.2)."""
    m, t = master()
    m, actions = step(m, FaultSet("check web failed"), t + 0.1)
    assert actions == [StateChanged(MASTER, FAULT, "check web failed"), SendAdvert(0)]
    assert m.next_deadline() is None


def test_fault_reasons_are_a_set() -> None:
    """keepalived FAULT: the instance stays in FAULT until every reason is cleared; a
    duplicate or unknown reason changes nothing."""
    m, actions = run(
        backup(),
        (1.0, FaultSet("a")),
        (1.1, FaultSet("b")),
        (1.2, FaultSet("a")),
        (1.3, FaultCleared("a")),
        (1.4, FaultCleared("unknown")),
    )
    assert changes(actions) == [(BACKUP, FAULT)]
    assert m.state is FAULT
    assert m.fault_reasons == {"b"}
    m, actions = step(m, FaultCleared("b"), 2.0)
    assert actions == [StateChanged(FAULT, BACKUP, "fault cleared: b")]


def test_leaving_fault_starts_over_as_backup() -> None:
    """RFC 9568 §6.4.1 (non-owner) applied on leaving FAULT (keepalived): own interval,
    full Active_Down_Interval."""
    m = backup(version=3, interval_cs=100)
    m, _ = run(m, (1.0, advert(200, interval_cs=50)), (1.5, FaultSet("x")))
    assert m.master_adver_interval_cs == 100
    m, _ = step(m, FaultCleared("x"), 10.0)
    assert m.state is BACKUP
    assert m.master_down_timer == pytest.approx(10.0 + 3.609375)


def test_owner_leaves_fault_as_master() -> None:
    """RFC 9568 §6.4.1 (owner) applied on leaving FAULT: the owner goes straight to
    MASTER."""
    m, _ = step(initial(config(priority=255)), Startup(), 0.0)
    m, actions = run(m, (1.0, FaultSet("x")), (2.0, FaultCleared("x")))
    assert changes(actions) == [(MASTER, FAULT), (FAULT, MASTER)]
    assert actions[-2:] == [StateChanged(FAULT, MASTER, "fault cleared: x"), SendAdvert(255)]


def test_fault_before_startup() -> None:
    """keepalived FAULT: faults reported while INITIALIZE (trackers read before start-up)
    make Startup go to FAULT; a fault cleared before start-up is forgotten."""
    m, actions = run(
        initial(config()),
        (0.0, FaultSet("interface eth0 down")),
        (0.0, FaultSet("gone")),
        (0.0, FaultCleared("gone")),
        (0.0, Startup()),
    )
    assert actions == [StateChanged(INIT, FAULT, "startup: interface eth0 down")]
    assert m.next_deadline() is None


def test_fault_ignores_adverts_and_ticks() -> None:
    """keepalived FAULT: an instance in FAULT takes no part in elections."""
    m, _ = step(backup(), FaultSet("x"), 1.0)
    for event in (advert(0), advert(200), Tick(), Startup()):
        assert step(m, event, 2.0) == (m, [])


def test_fault_shutdown_sends_nothing() -> None:
    """RFC 9568 §6.4.2 Shutdown by analogy: nothing runs in FAULT, so Shutdown just goes
    to Initialize."""
    m, _ = step(backup(), FaultSet("x"), 1.0)
    m, actions = step(m, Shutdown(), 2.0)
    assert actions == [StateChanged(FAULT, INIT, "shutdown")]


# --- sync groups: ForceState ------------------------------------------------------------


def test_force_backup_to_master() -> None:
    """Sync groups: a member is forced to MASTER with its group; the usual entry actions
    of RFC 9568 §6.4.2 ("If the Active_Down_Timer fires") apply."""
    m, actions = step(backup(), ForceState(MASTER, "sync group G1 is MASTER"), 1.0)
    assert actions == [
        StateChanged(BACKUP, MASTER, "sync group G1 is MASTER"),
        SendAdvert(100),
    ]
    assert m.adver_timer == 2.0


def test_force_master_to_backup_sends_no_priority_zero() -> None:
    """Sync groups (keepalived): forced from MASTER to BACKUP the member sends nothing
    and arms its Master_Down_Timer as when it loses an election (RFC 9568 §6.4.3)."""
    m, t = master()
    m, actions = step(m, ForceState(BACKUP, "sync group G1 is BACKUP"), t + 0.2)
    assert actions == [StateChanged(MASTER, BACKUP, "sync group G1 is BACKUP")]
    assert m.master_down_timer == t + 0.2 + 3.609375


def test_force_master_to_fault_sends_priority_zero() -> None:
    """Sync groups: forced to FAULT, a master still says goodbye with priority 0."""
    m, t = master()
    m, actions = step(m, ForceState(FAULT, "sync group G1 is FAULT"), t)
    assert actions == [StateChanged(MASTER, FAULT, "sync group G1 is FAULT"), SendAdvert(0)]


def test_forced_fault_is_held_until_the_group_releases_it() -> None:
    """Sync groups: a forced FAULT survives the member's own faults clearing; only a
    ForceState to BACKUP/MASTER releases it."""
    m, actions = run(
        backup(),
        (1.0, FaultSet("own")),
        (1.1, ForceState(FAULT, "group fault")),
        (1.2, ForceState(FAULT, "group fault again")),
        (1.3, FaultCleared("own")),
    )
    assert changes(actions) == [(BACKUP, FAULT)]
    assert m.forced_fault == "group fault again"
    m, actions = step(m, ForceState(BACKUP, "group recovered"), 2.0)
    assert actions == [StateChanged(FAULT, BACKUP, "group recovered")]
    assert m.forced_fault is None


def test_own_faults_beat_the_group() -> None:
    """Sync groups: a member with faults of its own stays in FAULT when the group tells
    it to be MASTER or BACKUP (the group's hold is released all the same)."""
    m, _ = run(backup(), (1.0, FaultSet("own")), (1.1, ForceState(FAULT, "group")))
    for target in (MASTER, BACKUP):
        m2, actions = step(m, ForceState(target, "group"), 2.0)
        assert actions == []
        assert m2.state is FAULT
        assert m2.forced_fault is None


def test_group_hold_restarts_the_master_down_timer() -> None:
    """Sync groups (keepalived's vrrp_sync_can_goto_master): a member whose Master_Down_Timer
    expired while its group does not go MASTER stays BACKUP, the timer started again; before
    the expiry, and in any other state, the hold changes nothing."""
    m = backup()
    assert m.master_down_timer is not None
    due = m.master_down_timer
    assert step(m, GroupHold("sync group G1"), due - 0.01) == (m, [])
    held, actions = step(m, GroupHold("sync group G1"), due + 0.001)
    assert actions == []
    assert held.state is BACKUP
    assert held.master_down_timer == due + 0.001 + m.master_down_interval
    assert step(held, Tick(), due + 0.002) == (held, [])  # the timer now runs from the hold
    m, t = master()
    assert step(m, GroupHold("sync group G1"), t + 5) == (m, [])


def test_force_to_current_state_is_a_no_op() -> None:
    """Sync groups: forcing the state a member is already in changes nothing (its timers
    keep running)."""
    m = backup()
    assert step(m, ForceState(BACKUP, "g"), 1.0) == (m, [])
    m, t = master()
    assert step(m, ForceState(MASTER, "g"), t) == (m, [])


def test_force_before_startup() -> None:
    """Sync groups: a FAULT forced before start-up is remembered; a later release is too."""
    _, actions = run(initial(config()), (0.0, ForceState(FAULT, "group")), (0.0, Startup()))
    assert actions == [StateChanged(INIT, FAULT, "startup: group")]
    _, actions = run(
        initial(config()),
        (0.0, ForceState(FAULT, "group")),
        (0.0, ForceState(MASTER, "group ok")),
        (0.0, Startup()),
    )
    assert changes(actions) == [(INIT, BACKUP)]


def test_force_initialize_is_rejected() -> None:
    """Sync groups move members between MASTER, BACKUP and FAULT only."""
    with pytest.raises(ValueError, match="INITIALIZE"):
        ForceState(INIT, "no")


# --- priority tracking --------------------------------------------------------------------


def test_priority_change_as_master_shows_in_next_advert() -> None:
    """RFC 9568 §6.4.3 / §5.2.4: the ADVERTISEMENT carries the current Priority; a change
    sends nothing by itself."""
    m, t = master(priority=100)
    m, actions = step(m, PriorityChanged(80), t + 0.1)
    assert actions == []
    m, actions = step(m, Tick(), t + 1.0)
    assert actions == [SendAdvert(80)]


def test_priority_change_as_backup_moves_the_down_timer() -> None:
    """RFC 9568 §6.1 / keepalived vrrp_set_effective_priority: Skew_Time follows the
    priority, and the running Master_Down_Timer moves by the change."""
    m = backup(priority=100)
    assert m.master_down_timer == 3.609375
    m, actions = step(m, PriorityChanged(200), 1.0)
    assert actions == []
    assert m.master_down_timer == 3.21875


def test_priority_change_as_backup_changes_comparisons() -> None:
    """RFC 9568 §6.4.2: the comparison is with the local (effective) Priority."""
    m = backup(priority=100)
    m, _ = step(m, advert(150), 1.0)
    assert m.master_down_timer == 1.0 + 3.609375
    m, _ = run(m, (1.5, PriorityChanged(200)), (2.0, advert(150)))
    assert m.master_down_timer == 1.0 + 3.21875  # moved by the skew change, not reset


def test_same_priority_is_a_no_op() -> None:
    """Tracking may report an unchanged priority; nothing happens."""
    m = backup(priority=100)
    assert step(m, PriorityChanged(100), 1.0) == (m, [])


def test_priority_change_in_fault_and_initialize() -> None:
    """The effective priority is kept in every state and used from the next start."""
    m, _ = step(initial(config(priority=100)), PriorityChanged(120), 0.0)
    m, _ = run(m, (0.0, Startup()), (1.0, FaultSet("x")), (2.0, PriorityChanged(130)))
    m, _ = step(m, FaultCleared("x"), 3.0)
    assert m.priority == 130
    assert m.master_down_timer == 3.0 + 3 + 126 / 256


# --- preempt_delay (keepalived) ---------------------------------------------------------


def test_preempt_delay_tolerates_a_lower_master_then_preempts() -> None:
    """keepalived.conf(5) preempt_delay, "Seconds after startup or seeing a lower priority
    master until preemption", as vrrp_state_backup implements it: the first lower-priority
    advert opens the window; adverts inside it are accepted (RFC 9568 §6.4.2),
    from its end on they are discarded ("Discard the ADVERTISEMENT") and the timer
    runs out."""
    m = backup(priority=200, preempt_delay=2.0)
    m, _ = step(m, advert(100), 0.5)
    assert m.preempt_deadline == 2.5
    assert m.master_down_timer == 0.5 + 3.21875
    m, _ = step(m, advert(100), 1.5)
    assert m.master_down_timer == 1.5 + 3.21875
    m, _ = step(m, advert(100), 2.5)  # at the deadline: discarded
    assert m.master_down_timer == 1.5 + 3.21875
    m, actions = run(m, (3.5, advert(100)), (4.5, advert(100)), (4.71875, Tick()))
    assert m.state is MASTER
    assert actions[0] == StateChanged(
        BACKUP, MASTER, f"preempting lower-priority master {HIGHER} (priority 100 < 200)"
    )


def test_preempt_delay_is_not_a_wake_up() -> None:
    """keepalived: nothing happens when the delay runs out; it only changes how the next
    lower-priority advert is treated."""
    m = backup(priority=200, preempt_delay=2.0)
    m, _ = step(m, advert(100), 0.5)
    assert m.next_deadline() == m.master_down_timer


def test_preempt_delay_does_not_delay_a_takeover_from_silence() -> None:
    """keepalived.conf(5): "Since it is a delay, it cannot speed up taking over"; with no
    lower-priority master the window never opens and the RFC timer applies."""
    m = backup(priority=200, preempt_delay=300.0)
    m, _ = step(m, Tick(), 3.21875)
    assert m.state is MASTER


def test_preempt_delay_window_closes_on_equal_or_higher_priority() -> None:
    """keepalived vrrp_state_backup: an advert of priority >= ours stops the delay; the
    next lower-priority master starts a new one."""
    m = backup(priority=200, preempt_delay=2.0)
    m, _ = run(m, (0.5, advert(100)), (1.0, advert(250)))
    assert m.preempt_deadline is None
    m, _ = step(m, advert(100), 5.0)
    assert m.preempt_deadline == 7.0


def test_preempt_delay_window_closes_on_entering_backup() -> None:
    """keepalived: every entry into BACKUP starts without a preempt delay running."""
    m = backup(priority=200, preempt_delay=2.0)
    m, _ = run(m, (0.5, advert(100)), (1.0, FaultSet("x")), (1.5, FaultCleared("x")))
    assert m.preempt_deadline is None
    m, _ = step(m, advert(100), 10.0)
    assert m.preempt_deadline == 12.0


def test_preempt_delay_ignored_by_owner() -> None:
    """RFC 9568 §6.1: the owner always preempts; keepalived also clears preempt_delay for
    an instance starting MASTER, which an owner does."""
    m, _ = step(initial(config(priority=255, preempt_delay=5.0)), Startup(), 0.0)
    m, _ = step(m, ForceState(BACKUP, "group"), 1.0)
    deadline = m.master_down_timer
    m, _ = step(m, advert(254), 2.0)
    assert m.master_down_timer == deadline
    assert m.preempt_deadline is None


def test_preempt_delay_with_nopreempt() -> None:
    """keepalived: nopreempt wins over preempt_delay (it refuses the combination); the
    window is never opened."""
    m = backup(priority=200, preempt=False, preempt_delay=2.0)
    m, _ = run(m, (0.5, advert(100)), (10.0, advert(100)))
    assert m.preempt_deadline is None
    assert m.master_down_timer == 10.0 + 3.21875


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"version": 4}, "version"),
        ({"vrid": 0}, "VRID"),
        ({"vrid": 256}, "VRID"),
        ({"priority": 0}, "priority"),
        ({"priority": 256}, "priority"),
        ({"interval_cs": 0}, "interval"),
        ({"preempt_delay": -1.0}, "preempt_delay"),
    ],
)
def test_config_validation(overrides: dict[str, Any], message: str) -> None:
    """RFC 9568 §5.2.3 (VRID 1-255), §5.2.4 (priority 1-255 configured), §5.2.7."""
    with pytest.raises(ValueError, match=message):
        config(**overrides)


@pytest.mark.parametrize(
    "make",
    [
        lambda: AdvertReceived(-1, HIGHER, 100),
        lambda: AdvertReceived(256, HIGHER, 100),
        lambda: PriorityChanged(0),
        lambda: PriorityChanged(256),
    ],
)
def test_event_validation(make: Any) -> None:
    """RFC 9568 §5.2.4 (priority 0-255 on the wire, 1-255 locally), §7.1 (interval non-zero)."""
    with pytest.raises(ValueError):
        make()


# --- scenarios: routers exchanging adverts over a simulated network -----------------------


@dataclass
class Node:
    machine: Machine
    alive: bool = True


@dataclass
class Net:
    """A LAN of FSMs over simulated time.  Adverts arrive instantly; at equal times
    deliveries come before timers.  A dead node neither sends nor receives."""

    configs: list[Config]
    now: float = 0.0
    connected: bool = True
    nodes: dict[str, Node] = field(default_factory=dict)
    queue: list[tuple[float, int, str, AdvertReceived]] = field(default_factory=list)
    log: list[tuple[float, str, Action]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.nodes = {c.name: Node(initial(c), alive=False) for c in self.configs}

    def apply(self, name: str, event: Event) -> None:
        node = self.nodes[name]
        node.machine, actions = step(node.machine, event, self.now)
        me = node.machine.config
        for action in actions:
            self.log.append((self.now, name, action))
            if isinstance(action, SendAdvert) and self.connected:
                sent = AdvertReceived(action.priority, me.primary_address, me.interval_cs)
                for other in self.nodes:
                    if other != name:
                        heapq.heappush(self.queue, (self.now, next(self._seq), other, sent))

    def start(self, name: str) -> None:
        config = self.nodes[name].machine.config
        self.nodes[name] = Node(initial(config))
        self.apply(name, Startup())

    def run(self, until: float) -> None:
        for _ in range(100_000):
            timers = [
                (deadline, name)
                for name, node in self.nodes.items()
                if node.alive and (deadline := node.machine.next_deadline()) is not None
            ]
            t_timer, who = min(timers) if timers else (math.inf, "")
            t_msg = self.queue[0][0] if self.queue else math.inf
            if min(t_timer, t_msg) > until:
                self.now = until
                return
            if t_msg <= t_timer:
                self.now, _, dst, advert_ = heapq.heappop(self.queue)
                if self.nodes[dst].alive:
                    self.apply(dst, advert_)
            else:
                self.now = t_timer
                self.apply(who, Tick())
        raise AssertionError("the simulation does not settle")

    def state(self, name: str) -> State:
        return self.nodes[name].machine.state

    def transitions(self, name: str) -> list[tuple[float, State, State]]:
        return [
            (t, a.old, a.new) for t, n, a in self.log if n == name and isinstance(a, StateChanged)
        ]

    def adverts(self, name: str) -> list[tuple[float, int]]:
        return [(t, a.priority) for t, n, a in self.log if n == name and isinstance(a, SendAdvert)]


def two_routers(version: int, interval_a: int = 100, interval_b: int = 100) -> Net:
    """A: priority 200 at 10.0.0.1; B: priority 100 at 10.0.0.2."""
    a = config(
        name="A",
        version=version,
        priority=200,
        interval_cs=interval_a,
        primary_address=IPv4Address("10.0.0.1"),
    )
    b = config(
        name="B",
        version=version,
        priority=100,
        interval_cs=interval_b,
        primary_address=IPv4Address("10.0.0.2"),
    )
    return Net([a, b])


@pytest.mark.parametrize("version", [2, 3])
def test_scenario_election_failover_preemption_graceful_stop_split_brain(version: int) -> None:
    """RFC 9568 §6.4 end to end, A (priority 200) and B (priority 100), 1 s adverts:

    * election: both start BACKUP (§6.4.1); A's Master_Down_Timer (3 + 56/256 s) fires
      first, and its advert holds B in Backup (§6.4.2);
    * failover: A dies silently; B takes over exactly Master_Down_Interval
      (3 + 156/256 s) after A's last advert (§6.1, §6.4.2);
    * preemption: A comes back, discards B's lower adverts (§6.4.2 "Discard"), takes over
      when its timer fires, and B steps down on A's first advert (§6.4.3);
    * graceful stop: A sends priority 0 (§6.4.3 Shutdown); B takes over after Skew_Time
      (156/256 s, §6.4.2);
    * split brain: with the link cut both become master; when it heals, A hears B's
      lower advert and re-advertises and re-announces (§6.4.3 "Send an ADVERTISEMENT
      immediately"), B steps down.
    """
    net = two_routers(version)
    net.start("A")
    net.start("B")
    net.run(10.0)
    assert net.transitions("A") == [(0.0, INIT, BACKUP), (3.21875, BACKUP, MASTER)]
    assert net.transitions("B") == [(0.0, INIT, BACKUP)]
    # an interval apart, shortened by up to an eighth until on the grid of whole seconds
    assert net.adverts("A")[:4] == [(3.21875, 200), (4.09375, 200), (5.0, 200), (6.0, 200)]

    # Failover at exactly the RFC bound after the last advert.
    net.nodes["A"].alive = False
    last_advert = net.adverts("A")[-1][0]
    assert last_advert == 10.0
    net.run(20.0)
    assert net.transitions("B")[-1] == (last_advert + 3.609375, BACKUP, MASTER)

    # A comes back and preempts B.
    net.now = 20.0
    net.start("A")
    net.run(30.0)
    assert net.transitions("A")[-2:] == [(20.0, INIT, BACKUP), (23.21875, BACKUP, MASTER)]
    assert net.transitions("B")[-1] == (23.21875, MASTER, BACKUP)

    # Graceful stop: one priority-0 advert, takeover after Skew_Time.
    net.now = 30.0
    net.apply("A", Shutdown())
    net.nodes["A"].alive = False
    assert net.adverts("A")[-1] == (30.0, 0)
    net.run(40.0)
    assert net.transitions("B")[-1] == (30.609375, BACKUP, MASTER)

    # Split brain: A restarts behind a cut link, both are masters, then the link heals.
    net.connected = False
    net.now = 40.0
    net.start("A")
    net.run(45.5)
    assert net.state("A") is net.state("B") is MASTER
    net.connected = True
    net.run(50.0)
    # Both masters advertise on the same 1 s grid, so at the first grid point after the
    # link heals at 45.5 each hears the other: B steps down on A's advert (A's answer to
    # B's lower one, "Send an ADVERTISEMENT immediately" and announce, is
    # test_master_lower_priority_readvertises_and_announces' rule).
    heal = 46.0
    assert net.transitions("B")[-1] == (heal, MASTER, BACKUP)
    assert net.state("A") is MASTER


def test_scenario_v3_backup_times_out_on_the_masters_interval() -> None:
    """RFC 9568 §6.4.2, §6.1: a v3 backup configured for 0.5 s adverts follows
    a master advertising every 1 s, so it does not take over between the master's adverts,
    and fails over 3 * 1 + (156 * 1) / 256 s after the master's last advert."""
    net = two_routers(3, interval_a=100, interval_b=50)
    net.start("A")
    net.run(5.0)
    net.start("B")
    net.run(10.0)
    assert net.state("A") is MASTER
    assert net.transitions("B") == [(5.0, INIT, BACKUP)]
    assert net.nodes["B"].machine.master_adver_interval_cs == 100
    net.nodes["A"].alive = False
    last_advert = net.adverts("A")[-1][0]
    net.run(20.0)
    t, old, new = net.transitions("B")[-1]
    assert (old, new) == (BACKUP, MASTER)
    assert t == pytest.approx(last_advert + 3.609375)
    # As master, B advertises on its own interval again.
    sends = [t for t, _ in net.adverts("B")]
    assert all(0.5 * 7 / 8 - 1e-9 <= b - a <= 0.5 + 1e-9 for a, b in itertools.pairwise(sends))


def test_scenario_nopreempt_keeps_the_lower_master() -> None:
    """RFC 9568 §6.4.2: with Preempt_Mode False the returning higher-priority router
    stays Backup behind the lower-priority master."""
    a = config(name="A", priority=200, preempt=False, primary_address=IPv4Address("10.0.0.1"))
    b = config(name="B", priority=100, primary_address=IPv4Address("10.0.0.2"))
    net = Net([a, b])
    net.start("B")
    net.run(10.0)
    assert net.state("B") is MASTER
    net.start("A")
    net.run(60.0)
    assert net.state("A") is BACKUP
    assert net.state("B") is MASTER
