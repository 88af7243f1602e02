"""Schema and hooks of the ``file`` checker. The runtime lives in :mod:`.runtime`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import CheckerConfig, PluginType
from halo_core.schema import Doc


@dataclass(frozen=True, kw_only=True)
class FileCheck(CheckerConfig):
    """Read a number from a file (keepalived's FILE_CHECK with a ``track_file`` of weight
    0): up while it is 0, down while it is anything else; with ``reverse`` the other way
    round. A missing or unreadable file, or one that holds no number, reads as 0, as in
    keepalived. Another program (a deploy script, a maintenance switch) writes the file."""

    file: Annotated[str, Doc("absolute path of the file")]
    reverse: Annotated[bool, Doc("up while the value is non-zero instead")] = False

    def __check__(self) -> list[tuple[tuple[str, ...], str]]:
        if not self.file.startswith("/") or "\0" in self.file:
            return [(("file",), "must be an absolute path")]
        return []


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="checker",
            name="file",
            schema=FileCheck,
            factory="halo_checker_file.runtime:FileChecker",
            summary="a number in a file",
        )
    ]


@hookimpl
def halo_convert_keepalived() -> list[Any]:
    from halo_checker_file.keepalived import keywords

    return keywords()
