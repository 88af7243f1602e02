"""CPU and memory benchmark: many VRRP instances, halo and keepalived 2.2.7 in one run.

For each implementation, on a fresh two-host network-namespace lab: a backup (priority 90)
and a master (priority 100) run the same ``--instances`` VRRPv3 instances (VRIDs 1..N, one
virtual address each, ``--interval`` seconds). Once the master holds every instance and the
pair has run ``--warmup`` seconds more (a long-running pair, not one just started), the CPU
time of every process of each node (``/proc/PID/stat`` utime + stime, all processes in the
host's namespace) is read at the start and the end of a ``--duration`` window, and the
backup's log is watched for instances it takes over in that window (false takeovers: the
master never stops). At the end: RSS and PSS of each node (``/proc/PID/smaps_rollup``).

Run as root::

    uv run python bench/cpu/run.py [--instances 100] [--interval 0.1] [--duration 30] [--warmup 60]
    uv run python bench/cpu/run.py --rt default,1,0    # each one's default, then both alike

It prints a table with both implementations and the ratio, per scheduling of the VRRP
processes (``--rt``: by default each one's own, halo real-time and keepalived normal; a
number gives both the same ``vrrp_rt_priority``), and writes ``bench/results/cpu-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

from halo_core import __version__ as halo_version  # noqa: E402
from halo_tool_lab.halo import Halo  # noqa: E402
from halo_tool_lab.keepalived import Keepalived, keepalived_version  # noqa: E402
from halo_tool_lab.netns import Host, Lab, lab_unavailable_reason  # noqa: E402
from halo_tool_lab.testing import many_instances_config  # noqa: E402

MASTER_PRIO, BACKUP_PRIO = 100, 90
IMPLS = ("keepalived", "halo")
TICKS = os.sysconf("SC_CLK_TCK")
# What each implementation logs on entering MASTER (one line per instance).
MASTER_LINE = {"halo": "entering MASTER state", "keepalived": "Entering MASTER STATE"}


def vip(i: int) -> str:
    return f"198.51.100.{i}/32" if i < 256 else f"203.0.113.{i - 255}/32"


def keepalived_config(n: int, interval: float, priority: int, rt: int | None = None) -> str:
    out = ["global_defs {", "    vrrp_version 3"]
    out += [f"    vrrp_rt_priority {rt}"] if rt else []
    out += ["}"]
    for i in range(1, n + 1):
        out += [
            f"vrrp_instance VI_{i} {{",
            "    state BACKUP",
            "    interface eth0",
            f"    virtual_router_id {i}",
            f"    priority {priority}",
            f"    advert_int {interval:g}",
            f"    virtual_ipaddress {{\n        {vip(i)}\n    }}",
            "}",
        ]
    return "\n".join(out) + "\n"


def start(
    impl: str, host: Host, n: int, interval: float, priority: int, workdir: Path, rt: int | None
) -> Any:
    """``rt``: the VRRP process's real-time priority (0: normal scheduling; None: each
    implementation's default, 1 for halo, normal for keepalived)."""
    name = f"{impl}-{host.name}"
    if impl == "halo":
        text = many_instances_config(n, interval, priority, state_dir=workdir / f"{name}.state")
        if rt is not None:
            text = text.replace("global:\n", f"global:\n  vrrp_rt_priority: {rt}\n", 1)
        return Halo(host, text, workdir, name=name)
    return Keepalived(host, keepalived_config(n, interval, priority, rt), workdir, name=name)


def log_text(node: Any) -> str:
    path: Path = node.log_path
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def cpu_seconds(host: Host) -> float:
    total = 0
    for pid in host.pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def wakeups(host: Host) -> int:
    """Context switches of the node's processes' main threads so far (voluntary: each time
    one slept and was woken; involuntary: preempted)."""
    total = 0
    for pid in host.pids():
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split()[1])
    return total


def memory_kb(host: Host) -> tuple[int, int, int]:
    """(processes, RSS kB, PSS kB) summed over the host's processes."""
    rss = pss = count = 0
    for pid in host.pids():
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        count += 1
        for line in text.splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return count, rss, pss


