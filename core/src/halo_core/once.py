"""``halo check --run CHECK``: run one configured check once, for an operator at a terminal.

The check is built exactly as the daemon builds it (the plugin's factory, the configured
options) and runs one round of :meth:`~halo_core.checks.CheckRunner.run_alone` (timeout,
retry, delay_before_retry).
"""

from __future__ import annotations

import asyncio

from halo_core.bus import EventBus
from halo_core.checks import CheckRunner
from halo_core.config import Config
from halo_core.plugin_api import CheckTarget, UnknownName, pick
from halo_core.plugins import Plugins
from halo_core.scheduler import Scheduler


def run_check(config: Config, plugins: Plugins, name: str) -> int:
    """Run the check ``name`` once and print the outcome: 0 passed, 1 failed, 2 unknown."""
    model = config.model
    try:
        pick("check", name, list(model.checks))
    except UnknownName as exc:
        print(f"halo check: {exc}")
        return 2
    configured = model.checks[name]
    runner = CheckRunner(
        name,
        plugins.type("checker", configured.type),
        configured.config,
        target=CheckTarget(name, global_config=model.global_),
        scheduler=Scheduler(),
        bus=EventBus(),
    )

    async def once() -> tuple[bool, str, float]:
        result, took = await runner.run_alone()
        return result.ok, result.message, took

    try:
        ok, message, took = asyncio.run(once())
    except Exception as exc:  # the plugin's runtime could not be built
        print(f"check {name} ({configured.type}): cannot start: {type(exc).__name__}: {exc}")
        return 1
    verdict = "passed" if ok else "FAILED"
    tries = f" ({runner.config.retry + 1} attempts)" if not ok and runner.config.retry else ""
    print(f"check {name} ({configured.type}): {verdict} in {took:.3f}s{tries}")
    if message:
        print(f"  {'result' if ok else 'reason'}: {message}")
    return 0 if ok else 1
