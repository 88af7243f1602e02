"""A third-party checker that misbehaves on purpose, in every way issue #15 lists: halo's
isolation tests put this directory on PYTHONPATH, so that ``halo run`` (and its worker)
find it through the ``halo.plugins`` entry point like any installed plugin."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Annotated

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import Checker, CheckerConfig, CheckResult, CheckTarget, PluginType
from halo_core.schema import Doc, Seconds

MODES = (
    "ok",
    "file",
    "sleep",
    "spin",
    "exit",
    "none",
    "bool",
    "systemexit",
    "keyboardinterrupt",
    "generatorexit",
    "swallow",
    "leak",
)


@dataclass(frozen=True, kw_only=True)
class MisbehaveCheck(CheckerConfig):
    """How to misbehave on every run (one of MODES)."""

    mode: Annotated[str, Doc("what to do on every run")] = "ok"
    seconds: Annotated[Seconds, Doc("how long sleep and spin take")] = Seconds(2.0)
    path: Annotated[str, Doc("mode file: up while this file exists")] = ""


class Misbehave(Checker):
    def __init__(self, config: MisbehaveCheck, target: CheckTarget) -> None:
        self.config = config
        self.leaked: list[asyncio.Task[None]] = []
        self.released = False  # mode swallow: obey cancellation again (a test's clean-up)

    async def check(self) -> CheckResult:
        mode, seconds = self.config.mode, float(self.config.seconds)
        if mode == "file":
            return CheckResult(os.path.exists(self.config.path), "file")
        if mode == "sleep":
            time.sleep(seconds)  # blocks the event loop
        elif mode == "spin":
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
        elif mode == "exit":
            os._exit(3)
        elif mode in ("none", "bool"):
            return None if mode == "none" else True  # type: ignore[return-value]
        elif mode == "systemexit":
            raise SystemExit(2)
        elif mode == "keyboardinterrupt":
            raise KeyboardInterrupt
        elif mode == "generatorexit":
            raise GeneratorExit
        elif mode == "swallow":
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    if self.released:
                        raise
        elif mode == "leak":
            self.leaked.append(asyncio.get_running_loop().create_task(asyncio.sleep(3600)))
        return CheckResult(True, mode)


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [PluginType("checker", "misbehave", MisbehaveCheck, Misbehave, summary="misbehaves")]
