"""10 ms adverts held under load (#16 §7), halo and keepalived 2.2.7 in one run.

One four-host lab: a halo pair (VRID 51: master priority 100 on h1, backup 90 on h2) and a
keepalived pair (VRID 52: h3, h4) on the same segment, VRRPv3 at ``advert_int 0.01``. Each
halo node carries the load of ``bench/checks`` (#16 §6): TCP and HTTP checks at 0.1 s
against servers in its own namespace, a third-party checker that blocks its event loop 2 s
on every run and one that spins the CPU 2 s. keepalived cannot run its TCP checker here
(no ip_vs in this kernel); its nodes run ``vrrp_script`` with a 2 s sleep, and share the
machine (two cores) with halo's load. Both implementations get the same scheduling:
real-time priority 1 for VRRP (halo's default, keepalived's ``vrrp_rt_priority 1``), unless
``keepalived_rt`` is 0.

Measured on the switch bridge (kernel receive times, one clock): during the hold, a backup
that starts advertising though its master's last advert is less than Master_Down_Interval
old is a false takeover; one after the master has been silent that long was right to (the
master stalled; counted apart). The master's advert gaps give the jitter. Then ``trials``
times per pair: kill -9 of the master at a random point of the interval, the time from its
last advert to the backup's first (bound: Master_Down_Interval = 3 x 10 ms + Skew_Time,
36.5 ms at priority 90), and the master is started again (it preempts).

With ``explain``, each false takeover is explained: a capture at each backup's own
interface shows when the master's adverts reached it (a delay between the switch and the
backup is the kernel's delivery, which no implementation can see past), every halo process
records its event loop's stalls (``tests/soak/site``: the CPU it used meanwhile, its
scheduling, its stack), and the other pair's master at the same moment tells a machine-wide
stall from one implementation's.

Used by ``bench/failover/hold.py`` (10 minutes) and ``test_hold.py`` (CI: seconds).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vrrp_peers import Proto, Spec, Wire, halo_config, keepalived_config

from halo_tool_lab.halo import Halo
from halo_tool_lab.keepalived import Keepalived
from halo_tool_lab.netns import Host, Lab, Proc

ROOT = Path(__file__).resolve().parents[2]
SERVERS = ROOT / "bench" / "checks" / "run.py"  # its `serve` sub-command
MISBEHAVING_SITE = ROOT / "tests" / "isolation" / "site"
SAMPLER_SITE = ROOT / "tests" / "soak" / "site"  # loop stalls, with explain
EXPLAIN_STALL = 0.02  # seconds: a loop gap this long is recorded, with explain
V3_10MS = Proto("v3-ipv4-10ms", 3, False, 0.01)
MASTER_PRIO, BACKUP_PRIO = 100, 90
VRIDS = {"halo": 51, "keepalived": 52}
BASE_PORT = 20000
START_TIMEOUT = 30.0


@dataclass
class Load:
    """The checks each halo node runs (``bench/checks``' §6 load)."""

    tcp: int = 500
    http: int = 50
    interval: float = 0.1
    blocking: int = 1
    spinning: int = 1

    def halo_checks(self) -> str:
        lines = []
        for i in range(self.tcp):
            lines.append(
                f"t{i}: {{type: tcp, connect_ip: 127.0.0.1, connect_port: {BASE_PORT + i},"
                f" interval: {self.interval}, timeout: 1}}"
            )
        for i in range(self.http):
            lines.append(
                f"h{i}: {{type: http, connect_ip: 127.0.0.1,"
                f" connect_port: {BASE_PORT + 20000 + i}, interval: {self.interval}, timeout: 1}}"
            )
        for i in range(self.blocking):
            lines.append(f"block{i}: {{type: misbehave, mode: sleep, seconds: 2, interval: 1}}")
        for i in range(self.spinning):
            lines.append(f"spin{i}: {{type: misbehave, mode: spin, seconds: 2, interval: 1}}")
        return "\n".join(lines)


@dataclass
class PairResult:
    impl: str
    adverts: int = 0  # the master's, during the hold
    jitter_p50_ms: float = 0.0
    jitter_p99_ms: float = 0.0
    jitter_max_ms: float = 0.0
    missed: int = 0  # master adverts missing (gaps of 2 intervals and more)
    backup_adverts: int = 0  # during the hold: each one is a false takeover's
    false_takeovers: int = 0  # backup took over though its master was heard < MDI before
    after_silence: int = 0  # takeovers after the master had been silent for MDI or more
    after_resigning: int = 0  # takeovers after the master's priority-0 advert (it resigned)
    takeovers_ms: list[float] = field(default_factory=list)  # kill -9: last -> first advert
    bound_ms: float = V3_10MS.master_down(BACKUP_PRIO) * 1000
    cpu_core: dict[str, float] = field(default_factory=dict)  # per node, all its processes
    checks_per_s: dict[str, float] = field(default_factory=dict)  # answered, halo nodes
    explained: list[str] = field(default_factory=list)  # what surrounded each false takeover


@dataclass
class HoldReport:
    seconds: float
    load: Load
    keepalived_rt: int
    pairs: dict[str, PairResult]

    def text(self) -> str:
        impls = list(self.pairs)
        rows: list[tuple[str, list[str]]] = []

        def row(label: str, cell: Any) -> None:
            rows.append((label, [str(cell(self.pairs[i])) for i in impls]))

        row("false takeovers", lambda p: p.false_takeovers)
        row("takeovers after a silent MDI", lambda p: p.after_silence)
        row("takeovers after the master resigned", lambda p: p.after_resigning)
        row("backup adverts during hold", lambda p: p.backup_adverts)
        row("master adverts", lambda p: p.adverts)
        row("jitter p50 / p99 / max (ms)", _jitter)
        row("missed adverts", lambda p: p.missed)
        row("kill -9 takeover median (ms)", lambda p: _ms(statistics.median, p.takeovers_ms))
        row("kill -9 takeover max (ms)", lambda p: _ms(max, p.takeovers_ms))
        row("  bound (MDI, ms)", lambda p: f"{p.bound_ms:.1f}")
        row("CPU per node (core)", lambda p: " ".join(f"{v:.3f}" for v in p.cpu_core.values()))
        row(
            "checks answered/s per node",
            lambda p: " ".join(f"{v:.0f}" for v in p.checks_per_s.values()) or "-",
        )
        width = 32
        head = f"{'':{width}}" + "".join(f"{i:>24}" for i in impls)
        lines = [
            f"VRRPv3 at advert_int {V3_10MS.interval:g} held {self.seconds:g} s; halo load per"
            f" node: {self.load.tcp} tcp + {self.load.http} http checks every"
            f" {self.load.interval:g} s, {self.load.blocking} blocking and"
            f" {self.load.spinning} spinning checker(s); keepalived: vrrp_script sleep 2,"
            f" vrrp_rt_priority {self.keepalived_rt or 'unset'}",
            "",
            head,
            "-" * len(head),
        ]
        lines += [f"{label:{width}}" + "".join(f"{c:>24}" for c in cells) for label, cells in rows]
        for impl in impls:
            lines += self.pairs[impl].explained
        return "\n".join(lines)

    def json(self) -> str:
        return json.dumps(
            {
                "seconds": self.seconds,
                "load": asdict(self.load),
                "keepalived_rt": self.keepalived_rt,
                "pairs": {k: asdict(v) for k, v in self.pairs.items()},
            },
            indent=2,
        )


def _ms(fn: Any, values: list[float]) -> str:
    return f"{fn(values):.2f}" if values else "-"


def _jitter(p: PairResult) -> str:
    return f"{p.jitter_p50_ms:.2f} / {p.jitter_p99_ms:.2f} / {p.jitter_max_ms:.2f}"


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


class Pair:
    """A master and a backup of one implementation; the master can be killed and restarted."""

    def __init__(self, lab: Lab, impl: str, hosts: tuple[Host, Host], load: Load, work: Path):
        self.lab = lab
        self.impl = impl
        self.hosts = hosts
        self.load = load
        self.work = work
        self.vrid = VRIDS[impl]
        self.starts = 0
        self.ka_rt = 0
        self.backup: Halo | Keepalived | None = None
        self.master: Halo | Keepalived | None = None

    @property
    def master_src(self) -> Any:
        return self.hosts[0].ipv4

    @property
    def backup_src(self) -> Any:
        return self.hosts[1].ipv4

    def start(self, role: str) -> Halo | Keepalived:
        self.starts += 1
        host = self.hosts[0 if role == "master" else 1]
        prio = MASTER_PRIO if role == "master" else BACKUP_PRIO
        spec = Spec(prio, vrid=self.vrid)
        name = f"{self.impl}-{role}-{self.starts}"
        node: Halo | Keepalived
        if self.impl == "halo":
            state = self.work / f"{host.name}.state"
            text = halo_config(name, V3_10MS, spec, state)
            text += "checks:\n" + "".join(f"  {c}\n" for c in self.load.halo_checks().split("\n"))
            node = Halo(host, text, self.work, name=name, log_level="warning")
        else:
            text = keepalived_config(name, V3_10MS, spec)
            if self.ka_rt:
                text = text.replace(
                    "global_defs {", f"global_defs {{\n    vrrp_rt_priority {self.ka_rt}"
                )
            script = (
                'vrrp_script slow {\n    script "/bin/sleep 2"\n    interval 1\n    timeout 3\n}\n'
            )
            text = script + text.replace(
                "    virtual_ipaddress {",
                "    track_script {\n        slow\n    }\n    virtual_ipaddress {",
            )
            node = Keepalived(host, text, self.work, name=name)
        if role == "master":
            self.master = node
        else:
            self.backup = node
        return node


def _pids_in(host: Host) -> list[int]:
    return host.pids()


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _counts(path: Path) -> dict[str, float]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"tcp": 0, "http": 0, "t": time.time()}
    return {k: float(v) for k, v in doc.items()}


