"""A read-only record of the VRRP engine's state: what plugins (the status API, systemd's
STATUS=) read about VRRP instances.

The engine lives in the VRRP process; plugins run in the worker process (see
docs/processes.md). :func:`of_engine` copies the engine's state into plain data, which
crosses the process boundary as JSON (:func:`to_wire` / :func:`from_wire`) and reads the
same on both sides. Timers travel as absolute deadlines on the monotonic clock (the same
clock in every process of the host), so "time left" is computed when it is read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from halo_core.vrrp.engine import VrrpEngine


@dataclass(frozen=True, slots=True)
class TrackStatus:
    """One tracked input's reading: ``up`` for checks and interfaces, ``value`` for files."""

    input: str
    weight: int
    reverse: bool
    up: bool | None = None
    value: int | None = None


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """One VRRP instance as the engine sees it."""

    name: str
    state: str
    interface: str
    vrid: int
    version: int
    priority: int
    base_priority: int
    advert_interval: float
    master_down_interval: float
    master: str | None
    master_priority: int | None
    faults: list[str]
    group: str | None
    counters: dict[str, int]
    source: str
    virtual_ipaddress: list[str]
    preempt: bool
    master_advert_interval: float
    skew_time: float
    advert_deadline: float | None
    """Monotonic time the next advert is due (MASTER), else None."""
    master_down_deadline: float | None
    """Monotonic time the master is declared down (BACKUP), else None."""
    tracks: list[TrackStatus] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class VrrpStatus:
    """Every instance and sync group of the VRRP engine."""

    instances: dict[str, InstanceStatus]
    group_states: dict[str, str]
    """Each sync group's common state (INIT until its members agree)."""
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The VRRP process's backends' own status(), when read from another process."""
    bus: dict[str, Any] = field(default_factory=dict)
    """The VRRP process's bus counters, when read from another process."""


def of_engine(engine: VrrpEngine) -> VrrpStatus:
    """The engine's state now, copied out (nothing keeps a reference to the engine)."""
    out: dict[str, InstanceStatus] = {}
    for inst in list(engine.instances.values()):
        m = inst.machine
        tracks = [
            TrackStatus(key, tracked.weight, tracked.reverse, up=up)
            for key, (tracked, up) in sorted(inst.tracks.updown.items())
        ]
        tracks += [
            TrackStatus(key, tfile.weight, tfile.reverse, value=value)
            for key, (tfile, value) in sorted(inst.tracks.files.items())
        ]
        out[inst.name] = InstanceStatus(
            name=inst.name,
            state=m.state.value,
            interface=inst.iface.name,
            vrid=inst.cfg.virtual_router_id,
            version=inst.cfg.version,
            priority=m.priority,
            base_priority=inst.cfg.priority,
            advert_interval=m.advert_interval,
            master_down_interval=m.master_down_interval,
            master=str(m.master_address) if m.master_address else None,
            master_priority=m.master_priority,
            faults=sorted(m.fault_reasons),
            group=inst.group,
            counters={k: int(v) for k, v in inst.counters.items()},
            source=str(inst.source),
            virtual_ipaddress=[str(v) for v in inst.cfg.virtual_ipaddress],
            preempt=m.preempt_mode,
            master_advert_interval=m.master_adver_interval_cs / 100,
            skew_time=m.skew_time,
            advert_deadline=m.adver_timer,
            master_down_deadline=m.master_down_timer,
            tracks=tracks,
        )
    groups = engine.config.vrrp_sync_groups
    return VrrpStatus(out, {name: engine.group_states.get(name, "INIT") for name in groups})


def to_wire(status: VrrpStatus) -> dict[str, Any]:
    return asdict(status)


def from_wire(data: dict[str, Any]) -> VrrpStatus:
    """The inverse of :func:`to_wire`; raises KeyError/TypeError on a malformed record."""
    instances = {}
    for name, d in data["instances"].items():
        fields = dict(d)
        fields["tracks"] = [TrackStatus(**t) for t in d["tracks"]]
        instances[name] = InstanceStatus(**fields)
    backends = {str(k): dict(v) for k, v in data.get("backends", {}).items()}
    return VrrpStatus(instances, dict(data["group_states"]), backends, dict(data.get("bus", {})))
