"""Every example of docs/testing-plugins.md runs: its test files (fenced blocks tagged
``file=PATH``) are run with pytest in this environment, where the first-party plugins they
use are installed (the lab example as root; skipped elsewhere, as the page says)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from packaging_helpers import ROOT
from plugin_kit import tagged_files

PAGE = ROOT / "docs" / "testing-plugins.md"


def test_every_example_of_the_page_passes(tmp_path: Path) -> None:
    files = tagged_files(PAGE.read_text())
    assert len(files) >= 5, sorted(files)
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"},
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert " failed" not in res.stdout and " error" not in res.stdout, res.stdout
    if os.geteuid() == 0:
        assert "skipped" not in res.stdout, res.stdout
