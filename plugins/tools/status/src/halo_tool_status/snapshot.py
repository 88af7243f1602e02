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
    from halo_core.vrrp.status import InstanceStatus

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
        "pid": daemon.main_pid,
        "router_id": g.router_id or os.uname().nodename,
        "config": daemon.config.path,
        "started": round(started, 3),
        "uptime": round(time.time() - started, 3),
        "reloads": reloads,
        "hook_failures": dict(daemon.hook_failures),
    }


def _remaining(deadline: float | None, now: float) -> float | None:
    return None if deadline is None else round(max(0.0, deadline - now), 4)


def _instance(inst: InstanceStatus, now: float) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": inst.name,
        "state": inst.state,
        "interface": inst.interface,
        "vrid": inst.vrid,
        "version": inst.version,
        "priority": inst.priority,
        "base_priority": inst.base_priority,
        "advert_interval": inst.advert_interval,
        "master_down_interval": inst.master_down_interval,
        "master": inst.master,
        "master_priority": inst.master_priority,
        "faults": list(inst.faults),
        "group": inst.group,
    }
    d = jsonable(d)
    d["counters"] = dict(inst.counters)
    d["source"] = inst.source
    d["virtual_ipaddress"] = list(inst.virtual_ipaddress)
    d["preempt"] = inst.preempt
    d["timers"] = {
        "advert_interval": inst.advert_interval,
        "master_advert_interval": inst.master_advert_interval,
        "master_down_interval": round(inst.master_down_interval, 4),
        "skew_time": round(inst.skew_time, 4),
        "advert_timer_in": _remaining(inst.advert_deadline, now),
        "master_down_timer_in": _remaining(inst.master_down_deadline, now),
    }
    tracks: list[dict[str, Any]] = []
    for t in inst.tracks:
        reading: dict[str, Any] = {"up": t.up} if t.value is None else {"value": t.value}
        tracks.append({"input": t.input, **reading, "weight": t.weight, "reverse": t.reverse})
    d["tracks"] = tracks
    return d


def instances(daemon: Daemon) -> list[dict[str, Any]]:
    """Each VRRP instance: the engine's own status plus its timers, addresses and inputs
    (read from the VRRP process when the daemon runs as two, see docs/processes.md)."""
    status = daemon.vrrp_status()
    if status is None:
        return []
    now = daemon.clock.now()
    return [_instance(inst, now) for inst in status.instances.values()]


def sync_groups(daemon: Daemon) -> list[dict[str, Any]]:
    status = daemon.vrrp_status()
    if status is None:
        return []
    groups = daemon.config.model.vrrp_sync_groups
    return [
        {
            "name": name,
            "state": status.group_states.get(name, "INIT"),
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
        "state": "DISABLED" if runner.disabled else "UP" if runner.up else "DOWN",
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
        # why the check cannot run at all (keepalived disables it; tracking ignores it)
        "disabled": runner.disabled,
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
    vrrp = daemon.vrrp_status()  # the VRRP process's backends (those providing addresses)
    for name, status in (vrrp.backends if vrrp is not None else {}).items():
        out.append({"name": name, "type": types.get(name), "status": jsonable(status)})
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
    """This process's bus, plus the VRRP process's when VRRP runs in its own."""
    out = daemon.bus.status()
    vrrp = daemon.vrrp_status()
    if vrrp is not None and vrrp.bus:
        out["published"] += int(vrrp.bus.get("published", 0))
        out["subscribers"] += list(vrrp.bus.get("subscribers", []))
    return out


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
