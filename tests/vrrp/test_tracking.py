"""Rule-by-rule tests of priority tracking (keepalived.conf(5) of keepalived 2.2.7).

Each test quotes the man-page rule it checks; where the man page is terse the behaviour
was read from keepalived's vrrp_track.c / track_file.c, and the test says so.
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from halo_core.vrrp.fsm import Config, FaultSet, PriorityChanged, Startup, State, initial, step
from halo_core.vrrp.tracking import Effective, Tracked, TrackedFile, clamp, effective

# --- up/down inputs: checks, interfaces, processes, BFD -----------------------------------


@pytest.mark.parametrize(
    ("weight", "reverse", "up", "expected"),
    [
        # "The default weight equals 0, which means that any VRRP instance monitoring the
        # script will transition to the fault state"
        (0, False, True, 0),
        (0, False, False, None),
        # "'weight 0 reverse' will cause the vrrp instance to be down when the script is up,
        # and vice versa"
        (0, True, True, None),
        (0, True, False, 0),
        # "A positive weight means that <rise> successes will add <weight> to the priority"
        (20, False, True, 20),
        (20, False, False, 0),
        # "a negative weight will be subtracted from the initial priority in case of <fall>
        # failures"
        (-20, False, True, 0),
        (-20, False, False, -20),
        # track_bfd: "if reverse is specified, the priority is decreased when up and
        # increased when down" - reverse flips the sign, not the condition
        # (vrrp_track.c: weight * (reverse ? -1 : 1))
        (20, True, True, -20),
        (20, True, False, 0),
        (-20, True, True, 0),
        (-20, True, False, 20),
    ],
)
def test_up_down_adjustment(weight: int, reverse: bool, up: bool, expected: int | None) -> None:
    """keepalived.conf(5) vrrp_script / track_interface / track_bfd weights (None: FAULT)."""
    assert Tracked("check web", weight, reverse).adjustment(up) == expected


def test_weight_0_failure_is_a_fault_reason() -> None:
    """keepalived.conf(5) track_interface: "go to FAULT state if any of these go down if
    unweighted"; the reason names the input."""
    result = effective(100, [(Tracked("interface eth1"), False), (Tracked("check web"), True)])
    assert result == Effective(100, frozenset({"interface eth1 failed"}))


def test_tracked_weight_range() -> None:
    """keepalived.conf(5): weights are within -254..254 (-253..253 for interfaces, scripts
    and BFD, which the config loader enforces)."""
    Tracked("p", 254)
    Tracked("p", -254)
    with pytest.raises(ValueError, match="weight"):
        Tracked("p", 255)
    with pytest.raises(ValueError, match="weight"):
        Tracked("p", -255)


# --- files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "reverse", "value", "expected"),
    [
        # "If the weight configured against the track_file is 0, a non-zero value in the
        # file will be treated as a failure status, and a zero value will be treated as an
        # OK status"
        (0, False, 0, 0),
        (0, False, 1, None),
        (0, False, -7, None),
        # reverse swaps that (track_file.c: !value != (multiplier == 1))
        (0, True, 0, None),
        (0, True, 5, 0),
        # "otherwise the value will be multiplied by the weight configured"
        (1, False, 15, 15),
        (2, False, 5, 10),
        (10, False, -3, -30),
        (-2, False, 5, -10),
        # reverse: value * weight * -1 (track_file.c weight_multiplier)
        (2, True, 5, -10),
        # "if the result is less than -253 anything monitoring the script will transition
        # to the fault state"
        (1, False, -253, -253),
        (1, False, -254, None),
        (100, False, -3, None),
        # results above 253 count as 253 (track_file.c clamps to [-254, 253])
        (1, False, 300, 253),
        (254, False, 1, 253),
    ],
)
def test_file_adjustment(weight: int, reverse: bool, value: int, expected: int | None) -> None:
    """keepalived.conf(5) track_file (None: FAULT)."""
    assert TrackedFile("file /run/prio", weight, reverse).adjustment(value) == expected


def test_file_default_weight_is_1() -> None:
    """keepalived.conf(5) track_file: "file to track (weight defaults to 1)"."""
    assert TrackedFile("f").weight == 1
    assert effective(100, files=[(TrackedFile("f"), 12)]).priority == 112


def test_file_fault_reason_is_stable_across_values() -> None:
    """The runtime diffs fault sets: a file that stays failed keeps the same reason whatever
    number it holds, so no spurious FaultCleared/FaultSet pair reaches the FSM."""
    f = TrackedFile("file /run/down", 0)
    assert effective(100, files=[(f, 5)]).faults == effective(100, files=[(f, 7)]).faults


