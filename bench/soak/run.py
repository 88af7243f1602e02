"""The soak (#15 §7): two halo daemons, 100 VRRPv3 instances at 0.1 s each, 500 TCP checks
on the master, a reload every 10 s and a random fault from the matrix every 30 s, for an
hour by default. Prints the reloads and faults, false takeovers, and per process (each
daemon's VRRP process, a's worker) the RSS after the warm-up (start, end, slope per hour,
the curve), open descriptors and asyncio tasks (first and second half) and tracebacks.
Each false takeover is explained from what surrounded it: every process's loop stalls
(with the CPU used meanwhile and the stack), b's raw socket drops, the load, and with
``--capture`` when a's adverts reached b; the seconds around it stay in the work directory
(``takeover-*.pcap``, ``takeover-*.log``) beside the full logs. Scenario: tests/soak/soak.py.

    sudo uv run python bench/soak/run.py [--seconds 3600] [--check-interval 1]
        [--faults hup-storm-a,sigstop-b] [--capture]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "soak"))

from halo_tool_lab.netns import lab_unavailable_reason  # noqa: E402
from soak import FAULTS, run_soak  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3600.0, help="how long")
    p.add_argument("--instances", type=int, default=100, help="VRRP instances per daemon")
    p.add_argument("--checks", type=int, default=500, help="TCP checks on the master")
    p.add_argument("--check-interval", type=float, default=1.0, help="seconds")
    p.add_argument("--reload-every", type=float, default=10.0, help="seconds")
    p.add_argument("--fault-every", type=float, default=30.0, help="seconds")
    p.add_argument("--warmup", type=float, default=120.0, help="seconds not judged")
    p.add_argument("--seed", type=int, default=15, help="of the fault choice")
    p.add_argument("--workdir", type=Path, default=ROOT / "bench" / "results" / "soak")
    p.add_argument(
        "--faults", default="", help=f"comma-separated kinds to choose from ({', '.join(FAULTS)})"
    )
    p.add_argument(
        "--capture", action="store_true", help="record the adverts reaching b (explains takeovers)"
    )
    args = p.parse_args()
    faults = tuple(k for k in args.faults.split(",") if k)
    unknown = [k for k in faults if k not in FAULTS]
    if unknown:
        p.error(f"unknown fault {unknown[0]!r} (known: {', '.join(FAULTS)})")
    reason = lab_unavailable_reason()
    if reason:
        raise SystemExit(f"bench/soak: {reason}")
    report = run_soak(
        args.seconds,
        args.workdir,
        instances=args.instances,
        checks=args.checks,
        check_interval=args.check_interval,
        reload_every=args.reload_every,
        fault_every=args.fault_every,
        warmup=args.warmup,
        seed=args.seed,
        faults=faults,
        capture=args.capture,
        log=lambda s: print(s, flush=True),
    )
    print(report.text())
    ok = not report.false_takeovers and all(
        d.tracebacks == 0 and d.constant and d.samples > 0 for d in report.daemons
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
