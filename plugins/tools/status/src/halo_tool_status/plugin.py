"""Hooks of the status API: its settings (``global: status_api:``), whether the daemon needs
it (``halo_has_work``: when enabled; ``halo_listen_on``: its socket, which the VRRP process
may hold until a first connection), the server's life in the daemon (started at
``halo_startup``, moved at ``halo_reload``, closed at ``halo_shutdown``) and the ``halo
status`` command. The server and the client are imported only when used."""

from __future__ import annotations

import argparse
import os
import sys
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from halo_core.hookspecs import hookimpl
from halo_core.log import add_secret
from halo_core.plugin_api import add_config_option
from halo_core.schema import Doc, Length

if TYPE_CHECKING:
    from halo_core.config import Config
    from halo_core.config.model import HaloConfig
    from halo_core.daemon import Daemon
    from halo_tool_status.server import StatusServer

SECTION = "status_api"


@dataclass(frozen=True, kw_only=True)
class StatusApi:
    """The read-only status API that ``halo status`` reads: JSON state, Prometheus
    ``/metrics`` and an event stream (see docs/operations.md)."""

    enabled: Annotated[bool, Doc("serve the status API")] = True
    listen: Annotated[
        str | None,
        Doc("unix:/PATH or HOST:PORT (default: unix socket halo.sock in state_dir)"),
    ] = None
    token: Annotated[str | None, Length(min=1), Doc("bearer token every request must carry")] = None
    token_file: Annotated[
        str | None, Doc("file whose first line is the token (instead of `token`)")
    ] = None

    def __post_init__(self) -> None:
        add_secret(self.token)  # never in a log line or a status field

    def __check__(self) -> list[tuple[tuple[str, ...], str]]:
        from halo_tool_status.endpoint import parse

        problems: list[tuple[tuple[str, ...], str]] = []
        if self.token is not None and self.token_file is not None:
            problems.append(((), "give either 'token' or 'token_file', not both"))
        if self.listen is not None:
            try:
                parse(self.listen)
            except ValueError as exc:
                problems.append((("listen",), str(exc)))
        return problems


@dataclass(frozen=True, kw_only=True)
class StatusOptions:
    """What this plugin adds to the ``global:`` settings."""

    status_api: Annotated[StatusApi, Doc("the status API")] = field(default_factory=StatusApi)


def settings(config: HaloConfig) -> StatusApi:
    """The validated ``global.status_api`` of ``config`` (its defaults when absent)."""
    return config.global_.extensions[StatusOptions].status_api


# The server of each running daemon (a process has one; tests run several side by side).
_servers: weakref.WeakKeyDictionary[Daemon, StatusServer] = weakref.WeakKeyDictionary()


def server_of(daemon: Daemon) -> StatusServer | None:
    """The status API server of a running ``daemon``, if it has one."""
    return _servers.get(daemon)


@hookimpl
def halo_config_extensions() -> dict[str, type]:
    return {"global": StatusOptions}


@hookimpl
def halo_has_work(config: Config) -> bool:
    """A worker for the API only when it is on (the default): off, a file with nothing
    else for a worker runs as one process."""
    return settings(config.model).enabled


@hookimpl
def halo_listen_on(config: Config) -> dict[str, str] | None:
    """Serving is all the API does: the VRRP process may hold its socket and start the
    worker on the first connection (halo_core.listen)."""
    from halo_tool_status.endpoint import resolve

    api = settings(config.model)
    if not api.enabled:
        return None
    return {"status API": str(resolve(api.listen, config.model.global_.state_dir))}


@hookimpl
async def halo_startup(daemon: Daemon) -> None:
    from halo_tool_status.server import StatusServer

    server = StatusServer(daemon)
    _servers[daemon] = server
    await server.start()  # logs and carries on when it cannot listen


@hookimpl
async def halo_reload(daemon: Daemon, old: Config, new: Config) -> None:
    server = _servers.get(daemon)
    if server is not None:
        await server.reconfigure(new.model)


@hookimpl
async def halo_shutdown(daemon: Daemon) -> None:
    # Called after the STOP transitions went out on the bus: the event streams get them.
    server = _servers.pop(daemon, None)
    if server is not None:
        await server.close()


def _run_status(args: argparse.Namespace) -> int:
    from halo_tool_status.client import cmd_status

    if args.token is None and args.token_file is not None:
        try:
            with open(args.token_file, encoding="utf-8") as fh:
                args.token = fh.readline().strip() or None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            print(f"halo status: --token-file {args.token_file}: {reason}", file=sys.stderr)
            return 2
        if args.token is None:
            print(f"halo status: --token-file {args.token_file} is empty", file=sys.stderr)
            return 2
    if args.token is None:
        args.token = os.environ.get("HALO_STATUS_TOKEN") or os.environ.get("HALO_TOKEN")
    return cmd_status(args)


@hookimpl
def halo_add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    p_status = subparsers.add_parser(
        "status",
        help="show the running daemon's instances, checks and pools",
        description="Ask the running halo, through its status API, for its VRRP instances,"
        " checks and virtual servers, and print them as a table (or its JSON).",
    )
    add_config_option(p_status)
    p_status.add_argument(
        "--api",
        metavar="ENDPOINT",
        help="unix:/PATH or HOST:PORT of the status API (default: global.status_api.listen"
        " from the configuration)",
    )
    # The default is read when the command runs: --help must never print a secret.
    tokens = p_status.add_mutually_exclusive_group()
    tokens.add_argument(
        "--token-file",
        metavar="PATH",
        help="file whose first line is the bearer token for the status API (default:"
        " $HALO_STATUS_TOKEN, else the token or token file named in the configuration)",
    )
    tokens.add_argument(
        "--token",
        help="the bearer token itself; visible to every user in ps: prefer --token-file or"
        " $HALO_STATUS_TOKEN",
    )
    p_status.add_argument(
        "--json", action="store_true", help="print the daemon's JSON instead of tables"
    )
    p_status.set_defaults(func=_run_status)
