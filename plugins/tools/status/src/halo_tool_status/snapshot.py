"""The daemon's state as plain JSON-able data: what the status API serves and ``/metrics``
is rendered from.

Everything here reads the running objects and copies numbers and strings out; nothing keeps
a reference, so a response never changes while it is being written, and nothing here can
change the daemon. Plugin objects (backends, notifiers) report through their ``status()``
(empty unless the plugin overrides it); whatever they return is made JSON-safe, never
trusted to be.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from halo_core import version
from halo_core.config.model import VirtualServer
from halo_core.events import Event
from halo_core.plugin_api import Backend, Notifier

if TYPE_CHECKING:
    from halo_core.checks import CheckRunner
    from halo_core.daemon import Daemon
    from halo_core.vrrp.engine import InstanceRuntime

log = logging.getLogger("halo.status")


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON types: addresses and other objects become strings; dataclasses
    and mappings dicts; anything deeper than a sane nesting is cut short."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if depth > 8:
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth + 1)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [jsonable(v, depth + 1) for v in items]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: jsonable(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)
        }
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _service_summary(vs: object) -> dict[str, Any] | None:
    """PoolChanged.service is the whole VirtualServer config, whose real servers carry
    checker settings (passwords, keys): an event stream gets the service's identity only."""
    if not isinstance(vs, VirtualServer):
        return None
    return {
        "address": jsonable(vs.address),
        "port": vs.port,
        "fwmark": vs.fwmark,
        "protocol": vs.protocol,
        "lb_algo": vs.lb_algo,
        "lb_kind": vs.lb_kind,
        "name": vs.label,
    }


def event_dict(event: Event) -> dict[str, Any]:
    """One bus event as JSON: its kind, source and fields."""
    out: dict[str, Any] = {"kind": event.kind, "source": event.source}
    if dataclasses.is_dataclass(event):
        for f in dataclasses.fields(event):
            value = getattr(event, f.name)
            out[f.name] = _service_summary(value) if f.name == "service" else jsonable(value)
    return out


# ---------------------------------------------------------------------------------- pieces


def daemon_info(daemon: Daemon, started: float, reloads: int) -> dict[str, Any]:
    g = daemon.config.model.global_
    return {
        "version": version(),
        "pid": os.getpid(),
        "router_id": g.router_id or os.uname().nodename,
        "config": daemon.config.path,
        "started": round(started, 3),
        "uptime": round(time.time() - started, 3),
        "reloads": reloads,
        "hook_failures": dict(daemon.hook_failures),
    }


def _remaining(deadline: float | None, now: float) -> float | None:
    return None if deadline is None else round(max(0.0, deadline - now), 4)


def _instance(inst: InstanceRuntime) -> dict[str, Any]:
    m = inst.machine
    return {
        "name": inst.name,
        "state": m.state.value,
        "interface": inst.iface.name,
        "vrid": inst.cfg.virtual_router_id,
        "version": inst.cfg.version,
        "priority": m.priority,
        "base_priority": inst.cfg.priority,
        "advert_interval": m.advert_interval,
        "master_down_interval": m.master_down_interval,
        "master": str(m.master_address) if m.master_address else None,
        "master_priority": m.master_priority,
        "faults": sorted(m.fault_reasons),
        "group": inst.group,
    }


def instances(daemon: Daemon) -> list[dict[str, Any]]:
    """Each VRRP instance: the engine's own status plus its timers, addresses and inputs."""
    if daemon.vrrp is None:
        return []
    now = daemon.clock.now()
    out = []
    for inst in list(daemon.vrrp.instances.values()):
        d = jsonable(_instance(inst))
        m = inst.machine
        d["counters"] = {k: int(v) for k, v in inst.counters.items()}
        d["source"] = str(inst.source)
        d["virtual_ipaddress"] = [str(v) for v in inst.cfg.virtual_ipaddress]
        d["preempt"] = m.preempt_mode
        d["timers"] = {
            "advert_interval": m.advert_interval,
            "master_advert_interval": m.master_adver_interval_cs / 100,
            "master_down_interval": round(m.master_down_interval, 4),
            "skew_time": round(m.skew_time, 4),
            "advert_timer_in": _remaining(m.adver_timer, now),
            "master_down_timer_in": _remaining(m.master_down_timer, now),
        }
        tracks: list[dict[str, Any]] = []
        for key, (tracked, up) in sorted(inst.tracks.updown.items()):
            tracks.append(
                {"input": key, "up": up, "weight": tracked.weight, "reverse": tracked.reverse}
            )
        for key, (tfile, value) in sorted(inst.tracks.files.items()):
            tracks.append(
                {"input": key, "value": value, "weight": tfile.weight, "reverse": tfile.reverse}
            )
        d["tracks"] = tracks
        out.append(d)
    return out


