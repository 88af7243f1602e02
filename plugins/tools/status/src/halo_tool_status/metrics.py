"""``/metrics``: the status snapshot in the Prometheus text exposition format (0.0.4).

Rendered from the same snapshot the JSON endpoints serve, so the two never disagree.
Counters that have not happened yet are written as 0 rather than left out: a series that
appears only after its first increment makes ``rate()`` miss that increment.
"""

from __future__ import annotations

import math
import os
import resource
from collections.abc import Iterable, Mapping
from typing import Any

from halo_core.vrrp.fsm import State
from halo_core.vrrp.packet import RejectReason

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Engine counter name → metric name (without the halo_vrrp_ prefix and _total suffix).
VRRP_COUNTERS = {
    "adverts_sent": "adverts sent",
    "adverts_received": "adverts accepted",
    "repeats_in_kernel": "of the adverts accepted, repeats the kernel's filter counted unread",
    "priority_zero_sent": "priority-0 adverts sent (stepping down)",
    "priority_zero_received": "priority-0 adverts received",
    "became_master": "transitions to MASTER",
    "released_master": "transitions out of MASTER",
    "announce_requests": "requests to announce the addresses again",
}
REJECT_REASONS = [r.value for r in RejectReason]
VRRP_STATES = [s.value for s in State] + ["STOP"]
CHECK_COUNTERS = ("runs", "successes", "failures", "timeouts", "errors", "transitions")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class Exposition:
    """Metric families in the order first added, each with its HELP, TYPE and samples."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def add(
        self,
        name: str,
        kind: str,
        help_text: str,
        value: float | None,
        labels: Mapping[str, Any] | None = None,
    ) -> None:
        family = self._families.setdefault(name, (kind, help_text, []))
        if value is None:
            return
        label_text = ""
        if labels:
            label_text = "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"
        family[2].append(f"{name}{label_text} {_number(value)}")

    def render(self) -> str:
        lines: list[str] = []
        for name, (kind, help_text, samples) in self._families.items():
            lines.append(f"# HELP {name} {_escape(help_text)}")
            lines.append(f"# TYPE {name} {kind}")
            lines += samples
        return "\n".join(lines) + "\n"


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, int | float):
        return value
    return None


def _counters(status: Mapping[str, Any]) -> list[tuple[str, float]]:
    counters = status.get("counters")
    if not isinstance(counters, Mapping):
        return []
    out = []
    for key, value in sorted(counters.items()):
        number = _number_or_none(value)
        if number is not None and not isinstance(value, bool):
            out.append((str(key), number))
    return out


def _all_checks(snap: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    yield from snap.get("checks", [])
    for pool in snap.get("pools", []):
        for server in pool.get("servers", []):
            yield from server.get("checks", [])


def _process(out: Exposition) -> None:
    """The standard process_* series (as prometheus_client names them): the node has a
    memory budget, and this is where an operator watches it."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.add(
        "process_cpu_seconds_total",
        "counter",
        "user and system CPU time spent, seconds",
        usage.ru_utime + usage.ru_stime,
    )
    rss = None
    try:
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    out.add("process_resident_memory_bytes", "gauge", "resident memory size, bytes", rss)
    try:
        fds: int | None = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = None
    out.add("process_open_fds", "gauge", "open file descriptors", fds)


