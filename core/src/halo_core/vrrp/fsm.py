"""The VRRP state machine: pure, table-driven, no I/O.

One function does all the work::

    step(machine, event, now) -> (machine', [action, ...])

``machine`` is an immutable :class:`Machine` (the whole protocol state of one virtual
router), ``event`` one of the event classes below, ``now`` a float in seconds from a
monotonic clock that the *caller* reads.  The FSM never reads a clock, never sleeps, never
logs and never touches a socket: it returns :class:`SendAdvert`, :class:`StateChanged` and
:class:`Announce` actions and the runtime performs them, in list order (entering MASTER
is itself the request to announce the addresses; :class:`Announce` asks for it again).  Timers are
absolute deadlines stored in the machine; :meth:`Machine.next_deadline` tells the runtime
when to wake up and deliver :class:`Tick`.  That makes every rule testable with a fake
clock (plain numbers), and a whole election can be simulated in microseconds.

Layout (modelled on FRRouting's ``vrrpd/vrrp.c``):

* :data:`_ENTRY` - what happens on *entering* each state, in one table (arm or cancel the
  timers; a master's first advert and gratuitous ARP/NA; the priority-0 advert of a master
  that stops or fails).  Every transition goes through :func:`_goto`, so the list of
  actions always starts with the :class:`StateChanged` (carrying a human reason, logged by
  the runtime like keepalived: ``VI_1: entering MASTER state (reason)``) followed by the
  entry actions.
* :data:`_HANDLERS` - ``(state, event type) -> handler``.  A pair missing from the table is
  ignored (an advert in FAULT, a Startup while running, ...).
* :func:`_backup_advert` and :func:`_master_advert` follow RFC 9568 §6.4.2 and §6.4.3 line
  by line, each step quoted in a comment (RFC 9568 dropped RFC 5798's line numbers, so the
  quotes are the reference).  RFC 9568 renamed "Master" to "Active" (Active_Down_Timer,
  Active_Adver_Interval); halo keeps keepalived's MASTER in its state names and messages.

Time units: intervals in :class:`Config` are integer centiseconds so that VRRPv2 (whole
seconds on the wire) and VRRPv3 (centiseconds on the wire) share one unit; deadlines and
the derived intervals are float seconds.

Timers (RFC 9568 §6.1 for v3, RFC 3768 §6.1 for v2; ``p`` is our *effective* priority, as
keepalived uses)::

    v3: Skew_Time            = ((256 - p) * Master_Adver_Interval) / 256   centiseconds
        Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time      centiseconds
    v2: Skew_Time            = (256 - p) / 256                            seconds
        Master_Down_Interval = 3 * Advertisement_Interval + Skew_Time     seconds

No integer truncation (keepalived computes in microseconds): v2, 1 s, p=90 gives
3.6484375 s; v3, 10 cs, p=90 gives 0.36484375 s.  A v3 backup learns
Master_Adver_Interval from every advert it accepts (and a master stepping down from the
advert that beat it); v2 has no such rule and always uses its configured interval.

Rules beyond the RFC text (keepalived 2.2.7's behaviour unless said otherwise):

* **FAULT** (keepalived's extension).  :class:`FaultSet`/:class:`FaultCleared` maintain a
  *set* of reasons (interface down, a weight-0 tracked input failing, ...); the machine is
  in FAULT while the set is non-empty.  Entering FAULT cancels both timers; a MASTER
  entering FAULT sends one priority-0 advert so a backup takes over after Skew_Time.
  Leaving FAULT goes to BACKUP, or straight to MASTER for the priority-255 address owner.
  Faults reported while INITIALIZE are remembered, and Startup then goes to FAULT.
* **The Adver_Timer keeps to a grid**: the multiples of Advertisement_Interval on the
  caller's clock (:func:`_next_advert`). A master's first advert goes out at once, as the
  RFC says. Each next one is due an interval after the last deadline (not after a late
  wake-up, so the phase does not drift), shortened by at most an eighth of the interval
  until it lands on the grid: adverts are never further apart than the interval, never
  closer than 7/8 of it, and on the grid within eight adverts of a takeover. All instances
  of one interval on a host thus advertise in the same moment: a master of many instances
  wakes once per interval, and its backup reads them in one clump (bench/cpu/README.md).
  (Landing on the next grid point at once made the second advert after a takeover come
  up to a whole interval early; a split-brain peer then announced twice.)
* **Start-up.**  Only the priority-255 address owner starts MASTER (RFC 9568 §6.4.1).  A
  configured ``state MASTER`` below 255 still starts BACKUP and waits a full
  Master_Down_Interval, as keepalived does (measured: ~3.6 s at 1 s / priority 100), so
  the configured ``state`` is not an input of the FSM.
* **Preempt_Mode** is ``config.preempt``, except that the address owner always preempts
  (RFC 9568 §6.1).  ``nopreempt`` works whatever the start state (keepalived ignores it
  with ``state MASTER``; halo has no reason to).
* **preempt_delay** (keepalived.conf(5): "Seconds after startup or seeing a lower
  priority master until preemption"), exactly as keepalived's ``vrrp_state_backup``
  implements it.  In BACKUP with Preempt_Mode True and ``preempt_delay > 0``, a non-zero
  advert of *lower* priority than ours is:

  - the first such advert since entering BACKUP (startup, leaving FAULT or MASTER): it
    opens the delay window, ``preempt_deadline = now + preempt_delay``, and is
    *accepted* like a higher-priority one (it resets the Master_Down_Timer; v3 learns
    its interval);
  - while ``now < preempt_deadline``: accepted the same way;
  - from ``preempt_deadline`` on: discarded (§6.4.2 "Discard the ADVERTISEMENT"), so the
    Master_Down_Timer runs out Master_Down_Interval after the last accepted advert and
    we take over.

  An advert of equal or higher priority closes the window (``preempt_deadline = None``:
  the lower-priority master is gone, the next one restarts the delay), and so does every
  entry into BACKUP.  With no lower-priority master around the delay never applies, so
  it cannot speed up or slow down a takeover from silence.  The address owner ignores
  the delay, as it always preempts.
* **A MASTER hearing a lower priority** (or an equal priority from a lower address)
  discards the advert and sends one of its own at once (RFC 9568 §6.4.3, keepalived).
  Such an advert can only come from another master, i.e. a healed split brain, so it
  also emits :class:`Announce` to re-send gratuitous ARP/NA and converge the clients'
  caches.  The Adver_Timer is not reset (neither the RFC nor keepalived do).  With
  ``lower_prio_no_advert`` (keepalived's strict mode) the advert is only discarded, as
  RFC 3768 and RFC 5798 say; :class:`Announce` is still emitted.
* **Priority changes** from tracking (:class:`PriorityChanged`) take effect at once: a
  MASTER's next advert carries the new value; in BACKUP they change future comparisons
  and Skew_Time, and a running Master_Down_Timer is moved by the change of
  Master_Down_Interval (keepalived's ``vrrp_set_effective_priority`` does the same).
* **Sync groups** are driven by the runtime; :class:`ForceState` moves one member to
  MASTER, BACKUP or FAULT to follow its group.  A forced FAULT is held (separately from
  the member's own fault reasons) until a ForceState to BACKUP or MASTER releases it; a
  member with faults of its own stays in FAULT whatever it is told.  Forced out of
  MASTER into BACKUP it sends nothing (keepalived: the peers' groups move as well).
  :class:`GroupHold` keeps a BACKUP member whose Master_Down_Timer expired in BACKUP and
  starts that timer again, when the runtime finds that its group does not go MASTER yet.
* **Equal priority, same address** as ours (our own advert looped back, or a copy of our
  configuration elsewhere; keepalived only logs a warning) is discarded without reply:
  neither side "wins", and answering would make two such routers advertise at each other
  forever.

Not the FSM's job: validating adverts (version, VRID, TTL, checksum, authentication, the
VRRPv2 rule that the advert interval must equal ours - RFC 3768 §7.1) is the codec's and
the runtime's; an :class:`AdvertReceived` is a valid advert for this virtual router.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Final, TypeAlias

from halo_core.vrrp.packet import interval_problem

__all__ = [
    "OWNER_PRIORITY",
    "STOP_PRIORITY",
    "Action",
    "AdvertReceived",
    "Announce",
    "Config",
    "Event",
    "FaultCleared",
    "FaultSet",
    "ForceState",
    "GroupHold",
    "IPAddress",
    "Machine",
    "PriorityChanged",
    "SendAdvert",
    "Shutdown",
    "Startup",
    "State",
    "StateChanged",
    "Tick",
    "initial",
    "step",
]

IPAddress: TypeAlias = IPv4Address | IPv6Address

OWNER_PRIORITY: Final = 255
"""The priority of the router that owns the virtual addresses (RFC 9568 §5.2.4)."""
STOP_PRIORITY: Final = 0
"""The priority of the advert a master sends when it stops being master (RFC 9568 §5.2.4)."""


class State(enum.Enum):
    INITIALIZE = "INITIALIZE"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The static parameters of one virtual router."""

    name: str
    """Instance name, e.g. ``VI_1``; only used by the runtime in messages."""
    version: int
    """VRRP version, 2 (RFC 3768) or 3 (RFC 9568)."""
    vrid: int
    priority: int
    """Base priority 1..255; 255 is the address owner."""
    interval_cs: int
    """Advertisement_Interval in centiseconds (v2: a whole number of seconds × 100)."""
    preempt: bool = True
    preempt_delay: float = 0.0
    """Seconds; see the module docstring for the exact rule."""
    primary_address: IPAddress
    """Our advert source address, compared for the equal-priority tie-break."""
    lower_prio_no_advert: bool = False
    """A MASTER hearing a lower priority does not send an advert at once (RFC 5798)."""

    def __post_init__(self) -> None:
        if self.version not in (2, 3):
            raise ValueError(f"{self.name}: VRRP version must be 2 or 3, not {self.version}")
        if not 1 <= self.vrid <= 255:
            raise ValueError(f"{self.name}: VRID must be 1..255, not {self.vrid}")
        if not 1 <= self.priority <= OWNER_PRIORITY:
            raise ValueError(f"{self.name}: priority must be 1..255, not {self.priority}")
        interval = interval_problem(self.version, self.interval_cs / 100)
        if interval:
            raise ValueError(f"{self.name}: advert interval {interval}")
        if self.preempt_delay < 0:
            raise ValueError(f"{self.name}: preempt_delay must not be negative")


# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Startup:
    """RFC 9568 §6.4.1: the Startup event."""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """RFC 9568 §6.4.2/§6.4.3: the Shutdown event (SIGTERM, instance removed)."""


@dataclass(frozen=True, slots=True)
class Tick:
    """The runtime woke at or after :meth:`Machine.next_deadline`: fire expired timers."""


@dataclass(frozen=True, slots=True)
class AdvertReceived:
    """A valid ADVERTISEMENT for this virtual router (already checked by the codec)."""

    priority: int
    source: IPAddress
    """The sender's primary address (the IP source of the advert)."""
    interval_cs: int
    """Its advertisement interval in centiseconds (v2: seconds × 100)."""

    def __post_init__(self) -> None:
        if not STOP_PRIORITY <= self.priority <= OWNER_PRIORITY:
            raise ValueError(f"advert priority must be 0..255, not {self.priority}")


@dataclass(frozen=True, slots=True)
class PriorityChanged:
    """A new effective priority, from :func:`halo_core.vrrp.tracking.effective`."""

    priority: int

    def __post_init__(self) -> None:
        if not 1 <= self.priority <= OWNER_PRIORITY:
            raise ValueError(f"effective priority must be 1..255, not {self.priority}")


@dataclass(frozen=True, slots=True)
class FaultSet:
    """A fault reason appeared (interface down, a weight-0 tracked input failed, ...)."""

    reason: str