def _wait_master(wire: Wire, pair: Pair, after: float) -> None:
    """The pair's master is heard (three adverts) and its backup has gone quiet."""
    adv = wire.wait(pair.master_src, after=after, count=3, timeout=START_TIMEOUT)
    deadline = time.time() + 5
    while not wire.quiet(pair.backup_src, after=adv[0].time + 0.05):
        if time.time() > deadline:
            raise RuntimeError(f"{pair.impl} backup did not step down")
        time.sleep(0.05)


def _hold_figures(
    result: PairResult, wire: Wire, pair: Pair, t0: float, t1: float
) -> list[tuple[float, float]]:
    """The hold's figures into ``result``; the false takeovers (the backup's first advert,
    the master's last before it)."""
    interval = V3_10MS.interval
    master = [a.time for a in wire.sent_by(pair.master_src, after=t0) if a.time <= t1]
    backup = [a.time for a in wire.sent_by(pair.backup_src, after=t0) if a.time <= t1]
    gaps = [b - a for a, b in itertools.pairwise(master)]
    jitter = [abs(g - interval) * 1000 for g in gaps]
    result.adverts = len(master)
    if jitter:
        result.jitter_p50_ms = round(_percentile(jitter, 50), 3)
        result.jitter_p99_ms = round(_percentile(jitter, 99), 3)
        result.jitter_max_ms = round(max(jitter), 3)
    result.missed = sum(max(0, round(g / interval) - 1) for g in gaps)
    result.backup_adverts = len(backup)
    mdi = V3_10MS.master_down(BACKUP_PRIO)
    firsts = [
        t for prev, t in zip([float("-inf"), *backup], backup, strict=False) if t - prev > mdi
    ]
    resigned = {a.time for a in wire.sent_by(pair.master_src, after=t0) if a.priority == 0}
    false: list[tuple[float, float]] = []
    for first in firsts:
        # Right only if the master had been silent for Master_Down_Interval (its own stall:
        # the machine's, when both implementations' masters show the same gaps).
        heard = [t for t in master if t < first]
        if heard and heard[-1] in resigned:
            result.after_resigning += 1  # keepalived's master on a failed vrrp_script
        elif heard and first - heard[-1] < mdi and not _one_burst(heard, first, mdi):
            result.false_takeovers += 1
            false.append((first, heard[-1]))
        else:
            result.after_silence += 1
    return false


