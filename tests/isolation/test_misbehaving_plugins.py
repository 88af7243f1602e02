"""#15 §3: a checker, notifier or backend that misbehaves is isolated. It is reported with its
plugin's name, a check counts as failed (never UP), and nothing it does reaches the event
loop's caller: not SystemExit, not KeyboardInterrupt, not a swallowed cancellation."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import types
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from halo_checker_misbehave import Misbehave, MisbehaveCheck

from halo_core import checks, plugins
from halo_core import daemon as daemon_module
from halo_core.bus import EventBus
from halo_core.checks import CheckRunner
from halo_core.config import load_text
from halo_core.daemon import Daemon
from halo_core.events import BackendFailed, Event, PriorityChanged, VrrpStateChanged
from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import Backend, BackendConfig, CheckResult, CheckTarget, PluginType
from halo_core.scheduler import LoopClock, Scheduler
from halo_core.schema import Seconds
from halo_tool_lab.testing import eventually, vrrp

SITE = Path(__file__).parent / "site"

PTYPE = PluginType("checker", "misbehave", MisbehaveCheck, Misbehave)


def runner(mode: str, **opts: object) -> CheckRunner:
    cfg = replace(MisbehaveCheck(mode=mode), interval=Seconds(0.2), fall=1, **opts)  # type: ignore[arg-type]
    r = CheckRunner("chk", PTYPE, cfg, scheduler=Scheduler(LoopClock()), bus=EventBus())
    r.checker = Misbehave(cfg, CheckTarget("chk"))
    return r


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("none", "returned NoneType, not a CheckResult"),
        ("bool", "returned bool, not a CheckResult"),
        ("systemexit", "SystemExit"),
        ("keyboardinterrupt", "KeyboardInterrupt"),
        ("generatorexit", "GeneratorExit"),
    ],
)
async def test_garbage_and_base_exceptions_are_failed_checks(
    mode: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    r = runner(mode)
    with caplog.at_level(logging.ERROR, "halo.checks"):
        await r.run_once()  # returns: nothing escapes
    assert r.up is False and r.stats.errors == 1
    assert r.stats.last_result is not None and reason in r.stats.last_result.message
    assert any("checker plugin misbehave" in m for m in caplog.messages), caplog.messages
    await r.run_once()
    assert sum("checker plugin misbehave" in m for m in caplog.messages) == 1  # said once


async def test_a_blocking_checker_is_failed_not_up(caplog: pytest.LogCaptureFixture) -> None:
    r = runner("sleep", seconds=Seconds(0.3), timeout=Seconds(0.1))
    with caplog.at_level(logging.ERROR, "halo.checks"):
        await r.run_once()
    assert r.up is False and r.stats.timeouts == 1
    assert (
        r.stats.last_result is not None and "over its 0.1s timeout" in r.stats.last_result.message
    )
    assert any("blocks the event loop" in m for m in caplog.messages)


async def test_a_spinning_checker_is_failed_not_up() -> None:
    r = runner("spin", seconds=Seconds(0.3), timeout=Seconds(0.1))
    await r.run_once()
    assert r.up is False and r.stats.timeouts == 1


async def test_a_checker_swallowing_cancellation_counts_failed_meanwhile(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(checks, "STUCK_GRACE", 0.1)
    r = runner("swallow", timeout=Seconds(0.1))
    with caplog.at_level(logging.ERROR, "halo.checks"):
        task = asyncio.get_running_loop().create_task(r.run_once())
        await eventually(lambda: r.stats.runs >= 2, timeout=3)  # failed again every interval
    assert r.up is False
    assert r.stats.last_result is not None and "did not finish" in r.stats.last_result.message
    assert any("swallows CancelledError" in m for m in caplog.messages)
    checker = r.checker
    assert isinstance(checker, Misbehave)
    checker.released = True  # clean-up: the swallowing coroutine obeys from now on
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await r.stop()


async def test_a_leaking_checker_still_reports_results() -> None:
    r = runner("leak")
    for _ in range(3):
        await r.run_once()
    assert r.up is True and r.stats.successes == 3
    checker = r.checker
    assert isinstance(checker, Misbehave)
    for task in checker.leaked:
        task.cancel()


@pytest.mark.parametrize("exc", [SystemExit(1), KeyboardInterrupt(), GeneratorExit()])
async def test_a_subscriber_raising_base_exceptions_is_isolated(exc: BaseException) -> None:
    bus = EventBus()
    seen: list[Event] = []

    def bad(event: Event) -> None:
        raise exc

    sub = bus.subscribe(bad, name="bad")
    bus.subscribe(seen.append, name="good")
    bus.publish(BackendFailed(backend="b", error="e"))
    await bus.drain(1.0)
    assert len(seen) == 1 and sub.stats.failed == 1
    assert sub.stats.last_error is not None and type(exc).__name__ in sub.stats.last_error


async def test_a_scheduled_job_raising_keyboardinterrupt_is_isolated() -> None:
    scheduler = Scheduler(LoopClock())

    async def bad() -> None:
        raise KeyboardInterrupt

    job = scheduler.every("bad", 0.05, bad, first_delay=0)
    await eventually(lambda: job.stats.failures >= 2, timeout=3)
    scheduler.close()
    assert job.stats.last_error is not None and "KeyboardInterrupt" in job.stats.last_error


class HangingBackend(Backend):
    """Never finishes applying a VRRP transition; raises SystemExit on a priority change."""

    def __init__(self, config: object, ctx: object) -> None:
        pass

    async def start(self) -> None:
        pass

    async def handle(self, event: Event) -> None:
        if isinstance(event, VrrpStateChanged):
            await asyncio.sleep(3600)
        raise SystemExit(1)

    async def stop(self) -> None:
        pass


@dataclass(frozen=True, kw_only=True)
class HangingConfig(BackendConfig):
    pass


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [PluginType("backend", "hanging", HangingConfig, HangingBackend)]


async def test_a_backend_that_times_out_or_raises_publishes_backend_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The VRRP engine puts the instance in FAULT on BackendFailed (tested with the
    engine); here: the daemon publishes it, for the instance, whatever the backend did."""
    monkeypatch.setattr(daemon_module, "BACKEND_TIMEOUT", 0.1)
    p = plugins.load(
        entry_points=False,
        modules=[("hanging", types.SimpleNamespace(halo_plugin_types=halo_plugin_types))],
    )
    d = Daemon(load_text("backends:\n  h: {type: hanging}\n", "t.yaml", p), p)
    await d._start_backends()
    failed: list[Event] = []
    d.bus.subscribe(failed.append, kinds=["backend_failed"])
    d.bus.publish(vrrp("MASTER"))
    d.bus.publish(PriorityChanged(instance="VI_2", old=100, new=90, reason="r"))
    await eventually(lambda: len(failed) == 2, timeout=3)
    assert {(e.instance, e.backend) for e in failed if isinstance(e, BackendFailed)} == {
        ("VI_1", "h"),
        ("VI_2", "h"),
    }
    errors = sorted(e.error for e in failed if isinstance(e, BackendFailed))
    assert "SystemExit" in errors[0] and "took over 0.1s" in errors[1]
    await d.bus.close()


