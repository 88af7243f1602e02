"""Schema and hooks of the ``script`` notifier. The runtime lives in :mod:`.runtime`."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Annotated, Any

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import NotifierConfig, PluginType
from halo_core.schema import Alias, Doc, Range, Seconds


@dataclass(frozen=True, kw_only=True)
class ScriptNotifierConfig(NotifierConfig):
    """keepalived's notify scripts: ``notify_master`` and friends run without extra arguments,
    ``notify`` gets ``INSTANCE|GROUP NAME STATE PRIORITY`` appended; real servers get
    ``notify_up``/``notify_down``. Commands are split like a shell would (no shell runs).
    Every script also gets the event in ``HALO_*`` environment variables."""

    notify_master: Annotated[str | None, Doc("command run on entering MASTER")] = None
    notify_backup: Annotated[str | None, Doc("command run on entering BACKUP")] = None
    notify_fault: Annotated[str | None, Doc("command run on entering FAULT")] = None
    notify_stop: Annotated[str | None, Doc("command run when an instance or group stops")] = None
    notify: Annotated[
        str | None,
        Doc(
            "command run on every state change, after the notify_STATE one, with"
            " INSTANCE|GROUP NAME STATE PRIORITY appended to its arguments"
        ),
    ] = None
    notify_up: Annotated[str | None, Doc("command run when a real server goes up")] = None
    notify_down: Annotated[str | None, Doc("command run when a real server goes down")] = None
    notify_fifo: Annotated[
        str | None,
        Alias(("vrrp_notify_fifo",)),
        Doc(
            'FIFO that gets one line per change (INSTANCE "VI_1" MASTER 100); created if'
            " missing; lines are dropped, never waited for, while nobody reads it"
        ),
    ] = None
    script_user: Annotated[
        str | None,
        Doc("user[:group] the scripts run as (default: global script_user)"),
    ] = None
    timeout: Annotated[
        Seconds,
        Range(0.01, 3600),
        Alias(("script_timeout",)),
        Doc("a script still running after this long is killed with its process group"),
    ] = Seconds(30.0)

    def __check__(self) -> list[tuple[tuple[str, ...], str]]:
        commands = (
            "notify_master",
            "notify_backup",
            "notify_fault",
            "notify_stop",
            "notify",
            "notify_up",
            "notify_down",
        )
        problems: list[tuple[tuple[str, ...], str]] = []
        for key in commands:
            value = getattr(self, key)
            if value is None:
                continue
            try:
                argv = shlex.split(value)
            except ValueError as exc:  # e.g. an unclosed quote
                problems.append(((key,), f"cannot be split into arguments: {exc}"))
                continue
            if not argv:
                problems.append(((key,), "must not be empty"))
        if self.notify_fifo is None and all(getattr(self, k) is None for k in commands):
            problems.append(((), "configures nothing: give a notify_* command or notify_fifo"))
        return problems


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="notifier",
            name="script",
            schema=ScriptNotifierConfig,
            factory="halo_notifier_script.runtime:ScriptNotifier",
            summary="notify scripts and FIFO",
        )
    ]


@hookimpl
def halo_convert_keepalived() -> list[Any]:
    from halo_notifier_script.keepalived import keywords

    return list(keywords())
