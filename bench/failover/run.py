"""Failover benchmark: halo and keepalived 2.2.7, side by side, on the same lab.

For each protocol (VRRPv2 with PASS at 1 s, VRRPv3 over IPv4 at 100 ms) and each pair
(master -> backup: keepalived->keepalived, halo->halo, halo->keepalived, keepalived->halo),
on one two-host network-namespace lab, run N trials of each scenario:

* ``kill9``: SIGKILL of the master (a dead machine): the time from the master's last advert
  to the backup's first advert, against Master_Down_Interval = 3 * interval + Skew_Time;
* ``graceful``: SIGTERM of the master: the time from its priority-0 advert to the backup's
  first advert, against Skew_Time = (256 - priority) / 256 * interval.

The master has priority 100, the backup 90. Times are the kernel receive times of the
adverts on the lab's switch bridge (one clock, outside both implementations). The backup
decides the takeover time, so "halo->keepalived" measures keepalived's timers and
"keepalived->halo" halo's.

Run as root (see README.md)::

    uv run python bench/failover/run.py [--trials 10] [--protos v2,v3] [--pairs kk,hh,hk,kh]
        [--scenarios kill9,graceful]

It prints the tables and writes every trial to ``bench/results/failover-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "interop"))

from vrrp_peers import V2_PASS, V3_IPV4, V3_IPV6, Node, Proto, Spec, Wire, start_node  # noqa: E402

from halo_core import __version__ as halo_version  # noqa: E402
from halo_tool_lab.halo import write_bytecode  # noqa: E402
from halo_tool_lab.keepalived import keepalived_version  # noqa: E402
from halo_tool_lab.netns import Lab, lab_unavailable_reason  # noqa: E402

MASTER_PRIO, BACKUP_PRIO = 100, 90
V3_10MS = Proto("v3-ipv4-10ms", 3, False, 0.01)
PROTOS = {"v2": V2_PASS, "v3": V3_IPV4, "v3-ipv6": V3_IPV6, "v3-10ms": V3_10MS}
PAIRS = {
    "kk": ("keepalived", "keepalived"),
    "hh": ("halo", "halo"),
    "hk": ("halo", "keepalived"),
    "kh": ("keepalived", "halo"),
}
SCENARIOS = ("kill9", "graceful")
START_TIMEOUT = 15.0


@dataclass
class Trial:
    proto: str
    pair: str  # "master->backup"
    scenario: str
    trial: int
    last_advert: float  # epoch seconds: master's last (kill9) or priority-0 (graceful) advert
    first_advert: float  # the backup's first advert as master
    takeover: float  # seconds
    rfc: float  # Master_Down_Interval (kill9) or Skew_Time (graceful) of the backup
    delta: float  # takeover - rfc


@dataclass
class Start:
    """A node started alone: ``halo run`` (or keepalived) -> its first advert as master."""

    proto: str
    impl: str
    took: float  # seconds from spawning the process to its first advert
    rfc: float  # Master_Down_Interval: the least it must wait
    delta: float = 0.0  # took - rfc: the start-up cost

    def __post_init__(self) -> None:
        self.delta = self.took - self.rfc


class BenchError(RuntimeError):
    pass


def pair_name(pair: tuple[str, str]) -> str:
    return f"{pair[0]}->{pair[1]}"


def run_pair(
    proto: Proto,
    pair: tuple[str, str],
    scenarios: Sequence[str],
    trials: int,
    workdir: Path,
    log: Any,
    starts: list[Start],
) -> list[Trial]:
    """All trials of one protocol and pair on a fresh lab; the backup runs throughout."""
    master_impl, backup_impl = pair
    out: list[Trial] = []
    with Lab(2, ipv6=proto.ipv6) as lab:
        h1, h2 = lab.hosts
        cap = lab.capture(workdir / "vrrp.pcap", filter="vrrp")
        wire = Wire(cap)
        backup = start_node(backup_impl, h2, proto, Spec(BACKUP_PRIO), workdir, "backup")
        # Alone, the backup becomes master; each trial's master then preempts it.
        first = wire.wait(backup.source, timeout=proto.master_down(BACKUP_PRIO) + START_TIMEOUT)
        starts.append(
            Start(
                proto.id,
                backup_impl,
                first[0].time - backup.started_at,
                proto.master_down(BACKUP_PRIO),
            )
        )
        print(
            f"  {proto.id:14} {backup_impl:22} start    {starts[-1].took:.4f} s "
            f"{starts[-1].delta * 1000:+7.1f} ms",
            file=log,
            flush=True,
        )
        n = 0
        for i in range(trials):
            for scenario in scenarios:
                n += 1
                master = start_node(
                    master_impl, h1, proto, Spec(MASTER_PRIO, "MASTER"), workdir, f"master-{n}"
                )
                out.append(one_trial(proto, pair, scenario, i, wire, master, backup))
                t = out[-1]
                print(
                    f"  {proto.id:14} {pair_name(pair):22} {scenario:8} #{i + 1:<3} "
                    f"{t.takeover:.4f} s  {t.delta * 1000:+7.2f} ms",
                    file=log,
                    flush=True,
                )
                if master.running:
                    master.kill9()
        backup.kill9()
        cap.stop()
    return out


def one_trial(
    proto: Proto,
    pair: tuple[str, str],
    scenario: str,
    index: int,
    wire: Wire,
    master: Node,
    backup: Node,
) -> Trial:
    started = time.time()
    # The master starts as backup, discards the (lower-priority) backup's adverts and
    # preempts after its Master_Down_Interval; the backup steps down on its first advert.
    settle = 2 if proto.version == 2 else 3
    advs = wire.wait(
        master.source,
        after=started,
        count=settle,
        timeout=proto.master_down(MASTER_PRIO) + START_TIMEOUT,
    )
    if not wire.quiet(backup.source, after=advs[0].time + 0.05):
        raise BenchError(f"{backup} did not step down for {master}")
    # Stop at a random point of the advert interval.
    time.sleep(random.uniform(0.1, 0.9) * proto.interval)
    timeout = proto.master_down(BACKUP_PRIO) + 5
    if scenario == "kill9":
        killed_at = time.time()  # the capture's clock (CLOCK_REALTIME)
        master.kill9()
        # The backup's first advert after the kill; one it sent as the master's first
        # crossed it (preemption) is older.
        first = wire.wait(backup.source, after=killed_at, timeout=timeout)[0]
        # (read once the backup has spoken: the capture may lag the kill by a frame)
        last = wire.last_from(master.source, before=first.time)
        assert last is not None
        if last.priority != MASTER_PRIO:
            raise BenchError(f"kill -9 of {master}: unexpected priority {last.priority}")
        rfc = proto.master_down(BACKUP_PRIO)
    else:
        master.stop()
        last = wire.wait(master.source, priority=0, after=advs[-1].time, timeout=5.0)[0]
        first = wire.wait(backup.source, after=last.time, timeout=timeout)[0]
        rfc = proto.skew(BACKUP_PRIO)
    takeover = first.time - last.time
    return Trial(
        proto.id,
        pair_name(pair),
        scenario,
        index,
        last.time,
        first.time,
        takeover,
        rfc,
        takeover - rfc,
    )


# ---------------------------------------------------------------------------------------------
# report


def summarise(trials: Sequence[Trial]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str], list[Trial]] = {}
    for t in trials:
        groups.setdefault((t.proto, t.scenario, t.pair), []).append(t)
    out = []
    for (proto, scenario, pair), ts in groups.items():
        takeovers = [t.takeover for t in ts]
        deltas = [t.delta for t in ts]
        out.append(
            {
                "proto": proto,
                "scenario": scenario,
                "pair": pair,
                "trials": len(ts),
                "rfc": ts[0].rfc,
                "median": statistics.median(takeovers),
                "min": min(takeovers),
                "max": max(takeovers),
                "median_delta": statistics.median(deltas),
                "max_delta": max(deltas),
            }
        )
    return out


def tables(summary: Sequence[dict[str, Any]], pairs: Sequence[str]) -> str:
    lines: list[str] = []
    cols = [pair_name(PAIRS[p]) for p in pairs]
    rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for s in summary:
        rows.setdefault((s["proto"], s["scenario"]), {})[s["pair"]] = s
    width = max(24, *(len(c) + 2 for c in cols))
    lines.append(
        "Takeover minus the RFC bound, median / max in ms (columns: master->backup; the backup's"
    )
    lines.append("implementation decides the takeover time)")
    lines.append("")
    head = f"{'protocol':14} {'scenario':9} {'RFC bound':>10}  " + "".join(
        f"{c:>{width}}" for c in cols
    )
    lines.append(head)
    lines.append("-" * len(head))
    for (proto, scenario), by_pair in rows.items():
        rfc = next(iter(by_pair.values()))["rfc"]
        cells = []
        for c in cols:
            cell = by_pair.get(c)
            cells.append(
                f"{cell['median_delta'] * 1000:+.2f} / {cell['max_delta'] * 1000:+.2f}"
                if cell
                else "-"
            )
        lines.append(
            f"{proto:14} {scenario:9} {rfc:>9.4f}s  " + "".join(f"{c:>{width}}" for c in cells)
        )
    lines.append("")
    lines.append("Takeover times in seconds")
    lines.append("")
    head = (
        f"{'protocol':14} {'scenario':9} {'pair (master->backup)':24} {'n':>3} "
        f"{'RFC':>8} {'median':>8} {'min':>8} {'max':>8} {'med-RFC':>9} {'max-RFC':>9}"
    )
    lines.append(head)
    lines.append("-" * len(head))
    for s in summary:
        lines.append(
            f"{s['proto']:14} {s['scenario']:9} {s['pair']:24} {s['trials']:>3} "
            f"{s['rfc']:>8.4f} {s['median']:>8.4f} {s['min']:>8.4f} {s['max']:>8.4f} "
            f"{s['median_delta'] * 1000:>+7.2f}ms {s['max_delta'] * 1000:>+7.2f}ms"
        )
    return "\n".join(lines)


def start_table(starts: Sequence[Start]) -> str:
    """Start to first advert beyond Master_Down_Interval, median / max per protocol."""
    lines = ["Start (process spawned -> first advert) minus Master_Down_Interval, median / max"]
    lines.append("")
    impls = sorted({s.impl for s in starts})
    head = f"{'protocol':14} {'MDI':>8}  " + "".join(f"{i:>22}" for i in impls)
    lines += [head, "-" * len(head)]
    for proto in dict.fromkeys(s.proto for s in starts):
        rows = [s for s in starts if s.proto == proto]
        cells = []
        for impl in impls:
            ds = [s.delta * 1000 for s in rows if s.impl == impl]
            cells.append(f"{statistics.median(ds):+.1f} / {max(ds):+.1f} ms" if ds else "-")
        lines.append(f"{proto:14} {rows[0].rfc:>7.4f}s  " + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


def _split(value: str, known: Sequence[str], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in known]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"unknown {what} {bad} (known: {', '.join(known)})")
    return items


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--trials", type=int, default=10, help="trials per scenario (default 10)")
    ap.add_argument(
        "--protos",
        default="v2,v3",
        type=lambda v: _split(v, list(PROTOS), "protocol"),
        help=f"comma-separated, of {', '.join(PROTOS)} (default v2,v3)",
    )
    ap.add_argument(
        "--pairs",
        default="kk,hh,hk,kh",
        type=lambda v: _split(v, list(PAIRS), "pair"),
        help="master+backup: kk keepalived, hh halo, hk halo->keepalived, kh keepalived->halo",
    )
    ap.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        type=lambda v: _split(v, SCENARIOS, "scenario"),
        help="kill9, graceful (default both)",
    )
    ap.add_argument(
        "--out", type=Path, help="JSON results (default bench/results/failover-<time>.json)"
    )
    ap.add_argument("--seed", type=int, help="seed for the random stop phase")
    args = ap.parse_args(argv)
    if args.trials < 1:
        ap.error("--trials must be at least 1")

    reason = lab_unavailable_reason()
    if reason is not None:
        print(f"failover benchmark: {reason}", file=sys.stderr)
        return 2
    ka = keepalived_version()
    pairs: list[str] = args.pairs
    if ka is None:
        skipped = [p for p in pairs if "keepalived" in PAIRS[p]]
        if skipped:
            print(f"keepalived is not installed: skipping {', '.join(skipped)}", file=sys.stderr)
        pairs = [p for p in pairs if p not in skipped]
        if not pairs:
            return 2
    random.seed(args.seed)

    write_bytecode()
    began = time.time()
    trials: list[Trial] = []
    starts: list[Start] = []
    print(
        f"failover benchmark: {args.trials} trials x {', '.join(args.scenarios)}, "
        f"halo {halo_version}, keepalived {ka or '-'}, Linux {platform.release()}, "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="halo-bench-failover-") as tmp:
        for proto_key in args.protos:
            for pair_key in pairs:
                workdir = Path(tmp) / f"{proto_key}-{pair_key}"
                workdir.mkdir()
                trials += run_pair(
                    PROTOS[proto_key],
                    PAIRS[pair_key],
                    args.scenarios,
                    args.trials,
                    workdir,
                    sys.stdout,
                    starts,
                )
    summary = summarise(trials)
    print()
    print(tables(summary, pairs))
    print()
    print(start_table(starts))
    elapsed = time.time() - began
    print(f"\n{len(trials)} trials in {elapsed:.0f} s")

    out = args.out or ROOT / "bench" / "results" / time.strftime("failover-%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "failover",
        "started": began,
        "elapsed": elapsed,
        "environment": {
            "halo": halo_version,
            "keepalived": ka,
            "kernel": platform.release(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "settings": {
            "trials": args.trials,
            "protos": {k: asdict(PROTOS[k]) for k in args.protos},
            "pairs": [pair_name(PAIRS[p]) for p in pairs],
            "scenarios": args.scenarios,
            "master_priority": MASTER_PRIO,
            "backup_priority": BACKUP_PRIO,
        },
        "summary": summary,
        "trials": [asdict(t) for t in trials],
        "starts": [asdict(s) for s in starts],
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
