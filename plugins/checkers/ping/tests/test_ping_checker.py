"""The ping checker: echo replies on loopback (IPv4 and IPv6), and between two lab
namespaces a live host and an address nobody holds, through ``halo check --run``; its
conversion from keepalived's PING_CHECK."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from halo_core.plugin_api import CheckResult
from halo_tool_lab.pytest_plugin import LabFactory
from halo_tool_lab.testing import probe_check


async def probe(text: str) -> CheckResult:
    return await probe_check(f"checks:\n  c: {text}\n")


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
async def test_loopback_answers(address: str) -> None:
    result = await probe(f"{{type: ping, connect_ip: '{address}', size: 56}}")
    assert result.ok, result
    assert result.message == f"echo reply from {address}"


@pytest.mark.lab
def test_a_live_host_and_a_missing_one(lab: LabFactory, tmp_path: Path) -> None:
    lb = lab(2)
    h1, h2 = lb.hosts
    conf = tmp_path / "halo.yaml"
    conf.write_text(
        "checks:\n"
        f"  live: {{type: ping, connect_ip: {h2.ipv4}, timeout: 1s}}\n"
        "  gone: {type: ping, connect_ip: 192.0.2.99, timeout: 0.5s}\n"
        f"  live6: {{type: ping, connect_ip: '{h2.ipv6}', timeout: 1s}}\n"
    )

    def run(check: str) -> tuple[int, str]:
        cmd = [sys.executable, "-m", "halo_core.cli", "check", "-c", str(conf), "--run", check]
        done = h1.run(*cmd, check=False, timeout=30)
        return done.returncode, done.stdout + done.stderr

    status, out = run("live")
    assert status == 0 and f"echo reply from {h2.ipv4}" in out, out
    status, out = run("gone")
    assert status == 1 and "timed out" in out, out
    status, out = run("live6")
    assert status == 0, out


def test_keepalived_ping_check_converts() -> None:
    from halo_tool_convert import convert_text

    result = convert_text(
        "virtual_server 192.0.2.10 80 {\n"
        "  real_server 192.0.2.21 80 {\n    PING_CHECK {\n      connect_timeout 2\n"
        "      connect_port 80\n    }\n  }\n}\n",
        config_id="x",
    )
    assert "type: ping" in result.yaml and "timeout: 2" in result.yaml
    assert "connect_port:" not in result.yaml
    assert not result.warnings and not result.unsupported
