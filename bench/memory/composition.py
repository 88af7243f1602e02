"""What halo's processes' resident memory is made of: module groups, in MB.

For each process (the VRRP process, the seed's worker, the worker with HTTP and SSH checks)
a fresh interpreter imports the groups of modules that process holds, in the order it
imports them, and reads its RSS (/proc/self/status) after each group: a group's figure is
what it adds on top of the groups before it (the modules it shares with them are counted
there). No namespace, no daemon: the imports alone, which are nearly all of these processes'
memory (run.py measures the running processes). Each process is measured ``--runs`` times;
a figure is the range over the runs. The bytecode is written first, as an installation has it
(``halo_tool_lab.halo.write_bytecode``; ``--from-source`` leaves it out).

    uv run python bench/memory/composition.py
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys

Step = tuple[str, list[str]]

# A pseudo-module: every module the installed plugins register with (entry point group
# halo.plugins), as the worker loads them.
PLUGIN_REGISTRATIONS = "<halo.plugins entry points>"
# Pseudo-modules: asyncio's optional TLS marked absent (as the VRRP process does), and the
# mark taken back (so that `ssl` is imported in the next step).
NO_TLS, TLS_BACK = "<no ssl>", "<ssl back>"

RUNTIME = [
    "halo_core.daemon",
    "halo_core.processes",
    "halo_core.handover",
    "halo_core.cli",
    "halo_core.vrrp.engine",
    "halo_core.realtime",
]
COMMON: list[Step] = [
    ("logging, json", ["logging", "json"]),
    ("asyncio (without ssl)", [NO_TLS, "asyncio"]),
    ("dataclasses, typing, ipaddress", ["dataclasses", "typing", "ipaddress"]),
    ("halo's model and schema", ["halo_core.config.model", "halo_core.events"]),
]
VRRP: list[Step] = [
    *COMMON,
    ("halo_core runtime (daemon, VRRP)", RUNTIME),
    ("address backend (vip)", ["halo_backend_vip.runtime", "halo_backend_vip.claims"]),
]
WORKER: list[Step] = [
    *COMMON,
    ("ssl (asyncio loads OpenSSL)", [TLS_BACK, "ssl"]),
    ("halo_core runtime (daemon, worker)", [*RUNTIME, "halo_core.worker"]),
    ("YAML and the config loader", ["yaml", "halo_core.config.loader"]),
    ("plugin discovery (importlib.metadata)", ["importlib.metadata", "email.parser"]),
    ("pluggy, hook specs", ["pluggy", "halo_core.hookspecs", "halo_core.plugins"]),
    ("plugin registrations (all installed)", [PLUGIN_REGISTRATIONS]),
    (
        "hook runtimes (status API, systemd, routes)",
        ["halo_tool_status.server", "halo_tool_systemd.notify", "halo_backend_routes.hooks"],
    ),
]
CHECKS: list[Step] = [
    *WORKER,
    ("aiohttp", ["aiohttp"]),
    ("HTTP checker runtime", ["halo_checker_http.runtime"]),
    # The ssh check runs OpenSSH's ssh as a child process per check: its runtime is all the
    # worker holds for it (asyncssh and the parts of cryptography it loaded were 15.1 MB).
    ("SSH checker runtime (runs OpenSSH's ssh)", ["halo_checker_ssh.runtime"]),
]
PROCESSES: dict[str, list[Step]] = {
    "VRRP process (seed)": VRRP,
    "worker (seed: status API, systemd, routes)": WORKER,
    "worker (+ HTTP and SSH checks)": CHECKS,
}

# The probe imports nothing before its first reading (the steps come as a Python literal).
PROBE = r"""
import gc, importlib, sys

def rss_kb():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))

figures = [rss_kb()]
for label, modules in eval(sys.argv[1]):  # a literal this script wrote
    for name in modules:
        if name == NO_TLS:
            sys.modules["ssl"] = None
        elif name == TLS_BACK:
            del sys.modules["ssl"]
        elif name == PLUGINS:
            from importlib.metadata import entry_points

            for ep in entry_points(group="halo.plugins"):
                ep.load()
        else:
            importlib.import_module(name)
    gc.collect()
    figures.append(rss_kb())
print(figures)
"""


def measure(steps: list[Step]) -> list[int]:
    """RSS in kB of a fresh interpreter at its start and after each step."""
    code = (
        f"NO_TLS, TLS_BACK, PLUGINS = {NO_TLS!r}, {TLS_BACK!r}, {PLUGIN_REGISTRATIONS!r}\n" + PROBE
    )
    out = subprocess.run([sys.executable, "-c", code, repr(steps)], capture_output=True, text=True)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"bench/memory/composition: a probe failed: {last}")
    figures: list[int] = ast.literal_eval(out.stdout)
    return figures


def spread(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.2f}" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}-{high:.2f}"


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs", type=int, default=3, help="interpreters per process")
    p.add_argument(
        "--from-source", action="store_true", help="do not write bytecode first (see run.py)"
    )
    args = p.parse_args()
    if args.runs < 1:
        raise SystemExit("bench/memory/composition: --runs must be at least 1")
    if not args.from_source:
        from halo_tool_lab.halo import write_bytecode

        write_bytecode()
    for process, steps in PROCESSES.items():
        runs = [measure(steps) for _ in range(args.runs)]
        print(f"{process:50}{'MB':>12}")
        labels = ["interpreter and site", *(label for label, _ in steps)]
        for i, label in enumerate(labels):
            added = [(r[i] - (r[i - 1] if i else 0)) / 1024 for r in runs]
            print(f"  {label:48}{spread(added):>12}")
        print(f"  {'total':48}{spread([r[-1] / 1024 for r in runs]):>12}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