async def test_a_checker_that_blocks_the_loop_moves_to_a_process_and_others_run_on_time(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#16 §6: a checker that blocks the worker's event loop must not starve its other
    checks: the second time it blocks, it runs in a process of its own, and its timeout
    holds from then on."""
    monkeypatch.syspath_prepend(str(SITE))  # the checker's process imports its module
    scheduler = Scheduler(LoopClock())
    bus = EventBus()
    cfg = replace(
        MisbehaveCheck(mode="sleep", seconds=Seconds(0.3)),
        interval=Seconds(0.2),
        timeout=Seconds(0.1),
        fall=1,
    )  # type: ignore[arg-type]
    blocking = CheckRunner("blocking", PTYPE, cfg, scheduler=scheduler, bus=bus)
    ran: list[float] = []

    class Quick(Misbehave):
        async def check(self) -> CheckResult:
            ran.append(time.monotonic())
            return CheckResult(True, "quick")

    quick_cfg = replace(MisbehaveCheck(), interval=Seconds(0.05))  # type: ignore[arg-type]
    quick_type = PluginType("checker", "quick", MisbehaveCheck, Quick)
    quick = CheckRunner("quick", quick_type, quick_cfg, scheduler=scheduler, bus=bus)
    with caplog.at_level(logging.ERROR, "halo.checks"):
        blocking.start()
        quick.start()
        await eventually(lambda: blocking.in_process, timeout=5)
        assert blocking.blocking_runs == checks.BLOCKING_RUNS
        assert any("runs in a process of its own" in m for m in caplog.messages)
        checker = blocking.checker
        assert isinstance(checker, checks.CheckerProcess)
        await eventually(lambda: checker.answers >= 1, timeout=30)  # its process is up
        since = len(ran)
        failed_before = blocking.stats.timeouts
        await asyncio.sleep(1.5)
    gaps = [b - a for a, b in itertools.pairwise(ran[since:])]
    try:
        # 0.05 s apart with a neighbour that would hold the loop 0.3 s of every 0.2
        assert len(gaps) >= 20 and max(gaps) < 0.15, gaps
        assert blocking.stats.timeouts > failed_before  # its timeout fires in time now
        assert blocking.up is False
        assert blocking.stats.last_result is not None
        message = blocking.stats.last_result.message
        assert "timed out after 0.1s" in message or "previous run has not finished" in message
        assert blocking.blocking_runs == checks.BLOCKING_RUNS  # its process blocks, not the loop
        process = checker.process
    finally:
        await blocking.stop()
        await quick.stop()
    assert process is not None and not process.is_alive()


async def test_a_checker_that_exits_its_own_process_fails_and_is_restarted_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(SITE))
    monkeypatch.setattr(checks, "CHECKER_RESTART_DELAY", 0.5)
    checker = checks.CheckerProcess("exit", PTYPE, MisbehaveCheck(mode="exit"), CheckTarget("exit"))
    with pytest.raises(checks.CheckerProcessError, match=r"exited \(status 3\)"):
        await asyncio.wait_for(checker.check(), 30)
    with pytest.raises(checks.CheckerProcessError, match="a new one starts shortly"):
        await checker.check()
    await asyncio.sleep(0.6)
    with pytest.raises(checks.CheckerProcessError, match=r"exited \(status 3\)"):
        await asyncio.wait_for(checker.check(), 30)
    assert checker.starts == 2
    await checker.close()
