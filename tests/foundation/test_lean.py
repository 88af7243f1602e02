"""`halo --version`, `halo check`, `halo plugins` and `halo watch` stay light: no network
library is imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("aiohttp", "asyncssh", "scapy", "pyroute2", "aiosmtplib")
CONFIG = Path(__file__).resolve().parent.parent / "configs" / "valid" / "seed-master.yaml"

PROBE = """
import sys
from halo_core import cli
try:
    status = cli.main(sys.argv[1:])
except SystemExit as exc:
    status = exc.code
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})
print('HEAVY=' + ','.join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv", [["--version"], ["check", "-c", str(CONFIG)], ["plugins"], ["watch", "nosuchif0"]]
)
def test_no_heavy_imports(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=set(HEAVY)), *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert line == ["HEAVY="], proc.stderr
