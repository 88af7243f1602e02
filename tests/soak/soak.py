"""The soak (#15 §7), shared by ``tests/soak/test_soak.py`` (60 s) and ``bench/soak`` (an
hour by default).

Two halo daemons in the lab, each with the same ``instances`` VRRPv3 instances at 0.1 s
(VRIDs 1.., one VIP each from 203.0.113.0/24): node ``a`` at priority 100 with ``checks``
TCP checks against a local web server (each instance tracks one, weight -5), node ``b`` at
90. Every ``reload_every`` seconds both are reloaded with a changed configuration (the
checks' interval moves by a millisecond), and every ``fault_every`` seconds a random fault
from the matrix hits: SIGSTOP of b, b's link down, a partition of b, 30 % advert loss, a
SIGHUP storm on a, a restart of b. Every process of each daemon (the VRRP process and, on
``a``, its worker) loads ``site/sitecustomize.py``, which records its asyncio tasks, open
descriptors and RSS once a second.

Judged per process: RSS growth after the warm-up (and its slope per hour), descriptors and
tasks after the warm-up (the baseline does not rise), tracebacks in the logs, and false takeovers: b
entering MASTER, or a leaving it, outside a fault's window (the fault and 3 s after).

Each false takeover is explained from what was recorded around it (:func:`evidence`): loop
stalls of every process (``stall``: the sampler's heartbeat, with the CPU the process used
meanwhile and its stack), b's raw socket drops, the load, and with ``capture`` the adverts
that reached b's interface (a pcap of the seconds around it is kept in the work directory,
beside the logs).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from halo_tool_lab.netns import Host, Lab, Proc, wait_until

HERE = Path(__file__).resolve().parent
SITE = HERE / "site"  # the sampler every process of a sampled daemon loads
PORT = 8080
GRACE = 3.0  # seconds after a fault's end that still belong to it
RELOAD_WINDOW = 2.0  # a takeover this soon after a SIGHUP is counted as the reload's
STALL = 0.05  # seconds: a loop gap this long is recorded, with the process's stack
BEFORE, AFTER = 3.0, 1.0  # seconds of a false takeover's surroundings kept and explained


@dataclass
class Daemon:
    """One sampled halo daemon in a lab host."""

    host: Host
    name: str
    workdir: Path
    config: str
    proc: Proc | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / f"{self.name}.yaml"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def samples_path(self) -> Path:
        return self.workdir / f"{self.name}.samples.jsonl"

    def _write_config(self) -> None:
        # Whole or not at all (a rename): a reload still queued from a SIGHUP storm reads
        # the file at any moment, and a half-written one removed all of a's instances
        # (priority 0 adverts: b took over, a false takeover of the soak's own making).
        tmp = self.config_path.with_name(self.config_path.name + ".new")
        tmp.write_text(self.config)
        os.replace(tmp, self.config_path)

    def start(self) -> None:
        self._write_config()
        path = os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH", "")) if p)
        env = {
            "HALO_SOAK_SAMPLES": str(self.samples_path),
            "HALO_SOAK_STALL": str(STALL),
            "PYTHONPATH": path,
        }
        self.proc = self.host.spawn(
            sys.executable, "-m", "halo_core.cli", "run", "-c", str(self.config_path),
            log=self.log_path, env=env,
        )  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None and self.proc.running:
            self.proc.terminate_and_wait(15)

    def signal(self, sig: int) -> None:
        if self.proc is not None:
            self.proc.kill(sig)

    def reload(self, config: str) -> None:
        self.config = config
        self._write_config()
        self.signal(signal.SIGHUP)

    def records(self) -> list[dict[str, object]]:
        out = []
        with contextlib.suppress(FileNotFoundError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    rec = {"level": "raw", "message": line}
                out.append(rec if isinstance(rec, dict) else {"level": "raw", "message": line})
        return out

    def transitions(self, to_state: str) -> list[float]:
        """Epoch times of every instance's entry into *to_state*."""
        return [t for t, _ in self.entries(to_state)]

    def entries(self, to_state: str) -> list[tuple[float, str]]:
        """(epoch time, instance) of every instance's entry into *to_state*."""
        out = []
        for rec in self.records():
            if rec.get("to_state") == to_state and isinstance(rec.get("time"), str):
                t = datetime.fromisoformat(str(rec["time"])).timestamp()
                out.append((t, str(rec.get("instance", ""))))
        return out

    def tracebacks(self) -> int:
        with contextlib.suppress(FileNotFoundError):
            return self.log_path.read_text(errors="replace").count("Traceback")
        return 0

    def samples(self) -> list[dict[str, float]]:
        """The once-a-second samples (not the stall records)."""
        return [s for s in self._sampled() if "stall" not in s]

    def stalls(self) -> list[dict[str, Any]]:
        """The loop stalls recorded (see site/sitecustomize.py)."""
        return [s for s in self._sampled() if "stall" in s]

    def _sampled(self) -> list[dict[str, Any]]:
        out = []
        with contextlib.suppress(FileNotFoundError):
            for line in self.samples_path.read_text().splitlines():
                with contextlib.suppress(ValueError):  # a line cut by a kill
                    out.append(json.loads(line))
        return out


