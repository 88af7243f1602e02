"""``halo`` with a sampler on its event loop: once a second, one JSON line with the time, its
PID, the number of asyncio tasks, open file descriptors and the resident set size goes to the
file named by ``HALO_SOAK_SAMPLES``. Nothing in halo changes: the sampler is a callback the
soak's event-loop policy adds to the loop ``asyncio.run`` creates.

    HALO_SOAK_SAMPLES=samples.jsonl python sampled_halo.py run -c halo.yaml
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

SAMPLE_EVERY = 1.0


def _rss_kb() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


class SampledPolicy(asyncio.DefaultEventLoopPolicy):
    def __init__(self, out: str) -> None:
        super().__init__()
        self.out = out

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        fh = open(self.out, "a", buffering=1)  # noqa: SIM115 - open as long as the loop runs

        def sample() -> None:
            record = {
                "t": time.time(),
                "pid": os.getpid(),
                "tasks": len(asyncio.all_tasks(loop)),
                "fds": len(os.listdir("/proc/self/fd")),
                "rss_kb": _rss_kb(),
            }
            fh.write(json.dumps(record) + "\n")
            loop.call_later(SAMPLE_EVERY, sample)

        loop.call_soon(sample)
        return loop


if __name__ == "__main__":
    asyncio.set_event_loop_policy(SampledPolicy(os.environ["HALO_SOAK_SAMPLES"]))
    from halo_core.cli import main

    sys.exit(main())
