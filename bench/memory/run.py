"""Memory of halo's processes beside keepalived's, in one run.

Runs, each in a lab namespace of its own: halo with the seeds' master/backup configuration
(examples/master-backup/master.yaml; its status API, on by default, is all a worker would
do, so the VRRP process holds the API's socket and runs alone until a first connection; run
it without $NOTIFY_SOCKET, which gives the systemd plugin work), halo with the same instance
plus HTTP and SSH checks, and keepalived 2.2.7 with the same instance (its
three processes: parent, VRRP, checker). Each halo's total is printed beside keepalived's,
with the ratio.
After a settling time it reads each process's RSS (/proc/PID/status) and PSS
(/proc/PID/smaps_rollup: shared pages split among the processes sharing them). Then it
runs ``halo status`` against the seed, which starts its worker, and after the settling
time again reads the seed's processes ("halo seed after `halo status`"), and prints how long
that first ``halo status`` took (the worker's start included). The seed's worker writes the
modules it held when it stops to ``WORKDIR/seed-worker-modules.txt`` (``composition.py
--worker-modules`` compares its steps with them). The status API off (``global:
{status_api: {enabled: false}}``) is no longer a row of its own: it measured the same as the
seed (19.6 against 19.5 MB RSS, 13.1 MB PSS both; docs/processes.md).

First it writes the bytecode of halo and its dependencies, as an installation has it (as
bench/failover does): in a shell with PYTHONDONTWRITEBYTECODE set and no bytecode yet,
every process would compile its modules from source, which left 0.6 MB more in the VRRP
process and 14 MB more in the worker with HTTP and SSH checks (aiohttp, and asyncssh, which
the ssh check no longer loads) -
memory an installed halo does not use. ``--from-source`` measures that case, provided no
bytecode was written before (an earlier run's __pycache__ directories are still read:
remove those under core/, plugins/ and the environment's site-packages first).

    sudo uv run python bench/memory/run.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "master-backup" / "master.yaml"

CHECKS = """
checks:
  web:
    type: http
    connect_ip: 192.0.2.11
    connect_port: 80
    url: [{path: /}]
  sshd:
    type: ssh
    connect_ip: 192.0.2.11
    username: monitor
    password: secret
