"""The fault matrix on the wire (#15 §4), the shortened CI set: every fault with a
halo↔halo pair, the ones that matter most for interop with halo↔keepalived, and one VRRPv2
cell; VRRPv3 at 0.1 s, 30 % loss for 5 s, 20 reloads in 2 s, 3 check flaps. About 90 s in
all. ``bench/faults`` runs the whole table (both versions, every pair, 5 minutes of loss,
100 reloads in 10 s). What each cell measures and requires: see :mod:`fault_matrix`.

The checks of what happens during the fault keep their takeover counts (which do not
depend on the machine's load) but get a margin of 0.4 s on each gap bound instead of the
bench's 0.15 s: CI shares a 2-core machine. A takeover where none belongs still fails
(a count of 1 where 0 is expected), and so does a gap 0.4 s longer than the protocol's
timing explains."""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_matrix import HEADER, Timing, run_trial

from halo_tool_lab.tools import needs_tools

pytestmark = pytest.mark.lab

CI_TIMING = Timing(loss_seconds=5.0, storm_reloads=20, storm_seconds=2.0, flaps=3, margin=0.4)
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
    """While the fault lasts: the client's gap, the takeovers and two masters at once
    within the fault's bounds; after it: one master within one advert interval, the VIP on
    it alone, nothing left after a graceful stop, no traceback in halo's logs."""
    result = run_trial(fault, pair, version, tmp_path, CI_TIMING)
    assert result.passed, f"\n{HEADER}\n{result.row()}"
