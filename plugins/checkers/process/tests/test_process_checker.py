"""The process checker against real processes the tests start and kill (a copy of sleep
under a name no other process has), its keepalived matching rules, its delays, its
conversion from vrrp_track_process, and a VRRP instance in the lab tracking a process."""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from halo_checker_process.plugin import ProcessCheck
from halo_checker_process.runtime import ProcessChecker, params_match
from halo_core.plugin_api import CheckTarget
from halo_tool_convert import convert_text
from halo_tool_lab.netns import wait_until
from halo_tool_lab.pytest_plugin import HaloFactory, LabFactory
from halo_tool_lab.testing import config_errors, load_config, run_check


@pytest.fixture
def program(tmp_path: Path) -> Iterator[tuple[Path, list[subprocess.Popen[bytes]]]]:
    """A copy of sleep with a unique name (its /proc name), and the processes started from
    it, all killed at the end."""
    name = "hp" + secrets.token_hex(5)  # 12 characters: under the 15 of a process name
    path = tmp_path / name
    shutil.copy(shutil.which("sleep") or "/bin/sleep", path)
    path.chmod(0o755)
    started: list[subprocess.Popen[bytes]] = []
    yield path, started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def start(
    program: tuple[Path, list[subprocess.Popen[bytes]]], *args: str
) -> subprocess.Popen[bytes]:
    path, started = program
    proc = subprocess.Popen([str(path), *(args or ("300",))])
    started.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(5)


def test_counts_processes_by_name_and_quorum(
    program: tuple[Path, list[subprocess.Popen[bytes]]],
) -> None:
    path, _ = program
    conf = f"checks:\n  p: {{type: process, process: {path.name}, quorum: 2, quorum_max: 3}}\n"
    result = run_check(conf)
    assert not result.ok and result.message == f"0 {path.name} running (quorum 2..3)"
    first = start(program)
    assert not run_check(conf).ok
    start(program)
    assert run_check(conf).ok
    start(program)
    start(program)
    assert not run_check(conf).ok  # 4 > quorum_max
    stop(first)
    assert run_check(conf).ok
    # quorum_max 0: up while none runs
    none = f"checks:\n  p: {{type: process, process: {path.name}, quorum_max: 0}}\n"
    assert not run_check(none).ok


def test_command_line_and_param_match(
    program: tuple[Path, list[subprocess.Popen[bytes]]],
) -> None:
    path, _ = program
    start(program, "300", "7")
    base = f"checks:\n  p: {{type: process, process: {path}"
    assert not run_check(base + "}\n").ok  # by name, the name is not the path
    assert run_check(base + ", full_command: true}\n").ok
    assert run_check(base + ", arguments: ['300', '7']}\n").ok
    assert not run_check(base + ", arguments: ['300']}\n").ok  # exact
    assert run_check(base + ", arguments: ['300'], param_match: partial}\n").ok
    assert run_check(base + ", arguments: ['300', ''], param_match: initial}\n").ok
    assert not run_check(base + ", param_match: exact}\n").ok  # no arguments at all


def test_keepalived_parameter_rules() -> None:
    def cfg(params: list[str] | None, how: str | None) -> ProcessCheck:
        return ProcessCheck(process="x", arguments=params, param_match=how)  # type: ignore[arg-type]

    assert params_match(cfg(None, None), ["anything"])
    assert params_match(cfg(None, "exact"), []) and not params_match(cfg(None, "exact"), ["a"])
    assert params_match(cfg(["-a", "b"], None), ["-a", "b"])
    assert not params_match(cfg(["-a", "b"], None), ["-a", "b", "c"])
    assert params_match(cfg(["-a", "b"], "partial"), ["-a", "b", "c"])
    assert not params_match(cfg(["-a", "b"], "partial"), ["-a", "bc"])
    assert params_match(cfg(["-a", "b"], "initial"), ["-a", "bc", "d"])
    assert not params_match(cfg(["-a", "b"], "initial"), ["-x", "bc"])


