"""Schema and hooks of the ``file`` checker. The runtime lives in :mod:`.runtime`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import CheckerConfig, PluginType
from halo_core.schema import Doc, Range


@dataclass(frozen=True, kw_only=True)
class FileCheck(CheckerConfig):
    """Read a number from a file (keepalived's FILE_CHECK): up while it is 0, down while it
    is anything else (weight 0; with ``reverse`` the other way round); with
    ``weight_factor`` (any other weight) the number times the factor is added to the real
    server's weight instead. A missing or unreadable file, or one that holds no number,
    reads as 0, as in keepalived. Another program (a deploy script, a maintenance switch)
    writes the file."""

    file: Annotated[str, Doc("absolute path of the file")]
    reverse: Annotated[
        bool,
        Doc("up while the value is non-zero instead; with weight_factor, subtract the product"),
    ] = False
    weight_factor: Annotated[
        int | None,
        Range(-2147483647, 2147483647),
        Doc(
            "keepalived's FILE_CHECK weight other than 0: the real server's weight becomes its"
            " configured weight + value x this (at least 0), and the check stays up"
        ),
    ] = None

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
