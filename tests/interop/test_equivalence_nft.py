"""The equivalence harness compares nftables rulesets by effect: keepalived 2.2.7's strict
mode table and halo's no-accept table, both as ``nft list ruleset`` printed them (data/,
captured on this kernel with 192.0.2.100 and 2001:db8::100 in no-accept mode), drop the
same packets; a ruleset that drops something else, or that the normaliser does not
understand, still differs."""

from __future__ import annotations

from pathlib import Path

from nft_effect import Drop, compare, effect

DATA = Path(__file__).parent / "data"
KEEPALIVED = (DATA / "nft-keepalived-strict.txt").read_text()
HALO = (DATA / "nft-halo-no-accept.txt").read_text()
ND = ("nd-neighbor-advert", "nd-neighbor-solicit")


def test_both_tables_drop_the_same_packets() -> None:
    expected = frozenset(
        {
            Drop("input", "ip", "daddr", "192.0.2.100"),
            Drop("output", "ip", "saddr", "192.0.2.100"),
            Drop("input", "ip6", "daddr", "2001:db8::100", ND),
            Drop("output", "ip6", "saddr", "2001:db8::100", ND),
        }
    )
    assert effect(KEEPALIVED) == expected
    assert effect(HALO) == expected
    assert compare(KEEPALIVED, HALO) is None


def test_input_only_table_differs() -> None:
    """halo's table before this change: no output chain."""
    start = HALO.index("\tchain output")
    input_only = HALO[:start].rstrip() + "\n}\n"
    diff = compare(KEEPALIVED, input_only)
    assert diff is not None
    assert "only keepalived: output: ip from 192.0.2.100 dropped" in diff
    assert "only halo: -" in diff


def test_other_addresses_and_no_table_differ() -> None:
    other = HALO.replace("192.0.2.100", "192.0.2.101")
    diff = compare(KEEPALIVED, other)
    assert diff is not None and "192.0.2.101" in diff
    assert compare(KEEPALIVED, "") == (
        "only keepalived: "
        + "; ".join(map(str, sorted(effect(KEEPALIVED) or ())))
        + "; only halo: -"
    )


def test_nd_not_exempted_differs() -> None:
    no_nd = HALO.replace(
        "\t\tip6 daddr @vips6 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n", ""
    )
    diff = compare(KEEPALIVED, no_nd)
    assert diff is not None and "input: ip6 to 2001:db8::100 dropped" in diff


def test_unknown_rules_are_compared_as_text() -> None:
    odd = HALO.replace("ip daddr @vips4 drop", "tcp dport 22 drop")
    assert effect(odd) is None
    diff = compare(KEEPALIVED, odd)
    assert diff is not None and diff.startswith("keepalived 'table ip keepalived")
    assert compare(odd, odd) is None
