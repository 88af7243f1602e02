"""Schema and hooks of the ``process`` checker. The runtime lives in :mod:`.runtime`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import CheckerConfig, PluginType
from halo_core.schema import Doc, Length, Range, Seconds


@dataclass(frozen=True, kw_only=True)
class ProcessCheck(CheckerConfig):
    """keepalived's ``vrrp_track_process``: up while the number of running processes that
    match is between ``quorum`` and ``quorum_max``. A process matches by its name (the
    ``Name:`` of /proc/PID/status, 15 characters at most) or, with ``full_command`` or
    ``arguments``, by its command line; zombies do not count. Track it from an instance
    (``track: [{check: NAME, weight: ...}]``) as keepalived's ``track_process``."""

    process: Annotated[
        str, Length(1, 4096), Doc("the process name, or with full_command its argv[0]")
    ]
    arguments: Annotated[
        list[str] | None,
        Doc(
            "the arguments it must have (keepalived's words after the process); implies"
            " full_command"
        ),
    ] = None
    param_match: Annotated[
        Literal["exact", "partial", "initial"] | None,
        Doc(
            "exact: these arguments and no others (default with arguments; with none: no"
            " arguments at all); partial: these first, others may follow; initial: the last"
            " one may be longer"
        ),
    ] = None
    full_command: Annotated[
        bool, Doc("match the command line (/proc/PID/cmdline) rather than the name")
    ] = False
    quorum: Annotated[int, Range(0, 65535), Doc("fewest matching processes for up")] = 1
    quorum_max: Annotated[
        int | None,
        Range(0, 65535),
        Doc("most matching processes for up (0: up while none runs)"),
    ] = None
    fork_delay: Annotated[
        Seconds, Range(0, 3600), Doc("the quorum must hold this long before the check is up")
    ] = Seconds(0.0)
    terminate_delay: Annotated[
        Seconds, Range(0, 3600), Doc("the quorum must be lost this long before it is down")
    ] = Seconds(0.0)

    def __check__(self) -> list[tuple[tuple[str, ...], str]]:
        problems: list[tuple[tuple[str, ...], str]] = []
        if "\0" in self.process or any("\0" in p for p in self.arguments or []):
            problems.append((("process",), "must not contain a NUL character"))
        high = self.quorum_max
        # keepalived allows quorum_max 0 with the default quorum (up while none runs)
        if high is not None and high < self.quorum and (high != 0 or self.quorum > 1):
            problems.append((("quorum_max",), f"is less than quorum ({self.quorum})"))
        return problems

    @property
    def low(self) -> int:
        """Fewest processes for up (keepalived: quorum_max 0 sets quorum 0)."""
        return 0 if self.quorum_max == 0 else self.quorum

    @property
    def by_command_line(self) -> bool:
        return self.full_command or self.arguments is not None or self.param_match is not None


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="checker",
            name="process",
            schema=ProcessCheck,
            factory="halo_checker_process.runtime:ProcessChecker",
            summary="processes running (vrrp_track_process)",
        )
    ]


@hookimpl
def halo_convert_keepalived() -> list[Any]:
    from halo_checker_process.keepalived import keywords

    return keywords()
