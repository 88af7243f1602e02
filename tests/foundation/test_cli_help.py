"""`halo --help` and every command's help: descriptions, option help texts, defaults; plugin
commands listed; a broken plugin never breaks `halo --help`, `halo check` or `--version`."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from halo_core import cli, plugins

VALID = Path(__file__).resolve().parent.parent / "configs" / "valid" / "seed-master.yaml"


def walk(
    parser: argparse.ArgumentParser, path: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # aliases name the same parser
                    seen.add(id(sub))
                    yield from walk(sub, f"{path} {name}")


def problems(parser: argparse.ArgumentParser, path: str) -> list[str]:
    out = []
    if not (parser.description or "").strip():
        out.append(f"{path}: no description")
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
            primary = {id(p): n for n, p in reversed(action.choices.items())}  # not aliases
            for command in primary.values():
                if not (helps.get(command) or "").strip():
                    out.append(f"{path} {command}: no help line in the command list")
            continue
        if not action.help or action.help == argparse.SUPPRESS or not action.help.strip():
            out.append(f"{path} {name}: no help text")
            continue
        default = action.default
        if default is None or default is False or default == argparse.SUPPRESS:
            continue
        if str(default) not in formatter._expand_help(action):
            out.append(f"{path} {name}: the help does not mention the default {default!r}")
    return out


def test_every_command_and_option_is_described() -> None:
    loaded = plugins.load()
    assert not loaded.errors, loaded.errors
    parser = cli.build_parser(loaded)
    commands = [path for path, _ in walk(parser, "halo")]
    # The core commands, the ones added by core modules, and a plugin's (halo ipvs).
    for name in ("run", "check", "reload", "plugins", "schema", "status", "watch"):
        assert f"halo {name}" in commands
    for name in ("demo", "convert", "ipvs"):
        assert f"halo {name}" in commands
    found = [p for path, sub in walk(parser, "halo") for p in problems(sub, path)]
    assert found == []


def test_demo_help_says_what_it_creates() -> None:
    parser = cli.build_parser(plugins.load())  # halo demo comes with halo-tool-lab
    (demo,) = [sub for path, sub in walk(parser, "halo") if path == "halo demo"]
    text = demo.format_help()
    for needed in (
        "root",
        "network namespaces",
        "veth pair",
        "bridge",
        "192.0.2.11/24",
        "2001:db8::11/64",
        "192.0.2.100/24",
        "processes",
        "removes",
    ):
        assert needed in text, needed


def test_the_problems_check_sees_what_is_missing() -> None:
    parser = argparse.ArgumentParser(prog="x")
    sub = parser.add_subparsers()
    bare = sub.add_parser("bare")
    bare.add_argument("--count", type=int, default=3, help="how many")
    bare.add_argument("--name")
    found = [p for path, s in walk(parser, "x") for p in problems(s, path)]
    assert found == [
        "x: no description",
        "x bare: no help line in the command list",
        "x bare: no description",
        "x bare --count: the help does not mention the default 3",
        "x bare --name: no help text",
    ]


def halo(*argv: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = None
    if pythonpath is not None:
        import os

        env = dict(os.environ, PYTHONPATH=str(pythonpath))
    return subprocess.run(
        [sys.executable, "-m", "halo_core.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_overview_lists_plugin_commands(flag: str) -> None:
    proc = halo(flag)
    assert proc.returncode == 0, proc.stderr
    assert "ipvs" in proc.stdout and "show the kernel's IPVS table" in proc.stdout
    assert proc.stderr == ""


BROKEN = """
from halo_core.hookspecs import hookimpl

@hookimpl
def halo_add_commands(subparsers):
    subparsers.add_parser("run", help="a command name halo already has")
"""


@pytest.fixture
def broken_plugins(tmp_path: Path) -> Path:
    """Two installed plugins, found through real entry points: one whose command hook
    raises (it takes the name `run`), one that does not even import."""
    (tmp_path / "halo_broken_commands.py").write_text(BROKEN)
    (tmp_path / "halo_broken_import.py").write_text("raise RuntimeError('broken on import')\n")
    dist = tmp_path / "halo_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: halo-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[halo.plugins]\nbroken-commands = halo_broken_commands\n"
        "broken-import = halo_broken_import\n"
    )
    return tmp_path


def test_a_broken_plugin_never_breaks_help_check_or_version(broken_plugins: Path) -> None:
    proc = halo("--help", pythonpath=broken_plugins)
    assert proc.returncode == 0
    assert "convert" in proc.stdout and "ipvs" in proc.stdout
    assert proc.stderr.strip() == (
        "halo: plugin broken-commands: cannot add its commands:"
        " ArgumentError: argument COMMAND: conflicting subparser: run"
    )
    proc = halo("--version", pythonpath=broken_plugins)
    assert proc.returncode == 0 and proc.stdout.startswith("halo "), proc.stderr
    proc = halo("check", "-c", str(VALID), pythonpath=broken_plugins)
    assert proc.returncode == 0, proc.stderr
    proc = halo("run", "--help", pythonpath=broken_plugins)
    assert proc.returncode == 0 and "--log-format" in proc.stdout, proc.stderr


@pytest.mark.parametrize("argv", [[""], ["no-such-command"]])
def test_unknown_command_is_a_one_line_answer(argv: list[str]) -> None:
    proc = halo(*argv)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr and "Traceback" not in proc.stderr