def config(priority: int, instances: int, checks: int, check_interval: float) -> str:
    lines = ["global:", "  router_id: soak", "  log_format: json", "vrrp_instances:"]
    for i in range(1, instances + 1):
        lines += [
            f"  VI_{i}:",
            "    interface: eth0",
            f"    virtual_router_id: {i}",
            f"    priority: {priority}",
            "    version: 3",
            "    advert_int: 0.1",
            f"    virtual_ipaddress: [203.0.113.{i}/24]",
        ]
        if checks:
            lines.append(f"    track: [{{check: c{(i - 1) % checks}, weight: -5}}]")
    if checks:
        lines.append("checks:")
        lines += [
            f"  c{n}: {{type: tcp, connect_ip: 127.0.0.1, connect_port: {PORT},"
            f" interval: {check_interval:g}, timeout: 1}}"
            for n in range(checks)
        ]
    return "\n".join(lines) + "\n"


@dataclass
class Figures:
    """The curve of one daemon after the warm-up."""

    name: str
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_slope_mb_per_hour: float = 0.0
    # (min, max) over the first and the second half after the warm-up. The minimum is the
    # baseline between bursts (a reload restarts every check at once: hundreds of tasks for
    # a moment); a leak raises the baseline, so the second half's may not exceed the first's.
    fds: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
    tasks: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
    curve: list[tuple[float, float]] = field(default_factory=list)  # (minutes, RSS MB)
    tracebacks: int = 0
    samples: int = 0  # judged samples: none means nothing was measured, which is a failure

    @property
    def constant(self) -> bool:
        """Baseline descriptors and tasks no higher in the second half than in the first."""
        return self.fds[1][0] <= self.fds[0][0] and self.tasks[1][0] <= self.tasks[0][0]

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_end_mb - self.rss_start_mb

    def line(self) -> str:
        return (
            f"{self.name}: RSS {self.rss_start_mb:.1f} -> {self.rss_end_mb:.1f} MB "
            f"({self.rss_growth_mb:+.2f} MB, slope {self.rss_slope_mb_per_hour:+.2f} MB/h), "
            f"fds {_span(self.fds)}, tasks {_span(self.tasks)}, "
            f"tracebacks {self.tracebacks}, {self.samples} samples"
        )


@dataclass
class SoakReport:
    seconds: float
    reloads: int = 0
    reload_times: list[float] = field(default_factory=list)
    faults: list[tuple[float, float, str]] = field(default_factory=list)
    false_takeovers: list[str] = field(default_factory=list)
    daemons: list[Figures] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # what surrounded each false takeover

    def text(self) -> str:
        kinds: dict[str, int] = {}
        for _, _, kind in self.faults:
            kinds[kind] = kinds.get(kind, 0) + 1
        out = [
            f"soak {self.seconds:.0f} s: {self.reloads} reloads, {len(self.faults)} faults "
            f"({', '.join(f'{k} ×{n}' for k, n in sorted(kinds.items()))}), "
            f"{len(self.false_takeovers)} false takeovers",
            *(d.line() for d in self.daemons),
        ]
        for d in self.daemons:
            out.append(
                f"{d.name} RSS curve (min: MB): "
                + ", ".join(f"{m:.1f}: {mb:.1f}" for m, mb in d.curve)
            )
        by_cause: dict[str, int] = {}
        for x in self.false_takeovers:
            by_cause[x] = by_cause.get(x, 0) + 1
        out += [f"false takeover: {x} (×{n} instances)" for x, n in list(by_cause.items())[:20]]
        out += self.evidence
        return "\n".join(out)


def _span(halves: tuple[tuple[int, int], tuple[int, int]]) -> str:
    (a0, a1), (b0, b1) = halves
    return f"baseline {a0} then {b0} (peaks {a1}, {b1})"


def _minmax(samples: list[dict[str, float]], key: str) -> tuple[int, int]:
    values = [int(s[key]) for s in samples] or [0]
    return min(values), max(values)


