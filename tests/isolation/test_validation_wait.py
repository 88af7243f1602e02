"""The VRRP process waits for a reload's validating child asleep (``handover.collect``).

It runs in real time under RLIMIT_RTTIME, which counts CPU used without sleeping. A pipe at
its end stays readable, and watching it after the verdict had arrived woke the loop at once,
again and again, until the child was reaped: on a loaded machine, where the child waits for a
CPU to exit, that spin used up the 200 ms of RLIMIT_RTTIME during SIGHUP storms. The process
then ran at normal priority for 10 s and was starved past Master_Down_Interval: the soak's
false takeovers (bench/soak)."""

from __future__ import annotations

import asyncio
import os
import pickle
import selectors
import time

from halo_core import handover

LINGER = 0.5  # seconds the child lives on after giving its verdict


class CountingSelector(selectors.EpollSelector):
    """The stock selector, counting the loop's wake-ups."""

    wakeups = 0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self.wakeups += 1
        return super().select(timeout)


def test_the_loop_sleeps_until_the_validating_child_has_exited() -> None:
    data = pickle.dumps(handover.Verdict(version="9.9"))
    selector = CountingSelector()

    async def collect_from_a_lingering_child() -> tuple[handover.Verdict, float]:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: the verdict at once, the exit LINGER later
            try:
                os.close(read_end)
                os.write(write_end, data)
                os.close(write_end)
                time.sleep(LINGER)
            finally:
                os._exit(0)
        os.close(write_end)
        start = time.monotonic()
        found = await handover.collect(handover.Child(pid, read_end))
        return found, time.monotonic() - start

    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(selector)) as runner:
        before = selector.wakeups
        found, waited = runner.run(collect_from_a_lingering_child())
        wakeups = selector.wakeups - before
    assert found.failure is None and found.version == "9.9", found
    assert waited >= LINGER * 0.9  # the child was reaped, not left behind
    # the data, its end, the child's exit and the task's steps: a handful, not a spin
    assert wakeups < 20, f"{wakeups} wake-ups of the loop in {waited:.2f} s"


def test_exited_reaps_a_child_that_is_gone_already() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    time.sleep(0.05)
    status = asyncio.run(handover.exited(pid))
    assert os.waitstatus_to_exitcode(status) == 3
