"""Benchmark of the load-balancer backends: a full sync of 1 000 real servers in 100 services,
and one pool change (a real server down) in that table.

    uv run python bench/backends/bench_backends.py nftables
    scripts/ipvs-vm "uv run --no-sync python bench/backends/bench_backends.py ipvs"

Each run builds a one-host lab (a network namespace it creates and removes) and measures
inside it, with the backend in-process as the daemon runs it (its ``handle`` awaited, so a
time is until the kernel has the change), fed the events the pools would publish:

* **full sync**: the backend starts on an empty kernel and gets the 100 services' states
  (all published at once, as at daemon start) — nftables: one skeleton transaction plus
  the batched updates; IPVS: every service and real server created over netlink.
* **rebuild** (nftables only): one atomic transaction replacing the whole table, as after
  drift or a restart with a kept table.
* **pool change**: one service loses one of its 10 servers (and gets it back: both are
  timed), the service's chain rewritten / one IPVS destination deleted or added.
* **reconcile**: the periodic pass (nftables: list the table and compare; IPVS: get and
  dump every service) when nothing differs.

Results are printed as one JSON document (medians and ranges, milliseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

SERVICES = 100
SERVERS = 10  # per service: 1 000 real servers


def config_text(backend: str, state_dir: str, algo: str) -> str:
    lines = [
        f"global: {{state_dir: {state_dir}}}",
        "backends:",
        f"  lb: {{type: {backend}, reconcile_interval: 0}}",
        "virtual_servers:",
    ]
    for s in range(SERVICES):
        addr = f"203.0.113.{s // 50 + 1}"
        servers = ", ".join(
            f"{{address: 198.51.{100 + i // 250}.{i % 250 + 1}, port: 8080}}"
            for i in range(s * SERVERS, (s + 1) * SERVERS)
        )
        lines.append(
            f"  - {{name: vs{s}, address: {addr}, port: {1000 + s}, lb_algo: {algo},"
            f" real_servers: [{servers}]}}"
        )
    return "\n".join(lines) + "\n"


def stats(samples: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in samples)
    return {
        "median_ms": round(statistics.median(ms), 2),
        "min_ms": round(ms[0], 2),
        "max_ms": round(ms[-1], 2),
        "n": len(ms),
    }


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    await fn()
    return time.perf_counter() - t0


async def measure(backend_type: str, algo: str, rounds: int) -> dict[str, Any]:
    from halo_core import plugins
    from halo_core.bus import EventBus
    from halo_core.config import load
    from halo_core.events import PoolChanged, PoolMember
    from halo_core.plugin_api import PluginContext
    from halo_core.scheduler import LoopClock, Scheduler

    tmp = Path(tempfile.mkdtemp(prefix="halo-bench-"))
    path = tmp / "halo.yaml"
    path.write_text(config_text(backend_type, str(tmp / "state"), algo))
    loaded = plugins.load()
    cfg = load(str(path), loaded)
    ptype = loaded.type("backend", backend_type)
    bus, clock = EventBus(), LoopClock()
    ctx = PluginContext("lb", cfg.model, bus, clock, Scheduler(clock))
    backend = ptype.load_factory()(cfg.model.backends["lb"].config, ctx)
    pools = {vs.label: vs for vs in cfg.model.virtual_servers}

    def event(label: str, drop: int | None = None) -> PoolChanged:
        vs = pools[label]
        members = tuple(
            PoolMember(str(rs.address), rs.port, rs.weight)
            for i, rs in enumerate(vs.real_servers)
            if i != drop
        )
        return PoolChanged(
            virtual_server=label, service=vs, members=members, quorum=True, reason="bench"
        )

    out: dict[str, Any] = {"backend": backend_type, "lb_algo": algo}

    async def full_sync() -> None:
        await backend.start()
        await asyncio.gather(*(backend.handle(event(label)) for label in pools))

    out["full_sync"] = stats([await timed(full_sync)])
    if backend_type == "nftables":
        samples = []
        for _ in range(rounds):

            async def rebuild() -> None:
                async with backend.lock:
                    await backend._rebuild("bench")

            samples.append(await timed(rebuild))
        out["rebuild"] = stats(samples)
    down, up = [], []
    for r in range(rounds):
        label = f"vs{(r * 37) % SERVICES}"
        down.append(await timed(lambda label=label: backend.handle(event(label, drop=3))))
        up.append(await timed(lambda label=label: backend.handle(event(label))))
    out["pool_change_down"] = stats(down)
    out["pool_change_up"] = stats(up)
    out["reconcile"] = stats([await timed(backend.reconcile) for _ in range(max(3, rounds // 4))])
    await backend.stop()
    await bus.close()
    return out


def inner(args: argparse.Namespace) -> int:
    results = [asyncio.run(measure(args.backend, algo, args.rounds)) for algo in args.algo]
    print(json.dumps({"results": results}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("backend", choices=["nftables", "ipvs"])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--algo", action="append", help="lb_algo (repeatable)")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.algo = args.algo or (["wrr", "sh"] if args.backend == "nftables" else ["wrr"])
    if args.inner:
        return inner(args)
    from halo_tool_lab.netns import Lab, lab_unavailable_reason

    reason = lab_unavailable_reason()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    argv2 = [sys.executable, os.path.abspath(__file__), args.backend, "--inner"]
    argv2 += ["--rounds", str(args.rounds)] + [a for x in args.algo for a in ("--algo", x)]
    t0 = time.perf_counter()
    with Lab(["director"], ipv6=False) as lab:
        # Measured inside a namespace of its own: nothing outside it is ever touched.
        cp = lab.host("director").run(*argv2, check=False, timeout=3600)
    if cp.returncode != 0:
        print(cp.stdout, cp.stderr, file=sys.stderr)
        return 1
    doc = json.loads(cp.stdout.strip().splitlines()[-1])
    doc["uname"] = os.uname().release
    doc["python"] = sys.version.split()[0]
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    if args.backend == "nftables":
        doc["nft"] = subprocess.run(
            ["nft", "--version"], capture_output=True, text=True
        ).stdout.strip()
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