async def test_fork_and_terminate_delays(
    program: tuple[Path, list[subprocess.Popen[bytes]]],
) -> None:
    path, _ = program
    config = ProcessCheck(
        process=path.name,
        fork_delay=0.3,
        terminate_delay=0.3,  # type: ignore[arg-type]
    )
    checker = ProcessChecker(config, CheckTarget("p"))
    assert not (await checker.check()).ok  # the state at start-up: at once
    proc = start(program)
    result = await checker.check()
    assert not result.ok and "once that has lasted its delay" in result.message
    time.sleep(0.35)
    assert (await checker.check()).ok
    stop(proc)
    assert (await checker.check()).ok  # a restart shorter than the delay changes nothing
    start(program)
    time.sleep(0.35)
    assert (await checker.check()).ok


def test_zombies_do_not_count(program: tuple[Path, list[subprocess.Popen[bytes]]]) -> None:
    path, _ = program
    proc = start(program, "0.01")
    assert wait_until(lambda: _state(proc.pid) == "Z", 5, 0.01)  # exited, not reaped
    assert not run_check(f"checks:\n  p: {{type: process, process: {path.name}}}\n").ok
    assert not run_check(
        f"checks:\n  p: {{type: process, process: {path}, full_command: true}}\n"
    ).ok


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def test_bad_quorum_is_refused() -> None:
    assert config_errors(
        "checks:\n  p: {type: process, process: x, quorum: 3, quorum_max: 2}\n"
    ) == ["f.yaml:2:57: checks.p.quorum_max: is less than quorum (3)"]


KEEPALIVED = """
vrrp_track_process haproxy {
    process haproxy
    quorum 2
    delay 1.5
    weight -30 reverse
}
vrrp_track_process nginx {
    process "/usr/sbin/nginx" -g "daemon on;"
    param_match partial
}
vrrp_track_process unused {
    process unused
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress { 192.0.2.16 }
    track_process {
        haproxy
        nginx weight 10
        missing
    }
}
"""


def test_vrrp_track_process_converts() -> None:
    result = convert_text(KEEPALIVED, config_id="x")
    assert result.unsupported == [] and result.warnings == []
    model = load_config(result.yaml).model
    assert sorted(model.checks) == ["haproxy", "nginx"]  # unused: left out
    haproxy = model.checks["haproxy"].config
    assert (haproxy.process, haproxy.quorum, haproxy.weight) == ("haproxy", 2, -30)
    assert (float(haproxy.fork_delay), float(haproxy.terminate_delay)) == (1.5, 1.5)
    nginx = model.checks["nginx"].config
    assert (nginx.process, nginx.arguments, nginx.param_match) == (
        "/usr/sbin/nginx",
        ["-g", "daemon on;"],
        "partial",
    )
    tracks = model.vrrp_instances["VI_1"].track
    assert [(t.check, t.weight, t.reverse) for t in tracks] == [
        ("haproxy", None, True),  # the block's weight is the check's default
        ("nginx", 10, False),
    ]
    assert any("no vrrp_track_process missing" in n.message for n in result.notes)


@pytest.mark.lab
def test_instance_tracks_a_process(
    lab: LabFactory,
    start_halo: HaloFactory,
    program: tuple[Path, list[subprocess.Popen[bytes]]],
) -> None:
    """A VRRP instance with a weight-0 track on a process: FAULT while it is not running,
    MASTER while it is; and a weighted one moves the advertised priority."""
    path, _ = program
    (h1,) = lab(1, ipv6=False).hosts
    config = f"""
vrrp_instances:
  VI_1:
    interface: eth0
    virtual_router_id: 51
    priority: 100
    version: 3
    advert_int: 0.1
    virtual_ipaddress: ["192.0.2.100/24"]
    track:
      - check: running
      - check: two
        weight: 20
checks:
  running: {{type: process, process: {path.name}, interval: 0.1s}}
  two: {{type: process, process: {path.name}, quorum: 2, interval: 0.1s}}
"""
    halo = start_halo(h1, config, state={"VI_1": "FAULT"}, timeout=15)
    first = start(program)
    assert wait_until(lambda: halo.states("VI_1")[-1:] == ["MASTER"], 10, 0.05), halo.log
    assert h1.has_address("192.0.2.100")
    start(program)
    assert halo.wait_log(r"VI_1: priority 100 -> 120", 10), halo.log
    stop(first)
    assert halo.wait_log(r"VI_1: priority 120 -> 100", 10), halo.log
    for proc in program[1]:
        if proc.poll() is None:
            stop(proc)
    assert wait_until(lambda: halo.states("VI_1")[-1:] == ["FAULT"], 10, 0.05), halo.log
    assert not h1.has_address("192.0.2.100")
