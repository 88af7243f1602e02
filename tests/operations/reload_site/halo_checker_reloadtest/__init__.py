"""A third-party checker whose factory (what builds its runtime) fails or blocks when told:
a file that validates can still fail in the worker when applied. halo's reload tests put
this directory on PYTHONPATH, so that ``halo run`` and its worker find it through the
``halo.plugins`` entry point like any installed plugin."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import Checker, CheckerConfig, CheckResult, CheckTarget, PluginType
from halo_core.schema import Doc, Seconds


@dataclass(frozen=True, kw_only=True)
class ReloadTestCheck(CheckerConfig):
    """How the factory behaves."""

    build: Annotated[str, Doc("ok, raise (the factory fails) or sleep (it blocks)")] = "ok"
    seconds: Annotated[Seconds, Doc("how long sleep blocks")] = Seconds(3.0)
    marker: Annotated[str, Doc("a file created when the factory begins")] = ""


class ReloadTest(Checker):
    def __init__(self, config: ReloadTestCheck, target: CheckTarget) -> None:
        if config.marker:
            Path(config.marker).touch()
        if config.build == "raise":
            raise ValueError("this checker cannot be built here")
        if config.build == "sleep":
            time.sleep(float(config.seconds))  # holds the worker's loop while it builds

    async def check(self) -> CheckResult:
        return CheckResult(True, "ok")


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [PluginType("checker", "reloadtest", ReloadTestCheck, ReloadTest, summary="reloads")]
