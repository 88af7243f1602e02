"""Effective priority and FAULT from tracked inputs: keepalived's rules, pure.

A VRRP instance can track inputs - checks (keepalived's ``track_script``), interfaces
(``track_interface``), processes, BFD sessions, and files holding a number
(``track_file``).  Each has a *weight*; this module turns the inputs' current readings
into the instance's effective priority and its set of fault reasons, which the runtime
feeds to the state machine as :class:`~halo_core.vrrp.fsm.PriorityChanged` and
:class:`~halo_core.vrrp.fsm.FaultSet` / :class:`~halo_core.vrrp.fsm.FaultCleared`.  No I/O,
no state: call :func:`effective` again whenever a reading changes.

The rules, from keepalived.conf(5) of keepalived 2.2.7 and checked against its
``vrrp_track.c`` / ``track_file.c``:

**Up/down inputs** (:class:`Tracked`: checks, interfaces, processes, BFD)

* weight 0 (keepalived's default for scripts and interfaces): the input going down puts
  the instance in FAULT.  With ``reverse`` the sense is swapped: the instance is in FAULT
  while the input is *up* ("'weight 0 reverse' will cause the vrrp instance to be down when
  the script is up, and vice versa").
* positive weight: added to the priority while the input is up; nothing while it is down.
* negative weight: added (so subtracted) while the input is down; nothing while it is up.
* ``reverse`` with a non-zero weight flips the *sign* of the adjustment, not the up/down
  condition ("reverse causes the direction of the adjustment of the priority to be
  reversed"; for BFD: "the priority is decreased when up and increased when down"):
  ``weight 10 reverse`` subtracts 10 while up, ``weight -10 reverse`` adds 10 while down.
  (keepalived: ``weight * (reverse ? -1 : 1)``, applied while up for a positive weight and
  while down for a negative one.)

**Files** (:class:`TrackedFile`, keepalived's ``track_file``; default weight 1)

* weight 0: a non-zero number is a failure and means FAULT, zero is OK; ``reverse``
  swaps that (zero means FAULT).
* otherwise the adjustment is ``value × weight`` (× -1 with ``reverse``).  A result of
  -254 or less means FAULT ("if the result is less than -253 anything monitoring the script
  will transition to the fault state"); a result above 253 counts as 253.

**The sum**: effective priority = base priority + all adjustments, limited to 1..254
("the effective priority will be limited to the range [1,254]").  An input that puts the
instance in FAULT adds nothing.

**The address owner** (base priority 255) keeps priority 255: keepalived never changes
an owner's effective priority (``vrrp_set_effective_priority`` returns early for it) and
requires weight 0 for everything an owner tracks.  So here an owner's weighted inputs are
ignored entirely (neither priority nor FAULT), while its weight-0 inputs still put it in
FAULT.

Fault reasons are ``"<name> failed"`` - one stable string per input, so that the runtime
can diff two results and send FaultSet/FaultCleared pairs that match.  The runtime should
name inputs readably (``"check chk_nginx"``, ``"interface eth1"``, ``"file /run/prio"``).

What keepalived does that is left to the runtime and the config loader: rise/fall
counting and a check's initial state (an input is up or down by the time it reaches this
module); zeroing members' weights in sync groups (keepalived does that unless
``sync_group_tracking_weight``); the per-kind weight ranges (±253 for interfaces, scripts
and BFD, ±254 for processes and files).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, NamedTuple

__all__ = [
    "FAULT_BELOW",
    "MAX_ADJUSTMENT",
    "Effective",
    "Tracked",
    "TrackedFile",
    "clamp",
    "effective",
]

OWNER_PRIORITY: Final = 255
FAULT_BELOW: Final = -253
"""A file's adjustment below this (i.e. -254 or less) means FAULT."""
MAX_ADJUSTMENT: Final = 253
"""A file's adjustment above this counts as this."""


@dataclass(frozen=True, slots=True)
class Tracked:
    """An up/down input: a check, an interface, a process, a BFD session."""

    name: str
    weight: int = 0
    reverse: bool = False

    def __post_init__(self) -> None:
        if not -254 <= self.weight <= 254:
            raise ValueError(f"{self.name}: weight must be -254..254, not {self.weight}")

    @property
    def fault_reason(self) -> str:
        return f"{self.name} failed"

    def adjustment(self, up: bool) -> int | None:
        """The priority change for this reading, or None for FAULT."""
        if self.weight == 0:
            # FAULT while down; with reverse, FAULT while up.
            return None if up == self.reverse else 0
        sign = -1 if self.reverse else 1
        if self.weight > 0:
            return self.weight * sign if up else 0
        return 0 if up else self.weight * sign


@dataclass(frozen=True, slots=True)
class TrackedFile:
    """A file holding an integer (keepalived's ``track_file``)."""

    name: str
    weight: int = 1
    reverse: bool = False

    @property
    def fault_reason(self) -> str:
        return f"{self.name} failed"

    def adjustment(self, value: int) -> int | None:
        """The priority change for the number read from the file, or None for FAULT."""
        if self.weight == 0:
            # Non-zero is a failure; with reverse, zero is.
            return None if (value != 0) != self.reverse else 0
        result = value * self.weight * (-1 if self.reverse else 1)
        if result < FAULT_BELOW:
            return None
        return min(result, MAX_ADJUSTMENT)


class Effective(NamedTuple):
    """The outcome of tracking: what the state machine should be told."""

    priority: int
    """Effective priority: 1..254, or 255 for the address owner."""
    faults: frozenset[str]
    """Fault reasons; non-empty means the instance belongs in FAULT."""


def clamp(priority: int) -> int:
    """Limit a non-owner's priority to 1..254 (RFC 9568 §5.2.4: backups use 1-254)."""
    return max(1, min(OWNER_PRIORITY - 1, priority))


def effective(
    base: int,
    states: Iterable[tuple[Tracked, bool]] = (),
    files: Iterable[tuple[TrackedFile, int]] = (),
) -> Effective:
    """Effective priority and fault reasons of an instance with base priority ``base``.

    ``states`` pairs each up/down input with whether it is up; ``files`` pairs each file
    with the number read from it.  For example::

        effective(100, [(Tracked("check web", 20), True), (Tracked("interface eth1"), False)])
        # -> Effective(priority=120, faults=frozenset({'interface eth1 failed'}))
    """
    if not 1 <= base <= OWNER_PRIORITY:
        raise ValueError(f"base priority must be 1..255, not {base}")
    owner = base == OWNER_PRIORITY
    total = base
    faults: set[str] = set()
    readings: list[tuple[int, str, int | None]] = [
        (t.weight, t.fault_reason, t.adjustment(up)) for t, up in states
    ]
    readings += [(f.weight, f.fault_reason, f.adjustment(value)) for f, value in files]
    for weight, reason, adjustment in readings:
        if owner and weight != 0:
            continue  # an owner's priority is never adjusted
        if adjustment is None:
            faults.add(reason)
        else:
            total += adjustment
    return Effective(OWNER_PRIORITY if owner else clamp(total), frozenset(faults))
