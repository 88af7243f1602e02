"""The soak's sampler, loaded by every Python process of a sampled daemon (the VRRP process
and its worker) because the soak puts this directory on their ``PYTHONPATH``. When
``HALO_SOAK_SAMPLES`` names a file, the first event loop the process creates gets a callback
that once a second appends one JSON line: the time, the PID, the process's role ("worker"
or "vrrp"), its asyncio tasks, open descriptors, resident set size, scheduling policy, the
longest loop lag of that second, the load average and (this network namespace's) raw
socket drops.

With ``HALO_SOAK_STALL`` (seconds, e.g. 0.05) it also watches the loop closely: a
heartbeat every 10 ms, and each gap between two beats longer than that is a "stall" line
with what the process did meanwhile (CPU it used, context switches, page faults: own work,
or waiting for a CPU or a disk) and, taken by a watchdog thread while the stall lasts, the
main thread's stack. That is the evidence of a false takeover: was the master's loop held,
and by what; was the backup's. Nothing in halo changes; a process that never creates a
loop writes nothing.
"""

from __future__ import annotations

import os

_OUT = os.environ.get("HALO_SOAK_SAMPLES")
SAMPLE_EVERY = 1.0  # seconds
BEAT_EVERY = 0.01

if _OUT:
    import asyncio
    import json
    import queue
    import resource
    import sys
    import threading
    import time
    import traceback

    _original_init = asyncio.BaseEventLoop.__init__
    _sampled: list[bool] = []
    _STALL = float(os.environ.get("HALO_SOAK_STALL") or 0)

    def _rss_kb() -> int:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))

    def _raw_drops() -> int:
        """Datagrams the kernel dropped on this namespace's raw sockets (a full receive
        buffer): the last column of /proc/net/raw (and raw6)."""
        total = 0
        for name in ("/proc/net/raw", "/proc/net/raw6"):
            try:
                with open(name) as fh:
                    next(fh)
                    total += sum(int(line.split()[-1]) for line in fh)
            except (OSError, ValueError, StopIteration):
                pass
        return total

    def _usage() -> tuple[float, int, int, int, int]:
        """CPU seconds, voluntary / involuntary context switches, minor / major faults."""
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime, ru.ru_nvcsw, ru.ru_nivcsw, ru.ru_minflt, ru.ru_majflt

    def _init(self: asyncio.BaseEventLoop, *args: object, **kwargs: object) -> None:
        _original_init(self, *args, **kwargs)  # type: ignore[arg-type]
        if _sampled:  # one loop per process: a helper thread's loop is not the daemon's
            return
        _sampled.append(True)
        loop = self
        # ``python -m halo_core.worker``: argv[0] is the module's file by now
        worker = sys.argv[0].replace(os.sep, ".").endswith("halo_core.worker.py")
        role = "worker" if worker else "vrrp"
        pid = os.getpid()
        netns = os.stat("/proc/self/ns/net").st_ino  # which lab host (bench/failover/hold)
        # Written by a thread of its own: a write to a file can block for seconds on a busy
        # disk, and the sampler must not stall the loop it measures (it did: 7.6 s).
        pending: queue.SimpleQueue[str] = queue.SimpleQueue()

        def writer() -> None:
            with open(str(_OUT), "a", buffering=1) as fh:
                while True:
                    fh.write(pending.get())

        worst = [0.0]  # the longest beat gap since the last sample
        beat = [time.monotonic(), _usage()]
        main = threading.get_ident()
        stacks: dict[float, str] = {}  # beat time -> the main thread's stack, taken in a stall

        def write(record: dict[str, object]) -> None:
            if os.getpid() == pid:  # not in a forked child (the reload's validation)
                pending.put(json.dumps(record) + "\n")

        def sample() -> None:
            if loop.is_closed():
                return
            write(
                {
                    "t": time.time(),
                    "pid": pid,
                    "role": role,
                    "netns": netns,
                    "tasks": len(asyncio.all_tasks(loop)),
                    "fds": len(os.listdir("/proc/self/fd")),
                    "rss_kb": _rss_kb(),
                    "policy": os.sched_getscheduler(0),
                    "lag_max": round(worst[0], 4),
                    "load": os.getloadavg()[0],
                    "raw_drops": _raw_drops(),
                }
            )
            worst[0] = 0.0
            loop.call_later(SAMPLE_EVERY, sample)

        def heartbeat() -> None:
            if loop.is_closed():
                return
            now, usage = time.monotonic(), _usage()
            gap = now - beat[0]
            worst[0] = max(worst[0], gap - BEAT_EVERY)
            if _STALL and gap - BEAT_EVERY >= _STALL:
                before = beat[1]
                write(
                    {
                        "t": time.time(),
                        "pid": pid,
                        "role": role,
                        "netns": netns,
                        "stall": round(gap, 4),
                        "cpu": round(usage[0] - before[0], 4),
                        "vcsw": usage[1] - before[1],
                        "ivcsw": usage[2] - before[2],
                        "minflt": usage[3] - before[3],
                        "majflt": usage[4] - before[4],
                        "policy": os.sched_getscheduler(0),
                        "stack": stacks.pop(beat[0], ""),
                    }
                )
            stacks.clear()
            beat[0], beat[1] = now, usage
            loop.call_later(BEAT_EVERY, heartbeat)

        def watchdog() -> None:
            # A beat overdue by the stall threshold: what is the main thread doing? (Needs
            # the GIL: a main thread held in C code shows where it entered it.)
            while not loop.is_closed():
                time.sleep(_STALL / 2)
                last = beat[0]
                if time.monotonic() - last >= _STALL + BEAT_EVERY and last not in stacks:
                    frame = sys._current_frames().get(main)
                    if frame is not None:
                        stacks[last] = "".join(traceback.format_stack(frame, limit=12))

        threading.Thread(target=writer, name="soak-writer", daemon=True).start()
        loop.call_soon(sample)
        loop.call_soon(heartbeat)
        if _STALL:
            threading.Thread(target=watchdog, name="soak-watchdog", daemon=True).start()

    asyncio.BaseEventLoop.__init__ = _init  # type: ignore[method-assign]
