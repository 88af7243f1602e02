"""The ``halo systemd-unit`` command, and the daemon's sd_notify messages and watchdog
through its hooks. The unit is built in :mod:`.unit`, the messages in :mod:`.notify`."""

from __future__ import annotations

import argparse
import os
import weakref
from typing import TYPE_CHECKING, Any

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import DEFAULT_CONFIG

if TYPE_CHECKING:
    from halo_core.config import Config
    from halo_core.daemon import Daemon
    from halo_core.hookspecs import DaemonState
    from halo_tool_systemd.notify import Integration


# Each running daemon's connection to systemd (tests run several daemons in one process).
_integrations: weakref.WeakKeyDictionary[Daemon, Integration] = weakref.WeakKeyDictionary()


def cmd_systemd_unit(args: argparse.Namespace) -> int:
    from halo_tool_systemd.unit import render

    print(render(args.config), end="")
    return 0


@hookimpl
def halo_add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "systemd-unit",
        help="print a systemd unit that runs this halo installation",
        description=(
            "Print a hardened systemd service unit whose ExecStart= is the halo running this"
            " command. Install it with: halo systemd-unit >/etc/systemd/system/halo.service"
        ),
    )
    p.add_argument(
        "-c",
        "--config",
        default=DEFAULT_CONFIG,
        help=f"the configuration the unit runs with (default {DEFAULT_CONFIG})",
    )
    p.set_defaults(func=cmd_systemd_unit)


@hookimpl
def halo_has_work(config: Config) -> bool:
    """Work only under systemd: asked in the validating child, which inherits the daemon's
    environment (the worker removes the variables from its own at start, not the daemon)."""
    return any(os.environ.get(name) for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC"))


@hookimpl
def halo_startup(daemon: Daemon) -> None:
    """Connect to systemd (``$NOTIFY_SOCKET``) and start the watchdog keep-alive on the
    daemon's event loop, before any script can inherit the variables."""
    from halo_tool_systemd.notify import attach

    _integrations[daemon] = attach(daemon)


@hookimpl
def halo_daemon_state(daemon: Daemon, state: DaemonState, reason: str) -> None:
    integration = _integrations.get(daemon)
    if integration is not None:
        integration.tell(state, reason)


@hookimpl
def halo_shutdown(daemon: Daemon) -> None:
    integration = _integrations.pop(daemon, None)
    if integration is not None:
        integration.close()
