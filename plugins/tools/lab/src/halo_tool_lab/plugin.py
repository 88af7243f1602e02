"""The ``halo demo`` and ``halo new`` sub-commands. What they run loads only when it runs."""

from __future__ import annotations

import argparse
from typing import Any

from halo_core.hookspecs import hookimpl


@hookimpl
def halo_add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    from halo_tool_lab import demo, new

    demo.add_command(subparsers)
    new.add_command(subparsers)
