"""What halo's processes' resident memory is made of: module groups, in MB.

For each process (the VRRP process, the seed's worker, the worker with HTTP and SSH checks)
a fresh interpreter imports the groups of modules that process holds, in the order it
imports them, and reads its RSS (/proc/self/status) after each group: a group's figure is
what it adds on top of the groups before it (the modules it shares with them are counted
there). No namespace, no daemon: the imports alone, which are nearly all of these processes'
memory (run.py measures the running processes). Each process is measured ``--runs`` times;
a figure is the range over the runs. The bytecode is written first, as an installation has it
(``halo_tool_lab.halo.write_bytecode``; ``--from-source`` leaves it out).

The worker is handed its configuration and its plugins' entry points (docs/processes.md):
it imports no YAML, no ``importlib.metadata``, and asyncio without ``ssl`` until a plugin
imports it (``halo_core.tls``), so its steps import the plugins' modules by the entry points
this script discovers. ``--worker-modules FILE`` compares the seed worker's steps with the
modules a running seed worker held (the file run.py has it write when it stops,
``$HALO_WORKER_MODULES``): every module the steps leave out, or add, is listed.

    uv run python bench/memory/composition.py
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys

Step = tuple[str, list[str]]

# A pseudo-module: every module the installed plugins register with (entry point group
# halo.plugins), as the worker loads them: by the entry points' values it is handed, with
# no discovery of its own (the probe is given the modules, found here).
PLUGIN_REGISTRATIONS = "<halo.plugins entry points>"
# A pseudo-module: asyncio's optional TLS marked absent (as the VRRP process does).
NO_TLS = "<no ssl>"
# A pseudo-module: the worker's asyncio, imported with ssl deferred (halo_core.tls.deferred).
DEFERRED_TLS = "<ssl deferred>"

RUNTIME = [
    "halo_core.daemon",
    "halo_core.processes",
    "halo_core.handover",
    "halo_core.cli",
    "halo_core.vrrp.engine",
    "halo_core.realtime",
]
MODEL: list[Step] = [
    ("dataclasses, typing, ipaddress", ["dataclasses", "typing", "ipaddress"]),
    ("halo's model and schema", ["halo_core.config.model", "halo_core.events"]),
]
VRRP: list[Step] = [
    ("logging, json", ["logging", "json"]),
    ("asyncio (without ssl)", [NO_TLS, "asyncio"]),
    *MODEL,
    ("halo_core runtime (daemon, VRRP)", RUNTIME),
    ("address backend (vip)", ["halo_backend_vip.runtime", "halo_backend_vip.claims"]),
]
WORKER: list[Step] = [
    ("logging, json", ["logging", "json"]),
    ("asyncio (ssl deferred: halo_core.tls)", [DEFERRED_TLS]),
    *MODEL,
    (
        "halo_core runtime (daemon, worker)",
        [
            "runpy",  # python -m halo_core.worker
            "_pickle",  # its input, unpickled
            "halo_core.config.document",
            "halo_core.daemon",
            "halo_core.processes",
            "halo_core.handover",
            "halo_core.realtime",
            "halo_core.worker",
        ],
    ),
    ("validation (of the document it is handed)", ["halo_core.validation"]),
    ("pluggy, hook specs", ["pluggy", "halo_core.hookspecs", "halo_core.plugins"]),
    ("plugin registrations (all installed)", [PLUGIN_REGISTRATIONS]),
    (
        "hook runtimes (status API, systemd, routes)",
        ["halo_tool_status.server", "halo_tool_systemd.notify", "halo_backend_routes.hooks"],
    ),
]
CHECKS: list[Step] = [
    *WORKER,
    # halo_lib_http imports ssl only for an https request: no TLS here (aiohttp, which
    # imported it, was 11.5 MB, and ssl 4.4 MB).
    ("HTTP client (halo_lib_http)", ["halo_lib_http"]),
    ("HTTP checker runtime", ["halo_checker_http.runtime"]),
    # The ssh check runs OpenSSH's ssh as a child process per check: its runtime is all the
    # worker holds for it (asyncssh and the parts of cryptography it loaded were 15.1 MB).
    ("SSH checker runtime (runs OpenSSH's ssh)", ["halo_checker_ssh.runtime"]),
]
SEED_WORKER = "worker (seed: status API, systemd, routes)"
PROCESSES: dict[str, list[Step]] = {
    "VRRP process (seed)": VRRP,
    SEED_WORKER: WORKER,
    "worker (+ HTTP and SSH checks)": CHECKS,
}

# The probe imports nothing before its first reading (the steps come as a Python literal);
# it prints its RSS after each step, then the modules it holds. (A running worker holds
# halo_core.worker as __main__: the one difference --worker-modules finds.)
PROBE = r"""
import gc, importlib, sys

