"""keepalived's checker process runs on a kernel without IPVS with the shim of
``bench/checks/ipvs_shim.c`` preloaded (what ``bench/checks/per_check.py`` measures halo's
TCP checks against): it starts, checks its real servers, adds them to the (faked) IPVS table,
and when one stops answering logs the failure and removes it, while the other stays."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from halo_tool_lab.netns import Lab
from halo_tool_lab.tools import needs_tools

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT / "bench" / "checks"))

from keepalived_checker import (  # noqa: E402
    KeepalivedChecker,
    build_shim,
    compile_c,
    shim_unavailable_reason,
    tcp_check_config,
)

pytestmark = [pytest.mark.lab, pytest.mark.keepalived, needs_tools("keepalived", "gcc")]


def accepted(counts: Path, peer: str) -> int:
    """Connections the real server accepted from *peer* (tcp_servers.c's counts)."""
    return int(json.loads(counts.read_text())["by_peer"].get(peer, 0))


def test_keepalived_checker_checks_real_servers_without_ip_vs(
    lab: Callable[..., Lab], tmp_path: Path
) -> None:
    reason = shim_unavailable_reason()
    if reason:
        pytest.skip(reason)
    build = tmp_path / "build"
    shim = build_shim(build)
    servers = compile_c(ROOT / "bench" / "checks" / "tcp_servers.c", build / "tcp_servers")
    net = lab(2, ipv6=False)
    host, checker_host = net.hosts
    kept = host.spawn(servers, tmp_path / "kept.json", "20001")
    stopped = host.spawn(servers, tmp_path / "stopped.json", "20002")
    config = tcp_check_config(str(host.ipv4), [20001, 20002], interval=0.2, timeout=0.5)
    keepalived = KeepalivedChecker(checker_host, config, tmp_path, shim)
    where = re.escape(f"[{host.ipv4}]:tcp:")
    try:
        for port in (20001, 20002):
            assert keepalived.wait_log(rf"TCP connection to {where}{port} success", 10), (
                keepalived.log[-3000:]
            )
        assert keepalived.checker_pid() is not None
        assert "Can't initialize ipvs" not in keepalived.log
        added = {f"ADDDEST {host.ipv4}:{port} weight 1" for port in (20001, 20002)}
        assert added <= set(keepalived.ipvs_changes()), keepalived.ipvs_changes()

        stopped.kill()
        stopped.wait(5)
        assert keepalived.wait_log(rf"TCP_CHECK on service {where}20002 failed", 10), (
            keepalived.log[-3000:]
        )
        deadline = time.monotonic() + 5
        removed = f"DELDEST {host.ipv4}:20002 weight 1"
        while removed not in keepalived.ipvs_changes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert removed in keepalived.ipvs_changes(), keepalived.ipvs_changes()
        assert f"DELDEST {host.ipv4}:20001 weight 1" not in keepalived.ipvs_changes()
        assert keepalived.checker_pid() is not None and kept.running
        # and it keeps checking the server that answers, every 0.2 s
        before = accepted(tmp_path / "kept.json", str(checker_host.ipv4))
        time.sleep(1.0)
        assert accepted(tmp_path / "kept.json", str(checker_host.ipv4)) >= before + 3
    finally:
        keepalived.stop()
