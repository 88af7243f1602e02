"""Fixtures of the notifier tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A root-owned 0755 directory the script user can enter (pytest's tmp is 0700), with an
    ``out`` directory anyone may write to (the scripts run as an unprivileged user)."""
    d = Path(tempfile.mkdtemp(prefix="halo-test-", dir="/tmp"))
    d.chmod(0o755)
    (d / "out").mkdir()
    (d / "out").chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)
