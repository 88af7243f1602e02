"""``halo watch``: decoding what the wire carries, telling a split brain from a takeover,
and, in the lab, seeing keepalived and halo routers and flagging a forced conflict."""

from __future__ import annotations

import io
import json
import signal
import struct
import sys
import time
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

import pytest

from halo_core.vrrp import packet
from halo_tool_lab.keepalived import Keepalived
from halo_tool_lab.netns import wait_until
from halo_tool_lab.pytest_plugin import HaloFactory, LabFactory
from halo_tool_lab.tools import needs_tools
from halo_tool_watch import watch
from halo_tool_watch.watch import Invalid, Observation, Watch

GROUP4 = IPv4Address("224.0.0.18")
GROUP6 = IPv6Address("ff02::12")


def ipv4(src: str, payload: bytes, *, ttl: int = 255, dst: IPv4Address = GROUP4) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0xC0,
        20 + len(payload),
        0,
        0,
        ttl,
        112,
        0,
        IPv4Address(src).packed,
        dst.packed,
    )
    return header + payload


def ipv6(src: str, payload: bytes, *, hlim: int = 255) -> bytes:
    head = struct.pack("!IHBB", 6 << 28, len(payload), 112, hlim)
    return head + IPv6Address(src).packed + GROUP6.packed + payload


def advert(
    vrid: int = 51,
    priority: int = 100,
    *,
    version: int = 2,
    interval_cs: int = 100,
    addresses: tuple[str, ...] = ("192.0.2.100",),
    password: bytes | None = None,
) -> packet.Advertisement:
    return packet.Advertisement(
        version,
        vrid,
        priority,
        interval_cs,
        tuple(ip_address(a) for a in addresses),  # type: ignore[arg-type]
        packet.AUTH_PASS if password else packet.AUTH_NONE,
        password or b"",
    )


def wire4(src: str, adv: packet.Advertisement, **kw: Any) -> bytes:
    v2_style = kw.pop("v3_checksum_as_v2", False)
    return ipv4(src, packet.encode(adv, IPv4Address(src), GROUP4, v3_checksum_as_v2=v2_style), **kw)


def obs(t: float, src: str, adv: packet.Advertisement, ttl: int = 255) -> Observation:
    return Observation(t, 4, src, str(GROUP4), ttl, adv)


# ---------------------------------------------------------------------------------- decoding


def test_decode_what_the_wire_carries() -> None:
    o = watch.decode(wire4("192.0.2.11", advert(password=b"secret")), watch.ETH_P_IP, now=1.0)
    assert isinstance(o, Observation)
    assert (o.family, o.source, o.ttl, o.advert.vrid, o.advert.auth_data) == (
        4,
        "192.0.2.11",
        255,
        51,
        b"secret",
    )
    v3 = advert(version=3, interval_cs=10, addresses=("2001:db8::100",))
    payload = packet.encode(v3, IPv6Address("fe80::1"), GROUP6)
    o6 = watch.decode(ipv6("fe80::1", payload, hlim=254), watch.ETH_P_IPV6, now=2.0, mac="aa")
    assert isinstance(o6, Observation)
    assert (o6.family, o6.source, o6.ttl, o6.mac) == (6, "fe80::1", 254, "aa")
    # VRRPv3 over IPv4 with the pseudo-header left out (keepalived's v3_checksum_as_v2).
    odd = wire4("192.0.2.12", advert(version=3, interval_cs=10), v3_checksum_as_v2=True)
    o2 = watch.decode(odd, watch.ETH_P_IP, now=3.0)
    assert isinstance(o2, Observation) and o2.checksum == "v2-style"
    broken = bytearray(wire4("192.0.2.13", advert()))
    broken[-1] ^= 0xFF
    bad = watch.decode(bytes(broken), watch.ETH_P_IP, now=4.0)
    assert isinstance(bad, Invalid) and (bad.source, bad.reason) == ("192.0.2.13", "bad_checksum")
    short = watch.decode(b"\x45" + b"\0" * 10, watch.ETH_P_IP, now=5.0)
    assert isinstance(short, Invalid) and short.reason == "bad_ip_header"


# ---------------------------------------------------------------------------------- analysis


def run_adverts(
    w: Watch, adverts: list[tuple[float, str, packet.Advertisement]], ended: list[str] | None = None
) -> list[str]:
    """Feed adverts in time order, evaluating after each; the conflict kinds that started
    (and, into ``ended``, those that ended)."""
    started = []
    for t, src, adv in sorted(adverts, key=lambda a: a[0]):
        w.observe(obs(t, src, adv))
        new, gone = w.evaluate(t)
        started += [c.kind for c in new]
        if ended is not None:
            ended += [c.kind for c in gone]
    return started


