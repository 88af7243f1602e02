"""Fuzzing that stays (#15 §6): the VRRP receive path, the status API's HTTP parser, the
configuration loader and the keepalived.conf converter, each with a fixed seed and a count
small enough for CI (about 8 s in all). ``bench/fuzz`` runs the long version with the same
generators (:mod:`halo_tool_lab.fuzz`)."""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRP, VRRPv3
from vrrp_targets import vrrp_targets

from halo_tool_lab import fuzz
from halo_tool_status.server import HttpError, parse_head

SEED = 15


def assert_clean(report: fuzz.FuzzReport) -> None:
    assert report.clean, f"{report.line()}\n" + "\n".join(report.examples)


def test_vrrp_receive_path() -> None:
    """RFC 3768 §7.1 / RFC 9568 §7.1: mutated adverts (IP header, VRRP fields, checksum fixed
    up or not, hop limit, destination, interface index) into real instances in BACKUP and
    MASTER: nothing raises, nothing the oracle says to drop reaches the state machine,
    nothing valid is refused."""
    report = fuzz.fuzz_vrrp(SEED, 20_000, vrrp_targets())
    assert_clean(report)
    assert report.accepted > 2_000  # the generator reaches the state machine...
    refusals = set(report.outcomes) - {"accept"}
    assert len(refusals) >= 18, refusals  # ...and nearly every reason to drop


def test_scapy_built_adverts_are_accepted_by_halo_and_the_oracle() -> None:
    """scapy as the independent encoder: what it builds (checksums included) is a valid
    advert for halo's receive path and for the fuzzer's own oracle alike."""
    targets = vrrp_targets()
    v2 = next(t for t in targets if t.name == "v2/ipv4/backup")
    v3 = next(t for t in targets if t.name == "v3/ipv4/backup")
    v6 = next(t for t in targets if t.name == "v3/ipv6/backup")
    for priority in (1, 50, 100, 200, 254):
        password = fuzz.PASSWORD.ljust(8, b"\0")
        adv2 = IP(src=str(fuzz.PEER4), dst=str(fuzz.GROUP4), ttl=255) / VRRP(
            vrid=fuzz.VRID,
            priority=priority,
            ipcount=2,
            addrlist=[str(a) for a in v2.exp.addresses],
            authtype=1,
            auth1=int.from_bytes(password[:4]),
            auth2=int.from_bytes(password[4:]),
            adv=1,
        )
        adv3 = IP(src=str(fuzz.PEER4), dst=str(fuzz.GROUP4), ttl=255) / VRRPv3(
            vrid=fuzz.VRID,
            priority=priority,
            ipcount=2,
            addrlist=[str(a) for a in v3.exp.addresses],
        )
        adv6 = IPv6(src=str(fuzz.PEER6), dst=str(fuzz.GROUP6), hlim=255) / VRRPv3(
            vrid=fuzz.VRID,
            priority=priority,
            ipcount=2,
            addrlist=[str(a) for a in v6.exp.addresses],
        )
        for target, datagram in ((v2, bytes(adv2)), (v3, bytes(adv3))):
            before = target.runtime.counters["adverts_received"]
            assert fuzz.must_drop(target.exp, datagram=datagram) is None
            target.sock.take(datagram, [], None, 0.0, 0.0)
            assert target.runtime.counters["adverts_received"] == before + 1, target.name
        payload = bytes(adv6[VRRPv3])
        anc = [
            (socket.IPPROTO_IPV6, fuzz._IPV6_HOPLIMIT, struct.pack("i", 255)),
            (
                socket.IPPROTO_IPV6,
                fuzz._IPV6_PKTINFO,
                struct.pack("16sI", fuzz.GROUP6.packed, fuzz.IFINDEX),
            ),
        ]
        before = v6.runtime.counters["adverts_received"]
        assert fuzz.must_drop(v6.exp, payload=payload, anc=anc, src6=fuzz.PEER6) is None
        v6.sock.take(payload, anc, (f"{fuzz.PEER6}%eth0", 0, 0, fuzz.IFINDEX), 0.0, 0.0)
        assert v6.runtime.counters["adverts_received"] == before + 1


