"""``scripts/ipvs-vm``'s contract: one-line answers for what it cannot do, and, where it can
boot the VM (root, QEMU, a kernel with ip_vs), a command's output, exit code, directory,
environment and read-write directories carried across in one boot (about 10 s here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from halo_tool_lab.tools import needs_tools

# the VM itself (the runner's --check names whatever else is missing)
pytestmark = needs_tools("qemu-system-x86_64")

RUNNER = Path(__file__).resolve().parents[4] / "scripts" / "ipvs-vm"


def runner(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, RUNNER, *args],
        capture_output=True,
        text=True,
        check=False,
        env=None if env is None else os.environ | env,
        timeout=300,
    )


def test_check_answers_in_at_most_one_line() -> None:
    done = runner("--check")
    assert done.returncode in (0, 1), done.stderr
    expected_lines = 0 if done.returncode == 0 else 1  # usable: silent; else the reason
    assert len(done.stdout.splitlines()) == expected_lines, done.stdout


def test_a_bad_setting_is_one_line_and_exit_125() -> None:
    done = runner("true", env={"IPVS_VM_TIMEOUT": "soon"})
    assert done.returncode == 125
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("ipvs-vm: ")


def test_no_command_is_exit_125() -> None:
    done = runner("--")
    assert done.returncode == 125
    assert done.stderr.startswith("ipvs-vm: no command")


def test_a_command_in_the_vm(tmp_path: Path) -> None:
    reason = runner("--check").stdout.strip()
    if reason:
        pytest.skip(reason)
    command = (
        'd=$HALO_T_DIR; printf out; printf err >&2; pwd > $d/pwd; echo "$HALO_T_VALUE" > $d/env;'
        " test -e /proc/net/ip_vs && touch $d/ipvs; touch /tmp/halo-t-lost; exit 7"
    )
    env = {"IPVS_VM_RW": str(tmp_path), "HALO_T_DIR": str(tmp_path), "HALO_T_VALUE": "a 'b' $c"}
    done = runner(command, env=env)
    assert (done.returncode, done.stdout, done.stderr) == (7, "out", "err")
    assert (tmp_path / "pwd").read_text() == os.getcwd() + "\n"
    assert (tmp_path / "env").read_text() == "a 'b' $c\n"
    assert (tmp_path / "ipvs").exists(), "no /proc/net/ip_vs in the guest"
    assert not Path("/tmp/halo-t-lost").exists(), "a write outside IPVS_VM_RW reached the host"
