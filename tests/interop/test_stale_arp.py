"""No stale ARP after a split brain heals (#15 §5), a short run of the heal trial of
``stale_arp.py`` (the bench, ``bench/stale_arp/run.py``, runs 50 and more): with halo as the
master the last gratuitous ARP for the VIP comes from the master in every trial, whether the
backup is halo or keepalived, whether or not the backup stepped down silently, and after a
partition of VRRP as after a frozen master (SIGSTOP, SIGCONT)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from stale_arp import FAULTS, StaleArpLab

from halo_tool_lab.netns import Lab
from halo_tool_lab.tools import needs_tools

pytestmark = [pytest.mark.lab, needs_tools("nft")]
TRIALS = 5


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(
    "backup",
    [
        "halo",
        pytest.param("keepalived", marks=[pytest.mark.keepalived, needs_tools("keepalived")]),
    ],
)
def test_the_master_has_the_last_word_after_every_heal(
    lab: Callable[..., Lab], tmp_path: Path, backup: str, fault: str
) -> None:
    bench = StaleArpLab(lab(3, ipv6=False), "halo", backup, tmp_path)
    try:
        outcomes = [bench.trial(fault) for _ in range(TRIALS)]
    finally:
        bench.close()
    shown = "\n".join(map(str, outcomes))
    assert not [o for o in outcomes if o.stale], shown
    assert all(o.observer_mac == bench.master_host.mac for o in outcomes), shown
    if fault == "partition":
        # The master answered the backup's claims within one advert interval (a frozen
        # master answers when it is continued).
        delays = [o.answer_delay for o in outcomes]
        assert all(d is not None and d < 0.1 for d in delays), shown
