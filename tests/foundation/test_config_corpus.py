"""Every malformed config in tests/configs/invalid gives exactly its expected error lines.

Each ``NN-name.yaml`` has a ``NN-name.expected`` holding the exact stderr of
``halo check -c NN-name.yaml`` run from that folder. ``{checkers}`` in an expected file stands
for the installed checker types, so adding a plugin does not rewrite the corpus.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from halo_core import cli, plugins

HERE = Path(__file__).resolve().parent.parent / "configs"
INVALID = sorted((HERE / "invalid").glob("*.yaml"))
VALID = sorted((HERE / "valid").glob("*.yaml"))


def test_corpus_is_large_enough() -> None:
    assert len(INVALID) >= 30


def _expected(path: Path) -> str:
    text = path.with_suffix(".expected").read_text()
    return text.replace("{checkers}", ", ".join(plugins.load().names("checker")))


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_config_reports_exact_lines(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(path.parent)
    status = cli.main(["check", "-c", path.name])
    out, err = capsys.readouterr()
    assert status == 1
    assert out == ""
    assert err == _expected(path)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_config_passes(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(path.parent)
    assert cli.main(["check", "-c", path.name]) == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    "name", ["01-syntax-unclosed-bracket", "40-many-errors", "37-include-error-inside"]
)
def test_command_exit_status_and_nothing_else(name: str) -> None:
    """The real command: non-zero exit, only the error lines, no traceback."""
    path = HERE / "invalid" / f"{name}.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "halo_core.cli", "check", "-c", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == _expected(path)
    assert "Traceback" not in proc.stderr


def test_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert cli.main(["check", "-c", str(missing)]) == 1
    assert (
        capsys.readouterr().err
        == f"{missing}:1:1: (file): cannot read {missing}: No such file or directory\n"
    )
