"""A/B of halo's backup CPU: code variants side by side in one lab, against one master.

The bench's figures move by a third between runs on a shared machine; variants measured at
the same time, hearing the same master's adverts, do not. One halo master (priority 100) of
``--instances`` VRRPv3 instances and one halo backup (priority 90) per variant, all on one
segment; a variant is ``NAME=PATH``, PATH a directory put first on the backup's
``PYTHONPATH`` (a checkout's ``core/src``: ``git worktree add /tmp/base main``), or
``NAME=installed`` for the installed code. After ``--settle`` seconds, each backup's VRRP
process is read from ``/proc/PID/schedstat`` (CPU time to the nanosecond, and its runs:
wake-ups) over ``--windows`` windows of ``--window`` seconds.

    sudo uv run python bench/cpu/ab.py main=/tmp/base/core/src new=installed \
        main2=/tmp/base/core/src new2=installed

halo only: keepalived's side is bench/cpu/run.py's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from halo_tool_lab.netns import Lab, lab_unavailable_reason
from halo_tool_lab.testing import many_instances_config


def schedstat(pid: int) -> tuple[float, int]:
    """(seconds on a CPU, times run) of a process's main thread."""
    fields = Path(f"/proc/{pid}/schedstat").read_text().split()
    return int(fields[0]) / 1e9, int(fields[2])


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("variants", nargs="+", help="NAME=PATH or NAME=installed")
    p.add_argument("--instances", type=int, default=100)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--settle", type=float, default=60.0)
    p.add_argument("--window", type=float, default=20.0)
    p.add_argument("--windows", type=int, default=5)
    args = p.parse_args()
    variants = [v.split("=", 1) for v in args.variants]
    if any(len(v) != 2 for v in variants):
        p.error("variants are NAME=PATH or NAME=installed")
    reason = lab_unavailable_reason()
    if reason:
        raise SystemExit(f"bench/cpu/ab: {reason}")
    n, interval = args.instances, args.interval
    with (
        tempfile.TemporaryDirectory(prefix="halo-bench-ab-") as tmp,
        Lab(1 + len(variants), ipv6=False) as lab,
    ):
        work = Path(tmp)
        backups = []
        for (name, src), host in zip(variants, lab.hosts[1:], strict=True):
            cfg = work / f"{name}.yaml"
            cfg.write_text(many_instances_config(n, interval, 90, state_dir=work / f"{name}.st"))
            env = {} if src == "installed" else {"PYTHONPATH": src}
            argv = [sys.executable, "-m", "halo_core.cli", "run", "-c", str(cfg)]
            backups.append((name, host.spawn(*argv, log=work / f"{name}.log", env=env)))
        time.sleep(8)  # the backups settle (one becomes master until the master comes)
        cfg = work / "master.yaml"
        cfg.write_text(many_instances_config(n, interval, 100, state_dir=work / "master.st"))
        argv = [sys.executable, "-m", "halo_core.cli", "run", "-c", str(cfg)]
        lab.hosts[0].spawn(*argv, log=work / "master.log")
        time.sleep(args.settle)
        cpu: dict[str, list[float]] = {name: [] for name, _ in backups}
        for w in range(args.windows):
            before = {name: schedstat(proc.pid) for name, proc in backups}
            t0 = time.monotonic()
            time.sleep(args.window)
            elapsed = time.monotonic() - t0
            row = []
            for name, proc in backups:
                (c0, r0), (c1, r1) = before[name], schedstat(proc.pid)
                cpu[name].append((c1 - c0) / elapsed * 100)
                row.append(f"{name} {cpu[name][-1]:.3f} % {(r1 - r0) / elapsed:.0f}/s")
            print(f"window {w + 1}: " + "   ".join(row), flush=True)
        print("mean:     " + "   ".join(f"{k} {sum(v) / len(v):.3f} %" for k, v in cpu.items()))
        per = {k: sum(v) / len(v) / 100 / (n / interval) * 1e6 for k, v in cpu.items()}
        print("µs/advert " + "   ".join(f"{k} {v:.2f}" for k, v in per.items()))
        for name, _ in backups:
            text = (work / f"{name}.log").read_text(errors="replace")
            if "Traceback" in text:
                print(f"{name}: a traceback in its log", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
