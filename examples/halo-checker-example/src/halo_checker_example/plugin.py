"""Schema first, then the hook; the runtime is named, not imported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import CheckerConfig, PluginType
from halo_core.schema import Doc, Range, Seconds


@dataclass(frozen=True, kw_only=True)
class FileAgeCheck(CheckerConfig):
    """Succeeds while ``path`` was modified less than ``max_age`` ago: an application
    touches a heartbeat file, halo fails over when it stops."""

    path: Annotated[str, Doc("the heartbeat file")]
    max_age: Annotated[Seconds, Range(0.001, 86400), Doc("how old the file may get")] = Seconds(
        10.0
    )


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="checker",
            name="file_age",
            schema=FileAgeCheck,
            factory="halo_checker_example.runtime:FileAgeChecker",
            summary="a heartbeat file must be fresh",
        )
    ]
