"""CPU scheduling of halo's processes: the VRRP process first, always.

On a busy machine the VRRP process competes for the CPU with everything else, halo's own
worker included (thousands of checks a second, third-party checkers that spin). An advert
that waits for a CPU is a late advert, and at 10 ms adverts a few late ones are a false
takeover. keepalived's answer, taken here with its names (``global:`` in the
configuration): ``vrrp_rt_priority`` puts the VRRP process in the real-time class
(SCHED_RR), ahead of every normal process; ``vrrp_rlimit_rttime`` bounds the CPU it may use
without sleeping, so a bug cannot take a core for good; ``vrrp_priority`` and
``worker_priority`` (keepalived's ``checker_priority``) are nice values; ``vrrp_no_swap``
locks the VRRP process's memory.

The VRRP process asks for SCHED_RESET_ON_FORK, so that the worker and every script it
starts are normal processes again. What the kernel refuses (no root, no CAP_SYS_NICE, a
cgroup without a real-time budget) is a warning, never a reason not to run.

If the VRRP process does use ``vrrp_rlimit_rttime`` of CPU without sleeping, the kernel
sends SIGXCPU: halo drops to normal scheduling, says so, and goes back to real time
``RT_RETRY`` seconds later. A process that cannot even run that handler (stuck in C) is
killed at the hard limit, twice the soft one, and its service manager restarts it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import resource
import signal
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from halo_core.config.model import GlobalConfig

log = logging.getLogger("halo")

RT_RETRY = 10.0
"""Seconds after a SIGXCPU before the VRRP process asks for real-time scheduling again."""

_MCL_CURRENT, _MCL_FUTURE = 1, 2


def _refused(what: str, exc: OSError) -> None:
    log.warning("cannot %s: %s (running without it)", what, exc.strerror or exc)


def set_nice(value: int, what: str) -> bool:
    """Set this process's nice value; a warning if the kernel refuses."""
    if value == os.getpriority(os.PRIO_PROCESS, 0):
        return True
    try:
        os.setpriority(os.PRIO_PROCESS, 0, value)
    except OSError as exc:
        _refused(f"set the {what} process's nice value to {value}", exc)
        return False
    return True


def set_realtime(priority: int, rttime_us: int) -> bool:
    """SCHED_RR at ``priority`` (reset in children) with RLIMIT_RTTIME ``rttime_us``
    (hard limit twice that). False, with a warning, when refused."""
    try:
        hard = 2 * rttime_us
        resource.setrlimit(resource.RLIMIT_RTTIME, (rttime_us, hard))
    except (OSError, ValueError) as exc:
        # Without a bound, no real time: a runaway loop would own a core.
        log.warning("cannot limit real-time CPU (%s): running without real-time scheduling", exc)
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except OSError as exc:
        _refused(f"use real-time scheduling (SCHED_RR {priority})", exc)
        return False
    return True


def set_normal() -> None:
    """Back to SCHED_OTHER (what the SIGXCPU handler does)."""
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, os.sched_param(0))
    except OSError as exc:  # cannot happen for a process lowering itself; say so anyway
        _refused("leave real-time scheduling", exc)


def lock_memory() -> bool:
    """mlockall(MCL_CURRENT | MCL_FUTURE): the VRRP process is never swapped out."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
        _refused(
            "lock the VRRP process's memory",
            OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno())),
        )
        return False
    return True


def trim_heap() -> None:
    """Hand the C heap's free pages back to the kernel: start-up leaves holes in it (the
    module files read while importing, the verdict), about 0.6 MB of the VRRP process's
    resident memory that free() keeps, as only the heap's top is returned by itself."""
    # Nothing to give back without ctypes (an interpreter built without it) or with a C
    # library that lacks the call (musl).
    with contextlib.suppress(ImportError, OSError, AttributeError):
        from halo_core import cfunc

        cfunc.function("malloc_trim")(0)


class VrrpScheduling:
    """The VRRP process's scheduling, applied once it has started (start-up reads files
    and imports modules: CPU that is not urgent and would count against the rttime);
    and what start-up built is taken out of the garbage collector's sight."""

    def __init__(self, g: GlobalConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.priority = g.vrrp_rt_priority
        self.rttime_us = g.vrrp_rlimit_rttime
        self.nice = g.vrrp_priority
        self.no_swap = g.vrrp_no_swap
        self.loop = loop
        self.realtime = False
        self.overruns = 0  # SIGXCPUs received

    def apply(self) -> None:
        # What start-up built stays for good: the collector need not walk it again (a full
        # collection of it took tens of milliseconds, a stall that 10 ms adverts notice).
        gc.freeze()
        trim_heap()  # before mlockall, which would keep the free pages resident
        if self.nice:
            set_nice(self.nice, "VRRP")
        if self.no_swap:
            lock_memory()
        if self.priority:
            signal.signal(signal.SIGXCPU, self._on_xcpu)
            self.realtime = set_realtime(self.priority, self.rttime_us)
            if self.realtime:
                log.debug("VRRP process: SCHED_RR priority %d", self.priority)

    def _on_xcpu(self, signum: int, frame: FrameType | None) -> None:
        # Runs between two bytecodes of whatever hogs the CPU: leave real time first.
        set_normal()
        self.realtime = False
        self.overruns += 1
        log.warning(
            "VRRP process used %.0f ms of CPU without sleeping: normal scheduling for %gs",
            self.rttime_us / 1000,
            RT_RETRY,
        )
        self.loop.call_soon_threadsafe(self.loop.call_later, RT_RETRY, self._again)

    def _again(self) -> None:
        if self.priority and not self.realtime:
            self.realtime = set_realtime(self.priority, self.rttime_us)


def apply_worker(g: GlobalConfig) -> None:
    """The worker's nice value (it is a normal process: SCHED_RESET_ON_FORK)."""
    if g.worker_priority:
        set_nice(g.worker_priority, "worker")
