"""Sub-commands from plugins: `halo --help` lists them, and one plugin failing to add its
command (an exception, a name already taken) costs only that plugin's command."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from halo_core import cli, plugins
from halo_core.hookspecs import hookimpl


class Raises:
    @hookimpl
    def halo_add_commands(self, subparsers: argparse._SubParsersAction[Any]) -> None:
        raise RuntimeError("boom")


class TakesDemo:
    @hookimpl
    def halo_add_commands(self, subparsers: argparse._SubParsersAction[Any]) -> None:
        subparsers.add_parser("demo")


def test_help_lists_plugin_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "demo " in out and "ipvs " in out


def test_a_failing_plugin_costs_only_its_command(capsys: pytest.CaptureFixture[str]) -> None:
    loaded = plugins.load(modules=[("tool-raises", Raises()), ("tool-takes-demo", TakesDemo())])
    parser = cli.build_parser(loaded)
    assert parser.parse_args(["demo", "--version", "3"]).version == 3
    assert parser.parse_args(["ipvs"]).func is not None
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "halo: plugin tool-raises: cannot add its commands: RuntimeError: boom"
    assert err[1].startswith("halo: plugin tool-takes-demo: cannot add its commands: ")
    assert len(err) == 2