"""

KEEPALIVED = """
global_defs {
    router_id LVS_DEVEL
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    virtual_ipaddress {
        192.0.2.16
        192.0.2.17
        192.0.2.18
    }
}
"""


def status_kb(pid: int, key: str, name: str = "status") -> int:
    with open(f"/proc/{pid}/{name}") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def memory(pid: int) -> tuple[float, float]:
    return status_kb(pid, "VmRSS:") / 1024, status_kb(pid, "Pss:", "smaps_rollup") / 1024


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def tree(pid: int) -> list[int]:
    out = [pid]
    for child in children(pid):
        out += tree(child)
    return out


TRANSIENT = "while a check runs: "


def halo_memory(pid: int) -> dict[str, tuple[float, float]]:
    """halo's processes: the VRRP process and its workers (its children). A check's child
    process (the ssh check runs OpenSSH's ssh, a script check its script) lives only while
    its check runs: found at the moment of reading, it is listed apart ("while a check runs:
    NAME") and not in the total, as keepalived's MISC_CHECK scripts would not be. The bench's
    ssh check has no server to reach, so its ssh waits out the check's time-out and is
    nearly always there; against a live server it lives 50-100 ms a check."""
    pids = [pid, *children(pid)]
    names = ["VRRP process"] + [f"worker {n}" for n in range(1, len(pids))]
    out = {n: memory(p) for n, p in zip(names, pids, strict=True)}
    for worker in pids[1:]:
        for child in children(worker):
            with contextlib.suppress(OSError):  # it may end while being read
                comm = Path(f"/proc/{child}/comm").read_text().strip()
                out[f"{TRANSIENT}{comm} ({child})"] = memory(child)
    return out


def resident(procs: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """RSS and PSS of the processes that stay (check children left out)."""
    kept = [v for n, v in procs.items() if not n.startswith(TRANSIENT)]
    return sum(r for r, _ in kept), sum(p for _, p in kept)


def bench(settle: float, work: Path) -> tuple[dict[str, dict[str, tuple[float, float]]], float]:
    from halo_tool_lab.halo import Halo
    from halo_tool_lab.keepalived import Keepalived
    from halo_tool_lab.netns import Lab, lab_unavailable_reason

    reason = lab_unavailable_reason()
    if reason:
        raise SystemExit(f"bench/memory: {reason}")
    seed = EXAMPLE.read_text()
    results: dict[str, dict[str, tuple[float, float]]] = {}
    with Lab(3) as lab:
        h1, h2, h3 = lab.hosts
        # the seed's worker writes the modules it holds when it stops (composition.py
        # --worker-modules compares them with its steps)
        modules = work / "seed-worker-modules.txt"
        modules.unlink(missing_ok=True)
        os.environ["HALO_WORKER_MODULES"] = str(modules)
        try:
            plain = Halo(h1, seed, work, name="seed")
        finally:
            del os.environ["HALO_WORKER_MODULES"]
        checked = Halo(h2, seed + CHECKS, work, name="checks")
        keepalived = Keepalived(h3, KEEPALIVED, work)
        time.sleep(settle)
        runs = (
            ("halo seed", plain),
            ("halo + http/ssh checks", checked),
        )
        for label, halo in runs:
            results[label] = halo_memory(halo.proc.pid)
        ka = tree(keepalived.pid)
        names = ["parent"] + [f"child {n}" for n in range(1, len(ka))]
        results["keepalived"] = {n: memory(p) for n, p in zip(names, ka, strict=True)}
        # the first connection to the status API starts the seed's worker
        cmd = [sys.executable, "-m", "halo_core.cli", "status", "-c", str(plain.config_path)]
        t0 = time.monotonic()
        subprocess.run(cmd, capture_output=True, timeout=60, check=True)
        first = time.monotonic() - t0
        time.sleep(settle)
        results["halo seed after `halo status`"] = halo_memory(plain.proc.pid)
        results["keepalived"] = results.pop("keepalived")  # printed last
        plain.stop()
        checked.stop()
        keepalived.stop()
    return results, first


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--settle", type=float, default=5.0, help="seconds before reading")
    p.add_argument("--workdir", default="bench/results/memory")
    p.add_argument(
        "--from-source",
        action="store_true",
        help="do not write bytecode first (with PYTHONDONTWRITEBYTECODE set and none written"
        " before, every process compiles its modules from source)",
    )
    args = p.parse_args()
    if not args.from_source:
        from halo_tool_lab.halo import write_bytecode

        write_bytecode()
    work = Path(args.workdir).resolve()  # state_dir: the status API needs an absolute path
    work.mkdir(parents=True, exist_ok=True)
    results, first = bench(args.settle, work)
    (work / "result.json").write_text(json.dumps(results, indent=2))
    print(f"{'':50}{'RSS MB':>10}{'PSS MB':>10}")
    for label, procs in results.items():
        for name, (rss, pss) in procs.items():
            print(f"{label + ': ' + name:50}{rss:>10.1f}{pss:>10.1f}")
        total_rss, total_pss = resident(procs)
        print(f"{label + ': all processes':50}{total_rss:>10.1f}{total_pss:>10.1f}")
    ka_rss, ka_pss = (sum(x) for x in zip(*results["keepalived"].values(), strict=True))
    print(f"\nall processes, halo / keepalived ({ka_rss:.1f} MB RSS, {ka_pss:.1f} MB PSS)")
    for label, procs in results.items():
        if label != "keepalived":
            rss, pss = resident(procs)
            print(f"{label:50}{rss / ka_rss:>9.2f}x{pss / ka_pss:>9.2f}x")
    print(f"\nthe seed's first `halo status` (its worker starting): {first:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