@dataclass(frozen=True, slots=True)
class FaultCleared:
    """A fault reason went away; FAULT is left when no reason is left."""

    reason: str


@dataclass(frozen=True, slots=True)
class ForceState:
    """Sync groups: move this member to MASTER, BACKUP or FAULT with its group."""

    state: State
    reason: str

    def __post_init__(self) -> None:
        if self.state is State.INITIALIZE:
            raise ValueError("a sync group can force MASTER, BACKUP or FAULT, not INITIALIZE")


@dataclass(frozen=True, slots=True)
class GroupHold:
    """Sync groups: a BACKUP member's Master_Down_Timer has expired but its group does not
    go MASTER yet (keepalived's ``vrrp_sync_can_goto_master``: another member does not want
    MASTER). It stays BACKUP and its Master_Down_Timer starts again."""

    reason: str


Event: TypeAlias = (
    Startup
    | Shutdown
    | Tick
    | GroupHold
    | AdvertReceived
    | PriorityChanged
    | FaultSet
    | FaultCleared
    | ForceState
)


# --- actions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendAdvert:
    """Send one ADVERTISEMENT now, with this priority (0 when a master steps down)."""

    priority: int


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The state changed; ``reason`` is for the log line and the notifiers."""

    old: State
    new: State
    reason: str


@dataclass(frozen=True, slots=True)
class Announce:
    """(Re)send gratuitous ARP / unsolicited NA for the virtual addresses."""

    reason: str


Action: TypeAlias = SendAdvert | StateChanged | Announce


# --- the machine --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Machine:
    """The whole protocol state of one virtual router.  Immutable: ``step`` returns a new one."""

    config: Config
    priority: int
    """Effective priority: base priority adjusted by tracking (RFC 9568 "Priority")."""
    master_adver_interval_cs: int
    """Master_Adver_Interval (RFC 9568: Active_Adver_Interval), centiseconds."""
    state: State = State.INITIALIZE
    adver_timer: float | None = None
    """Absolute deadline of the Adver_Timer (armed in MASTER only)."""
    master_down_timer: float | None = None
    """Absolute deadline of the Master_Down_Timer (armed in BACKUP only)."""
    preempt_deadline: float | None = None
    """End of the preempt_delay window, once opened; not a wake-up timer."""
    fault_reasons: frozenset[str] = frozenset()
    forced_fault: str | None = None
    """Reason of a FAULT forced by the sync group, until the group releases it."""
    master_address: IPAddress | None = None
    """Source of the last advert heard as BACKUP (or that made us BACKUP); None as MASTER."""
    master_priority: int | None = None
    """Priority in that advert (0: the master stepped down)."""

    @property
    def advert_interval(self) -> float:
        """Our Advertisement_Interval in seconds."""
        return self.config.interval_cs / 100

    @property
    def skew_time(self) -> float:
        """Skew_Time in seconds (RFC 9568 §6.1 for v3, RFC 3768 §6.1 for v2)."""
        if self.config.version == 3:
            return (256 - self.priority) * self.master_adver_interval_cs / 256 / 100
        return (256 - self.priority) / 256

    @property
    def master_down_interval(self) -> float:
        """Master_Down_Interval in seconds (RFC 9568 §6.1 for v3, RFC 3768 §6.1 for v2)."""
        if self.config.version == 3:
            return 3 * self.master_adver_interval_cs / 100 + self.skew_time
        return 3 * self.advert_interval + self.skew_time

    @property
    def owner(self) -> bool:
        """Priority 255: we own the virtual addresses (RFC 9568 §6.4.1)."""
        return self.priority == OWNER_PRIORITY

    @property
    def preempt_mode(self) -> bool:
        """Preempt_Mode; the owner always preempts, whatever is configured (RFC 9568 §6.1)."""
        return self.config.preempt or self.owner

    @property
    def in_fault(self) -> bool:
        """Some fault reason (our own or the sync group's) holds us in FAULT."""
        return bool(self.fault_reasons) or self.forced_fault is not None

    def next_deadline(self) -> float | None:
        """The earliest armed timer: sleep until then and deliver :class:`Tick`."""
        adver, down = self.adver_timer, self.master_down_timer
        if adver is None or down is None:
            return down if adver is None else adver
        return adver if adver < down else down


def initial(config: Config) -> Machine:
    """A machine in INITIALIZE, effective priority = base priority, no timers."""
    return Machine(
        config=config,
        priority=config.priority,
        master_adver_interval_cs=config.interval_cs,
    )


Step: TypeAlias = tuple[Machine, list[Action]]


_MACHINE_FIELDS: Final = tuple(f.name for f in fields(Machine))
_set = object.__setattr__


def replace(m: Machine, **changes: Any) -> Machine:
    """``dataclasses.replace`` for :class:`Machine`, a fifth of the cost: a backup runs
    this for every advert it hears (255 instances at 10 adverts/s each)."""
    new = object.__new__(Machine)
    matched = 0
    for name in _MACHINE_FIELDS:
        if name in changes:
            _set(new, name, changes[name])
            matched += 1
        else:
            _set(new, name, getattr(m, name))
    if matched != len(changes):
        raise TypeError(f"Machine has no field {sorted(changes.keys() - set(_MACHINE_FIELDS))}")
    return new


def _down_interval(m: Machine, master_adver_interval_cs: int) -> float:
    """Master_Down_Interval in seconds for ``m`` with this Master_Adver_Interval."""
    if m.config.version == 3:
        return (3 + (256 - m.priority) / 256) * master_adver_interval_cs / 100
    return 3 * m.advert_interval + (256 - m.priority) / 256


ALIGN_STEP = 8
"""An Adver_Timer is shortened by at most 1/ALIGN_STEP of the interval per advert to reach
its grid (see "The Adver_Timer keeps to a grid" above)."""


GRID_TOLERANCE = 1e-6
"""Seconds: a deadline this close to a multiple of the interval is on the grid."""


def _next_advert(m: Machine, now: float) -> float:
    """The Adver_Timer after an advert sent at ``now``: one Advertisement_Interval on (from
    the deadline when the tick is on time: the runtime delivers it with ``now`` = the
    deadline), shortened by up to an eighth of the interval towards the interval's grid,
    so that adverts are never further apart than the interval nor much closer, and reach
    the grid within eight adverts."""
    interval = m.advert_interval
    deadline = m.adver_timer
    base = deadline if deadline is not None and deadline <= now < deadline + interval else now
    nxt = base + interval
    past = nxt - math.floor(nxt / interval) * interval  # past the grid point at or before it
    if past < GRID_TOLERANCE or interval - past < GRID_TOLERANCE:
        return nxt  # on the grid (float rounding either side of it)
    return nxt - min(past, interval / ALIGN_STEP)


def step(m: Machine, event: Event, now: float) -> Step:
    """Apply one event at time ``now``; return the new machine and the actions to perform."""
    handler = _HANDLERS.get((m.state, type(event)), _ignore)
    return handler(m, event, now)


# --- state entry actions (one table) ------------------------------------------------------


def _goto(m: Machine, new: State, now: float, reason: str) -> Step:
    """Every transition: StateChanged first, then the entry actions of the new state."""
    old = m.state
    m, entry = _ENTRY[new](replace(m, state=new), old, now, reason)
    return m, [StateChanged(old, new, reason), *entry]


def _enter_master(m: Machine, old: State, now: float, reason: str) -> Step:
    # RFC 9568 §6.4.1 (owner) and §6.4.2 (Active_Down_Timer fires): "Send an ADVERTISEMENT";
    # for each address a gratuitous ARP / unsolicited ND Neighbor Advertisement (the
    # backends announce on the state change itself); "Set the Adver_Timer to
    # Advertisement_Interval"; "Transition to the {Active} state".
    # A master advertises its own interval, so the learned one is dropped.
    m = replace(
        m,
        adver_timer=_next_advert(m, now),
        master_down_timer=None,
        preempt_deadline=None,
        master_adver_interval_cs=m.config.interval_cs,
        master_address=None,
        master_priority=None,
    )
    return m, [SendAdvert(m.priority)]


def _enter_backup(m: Machine, old: State, now: float, reason: str) -> Step:
    # RFC 9568 §6.4.1 (non-owner) and §6.4.3 (sender wins): "Set the Active_Down_Timer to
    # Active_Down_Interval" - computed from whatever Master_Adver_Interval the caller left:
    # the configured one after INITIALIZE/FAULT, the learned one after losing an election.
    # A new BACKUP period starts with the preempt_delay window closed (keepalived).
    m = replace(
        m,
        adver_timer=None,
        master_down_timer=now + m.master_down_interval,
        preempt_deadline=None,
    )
    return m, []


def _enter_stopped(m: Machine, old: State, now: float, reason: str) -> Step:
    # FAULT and INITIALIZE: no timers run.  A master leaving says so with priority 0 so that
    # a backup takes over after Skew_Time instead of Master_Down_Interval (RFC 9568 §6.4.3,
    # Shutdown: "Send an ADVERTISEMENT with Priority = 0"; keepalived does the same when a
    # master goes to FAULT).  The next start uses our own interval (§6.4.1: "Set
    # Active_Adver_Interval to Advertisement_Interval").
    m = replace(
        m,
        adver_timer=None,
        master_down_timer=None,
        preempt_deadline=None,
        master_adver_interval_cs=m.config.interval_cs,
    )
    return m, [SendAdvert(STOP_PRIORITY)] if old is State.MASTER else []


_ENTRY: Final[dict[State, Callable[[Machine, State, float, str], Step]]] = {
    State.MASTER: _enter_master,
    State.BACKUP: _enter_backup,
    State.FAULT: _enter_stopped,
    State.INITIALIZE: _enter_stopped,
}


# --- handlers -----------------------------------------------------------------------------


def _ignore(m: Machine, event: Event, now: float) -> Step:
    return m, []


def _fault_summary(m: Machine) -> str:
    reasons = sorted(m.fault_reasons)
    if m.forced_fault is not None:
        reasons.append(m.forced_fault)
    return ", ".join(reasons)


def _startup(m: Machine, event: Startup, now: float) -> Step:
    """RFC 9568 §6.4.1 Initialize, plus FAULT for faults reported before start-up."""
    if m.in_fault:
        return _goto(m, State.FAULT, now, f"startup: {_fault_summary(m)}")
    # "If the Priority = 255 (i.e., the router owns the IPvX address associated with the
    #  Virtual Router), then:"
    if m.owner:
        # "Send an ADVERTISEMENT", gratuitous ARP / unsolicited NA, "Set the Adver_Timer to
        # Advertisement_Interval", "Transition to the {Active} state" (_enter_master)
        return _goto(m, State.MASTER, now, "startup as address owner (priority 255)")
    # "else // Router is not the address owner"
    #   "Set Active_Adver_Interval to Advertisement_Interval" (initial() / _enter_stopped)
    #   "Set the Active_Down_Timer to Active_Down_Interval" (_enter_backup)
    #   "Transition to the {Backup} state"
    return _goto(m, State.BACKUP, now, "startup")


def _shutdown(m: Machine, event: Shutdown, now: float) -> Step:
    """RFC 9568 §6.4.2 and §6.4.3: "If a Shutdown event is received, then:".

    Backup: "Cancel the Active_Down_Timer; Transition to the {Initialize} state".
    Master: "Cancel the Adver_Timer; Send an ADVERTISEMENT with Priority = 0; Transition to
    the {Initialize} state".  Fault: nothing is running or advertised.  The timer
    cancelling and the priority-0 advert are entry actions of INITIALIZE (_enter_stopped).
    """
    return _goto(m, State.INITIALIZE, now, "shutdown")


def _takeover_reason(m: Machine) -> str:
    if m.master_address is None or m.master_priority is None:
        return "master down timer expired, no master heard"
    if m.master_priority == STOP_PRIORITY:
        return f"master {m.master_address} stepped down (priority 0 advert)"
    if m.master_priority < m.priority and m.preempt_mode:
        return (
            f"preempting lower-priority master {m.master_address} "
            f"(priority {m.master_priority} < {m.priority})"
        )
    return f"master down timer expired, last master {m.master_address} silent"


def _backup_tick(m: Machine, event: Tick, now: float) -> Step:
    """RFC 9568 §6.4.2: "If the Active_Down_Timer fires, then:"."""
    if m.master_down_timer is None or now < m.master_down_timer:
        return m, []
    # "Send an ADVERTISEMENT"; gratuitous ARP / unsolicited NA; "Set the Adver_Timer to
    # Advertisement_Interval"; "Transition to the {Active} state" - all in _enter_master.
    return _goto(m, State.MASTER, now, _takeover_reason(m))


def _group_hold(m: Machine, event: GroupHold, now: float) -> Step:
    """keepalived 2.2.7 ``vrrp_sync_can_goto_master``: ``ms_down_timer`` is set to the full
    Master_Down_Interval again and the instance stays BACKUP."""
    if m.master_down_timer is None or now < m.master_down_timer:
        return m, []
    return replace(m, master_down_timer=now + m.master_down_interval), []


def _accept_advert(m: Machine, event: AdvertReceived, now: float, window: float | None) -> Step:
    """RFC 9568 §6.4.2: take the advert as coming from the rightful master."""
    # "Set the Active_Adver_Interval to the Max Advertise Interval contained in the
    #  ADVERTISEMENT" (v3 only: RFC 3768 §6.4.2 has no such step, v2 keeps its own)
    interval = event.interval_cs if m.config.version == 3 else m.master_adver_interval_cs
    # "Recompute the Skew_Time", "Recompute the Active_Down_Interval",
    # "Set the Active_Down_Timer to Active_Down_Interval"
    return replace(
        m,
        master_address=event.source,
        master_priority=event.priority,
        master_adver_interval_cs=interval,
        preempt_deadline=window,
        master_down_timer=now + _down_interval(m, interval),
    ), []


def _backup_advert(m: Machine, event: AdvertReceived, now: float) -> Step:
    """RFC 9568 §6.4.2: "If an ADVERTISEMENT is received, then:" (in Backup)."""
    # "If the Priority in the ADVERTISEMENT is 0, then:"
    if event.priority == STOP_PRIORITY:
        # "Set the Active_Down_Timer to Skew_Time"
        return replace(
            m,
            master_address=event.source,
            master_priority=event.priority,
            master_down_timer=now + m.skew_time,
        ), []
    # "else // priority non-zero"
    # "If Preempt_Mode is False, or if the Priority in the ADVERTISEMENT is greater than or
    #  equal to the local Priority, then:" (_accept_advert)
    if not m.preempt_mode or event.priority >= m.priority:
        # (An equal or higher priority master also closes any preempt_delay window; with
        # Preempt_Mode False the window is never opened.)
        return _accept_advert(m, event, now, None)
    # keepalived's preempt_delay: the lower-priority master is tolerated, as if Preempt_Mode
    # were False, until preempt_delay after its first advert (see the module docstring).
    if m.config.preempt_delay > 0 and not m.owner:
        window = m.preempt_deadline
        if window is None:
            window = now + m.config.preempt_delay
        if now < window:
            return _accept_advert(m, event, now, window)
    # "else // preempt was true and priority was less than the local priority"
    #   "Discard the ADVERTISEMENT" - the Active_Down_Timer keeps running and we take over
    #   when it fires.
    return replace(m, master_address=event.source, master_priority=event.priority), []


def _master_tick(m: Machine, event: Tick, now: float) -> Step:
    """RFC 9568 §6.4.3: "If the Adver_Timer fires, then:"."""
    if m.adver_timer is None or now < m.adver_timer:
        return m, []
    # "Send an ADVERTISEMENT"; "Reset the Adver_Timer to Advertisement_Interval" (on its
    # grid: one interval after the deadline, however late the wake-up)
    return replace(m, adver_timer=_next_advert(m, now)), [SendAdvert(m.priority)]


def _sender_wins(m: Machine, event: AdvertReceived) -> bool:
    """RFC 9568 §6.4.3: higher priority, or equal priority and a greater primary address
    "based on an unsigned integer comparison of the IPvX addresses in network byte
    order".  Both are the same family in practice; across families IPv6 counts as greater,
    only so that the order is total."""
    if event.priority != m.priority:
        return event.priority > m.priority
    ours = m.config.primary_address
    return (event.source.version, int(event.source)) > (ours.version, int(ours))


def _master_advert(m: Machine, event: AdvertReceived, now: float) -> Step:
    """RFC 9568 §6.4.3: "If an ADVERTISEMENT is received, then:" (in Active, i.e. MASTER)."""
    # "If the Priority in the ADVERTISEMENT is 0, then:"
    if event.priority == STOP_PRIORITY:
        # "Send an ADVERTISEMENT"; "Reset the Adver_Timer to Advertisement_Interval" (the
        # next point of its grid)
        return replace(m, adver_timer=_next_advert(m, now)), [SendAdvert(m.priority)]
    # "else // priority was non-zero"
    # "If the Priority in the ADVERTISEMENT is greater than the local Priority or the
    #  Priority in the ADVERTISEMENT is equal to the local Priority and the primary IPvX
    #  address of the sender is greater than the local primary IPvX address ..., then:"
    if _sender_wins(m, event):
        if event.priority > m.priority:
            reason = f"higher priority advert from {event.source} ({event.priority} > {m.priority})"
        else:
            reason = f"equal priority {event.priority} advert from higher address {event.source}"
        # "Set the Active_Adver_Interval to the Max Advertise Interval contained in the
        #  ADVERTISEMENT" (v3; RFC 3768 §6.4.3 keeps the configured interval)
        interval = event.interval_cs if m.config.version == 3 else m.master_adver_interval_cs
        m = replace(
            m,
            master_adver_interval_cs=interval,
            master_address=event.source,
            master_priority=event.priority,
        )
        # "Cancel Adver_Timer", "Recompute the Skew_Time", "Recompute the
        # Active_Down_Interval", "Set the Active_Down_Timer to Active_Down_Interval",
        # "Transition to the {Backup} state" - the timers are BACKUP's entry actions.
        return _goto(m, State.BACKUP, now, reason)
    if event.priority == m.priority and event.source == m.config.primary_address:
        # Our own address at our priority: neither wins.  Discard without reply, or two
        # such routers would answer each other forever.
        return m, []
    # "else // new Active Router logic"
    #   "Discard the ADVERTISEMENT"
    #   "Send an ADVERTISEMENT immediately to assert the {Active} state to the sending VRRP
    #    Router and to update any learning bridges with the correct Active VRRP Router path"
    # Only a master sends adverts, so this is a split brain healing: re-announce the
    # addresses too, so that clients which followed the other master come back.
    if event.priority < m.priority:
        what = f"lower-priority master {event.source} ({event.priority} < {m.priority})"
    else:
        what = f"equal-priority master {event.source} with a lower address"
    announce = Announce(f"split-brain: {what} seen")
    if m.config.lower_prio_no_advert:
        # RFC 3768/5798 only discard it (keepalived's strict mode); the announcements
        # still go out, as many as the backend is told (garp_lower_prio_repeat, 0 there).
        return m, [announce]
    return m, [SendAdvert(m.priority), announce]


def _priority_changed(m: Machine, event: PriorityChanged, now: float) -> Step:
    """A new effective priority from tracking (keepalived's vrrp_set_effective_priority)."""
    if event.priority == m.priority:
        return m, []
    new = replace(m, priority=event.priority)
    if new.master_down_timer is not None:
        # Skew_Time depends on the priority: move the running timer by the change, so a
        # backup that became more eligible takes over sooner, and vice versa.
        shift = new.master_down_interval - m.master_down_interval
        new = replace(new, master_down_timer=new.master_down_timer + shift)
    # A MASTER simply advertises the new priority from its next advert on.
    return new, []


def _fault_set(m: Machine, event: FaultSet, now: float) -> Step:
    """Keepalived's FAULT: a reason appeared.  BACKUP/MASTER go to FAULT (a MASTER sends
    priority 0 as it leaves); INITIALIZE and FAULT just remember it."""
    m = replace(m, fault_reasons=m.fault_reasons | {event.reason})
    if m.state in (State.BACKUP, State.MASTER):
        return _goto(m, State.FAULT, now, event.reason)
    return m, []


def _leave_fault(m: Machine, now: float, reason: str) -> Step:
    # The owner goes straight back to MASTER (RFC 9568 §6.4.1's rule for it); anyone else
    # starts over as BACKUP with our own interval and a full Master_Down_Interval.
    return _goto(m, State.MASTER if m.owner else State.BACKUP, now, reason)


def _fault_cleared(m: Machine, event: FaultCleared, now: float) -> Step:
    """A reason went away; FAULT is left when none (own or forced) is left."""
    if event.reason not in m.fault_reasons:
        return m, []
    m = replace(m, fault_reasons=m.fault_reasons - {event.reason})
    if m.state is State.FAULT and not m.in_fault:
        return _leave_fault(m, now, f"fault cleared: {event.reason}")
    return m, []


def _force_state(m: Machine, event: ForceState, now: float) -> Step:
    """Sync groups: follow the group (see the module docstring)."""
    target = event.state
    if target is State.FAULT:
        m = replace(m, forced_fault=event.reason)
        if m.state in (State.BACKUP, State.MASTER):
            return _goto(m, State.FAULT, now, event.reason)
        return m, []
    m = replace(m, forced_fault=None)
    if m.state is State.INITIALIZE or m.state is target or m.in_fault:
        # Not running yet, already there, or held in FAULT by faults of its own.
        return m, []
    return _goto(m, target, now, event.reason)


Handler: TypeAlias = Callable[[Machine, Any, float], Step]

# (state, event type) -> handler.  Anything not listed is ignored: adverts and ticks while
# INITIALIZE or FAULT, Startup while running, Shutdown while INITIALIZE.
_HANDLERS: Final[dict[tuple[State, type[Any]], Handler]] = {
    (State.INITIALIZE, Startup): _startup,
    (State.INITIALIZE, PriorityChanged): _priority_changed,
    (State.INITIALIZE, FaultSet): _fault_set,
    (State.INITIALIZE, FaultCleared): _fault_cleared,
    (State.INITIALIZE, ForceState): _force_state,
    (State.BACKUP, Shutdown): _shutdown,
    (State.BACKUP, Tick): _backup_tick,
    (State.BACKUP, GroupHold): _group_hold,
    (State.BACKUP, AdvertReceived): _backup_advert,
    (State.BACKUP, PriorityChanged): _priority_changed,
    (State.BACKUP, FaultSet): _fault_set,
    (State.BACKUP, FaultCleared): _fault_cleared,
    (State.BACKUP, ForceState): _force_state,
    (State.MASTER, Shutdown): _shutdown,
    (State.MASTER, Tick): _master_tick,
    (State.MASTER, AdvertReceived): _master_advert,
    (State.MASTER, PriorityChanged): _priority_changed,
    (State.MASTER, FaultSet): _fault_set,
    (State.MASTER, FaultCleared): _fault_cleared,
    (State.MASTER, ForceState): _force_state,
    (State.FAULT, Shutdown): _shutdown,
    (State.FAULT, PriorityChanged): _priority_changed,
    (State.FAULT, FaultSet): _fault_set,
    (State.FAULT, FaultCleared): _fault_cleared,
    (State.FAULT, ForceState): _force_state,
}
