"""A configuration that gives no plugin work runs as one process, and a reload that gives
one work starts the worker (issue #16 §5; docs/processes.md).

The seeds' master/backup file with the status API off, outside systemd (no
``$NOTIFY_SOCKET``), no routes and no virtual servers: ``halo run`` alone, no worker. A
reload that only enables the status API changes nothing VRRP sees; the VRRP process then
holds the API's socket (socket activation, halo_core.listen) and removes it when it stops.
As written (the API on by default), the seed runs as one process too until a first
connection, ``halo status`` or raw HTTP, starts the worker, which answers it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from halo_tool_lab.halo import Halo
from halo_tool_lab.netns import Lab, lab_unavailable_reason, wait_until

pytestmark = pytest.mark.lab

SEED = Path(__file__).resolve().parents[2] / "examples" / "master-backup" / "master.yaml"
ROUTER = "  router_id: LVS_DEVEL\n"
JSON_LOG = "  log_format: json\n"


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def seed(status_api: bool) -> str:
    enabled = "true" if status_api else "false"
    extra = f"  log_format: json\n  status_api: {{enabled: {enabled}}}\n"
    return SEED.read_text().replace(ROUTER, ROUTER + extra)


def halo_status(halo: Halo, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "halo_core.cli", "status", "-c", str(halo.config_path), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def raw_get(path: Path, target: str) -> bytes:
    """One HTTP request on the unix socket ``path``, as curl --unix-socket sends it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(path))
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def start_seed(lab: Lab, tmp_path: Path, config: str) -> Halo:
    halo = Halo(lab.hosts[0], config, tmp_path)
    assert halo.wait_log(r"(?m)^halo \S+ started with ", 30), halo.log
    assert halo.wait_state("VI_1", "MASTER", 10), halo.log
    assert children(halo.proc.pid) == [], halo.log  # the status API's socket only
    assert "worker process" not in halo.log
    return halo


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(f"lab unavailable: {reason}")
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC"):  # as when started by hand
        monkeypatch.delenv(name, raising=False)
    with Lab(1) as lab:
        yield lab


def test_no_work_one_process_then_a_reload_starts_the_worker(lab: Lab, tmp_path: Path) -> None:
    # the validating child has exited once MASTER is reached: nothing else runs
    halo = start_seed(lab, tmp_path, seed(status_api=False))
    sock = halo.state_dir / "halo.sock"
    assert not sock.exists()

    halo.reload(seed(status_api=True))
    assert halo.wait_log(r"(?m)^reload: configuration unchanged for VRRP", 30), halo.log
    assert halo.wait_log(r"(?m)^status API listening on .*first connection", 15), halo.log
    assert sock.exists(), halo.log
    assert children(halo.proc.pid) == [], halo.log
    assert halo.stop() == 0, halo.log
    assert not sock.exists(), "the VRRP process leaves the socket it made behind"
    assert "worker process" not in halo.log


def test_the_seed_as_written_starts_its_worker_on_halo_status(lab: Lab, tmp_path: Path) -> None:
    halo = start_seed(lab, tmp_path, SEED.read_text().replace(ROUTER, ROUTER + JSON_LOG))
    sock = halo.state_dir / "halo.sock"
    assert sock.exists() and stat.S_IMODE(sock.stat().st_mode) == 0o660, halo.log
    status = halo_status(halo)
    assert status.returncode == 0, status.stderr + halo.log
    assert "VI_1" in status.stdout and "MASTER" in status.stdout, status.stdout
    assert "status API: first connection, starting the worker" in halo.log
    assert len(children(halo.proc.pid)) == 1, halo.log
    assert halo.wait_log(r"(?m)^worker process \d+ ready", 30), halo.log
    again = halo_status(halo)  # now the worker's, as always
    assert again.returncode == 0 and "MASTER" in again.stdout, again.stderr
    assert halo.stop() == 0, halo.log
    assert not sock.exists()


