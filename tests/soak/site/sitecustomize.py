"""The soak's sampler, loaded by every Python process of a sampled daemon (the VRRP process
and its worker) because the soak puts this directory on their ``PYTHONPATH``. When
``HALO_SOAK_SAMPLES`` names a file, the first event loop the process creates gets a callback
that once a second appends one JSON line: the time, the PID, the process's role ("worker"
or "vrrp"), its asyncio tasks, open descriptors and resident set size. Nothing in halo
changes; a process that never creates a loop writes nothing.
"""

from __future__ import annotations

import os

_OUT = os.environ.get("HALO_SOAK_SAMPLES")
SAMPLE_EVERY = 1.0

if _OUT:
    import asyncio
    import json
    import sys
    import time

    _original_init = asyncio.BaseEventLoop.__init__
    _sampled: list[bool] = []

    def _rss_kb() -> int:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))

    def _init(self: asyncio.BaseEventLoop, *args: object, **kwargs: object) -> None:
        _original_init(self, *args, **kwargs)  # type: ignore[arg-type]
        if _sampled:  # one loop per process: a helper thread's loop is not the daemon's
            return
        _sampled.append(True)
        loop = self
        # ``python -m halo_core.worker``: argv[0] is the module's file by now
        worker = sys.argv[0].replace(os.sep, ".").endswith("halo_core.worker.py")
        role = "worker" if worker else "vrrp"
        fh = open(str(_OUT), "a", buffering=1)  # noqa: SIM115 - open as long as the loop runs

        def sample() -> None:
            if loop.is_closed():
                return
            record = {
                "t": time.time(),
                "pid": os.getpid(),
                "role": role,
                "tasks": len(asyncio.all_tasks(loop)),
                "fds": len(os.listdir("/proc/self/fd")),
                "rss_kb": _rss_kb(),
            }
            fh.write(json.dumps(record) + "\n")
            loop.call_later(SAMPLE_EVERY, sample)

        loop.call_soon(sample)

    asyncio.BaseEventLoop.__init__ = _init  # type: ignore[method-assign]