def every(src: str, start: float, stop: float, adv: packet.Advertisement, step: float = 1.0) -> Any:
    t = start
    out = []
    while t < stop:
        out.append((t, src, adv))
        t += step
    return out


def test_split_brain_is_flagged_and_resolves() -> None:
    w = Watch()
    a, b = advert(priority=100), advert(priority=90)
    ended: list[str] = []
    started = run_adverts(w, every("192.0.2.11", 0, 10, a) + every("192.0.2.12", 4.5, 7, b), ended)
    assert started == ["two_masters"]
    c = w.seen[("two_masters", 4, 51)]
    assert c.sources == ("192.0.2.11", "192.0.2.12")
    assert "192.0.2.12 (priority 90)" in c.detail
    # B went quiet at 6.5 (it heard A again): soon A alone is advertising.
    assert ended == ["two_masters"] and not w.conflicts


def test_takeovers_are_not_split_brains() -> None:
    a, b = advert(priority=100), advert(priority=150)
    # A dies at 3; B takes over 3.6 s later.
    w = Watch()
    assert run_adverts(w, every("192.0.2.11", 0, 3, a) + every("192.0.2.12", 6.6, 12, b)) == []
    # B preempts A at 6.1 and A's timer fires once more just before it hears B.
    w = Watch()
    flows = [*every("192.0.2.11", 0, 7, a), (6.15, "192.0.2.11", a)]
    assert run_adverts(w, flows + every("192.0.2.12", 6.1, 12, b)) == []
    # A graceful stop: priority 0, then the backup.
    w = Watch()
    flows = [*every("192.0.2.11", 0, 3, a), (3.2, "192.0.2.11", advert(priority=0))]
    assert run_adverts(w, flows + every("192.0.2.12", 3.8, 9, b)) == []
    assert w.routers[(4, 51, "192.0.2.11")].role(9.0) == "stepped down"
    assert w.routers[(4, 51, "192.0.2.12")].role(9.0) == "master"


def test_mismatches() -> None:
    w = Watch()
    w.observe(obs(0.0, "192.0.2.11", advert(password=b"secret")))
    w.observe(obs(0.1, "192.0.2.12", advert(password=b"Secret", addresses=("192.0.2.101",))))
    w.observe(obs(0.2, "192.0.2.13", advert(interval_cs=200, password=b"secret"), ttl=64))
    w.observe(obs(0.3, "192.0.2.14", advert(version=3, interval_cs=100)))
    w.observe(obs(0.4, "192.0.2.21", advert(vrid=9, priority=255)))
    w.observe(obs(0.5, "192.0.2.22", advert(vrid=9, priority=255)))
    started, _ = w.evaluate(0.5)
    found = {(c.kind, c.vrid): c for c in started}
    assert set(found) == {
        ("auth_mismatch", 51),
        ("address_mismatch", 51),
        ("interval_mismatch", 51),
        ("version_mismatch", 51),
        ("bad_ttl", 51),
        ("two_owners", 9),
    }
    auth = found[("auth_mismatch", 51)].detail
    assert "secret" not in auth.lower() and auth.count("PASS#") == 3
    assert found[("bad_ttl", 51)].sources == ("192.0.2.13",)
    assert "192.0.2.13: 2s" in found[("interval_mismatch", 51)].detail
    # A router changing its advert is reported as a change.
    changes = w.observe(obs(1.0, "192.0.2.11", advert(priority=0, password=b"secret")))
    assert [(what, text) for what, _, text in changes] == [("changed", "priority 100 -> 0")]


def test_output_text_and_json() -> None:
    w = Watch()
    text, js = io.StringIO(), io.StringIO()
    out_t, out_j = watch.Output(text, False), watch.Output(js, True)
    for t, src, adv in every("192.0.2.11", 0, 6, advert()) + every("192.0.2.12", 0.5, 6, advert()):
        for what, router, change in w.observe(obs(t, src, adv)):
            out_t.router(t, what, router, change)
            out_j.router(t, what, router, change)
    started, _ = w.evaluate(5.6)
    for c in started:
        out_t.conflict(5.6, c, started=True)
        out_j.conflict(5.6, c, started=True)
    out_t.summary(w, 6.0, "eth0", 6.0)
    out_j.summary(w, 6.0, "eth0", 6.0)
    lines = text.getvalue().splitlines()
    assert any("new       VRID 51  IPv4  192.0.2.11" in ln and "priority 100" in ln for ln in lines)
    assert any("CONFLICT  VRID 51  IPv4  two masters:" in ln for ln in lines)
    assert "2 router(s) heard on eth0 in 6.0 s:" in lines
    assert any(ln.startswith("NOW   VRID 51 IPv4: two masters") for ln in lines)
    docs = [json.loads(ln) for ln in js.getvalue().splitlines()]
    assert [d["event"] for d in docs] == ["router", "router", "conflict", "summary"]
    assert docs[-1]["routers"][0]["role"] == "master"
    assert docs[-1]["seen_conflicts"][0]["kind"] == "two_masters"