BURST = 0.001
"""Seconds: two adverts crossing the switch this close together left a stalled machine in
one burst (the kernel delivered them in one pass), whenever each was sent."""


def _one_burst(heard: list[float], first: float, mdi: float) -> bool:
    """The master's last advert reached the switch in one burst with the backup's first,
    after the master had been silent for Master_Down_Interval: the backup was right (the
    master's late advert had not been delivered when it decided)."""
    return len(heard) >= 2 and first - heard[-1] <= BURST and heard[-1] - heard[-2] >= mdi


def _explain(
    pair: Pair,
    false: list[tuple[float, float]],
    at_backup: Path | None,
    samples: Path | None,
    others: dict[str, list[float]],
    t0: float,
) -> list[str]:
    """What surrounded each false takeover (``false``: the backup's first advert, the
    master's last before it, both as the switch saw them)."""
    from halo_tool_lab.capture import read_pcap, vrrp_adverts

    mdi = V3_10MS.master_down(BACKUP_PRIO)
    heard: list[float] = []  # the master's adverts at the backup's interface
    sent: list[float] = []  # the backup's, leaving it
    if at_backup is not None:
        for adv in vrrp_adverts(read_pcap(at_backup), vrid=pair.vrid):
            if adv.src == pair.master_src:
                heard.append(adv.time)
            elif adv.src == pair.backup_src:
                sent.append(adv.time)
    stalls: list[dict[str, Any]] = []
    if samples is not None and samples.exists():
        for line in samples.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "stall" in rec:
                stalls.append(rec)
    hosts = {os.stat(f"/run/netns/{h.ns}").st_ino: h.name for h in pair.lab.hosts}
    roles = {pair.hosts[0].name: "master", pair.hosts[1].name: "backup"}
    out = []
    for first, last in false[:10]:
        out.append(
            f"{pair.impl}: false takeover at +{first - t0:.3f} s: the backup's first advert"
            f" {(first - last) * 1000:.1f} ms after the master's last (at the switch)"
        )
        if at_backup is not None:
            mine = [t for t in sent if t >= first - 0.005]
            left = mine[0] if mine else first
            before = [t for t in heard if t < left]
            arrived = [t for t in heard if t >= last - 0.0005]
            age = (left - before[-1]) * 1000 if before else float("nan")
            delay = (arrived[0] - last) * 1000 if arrived else float("nan")
            out.append(
                f"  at the backup's interface: the latest master advert before its own was"
                f" {age:.1f} ms old (MDI {mdi * 1000:.1f}); the master's last reached it"
                f" {delay:.1f} ms after crossing the switch"
            )
        near = [s for s in stalls if first - 0.3 <= s["t"] <= first + 0.3]
        for s in sorted(near, key=lambda s: -float(s["stall"]))[:6]:
            host = hosts.get(s.get("netns"), "?")
            frames = [x.strip() for x in str(s.get("stack", "")).splitlines() if x.strip()]
            where = frames[-1] if frames else "no stack taken"
            out.append(
                f"  {host} ({roles.get(host, 'other pair')}) {s['role']}: loop stalled"
                f" {s['stall'] * 1000:.0f} ms ending {(s['t'] - first) * 1000:+.0f} ms,"
                f" {s['cpu'] * 1000:.0f} ms CPU, {s['ivcsw']} involuntary switches,"
                f" policy {s['policy'] & ~os.SCHED_RESET_ON_FORK}; at: {where}"
            )
        if samples is not None and not near:
            out.append(f"  no halo loop stalled {EXPLAIN_STALL * 1000:.0f} ms or more")
        for impl, times in others.items():
            window = [t for t in times if first - 0.2 <= t <= first + 0.05]
            gaps = [b - a for a, b in itertools.pairwise(window)]
            out.append(
                f"  {impl} master meanwhile: longest gap {max(gaps, default=0) * 1000:.1f} ms"
                " in the 200 ms before"
            )
    return out