def test_a_reload_moves_the_held_socket_and_raw_http_starts_the_worker(
    lab: Lab, tmp_path: Path
) -> None:
    halo = start_seed(lab, tmp_path, SEED.read_text().replace(ROUTER, ROUTER + JSON_LOG))
    old = halo.state_dir / "halo.sock"
    new = tmp_path / "api" / "moved.sock"
    assert old.exists(), halo.log
    extra = f"{JSON_LOG}  status_api: {{listen: 'unix:{new}'}}\n"
    halo.reload(SEED.read_text().replace(ROUTER, ROUTER + extra))
    assert halo.wait_log(rf"(?m)^status API listening on unix:{new}", 30), halo.log
    assert new.exists() and not old.exists(), halo.log
    assert children(halo.proc.pid) == [], halo.log
    reply = raw_get(new, "/v1/instances")
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    assert b'"VI_1"' in reply and b"MASTER" in reply, reply
    assert len(children(halo.proc.pid)) == 1, halo.log
    assert halo.stop() == 0, halo.log
    assert not new.exists()


def test_a_reload_that_brings_work_hands_the_held_socket_to_the_worker(
    lab: Lab, tmp_path: Path
) -> None:
    seed = SEED.read_text().replace(ROUTER, ROUTER + JSON_LOG)
    halo = start_seed(lab, tmp_path, seed)
    sock = halo.state_dir / "halo.sock"
    held = sock.stat().st_ino
    halo.reload(seed + "checks:\n  alive: {type: script, script: /bin/true}\n")
    assert halo.wait_log(r"(?m)^worker process \d+ ready", 60), halo.log
    assert len(children(halo.proc.pid)) == 1, halo.log
    assert "first connection, starting" not in halo.log
    # the very socket the VRRP process bound: the worker serves on it, binds none
    assert sock.stat().st_ino == held, halo.log
    status = halo_status(halo)
    assert status.returncode == 0 and "MASTER" in status.stdout, status.stderr + halo.log
    # a reload that turns the API off now is the worker's, as before
    halo.reload(seed.replace(JSON_LOG, JSON_LOG + "  status_api: {enabled: false}\n"))
    assert halo.wait_log(r"(?m)^reload: ", 30), halo.log
    assert halo.stop() == 0, halo.log
    assert not sock.exists()


def test_a_reload_that_turns_the_held_api_off_removes_its_socket(lab: Lab, tmp_path: Path) -> None:
    halo = start_seed(lab, tmp_path, SEED.read_text().replace(ROUTER, ROUTER + JSON_LOG))
    sock = halo.state_dir / "halo.sock"
    assert sock.exists(), halo.log
    halo.reload(seed(status_api=False))
    assert halo.wait_log(r"(?m)^reload: configuration unchanged for VRRP", 30), halo.log
    assert not sock.exists(), halo.log
    assert children(halo.proc.pid) == [], halo.log
    assert halo.stop() == 0, halo.log


def test_a_worker_started_on_demand_that_crashes_binds_the_api_itself_when_restarted(
    lab: Lab, tmp_path: Path
) -> None:
    halo = start_seed(lab, tmp_path, SEED.read_text().replace(ROUTER, ROUTER + JSON_LOG))
    assert halo_status(halo).returncode == 0, halo.log
    assert halo.wait_log(r"(?m)^worker process \d+ ready", 30), halo.log
    (worker,) = children(halo.proc.pid)
    os.kill(worker, signal.SIGKILL)
    assert halo.wait_log(r"(?m)^worker process was killed by SIGKILL", 30), halo.log
    assert wait_until(
        lambda: len(re.findall(r"(?m)^worker process \d+ ready", halo.log)) == 2, 60
    ), halo.log
    status = halo_status(halo)
    assert status.returncode == 0 and "MASTER" in status.stdout, status.stderr + halo.log
    assert "status API not started" not in halo.log
    assert halo.stop() == 0, halo.log