def rss_kb():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))

figures = [rss_kb()]
steps, plugins = eval(sys.argv[1])  # literals this script wrote
for label, modules in steps:
    for name in modules:
        if name == NO_TLS:
            sys.modules["ssl"] = None
        elif name == DEFERRED_TLS:
            from halo_core import tls

            tls.deferred()
        elif name == PLUGINS:
            for value in plugins:
                importlib.import_module(value.partition(":")[0].strip())
        else:
            importlib.import_module(name)
    gc.collect()
    figures.append(rss_kb())
print(figures)
print(sorted(name for name, module in sys.modules.items() if module is not None))
"""


def plugin_modules() -> list[str]:
    """The installed plugins' entry point values (the worker is handed them)."""
    from halo_core.plugins import discover

    return [found.value for found in discover()]


def measure(steps: list[Step], plugins: list[str]) -> tuple[list[int], set[str]]:
    """RSS in kB of a fresh interpreter at its start and after each step, and the modules
    it holds at the end."""
    code = (
        f"NO_TLS, DEFERRED_TLS, PLUGINS = {NO_TLS!r}, {DEFERRED_TLS!r},"
        f" {PLUGIN_REGISTRATIONS!r}\n" + PROBE
    )
    argv = [sys.executable, "-c", code, repr((steps, plugins))]
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"bench/memory/composition: a probe failed: {last}")
    figures, modules = out.stdout.splitlines()[-2:]
    return ast.literal_eval(figures), set(ast.literal_eval(modules))


def compare(held: set[str], path: str) -> None:
    """Print how the seed worker's steps differ from what a running seed worker held."""
    try:
        with open(path) as fh:
            running = set(fh.read().split())
    except OSError as exc:
        raise SystemExit(f"bench/memory/composition: cannot read {path}: {exc.strerror}") from None
    for what, names in (
        ("held by the running worker, not imported by the steps", running - held),
        ("imported by the steps, not held by the running worker", held - running),
    ):
        print(f"\nseed worker, {what}: {len(names)}")
        print("  " + (" ".join(sorted(names)) or "none"))


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
    p.add_argument(
        "--worker-modules",
        metavar="FILE",
        help="compare the seed worker's steps with the modules a running one held (run.py"
        " writes them to WORKDIR/seed-worker-modules.txt)",
    )
    args = p.parse_args()
    if args.runs < 1:
        raise SystemExit("bench/memory/composition: --runs must be at least 1")
    if not args.from_source:
        from halo_tool_lab.halo import write_bytecode

        write_bytecode()
    plugins = plugin_modules()
    held: dict[str, set[str]] = {}
    for process, steps in PROCESSES.items():
        measured = [measure(steps, plugins) for _ in range(args.runs)]
        runs = [figures for figures, _ in measured]
        held[process] = measured[0][1]
        print(f"{process:50}{'MB':>12}")
        labels = ["interpreter and site", *(label for label, _ in steps)]
        for i, label in enumerate(labels):
            added = [(r[i] - (r[i - 1] if i else 0)) / 1024 for r in runs]
            print(f"  {label:48}{spread(added):>12}")
        print(f"  {'total':48}{spread([r[-1] / 1024 for r in runs]):>12}")
    if args.worker_modules:
        compare(held[SEED_WORKER], args.worker_modules)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
