"""The fault matrix on the wire (#15 §4), the shortened CI set: every fault with a
halo↔halo pair, the ones that matter most for interop with halo↔keepalived, and one VRRPv2
cell; VRRPv3 at 0.1 s, 30 % loss for 5 s, 20 reloads in 2 s, 3 check flaps. About 90 s in
all. ``bench/faults`` runs the whole table (both versions, every pair, 5 minutes of loss,
100 reloads in 10 s). What each cell measures and requires: see :mod:`fault_matrix`."""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_matrix import HEADER, Timing, run_trial

from halo_tool_lab.tools import needs_tools

pytestmark = pytest.mark.lab

CI_TIMING = Timing(loss_seconds=5.0, storm_reloads=20, storm_seconds=2.0, flaps=3)
NFT = needs_tools("nft")
KEEPALIVED = [pytest.mark.keepalived, needs_tools("keepalived")]

CELLS = [
    pytest.param("kill9", "halo-halo", "v3"),
    pytest.param("sigstop", "halo-halo", "v3"),
    pytest.param("link-down-a", "halo-halo", "v3"),
    pytest.param("partition", "halo-halo", "v3", marks=NFT),
    pytest.param("loss30", "halo-halo", "v3", marks=NFT),
    pytest.param("flapping-check", "halo-halo", "v3"),
    pytest.param("vip-taken", "halo-halo", "v3"),
    pytest.param("hup-storm", "halo-halo", "v3"),
    pytest.param("restart", "halo-halo", "v3"),
    pytest.param("kill9", "halo-keepalived", "v3", marks=KEEPALIVED),
    pytest.param("sigstop", "keepalived-halo", "v3", marks=KEEPALIVED),
    pytest.param("partition", "halo-keepalived", "v3", marks=[*KEEPALIVED, NFT]),
    pytest.param("kill9", "halo-keepalived", "v2", marks=KEEPALIVED),
]


@pytest.mark.parametrize(("fault", "pair", "version"), CELLS)
def test_fault(lab_root: None, tmp_path: Path, fault: str, pair: str, version: str) -> None:
    """After the fault: one master within one advert interval, the VIP on it alone,
    nothing left after a graceful stop, no traceback in halo's logs."""
    result = run_trial(fault, pair, version, tmp_path, CI_TIMING)
    assert result.passed, f"\n{HEADER}\n{result.row()}"