def test_cannot_watch_a_missing_interface(capsys: pytest.CaptureFixture[str]) -> None:
    assert watch.run("nosuchif0", seconds=0.1) == 2
    assert "cannot listen on nosuchif0" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- lab

KEEPALIVED = """
global_defs {
    router_id ka1
}
vrrp_instance VI_51 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass secret
    }
    virtual_ipaddress {
        192.0.2.151/24
    }
}
"""


def halo_config(state: Path, instances: str) -> str:
    return f"global:\n  state_dir: {state}\nvrrp_instances:\n{instances}"


HALO = """  V4:
    interface: eth0
    virtual_router_id: 52
    priority: 100
    version: 3
    advert_int: 0.1
    virtual_ipaddress: [192.0.2.152/24]
  V6:
    interface: eth0
    virtual_router_id: 53
    priority: 100
    version: 3
    advert_int: 0.1
    virtual_ipaddress: ["2001:db8::153/64"]
"""

# Same VRID as keepalived, another password and address: each side drops the other's
# adverts (auth mismatch) and both become master. As the address owner (255) it is master
# from the start, which keeps the test short.
# Adverts every 2 s, not keepalived's 1 s: keepalived 2.2.7 as master puts its next advert
# a whole interval after each advert it receives, even one it drops for its password, so a
# rogue as punctual as halo at the same interval silences it (measured), and no two masters
# are there to see.
ROGUE = """  VI_51:
    interface: eth0
    virtual_router_id: 51
    priority: 255
    advert_int: 2
    authentication: {auth_pass: other}
    virtual_ipaddress: [192.0.2.153/24]
"""


@pytest.mark.lab
@pytest.mark.keepalived
@needs_tools("keepalived")
def test_watch_sees_keepalived_and_halo_and_flags_the_conflict(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    lb = lab(4)
    h1, h2, h3, h4 = (lb.host(f"h{i}") for i in range(1, 5))
    ka = Keepalived(h1, KEEPALIVED, tmp_path)
    for host, name, instances in ((h2, "halo", HALO), (h3, "rogue", ROGUE)):
        start_halo(host, halo_config(tmp_path / f"{name}-state", instances), name=name)
    # Watch until the split brain shows (bounded), then stop it as an operator would.
    log = tmp_path / "watch.jsonl"
    proc = h4.spawn(
        sys.executable, "-m", "halo_core.cli", "watch", "eth0", "--seconds", "20", "--json", log=log
    )
    assert wait_until(lambda: '"kind": "two_masters"' in proc.log_text(), 15, 0.1), ka.log
    time.sleep(0.3)
    proc.kill(signal.SIGTERM)
    assert proc.wait(10) == 1, proc.log_text()
    docs = [json.loads(ln) for ln in log.read_text().splitlines()]
    summary = docs[-1]
    assert summary["event"] == "summary"
    routers = {(r["vrid"], r["source"]): r for r in summary["routers"]}
    keepalived = routers[(51, "192.0.2.11")]
    assert (keepalived["version"], keepalived["priority"], keepalived["interval"]) == (2, 100, 1.0)
    assert keepalived["addresses"] == ["192.0.2.151"] and keepalived["auth"].startswith("PASS#")
    assert keepalived["mac"] == "02:48:41:00:00:01"
    rogue = routers[(51, "192.0.2.13")]
    assert rogue["priority"] == 255 and rogue["auth"] != keepalived["auth"]
    v4 = routers[(52, "192.0.2.12")]
    assert (v4["version"], v4["interval"], v4["role"]) == (3, 0.1, "master")
    v6 = next(r for r in summary["routers"] if r["vrid"] == 53)
    assert v6["family"] == "IPv6" and v6["source"].startswith("fe80::")
    assert v6["addresses"] == ["2001:db8::153"]
    flagged = {(c["kind"], c["vrid"]) for c in summary["seen_conflicts"]}
    assert flagged == {
        ("two_masters", 51),
        ("auth_mismatch", 51),
        ("address_mismatch", 51),
        ("interval_mismatch", 51),
    }
    two = next(c for c in summary["seen_conflicts"] if c["kind"] == "two_masters")
    assert sorted(two["sources"]) == ["192.0.2.11", "192.0.2.13"]
    assert ("two_masters", 51) in {(c["kind"], c["vrid"]) for c in summary["conflicts"]}
    assert not summary["invalid"]
    assert ka.running