def wait_for(what: str, ok: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def run_impl(
    impl: str,
    n: int,
    interval: float,
    duration: float,
    workdir: Path,
    rt: int | None = None,
    warmup: float = 0.0,
) -> dict[str, Any]:
    with Lab(2, ipv6=False) as lab:
        h1, h2 = lab.hosts
        backup = start(impl, h2, n, interval, BACKUP_PRIO, workdir, rt)
        # Alone, the backup becomes master of everything; the master then preempts it.
        wait_for(
            f"{impl} backup to hold {n} instances",
            lambda: log_text(backup).count(MASTER_LINE[impl]) >= n,
            30 + n * 0.05,
        )
        master = start(impl, h1, n, interval, MASTER_PRIO, workdir, rt)
        wait_for(
            f"{impl} master to hold {n} instances",
            lambda: log_text(master).count(MASTER_LINE[impl]) >= n,
            30 + n * 0.05,
        )
        time.sleep(max(2.0, 5 * interval))  # let the backup's step-downs and GARPs settle
        # A long-running pair, not one just started: a halo master's adverts take 30-60 s
        # to merge into the clumps its backup reads them in (bench/cpu/README.md). Both
        # implementations wait the same; the window's false takeovers are counted after it.
        time.sleep(warmup)
        taken = log_text(backup).count(MASTER_LINE[impl])
        lost = log_text(master).count(MASTER_LINE[impl])
        w2, c1, c2, t0 = wakeups(h2), cpu_seconds(h1), cpu_seconds(h2), time.monotonic()
        time.sleep(duration)
        c1e, c2e, t1, w2e = cpu_seconds(h1), cpu_seconds(h2), time.monotonic(), wakeups(h2)
        elapsed = t1 - t0
        false_takeovers = log_text(backup).count(MASTER_LINE[impl]) - taken
        master_changes = log_text(master).count(MASTER_LINE[impl]) - lost
        mem_m, mem_b = memory_kb(h1), memory_kb(h2)
        return {
            "impl": impl,
            "elapsed": elapsed,
            "master_cpu_pct": (c1e - c1) / elapsed * 100,
            "backup_cpu_pct": (c2e - c2) / elapsed * 100,
            "backup_wakeups_per_s": (w2e - w2) / elapsed,
            "false_takeovers": false_takeovers + master_changes,
            "master_processes": mem_m[0],
            "master_rss_kb": mem_m[1],
            "master_pss_kb": mem_m[2],
            "backup_processes": mem_b[0],
            "backup_rss_kb": mem_b[1],
            "backup_pss_kb": mem_b[2],
        }


def table(rows: Sequence[dict[str, Any]], n: int, interval: float) -> str:
    by = {r["impl"]: r for r in rows}
    measures = [
        ("master CPU %", "master_cpu_pct", "{:.2f}"),
        ("backup CPU %", "backup_cpu_pct", "{:.2f}"),
        ("backup wake-ups/s", "backup_wakeups_per_s", "{:.0f}"),
        ("false takeovers", "false_takeovers", "{:d}"),
        ("master processes", "master_processes", "{:d}"),
        ("master RSS MB", "master_rss_kb", "{:.1f}"),
        ("master PSS MB", "master_pss_kb", "{:.1f}"),
        ("backup RSS MB", "backup_rss_kb", "{:.1f}"),
        ("backup PSS MB", "backup_pss_kb", "{:.1f}"),
    ]
    rate = n / interval
    lines = [
        f"{n} instances, VRRPv3, {interval:g} s adverts ({rate:.0f} adverts/s each way)",
        "",
        f"{'measure':18} {'keepalived':>12} {'halo':>12} {'halo/keepalived':>16}",
        "-" * 61,
    ]
    for label, key, fmt in measures:
        cells = []
        values = []
        for impl in IMPLS:
            r = by.get(impl)
            v = r[key] / 1024 if r is not None and key.endswith("_kb") else (r or {}).get(key)
            values.append(v)
            cells.append(fmt.format(v) if v is not None else "-")
        k, h = values
        ratio = f"{h / k:.2f}x" if k and h is not None and not key.startswith("false") else ""
        lines.append(f"{label:18} {cells[0]:>12} {cells[1]:>12} {ratio:>16}")
    for impl in IMPLS:
        r = by.get(impl)
        if r is not None and r["false_takeovers"] == 0 and impl == "halo":
            per = r["backup_cpu_pct"] / 100 / rate * 1e6
            lines.append(f"\nhalo backup: {per:.1f} us of CPU per received advert")
    return "\n".join(lines)


def filter_cost(runs: int = 200_000) -> dict[str, float] | None:
    """ns per advert of halo's kernel filter of repeats (halo_core.vrrp.repeatfilter), run by
    the kernel on one advert ``runs`` times (BPF_PROG_TEST_RUN): a repeat it drops and an
    advert it passes. This work is done where the packet is received (softirq), outside any
    process's CPU time above; so is, for keepalived's backup and for adverts halo reads,
    queueing the packet to the socket and waking the process. None: no filter here."""
    import socket

    from halo_core.vrrp import repeatfilter

    advert = bytes.fromhex("45c000200001000001700000c000020ce0000012")
    advert += bytes([0x31, 7, 100, 1, 0, 10, 0x12, 0x34, 198, 51, 100, 7])
    ethernet = bytes.fromhex("01005e0000120248410000010800")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            f = repeatfilter.RepeatFilter(sock)
            try:
                f.arm(advert)
                _, dropped = repeatfilter.run_program(f.program, ethernet + advert, runs)
                other = advert[:22] + b"\x00" + advert[23:]  # priority 0: passed
                _, passed = repeatfilter.run_program(f.program, ethernet + other, runs)
            finally:
                f.close()
    except OSError:
        return None
    return {"dropped_ns": float(dropped), "passed_ns": float(passed)}


SCHEDULING = {
    None: "each one's default (halo real-time priority 1, keepalived normal)",
    0: "both normal",
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--instances", type=int, default=100, help="VRRP instances (default 100)")
    ap.add_argument("--interval", type=float, default=0.1, help="advert interval (default 0.1)")
    ap.add_argument("--duration", type=float, default=30.0, help="measured seconds (default 30)")
    ap.add_argument(
        "--warmup",
        type=float,
        default=60.0,
        help="seconds the settled pair runs before the window, for each implementation"
        " (default 60)",
    )
    ap.add_argument(
        "--impls", default=",".join(IMPLS), help="comma-separated: keepalived, halo (default both)"
    )
    ap.add_argument(
        "--rt",
        default="default",
        help="real-time priority of both VRRP processes: 1-99, 0 (normal scheduling) or"
        " 'default' (each implementation's own: halo 1, keepalived normal); a comma-separated"
        " list runs the pair once per scheduling, e.g. default,1,0 (default: default)",
    )
    ap.add_argument("--out", type=Path, help="JSON results (default bench/results/cpu-<time>.json)")
    args = ap.parse_args(argv)
    try:
        schedulings = [None if x.strip() == "default" else int(x) for x in str(args.rt).split(",")]
    except ValueError:
        ap.error("--rt: 0 to 99 or 'default', comma-separated")
    if any(rt is not None and not 0 <= rt <= 99 for rt in schedulings):
        ap.error("--rt must be 0 to 99")
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    if not 1 <= args.instances <= 255:
        ap.error("--instances must be 1 to 255 (one VRID each)")
    if any(i not in IMPLS for i in impls):
        ap.error(f"--impls: known are {', '.join(IMPLS)}")
    if not 0.01 <= args.interval <= 40.95 or args.duration <= 0:
        ap.error("--interval must be 0.01 to 40.95 s and --duration positive")
    if args.warmup < 0:
        ap.error("--warmup must not be negative")
    reason = lab_unavailable_reason()
    if reason is not None:
        print(f"cpu benchmark: {reason}", file=sys.stderr)
        return 2
    ka = keepalived_version()
    if ka is None and "keepalived" in impls:
        print("keepalived is not installed: measuring halo only", file=sys.stderr)
        impls = [i for i in impls if i != "keepalived"]
    print(
        f"cpu benchmark: halo {halo_version}, keepalived {ka or '-'}, Linux {platform.release()},"
        f" {os.cpu_count()} CPUs; {args.duration:g} s per implementation after {args.warmup:g} s"
        " of warm-up",
        flush=True,
    )
    rows = []
    began = time.time()
    with tempfile.TemporaryDirectory(prefix="halo-bench-cpu-") as tmp:
        for rt in schedulings:
            sched = SCHEDULING.get(rt, f"both real-time, priority {rt}")
            print(f"\nVRRP scheduling: {sched}", flush=True)
            these = []
            for impl in impls:
                workdir = Path(tmp) / f"{impl}-{rt}"
                workdir.mkdir()
                these.append(
                    run_impl(
                        impl, args.instances, args.interval, args.duration, workdir, rt, args.warmup
                    )
                    | {"rt": rt}
                )
                print(f"  {impl}: {these[-1]}", flush=True)
            print()
            print(f"VRRP scheduling: {sched}")
            print(table(these, args.instances, args.interval))
            rows += these
    cost = filter_cost() if "halo" in impls else None
    if cost is not None:
        print(
            f"\nhalo's kernel filter of repeats (BPF_PROG_TEST_RUN): {cost['dropped_ns']:.0f} ns"
            f" per repeat dropped, {cost['passed_ns']:.0f} ns per advert passed to the process"
            " (softirq time, in no process's CPU above)"
        )
    out = args.out or ROOT / "bench" / "results" / time.strftime("cpu-%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "cpu",
        "started": began,
        "environment": {
            "halo": halo_version,
            "keepalived": ka,
            "kernel": platform.release(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "settings": vars(args) | {"out": str(out)},
        "results": rows,
        "kernel_filter": cost,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
