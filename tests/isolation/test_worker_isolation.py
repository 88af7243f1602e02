"""#16 §1 and §6: nothing a checker plugin does reaches the VRRP process. A checker that
blocks the event loop 2 s on every run, one that spins the CPU, one that kills its process,
and a SIGKILL of the worker: the VRRP instance's adverts stay on time (captured on the
segment), the worker is restarted, and checks resume."""

from __future__ import annotations

import itertools
import os
import re
import signal
import statistics
import time
from pathlib import Path

import pytest

from halo_tool_lab.capture import vrrp_adverts
from halo_tool_lab.netns import Lab, wait_until
from halo_tool_lab.pytest_plugin import HaloFactory, LabFactory
from halo_tool_lab.tools import uses_tools

SITE = Path(__file__).parent / "site"
INTERVAL = 0.1
# A backup declares the master down after 3 intervals plus skew (0.36 s at priority 100);
# a stalled VRRP loop shows gaps of seconds. Twice the interval flags any real stall while
# allowing for the shared, noisy machine.
MAX_GAP = 2 * INTERVAL

INSTANCE = """
vrrp_instances:
  VI_1:
    interface: eth0
    virtual_router_id: 51
    priority: 100
    version: 3
    advert_int: 0.1
    virtual_ipaddress: [192.0.2.100/24]
    track:
{tracks}
"""


@pytest.fixture(autouse=True)
def misbehaving_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """halo (and its worker) find the misbehaving checker through its entry point."""
    monkeypatch.setenv("PYTHONPATH", str(SITE))


def config(checks: str, tracks: str) -> str:
    return f"checks:\n{checks}" + INSTANCE.format(tracks=tracks)


def gaps_of(lb: Lab, seconds: float, tmp_path: Path) -> list[float]:
    cap = lb.capture(tmp_path / "wire.pcap", filter="vrrp")
    time.sleep(seconds)
    adverts = vrrp_adverts(cap.stop(), vrid=51)
    times = [a.time for a in adverts]
    return [b - a for a, b in itertools.pairwise(times)]


def summary(gaps: list[float]) -> str:
    q = statistics.quantiles(gaps, n=100)
    ms = [q[49] * 1e3, q[98] * 1e3, max(gaps) * 1e3]
    return f"{len(gaps)} gaps: p50 {ms[0]:.1f} ms, p99 {ms[1]:.1f} ms, max {ms[2]:.1f} ms"


def worker_pids(log: str) -> list[int]:
    return [int(p) for p in re.findall(r"worker process (\d+) started", log)]