@pytest.mark.parametrize(
    "anc",
    [
        [(socket.IPPROTO_IPV6, fuzz._IPV6_HOPLIMIT, b"\xff")],  # short hop limit
        [(socket.IPPROTO_IPV6, fuzz._IPV6_PKTINFO, fuzz.GROUP6.packed[:7])],  # short pktinfo
        [  # another interface's packet
            (socket.IPPROTO_IPV6, fuzz._IPV6_HOPLIMIT, struct.pack("i", 255)),
            (socket.IPPROTO_IPV6, fuzz._IPV6_PKTINFO, struct.pack("16sI", fuzz.GROUP6.packed, 99)),
        ],
    ],
    ids=["short-hop-limit", "short-pktinfo", "other-interface"],
)
def test_malformed_ipv6_ancillary_data_is_a_counted_drop(anc: fuzz.Anc) -> None:
    """Found by the fuzzer: a short IPV6_PKTINFO raised AddressValueError out of the socket's
    reader; now malformed ancillary data, or a packet the kernel says came in on another
    interface, is dropped and counted as a bad header."""
    target = next(t for t in vrrp_targets() if t.name == "v3/ipv6/backup")
    adv6 = IPv6(src=str(fuzz.PEER6), dst=str(fuzz.GROUP6), hlim=255) / VRRPv3(
        vrid=fuzz.VRID, priority=100, ipcount=1, addrlist=[str(target.exp.addresses[0])]
    )
    target.sock._handle6(bytes(adv6[VRRPv3]), anc, (f"{fuzz.PEER6}%eth0", 0, 0, 7), 0.0)
    assert target.runtime.counters["adverts_received"] == 0
    assert target.sock.counters["bad_ip_header"] == 1


def test_status_api_http(tmp_path: Path) -> None:
    """Raw malformed requests to a running daemon's API on loopback: each gets a well-formed
    answer (or, for an unfinished head, a closed connection), no 5xx, no traceback."""
    report = fuzz.fuzz_http(SEED, 1_500, tmp_path)
    assert_clean(report)
    assert {"200", "400", "404", "405", "421", "431"} <= set(report.outcomes)


def test_unparsable_request_target_is_a_400() -> None:
    """Found by the fuzzer: ``GET //[x/`` made urlsplit raise ValueError, logged as a
    traceback, and the client got no answer."""
    with pytest.raises(HttpError) as caught:
        parse_head(b"GET //[x/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert caught.value.status == 400


# The loader's known crash (#15 §1, fixed on s15-config): pyyaml's Reader is built outside
# the loader's try, so a control character escapes as yaml.reader.ReaderError.
KNOWN_CONFIG_CRASHES: set[str] = set()


def test_config_loader() -> None:
    """Mutated YAML through the loader ``halo check`` uses: a ConfigError or a valid
    configuration, under 1 s each; no crash other than the known one."""
    report = fuzz.fuzz_config(SEED, 1_000)
    unknown = {k: n for k, n in report.crash_kinds.items() if k not in KNOWN_CONFIG_CRASHES}
    assert not unknown, "\n".join(report.examples)
    assert report.hangs == 0 and report.slowest < fuzz.HANG_SECONDS, report.line()
    assert report.accepted > 0 and report.outcomes["refused"] > 500


def test_config_loader_never_crashes() -> None:
    assert_clean(fuzz.fuzz_config(SEED, 1_000))


def test_keepalived_converter() -> None:
    """Mutated keepalived.conf (braces, quotes, parameters, conditionals, sequences,
    includes, numbers) through the lexer, parser and mapping of ``halo convert``."""
    report = fuzz.fuzz_keepalived(SEED, 1_000)
    assert_clean(report)
    assert report.accepted > 0 and report.outcomes["refused"] > 500


def test_same_seed_same_inputs() -> None:
    a, b = fuzz.fuzz_vrrp(7, 500, vrrp_targets()), fuzz.fuzz_vrrp(7, 500, vrrp_targets())
    assert a.outcomes == b.outcomes and a.accepted == b.accepted
    assert isinstance(fuzz.PEER4, IPv4Address) and isinstance(fuzz.PEER6, IPv6Address)


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_a_non_finite_v2_advert_interval_is_an_error_not_a_crash(value: str) -> None:
    """Found by the fuzzer: ``advert_int: .inf`` with ``version: 2`` raised OverflowError
    from the codec's interval check (int(inf)) instead of a configuration error."""
    from halo_tool_lab.testing import config_errors

    text = fuzz.SEED_CONFIG.replace("    advert_int: 1\n", f"    advert_int: {value}\n", 1)
    assert any("advert_int" in line for line in config_errors(text))
