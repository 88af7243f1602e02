"""A configuration that gives no plugin work runs as one process, and a reload that gives
one work starts the worker (issue #16 §5; docs/processes.md).

The seeds' master/backup file with the status API off, outside systemd (no
``$NOTIFY_SOCKET``), no routes and no virtual servers: ``halo run`` alone, no worker. A
reload that only enables the status API changes nothing VRRP sees; it must still start
the worker, and ``halo status`` then answers through it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from halo_tool_lab.halo import Halo
from halo_tool_lab.netns import Lab, lab_unavailable_reason, wait_until

pytestmark = pytest.mark.lab

SEED = Path(__file__).resolve().parents[2] / "examples" / "master-backup" / "master.yaml"
ROUTER = "  router_id: LVS_DEVEL\n"


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def seed(status_api: bool) -> str:
    enabled = "true" if status_api else "false"
    extra = f"  log_format: json\n  status_api: {{enabled: {enabled}}}\n"
    return SEED.read_text().replace(ROUTER, ROUTER + extra)


def test_no_work_one_process_then_a_reload_starts_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(f"lab unavailable: {reason}")
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC"):  # as when started by hand
        monkeypatch.delenv(name, raising=False)
    with Lab(1) as lab:
        halo = Halo(lab.hosts[0], seed(status_api=False), tmp_path)
        assert halo.wait_log(r"(?m)^halo \S+ started with ", 30), halo.log
        assert halo.wait_state("VI_1", "MASTER", 10), halo.log
        # the validating child has exited by now: nothing else runs
        assert children(halo.proc.pid) == [], halo.log
        assert "worker process" not in halo.log
        sock = halo.state_dir / "halo.sock"
        assert not sock.exists()

        halo.reload(seed(status_api=True))
        assert halo.wait_log(r"(?m)^reload: configuration unchanged for VRRP", 30), halo.log
        assert halo.wait_log(r"(?m)^worker process \d+ ready", 60), halo.log
        assert len(children(halo.proc.pid)) == 1, halo.log
        assert wait_until(sock.exists, 15), halo.log
        status = subprocess.run(
            [sys.executable, "-m", "halo_core.cli", "status", "-c", str(halo.config_path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert status.returncode == 0, status.stderr
        assert "VI_1" in status.stdout and "MASTER" in status.stdout, status.stdout
        assert halo.stop() == 0, halo.log
