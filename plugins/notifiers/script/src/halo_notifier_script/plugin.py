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
            'FIFO that gets one line per change (INSTANCE "VI_1" MASTER 100), keepalived\'s'
            " lines; created if missing; never waited for (a full pipe drops the line)"
        ),
    ] = None
    notify_fifo_script: Annotated[
        str | None,
        Alias(("vrrp_notify_fifo_script",)),
        Doc(
            "command started with the notifier, with the FIFO's path as its last argument,"
            " to read it; sent SIGTERM when halo stops"
        ),
    ] = None
    notify_priority_changes: Annotated[
        bool | list[str],
        Doc(
            'write priority changes to the FIFO (INSTANCE "VI_1" MASTER_PRIORITY 90): true'
            " for every instance, or a list of instances"
        ),
    ] = False
    notify_deleted: Annotated[
        bool | str | list[str],
        Doc(
            "an instance a reload removes is reported as DELETED (to notify and the FIFO)"
            " rather than keepalived's default FAULT: true, a list of instances, or a"
            " command, which also runs then"
        ),
    ] = False
    notify_master_rx_lower_pri: Annotated[
        str | None,
        Doc(
            "command run when a MASTER receives an advert of lower priority (another"
            " master: a split brain healing); the FIFO gets MASTER_RX_LOWER_PRI"
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
            "notify_fifo_script",
            "notify_master_rx_lower_pri",
        )
        problems: list[tuple[tuple[str, ...], str]] = []
        for key in (*commands, "notify_deleted"):
            value = getattr(self, key)
            if not isinstance(value, str):  # None, or notify_deleted: true or a list
                continue
            try:
                argv = shlex.split(value)
            except ValueError as exc:  # e.g. an unclosed quote
                problems.append(((key,), f"cannot be split into arguments: {exc}"))
                continue
            if not argv:
                problems.append(((key,), "must not be empty"))
        configured = [getattr(self, k) for k in commands]
        if isinstance(self.notify_deleted, str):
            configured.append(self.notify_deleted)
        if self.notify_fifo is None and all(v is None for v in configured):
            problems.append(((), "configures nothing: give a notify_* command or notify_fifo"))
        if self.notify_fifo_script is not None and self.notify_fifo is None:
            problems.append((("notify_fifo_script",), "needs notify_fifo (the FIFO it reads)"))
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
