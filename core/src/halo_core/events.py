"""The events halo publishes on its bus.

Events are immutable records. Each has a ``source`` (the instance, check, pool or backend it
is about): the bus delivers one source's events to a subscriber in publication order, while
different sources proceed independently. ``kind`` is the short name notifier filters use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event. ``time`` is wall-clock seconds (for humans and notifications)."""

    kind: ClassVar[str] = "event"
    time: float = field(default_factory=time.time)

    @property
    def source(self) -> str:
        return self.kind


@dataclass(frozen=True, slots=True, kw_only=True)
class VrrpStateChanged(Event):
    """A VRRP instance (or a sync group, with ``group`` set) changed state."""

    kind: ClassVar[str] = "vrrp_state"
    instance: str
    old: str
    new: str
    priority: int
    reason: str
    group: str | None = None
    interface: str | None = None
    vrid: int | None = None
    removed: bool = False
    """Set on the STOP of an instance a reload removed (keepalived reports those as FAULT,
    or DELETED where asked to)."""

    @property
    def source(self) -> str:
        return f"vrrp:{self.instance}"


@dataclass(frozen=True, slots=True, kw_only=True)
class VrrpAnnounce(Event):
    """A MASTER wants its addresses announced again now (gratuitous ARP / unsolicited NA):
    e.g. it met another master after a partition healed and won."""

    kind: ClassVar[str] = "vrrp_announce"
    instance: str
    reason: str

    @property
    def source(self) -> str:
        return f"vrrp:{self.instance}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PriorityChanged(Event):
    """A VRRP instance's effective priority changed because a tracked input moved."""

    kind: ClassVar[str] = "vrrp_priority"
    instance: str
    old: int
    new: int
    reason: str

    @property
    def source(self) -> str:
        return f"vrrp:{self.instance}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResultEvent(Event):
    """A check finished one probe. ``up`` is the check's state after rise/fall."""

    kind: ClassVar[str] = "check_result"
    check: str
    ok: bool
    up: bool
    message: str = ""
    latency: float = 0.0

    @property
    def source(self) -> str:
        return f"check:{self.check}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckStateChanged(Event):
    """A check went up or down (after rise/fall)."""

    kind: ClassVar[str] = "check_state"
    check: str
    up: bool
    message: str = ""

    @property
    def source(self) -> str:
        return f"check:{self.check}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RealServerChanged(Event):
    """A real server of a virtual service went up or down."""

    kind: ClassVar[str] = "real_server"
    virtual_server: str
    real_server: str
    up: bool
    weight: int
    reason: str = ""

    @property
    def source(self) -> str:
        return f"vs:{self.virtual_server}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendApplied(Event):
    """A backend applied a change to the kernel."""

    kind: ClassVar[str] = "backend_applied"
    backend: str
    detail: str

    @property
    def source(self) -> str:
        return f"backend:{self.backend}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendFailed(Event):
    """A backend could not apply a change. ``instance`` is set when the failure concerns a
    VRRP instance (the instance then goes to FAULT rather than claim what it can't hold)."""

    kind: ClassVar[str] = "backend_failed"
    backend: str
    error: str
    instance: str | None = None
    until_cleared: bool = False
    """False: the instance leaves FAULT after a while and tries again (an address that
    could not be added). True: it stays in FAULT until the backend publishes
    :class:`BackendCleared` for it (a failure the backend watches itself, e.g. a routing
    daemon it keeps restarting), so that it never claims MASTER in between."""

    @property
    def source(self) -> str:
        return f"backend:{self.backend}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendCleared(Event):
    """The failure a backend reported with ``until_cleared`` for ``instance`` is over: the
    instance may leave FAULT."""

    kind: ClassVar[str] = "backend_cleared"
    backend: str
    instance: str

    @property
    def source(self) -> str:
        return f"backend:{self.backend}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigReloaded(Event):
    """The daemon applied a new configuration."""

    kind: ClassVar[str] = "config_reloaded"
    path: str
    summary: str


@dataclass(frozen=True, slots=True)
class PoolMember:
    """One entry a load balancer should have for a virtual service."""

    address: str
    port: int | None
    weight: int
    sorry: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolChanged(Event):
    """The desired state of one virtual service: every member the load balancer should
    have, with its weight (0 for an inhibited failed server). Backends apply the whole
    state, so a missed event is repaired by the next one. ``service`` is the
    :class:`~halo_core.config.model.VirtualServer` config."""

    kind: ClassVar[str] = "pool"
    virtual_server: str
    service: Any
    members: tuple[PoolMember, ...]
    quorum: bool
    reason: str

    @property
    def source(self) -> str:
        return f"vs:{self.virtual_server}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncGroupStateChanged(Event):
    """All members of a VRRP sync group reached a new common state (keepalived's group
    notify: ``GROUP name STATE``)."""

    kind: ClassVar[str] = "vrrp_group_state"
    group: str
    old: str
    new: str
    members: tuple[str, ...]
    reason: str

    @property
    def source(self) -> str:
        return f"vrrp-group:{self.group}"