def run_hold(
    seconds: float,
    work: Path,
    *,
    load: Load | None = None,
    trials: int = 3,
    warmup: float = 15.0,
    keepalived_rt: int = 1,
    impls: tuple[str, ...] = ("halo", "keepalived"),
    progress: Any = None,
    explain: bool = False,
) -> HoldReport:
    load = load or Load()
    work.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda msg: None)
    results = {impl: PairResult(impl) for impl in impls}
    old_env = {k: os.environ.get(k) for k in ("PYTHONPATH", "HALO_SOAK_SAMPLES", "HALO_SOAK_STALL")}
    os.environ["PYTHONPATH"] = str(MISBEHAVING_SITE)  # halo's processes find the misbehave checker
    samples = work / "samples.jsonl" if explain else None
    try:
        with Lab(2 * len(impls)) as lab:
            pairs = {
                impl: Pair(lab, impl, (lab.hosts[2 * n], lab.hosts[2 * n + 1]), load, work)
                for n, impl in enumerate(impls)
            }
            for pair in pairs.values():
                pair.ka_rt = keepalived_rt
            servers: dict[str, Proc] = {}
            for impl, pair in pairs.items():
                if impl != "halo":
                    continue
                for host in pair.hosts:
                    counts = work / f"counts-{host.name}.json"
                    counts.unlink(missing_ok=True)
                    servers[host.name] = host.spawn(
                        sys.executable,
                        str(SERVERS),
                        "serve",
                        "--tcp",
                        str(load.tcp),
                        "--http",
                        str(load.http),
                        "--base",
                        str(BASE_PORT),
                        "--counts",
                        str(counts),
                    )
            cap = lab.capture(work / "hold.pcap", filter="vrrp")
            wires = {impl: Wire(cap, vrid=pair.vrid) for impl, pair in pairs.items()}
            if samples is not None:  # every halo process records its loop's stalls
                samples.unlink(missing_ok=True)
                paths = (MISBEHAVING_SITE, SAMPLER_SITE)
                os.environ["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
                os.environ["HALO_SOAK_SAMPLES"] = str(samples)
                os.environ["HALO_SOAK_STALL"] = str(EXPLAIN_STALL)
            began = time.time()
            for pair in pairs.values():
                pair.start("backup")
            time.sleep(1.0)
            for pair in pairs.values():
                pair.start("master")
            for impl, pair in pairs.items():
                _wait_master(wires[impl], pair, began)
            say(f"masters hold; warming up {warmup:g} s")
            time.sleep(warmup)
            for impl, pair in pairs.items():
                for node in (pair.master, pair.backup):
                    if node is None or not node.running:
                        raise RuntimeError(f"{impl}: a node exited during warm-up")
            at_backup = {
                impl: lab.capture(work / f"{impl}-backup.pcap", host=pair.hosts[1], filter="vrrp")
                for impl, pair in pairs.items()
                if explain
            }
            # The hold: nothing polls the capture meanwhile (it would take CPU from both).
            cpu0 = {h.name: _cpu(_pids_in(h)) for p in pairs.values() for h in p.hosts}
            c0 = {h: _counts(work / f"counts-{h}.json") for h in servers}
            t0 = time.time()
            end = t0 + seconds
            while (left := end - time.time()) > 0:
                time.sleep(min(60.0, left))
                if left > 60:
                    say(f"holding: {end - time.time():.0f} s left")
            t1 = time.time()
            cpu1 = {h.name: _cpu(_pids_in(h)) for p in pairs.values() for h in p.hosts}
            c1 = {h: _counts(work / f"counts-{h}.json") for h in servers}
            time.sleep(0.2)  # the capture writes the last frames
            for backup_cap in at_backup.values():
                backup_cap.stop()
            masters = {
                impl: [a.time for a in wires[impl].sent_by(pair.master_src, after=t0)]
                for impl, pair in pairs.items()
            }
            for impl, pair in pairs.items():
                r = results[impl]
                false = _hold_figures(r, wires[impl], pair, t0, t1)
                if false and explain:
                    others = {k: v for k, v in masters.items() if k != impl}
                    path = at_backup[impl].path if impl in at_backup else None
                    r.explained = _explain(pair, false, path, samples, others, t0)
                r.cpu_core = {h.name: (cpu1[h.name] - cpu0[h.name]) / (t1 - t0) for h in pair.hosts}
                for h in pair.hosts:
                    if h.name in c1:
                        a, b = c0[h.name], c1[h.name]
                        done = b["tcp"] + b["http"] - a["tcp"] - a["http"]
                        r.checks_per_s[h.name] = done / max(b["t"] - a["t"], 1e-9)
            cap.stop()
            # A fresh capture for the trials: waits scan what is captured, a short list now.
            cap = lab.capture(work / "trials.pcap", filter="vrrp")
            wires = {impl: Wire(cap, vrid=pair.vrid) for impl, pair in pairs.items()}
            for impl, pair in pairs.items():  # the new capture has the masters' adverts
                wires[impl].wait(pair.master_src, after=time.time(), count=2, timeout=5)
            say("hold done; kill -9 trials")
            for _ in range(trials):
                for impl, pair in pairs.items():
                    wire = wires[impl]
                    master = pair.master
                    assert master is not None
                    time.sleep(random.uniform(0.1, 0.9) * V3_10MS.interval)
                    killed_at = time.time()
                    master.kill9()
                    first = wire.wait(pair.backup_src, after=killed_at, timeout=5)[0]
                    last = wire.last_from(pair.master_src, before=first.time)
                    assert last is not None
                    results[impl].takeovers_ms.append(round((first.time - last.time) * 1000, 3))
                    restarted = time.time()
                    pair.start("master")
                    _wait_master(wire, pair, restarted)
                    time.sleep(2.0)  # halo's worker and its load are back
            cap.stop()
            for pair in pairs.values():
                for node in (pair.master, pair.backup):
                    if node is not None and node.running:
                        node.kill9()
    finally:
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return HoldReport(seconds, load, keepalived_rt, results)


__all__ = ["HoldReport", "Load", "PairResult", "run_hold"]
