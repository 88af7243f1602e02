"""#16 §6: the VRRP process's real-time scheduling (docs/processes.md, "CPU scheduling"):
bounded by RLIMIT_RTTIME, so a runaway loop drops it back to normal scheduling, and a
warning, not a failure, where the kernel refuses it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import asyncio, logging, os, sys, time
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stdout)
from halo_core.config.model import GlobalConfig
from halo_core import realtime

async def main() -> None:
    if {drop}:
        os.setuid(65534)  # nobody: no CAP_SYS_NICE (everything is imported already)
    g = GlobalConfig(vrrp_rt_priority=3, vrrp_rlimit_rttime={rttime}, vrrp_priority={nice})
    s = realtime.VrrpScheduling(g, asyncio.get_running_loop())
    s.apply()
    print("realtime", s.realtime, os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK)
    child = os.fork()
    if child == 0:
        os._exit(os.sched_getscheduler(0))
    print("child", os.waitpid(child, 0)[1] >> 8)
    if {spin}:
        end = time.monotonic() + 1.0
        while time.monotonic() < end:  # a runaway loop, never sleeping
            pass
        print("after spin", os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK, s.overruns)

asyncio.run(main())
"""


def probe(*, rttime: int = 200_000, nice: int = 0, spin: bool = False, drop: bool = False) -> str:
    code = PROBE.format(rttime=rttime, nice=nice, spin=spin, drop=drop)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_SYS_NICE)")


@needs_root
def test_real_time_is_reset_in_children_and_a_runaway_loop_drops_it() -> None:
    out = probe(rttime=50_000, spin=True)
    assert f"realtime True {os.SCHED_RR}" in out, out
    assert f"child {os.SCHED_OTHER}" in out, out  # the worker and scripts: normal processes
    assert "used 50 ms of CPU without sleeping: normal scheduling for 10s" in out, out
    assert f"after spin {os.SCHED_OTHER} 1" in out, out


@needs_root
def test_without_permission_it_is_a_warning_not_a_failure() -> None:
    out = probe(drop=True, nice=-5)
    assert "WARNING cannot set the VRRP process's nice value to -5" in out, out
    assert "WARNING cannot use real-time scheduling (SCHED_RR 3): Operation not permitted" in out
    assert f"realtime False {os.SCHED_OTHER}" in out, out
