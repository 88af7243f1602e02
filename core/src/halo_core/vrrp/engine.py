"""The VRRP engine: pure state machines driven by sockets, timers and tracked inputs.

Each configured instance is an :class:`InstanceRuntime` holding an immutable
:class:`~halo_core.vrrp.fsm.Machine`. Everything that happens to it — a received advert, a
timer, a tracked input, a shutdown — becomes an FSM event; the FSM returns the new machine
and a list of actions, and the runtime carries them out: send an advert, log and publish a
state change, ask for the addresses to be announced. The runtime arms exactly one timer per
instance, at the machine's next deadline.

Backends (the VIPs, the load balancer) and notifiers act on the events published here; they
never run inside the FSM step, and nothing here waits for them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from halo_core import log as halo_log
from halo_core.bus import EventBus, Subscription
from halo_core.config.model import HaloConfig, Track, VrrpInstance
from halo_core.events import (
    BackendCleared,
    BackendFailed,
    CheckStateChanged,
    Event,
    SyncGroupStateChanged,
    VrrpAnnounce,
    VrrpStateChanged,
)
from halo_core.events import PriorityChanged as PriorityChangedEvent
from halo_core.plugin_api import CheckerConfig
from halo_core.scheduler import TIMER_BATCH, Clock, LoopClock, Timer, grid_before
from halo_core.schema import IPAddress
from halo_core.vrrp import fsm, packet, prelisten, tracking
from halo_core.vrrp.transport import (
    GROUP4,
    GROUP6,
    Interface,
    InterfaceSocket,
    Transport,
    interface_info,
)

if TYPE_CHECKING:
    from halo_core.vrrp.prelisten import Prelistening
    from halo_core.vrrp.vmac import VmacSet

log = logging.getLogger("halo.vrrp")

APPROACH_FROM = 0.05
"""Seconds: a Master_Down_Timer further away is first approached to within the kernel's
wake-up slack (see ``InstanceRuntime._wake``)."""
POLL_FROM = 0.002
"""Seconds: the last stretch of a Master_Down_Timer is polled, so that the process is
running, not waking up, at the deadline (the loop's waits were whole milliseconds,
rounded up, when this was measured; they now end on a timerfd)."""
EARLIEST_WAKE = 0.1 + POLL_FROM
"""Seconds: the earliest a wake-up is armed before its deadline (see ``_wake_time``)."""
LOOK_BEFORE = APPROACH_FROM / 2
"""Seconds: a backup on its engine's shared early looks (:class:`EarlyLooks`) is handed
back to its own timers this long before its Master_Down_Timer."""
LOOK_TOGETHER = LOOK_BEFORE / 2
"""Seconds: when the shared early looks' timer fires, the members whose looks are due
within this are looked at in the same pass. A master's instances send in one clump (fsm:
the Adver_Timer's grid), but over a millisecond or two: one pass each was five or six
wake-ups per round of looks. A look this much earlier still comes before the last,
punctual steps to the deadline (``InstanceRuntime._wake``)."""
LOOK_MARGIN = 0.012
"""Seconds: how late a master's next advert may come (its sending, the socket's polling
floor) and still be read before a backup's early look that the advert being read moves on
(see ``InstanceRuntime.on_advert``)."""

STOP = "STOP"  # the state name published when an instance stops (keepalived's notify_stop)


def transition_level(old: str, new: str) -> int:
    """How loud a state change is logged: WARNING when an instance (or sync group) enters
    FAULT or stops being MASTER, which an operator filtering on warnings must see; INFO
    for the normal ones (becoming MASTER, BACKUP at start, STOP from BACKUP)."""
    master = fsm.State.MASTER.value
    if new == fsm.State.FAULT.value or (old == master and new != master):
        return logging.WARNING
    return logging.INFO


PRELISTEN_STEP = 0.0005
"""Seconds between the starts of pre-listened instances, in the file's order (see start)."""


@dataclass
class TrackState:
    """The current readings of one instance's tracked inputs."""

    updown: dict[str, tuple[tracking.Tracked, bool]] = field(default_factory=dict)
    files: dict[str, tuple[tracking.TrackedFile, int]] = field(default_factory=dict)

    def result(self, base: int) -> tracking.Effective:
        return tracking.effective(base, self.updown.values(), self.files.values())


def family_of(cfg: VrrpInstance) -> int:
    """The instance's socket family (see :attr:`VrrpInstance.family`)."""
    return socket.AF_INET6 if cfg.family == 6 else socket.AF_INET


@dataclass
class _Window:
    timer: Timer
    counts: Counter[str] = field(default_factory=Counter)


class InvalidAdvertLog:
    """Log invalid adverts one line per source per minute, with the count.

    The first one from a source is logged at once; while more keep coming, one line a
    minute says how many and why. The instance's counters keep every one. A sender with
    a wrong password or address list at 100 adverts a second must not write 100 lines a
    second (nor cost the CPU to format them).
    """

    WINDOW = 60.0

    def __init__(self, instance: str, clock: Clock) -> None:
        self.instance = instance
        self.clock = clock
        self.windows: dict[IPAddress, _Window] = {}

    def note(self, src: IPAddress, reason: packet.RejectReason) -> None:
        level = logging.WARNING if reason.is_warning else logging.DEBUG
        window = self.windows.get(src)
        if window is not None:
            window.counts[reason.value] += 1
            return
        if level == logging.WARNING:
            log.warning(
                "%s: advert from %s: %s", self.instance, src, reason.value.replace("_", " ")
            )
        else:
            log.debug("%s: dropped advert from %s: %s", self.instance, src, reason.value)
        self._open(src)

    def _open(self, src: IPAddress) -> None:
        self.windows[src] = _Window(
            self.clock.call_at(self.clock.now() + self.WINDOW, lambda: self._flush(src))
        )

    def _flush(self, src: IPAddress) -> None:
        window = self.windows.pop(src)
        if not window.counts:
            return  # quiet for a minute: the next one is logged at once again
        warned = any(packet.RejectReason(r).is_warning for r in window.counts)
        log.log(
            logging.WARNING if warned else logging.DEBUG,
            "%s: %d more invalid adverts from %s in the last minute (%s)",
            self.instance,
            window.counts.total(),
            src,
            ", ".join(f"{r.replace('_', ' ')}: {n}" for r, n in sorted(window.counts.items())),
        )
        self._open(src)

    def close(self) -> None:
        for window in self.windows.values():
            window.timer.cancel()
        self.windows.clear()