def _figures(d: Daemon, warmup_end: float, warmup: float, start: float) -> list[Figures]:
    """One :class:`Figures` per process role of the daemon (its VRRP process, its worker)."""
    tracebacks = d.tracebacks()
    by_role: dict[str, list[dict[str, float]]] = {}
    for sample in d.samples():
        by_role.setdefault(str(sample.get("role", "vrrp")), []).append(sample)
    if not by_role:
        return [Figures(d.name, tracebacks=tracebacks)]
    return [
        _role_figures(f"{d.name} {role}", samples, warmup_end, warmup, start, tracebacks)
        for role, samples in sorted(by_role.items())
    ]


def _role_figures(
    name: str,
    samples: list[dict[str, float]],
    warmup_end: float,
    warmup: float,
    start: float,
    tracebacks: int,
) -> Figures:
    # a restarted process: its last incarnation only, after its own warm-up
    samples = [s for s in samples if s["pid"] == samples[-1]["pid"]]
    warmup_end = max(warmup_end, samples[0]["t"] + warmup)
    samples = [s for s in samples if s["t"] >= warmup_end]
    fig = Figures(name, tracebacks=tracebacks, samples=len(samples))
    if len(samples) < 2:
        return fig
    rss = [(s["t"], s["rss_kb"] / 1024) for s in samples]
    fig.rss_start_mb, fig.rss_end_mb = rss[0][1], rss[-1][1]
    n = len(rss)
    mean_t = sum(t for t, _ in rss) / n
    mean_r = sum(r for _, r in rss) / n
    var = sum((t - mean_t) ** 2 for t, _ in rss)
    if var > 0:
        fig.rss_slope_mb_per_hour = sum((t - mean_t) * (r - mean_r) for t, r in rss) / var * 3600
    first, second = samples[: n // 2], samples[n // 2 :]
    fig.fds = (_minmax(first, "fds"), _minmax(second, "fds"))
    fig.tasks = (_minmax(first, "tasks"), _minmax(second, "tasks"))
    step = max(1, n // 10)
    fig.curve = [((t - start) / 60, r) for t, r in rss[::step]] + [
        ((rss[-1][0] - start) / 60, rss[-1][1])
    ]
    return fig


def run_soak(
    seconds: float,
    workdir: Path,
    *,
    instances: int = 100,
    checks: int = 500,
    check_interval: float = 1.0,
    reload_every: float = 10.0,
    fault_every: float = 30.0,
    warmup: float = 30.0,
    seed: int = 15,
    faults: tuple[str, ...] = (),
    capture: bool = False,
    log: Callable[[str], None] = lambda s: None,
) -> SoakReport:
    """The soak; ``faults``: the kinds to choose from (default every one of :data:`FAULTS`);
    ``capture``: record the VRRP adverts reaching b, to explain a false takeover."""
    unknown = [k for k in faults if k not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r} (known: {', '.join(FAULTS)})")
    kinds = list(faults or FAULTS)
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("takeover-*"):
        old.unlink()
    report = SoakReport(seconds)
    with Lab(["a", "b"], ipv6=False) as lab:
        a_host, b_host = lab.host("a"), lab.host("b")
        pcap = workdir / "b.pcap"
        cap = lab.capture(pcap, host=b_host, filter="vrrp") if capture else None
        a_host.spawn(sys.executable, "-m", "halo_tool_lab.demo", "serve", "a", "--port", str(PORT))
        a = Daemon(a_host, "a", workdir, config(100, instances, checks, check_interval))
        b = Daemon(b_host, "b", workdir, config(90, instances, 0, check_interval))
        for d in (a, b):
            for p in (d.log_path, d.samples_path):
                p.unlink(missing_ok=True)
        a.start()
        if not wait_until(lambda: len(a.transitions("MASTER")) >= instances, 60, 0.5):
            raise RuntimeError(f"a: {len(a.transitions('MASTER'))} of {instances} masters")
        b.start()
        if not wait_until(lambda: len(b.transitions("BACKUP")) >= instances, 60, 0.5):
            raise RuntimeError(f"b: {len(b.transitions('BACKUP'))} of {instances} backups")
        start = time.time()
        warmup_end = start + min(warmup, seconds / 2)
        end = start + seconds
        next_reload = start + reload_every
        next_fault = start + fault_every / 2
        interval_step = 0
        while time.time() < end:
            now = time.time()
            if now >= next_reload:
                interval_step = 1 - interval_step  # a real change, so the reload does work
                ci = check_interval + interval_step / 1000
                a.reload(config(100, instances, checks, ci))
                b.reload(config(90, instances, 0, ci))
                report.reloads += 1
                report.reload_times.append(now)
                next_reload += reload_every
            elif now >= next_fault and now < end - 10:
                kind = rng.choice(kinds)
                f_start = time.time()
                FAULTS[kind](lab, a, b)
                report.faults.append((f_start, time.time(), kind))
                log(f"{time.time() - start:6.0f} s  fault {kind}")
                next_fault = time.time() + fault_every
            else:
                time.sleep(0.2)
        time.sleep(GRACE)
        windows = [(s - 0.1, e + GRACE) for s, e, _ in report.faults]

        def outside(t: float) -> bool:
            return start <= t and not any(lo <= t <= hi for lo, hi in windows)

        def what(t: float) -> str:
            near = [r for r in report.reload_times if r <= t <= r + RELOAD_WINDOW]
            return f" +{t - start:.1f} s" + (", during a reload" if near else "")

        if cap is not None:
            cap.stop()
        false: list[tuple[float, str]] = []
        for t, inst in b.entries("MASTER"):
            if outside(t):
                report.false_takeovers.append(f"b became MASTER at{what(t)}")
                false.append((t, inst))
        for state in ("BACKUP", "FAULT"):
            for t, inst in a.entries(state):
                if outside(t):
                    report.false_takeovers.append(f"a entered {state} at{what(t)}")
                    false.append((t, inst))
        for t, inst in _episodes(false):
            report.evidence += evidence(
                t, inst, start, a, b, pcap if cap is not None else None, a_host.ipv4
            )
        report.daemons = [
            fig for d in (a, b) for fig in _figures(d, warmup_end, warmup_end - start, start)
        ]
        for d in (a, b):
            d.stop()
    return report


# ---------------------------------------------------------------------------------------------
# explaining a false takeover


def _episodes(takeovers: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """The first takeover of each episode (takeovers less than ``BEFORE`` s apart)."""
    out: list[tuple[float, str]] = []
    for t, inst in sorted(takeovers):
        if not out or t - out[-1][0] > BEFORE:
            out.append((t, inst))
    return out


_POLICY = {os.SCHED_OTHER: "normal", os.SCHED_RR: "SCHED_RR", os.SCHED_FIFO: "SCHED_FIFO"}


def _policy(value: object) -> str:
    """A scheduling policy by name (without SCHED_RESET_ON_FORK)."""
    if not isinstance(value, int):
        return "?"
    return _POLICY.get(value & ~os.SCHED_RESET_ON_FORK, str(value))


def evidence(
    t: float,
    inst: str,
    start: float,
    a: Daemon,
    b: Daemon,
    pcap: Path | None,
    a_address: object,
) -> list[str]:
    """What surrounded a false takeover at ``t`` (the first instance's): every process's
    loop stalls from ``BEFORE`` s before to ``AFTER`` s after, scheduling and load, b's raw
    socket drops, and from ``pcap`` (adverts captured at b's interface) when a's last
    advert for that instance reached b. The seconds around it are kept in the work
    directory: ``takeover-<s>.pcap`` and ``takeover-<s>.log`` (both daemons' log lines)."""
    lo, hi = t - BEFORE, t + AFTER
    tag = f"{t - start:.1f}"
    reasons = [
        str(r.get("reason", ""))
        for d in (a, b)
        for r in d.records()
        if r.get("instance") == inst
        and r.get("to_state") in ("MASTER", "BACKUP", "FAULT")
        and isinstance(r.get("time"), str)
        and abs(datetime.fromisoformat(str(r["time"])).timestamp() - t) < 0.001
    ]
    out = [f"around +{tag} s ({inst}: {reasons[0] if reasons else 'no reason logged'}):"]
    for d in (a, b):
        stalls = [s for s in d.stalls() if lo <= s["t"] <= hi]
        for s in sorted(stalls, key=lambda s: -s["stall"])[:4]:
            frames = [x for x in str(s.get("stack", "")).strip().splitlines() if x.strip()]
            where = " <- ".join(x.strip() for x in frames[-4:][::-2]) or "no stack taken"
            out.append(
                f"  {d.name} {s['role']} {s['pid']}: loop stalled {s['stall'] * 1000:.0f} ms,"
                f" ending {s['t'] - t:+.3f} s; used {s['cpu'] * 1000:.0f} ms CPU,"
                f" {s['vcsw']} voluntary / {s['ivcsw']} involuntary switches,"
                f" {s['majflt']} major faults, {_policy(s['policy'])};"
                f" at: {where}"
            )
        if not stalls:
            out.append(f"  {d.name}: no loop stall of {STALL * 1000:.0f} ms or more")
        near = [s for s in d.samples() if lo <= s["t"] <= hi and s.get("role") == "vrrp"]
        if near:
            drops = near[-1].get("raw_drops", 0) - near[0].get("raw_drops", 0)
            policies = {_policy(s.get("policy")) for s in near}
            out.append(
                f"  {d.name} vrrp: scheduling {'/'.join(sorted(policies))}, load"
                f" {max(s.get('load', 0) for s in near):.1f}, raw socket drops {drops:+d},"
                f" longest lag {max(s.get('lag_max', 0) for s in near) * 1000:.0f} ms"
            )
    if pcap is not None:
        out += _wire(pcap, t, inst, a_address, b.workdir / f"takeover-{tag}.pcap")
    lines = [
        f"{d.name}: {json.dumps(r)}"
        for d in (a, b)
        for r in d.records()
        if isinstance(r.get("time"), str)
        and lo <= datetime.fromisoformat(str(r["time"])).timestamp() <= hi
    ]
    (b.workdir / f"takeover-{tag}.log").write_text("\n".join(lines) + "\n")
    return out


_RECORD = struct.Struct("<IIII")


def _pcap_frames(path: Path, lo: float, hi: float) -> Iterator[tuple[float, bytes, bytes]]:
    """(time, record header, frame) of the frames of a nanosecond pcap within [lo, hi],
    read as a stream (an hour of adverts does not fit in memory as objects)."""
    with open(path, "rb") as fh:
        if len(fh.read(24)) < 24:
            return
        while len(head := fh.read(_RECORD.size)) == _RECORD.size:
            sec, nsec, incl, _ = _RECORD.unpack(head)
            data = fh.read(incl)
            if len(data) < incl:
                return
            when = sec + nsec / 1e9
            if when > hi:
                return
            if when >= lo:
                yield when, head, data


def _wire(pcap: Path, t: float, inst: str, a_address: object, keep: Path) -> list[str]:
    """When a's adverts for the instance that took over reached b, from b's capture; the
    frames around ``t`` are kept in ``keep``."""
    from halo_tool_lab.capture import Frame, parse_vrrp

    vrid = int(inst.rsplit("_", 1)[-1]) if inst.rsplit("_", 1)[-1].isdigit() else -1
    heard: list[float] = []
    with open(pcap, "rb") as src, open(keep, "wb") as out:
        out.write(src.read(24))
        for when, head, data in _pcap_frames(pcap, t - BEFORE, t + AFTER):
            out.write(head + data)
            adv = parse_vrrp(Frame(when, data))
            if adv is not None and adv.vrid == vrid and adv.src == a_address and when <= t:
                heard.append(when)
    if not heard:
        return [f"  wire at b: no advert of a for VRID {vrid} in the {BEFORE:g} s before"]
    gaps = [y - x for x, y in zip([t - BEFORE, *heard], [*heard, t], strict=True)]
    return [
        f"  wire at b: a's last advert for VRID {vrid} {(t - heard[-1]) * 1000:.0f} ms before;"
        f" {len(heard)} in the {BEFORE:g} s before, longest gap {max(gaps) * 1000:.0f} ms"
        f" (frames kept in {keep.name})"
    ]


# ---------------------------------------------------------------------------------------------
# the faults (from the matrix; b is the backup, a the master under measurement)


def _sigstop_b(lab: Lab, a: Daemon, b: Daemon) -> None:
    b.signal(signal.SIGSTOP)
    time.sleep(2.0)
    b.signal(signal.SIGCONT)


def _link_down_b(lab: Lab, a: Daemon, b: Daemon) -> None:
    with lab.unplug(b.host):
        time.sleep(2.0)


def _partition_b(lab: Lab, a: Daemon, b: Daemon) -> None:
    with lab.partition(b.host, proto=112):
        time.sleep(2.0)


def _loss30(lab: Lab, a: Daemon, b: Daemon) -> None:
    with lab.loss(30, proto=112):
        time.sleep(5.0)


def _hup_storm_a(lab: Lab, a: Daemon, b: Daemon) -> None:
    for _ in range(20):
        a.signal(signal.SIGHUP)
        time.sleep(0.1)


def _restart_b(lab: Lab, a: Daemon, b: Daemon) -> None:
    def starts() -> int:
        return sum(" started with " in str(r.get("message", "")) for r in b.records())

    before = starts()
    b.stop()
    b.start()
    wait_until(lambda: starts() > before, 30, 0.2)


FAULTS: dict[str, Callable[[Lab, Daemon, Daemon], None]] = {
    "sigstop-b": _sigstop_b,
    "link-down-b": _link_down_b,
    "partition-b": _partition_b,
    "loss30": _loss30,
    "hup-storm-a": _hup_storm_a,
    "restart-b": _restart_b,
}
