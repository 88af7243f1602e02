"""keepalived 2.2.7 in strict mode (``vrrp_strict``) and halo on ``halo convert``'s output of
the same kind of file, as a pair, on real kernels: seed 001's pattern (VRRPv2 with a PASS
block that strict mode ignores, ``state MASTER`` below priority 255).

Before strict mode was converted, halo sent auth type 1 and keepalived auth type 0, each
dropped the other's adverts and both were master.  Now: exactly one master, every advert
auth type 0, and the master's no-accept firewall drops packets to and from the VIP, with the
same effect whichever daemon is master (compared with :mod:`nft_effect`); when the master
dies the other takes over and its firewall does the same.
"""

from __future__ import annotations

import time

import nft_effect
import pytest
from vrrp_peers import V2_PASS, Interop, InteropFactory, Node, Spec, keepalived_config

from halo_tool_convert import convert_text
from halo_tool_lab.probes import send_from
from halo_tool_lab.tools import needs_tools

pytestmark = [pytest.mark.lab, pytest.mark.keepalived, needs_tools("keepalived", "nft")]

HIGH, LOW = 120, 100
START = 10.0
VIP = "192.0.2.100"
# What the no-accept firewall of a master of 192.0.2.100 drops (keepalived's and halo's).
DROPS = frozenset(
    {
        nft_effect.Drop("input", "ip", "daddr", VIP),
        nft_effect.Drop("output", "ip", "saddr", VIP),
    }
)


def assert_firewall(master: Node, other: Node, t: Interop) -> None:
    """The master drops what is sent to the VIP (ping from the other node) and what it
    would send from it."""
    ruleset = master.host.run("nft", "list", "ruleset").stdout
    assert nft_effect.effect(ruleset) == DROPS, ruleset + t.logs()
    assert master.host.wait_address(t.proto.vip_address, timeout=2.0), t.logs()
    assert not other.host.ping(VIP, count=2, timeout=2).ok, t.logs()
    assert send_from(master.host, str(other.host.ipv4), VIP) == "blocked"
    assert send_from(master.host, str(other.host.ipv4), str(master.host.ipv4)) == "sent"


def test_conversion_report_of_a_strict_file() -> None:
    """What halo convert says of the file the halo node runs on."""
    result = convert_text(
        keepalived_config("n1", V2_PASS, Spec(HIGH, state="MASTER", strict=True)),
        config_id="lab",
    )
    said = {r.keyword: str(r) for r in result.reports}
    assert said["vrrp_strict"].startswith("note: keepalived.conf:4: vrrp_strict: strict mode")
    for key, text in (
        ("state", "state must match being the address owner (priority 255): BACKUP"),
        ("authentication", "keepalived ignores authentication: left out"),
        ("accept", "accept: false below priority 255"),
        ("lower_prio_no_advert", "lower_prio_no_advert: true"),
        ("garp_lower_prio_repeat", "garp_lower_prio_repeat: 0"),
    ):
        assert said[key].startswith("note: keepalived.conf:"), said[key]
        assert text in said[key], said[key]
    assert not result.unsupported and not result.warnings


@pytest.mark.parametrize("pair", [("keepalived", "halo"), ("halo", "keepalived")], ids="-".join)
def test_strict_pair_one_master_auth_0_no_accept(
    interop: InteropFactory, pair: tuple[str, str]
) -> None:
    proto = V2_PASS  # the PASS block is in both files; strict mode ignores it
    t = interop(proto)
    h1, h2 = t.hosts
    hi = t.start(pair[0], h1, Spec(HIGH, state="MASTER", strict=True))
    assert hi.wait_state("BACKUP", START), t.logs()
    lo = t.start(pair[1], h2, Spec(LOW, strict=True))
    assert lo.wait_state("BACKUP", START), t.logs()
    t.wire.wait(hi.source, timeout=proto.master_down(HIGH) + START, count=2)
    assert hi.wait_state("MASTER", 2.0), t.logs()
    # Well past the other's Master_Down_Interval: it heard the master and stayed BACKUP.
    time.sleep(proto.master_down(LOW) + proto.interval)
    assert lo.states() == ["BACKUP"], t.logs()
    assert hi.states() == ["BACKUP", "MASTER"], t.logs()
    assert not t.wire.sent_by(lo.source), t.logs()
    adverts = t.wire.sent_by(hi.source)
    assert {(a.version, a.priority, a.auth_type, a.interval) for a in adverts} == {
        (2, HIGH, 0, 1.0)
    }, adverts
    assert_firewall(hi, lo, t)
    # The master dies: the other takes over, sends auth 0 and firewalls the VIP the same way.
    died = time.time()
    hi.kill9()
    t.wire.wait(lo.source, after=died, timeout=proto.master_down(LOW) + START, count=2)
    assert lo.wait_state("MASTER", 2.0), t.logs()
    assert {a.auth_type for a in t.wire.sent_by(lo.source)} == {0}
    lo_ruleset = lo.host.run("nft", "list", "ruleset").stdout
    assert nft_effect.effect(lo_ruleset) == DROPS, lo_ruleset + t.logs()
    assert send_from(lo.host, str(hi.host.ipv4), VIP) == "blocked"
