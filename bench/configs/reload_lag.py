"""How long the event loop (and with it every VRRP timer) waits while a daemon reloads a
large configuration: a 10 ms ticker runs on the loop during ``Daemon.reload()`` of a file of
N VRRP instances, and its worst and 99th-percentile lateness are printed with the reload's
duration. The daemon is built, not started, so this needs neither root nor a lab; the last
instance has an unknown key, so the reload reads and validates everything, then refuses.

    uv run python bench/configs/reload_lag.py --instances 3000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from halo_core import plugins
from halo_core.config import load
from halo_core.daemon import Daemon
from halo_tool_lab.hostile import instances


def config(count: int) -> str:
    # an unknown key in the last instance: the whole file is read and validated, then the
    # reload is refused, so what is measured is the validation, not applying 3,000 instances
    return instances(count, tracking=False) + "    no_such_option: 1\n"


async def measure(path: Path, instances: int) -> None:
    loaded = plugins.load()
    path.write_text("vrrp_instances: {}\n")
    daemon = Daemon(load(str(path), loaded), loaded)
    path.write_text(config(instances))
    lags: list[float] = []
    done = False

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not done:
            before = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - before - 0.01)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.1)
    lags.clear()
    started = time.perf_counter()
    ok = await daemon.reload()
    took = time.perf_counter() - started
    done = True
    await task
    lags.sort()
    p99 = lags[int(len(lags) * 0.99)] if lags else 0.0
    print(
        f"reload of {instances} instances: {'applied' if ok else 'refused'} in {took:.2f} s;"
        f" event loop late by at most {max(lags, default=0) * 1000:.0f} ms"
        f" (p99 {p99 * 1000:.0f} ms, {len(lags)} ticks of 10 ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=3000, help="VRRP instances in the file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(measure(Path(tmp) / "halo.yaml", args.instances))
    return 0


if __name__ == "__main__":
    sys.exit(main())
