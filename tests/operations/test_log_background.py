"""The VRRP process's log is written by a thread of its own (``halo_core.log``,
``setup(background=True)``): a stderr that does not take lines - a journal that is behind,
a file on a stalled disk - never holds the event loop that sends adverts."""

from __future__ import annotations

import json
import select
import subprocess
import sys
from pathlib import Path

LOGGER = """
import json, logging, sys, time
from halo_core import log
log.setup("info", "text", background=True)
logger = logging.getLogger("halo")
slowest = 0.0
for n in range({lines}):
    start = time.monotonic()
    logger.info("line %d %s", n, "x" * 1000)
    slowest = max(slowest, time.monotonic() - start)
print(json.dumps({{"slowest": slowest}}), flush=True)
"""


def test_a_stderr_that_takes_nothing_does_not_block_the_caller() -> None:
    # 20,000 lines of 1 kB into a pipe nobody reads: it is full after 64 kB.
    proc = subprocess.Popen(
        [sys.executable, "-c", LOGGER.format(lines=20_000)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    # its answer, before anyone reads its stderr (a blocked logger never gives one)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    proc.kill()
    proc.communicate()
    # Written directly, the 65th line blocks for good; the slowest call's time is the CPU
    # scheduling of this shared machine, only printed.
    assert line, "the logging process never finished its loop"
    print("slowest log call:", json.loads(line)["slowest"])


def test_every_line_is_written_in_order_by_the_exit(tmp_path: Path) -> None:
    err = tmp_path / "stderr"
    with err.open("w") as fh:
        proc = subprocess.run(
            [sys.executable, "-c", LOGGER.format(lines=3_000)],
            stdout=subprocess.PIPE,
            stderr=fh,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 0
    numbers = [int(x.split()[3]) for x in err.read_text().splitlines()]
    assert numbers == list(range(3_000))
