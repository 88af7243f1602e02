"""A reload is all or nothing across both processes (#15, docs/processes.md): the worker
prepares its part (loads the file, builds the checkers it adds) before the VRRP process
applies anything. With real processes in a lab namespace, adverts captured on the segment:

- a checker plugin that fails only at reload (its factory raises for the new check): the
  worker refuses, VRRP keeps the running priority, the worker keeps its checks, each
  error is logged with its place in the file and ``halo reload`` exits 1 with the reason;
  then a file both sides can apply is applied by both and ``halo reload`` exits 0;
- the worker killed while it prepares: it cannot answer, so VRRP applies the file and the
  restarted worker gets it (both run the new file); ``halo reload`` says so and exits 0.

Adverts stay on time throughout (the VRRP loop never waits for the worker)."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from halo_tool_lab.capture import vrrp_adverts
from halo_tool_lab.halo import Halo
from halo_tool_lab.netns import Lab, wait_until
from halo_tool_lab.pytest_plugin import HaloFactory, LabFactory

SITE = Path(__file__).parent / "reload_site"
INTERVAL = 0.1
MAX_GAP = 2 * INTERVAL  # as tests/isolation: a stalled VRRP loop shows gaps of seconds


@pytest.fixture(autouse=True)
def reloadtest_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """halo, its worker and `halo reload` find the reloadtest checker by its entry point."""
    monkeypatch.setenv("PYTHONPATH", str(SITE))


def config(priority: int, checks: str, state_dir: Path | None = None) -> str:
    where = f"  state_dir: {state_dir}\n" if state_dir is not None else ""
    return f"""global:
{where}  log_format: json
checks:
  base: {{type: reloadtest, interval: 0.5}}
{checks}vrrp_instances:
  VI_1:
    interface: eth0
    virtual_router_id: 51
    priority: {priority}
    version: 3
    advert_int: {INTERVAL}
    virtual_ipaddress: [192.0.2.100/24]
    track: [{{check: base, weight: -10}}]
"""


def halo_reload(halo: Halo, text: str) -> subprocess.CompletedProcess[str]:
    """Write the file and run ``halo reload`` as an operator would (a signal, no traffic)."""
    halo.config_path.write_text(text)
    argv = [sys.executable, "-m", "halo_core.cli", "reload", "-c", str(halo.config_path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def started(lb: Lab, start_halo: HaloFactory) -> Halo:
    """halo at priority 100 in the lab's one host, MASTER, its worker ready."""
    (host,) = lb.hosts
    halo = start_halo(host, config(100, ""), state={"VI_1": "MASTER"}, timeout=15)
    assert halo.wait_log(r"worker process \d+ ready", timeout=15), halo.log
    return halo


def worker_pids(halo: Halo) -> list[int]:
    return [int(p) for p in re.findall(r"worker process (\d+) started", halo.log)]


def assert_on_time(times: list[float]) -> None:
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps and max(gaps) < MAX_GAP, f"{len(gaps)} gaps, max {max(gaps or [0]) * 1e3:.0f} ms"


def test_a_plugin_failing_at_reload_refuses_it_in_both_processes(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    lb = lab(1)
    halo = started(lb, start_halo)
    cap = lb.capture(tmp_path / "refused.pcap", filter="vrrp")
    broken = config(120, "  extra: {type: reloadtest, build: raise}\n", halo.state_dir)
    done = halo_reload(halo, broken)
    time.sleep(0.5)
    adverts = vrrp_adverts(cap.stop(), vrid=51)
    assert done.returncode == 1, done
    # the reason, with its place in the file, in the operator's terminal and in the log
    where = rf"{re.escape(str(halo.config_path))}:\d+:\d+: checks\.extra: cannot start:"
    assert re.search(where + " ValueError: this checker cannot be built here", done.stderr)
    assert "halo reload: refused by pid" in done.stderr
    assert re.search(where, halo.log), halo.log
    assert "the worker cannot apply the file" in halo.log
    # neither side applied it: VRRP's adverts keep priority 100, the worker its checks
    assert {a.priority for a in adverts} == {100}
    assert_on_time([a.time for a in adverts])
    assert "check extra added" not in halo.log
    assert len(worker_pids(halo)) == 1  # refused, not crashed

    # a file both sides can apply: applied by both, `halo reload` says so
    done = halo_reload(halo, config(130, "  extra: {type: reloadtest}\n", halo.state_dir))
    assert done.returncode == 0, done
    assert "halo reload: applied by pid" in done.stdout
    assert halo.wait_log(r"reload: check extra added", timeout=10), halo.log
    cap = lb.capture(tmp_path / "applied.pcap", filter="vrrp")
    time.sleep(0.5)
    assert {a.priority for a in vrrp_adverts(cap.stop(), vrid=51)} == {130}
    assert halo.stop() == 0


def test_a_worker_killed_while_preparing_leaves_both_on_the_new_file(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    lb = lab(1)
    halo = started(lb, start_halo)
    (first,) = worker_pids(halo)
    marker = tmp_path / "building"
    slow = f"  slow: {{type: reloadtest, build: sleep, seconds: 3, marker: '{marker}'}}\n"
    text = config(140, slow, halo.state_dir)
    cap = lb.capture(tmp_path / "killed.pcap", filter="vrrp")
    halo.config_path.write_text(text)
    argv = [sys.executable, "-m", "halo_core.cli", "reload", "-c", str(halo.config_path)]
    operator = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(marker.exists, 30), halo.log  # the worker is building `slow`
        os.kill(first, signal.SIGKILL)
        out, err = operator.communicate(timeout=60)
    finally:
        if operator.poll() is None:
            operator.kill()
            operator.wait()
    assert operator.returncode == 0, (out, err, halo.log)
    assert "the worker process ended before it answered" in err
    # VRRP applied the file; the restarted worker gets it too (and builds `slow` again)
    assert halo.wait_log(r"VI_1: priority 100 -> 140", timeout=10), halo.log
    assert wait_until(lambda: len(re.findall(r"worker process \d+ ready", halo.log)) == 2, 30)
    time.sleep(0.5)
    adverts = vrrp_adverts(cap.stop(), vrid=51)
    assert adverts[-1].priority == 140 and {a.priority for a in adverts} <= {100, 140}
    assert_on_time([a.time for a in adverts])
    assert halo.stop() == 0
