"""`halo systemd-unit`: the unit runs the halo that printed it, keeps the daemon's systemd
settings, and passes `systemd-analyze verify` and `security` (exposure at most 4.0)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from halo_tool_lab.tools import needs_tools
from halo_tool_systemd.unit import exec_quote, halo_command, project_url, render

HALO = Path(sys.executable).with_name("halo")  # this environment's console script
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = needs_tools("systemd-analyze")
MAX_EXPOSURE = 4.0


def settings(unit: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def halo_systemd_unit(*args: str, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "HALO_CONFIG"}
    res = subprocess.run(
        [str(HALO), "systemd-unit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_exec_start_is_the_running_halo(tmp_path: Path) -> None:
    s = settings(halo_systemd_unit("-c", "conf/halo.yaml", cwd=tmp_path))
    config = tmp_path / "conf" / "halo.yaml"  # made absolute: systemd has no working directory
    assert s["ExecStart"] == [f"{HALO} run -c {config}"]
    binary = Path(s["ExecStart"][0].split()[0])
    assert binary.is_absolute() and binary.is_file() and os.access(binary, os.X_OK)
    kill = s["ExecReload"][1].split()[0]
    assert s["ExecReload"] == [f"{HALO} check -q -c {config}", f"{kill} -HUP $MAINPID"]
    assert Path(kill).is_absolute() and Path(kill).exists()


def test_default_config() -> None:
    s = settings(halo_systemd_unit())
    assert s["ExecStart"] == [f"{HALO} run -c /etc/halo/halo.yaml"]


def test_keeps_the_daemon_settings() -> None:
    s = settings(halo_systemd_unit())
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["all"]
    assert int(s["WatchdogSec"][0]) > 0 and s["Restart"] == ["on-failure"]
    assert s["KillSignal"] == ["SIGTERM"] and s["KillMode"] == ["mixed"]
    assert s["RuntimeDirectory"] == ["halo"]  # the default state_dir, /run/halo
    assert s["Conflicts"] == ["keepalived.service"]
    caps = set(s["CapabilityBoundingSet"][0].split())
    assert caps == {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"}
    families = set(s["RestrictAddressFamilies"][0].split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"}
    # Only the project's page: no man page or file that an installation does not have.
    assert s["Documentation"] == [project_url()]
    assert project_url().startswith("https://")


def test_ipvs_module_loaded_outside_the_sandbox() -> None:
    """The workspace has the ipvs backend, whose own modprobe ProtectKernelModules= stops."""
    s = settings(halo_systemd_unit())
    assert s["ProtectKernelModules"] == ["yes"]
    modprobe = shutil.which("modprobe", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if modprobe is None:
        assert "ExecStartPre" not in s
    else:
        assert s["ExecStartPre"] == [f"-+{modprobe} -q ip_vs"]


def test_command_without_a_console_script(tmp_path: Path) -> None:
    """A bare interpreter (a checkout on PYTHONPATH): python -m halo_core.cli."""
    python = tmp_path / "bin" / "python3"
    python.parent.mkdir()
    python.symlink_to(sys.executable)
    assert halo_command("/src/halo_core/cli.py", str(python)) == [
        str(python),
        "-m",
        "halo_core.cli",
    ]
    # argv[0] that is not halo (an embedding program) is not taken for it
    assert halo_command(str(HALO.with_name("pytest")), sys.executable) == [str(HALO)]
    assert halo_command(str(HALO), "/nonexistent/python") == [str(HALO)]


def test_python_m_uses_the_environment_s_halo() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "halo_core.cli", "systemd-unit"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert settings(res.stdout)["ExecStart"] == [f"{HALO} run -c /etc/halo/halo.yaml"]


def test_quoting() -> None:
    assert exec_quote("/etc/halo/halo.yaml") == "/etc/halo/halo.yaml"
    assert exec_quote("/etc/my halo/100%.yaml") == '"/etc/my halo/100%%.yaml"'
    assert exec_quote('a"b$c') == '"a\\"b$$c"'


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE
    return subprocess.run(
        [ANALYZE, *args], capture_output=True, text=True, timeout=120, check=False
    )


@needs_analyze
@pytest.mark.parametrize("config", ["/etc/halo/halo.yaml", "/etc/odd dir/100% halo.yaml"])
def test_systemd_analyze_verify(tmp_path: Path, config: str) -> None:
    unit = tmp_path / "halo.service"
    unit.write_text(render(config))
    out = analyze("verify", str(unit))
    problems = [
        ln
        for ln in (out.stdout + out.stderr).splitlines()
        if "halo.service" in ln and not re.search(r"Failed to .*(bus|connect)", ln)
    ]
    assert out.returncode == 0 and not problems, out.stdout + out.stderr


@needs_analyze
def test_systemd_analyze_security(tmp_path: Path) -> None:
    unit = tmp_path / "halo.service"
    unit.write_text(render("/etc/halo/halo.yaml"))
    out = analyze("security", "--offline=true", str(unit))
    if "--offline" in out.stderr and out.returncode != 0:
        pytest.skip("this systemd-analyze has no --offline (systemd < 252)")
    found = re.search(r"Overall exposure level for halo\.service: (\d+\.\d+)", out.stdout)
    assert found, out.stdout + out.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, out.stdout


def test_registered_as_a_plugin() -> None:
    out = subprocess.run(
        [str(HALO), "plugins"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert re.search(r"^tool-systemd\s+halo-tool-systemd\s", out, re.M), out


def test_bad_option_is_one_line() -> None:
    res = subprocess.run(
        [str(HALO), "systemd-unit", "--bogus"], capture_output=True, text=True, check=False
    )
    assert res.returncode == 2 and "unrecognized arguments: --bogus" in res.stderr
    assert "Traceback" not in res.stderr