def render(snap: Mapping[str, Any]) -> str:
    """The exposition text for a :func:`halo_tool_status.snapshot.full` snapshot."""
    out = Exposition()
    info = snap["halo"]
    out.add(
        "halo_info",
        "gauge",
        "halo's version and router id (always 1)",
        1,
        {"version": info["version"], "router_id": info["router_id"]},
    )
    out.add(
        "halo_start_time_seconds", "gauge", "when the daemon started, Unix time", info["started"]
    )
    out.add(
        "halo_config_reloads_total",
        "counter",
        "configurations applied by reload",
        info["reloads"],
    )
    out.add("halo_plugin_hook_failures_total", "counter", "plugin hooks that failed", None)
    for plugin, n in sorted(info["hook_failures"].items()):
        out.add("halo_plugin_hook_failures_total", "counter", "", n, {"plugin": plugin})
    _process(out)

    # ------------------------------------------------------------------ VRRP
    insts = snap.get("instances", [])
    helps = {
        "halo_vrrp_instance_info": "a VRRP instance's identity (always 1)",
        "halo_vrrp_state": "1 for the instance's current state, 0 for the others",
        "halo_vrrp_priority": "effective priority (base adjusted by tracked inputs)",
        "halo_vrrp_base_priority": "configured priority",
        "halo_vrrp_master_priority": "priority in the last advert heard from the master",
        "halo_vrrp_advert_interval_seconds": "configured advertisement interval",
        "halo_vrrp_master_down_interval_seconds": "time without adverts before taking over",
        "halo_vrrp_faults": "reasons currently holding the instance in FAULT",
    }
    for name, text in helps.items():
        out.add(name, "gauge", text, None)
    for counter, text in VRRP_COUNTERS.items():
        out.add(f"halo_vrrp_{counter}_total", "counter", text, None)
    out.add("halo_vrrp_adverts_rejected_total", "counter", "adverts refused, by reason", None)
    for d in insts:
        # Not "instance": Prometheus gives every target an `instance` label of its own.
        who = {"vrrp_instance": d["name"]}
        out.add(
            "halo_vrrp_instance_info",
            "gauge",
            "",
            1,
            {
                **who,
                "interface": d["interface"],
                "vrid": d["vrid"],
                "version": d["version"],
                "group": d.get("group") or "",
            },
        )
        for state in VRRP_STATES:
            # The VRID is here too, so that "two masters for one VRID across nodes" is a
            # plain count: count by (vrid) (halo_vrrp_state{state="MASTER"} == 1) > 1
            out.add(
                "halo_vrrp_state",
                "gauge",
                "",
                int(d["state"] == state),
                {**who, "vrid": d["vrid"], "state": state},
            )
        out.add("halo_vrrp_priority", "gauge", "", d["priority"], who)
        out.add("halo_vrrp_base_priority", "gauge", "", d["base_priority"], who)
        out.add("halo_vrrp_master_priority", "gauge", "", d.get("master_priority"), who)
        out.add("halo_vrrp_advert_interval_seconds", "gauge", "", d["advert_interval"], who)
        out.add(
            "halo_vrrp_master_down_interval_seconds", "gauge", "", d["master_down_interval"], who
        )
        out.add("halo_vrrp_faults", "gauge", "", len(d.get("faults", [])), who)
        counters = d.get("counters", {})
        for counter in VRRP_COUNTERS:
            out.add(f"halo_vrrp_{counter}_total", "counter", "", counters.get(counter, 0), who)
        for reason in REJECT_REASONS:
            out.add(
                "halo_vrrp_adverts_rejected_total",
                "counter",
                "",
                counters.get(reason, 0),
                {**who, "reason": reason},
            )
    out.add("halo_vrrp_sync_group_state", "gauge", "1 for the group's current state", None)
    for g in snap.get("sync_groups", []):
        for state in [*VRRP_STATES, "INIT"]:
            out.add(
                "halo_vrrp_sync_group_state",
                "gauge",
                "",
                int(g["state"] == state),
                {"group": g["name"], "state": state},
            )

    # ------------------------------------------------------------------ checks
    out.add("halo_check_up", "gauge", "1 while the check is up (after rise/fall)", None)
    for counter in CHECK_COUNTERS:
        out.add(f"halo_check_{counter}_total", "counter", f"check {counter}", None)
    out.add("halo_check_latency_seconds", "gauge", "duration of the last probe", None)
    out.add(
        "halo_check_start_failed",
        "gauge",
        "1 for a check whose checker could not be built, with the reason (it fails every round)",
        None,
    )
    for c in _all_checks(snap):
        who = {"check": c["name"], "type": c.get("type") or ""}
        out.add("halo_check_up", "gauge", "", int(bool(c.get("up"))), who)
        for counter in CHECK_COUNTERS:
            out.add(f"halo_check_{counter}_total", "counter", "", c.get(counter, 0), who)
        out.add("halo_check_latency_seconds", "gauge", "", c.get("last_latency"), who)
        if c.get("start_error"):
            out.add("halo_check_start_failed", "gauge", "", 1, {**who, "reason": c["start_error"]})

    # ------------------------------------------------------------------ pools
    for name, text in (
        ("halo_pool_quorum", "1 while the virtual server has its quorum"),
        ("halo_pool_live_weight", "sum of the weights of the live real servers"),
        ("halo_pool_quorum_needed", "configured quorum"),
        ("halo_real_server_up", "1 while the real server is up"),
        ("halo_real_server_weight", "the real server's weight in the load balancer"),
    ):
        out.add(name, "gauge", text, None)
    for p in snap.get("pools", []):
        vs = {"virtual_server": p["name"]}
        out.add("halo_pool_quorum", "gauge", "", int(bool(p.get("quorum"))), vs)
        out.add("halo_pool_live_weight", "gauge", "", p.get("live_weight"), vs)
        out.add("halo_pool_quorum_needed", "gauge", "", p.get("quorum_needed"), vs)
        for s in p.get("servers", []):
            who = {**vs, "server": s["server"]}
            out.add("halo_real_server_up", "gauge", "", int(bool(s.get("up"))), who)
            out.add("halo_real_server_weight", "gauge", "", s.get("weight"), who)

    # ------------------------------------------------------------------ plugins, bus
    # Backends report counters in their status(): for the whole backend ("counters") and per
    # VRRP instance ("instances": {name: {"counters": ...}}), as the vip backend does.
    out.add("halo_backend_counter_total", "counter", "a backend's own counters", None)
    out.add(
        "halo_backend_instance_counter_total",
        "counter",
        "a backend's counters for one VRRP instance",
        None,
    )
    for b in snap.get("backends", []):
        status = b.get("status", {})
        for key, value in _counters(status):
            out.add(
                "halo_backend_counter_total",
                "counter",
                "",
                value,
                {"backend": b["name"], "counter": key},
            )
        instances = status.get("instances")
        if isinstance(instances, Mapping):
            for inst, detail in sorted(instances.items()):
                if not isinstance(detail, Mapping):
                    continue
                for key, value in _counters(detail):
                    out.add(
                        "halo_backend_instance_counter_total",
                        "counter",
                        "",
                        value,
                        {"backend": b["name"], "vrrp_instance": inst, "counter": key},
                    )
    out.add("halo_notifier_status", "untyped", "numbers a notifier reports about itself", None)
    for n in snap.get("notifiers", []):
        for key, value in sorted(n.get("status", {}).items()):
            if _number_or_none(value) is not None:
                out.add(
                    "halo_notifier_status",
                    "untyped",
                    "",
                    _number_or_none(value),
                    {"notifier": n["name"], "key": key},
                )
    bus = snap.get("bus", {})
    out.add(
        "halo_bus_published_total", "counter", "events published on the bus", bus.get("published")
    )
    per_sub = {
        "delivered": "events a subscriber handled",
        "failed": "events whose handler raised",
        "timed_out": "events whose handler ran past its time limit",
        "dropped": "events dropped from a full subscriber queue",
    }
    for key, text in per_sub.items():
        out.add(f"halo_bus_{key}_total", "counter", text, None)
    out.add("halo_bus_queued", "gauge", "events waiting for a subscriber", None)
    for sub in bus.get("subscribers", []):
        who = {"subscriber": sub["name"]}
        for key in per_sub:
            out.add(f"halo_bus_{key}_total", "counter", "", sub.get(key, 0), who)
        out.add("halo_bus_queued", "gauge", "", sub.get("queued", 0), who)
    return out.render()
