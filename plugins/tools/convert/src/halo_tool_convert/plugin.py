"""Hooks of the ``convert`` tool: it adds ``halo convert``. The converter itself is imported
only when the command runs, so every other ``halo`` command stays light."""

from __future__ import annotations

import argparse
from typing import Any

from halo_core.hookspecs import hookimpl


@hookimpl
def halo_add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    from halo_tool_convert import add_command

    add_command(subparsers)