class EarlyLooks:
    """One loop timer for the early looks of all of an engine's backups at their
    Master_Down_Timers (see ``InstanceRuntime._wake``).

    A backup hearing its master moves its deadline on with every advert, so a look of its
    own had to be moved too, about every third advert: a timer handle cancelled and a new
    one pushed on the loop's heap (asyncio compares timer handles in Python), 330 times a
    second for 100 instances at 0.1 s. Here a member's look is only its ``_wake_at``,
    written with each advert (``LOOK_BEFORE`` before its deadline), and one timer is armed
    at the earliest. The read pass that finds that timer near moves it on (``rescan``, a
    few times a second); when it fires, the members whose look is due are handed back to
    their own ``_wake`` and own timers, for the last, punctual steps to the deadline."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.members: dict[InstanceRuntime, None] = {}  # in order: the same runs the same
        self.at = math.inf  # when the timer fires
        self._timer: Timer | None = None

    def add(self, inst: InstanceRuntime) -> None:
        self.members[inst] = None
        if inst._wake_at < self.at:
            self._set(inst._wake_at)

    def discard(self, inst: InstanceRuntime) -> None:
        """``inst`` has its own timer again, or none: the shared one may fire early once."""
        self.members.pop(inst, None)
        if not self.members and self._timer is not None:
            self._timer.cancel()
            self._timer, self.at = None, math.inf

    def rescan(self) -> None:
        """Members' looks moved on (their masters' adverts): re-arm at the earliest."""
        if self.members:
            at = min(self.members, key=_wake_at)._wake_at
            if at != self.at:
                self._set(at)

    def _set(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.at = at
        self._timer = self.clock.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer, self.at = None, math.inf
        now = self.clock.now()
        due_by = now + LOOK_TOGETHER
        due = []
        for inst in [inst for inst in self.members if inst._wake_at <= due_by]:
            if not inst._look_on(now):  # the deadline is near: the member's own steps now
                del self.members[inst]
                inst._timer = None
                due.append(inst)
        self.rescan()
        for inst in due:
            inst._wake()


def _wake_at(inst: InstanceRuntime) -> float:
    return inst._wake_at


class _LookTicket:
    """An instance's place in its engine's :class:`EarlyLooks`, as its ``_timer``."""

    __slots__ = ("inst", "looks")

    def __init__(self, looks: EarlyLooks, inst: InstanceRuntime) -> None:
        self.looks, self.inst = looks, inst

    def cancel(self) -> None:
        self.looks.discard(self.inst)


class InstanceRuntime:
    """One VRRP instance at run time."""

    def __init__(
        self,
        name: str,
        cfg: VrrpInstance,
        iface: Interface,
        sock: InterfaceSocket,
        *,
        clock: Clock,
        bus: EventBus,
        group: str | None = None,
        on_state: Callable[[InstanceRuntime, fsm.StateChanged, bool], None] | None = None,
        group_holds: Callable[[InstanceRuntime], bool] | None = None,
        sender: InterfaceSocket | None = None,
        check_unicast_src: bool = False,
        looks: EarlyLooks | None = None,
    ) -> None:
        # Repeats of the advert last stepped (see on_advert): the decoded advert and source
        # objects a repeat arrives as, its event, the receive time of the latest repeat not
        # yet applied to the machine, and the repeats not yet counted in `counters`. First
        # in the instance, with the timer's: a backup reads these for every advert, and
        # together they fill few cache lines, cold after each sleep (bench/cpu/README.md).
        # The socket's kernel filter of repeats (None: every advert is read): once a repeat
        # is kept, the kernel drops the advert's copies and notes when they came, and the
        # instance reads that (_fold) where it would have read its pending repeat.
        self._filter = sock.repeats
        self._vrid = cfg.virtual_router_id
        self._filter_last, self._filter_count = 0, 0  # what _fold took in (after the machine)
        self._repeat_adv: packet.Advertisement | None = None
        self._repeat_src: IPAddress | None = None
        self._repeat_event: fsm.AdvertReceived | None = None
        self._repeat_at: float | None = None
        self._repeats = 0
        self._timer: Timer | None = None
        self._wake_at = 0.0  # when the armed timer fires
        # Early looks share the engine's timer (EarlyLooks): this is our place there.
        self._ticket = _LookTicket(looks, self) if looks is not None else None
        # The Master_Down_Interval that advert set: a pending repeat's deadline is its
        # receive time plus this, known without stepping the machine (see _next_deadline).
        self._repeat_down = 0.0
        # A repeat read less than this before the armed wake-up moves the wake-up on at
        # once (see on_advert): the master's interval, then half the Skew_Time and a margin.
        self._look_ahead = 0.0
        self.name = name
        self.cfg = cfg
        self.iface = iface
        self.sock = sock
        self.sender = sender or sock  # a VMAC's socket (use_vmac), else the interface's
        self.clock = clock
        self.bus = bus
        self.group = group
        self.on_state = on_state
        # Sync groups: asked when this member's Master_Down_Timer expires; True keeps it
        # BACKUP (fsm.GroupHold). held_until is the timer that hold restarted: while it
        # stands (no advert moved it), the member wants MASTER (keepalived's wantstate).
        self.group_holds = group_holds
        self.held_until: float | None = None
        self.family = sock.family
        self.v3_checksum_as_v2 = cfg.v3_checksum_as_v2
        self._counters: Counter[str] = Counter()
        self.tracks = TrackState()
        self.track_faults: frozenset[str] = frozenset()
        self._forced = False
        self.removed = False  # a reload removed it: its STOP says so

        src = cfg.unicast_src_ip or (
            iface.ipv4 if self.family == socket.AF_INET else iface.link_local
        )
        if src is None:
            kind = "IPv4" if self.family == socket.AF_INET else "link-local IPv6"
            raise OSError(f"{iface.name} has no {kind} address")
        self.source: IPAddress = src
        self.interval_cs = round(float(cfg.advert_int) * 100)
        self.addresses = tuple(v.address.ip for v in cfg.virtual_ipaddress)
        auth = cfg.authentication
        auth_type = packet.AUTH_PASS if auth is not None else packet.AUTH_NONE
        auth_data = auth.auth_pass.encode()[:8] if auth is not None else b""
        self.destinations: list[IPAddress] = list(cfg.unicast_peer) or [
            GROUP4 if self.family == socket.AF_INET else GROUP6
        ]
        self.ttl = cfg.unicast_ttl if cfg.unicast_peer and cfg.unicast_ttl != 255 else 0
        # check_unicast_src: adverts from anyone but the peers are dropped
        self.allowed_sources: frozenset[IPAddress] | None = (
            frozenset(cfg.unicast_peer)
            if cfg.unicast_peer and (check_unicast_src or cfg.check_unicast_src)
            else None
        )
        advert = packet.Advertisement(
            version=cfg.version,
            vrid=cfg.virtual_router_id,
            priority=cfg.priority,
            interval_cs=self.interval_cs,
            addresses=self.addresses,  # type: ignore[arg-type]
            auth_type=auth_type,
            auth_data=auth_data,
        )
        self.expectation = packet.Expectation(*dataclasses.astuple(advert))
        # Adverts are pre-encoded per destination; only the priority changes at run time.
        self.templates = [
            (
                dst,
                packet.AdvertTemplate(
                    advert, self.source, dst, v3_checksum_as_v2=cfg.v3_checksum_as_v2
                ),
            )
            for dst in self.destinations
        ]
        self._encoded: tuple[int, list[tuple[IPAddress, bytes]]] = (-1, [])
        self.machine = fsm.initial(
            fsm.Config(
                name=name,
                version=cfg.version,
                vrid=cfg.virtual_router_id,
                priority=cfg.priority,
                interval_cs=self.interval_cs,
                preempt=not cfg.nopreempt,
                preempt_delay=float(cfg.preempt_delay),
                primary_address=self.source,
                lower_prio_no_advert=cfg.lower_prio_no_advert,
            )
        )
        if self._filter is not None:  # what the kernel counted so far is not ours (a reload)
            self._filter_last, self._filter_count = self._filter.seen(self._vrid)
        self.local_addresses = {
            a for a in (iface.ipv4, iface.link_local, cfg.unicast_src_ip) if a is not None
        }
        self._last_source: IPAddress | None = None
        self._source_is_local = False
        self._source_unknown = False
        self._checked: tuple[packet.Advertisement | None, packet.RejectReason | None] = (None, None)
        self.invalid_log = InvalidAdvertLog(name, clock)

    # ------------------------------------------------------------------ driving the FSM

    @property
    def machine(self) -> fsm.Machine:
        """The state machine, with the latest repeated advert applied (see on_advert)."""
        self._fold()
        if self._repeat_at is not None:
            self._apply_repeat()
        return self._machine

    @machine.setter
    def machine(self, machine: fsm.Machine) -> None:
        if self._filter is not None:
            self._filter.disarm(self._vrid)
        self._machine = machine
        self._repeat_adv = self._repeat_src = self._repeat_event = self._repeat_at = None

    @property
    def counters(self) -> Counter[str]:
        """What this instance counted (adverts received and sent, drops by reason, ...)."""
        self._fold()
        if self._repeats:
            self._counters["adverts_received"] += self._repeats
            self._repeats = 0
        return self._counters

    @counters.setter
    def counters(self, counters: Counter[str]) -> None:
        self._counters, self._repeats = counters, 0

    @property
    def state(self) -> fsm.State:
        return self.machine.state

    def _fold(self) -> None:
        """Take in the repeats the socket's kernel filter dropped since the last look: the
        latest one's receive time is the pending repeat's (see on_advert)."""
        if self._filter is None:
            return
        last, count = self._filter.seen(self._vrid)
        if count != self._filter_count:
            self._repeats += count - self._filter_count
            self._counters["repeats_in_kernel"] += count - self._filter_count
            self._filter_count = count
        if last != self._filter_last:
            self._filter_last = last
            at = last * 1e-9  # CLOCK_MONOTONIC, the loop's clock
            if self._repeat_event is not None and (self._repeat_at is None or at > self._repeat_at):
                self._repeat_at = at

    def _apply_repeat(self) -> None:
        assert self._repeat_event is not None and self._repeat_at is not None
        at, self._repeat_at = self._repeat_at, None
        self._machine, actions = fsm.step(self._machine, self._repeat_event, at)
        self._act(actions, False)

    def step(self, event: fsm.Event, *, forced: bool = False, now: float | None = None) -> None:
        if self._filter is not None:
            # Read this VRID's adverts again: what this event does may change what the next
            # one means. Before the fold below, so that none is dropped unseen in between.
            self._filter.disarm(self._vrid)
        machine = self.machine  # a repeated advert first: events apply in order
        self._repeat_adv = self._repeat_src = self._repeat_event = None
        self._machine, actions = fsm.step(machine, event, self.clock.now() if now is None else now)
        m = self._machine
        if (
            m.priority != machine.priority
            or m.master_adver_interval_cs != machine.master_adver_interval_cs
        ):
            self.sock.retune()  # the Skew_Time moved (coalescing_limit)
        self._act(actions, forced)
        self._arm()

    def _act(self, actions: list[fsm.Action], forced: bool) -> None:
        if actions:
            self._forced = forced
            # Adverts first: the takeover is on the wire before it is logged or published.
            for action in actions:
                if isinstance(action, fsm.SendAdvert):
                    self._send(action.priority)
            for action in actions:
                if isinstance(action, fsm.StateChanged):
                    self._state_changed(action)
                elif isinstance(action, fsm.Announce):
                    # Entering MASTER is itself the request to announce (backends act on
                    # the state change); this one means "again, now": a split brain healed.
                    self._counters["announce_requests"] += 1
                    self.bus.publish(VrrpAnnounce(instance=self.name, reason=action.reason))
            self._forced = False

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.invalid_log.close()

    def _arm(self) -> None:
        """Have a wake-up armed no later than the machine's next deadline.

        An armed wake-up that comes earlier is kept: it finds the deadline moved and arms
        again then. A backup hearing its master does not re-arm per advert: a repeat moves
        the wake-up on only when it is near (``on_advert``, ``_look_again``), about once
        per Master_Down_Interval.
        """
        deadline = self._next_deadline()
        if deadline is None:
            self.cancel_timer()
            return
        if self._timer is not None and self._wake_at <= deadline - EARLIEST_WAKE:
            return  # the common case of a backup hearing its master: nothing to compute
        ticket = self._ticket
        shared = (  # an early look: on the shared timer, written on by each repeat
            ticket is not None
            and self._machine.state is fsm.State.BACKUP
            and deadline - self.clock.now() > APPROACH_FROM
        )
        wake = deadline - LOOK_BEFORE if shared else self._wake_time(deadline)
        if self._timer is not None:
            if self._wake_at <= wake:
                return
            self._timer.cancel()
        self._wake_at = wake
        if shared:
            assert ticket is not None
            self._timer = ticket
            ticket.looks.add(self)
        else:
            self._timer = self.clock.call_at(wake, self._wake)

    def _look_on(self, now: float) -> bool:
        """An early look on the shared timer (:class:`EarlyLooks`): if the deadline has moved
        on (the master's repeats, read or counted by the kernel), the look moves with it
        and stays shared (True); else the last steps are the instance's own (False)."""
        deadline = self._next_deadline()
        if (
            deadline is None
            or deadline - now <= APPROACH_FROM
            or self._machine.state is not fsm.State.BACKUP
        ):
            return False
        self._wake_at = deadline - LOOK_BEFORE
        return True

    def _look_again(self) -> None:
        """Re-arm the wake-up for the deadline a repeat has moved (a backup: the state a
        repeat is kept in), if that is later than the one armed."""
        assert self._timer is not None and self._repeat_at is not None
        wake = self._wake_time(self._repeat_at + self._repeat_down)
        if wake > self._wake_at:
            self._timer.cancel()
            self._wake_at = wake
            self._timer = self.clock.call_at(wake, self._wake)

    def coalescing_limit(self) -> float:
        """The Skew_Time: how long a backup has between its master's priority-0 advert and
        its takeover (the socket may leave adverts unread for half of it)."""
        return self._machine.skew_time

    def _next_deadline(self) -> float | None:
        """The machine's next deadline, without stepping it for a pending repeat: a backup
        hearing its master moves its wake-up on about once a Master_Down_Interval (and
        wakes for it when an advert is late), and applying the repeat (a new machine) would
        be most of that cost. The repeat is applied when the timer is really due
        (``step``)."""
        self._fold()
        if self._repeat_at is not None:
            return self._repeat_at + self._repeat_down
        return self._machine.next_deadline()

    def _wake_time(self, deadline: float) -> float:
        """When to wake for ``deadline``: a master's Adver_Timer on time; a backup's
        Master_Down_Timer approached in steps (see :meth:`_wake`)."""
        if self._machine.state is not fsm.State.BACKUP:  # a repeat never changes the state
            return deadline
        wait = deadline - self.clock.now()
        # the early looks share wake-ups (they need not be punctual, the last step is)
        if wait > APPROACH_FROM:
            return grid_before(deadline - min(wait / 1000, 0.1) - POLL_FROM)
        if wait > POLL_FROM:
            return grid_before(deadline - POLL_FROM)
        return deadline

    def _wake(self) -> None:
        """Arm the Master_Down_Timer precisely.

        The event loop used to wait in epoll_wait, which Linux lets end up to 1/1000 of
        the wait late (select_estimate_accuracy: 3.6 ms on a 3.6 s Master_Down_Interval)
        and which counts whole milliseconds, rounded up: plain ``call_at`` took over 1.5
        to 4 ms after the RFC time where keepalived (timerfd) is 0.3 ms late. (The loop
        now waits on a timerfd too: ``halo_core.scheduler.new_event_loop``.) So: wake a
        little more than that slack early, then ``POLL_FROM`` early, then poll the loop
        (``call_soon``: I/O is still served) until the deadline. The polling lasts about
        a millisecond and only happens when the timer really expires, i.e. at a takeover.
        """
        self._timer = None
        deadline = self._next_deadline()
        if deadline is None:
            return
        now = self.clock.now()
        backup = self._machine.state is fsm.State.BACKUP
        if now >= deadline and backup:
            # Before declaring the master dead, read what has arrived: its advert may be
            # queued behind a burst of other instances' (the loop reads 64 at a time).
            self.sock.drain()
            deadline = self.machine.next_deadline()
            if deadline is None or now < deadline:
                self._arm()
                return
        if now >= deadline or (not backup and now >= deadline - TIMER_BATCH):
            # a master's Adver_Timer run with a batch of them, a little early (TIMER_BATCH),
            # is taken as on time: the next one is due an interval after this deadline
            if backup and self._held_by_group(max(now, deadline)):
                return
            self.step(fsm.Tick(), now=max(now, deadline))
        elif backup and grid_before(deadline - POLL_FROM) <= now:
            # the last stretch (from the whole millisecond _wake_time arms for: a wake-up
            # armed for it again would come at once, over and over)
            if isinstance(self.clock, LoopClock):
                self._wake_at = now
                self._timer = self.clock.loop.call_soon(self._wake)
            else:
                self._wake_at = deadline
                self._timer = self.clock.call_at(deadline, self._wake)
        else:
            self._arm()

    def _held_by_group(self, now: float) -> bool:
        """At this member's Master_Down_Timer expiry: does its sync group hold it BACKUP?"""
        if self.group is None or self.group_holds is None or not self.group_holds(self):
            return False
        self.step(fsm.GroupHold(f"sync group {self.group}"), now=now)
        self.held_until = self._machine.master_down_timer
        log.info(
            "%s: master down timer expired; held BACKUP until every member of sync group %s"
            " wants MASTER",
            self.name,
            self.group,
            extra=halo_log.fields(instance=self.name, group=self.group),
        )
        return True

    @property
    def wants_master(self) -> bool:
        """keepalived's ``wantstate == MASTER``: MASTER, or held BACKUP by its sync group
        after its Master_Down_Timer expired and no advert heard since (one would have
        moved the timer: keepalived sets wantstate BACKUP on such an advert)."""
        state = self.state
        if state is fsm.State.MASTER:
            return True
        return (
            state is fsm.State.BACKUP
            and self.held_until is not None
            and self._machine.master_down_timer == self.held_until
        )

    def _send(self, priority: int) -> None:
        if priority != self._encoded[0]:  # a master sends the same bytes every interval
            self._encoded = (priority, [(d, t.encode(priority)) for d, t in self.templates])
        for dst, payload in self._encoded[1]:
            if self.sender.send(payload, self.source, dst, self.ttl):
                self._counters["adverts_sent"] += 1
                if priority == 0:
                    self._counters["priority_zero_sent"] += 1

    def _state_changed(self, change: fsm.StateChanged) -> None:
        new = change.new.value
        if change.new is fsm.State.INITIALIZE and change.old is not fsm.State.INITIALIZE:
            new = STOP
        if change.new is fsm.State.MASTER:
            self._counters["became_master"] += 1
        if change.old is fsm.State.MASTER:
            self._counters["released_master"] += 1
        # Published before it is logged: the addresses backend's immediate route sends
        # the first gratuitous ARPs from inside publish.
        self.bus.publish(
            VrrpStateChanged(
                instance=self.name,
                old=change.old.value,
                new=new,
                priority=self.machine.priority,
                reason=change.reason,
                interface=self.iface.name,
                vrid=self.cfg.virtual_router_id,
                group=self.group,
                removed=self.removed,
            )
        )
        log.log(
            transition_level(change.old.value, new),
            "%s: entering %s state (%s)",
            self.name,
            new,
            change.reason,
            extra=halo_log.fields(
                instance=self.name,
                group=self.group,
                from_state=change.old.value,
                to_state=new,
                reason=change.reason,
            ),
        )
        if self.on_state is not None:
            self.on_state(self, change, self._forced)

    # ------------------------------------------------------------------ receiving

    def on_advert(
        self, adv: packet.Advertisement, src: IPAddress, dst: IPAddress, now: float
    ) -> bool:
        if adv is self._repeat_adv and src is self._repeat_src:
            # The advert stepped last, again (the decoder hands out the same objects), and
            # a repeat is only kept for an advert that passed every check below: for a
            # backup accepting its master it only moves Master_Down_Timer to this receive
            # time, so it is applied once, when anyone next reads the machine (its timer's
            # wake-up, an event, the status) - not once per advert. Checked first: it is
            # nearly every advert a backup reads.
            self._repeats += 1  # into counters when they are read
            self._repeat_at = now
            ticket = self._ticket
            if ticket is not None and self._timer is ticket:
                # On the shared early looks: this is the look, and the shared timer is
                # moved on in this pass if it is near (as below, for all members at once).
                self._wake_at = now + self._repeat_down - LOOK_BEFORE
                if ticket.looks.at < now + self._look_ahead:
                    ticket.looks.rescan()
                return False
            if self._wake_at < now + self._look_ahead and self._timer is not None:
                # The armed early look would come before the master's next advert is read:
                # move it on now, in this pass of the loop, rather than wake for it later
                # only to find the deadline moved (a backup of many instances woke about
                # once per advert interval for such looks alone).
                self._look_again()
            return False
        if src is not self._last_source:  # the decoder hands out the same objects again
            self._last_source, self._source_is_local = src, src in self.local_addresses
            self._source_unknown = (
                self.allowed_sources is not None and src not in self.allowed_sources
            )
        if self._source_is_local:
            return False  # our own packet looped back by a peer or bridge
        if self._source_unknown:
            unknown = packet.RejectReason.UNKNOWN_UNICAST_SOURCE
            self._counters[unknown.value] += 1
            self.invalid_log.note(src, unknown)
            return False
        if adv is not self._checked[0]:
            self._checked = (adv, packet.check(adv, self.expectation))
        reason = self._checked[1]
        if reason is not None:
            self._counters[reason.value] += 1
            self.invalid_log.note(src, reason)
            if not reason.is_warning:
                return False
        self._counters["adverts_received"] += 1
        if adv.priority == 0:
            self._counters["priority_zero_received"] += 1
        event = fsm.AdvertReceived(priority=adv.priority, source=src, interval_cs=adv.interval_cs)
        self.step(event, now=now)
        m = self._machine
        if (
            m.state is fsm.State.BACKUP
            and reason is None  # a warning is counted and logged at every advert
            and adv.priority != 0
            and m.preempt_deadline is None
            and (not m.preempt_mode or adv.priority >= m.priority)
            and m.master_down_timer is not None
        ):
            # Accepted (RFC 9568 §6.4.2): a repeat changes nothing but the timer's start.
            self._repeat_adv, self._repeat_src, self._repeat_event = adv, src, event
            self._repeat_down = m.master_down_timer - now
            self._look_ahead = m.master_adver_interval_cs / 100 + m.skew_time / 2 + LOOK_MARGIN
            return True
        return False

    # ------------------------------------------------------------------ tracking

    def set_input(self, track: Track, key: str, reading: bool | int) -> None:
        weight = track.weight or 0
        if track.file is not None:
            self.tracks.files[key] = (
                tracking.TrackedFile(
                    key, track.weight if track.weight is not None else 1, track.reverse
                ),
                int(reading),
            )
        else:
            self.tracks.updown[key] = (tracking.Tracked(key, weight, track.reverse), bool(reading))
        self.reevaluate(
            f"{key} {'up' if reading else 'down'}"
            if isinstance(reading, bool)
            else f"{key}={reading}"
        )

    def reevaluate(self, why: str) -> None:
        """Recompute priority and faults from the tracked inputs; feed the differences."""
        result = self.tracks.result(self.cfg.priority)
        for reason in sorted(result.faults - self.track_faults):
            self.step(fsm.FaultSet(reason))
        for reason in sorted(self.track_faults - result.faults):
            self.step(fsm.FaultCleared(reason))
        self.track_faults = result.faults
        if result.priority != self.machine.priority:
            old = self.machine.priority
            self.step(fsm.PriorityChanged(result.priority))
            log.info("%s: priority %d -> %d (%s)", self.name, old, result.priority, why)
            self.bus.publish(
                PriorityChangedEvent(instance=self.name, old=old, new=result.priority, reason=why)
            )


class VrrpEngine:
    """Every VRRP instance of one daemon, their sockets, sync groups and tracked inputs."""

    def __init__(
        self,
        config: HaloConfig,
        bus: EventBus,
        clock: Clock,
        *,
        check_up: Callable[[str], bool | None] = lambda name: None,
    ) -> None:
        self.config = config
        self.bus = bus
        self.clock = clock
        self.looks = EarlyLooks(clock)  # the backups' early looks share one timer
        # A tracked check's state is read once when tracking is (re)built; every change
        # after that arrives on the bus (CheckStateChanged), the one route for it.
        self.check_up = check_up
        self._check_sub: Subscription | None = None
        self.transport = Transport()
        self.instances: dict[str, InstanceRuntime] = {}
        self.group_of = {m: g for g, sg in config.vrrp_sync_groups.items() for m in sg.group}
        self.links: Any = None
        self.check_watchers: dict[str, list[tuple[InstanceRuntime, Track]]] = {}
        self.track_files: list[tuple[InstanceRuntime, Track]] = []
        self.group_states: dict[str, str] = {}
        self._file_timer: Timer | None = None
        self._vmacs: VmacSet | None = None  # made by the first instance with use_vmac
        # dynamic_interfaces: instances whose interface does not exist yet, by interface
        self.waiting: dict[str, dict[str, VrrpInstance]] = {}

    @property
    def vmacs(self) -> VmacSet:
        """The instances' VMAC interfaces (use_vmac); the module is imported only for a
        configuration that uses them."""
        if self._vmacs is None:
            from halo_core.vrrp.vmac import VmacSet

            self._vmacs = VmacSet()
        return self._vmacs

    def _create(self, name: str, cfg: VrrpInstance) -> InstanceRuntime:
        iface = interface_info(cfg.resolved_interface())
        family = family_of(cfg)
        sock = self.transport.socket_for(iface, family)
        sender: InterfaceSocket | None = None
        vmac = cfg.vmac_name
        if vmac is not None:
            from halo_core.vrrp.vmac import SendOnlySocket

            vmac_iface = self.vmacs.create(vmac, iface, cfg.vmac_address)
            if cfg.advert_interface is not None and family == socket.AF_INET:
                try:
                    sender = SendOnlySocket(vmac_iface, family)
                except OSError:
                    self.vmacs.remove(vmac)
                    raise
        inst = InstanceRuntime(
            name,
            cfg,
            iface,
            sock,
            clock=self.clock,
            bus=self.bus,
            group=self.group_of.get(name),
            on_state=self._sync,
            group_holds=self._group_holds,
            sender=sender,
            check_unicast_src=self.config.global_.check_unicast_src,
            looks=self.looks,
        )
        sock.receivers[cfg.virtual_router_id] = inst
        sock.retune()
        self.instances[name] = inst
        return inst

    def _discard(self, inst: InstanceRuntime) -> None:
        """Release what :meth:`_create` made for a stopped instance."""
        inst.cancel_timer()
        if inst.sender is not inst.sock:
            inst.sender.close()
        self.transport.release(inst.iface.name, inst.family, inst.cfg.virtual_router_id)
        if inst.cfg.vmac_name is not None:
            self.vmacs.remove(inst.cfg.vmac_name)

    def _create_or_wait(self, name: str, cfg: VrrpInstance) -> InstanceRuntime | None:
        """:meth:`_create`, or with ``dynamic_interfaces`` and a missing interface, None:
        the instance starts when the interface appears (see :meth:`_link_changed`)."""
        try:
            return self._create(name, cfg)
        except OSError:
            if not self.config.global_.dynamic_interfaces or cfg.interface is None:
                raise
            if _exists(cfg.interface):
                raise
        log.warning(
            "%s: interface %s does not exist: waiting for it (dynamic_interfaces)",
            name,
            cfg.interface,
            extra=halo_log.fields(instance=name, reason=f"interface {cfg.interface} missing"),
        )
        self.waiting.setdefault(cfg.interface, {})[name] = cfg
        self.links.watch(cfg.interface)
        return None

    def _boot(self, inst: InstanceRuntime, *, since: float | None = None) -> None:
        """Start ``inst``; ``since``: at that earlier time, when the early sockets have been
        listening for it since then (:mod:`halo_core.vrrp.prelisten`)."""
        inst.step(fsm.Startup(), now=since)
        # The interface itself is tracked: down means FAULT (keepalived), unless
        # dont_track_primary.
        if not self.links.watch(inst.iface.name) and not inst.cfg.dont_track_primary:
            inst.step(fsm.FaultSet(f"interface {inst.iface.name} down"))
        if since is None:
            log.debug("%s: started on %s (pid %d)", inst.name, inst.iface.name, os.getpid())
        else:
            log.debug(
                "%s: started on %s (pid %d), listening since %.3f ms ago",
                inst.name,
                inst.iface.name,
                os.getpid(),
                (self.clock.now() - since) * 1000,
            )

    def start(self, prelistening: Prelistening | None = None) -> None:
        """Start every instance. With ``prelistening`` (``halo run``'s early sockets), those
        it covered start when it began to listen, and hear what it queued since."""
        from halo_core.netlink import LinkMonitor

        self.links = LinkMonitor(self._link_changed)
        self._check_sub = self.bus.subscribe(
            self.on_check_state, kinds=[CheckStateChanged.kind], name="vrrp:checks"
        )
        for name, cfg in self.config.vrrp_instances.items():
            self._create_or_wait(name, cfg)
        early = self._prelistened(prelistening) if prelistening is not None else set()
        t_listen = prelistening.t_listen if prelistening is not None else None
        for i, inst in enumerate(self.instances.values()):
            self._setup_tracking(inst)
            # the address owner does not listen: it is master from its start, now
            listened = inst.name in early and not inst.machine.owner
            # Apart in the file's order, as instances started one after the other are
            # (keepalived reads the clock per instance): deadlines closer than the loop's
            # timer batch expire in one pass in no set order, and which instance becomes
            # master first decides an interface's primary address (vrrp.localcheck) and a
            # sync group's order (vrrp.scripts). Half a millisecond is over TIMER_BATCH.
            since = t_listen + i * PRELISTEN_STEP if listened and t_listen is not None else None
            self._boot(inst, since=since)
        if prelistening is not None:
            self._replay(prelistening, early)
        self._poll_files()

    def _prelistened(self, prelistening: Prelistening) -> set[str]:
        """The instances the early sockets covered (see :func:`prelisten.covered_instances`):
        on an interface that existed when they began, not a VMAC's (created since)."""
        specs = {}
        for name, inst in self.instances.items():
            # a unicast instance's peers send to its source address
            unicast = inst.source.packed if inst.cfg.unicast_peer else None
            covered = inst.cfg.vmac_name is None and prelistening.covers(
                inst.family, inst.iface.name, inst.iface.index, unicast
            )
            specs[name] = ((inst.family, inst.iface.index), covered, inst.group)
        return prelisten.covered_instances(specs)

    def _replay(self, prelistening: Prelistening, early: set[str]) -> None:
        """Hand what the early sockets queued to the sockets of the instances they covered,
        in order, at each packet's receive time; then close them. Each engine socket skips
        its own copies of the packets replayed (those received before it opened)."""
        sockets = {
            (inst.family, inst.iface.index): inst.sock
            for name, inst in self.instances.items()
            if name in early
        }
        cutoffs = {key: sock.opened_at for key, sock in sockets.items()}
        heard = prelisten.to_replay(prelistening.drain(), cutoffs)
        prelistening.close()
        now = self.clock.now()
        wall = time.time() - now
        for h in heard:
            sockets[(h.family, h.index)].take(h.data, h.anc, h.addr, now, wall)
        for sock in sockets.values():
            sock.heard_before = sock.opened_at
        if early:
            log.debug(
                "pre-listening: %d of %d instances started %.1f ms ago, at %.6f (wall"
                " clock), when listening began; %d packets replayed",
                len(early),
                len(self.instances),
                (now - prelistening.t_listen) * 1000,
                prelistening.t_listen_wall,
                len(heard),
            )

    def reload_problems(self, new: HaloConfig) -> list[str]:
        """What would make :meth:`reload` fail part-way, found before anything changes: an
        instance to (re)start whose interface this host lacks (with ``dynamic_interfaces``
        such an instance waits for it instead). Touches nothing."""
        problems: list[str] = []
        if new.global_.dynamic_interfaces:
            return problems
        for name, cfg in new.vrrp_instances.items():
            current = self.instances.get(name)
            if current is not None and _identity(current.cfg) == _identity(cfg):
                continue  # kept, or updated in place: its interface is already open
            try:
                iface = cfg.resolved_interface()
            except OSError as exc:
                problems.append(f"{name}: {exc}")
                continue
            try:
                interface_info(iface)
            except OSError as exc:
                problems.append(f"{name}: interface {iface}: {exc.strerror or exc}")
        return problems

    def reload(self, new: HaloConfig) -> list[str]:
        """Apply a new configuration with as little disturbance as the RFC allows.

        An unchanged instance is not touched at all: no advert, no announcement, no address
        change. A changed one keeps its state when its identity (interface, VRID, version,
        address family, source) is the same: priority, tracking, timers, preemption and the
        address list change in place. Otherwise it steps down (priority 0) and a new one
        starts, as do added instances; removed ones step down. Returns what was done.
        """
        done: list[str] = []
        old = self.config
        self.config = new
        self.group_of = {m: g for g, sg in new.vrrp_sync_groups.items() for m in sg.group}
        for name in list(self.instances):
            if name not in new.vrrp_instances:
                inst = self.instances.pop(name)
                inst.removed = True
                inst.step(fsm.Shutdown())
                self._discard(inst)
                done.append(f"{name} removed")
        fresh: list[InstanceRuntime] = []
        for name, cfg in new.vrrp_instances.items():
            current = self.instances.get(name)
            if current is None:
                added = self._create_or_wait(name, cfg)
                if added is not None:
                    fresh.append(added)
                done.append(f"{name} added")
                continue
            group_changed = old.vrrp_sync_groups.get(
                current.group or ""
            ) != new.vrrp_sync_groups.get(self.group_of.get(name, ""))
            if (
                current.cfg == cfg
                and current.group == self.group_of.get(name)
                and not group_changed
            ):
                continue
            if _identity(current.cfg) == _identity(cfg):
                self._update(current, cfg)
                done.append(f"{name} updated in place")
            else:
                current.step(fsm.Shutdown())
                self._discard(current)
                del self.instances[name]
                fresh.append(self._create(name, cfg))
                done.append(f"{name} restarted (interface, VRID, version or source changed)")
        # Tracking is rebuilt for everyone: cheap, and references may have changed.
        self.check_watchers.clear()
        self.track_files.clear()
        for inst in self.instances.values():
            self._setup_tracking(inst)
        for inst in fresh:
            self._boot(inst)
        return done

    def _update(self, inst: InstanceRuntime, cfg: VrrpInstance) -> None:
        """Swap a running instance's configuration without a state change."""
        replacement = InstanceRuntime(
            inst.name,
            cfg,
            inst.iface,
            inst.sock,
            clock=self.clock,
            bus=self.bus,
            group=self.group_of.get(inst.name),
            on_state=self._sync,
            group_holds=self._group_holds,
            sender=inst.sender if inst.sender is not inst.sock else None,
            check_unicast_src=self.config.global_.check_unicast_src,
            looks=self.looks,
        )
        m = inst.machine
        interval = replacement.machine.master_adver_interval_cs
        replacement.machine = dataclasses.replace(
            m,
            config=replacement.machine.config,
            master_adver_interval_cs=interval
            if m.state is not fsm.State.BACKUP
            else m.master_adver_interval_cs,
        )
        replacement.counters = inst.counters
        replacement.tracks = inst.tracks
        replacement.track_faults = inst.track_faults
        inst.cancel_timer()
        inst.sock.receivers[cfg.virtual_router_id] = replacement
        inst.sock.retune()
        self.instances[inst.name] = replacement
        # Keep only the inputs still configured; the base priority may have moved.
        keys = (
            {f"check {t.check}" for t in cfg.track if t.check}
            | {f"interface {t.interface}" for t in cfg.track if t.interface}
            | {f"file {t.file}" for t in cfg.track if t.file}
        )
        replacement.tracks.updown = {
            k: v for k, v in replacement.tracks.updown.items() if k in keys
        }
        replacement.tracks.files = {k: v for k, v in replacement.tracks.files.items() if k in keys}
        replacement.reevaluate("configuration reloaded")
        replacement._arm()

    def _poll_files(self) -> None:
        # keepalived watches track files with inotify; a one-second poll is as prompt as
        # anyone writing such a file needs, and costs one read per file per second.
        self._file_timer = self.clock.call_at(self.clock.now() + 1.0, self._poll_files)
        for inst, t in self.track_files:
            assert t.file is not None
            value = read_track_file(t.file)
            key = f"file {t.file}"
            if inst.tracks.files.get(key, (None, None))[1] != value:
                inst.set_input(t, key, value)

    def _setup_tracking(self, inst: InstanceRuntime) -> None:
        tracks = list(inst.cfg.track)
        if inst.group is not None:
            tracks += self.config.vrrp_sync_groups[inst.group].track
        for t in tracks:
            if t.interface is not None:
                up = self.links.watch(t.interface)
                inst.set_input(t, f"interface {t.interface}", up)
            elif t.check is not None:
                tracked = self._with_check_weight(t)
                self.check_watchers.setdefault(t.check, []).append((inst, tracked))
                up = self.check_up(t.check)
                if up is not None:
                    inst.set_input(tracked, f"check {t.check}", up)
            elif t.file is not None:
                inst.set_input(t, f"file {t.file}", read_track_file(t.file))
                self.track_files.append((inst, t))

    def _link_changed(self, name: str, up: bool) -> None:
        if up and name in self.waiting:
            self._interface_appeared(name)
        if up and self.config.global_.dynamic_interfaces:
            self._interface_recreated(name)
        for inst in self.instances.values():
            if inst.iface.name == name and not inst.cfg.dont_track_primary:
                reason = f"interface {name} down"
                log.log(
                    logging.INFO if up else logging.WARNING,
                    "%s: interface %s is %s",
                    inst.name,
                    name,
                    "up" if up else "down",
                    extra=halo_log.fields(instance=inst.name, reason=reason if not up else None),
                )
                inst.step(fsm.FaultCleared(reason) if up else fsm.FaultSet(reason))
            for t in inst.cfg.track:
                if t.interface == name:
                    inst.set_input(t, f"interface {name}", up)

    def _interface_appeared(self, name: str) -> None:
        """dynamic_interfaces: start the instances that waited for ``name``."""
        for inst_name, cfg in self.waiting.pop(name, {}).items():
            if self.config.vrrp_instances.get(inst_name) != cfg:
                continue  # reloaded away (or changed) meanwhile
            try:
                inst = self._create(inst_name, cfg)
            except OSError as exc:
                log.error("%s: cannot start on %s: %s", inst_name, name, exc)
                continue
            log.info("%s: interface %s appeared: starting", inst_name, name)
            self._setup_tracking(inst)
            self._boot(inst)

    def _interface_recreated(self, name: str) -> None:
        """dynamic_interfaces: an interface deleted and created again has a new index, and
        the sockets bound to the old one hear nothing: its instances start again."""
        try:
            index = socket.if_nametoindex(name)
        except OSError:
            return
        stale = [i for i in self.instances.values() if i.iface.name == name]
        stale = [i for i in stale if i.iface.index != index]
        for inst in stale:
            log.info("%s: interface %s was recreated: restarting", inst.name, name)
            inst.step(fsm.Shutdown())
            self._discard(inst)
            del self.instances[inst.name]
        for inst in stale:
            self.waiting.setdefault(name, {})[inst.name] = inst.cfg
        if stale:
            self._interface_appeared(name)

    def _with_check_weight(self, t: Track) -> Track:
        """``t`` with its weight resolved, once, when tracking is built: the track's own,
        else the check's default (keepalived's vrrp_script weight)."""
        if t.weight is not None:
            return t
        configured = self.config.checks.get(t.check or "")
        config = configured.config if configured is not None else None
        weight = config.weight if isinstance(config, CheckerConfig) else 0
        return Track(check=t.check, weight=weight, reverse=t.reverse)

    def on_check_state(self, event: Event) -> None:
        """Feed a check's state (after rise/fall) to every instance tracking it."""
        if not isinstance(event, CheckStateChanged):
            return
        for inst, t in self.check_watchers.get(event.check, []):
            inst.set_input(t, f"check {event.check}", event.up)

    BACKEND_RETRY = 10.0
    """Seconds an instance stays in FAULT after a backend could not apply its state."""

    def on_backend_failed(self, event: Event) -> None:
        """A backend could not put this instance's state in the kernel (e.g. add a VIP): go
        to FAULT rather than claim what we cannot hold, and try again later - or, for a
        failure the backend watches itself (``until_cleared``), when it says it is over."""
        if isinstance(event, BackendCleared) and event.instance in self.instances:
            self.instances[event.instance].step(fsm.FaultCleared(f"backend {event.backend} failed"))
            return
        if not isinstance(event, BackendFailed) or event.instance not in self.instances:
            return
        inst = self.instances[event.instance]
        reason = f"backend {event.backend} failed"
        if reason in inst.machine.fault_reasons:
            return
        log.error(
            "%s: backend %s: %s",
            inst.name,
            event.backend,
            event.error,
            extra=halo_log.fields(instance=inst.name, backend=event.backend, reason=event.error),
        )
        inst.step(fsm.FaultSet(reason))
        if not event.until_cleared:
            self.clock.call_at(
                self.clock.now() + self.BACKEND_RETRY, lambda: inst.step(fsm.FaultCleared(reason))
            )

    def _sync(self, inst: InstanceRuntime, change: fsm.StateChanged, forced: bool) -> None:
        """keepalived's sync groups: a member's own transition carries the others along."""
        if inst.group is None:
            return
        if not forced and change.new in (fsm.State.MASTER, fsm.State.BACKUP, fsm.State.FAULT):
            self._carry_group(inst, change)
        self._group_state(inst.group, change.reason)

    def _group_holds(self, inst: InstanceRuntime) -> bool:
        """keepalived 2.2.7's ``vrrp_sync_can_goto_master`` (vrrp_sync.c), asked when a
        BACKUP member's Master_Down_Timer expires: unless the group is MASTER, the member
        becomes MASTER only if every other member wants MASTER too; else it is held in
        BACKUP, wanting MASTER. So a group goes MASTER when the last of its members' timers
        expires, that member first (then the others, see :meth:`_carry_group`). Timers
        that expire together expire in the order they were started, the file's."""
        if inst.group is None or self.group_states.get(inst.group) == fsm.State.MASTER.value:
            return False
        group = self.config.vrrp_sync_groups.get(inst.group)
        if group is None:
            return False
        for name in group.group:
            other = self.instances.get(name)
            if other is not None and other is not inst and not other.wants_master:
                return True
        return False

    def _group_state(self, group: str, reason: str) -> None:
        members = [i for i in self.instances.values() if i.group == group]
        states = {STOP if i.state is fsm.State.INITIALIZE else i.state.value for i in members}
        if len(states) != 1:
            return
        (new,) = states
        old = self.group_states.get(group, fsm.State.INITIALIZE.value)
        if new == old:
            return
        self.group_states[group] = new
        log.log(
            transition_level(old, new),
            "%s: group entering %s state",
            group,
            new,
            extra=halo_log.fields(group=group, from_state=old, to_state=new, reason=reason),
        )
        self.bus.publish(
            SyncGroupStateChanged(
                group=group, old=old, new=new, members=tuple(i.name for i in members), reason=reason
            )
        )

    def _carry_group(self, inst: InstanceRuntime, change: fsm.StateChanged) -> None:
        """The other members follow, in the order of the group's list (keepalived's
        ``vrrp_sync_master``/``vrrp_sync_backup`` walk ``sgroup->vrrp_instances``)."""
        assert inst.group is not None
        group = self.config.vrrp_sync_groups.get(inst.group)
        names = group.group if group is not None else list(self.instances)
        for other in [self.instances[n] for n in names if n in self.instances]:
            if other is inst or other.group != inst.group or other.state is change.new:
                continue
            other.step(
                fsm.ForceState(
                    change.new, f"sync group {inst.group}: {inst.name} is {change.new.value}"
                ),
                forced=True,
            )

    def stop(self) -> None:
        """Step every instance down (a priority-0 advert from each master) and close sockets."""
        for inst in self.instances.values():
            inst.step(fsm.Shutdown())
            inst.cancel_timer()
            if inst.sender is not inst.sock:
                inst.sender.close()
        if self._vmacs is not None:
            self._vmacs.close()
        if self._file_timer is not None:
            self._file_timer.cancel()
        if self._check_sub is not None:
            self.bus.unsubscribe(self._check_sub)
        if self.links is not None:
            self.links.close()
        self.transport.close()


def _identity(cfg: VrrpInstance) -> tuple[Any, ...]:
    """What cannot change without becoming another virtual router."""
    return (
        cfg.interface,
        cfg.virtual_router_id,
        cfg.version,
        family_of(cfg),
        cfg.unicast_src_ip,
        cfg.vmac_name,
        cfg.vmac_xmit_base,
    )


def _exists(interface: str) -> bool:
    try:
        socket.if_nametoindex(interface)
    except OSError:
        return False
    return True


def read_track_file(path: str) -> int:
    """keepalived's track_file: the file holds an integer; missing or unreadable counts as 0."""
    try:
        with open(path) as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


__all__ = ["STOP", "InstanceRuntime", "VrrpEngine", "family_of"]
