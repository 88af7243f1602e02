"""`halo run` reads its own options without argparse when they are plain (the VRRP process
keeps no argparse); anything else goes to argparse, which reads it the same way or answers
the mistake."""

from __future__ import annotations

import pytest

from halo_core import cli
from halo_core.plugin_api import DEFAULT_CONFIG


@pytest.mark.parametrize(
    "argv",
    [
        ["run"],
        ["run", "-c", "/tmp/x.yaml"],
        ["run", "--config", "/tmp/x.yaml", "--log-level", "debug"],
        ["run", "--config=/tmp/x.yaml", "--log-format=json", "--log-level=warning"],
        ["run", "--log-format", "text", "-c", "relative.yaml"],
    ],
)
def test_plain_run_options_are_read_as_argparse_reads_them(argv: list[str]) -> None:
    args = cli.build_parser().parse_args(argv)
    assert cli._plain_run(argv) == (args.config, args.log_level, args.log_format)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["check"],
        ["run", "-h"],
        ["run", "--help"],
        ["run", "--log-l", "debug"],  # an abbreviation argparse accepts
        ["run", "-c"],  # a missing value: argparse's error
        ["run", "-c", "a.yaml", "-c", "b.yaml"],
        ["run", "--log-level", "loud"],  # not a level: argparse's error
        ["run", "--log-format", "xml"],
        ["run", "-c", "--log-level"],
        ["run", "extra"],
        ["--version", "run"],
    ],
)
def test_anything_else_goes_to_argparse(argv: list[str]) -> None:
    assert cli._plain_run(argv) is None


def test_default_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HALO_CONFIG", raising=False)
    assert cli._plain_run(["run"]) == (DEFAULT_CONFIG, None, None)
    monkeypatch.setenv("HALO_CONFIG", "/srv/halo.yaml")
    assert cli._plain_run(["run"]) == ("/srv/halo.yaml", None, None)
