"""The fault matrix's measures of what happens during a fault, on made-up advert timelines
(no lab): takeovers on the wire, two masters at once, and the bounds per fault."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from fault_matrix import (
    FAULTS,
    PROTOS,
    Result,
    Timing,
    client_idle,
    expect,
    longest_gap,
    takeovers,
    two_masters,
)

IV = 0.1  # the advert interval of these timelines


def adverts(src: str, start: float, stop: float, every: float = IV) -> list[tuple[float, str]]:
    n = round((stop - start) / every)
    return [(start + k * every, src) for k in range(n + 1)]


def test_a_dead_master_is_one_takeover_without_two_masters() -> None:
    wire = adverts("a", 0.0, 1.0) + adverts("b", 1.4, 3.0)
    assert takeovers(wire, 0.5, IV) == 1
    assert two_masters(wire, 0.5, IV) == 0.0


def test_a_master_coming_back_is_a_second_takeover() -> None:
    wire = adverts("a", 0.0, 1.0) + adverts("b", 1.4, 2.0) + adverts("a", 2.0, 3.0)
    assert takeovers(wire, 0.5, IV) == 2
    assert two_masters(wire, 0.5, IV) == 0.0


def test_a_claim_that_ends_first_is_a_takeover_and_two_masters() -> None:
    """A partition: b claims while a goes on; a stays the master."""
    wire = adverts("a", 0.0, 3.0) + adverts("b", 1.0, 1.7)
    assert takeovers(wire, 0.5, IV) == 1
    assert two_masters(wire, 0.5, IV) == pytest.approx(0.7)
    # another claim of b's counts, even a single advert
    wire += adverts("b", 2.0, 2.0)
    assert takeovers(wire, 0.5, IV) == 2


def test_nothing_happening_is_no_takeover() -> None:
    wire = adverts("a", 0.0, 3.0)
    assert takeovers(wire, 0.5, IV) == 0
    assert two_masters(wire, 0.5, IV) == 0.0
    # a silence of a's (a reload) is not a takeover either
    assert takeovers(adverts("a", 0.0, 1.0) + adverts("a", 1.5, 3.0), 0.5, IV) == 0


def test_two_masters_before_the_fault_do_not_count() -> None:
    wire = adverts("a", 0.0, 3.0) + adverts("b", 0.0, 0.3)
    assert two_masters(wire, 0.5, IV) == 0.0
    assert takeovers(wire, 0.5, IV) == 0


@pytest.mark.parametrize("version", sorted(PROTOS))
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_fault_has_bounds(fault: str, version: str) -> None:
    proto = PROTOS[version]
    e = expect(fault, proto, Timing())
    assert 0 < e.gap < proto.master_down(90) + proto.interval + 1
    lo, hi = e.takeovers
    assert 0 <= lo <= hi
    assert e.overlap is None or e.overlap >= 1.5 * proto.interval


def test_the_bounds_follow_the_protocol() -> None:
    v3, timing = PROTOS["v3"], Timing(margin=0.15)
    assert expect("kill9", v3, timing).gap == pytest.approx(0.365 + 0.1 + 0.15, abs=0.001)
    assert expect("restart", v3, timing).gap == pytest.approx(0.1 + 0.15)
    assert expect("hup-storm", v3, timing).gap == pytest.approx(0.1 + 0.15)
    assert expect("flapping-check", v3, timing).takeovers == (0, 2 * timing.flaps)
    assert expect("partition", v3, timing).overlap == pytest.approx(1.0 + 1.5 * 0.1)  # >= 1 s
    # 30 % loss for 300 s at 0.1 s: about 57 claims expected, none at all is wrong
    lo, hi = expect("loss30", v3, timing).takeovers
    assert lo == 1 and hi == math.ceil(56.7 + 4 * math.sqrt(56.7) + 2)


def test_a_cell_out_of_bounds_fails_and_says_why() -> None:
    r = Result("hup-storm", "halo-halo", "v3", interval=0.1, settle=0.0)
    r.final_master = r.expected_master = "a"
    r.one_master = r.nothing_left = True
    e = expect("hup-storm", PROTOS["v3"], Timing())
    r.gap, r.gap_bound, r.gap_at, r.fault_seconds = 0.03, e.gap, 1.0, 10.0
    r.takeovers, r.takeovers_expected, r.expected_why = 0, e.takeovers, e.why
    r.overlap, r.overlap_bound = 0.0, e.overlap
    assert r.passed and r.row().split()[-1] == "pass"
    r.takeovers, r.overlap, r.gap = 1, 0.4, 0.5
    assert not r.passed
    row = r.row()
    assert "FAIL" in row
    assert "gap over 250 ms, from 1.00 s into the fault (which lasted 10.00 s)" in row
    assert "1 takeovers, expected 0 (reloads change nothing served)" in row
    assert "two masters for 400 ms" in row


def test_a_gap_the_client_was_idle_for_is_told_apart(tmp_path: Path) -> None:
    """Answers every 20 ms; the client sends nothing from 1.0 to 1.3 s (not scheduled),
    then the service fails from 2.0 to 2.4 s while it keeps asking."""
    log = tmp_path / "client.jsonl"
    lines = []
    for k in range(150):
        t = k * 0.02
        if 1.0 < t < 1.3:
            continue
        ok = not 2.0 <= t < 2.4
        lines.append(json.dumps({"t": t, "done": t + (0.001 if ok else 1.0), "ok": ok}))
    log.write_text("\n".join([*lines, "not json", '{"t": 1}']) + "\n")
    gap, at = longest_gap(log, 0.0, 3.0)
    assert gap == pytest.approx(0.42, abs=0.001) and at == pytest.approx(1.981, abs=0.001)
    assert client_idle(log, at, at + gap) == pytest.approx(0.02, abs=0.001)
    gap, at = longest_gap(log, 0.0, 1.9)
    assert gap == pytest.approx(0.30, abs=0.001)
    assert client_idle(log, at, at + gap) == pytest.approx(0.30, abs=0.001)
    assert longest_gap(tmp_path / "missing.jsonl", 0.0, 3.0) == (3.0, 0.0)