def sync_groups(daemon: Daemon) -> list[dict[str, Any]]:
    if daemon.vrrp is None:
        return []
    groups = daemon.vrrp.config.vrrp_sync_groups
    return [
        {
            "name": name,
            "state": daemon.vrrp.group_states.get(name, "INIT"),
            "members": list(sg.group),
        }
        for name, sg in groups.items()
    ]


def _check(runner: CheckRunner) -> dict[str, Any]:
    s = runner.stats
    last = s.last_result
    return {
        "name": runner.name,
        "type": runner.ptype.name,
        "up": runner.up,
        "state": "UP" if runner.up else "DOWN",
        "runs": s.runs,
        "successes": s.successes,
        "failures": s.failures,
        "timeouts": s.timeouts,
        "errors": s.errors,
        "transitions": s.transitions,
        "last_ok": last.ok if last else None,
        "last_message": last.message if last else None,
        "last_latency": round(s.last_latency, 6),
        "dynamic_weight": runner.dynamic_weight,
        # why the checker could not be built (it then fails every round): null when it runs
        "start_error": runner.start_error,
    }


def checks(daemon: Daemon) -> list[dict[str, Any]]:
    return [jsonable(_check(runner)) for runner in list(daemon.checks.values())]


def pools(daemon: Daemon) -> list[dict[str, Any]]:
    """The real-server pools, from halo-engine-pools (none when it is not installed)."""
    try:
        from halo_engine_pools import pools as running_pools
    except ImportError:
        return []
    out = []
    for pool in running_pools(daemon):
        d = {
            "name": pool.label,
            "quorum": pool.quorum,
            "quorum_needed": pool.vs.quorum,
            "live_weight": pool.live_weight(),
            "servers": [
                {
                    "server": s.label,
                    "up": s.up,
                    "state": "UP" if s.up else "DOWN",
                    "weight": s.weight,
                    "checks": [_check(r) for r in s.checks.values()],
                }
                for s in pool.servers
            ],
            "members": [
                {"address": m.address, "port": m.port, "weight": m.weight, "sorry": m.sorry}
                for m in pool.members()
            ],
        }
        out.append(jsonable(d))
    return out


def _plugin_status(kind: str, name: str, obj: Backend | Notifier) -> dict[str, Any]:
    """A plugin object's own ``status()``, isolated: one that raises is reported, not fatal."""
    out: dict[str, Any] = {"name": name, "type": None}
    try:
        status: object = obj.status()
    except Exception as exc:  # plugin territory: the API must still answer
        log.debug("%s %s: status() failed: %s", kind, name, exc)
        status = {"error": f"status() failed: {type(exc).__name__}: {exc}"}
    out["status"] = jsonable(status) if isinstance(status, Mapping) else {"value": str(status)}
    return out


def backends(daemon: Daemon) -> list[dict[str, Any]]:
    types = {n: c.type for n, c in daemon.backend_configs().items()}
    out = []
    for name, obj in list(daemon.backends.items()):
        d = _plugin_status("backend", name, obj)
        d["type"] = types.get(name)
        out.append(d)
    return out


def notifiers(daemon: Daemon) -> list[dict[str, Any]]:
    types = {n: c.type for n, c in daemon.config.model.notifiers.items()}
    out = []
    for name, obj in list(daemon.notifiers.items()):
        d = _plugin_status("notifier", name, obj)
        d["type"] = types.get(name)
        out.append(d)
    return out


def bus(daemon: Daemon) -> dict[str, Any]:
    return {
        "published": daemon.bus.published,
        "subscribers": [
            {
                "name": sub.name,
                "kinds": sorted(sub.kinds) if sub.kinds is not None else None,
                "queued": sum(len(lane) for lane in sub.lanes.values()),
                "delivered": sub.stats.delivered,
                "failed": sub.stats.failed,
                "timed_out": sub.stats.timed_out,
                "dropped": sub.stats.dropped,
                "last_error": sub.stats.last_error,
            }
            for sub in daemon.bus.subscriptions
        ],
    }


def full(daemon: Daemon, started: float, reloads: int) -> dict[str, Any]:
    """Everything at once (``GET /v1/status``, what ``halo status`` shows)."""
    return {
        "halo": daemon_info(daemon, started, reloads),
        "instances": instances(daemon),
        "sync_groups": sync_groups(daemon),
        "checks": checks(daemon),
        "pools": pools(daemon),
        "backends": backends(daemon),
        "notifiers": notifiers(daemon),
        "bus": bus(daemon),
    }