def test_blocking_and_spinning_checkers_leave_adverts_on_time(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    lb = lab(1)
    (host,) = lb.hosts
    checks = (
        "  slow: {type: misbehave, mode: sleep, seconds: 2, interval: 1, timeout: 0.5, fall: 1}\n"
        "  spin: {type: misbehave, mode: spin, seconds: 2, interval: 1, timeout: 0.5, fall: 1}\n"
    )
    tracks = "      - {check: slow, weight: -10}\n      - {check: spin, weight: -20}\n"
    halo = start_halo(host, config(checks, tracks), state={"VI_1": "MASTER"}, timeout=15)
    assert halo.wait_log(r"worker process \d+ ready", timeout=15), halo.log
    gaps = gaps_of(lb, 8.0, tmp_path)
    assert len(gaps) >= 8.0 / INTERVAL * 0.8, summary(gaps)
    assert max(gaps) < MAX_GAP, summary(gaps)
    # Both checks are failed (not UP), reported with the plugin's name; VRRP heard of it.
    assert halo.wait_log(r"VI_1: priority \d+ -> 70", timeout=10), halo.log
    assert re.search(r"check slow: checker plugin misbehave took .* past its timeout", halo.log)
    # ... and, blocking the worker's loop a second time, it goes to a process of its own.
    assert halo.wait_log(r"check slow: .* runs in a process of its own", timeout=10), halo.log
    # The VRRP process runs in real time (global.vrrp_rt_priority, default 1); the worker
    # it started, and any script, are normal processes.
    policy = os.sched_getscheduler(halo.proc.pid)
    assert policy & ~os.SCHED_RESET_ON_FORK == os.SCHED_RR
    assert os.sched_getparam(halo.proc.pid).sched_priority == 1
    (worker,) = worker_pids(halo.log)
    assert os.sched_getscheduler(worker) == os.SCHED_OTHER
    assert halo.stop() == 0


def test_a_killed_worker_is_restarted_and_checks_resume(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    lb = lab(1)
    (host,) = lb.hosts
    flag = tmp_path / "flag"
    flag.touch()
    checks = f"  flag: {{type: misbehave, mode: file, path: '{flag}', interval: 0.2, fall: 1}}\n"
    halo = start_halo(
        host, config(checks, "      - {check: flag, weight: -20}\n"), state={"VI_1": "MASTER"}
    )
    assert halo.wait_log(r"worker process \d+ ready", timeout=15), halo.log
    (first,) = worker_pids(halo.log)
    cap = lb.capture(tmp_path / "wire.pcap", filter="vrrp")
    os.kill(first, signal.SIGKILL)
    assert halo.wait_log(r"worker process was killed by SIGKILL; restart 1", timeout=5), halo.log
    assert wait_until(lambda: len(re.findall(r"worker process \d+ ready", halo.log)) == 2, 15)
    assert len(worker_pids(halo.log)) == 2, halo.log
    flag.unlink()  # the new worker's check sees it, VRRP hears of it
    assert halo.wait_log(r"VI_1: priority 100 -> 80 \(check flag down\)", timeout=10), halo.log
    time.sleep(1.0)
    adverts = vrrp_adverts(cap.stop(), vrid=51)
    times = [a.time for a in adverts]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < MAX_GAP, summary(gaps)
    assert adverts[-1].priority == 80 and all(a.priority in (100, 80) for a in adverts)
    assert halo.stop() == 0


def test_a_checker_that_kills_its_process_leaves_vrrp_alone(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    lb = lab(1)
    (host,) = lb.hosts
    checks = "  crash: {type: misbehave, mode: exit, interval: 0.5, warmup: 0}\n"
    halo = start_halo(
        host, config(checks, "      - {check: crash, weight: -20}\n"), state={"VI_1": "MASTER"}
    )
    gaps = gaps_of(lb, 5.0, tmp_path)
    assert max(gaps) < MAX_GAP, summary(gaps)
    assert halo.wait_log(r"worker process exited with status 3; restart 2", timeout=10), halo.log
    assert halo.states("VI_1") == ["BACKUP", "MASTER"]
    assert halo.stop() == 0


def loaded_libraries(pid: int) -> str:
    """The shared objects a process has mapped: a C extension shows its package."""
    return Path(f"/proc/{pid}/maps").read_text()


@uses_tools("ssh")  # the ssh check runs it; without it the check fails all the same
def test_the_vrrp_process_runs_no_checker_runtime(lab: LabFactory, start_halo: HaloFactory) -> None:
    """The checkers' libraries (OpenSSL, which the ssl check imports; the ssh check runs
    OpenSSH's ssh) are loaded in the worker only: the VRRP process never builds a checker."""
    lb = lab(1)
    (host,) = lb.hosts
    checks = (
        "  web: {type: http, connect_ip: 192.0.2.11, connect_port: 80, interval: 0.5,"
        " url: [{path: /}]}\n"
        "  sshd: {type: ssh, connect_ip: 192.0.2.11, username: monitor, password: x,"
        " interval: 0.5}\n"
        "  tls: {type: ssl, connect_ip: 192.0.2.11, interval: 0.5, url: [{path: /}]}\n"
    )
    tracks = (
        "      - {check: web, weight: -10}\n      - {check: sshd, weight: -10}\n"
        "      - {check: tls, weight: -10}\n"
    )
    halo = start_halo(host, config(checks, tracks), state={"VI_1": "MASTER"}, timeout=15)
    assert halo.wait_log(r"worker process \d+ ready", timeout=15), halo.log
    assert halo.wait_log(r"VI_1: priority \d+ -> 70", timeout=10), halo.log  # all ran
    (worker,) = worker_pids(halo.log)
    # The http check loads no library of its own (halo_lib_http is pure Python, and a
    # plain http request imports no ssl): OpenSSL, for the ssl check, is the probe.
    heavy = ("/_ssl.", "libssl.so")
    in_worker = loaded_libraries(worker)
    assert any(lib in in_worker for lib in heavy), "the probe must see the worker's libraries"
    in_vrrp = loaded_libraries(halo.proc.pid)
    assert not [lib for lib in heavy if lib in in_vrrp]
    assert halo.stop() == 0


def test_the_worker_exits_when_the_vrrp_process_dies(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    lb = lab(1)
    (host,) = lb.hosts
    flag = tmp_path / "flag"
    checks = f"  flag: {{type: misbehave, mode: file, path: '{flag}', interval: 0.2}}\n"
    halo = start_halo(
        host, config(checks, "      - {check: flag, weight: -20}\n"), state={"VI_1": "MASTER"}
    )
    assert halo.wait_log(r"worker process \d+ ready", timeout=15), halo.log
    (worker,) = worker_pids(halo.log)
    os.kill(halo.proc.pid, signal.SIGKILL)  # the VRRP process only, not its group
    assert wait_until(lambda: not Path(f"/proc/{worker}").exists(), 10), halo.log
    assert "the VRRP process is gone; stopping" in halo.log
