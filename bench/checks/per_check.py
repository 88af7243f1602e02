"""CPU per TCP check: halo's worker beside keepalived's checker process, in one run (#16 §3).

A three-host lab: h1 runs the real servers (N listening ports, ``tcp_servers.c``: accepts and
closes, counting the connections of each peer address), h2 runs ``keepalived -C`` (its
checker process only, with the IPVS shim of ``ipvs_shim.c`` preloaded since the kernel has
no ip_vs) with one TCP_CHECK per real server, and h3 runs ``halo run`` with one ``tcp`` check
per real server. Both check the same N real servers at the same interval at the same time.
Over a measuring window the bench reads each side's CPU time (utime + stime from /proc) and
the connections the servers accepted from each side (the checks performed), and prints the
CPU per check of both and halo's over keepalived's.

keepalived's side is its checker process (the one that runs the checks) plus its parent;
halo's is the worker (where checks run) plus the VRRP process (idle here). The checking
process alone is shown too.

    sudo uv run python bench/checks/per_check.py --checks 500,2000 --intervals 1,0.1

Each (checks, interval) pair is one lab; ``--seconds`` is the measuring window.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

from keepalived_checker import (
    KeepalivedChecker,
    build_shim,
    compile_c,
    shim_unavailable_reason,
    tcp_check_config,
)
from run import children, cpu_seconds

# --------------------------------------------------------------------------- the real servers

SERVERS_SOURCE = Path(__file__).resolve().with_name("tcp_servers.c")


def read_counts(path: Path) -> tuple[float, dict[str, int]]:
    """(time, connections accepted per peer address) as tcp_servers.c last wrote them."""
    data = json.loads(path.read_text())
    return float(data["t"]), {str(k): int(v) for k, v in data["by_peer"].items()}


# --------------------------------------------------------------------------- halo's side


def halo_config(server: str, ports: list[int], interval: float, timeout: float) -> str:
    lines = ["global:", "  log_format: text", "checks:"]
    for n, port in enumerate(ports):
        lines.append(
            f"  t{n}: {{type: tcp, connect_ip: {server}, connect_port: {port},"
            f" interval: {interval:g}, timeout: {timeout:g}}}"
        )
    return "\n".join(lines) + "\n"


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            todo += children(current)
    return found


# --------------------------------------------------------------------------- one run


def measure(
    checks: int, interval: float, args: argparse.Namespace, build: Path
) -> dict[str, object]:
    from halo_tool_lab.halo import Halo
    from halo_tool_lab.netns import Lab

    work = Path(args.workdir) / f"{checks}x{interval:g}"
    work.mkdir(parents=True, exist_ok=True)
    ports = list(range(args.base, args.base + checks))
    with Lab(3, ipv6=False) as lab:
        servers, ka_host, halo_host = lab.hosts
        counts = work / "counts.json"
        counts.unlink(missing_ok=True)
        servers.spawn(build / "tcp_servers", counts, *map(str, ports), log=work / "servers.log")
        deadline = time.time() + 30
        while not counts.exists() and time.time() < deadline:
            time.sleep(0.05)
        server = str(servers.ipv4)
        ka_conf = tcp_check_config(server, ports, interval, args.timeout)
        keepalived = KeepalivedChecker(ka_host, ka_conf, work, build / "ipvs_shim.so")
        halo = Halo(halo_host, halo_config(server, ports, interval, args.timeout), work)
        time.sleep(args.warmup)
        ka_checker = keepalived.checker_pid()
        if not keepalived.running or ka_checker is None:
            raise SystemExit(f"keepalived's checker is not running:\n{keepalived.log[-2000:]}")
        if not halo.running:
            raise SystemExit(f"halo exited:\n{halo.log[-2000:]}")
        halo_pids = descendants(halo.proc.pid)
        if len(halo_pids) < 2:
            raise SystemExit(f"halo runs no worker process:\n{halo.log[-2000:]}")
        side_pids = {"keepalived": [keepalived.pid, ka_checker], "halo": halo_pids}
        checking = {"keepalived": ka_checker, "halo": halo_pids[1]}  # [1]: the worker
        t0, c0 = read_counts(counts)
        cpu0 = {pid: cpu_seconds(pid) for pids in side_pids.values() for pid in pids}
        time.sleep(args.seconds)
        cpu1 = {pid: cpu_seconds(pid) for pids in side_pids.values() for pid in pids}
        t1, c1 = read_counts(counts)
        halo.stop()
        keepalived.stop()
    elapsed = t1 - t0
    peers = {"keepalived": str(ka_host.ipv4), "halo": str(halo_host.ipv4)}
    result: dict[str, object] = {
        "checks": checks,
        "interval": interval,
        "configured_checks_per_s": round(checks / interval),
        "seconds": round(elapsed, 2),
    }
    for side, pids in side_pids.items():
        done = c1.get(peers[side], 0) - c0.get(peers[side], 0)
        total = sum(cpu1[p] - cpu0[p] for p in pids)
        checker = cpu1[checking[side]] - cpu0[checking[side]]
        result[side] = {
            "checks_done": done,
            "checks_per_s": round(done / elapsed),
            "cpu_s": round(total, 3),
            "cpu_core_fraction": round(total / elapsed, 4),
            "cpu_us_per_check": round(total / done * 1e6, 1) if done else None,
            "checker_process_cpu_s": round(checker, 3),
            "checker_process_us_per_check": round(checker / done * 1e6, 1) if done else None,
        }
    ka, ho = result["keepalived"], result["halo"]
    assert isinstance(ka, dict) and isinstance(ho, dict)
    if ka["cpu_us_per_check"] and ho["cpu_us_per_check"]:
        result["ratio_halo_over_keepalived"] = round(
            ho["cpu_us_per_check"] / ka["cpu_us_per_check"], 2
        )
    return result


def print_result(result: dict[str, object]) -> None:
    ka, ho = result["keepalived"], result["halo"]
    assert isinstance(ka, dict) and isinstance(ho, dict)
    print(
        f"\n{result['checks']} TCP checks every {result['interval']:g} s "
        f"(= {result['configured_checks_per_s']}/s configured), {result['seconds']} s window"
    )
    print(f"{'':34}{'keepalived':>12}{'halo':>12}{'ratio':>8}")
    rows = (
        ("checks performed per second", "checks_per_s"),
        ("CPU (fraction of a core)", "cpu_core_fraction"),
        ("CPU per check (µs)", "cpu_us_per_check"),
        ("checking process per check (µs)", "checker_process_us_per_check"),
    )
    for label, key in rows:
        k, h = ka[key], ho[key]
        ratio = f"{h / k:.2f}" if isinstance(k, int | float) and k and h is not None else ""
        print(f"{label:34}{k!s:>12}{h!s:>12}{ratio:>8}")


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checks", default="500", help="comma-separated check counts (500)")
    p.add_argument("--intervals", default="1", help="comma-separated intervals in s (1)")
    p.add_argument("--seconds", type=float, default=20.0, help="measuring window (20)")
    p.add_argument("--warmup", type=float, default=8.0, help="seconds before measuring (8)")
    p.add_argument("--timeout", type=float, default=1.0, help="connect timeout (1)")
    p.add_argument("--base", type=int, default=20000, help="first server port")
    p.add_argument("--workdir", default="bench/results/per_check")
    p.add_argument("--json", action="store_true", help="print JSON only")
    args = p.parse_args()
    try:
        counts = [int(c) for c in args.checks.split(",")]
        intervals = [float(i) for i in args.intervals.split(",")]
    except ValueError:
        raise SystemExit(
            "per_check: --checks and --intervals are comma-separated numbers"
        ) from None
    if any(c < 1 or c > 20000 for c in counts) or any(i <= 0 for i in intervals):
        raise SystemExit("per_check: checks must be 1..20000 and intervals positive")
    if os.geteuid() != 0:
        raise SystemExit("per_check: needs root (network namespaces)")
    from halo_tool_lab.netns import lab_unavailable_reason

    reason = lab_unavailable_reason() or shim_unavailable_reason()
    if reason:
        raise SystemExit(f"per_check: {reason}")
    results = []
    with tempfile.TemporaryDirectory(prefix="halo-per-check-") as tmp:
        build = Path(tmp)
        build_shim(build)
        compile_c(SERVERS_SOURCE, build / "tcp_servers")
        for checks in counts:
            for interval in intervals:
                result = measure(checks, interval, args, build)
                results.append(result)
                if not args.json:
                    print_result(result)
    out = Path(args.workdir) / "result.json"
    out.write_text(json.dumps(results, indent=2))
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
