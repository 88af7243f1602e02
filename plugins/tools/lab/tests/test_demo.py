"""`halo demo` end to end: the VIP fails over and back, and the timeline says so."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from halo_tool_lab.tools import needs_tools


def run_demo(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "halo_core.cli", "demo", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def check_timeline(out: str, *, backup_is_halo: bool = True) -> None:
    assert "node1 holds the VIP" in out
    assert "node2 holds the VIP" in out
    assert "node1 holds the VIP again (preemption)" in out
    if backup_is_halo:
        assert re.search(r"node2\s+entering MASTER state \(master down timer expired", out)
    assert re.search(r"node2\s+gratuitous ARP: 192\.0\.2\.100 is at 02:48:41:00:00:02", out)
    assert re.search(r"node1\s+entering MASTER state \(preempting lower-priority master", out)
    assert re.search(r"client\s+answers now come from node2", out)
    assert re.search(r"client\s+answers now come from node1", out)
    gap = re.search(r"Longest gap in service: ([0-9.]+) s", out)
    assert gap is not None and float(gap.group(1)) < 2.0  # v3 at 0.1 s: ~0.4 s
    assert "Everything the demo created has been removed." in out


def test_demo_v3(lab_root: None) -> None:
    check_timeline(run_demo("--version", "3"))


@needs_tools("keepalived")
def test_demo_with_keepalived(lab_root: None) -> None:
    check_timeline(run_demo("--version", "3", "--keepalived"), backup_is_halo=False)


def test_demo_needs_root_says_so_in_one_line() -> None:
    import os
    import shutil

    argv = [sys.executable, "-m", "halo_core.cli", "demo"]
    if os.geteuid() == 0:  # show it as an ordinary user
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot drop privileges")
        argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "halo demo: needs root" in proc.stderr
