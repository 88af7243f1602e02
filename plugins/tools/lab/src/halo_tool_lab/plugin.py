"""The ``halo demo`` sub-command. The demo and the lab it uses load only when it runs."""

from __future__ import annotations

import argparse
from typing import Any

from halo_core.hookspecs import hookimpl


@hookimpl
def halo_add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    from halo_tool_lab.demo import add_command

    add_command(subparsers)