# --- the sum ------------------------------------------------------------------------------


def test_effective_priority_is_base_plus_adjustments() -> None:
    """keepalived.conf(5): "the result will be added to the initial priority of the VRRP
    instance (a negative value will reduce the priority)"."""
    result = effective(
        100,
        [(Tracked("check a", 20), True), (Tracked("check b", -30), False)],
        [(TrackedFile("file c", 2), 4)],
    )
    assert result == Effective(98, frozenset())


@pytest.mark.parametrize(("base", "delta", "expected"), [(100, 200, 254), (100, -200, 1)])
def test_effective_priority_is_clamped(base: int, delta: int, expected: int) -> None:
    """keepalived.conf(5): "the effective priority will be limited to the range [1,254]";
    RFC 9568 §5.2.4: only the owner uses 255, backups 1-254."""
    # a positive weight counts while up, a negative one while down
    up = delta > 0
    assert effective(base, [(Tracked("x", delta), up)]) == (expected, frozenset())


def test_clamp() -> None:
    """RFC 9568 §5.2.4: backups use priorities 1-254."""
    assert [clamp(p) for p in (-500, 0, 1, 100, 254, 255, 1000)] == [1, 1, 1, 100, 254, 254, 254]


def test_faulting_inputs_add_nothing() -> None:
    """keepalived track_file.c: a weighted file going to FAULT takes its contribution back
    out (``total_priority -= previous_status``); all fault reasons are reported."""
    result = effective(
        100,
        [(Tracked("check a", 20), True), (Tracked("interface b"), False)],
        [(TrackedFile("file c", 1), -300)],
    )
    assert result == Effective(120, frozenset({"interface b failed", "file c failed"}))


def test_no_inputs() -> None:
    """Nothing tracked: the effective priority is the base priority."""
    assert effective(42) == Effective(42, frozenset())


def test_base_priority_range() -> None:
    """RFC 9568 §5.2.4: a configured priority is 1..255."""
    for bad in (0, 256):
        with pytest.raises(ValueError, match="base priority"):
            effective(bad)


# --- the address owner --------------------------------------------------------------------


def test_owner_ignores_weights() -> None:
    """keepalived vrrp_set_effective_priority: "Don't change priority if address owner";
    keepalived.conf(5): "if the vrrp instance is the address owner, weight 0 must also be
    set" - weighted inputs change nothing, not even a file's FAULT by value."""
    result = effective(
        255,
        [(Tracked("check a", -50), False), (Tracked("check b", 20), True)],
        [(TrackedFile("file c", 1), -300)],
    )
    assert result == Effective(255, frozenset())


def test_owner_still_faults_on_weight_0() -> None:
    """keepalived vrrp_track.c: the weight-0 FAULT rule is applied before the owner check,
    so an owner goes to FAULT when an unweighted input fails."""
    result = effective(255, [(Tracked("interface eth1"), False)], [(TrackedFile("f", 0), 1)])
    assert result == Effective(255, frozenset({"interface eth1 failed", "f failed"}))


# --- into the state machine ---------------------------------------------------------------


def _config(priority: int) -> Config:
    return Config(
        name="VI_1",
        version=2,
        vrid=1,
        priority=priority,
        interval_cs=100,
        primary_address=IPv4Address("192.0.2.1"),
    )


def test_tracking_never_makes_an_owner() -> None:
    """RFC 9568 §6.4.1 and §5.2.4: weights cannot lift a non-owner to 255, so it still
    starts BACKUP (and advertises 254 at most)."""
    priority, _ = effective(250, [(Tracked("check a", 50), True)])
    m = initial(_config(250))
    m, _ = step(m, PriorityChanged(priority), 0.0)
    m, _ = step(m, Startup(), 0.0)
    assert (m.priority, m.state) == (254, State.BACKUP)


def test_weight_0_failure_puts_the_machine_in_fault() -> None:
    """keepalived: a weight-0 failure means FAULT; the runtime turns the reasons into
    FaultSet events."""
    _, faults = effective(100, [(Tracked("interface eth1"), False)])
    m, _ = step(initial(_config(100)), Startup(), 0.0)
    for reason in sorted(faults):
        m, _ = step(m, FaultSet(reason), 1.0)
    assert m.state is State.FAULT
    assert m.fault_reasons == faults
