"""A machine without the external tools skips the tests that need them and fails none.

The guard runs, in a child pytest, every test that declares a tool (``needs_tools`` /
``uses_tools``, see tests/tool_probes.py) with the traced tools hidden from ``PATH``. That
these declarations are complete is checked by the tool trace in every session where the
tools are installed (conftest.py fails a test running a tool it did not declare).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tool_probes import TRACED, needs_tools, tool_missing_reason, uses_tools

ROOT = Path(__file__).resolve().parents[2]


def path_without(tools: tuple[str, ...], bindir: Path) -> str:
    """A PATH of one directory: symlinks to every command on the current PATH but *tools*."""
    bindir.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            link = bindir / entry.name
            if entry.name in tools or os.path.lexists(link):
                continue  # hidden, or shadowed by an earlier PATH entry
            link.symlink_to(entry.path)
    return str(bindir)


def test_hidden_tools_skip_and_never_fail(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": path_without(TRACED, tmp_path / "bin")}
    env.pop("PYTEST_ADDOPTS", None)
    argv = [sys.executable, "-m", "pytest", "tests", "--tool-tests-only", "-q", "-rs"]
    argv += ["-p", "no:cacheprovider", "--basetemp", str(tmp_path / "inner")]
    proc = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    out = proc.stdout + proc.stderr
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    print(summary)
    print("\n".join(ln for ln in out.splitlines() if ln.startswith("SKIPPED")))
    assert proc.returncode == 0 and not re.search(r"\d+ (failed|errors?)\b", summary), out[-6000:]
    for tool in ("nft", "keepalived"):  # tests declaring them exist: their skips must show
        assert "SKIPPED" in out and f": {tool} not found (Debian package" in out, out[-6000:]


def test_unknown_tool_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown tool"):
        needs_tools("nfx")
    with pytest.raises(ValueError, match="unknown tool"):
        uses_tools()
    with pytest.raises(ValueError, match="unknown tool"):
        tool_missing_reason("ipvsadmin")
