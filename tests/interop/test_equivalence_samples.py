"""keepalived's VRRP-only samples: keepalived on the file and halo on
``halo convert`` of it, side by side, do the same, apart from the differences listed in
docs/keepalived-equivalence.md. The harness is ``equivalence.py``; ``bench/equivalence/run.py``
runs every sample (the load-balancer ones in the IPVS VM) and writes the table.

A case may differ only in the categories written down here (an upper bound: a difference
that goes away passes, a new one fails). vrrp.scripts and vrrp.sync check "primary", which
of several addresses of one subnet is the primary: it follows which instance became master
first, in a sync group the member whose Master_Down_Timer expired last (keepalived's
vrrp_sync_can_goto_master), then the others in the group's order.
"""

from __future__ import annotations

import pytest
from equivalence import Case, Verdict, all_cases, run_cases

from halo_core import plugins as plugin_loader
from halo_tool_lab.netns import lab_unavailable_reason
from halo_tool_lab.tools import needs_tools

pytestmark = [
    pytest.mark.lab,
    pytest.mark.keepalived,
    needs_tools("keepalived", "nft"),
    pytest.mark.timeout(180),
]

# case -> the categories it may differ in (equivalence.CATEGORIES), and why
KNOWN: dict[str, tuple[set[str], str]] = {
    "vrrp": ({"adverts"}, "keepalived repeats an address listed twice in its adverts"),
    "vrrp.localcheck": (set(), ""),
    "vrrp.routes": (set(), ""),
    "vrrp.rules": (set(), ""),
    "vrrp.scripts": (set(), ""),
    "vrrp.static_ipaddress": (set(), ""),
    "vrrp.sync": (set(), ""),
    "track_interface": (set(), ""),
}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Verdict]:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(f"lab unavailable: {reason}")
    plugins = plugin_loader.load()
    if "vip" not in plugins.names("backend"):
        pytest.skip("the vip backend plugin is not installed: halo would not move the VIPs")
    cases: list[Case] = [c for c in all_cases() if c.name in KNOWN]
    if len(cases) < len(KNOWN):
        pytest.skip("keepalived's samples are not installed (/usr/share/doc/keepalived)")
    out = run_cases(cases, tmp_path_factory.mktemp("equivalence"), jobs=len(cases))
    return {v.case: v for v in out}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_sample_behaves_as_keepalived(verdicts: dict[str, Verdict], name: str) -> None:
    verdict = verdicts[name]
    allowed, why = KNOWN[name]
    assert verdict.kind != "not runnable", verdict.note
    unexpected = verdict.categories - allowed
    assert not unexpected, "\n".join(text for cat, text in verdict.details if cat in unexpected)
    if verdict.kind == "differs":
        print(f"\n{name}: differs as known ({why}): {sorted(verdict.categories)}")
