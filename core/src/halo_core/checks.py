"""Running checks: the options every checker shares, implemented once.

A :class:`CheckRunner` owns one configured check: it builds the plugin's checker, runs it on
the scheduler (first run after a random ``warmup`` delay, later runs spread by the scheduler
so that a thousand checks don't fire together), enforces ``timeout`` (a hanging checker is
cancelled and counted as a failure with the reason), retries ``retry`` times with
``delay_before_retry``, and turns results into an up/down state with ``rise``/``fall``
hysteresis. Every result is published as :class:`CheckResultEvent`; changes of state as
:class:`CheckStateChanged` and through ``on_change`` (which the VRRP engine's tracking and the
real-server pools use). A checker can never affect VRRP timing: it runs in its own task,
bounded by its timeout, and the scheduler caps how many run at once.

A check whose checker cannot be built (its runtime module fails to import, its factory
raises) is not left out: it runs on its schedule like any other and every round is a failed
result saying why (:attr:`CheckRunner.start_error`), so that it shows as down in the status
and a VRRP instance or pool tracking it sees failures, with the usual ``fall``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from halo_core import log as halo_log
from halo_core.bus import EventBus
from halo_core.events import CheckResultEvent, CheckStateChanged
from halo_core.plugin_api import Checker, CheckerConfig, CheckResult, CheckTarget, PluginType
from halo_core.scheduler import Job, Scheduler

log = logging.getLogger("halo.checks")

StateCallback = Callable[[str, bool, CheckResult], None]


@dataclass
class CheckStats:
    runs: int = 0
    successes: int = 0
    failures: int = 0
    timeouts: int = 0
    errors: int = 0  # the checker raised
    last_latency: float = 0.0
    last_result: CheckResult | None = None
    last_change: float | None = None
    transitions: int = 0
    warnings: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class CheckRunner:
    """One configured check at run time."""

    def __init__(
        self,
        name: str,
        ptype: PluginType,
        config: CheckerConfig,
        *,
        target: CheckTarget | None = None,
        scheduler: Scheduler,
        bus: EventBus,
        on_change: StateCallback | None = None,
        initial_up: bool = True,
        default_interval: float = 1.0,
    ) -> None:
        self.name = name
        self.ptype = ptype
        self.config = config
        self.target = target or CheckTarget(name)
        self.scheduler = scheduler
        self.clock = scheduler.clock
        self.bus = bus
        self.on_change = on_change
        # keepalived: a tracked script starts up (unless init_fail) and a real server starts
        # up (unless alpha); the first results move it with rise/fall like any other.
        self.up = initial_up
        self.streak = 0  # consecutive results contradicting the current state
        self.stats = CheckStats()
        self.checker: Checker | None = None
        self.job: Job | None = None
        self.dynamic_weight: int | None = None
        self.start_error: str | None = None  # why the checker could not be built
        self.interval = float(config.interval if config.interval is not None else default_interval)

    @property
    def timeout(self) -> float:
        return float(self.config.timeout) if self.config.timeout is not None else self.interval

    def start(self) -> None:
        try:
            self.checker = self.ptype.load_factory()(self.config, self.target)
        except Exception as exc:  # plugin territory: the check stays, failing with the reason
            self.start_error = f"cannot start: {type(exc).__name__}: {' '.join(str(exc).split())}"
            log.error(
                "check %s (%s): %s",
                self.name,
                self.ptype.name,
                self.start_error,
                extra=halo_log.fields(check=self.name, reason=self.start_error),
            )
        warmup = float(self.config.warmup)
        first = self.scheduler.random.uniform(0, warmup) if warmup > 0 else None
        self.job = self.scheduler.every(
            f"check:{self.name}",
            self.interval,
            self.run_once,
            jitter=0.0,
            first_delay=first,
        )

    async def run_alone(self) -> tuple[CheckResult, float]:
        """Build the checker, run one round (with ``timeout``, ``retry`` and
        ``delay_before_retry``, as the scheduler would) and close it: ``halo check --run``.
        Gives the result and the seconds the round took."""
        self.checker = self.ptype.load_factory()(self.config, self.target)
        start = time.perf_counter()
        try:
            await self.run_once()
        finally:
            await self.stop()
        assert self.stats.last_result is not None
        return self.stats.last_result, time.perf_counter() - start

    async def stop(self) -> None:
        if self.job is not None:
            self.scheduler.cancel(self.job.name)
            self.job = None
        if self.checker is not None:
            try:
                await asyncio.wait_for(self.checker.close(), 5)
            except Exception as exc:
                log.warning("check %s: close failed: %s", self.name, exc)

    async def probe(self) -> tuple[CheckResult, float]:
        """One attempt, never raising: a time-out or an exception is a failed result."""
        if self.start_error is not None:
            self.stats.errors += 1
            return CheckResult(False, self.start_error), 0.0
        assert self.checker is not None
        start = time.perf_counter()
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for wraps the check in a task of its
            # own, a cost paid thousands of times a second under load.
            async with asyncio.timeout(self.timeout):
                result = await self.checker.check()
        except TimeoutError:
            self.stats.timeouts += 1
            result = CheckResult(False, f"timed out after {self.timeout:g}s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the checker's bug is a failed check, with the reason
            self.stats.errors += 1
            result = CheckResult(False, f"checker error: {type(exc).__name__}: {exc}")
        return result, time.perf_counter() - start

    async def run_once(self) -> None:
        result, latency = await self.probe()
        for _ in range(self.config.retry):
            if result.ok:
                break
            await self.clock.sleep(float(self.config.delay_before_retry))
            result, latency = await self.probe()
        self.record(result, latency)

    def record(self, result: CheckResult, latency: float) -> None:
        s = self.stats
        s.runs += 1
        s.last_latency = latency
        s.last_result = result
        if result.ok:
            s.successes += 1
        else:
            s.failures += 1
        if result.warning:
            s.warnings += 1
            log.warning(
                "check %s: %s", self.name, result.warning, extra=halo_log.fields(check=self.name)
            )
        if result.weight != self.dynamic_weight:
            self.dynamic_weight = result.weight
        if result.ok == self.up:
            self.streak = 0
        else:
            self.streak += 1
            needed = self.config.rise if result.ok else self.config.fall
            if self.streak >= needed:
                self.up = result.ok
                self.streak = 0
                s.transitions += 1
                s.last_change = time.time()
                # Down is what an operator filtering on warnings must see; up is normal.
                log.log(
                    logging.INFO if self.up else logging.WARNING,
                    "check %s: %s (%s)",
                    self.name,
                    "up" if self.up else "down",
                    result.message,
                    extra=halo_log.fields(
                        check=self.name,
                        from_state="DOWN" if self.up else "UP",
                        to_state="UP" if self.up else "DOWN",
                        reason=result.message,
                    ),
                )
                self.bus.publish(
                    CheckStateChanged(check=self.name, up=self.up, message=result.message)
                )
                if self.on_change is not None:
                    self.on_change(self.name, self.up, result)
        self.bus.publish(
            CheckResultEvent(
                check=self.name, ok=result.ok, up=self.up, message=result.message, latency=latency
            )
        )
