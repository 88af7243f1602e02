"""The ``halo watch`` sub-command. The watcher loads only when it runs."""

from __future__ import annotations

import argparse
from typing import Any

from halo_core.hookspecs import hookimpl


@hookimpl
def halo_add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "watch",
        help="show every VRRP router heard on an interface and flag conflicts",
        description="Listen to VRRP adverts on IFACE (nothing is sent) and report every "
        "router heard and any conflict between them: two masters, mismatched intervals, "
        "addresses, versions or authentication. Exit status 1 when a conflict was seen. "
        "Needs root (CAP_NET_RAW) for its raw socket.",
    )
    p.add_argument("interface", metavar="IFACE", help="the interface to listen on")
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    p.add_argument(
        "--promisc",
        action="store_true",
        help="put IFACE in promiscuous mode while listening (default: all-multicast only)",
    )
    p.set_defaults(func=_cmd_watch)


def _cmd_watch(args: argparse.Namespace) -> int:
    from halo_tool_watch.watch import cmd_watch

    return cmd_watch(args)
