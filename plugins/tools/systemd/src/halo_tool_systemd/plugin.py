"""The ``halo systemd-unit`` command. The unit itself is built in :mod:`.unit`."""

from __future__ import annotations

import argparse
from typing import Any

from halo_core.hookspecs import hookimpl

DEFAULT_CONFIG = "/etc/halo/halo.yaml"


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
