"""VRRP packet codec: known answers, every rejection, round trips, fuzzing, scapy as oracle.

The checksums in the known-answer vectors were worked out by hand (RFC 1071 word sums
written in the comments) and are also checked against a deliberately naive RFC 1071
loop below, which shares no code with the codec. scapy's VRRP / VRRPv3 layers are the
independent decoder and checksum oracle.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, IPOption_Router_Alert
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum

from halo_core.vrrp.packet import (
    AUTH_NONE,
    AUTH_PASS,
    VRRP_GROUP_V4,
    VRRP_GROUP_V6,
    Advertisement,
    AdvertTemplate,
    Expectation,
    IPAddress,
    PacketError,
    RejectReason,
    check,
    decode,
    encode,
    parse_ipv4,
)
from halo_tool_lab.fuzz import ones_complement_sum

SRC4 = IPv4Address("192.0.2.1")
PEER4 = IPv4Address("192.0.2.2")
SRC6 = IPv6Address("fe80::1")
PEER6 = IPv6Address("fe80::2")
VIPS4 = (IPv4Address("192.0.2.16"), IPv4Address("192.0.2.17"), IPv4Address("192.0.2.18"))
VIPS6 = (IPv6Address("fe80::33"), IPv6Address("2001:db8::16"))

# keepalived's classic example (vrid 51, priority 100, advert_int 1, auth_pass 1111), with
# documentation addresses.
V2 = Advertisement(2, 51, 100, 100, VIPS4, AUTH_PASS, b"1111")
V3 = Advertisement(3, 51, 100, 100, VIPS4)
V3_6 = Advertisement(3, 51, 100, 100, VIPS6)

# ---------------------------------------------------------------------------------------
# an independent reference: RFC 1071 the slow way


def rfc1071(data: bytes) -> int:
    return ~ones_complement_sum(data) & 0xFFFF


def pseudo_header(src: IPAddress, dst: IPAddress, length: int) -> bytes:
    if isinstance(src, IPv4Address):
        return src.packed + dst.packed + bytes([0, 112]) + length.to_bytes(2, "big")
    return src.packed + dst.packed + length.to_bytes(4, "big") + bytes([0, 0, 0, 112])


def with_checksum(msg: bytes, src: IPAddress, dst: IPAddress, *, pseudo: bool) -> bytes:
    """``msg`` with its checksum recomputed by the reference."""
    msg = msg[:6] + b"\0\0" + msg[8:]
    covered = (pseudo_header(src, dst, len(msg)) if pseudo else b"") + msg
    return msg[:6] + rfc1071(covered).to_bytes(2, "big") + msg[8:]


def patch(msg: bytes, src: IPAddress, dst: IPAddress, *, pseudo: bool, **at: int) -> bytes:
    """``msg`` with octets replaced (``o0=0x22`` sets octet 0) and a valid checksum."""
    buf = bytearray(msg)
    for key, value in at.items():
        buf[int(key[1:])] = value
    return with_checksum(bytes(buf), src, dst, pseudo=pseudo)


def reason_of(fn: Callable[[], object]) -> RejectReason:
    with pytest.raises(PacketError) as info:
        fn()
    return info.value.reason


# ---------------------------------------------------------------------------------------
# known answers


def test_v2_pass_known_answer() -> None:
    """RFC 3768 §5.3: VRRPv2 PASS advert, every octet, checksum over the message only.

    Words: 2133 6403 0101 0000 c000 0210 c000 0211 c000 0212 3131 3131 0000 0000
    sum 0x32ecc → fold 0x2ecf → complement 0xd130.
    """
    msg = encode(V2, SRC4, VRRP_GROUP_V4)
    assert msg == bytes.fromhex(
        "21"  # version 2, type 1 (ADVERTISEMENT)
        "33"  # VRID 51
        "64"  # priority 100
        "03"  # count IP addrs
        "01"  # auth type 1: plain-text password (RFC 2338 §5.3.6)
        "01"  # adver int: 1 second
        "d130"  # checksum
        "c0000210 c0000211 c0000212"  # 192.0.2.16, .17, .18
        "31313131 00000000"  # "1111" zero-padded to 8 octets
    )
    assert rfc1071(msg) == 0
    assert decode(msg, SRC4, VRRP_GROUP_V4, ttl=255) == V2


def test_v2_no_auth_known_answer() -> None:
    """RFC 3768 §5.3.6, §5.3.10: auth type 0 still carries 8 zero authentication octets.

    Words: 2133 6403 0001 0000 c000 0210 c000 0211 c000 0212 → 0x2cb6a → 0xcb6c → 0x3493.
    """
    adv = replace(V2, auth_type=AUTH_NONE, auth_data=b"")
    msg = encode(adv, SRC4, VRRP_GROUP_V4)
    assert msg == bytes.fromhex("21336403 00013493 c0000210 c0000211 c0000212 00000000 00000000")
    assert decode(msg, SRC4, VRRP_GROUP_V4, ttl=255) == adv


def test_v3_ipv4_known_answer_pseudo_header() -> None:
    """RFC 9568 §5.2, §5.2.8: VRRPv3 over IPv4 with the IPv4 pseudo-header (the default).

    Message words 3133 6403 0064 0000 c000 0210 c000 0211 c000 0212 = 0x2dbcd; pseudo-header
    c000 0201 e000 0012 0070 0014 = 0x1a297; 0x47e64 → 0x7e68 → 0x8197.
    """
    msg = encode(V3, SRC4, VRRP_GROUP_V4)
    assert msg == bytes.fromhex(
        "31"  # version 3, type 1
        "33"  # VRID 51
        "64"  # priority 100
        "03"  # IPvX addr count
        "0064"  # rsvd 0, max adver int 100 centiseconds
        "8197"  # checksum
        "c0000210 c0000211 c0000212"
    )
    assert rfc1071(pseudo_header(SRC4, VRRP_GROUP_V4, len(msg)) + msg) == 0
    assert decode(msg, SRC4, VRRP_GROUP_V4, ttl=255) == V3


def test_v3_ipv4_known_answer_message_only() -> None:
    """RFC 9568 §5.2.8 as read without an IPv4 pseudo-header (keepalived v3_checksum_as_v2).

    0x2dbcd → 0xdbcf → 0x2430; and each form is refused by a receiver expecting the other.
    """
    msg = encode(V3, SRC4, VRRP_GROUP_V4, v3_checksum_as_v2=True)
    assert msg == bytes.fromhex("31336403 00642430 c0000210 c0000211 c0000212")
    assert decode(msg, SRC4, VRRP_GROUP_V4, ttl=255, v3_checksum_as_v2=True) == V3
    wrong = reason_of(lambda: decode(msg, SRC4, VRRP_GROUP_V4, ttl=255))
    assert wrong is RejectReason.BAD_CHECKSUM
    default = encode(V3, SRC4, VRRP_GROUP_V4)
    wrong = reason_of(lambda: decode(default, SRC4, VRRP_GROUP_V4, ttl=255, v3_checksum_as_v2=True))
    assert wrong is RejectReason.BAD_CHECKSUM


def test_v3_ipv6_known_answer() -> None:
    """RFC 9568 §5.2, §5.2.8 (RFC 8200 §8.1 pseudo-header): VRRPv3 over IPv6 to ff02::12.

    Message 3133 6402 0064 0000 fe80 0033 2001 0db8 0016 = 0x1c21b; pseudo-header fe80 0001
    ff02 0012 0000 0028 0000 0070 = 0x1fe2d; 0x3c048 → 0xc04b → 0x3fb4.
    """
    msg = encode(V3_6, SRC6, VRRP_GROUP_V6)
    assert msg == bytes.fromhex(
        "31336402 00643fb4fe80000000000000000000000000003320010db8000000000000000000000016"
    )
    assert rfc1071(pseudo_header(SRC6, VRRP_GROUP_V6, len(msg)) + msg) == 0
    assert decode(msg, SRC6, VRRP_GROUP_V6, ttl=255) == V3_6
    # v3_checksum_as_v2 is an IPv4 matter: IPv6 always uses the pseudo-header.
    assert encode(V3_6, SRC6, VRRP_GROUP_V6, v3_checksum_as_v2=True) == msg


def test_v3_interval_is_12_bit_centiseconds_and_reserved_bits_ignored() -> None:
    """RFC 9568 §5.2.6, §5.2.7: 4 reserved bits (zero on send, ignored on receipt), 12-bit cs."""
    adv = replace(V3, interval_cs=4095)
    msg = encode(adv, SRC4, VRRP_GROUP_V4)
    assert msg[4:6] == b"\x0f\xff"
    assert decode(msg, SRC4, VRRP_GROUP_V4, ttl=255) == adv
    reserved_set = patch(msg, SRC4, VRRP_GROUP_V4, pseudo=True, o4=0xFF)
    assert decode(reserved_set, SRC4, VRRP_GROUP_V4, ttl=255) == adv


def test_v3_unicast_pseudo_header_uses_the_real_destination() -> None:
    """RFC 9568 §5.2.8 with keepalived 2.2.7's unicast rule: the peer, not 224.0.0.18.

    keepalived 2.2.7 vrrp.c:1325 (vrrp_build_vrrp_v3) puts ip->daddr in the pseudo-header
    and vrrp.c:434 re-sums it for each unicast peer; vrrp.c:990 checks the same way.
    """
    msg = encode(V3, SRC4, PEER4)
    assert msg == with_checksum(msg, SRC4, PEER4, pseudo=True)
    assert msg != encode(V3, SRC4, VRRP_GROUP_V4)
    assert decode(msg, SRC4, PEER4, ttl=255) == V3
    assert reason_of(lambda: decode(msg, SRC4, VRRP_GROUP_V4, ttl=255)) is (
        RejectReason.BAD_CHECKSUM
    )


def test_unicast_skips_the_ttl_check() -> None:
    """RFC 9568 §7.1 TTL rule as keepalived 2.2.7 applies it: multicast only (vrrp.c:848)."""
    for adv, src, dst in ((V2, SRC4, PEER4), (V3, SRC4, PEER4), (V3_6, SRC6, PEER6)):
        msg = encode(adv, src, dst)
        assert decode(msg, src, dst, ttl=61) == adv
    multicast = encode(V3_6, SRC6, VRRP_GROUP_V6)
    assert reason_of(lambda: decode(multicast, SRC6, VRRP_GROUP_V6, ttl=1)) is (
        RejectReason.BAD_TTL
    )


def test_v2_pass_password_forms() -> None:
    """RFC 2338 §5.3.6 / §5.3.10: the password fills 8 octets, zero-padded; none is ignored."""
    eight = replace(V2, auth_data=b"12345678")
    msg = encode(eight, SRC4, VRRP_GROUP_V4)
    assert msg[-8:] == b"12345678"
    assert decode(msg, SRC4, VRRP_GROUP_V4, ttl=255) == eight
    empty = replace(V2, auth_data=b"")
    assert decode(encode(empty, SRC4, VRRP_GROUP_V4), SRC4, VRRP_GROUP_V4, ttl=255) == empty
    # Auth type 0 with junk in the authentication octets: RFC 3768 says ignore it.
    none = replace(V2, auth_type=AUTH_NONE, auth_data=b"")
    junk = with_checksum(
        encode(none, SRC4, VRRP_GROUP_V4)[:-8] + b"garbage!", SRC4, VRRP_GROUP_V4, pseudo=False
    )
    assert decode(junk, SRC4, VRRP_GROUP_V4, ttl=255) == none


def test_255_addresses() -> None:
    """RFC 9568 §5.2.5: the count is one octet, so 255 is the most an advert can carry."""
    many6 = tuple(IPv6Address(0xFE80 << 112 | i) for i in range(1, 256))
    adv = Advertisement(3, 7, 200, 4095, many6)
    msg = encode(adv, SRC6, VRRP_GROUP_V6)
    assert len(msg) == 8 + 255 * 16
    assert decode(msg, SRC6, VRRP_GROUP_V6, ttl=255) == adv
    with pytest.raises(ValueError):
        Advertisement(3, 7, 200, 100, (*many6, IPv6Address("fe80::ffff")))


def test_count_0_is_accepted_for_instances_without_addresses() -> None:
    """keepalived sends count 0 for an instance without virtual addresses; RFC 9568 §7.1
    does not drop it."""
    v3 = with_checksum(bytes([0x31, 51, 100, 0, 0, 100, 0, 0]), SRC4, VRRP_GROUP_V4, pseudo=True)
    adv = decode(v3, SRC4, VRRP_GROUP_V4, ttl=255)
    assert (adv.version, adv.vrid, adv.addresses) == (3, 51, ())
    v2 = with_checksum(
        bytes([0x21, 51, 100, 0, 0, 1, 0, 0]) + bytes(8), SRC4, VRRP_GROUP_V4, pseudo=False
    )
    assert decode(v2, SRC4, VRRP_GROUP_V4, ttl=255).addresses == ()


def test_packet_error_carries_reason_and_detail() -> None:
    """RFC 3768 §7.1: a refused packet SHOULD be logged, so the error names why."""
    err = reason_of(_dec4(b"\x21"))
    assert err is RejectReason.TOO_SHORT
    with pytest.raises(PacketError) as info:
        decode(b"\x21", SRC4, VRRP_GROUP_V4, ttl=255)
    assert str(info.value) == "too_short: 1 octets" and info.value.detail == "1 octets"
    clone = pickle.loads(pickle.dumps(info.value))
    assert (clone.reason, clone.detail) == (RejectReason.TOO_SHORT, "1 octets")


def test_decode_accepts_bytes_like() -> None:
    """RFC 3768 §5.3: same octets, whatever buffer type the socket layer hands over."""
    msg = encode(V2, SRC4, VRRP_GROUP_V4)
    assert decode(bytearray(msg), SRC4, VRRP_GROUP_V4, ttl=255) == V2
    assert decode(memoryview(msg), SRC4, VRRP_GROUP_V4, ttl=255) == V2  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# every rejection


def _v2(**at: int) -> bytes:
    return patch(encode(V2, SRC4, VRRP_GROUP_V4), SRC4, VRRP_GROUP_V4, pseudo=False, **at)


def _v3(**at: int) -> bytes:
    return patch(encode(V3, SRC4, VRRP_GROUP_V4), SRC4, VRRP_GROUP_V4, pseudo=True, **at)


def _dec4(msg: bytes, ttl: int = 255) -> Callable[[], object]:
    return lambda: decode(msg, SRC4, VRRP_GROUP_V4, ttl=ttl)


def _dec6(msg: bytes, ttl: int = 255) -> Callable[[], object]:
    return lambda: decode(msg, SRC6, VRRP_GROUP_V6, ttl=ttl)


def _v2_over_ipv6() -> bytes:
    msg = bytes([0x21, 51, 100, 1, 0, 1, 0, 0]) + VIPS6[0].packed + bytes(8)
    return with_checksum(msg, SRC6, VRRP_GROUP_V6, pseudo=False)


EXP2 = Expectation(2, 51, 100, 100, VIPS4, AUTH_PASS, b"1111")
EXP3 = Expectation(3, 51, 100, 100, VIPS4)
OTHER4 = (IPv4Address("198.51.100.1"),)


class Case(NamedTuple):
    reason: RejectReason
    rfc: str
    run: Callable[[], object]


def _checked(adv: Advertisement, exp: Expectation) -> Callable[[], object]:
    def run() -> None:
        reason = check(adv, exp)
        assert reason is not None
        raise PacketError(reason)  # so every case reads the same way

    return run


CASES = {
    "too-short": Case(RejectReason.TOO_SHORT, "RFC 3768 §7.1", _dec4(b"\x21\x33\x64")),
    "too-short-empty": Case(RejectReason.TOO_SHORT, "RFC 9568 §7.1", _dec6(b"")),
    "v2-no-auth-octets": Case(
        RejectReason.BAD_LENGTH,
        "RFC 3768 §7.1 (complete packet incl. Authentication Data)",
        _dec4(encode(V2, SRC4, VRRP_GROUP_V4)[:-8]),
    ),
    "v3-trailing-octet": Case(
        RejectReason.BAD_LENGTH, "RFC 9568 §7.1", _dec4(encode(V3, SRC4, VRRP_GROUP_V4) + b"\0")
    ),
    "v3-count-exceeds-list": Case(RejectReason.BAD_LENGTH, "RFC 9568 §7.1", _dec4(_v3(o3=4))),
    "v3-ipv6-short-address": Case(
        RejectReason.BAD_LENGTH, "RFC 9568 §7.1", _dec6(encode(V3_6, SRC6, VRRP_GROUP_V6)[:-4])
    ),
    "version-1": Case(RejectReason.BAD_VERSION, "RFC 3768 §7.1", _dec4(_v2(o0=0x11))),
    "version-4": Case(RejectReason.BAD_VERSION, "RFC 9568 §7.1", _dec4(_v3(o0=0x41))),
    "v2-over-ipv6": Case(
        RejectReason.BAD_VERSION, "RFC 3768 §1 (IPv4 only)", _dec6(_v2_over_ipv6())
    ),
    "version-not-configured": Case(
        RejectReason.BAD_VERSION, "RFC 9568 §7.1", _checked(V3, replace(EXP3, version=2))
    ),
    "type-2": Case(RejectReason.BAD_TYPE, "RFC 3768 §5.3.2", _dec4(_v2(o0=0x22))),
    "type-0": Case(RejectReason.BAD_TYPE, "RFC 9568 §5.2.2", _dec4(_v3(o0=0x30))),
    "ttl-254": Case(RejectReason.BAD_TTL, "RFC 3768 §7.1", _dec4(_v2(), ttl=254)),
    "hop-limit-64": Case(
        RejectReason.BAD_TTL, "RFC 9568 §7.1", _dec6(encode(V3_6, SRC6, VRRP_GROUP_V6), ttl=64)
    ),
    "v2-checksum": Case(RejectReason.BAD_CHECKSUM, "RFC 3768 §7.1", _dec4(_v2()[:-1] + b"\1")),
    "v3-checksum": Case(
        RejectReason.BAD_CHECKSUM,
        "RFC 9568 §7.1",
        _dec4(patch(encode(V3, SRC4, VRRP_GROUP_V4), SRC4, VRRP_GROUP_V4, pseudo=False)),
    ),
    "v3-ipv6-checksum": Case(
        RejectReason.BAD_CHECKSUM,
        "RFC 9568 §7.1",
        lambda: decode(encode(V3_6, SRC6, VRRP_GROUP_V6), PEER6, VRRP_GROUP_V6, ttl=255),
    ),
    "vrid-0": Case(RejectReason.VRID_UNKNOWN, "RFC 9568 §5.2.3", _dec4(_v3(o1=0))),
    "vrid-not-configured": Case(
        RejectReason.VRID_UNKNOWN, "RFC 3768 §7.1", _checked(V2, replace(EXP2, vrid=52))
    ),
    "auth-type-ah": Case(RejectReason.BAD_AUTH_TYPE, "RFC 3768 §5.3.6", _dec4(_v2(o4=2))),
    "auth-type-3": Case(RejectReason.BAD_AUTH_TYPE, "RFC 3768 §5.3.6", _dec4(_v2(o4=3))),
    "auth-type-mismatch": Case(
        RejectReason.AUTH_TYPE_MISMATCH,
        "RFC 3768 §7.1",
        _checked(replace(V2, auth_type=AUTH_NONE, auth_data=b""), EXP2),
    ),
    "password-mismatch": Case(
        RejectReason.AUTH_MISMATCH,
        "RFC 2338 §7.1",
        _checked(replace(V2, auth_data=b"1112"), EXP2),
    ),
    "password-prefix": Case(
        RejectReason.AUTH_MISMATCH, "RFC 2338 §7.1", _checked(replace(V2, auth_data=b"111"), EXP2)
    ),
    "v2-interval-0": Case(RejectReason.BAD_INTERVAL, "RFC 3768 §5.3.7", _dec4(_v2(o5=0))),
    "v3-interval-0": Case(
        RejectReason.BAD_INTERVAL, "RFC 9568 §7.1 (erratum 8301)", _dec4(_v3(o4=0xF0, o5=0))
    ),
    "v2-interval-mismatch": Case(
        RejectReason.INTERVAL_MISMATCH,
        "RFC 3768 §7.1",
        _checked(V2, replace(EXP2, interval_cs=200)),
    ),
    "v3-address-list-warning": Case(
        RejectReason.ADDRESS_LIST_MISMATCH,
        "RFC 9568 §7.1",
        _checked(V3, replace(EXP3, addresses=OTHER4)),
    ),
    "v2-owner-address-list-warning": Case(
        RejectReason.ADDRESS_LIST_MISMATCH,
        "RFC 3768 §7.1",
        _checked(replace(V2, priority=255), replace(EXP2, addresses=VIPS4[:2])),
    ),
    "v2-non-owner-address-list": Case(
        RejectReason.ADDRESS_LIST_MISMATCH_DROP,
        "RFC 3768 §7.1",
        _checked(V2, replace(EXP2, addresses=OTHER4)),
    ),
    "ip-short": Case(RejectReason.BAD_IP_HEADER, "RFC 791 §3.1", lambda: parse_ipv4(b"\x45" * 19)),
    "ip-version-6": Case(
        RejectReason.BAD_IP_HEADER, "RFC 791 §3.1", lambda: parse_ipv4(b"\x65" + bytes(27))
    ),
    "ip-ihl-4": Case(
        RejectReason.BAD_IP_HEADER, "RFC 791 §3.1", lambda: parse_ipv4(b"\x44" + bytes(27))
    ),
    "ip-truncated": Case(
        RejectReason.BAD_IP_HEADER,
        "RFC 791 §3.1 (Total Length)",
        lambda: parse_ipv4(
            bytes(IP(src=str(SRC4), dst="224.0.0.18", proto=112) / Raw(b"x" * 20))[:-1]
        ),
    ),
    "ip-fragment": Case(
        RejectReason.BAD_IP_HEADER,
        "RFC 791 §3.1 (Fragment Offset)",
        lambda: parse_ipv4(
            bytes(IP(src=str(SRC4), dst="224.0.0.18", proto=112, flags="MF") / Raw(b"x" * 20))
        ),
    ),
    "ip-proto-ah": Case(
        RejectReason.BAD_PROTOCOL,
        "RFC 3768 §5.2.4 (protocol 112)",
        lambda: parse_ipv4(bytes(IP(src=str(SRC4), dst="224.0.0.18", proto=51) / Raw(b"x" * 24))),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_rejection(case: Case) -> None:
    """RFC 3768 §7.1 / RFC 9568 §7.1 receive checks; each case's ``rfc`` names its section."""
    assert reason_of(case.run) is case.reason, case.rfc


def test_every_reason_is_exercised() -> None:
    """RFC 3768 §7.1 / RFC 9568 §7.1: no RejectReason goes without a test case."""
    # check_unicast_src is the instance's decision (its peers), tested in the lab
    # (tests/vrrp/test_lab_keepalived_options.py)
    by_instance = {RejectReason.UNKNOWN_UNICAST_SOURCE}
    assert {case.reason for case in CASES.values()} | by_instance == set(RejectReason)
    assert {r for r in RejectReason if r.is_warning} == {RejectReason.ADDRESS_LIST_MISMATCH}
    assert len({r.value for r in RejectReason}) == len(RejectReason)


def test_decode_check_order() -> None:
    """RFC 3768 §7.1 / RFC 9568 §7.1 list TTL, version, length, checksum, VRID in order."""
    bad_everything = b"\x15\x00"  # version 1, type 5, truncated
    assert reason_of(_dec4(bad_everything, ttl=1)) is RejectReason.BAD_TTL
    assert reason_of(_dec4(_v2(o0=0x12)[:-1])) is RejectReason.BAD_VERSION
    wrong_length_and_sum = encode(V3, SRC4, VRRP_GROUP_V4)[:-4]
    assert reason_of(_dec4(wrong_length_and_sum)) is RejectReason.BAD_LENGTH
    vrid0_bad_sum = encode(V3, SRC4, VRRP_GROUP_V4)[:1] + b"\0" + encode(V3, SRC4, PEER4)[2:]
    assert reason_of(_dec4(vrid0_bad_sum)) is RejectReason.BAD_CHECKSUM


def test_check_order_and_acceptance() -> None:
    """RFC 3768 §7.1: auth before the address list before the interval; warnings come last."""
    assert check(V2, EXP2) is None
    assert check(V3, EXP3) is None
    reordered = replace(V3, addresses=VIPS4[::-1])
    assert check(reordered, EXP3) is None  # the list is a set; order does not matter
    # Auth type beats every later check.
    assert (
        check(replace(V2, auth_type=AUTH_NONE, auth_data=b""), replace(EXP2, interval_cs=300))
        is RejectReason.AUTH_TYPE_MISMATCH
    )
    # From the owner, an address-list mismatch is only a warning, so a drop reason after
    # it in the RFC's list still wins.
    owner = replace(V2, priority=255)
    assert (
        check(owner, replace(EXP2, addresses=OTHER4, interval_cs=200))
        is RejectReason.INTERVAL_MISMATCH
    )
    # VRRPv3 learns the master's interval (RFC 9568 §6.4.2): no mismatch.
    assert check(replace(V3, interval_cs=37), EXP3) is None
    # Same addresses, different multiplicity: still a mismatch.
    dup = replace(V3, addresses=(VIPS4[0], VIPS4[0], VIPS4[1]))
    assert check(dup, replace(EXP3, addresses=(VIPS4[0], VIPS4[1], VIPS4[1]))) is (
        RejectReason.ADDRESS_LIST_MISMATCH
    )
    assert check(V3_6, replace(EXP3, addresses=VIPS6)) is None
    assert check(V3_6, EXP3) is RejectReason.ADDRESS_LIST_MISMATCH  # other family


def test_parse_ipv4_honours_ihl_and_total_length() -> None:
    """RFC 791 §3.1: IHL counts options, Total Length bounds the payload; RFC 3768 §5.2.3."""
    msg = encode(V2, SRC4, VRRP_GROUP_V4)
    plain = bytes(IP(src=str(SRC4), dst="224.0.0.18", ttl=255, tos=0xC0, proto=112) / Raw(msg))
    assert parse_ipv4(plain) == (SRC4, VRRP_GROUP_V4, 255, msg)
    with_ra = bytes(
        IP(src=str(SRC4), dst="224.0.0.18", ttl=254, proto=112, options=[IPOption_Router_Alert()])
        / Raw(msg)
    )
    assert with_ra[0] == 0x46
    assert parse_ipv4(with_ra + b"\0\0pad") == (SRC4, VRRP_GROUP_V4, 254, msg)


def test_invalid_advertisements_are_refused_on_construction() -> None:
    """RFC 3768 §5.3 / RFC 9568 §5.2 field ranges: nothing unencodable can be built."""
    bad: list[Callable[[], object]] = [
        lambda: replace(V3, version=4),
        lambda: replace(V3, vrid=0),
        lambda: replace(V3, vrid=256),
        lambda: replace(V3, priority=256),
        lambda: replace(V3, priority=-1),
        lambda: replace(V3, interval_cs=0),
        lambda: replace(V3, interval_cs=4096),
        lambda: replace(V2, interval_cs=150),
        lambda: replace(V2, interval_cs=25600),
        lambda: replace(V3, addresses=(VIPS4[0], VIPS6[0])),
        lambda: replace(V2, addresses=VIPS6),
        lambda: replace(V2, auth_data=b"123456789"),
        lambda: replace(V2, auth_data=b"11\0"),
        lambda: replace(V2, auth_type=2),
        lambda: replace(V2, auth_type=AUTH_NONE),  # with a password
        lambda: replace(V3, auth_type=AUTH_PASS, auth_data=b"x"),
        lambda: Expectation(2, 51, 100, 100, VIPS4, AUTH_PASS, b"toolongpw"),
        lambda: Expectation(3, 0, 100, 100, VIPS4),
    ]
    for make in bad:
        with pytest.raises((ValueError, TypeError)):
            make()
    with pytest.raises(ValueError):
        encode(V3, SRC6, VRRP_GROUP_V6)  # IPv4 addresses from an IPv6 source
    with pytest.raises(ValueError):
        decode(encode(V3, SRC4, VRRP_GROUP_V4), SRC4, VRRP_GROUP_V6, ttl=255)


def test_address_lists_of_the_two_families_do_not_mix() -> None:
    """Sixteen octets are four IPv4 addresses or one IPv6 address: an IPv6 advert whose
    address has the same octets as an IPv4 advert's four addresses decodes to IPv6, and the
    IPv4 advert after it still to IPv4 (found by test_fuzz_mutated_adverts: the decoder's
    cache of address lists was keyed by the octets alone)."""
    four = tuple(IPv4Address(f"192.0.2.{n}") for n in (16, 17, 18, 19))
    one = IPv6Address(b"".join(a.packed for a in four))
    v6 = decode(
        encode(replace(V3_6, addresses=(one,)), SRC6, VRRP_GROUP_V6), SRC6, VRRP_GROUP_V6, ttl=255
    )
    v4 = decode(
        encode(replace(V3, addresses=four), SRC4, VRRP_GROUP_V4), SRC4, VRRP_GROUP_V4, ttl=255
    )
    assert v6.addresses == (one,)
    assert v4.addresses == four


# ---------------------------------------------------------------------------------------
# hypothesis: round trips and fuzzing

ipv4s = st.integers(0, 2**32 - 1).map(IPv4Address)
ipv6s = st.integers(0, 2**128 - 1).map(IPv6Address)
unicast4 = ipv4s.filter(lambda a: not a.is_multicast)
unicast6 = ipv6s.filter(lambda a: not a.is_multicast)
passwords = st.binary(max_size=8).filter(lambda b: not b.endswith(b"\0"))


@st.composite
def v2_cases(draw: st.DrawFn) -> tuple[Advertisement, IPAddress, IPAddress, bool]:
    auth_type = draw(st.sampled_from([AUTH_NONE, AUTH_PASS]))
    adv = Advertisement(
        version=2,
        vrid=draw(st.integers(1, 255)),
        priority=draw(st.integers(0, 255)),
        interval_cs=100 * draw(st.integers(1, 255)),
        addresses=tuple(draw(st.lists(ipv4s, min_size=1, max_size=20))),
        auth_type=auth_type,
        auth_data=draw(passwords) if auth_type == AUTH_PASS else b"",
    )
    dst = draw(st.one_of(st.just(VRRP_GROUP_V4), unicast4))
    return adv, draw(unicast4), dst, False


@st.composite
def v3_cases(draw: st.DrawFn, family: int) -> tuple[Advertisement, IPAddress, IPAddress, bool]:
    addrs = ipv4s if family == 4 else ipv6s
    adv = Advertisement(
        version=3,
        vrid=draw(st.integers(1, 255)),
        priority=draw(st.integers(0, 255)),
        interval_cs=draw(st.integers(1, 4095)),
        addresses=tuple(draw(st.lists(addrs, min_size=1, max_size=20))),
    )
    if family == 4:
        src, dst = draw(unicast4), draw(st.one_of(st.just(VRRP_GROUP_V4), unicast4))
    else:
        src, dst = draw(unicast6), draw(st.one_of(st.just(VRRP_GROUP_V6), unicast6))
    as_v2 = family == 4 and draw(st.booleans())
    return adv, src, dst, as_v2


any_case = st.one_of(v2_cases(), v3_cases(4), v3_cases(6))


@settings(max_examples=400, deadline=None)
@given(any_case)
def test_roundtrip(case: tuple[Advertisement, IPAddress, IPAddress, bool]) -> None:
    """RFC 3768 §5.3 / RFC 9568 §5.2: decode(encode(x)) == x, checksum per the reference."""
    adv, src, dst, as_v2 = case
    msg = encode(adv, src, dst, v3_checksum_as_v2=as_v2)
    assert decode(msg, src, dst, ttl=255, v3_checksum_as_v2=as_v2) == adv
    pseudo = adv.version == 3 and not as_v2
    assert msg == with_checksum(msg, src, dst, pseudo=pseudo)


@settings(max_examples=200, deadline=None)
@given(any_case, st.integers(0, 255))
def test_template_matches_encode(
    case: tuple[Advertisement, IPAddress, IPAddress, bool], priority: int
) -> None:
    """RFC 9568 §5.2.4: only the priority (and so the checksum) changes between adverts."""
    adv, src, dst, as_v2 = case
    template = AdvertTemplate(adv, src, dst, v3_checksum_as_v2=as_v2)
    expected = encode(replace(adv, priority=priority), src, dst, v3_checksum_as_v2=as_v2)
    assert template.encode(priority) == expected


def _outcome(payload: bytes, src: IPAddress, dst: IPAddress, ttl: int, as_v2: bool) -> None:
    try:
        adv = decode(payload, src, dst, ttl=ttl, v3_checksum_as_v2=as_v2)
    except PacketError as exc:
        assert isinstance(exc.reason, RejectReason)
    else:
        # Whatever decodes must re-encode to the same octets (up to ignored fields).
        again = encode(adv, src, dst, v3_checksum_as_v2=as_v2)
        assert decode(again, src, dst, ttl=ttl, v3_checksum_as_v2=as_v2) == adv


@settings(max_examples=1000, deadline=None)
@given(
    st.binary(max_size=120),
    st.booleans(),
    st.sampled_from([255, 254, 0]),
    st.booleans(),
    st.booleans(),
)
def test_fuzz_arbitrary_bytes(
    payload: bytes, v6: bool, ttl: int, multicast: bool, as_v2: bool
) -> None:
    """RFC 3768 §7.1 / RFC 9568 §7.1: any octets give an Advertisement or a PacketError."""
    src, dst = (
        (SRC6, VRRP_GROUP_V6 if multicast else PEER6)
        if v6
        else (
            SRC4,
            VRRP_GROUP_V4 if multicast else PEER4,
        )
    )
    _outcome(payload, src, dst, ttl, as_v2)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    any_case,
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
    st.integers(0, 400),
    st.booleans(),
)
def test_fuzz_mutated_adverts(
    case: tuple[Advertisement, IPAddress, IPAddress, bool],
    edits: list[tuple[int, int]],
    cut: int,
    fix_sum: bool,
) -> None:
    """RFC 3768 §7.1 / RFC 9568 §7.1: near-valid adverts (edited, cut, re-summed) never crash."""
    adv, src, dst, as_v2 = case
    buf = bytearray(encode(adv, src, dst, v3_checksum_as_v2=as_v2))
    for pos, value in edits:
        if pos < len(buf):
            buf[pos] = value
    msg = bytes(buf[: max(cut, 8)]) if cut < len(buf) else bytes(buf)
    if fix_sum and len(msg) >= 8:
        msg = with_checksum(msg, src, dst, pseudo=(msg[0] >> 4 == 3 and not as_v2))
    _outcome(msg, src, dst, 255, as_v2)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_parse_ipv4(datagram: bytes) -> None:
    """RFC 791 §3.1: any octets give (src, dst, ttl, payload) or a PacketError."""
    try:
        src, dst, ttl, payload = parse_ipv4(datagram)
    except PacketError as exc:
        assert exc.reason in (RejectReason.BAD_IP_HEADER, RejectReason.BAD_PROTOCOL)
    else:
        assert isinstance(src, IPv4Address) and isinstance(dst, IPv4Address)
        assert 0 <= ttl <= 255 and len(payload) <= len(datagram) - 20


# ---------------------------------------------------------------------------------------
# scapy as the oracle


def _as_v4_packet(msg: bytes, src: IPAddress, dst: IPAddress) -> IP:
    return IP(bytes(IP(src=str(src), dst=str(dst), proto=112, ttl=255) / Raw(msg)))


def _as_v6_packet(msg: bytes, src: IPAddress, dst: IPAddress) -> IPv6:
    return IPv6(bytes(IPv6(src=str(src), dst=str(dst), nh=112, hlim=255) / Raw(msg)))


def _scapy_agrees(adv: Advertisement, src: IPAddress, dst: IPAddress, as_v2: bool) -> None:
    msg = encode(adv, src, dst, v3_checksum_as_v2=as_v2)
    csum = int.from_bytes(msg[6:8], "big")
    zeroed = msg[:6] + b"\0\0" + msg[8:]
    if adv.version == 2:
        pkt = _as_v4_packet(msg, src, dst)
        layer = pkt[VRRP]
        assert (layer.version, layer.type, layer.authtype, layer.adv) == (
            2,
            1,
            adv.auth_type,
            adv.interval_cs // 100,
        )
        auth = layer.auth1.to_bytes(4, "big") + layer.auth2.to_bytes(4, "big")
        assert auth == adv.auth_data.ljust(8, b"\0")
    else:
        pkt = (_as_v4_packet if isinstance(src, IPv4Address) else _as_v6_packet)(msg, src, dst)
        layer = pkt[VRRPv3]
        assert (layer.version, layer.type, layer.res, layer.adv) == (3, 1, 0, adv.interval_cs)
    assert (layer.vrid, layer.priority, layer.ipcount) == (
        adv.vrid,
        adv.priority,
        len(adv.addresses),
    )
    family = type(adv.addresses[0])
    assert tuple(family(a) for a in layer.addrlist) == adv.addresses
    assert layer.chksum == csum
    # scapy's own checksum: message only for v2 (and for v3_checksum_as_v2, which scapy
    # has no switch for), otherwise over the pseudo-header of the IP layer above.
    if adv.version == 2 or as_v2:
        assert scapy_checksum(zeroed) == csum
    else:
        del layer.chksum
        assert bytes(pkt)[-len(msg) :] == msg


@pytest.mark.parametrize(
    ("adv", "src", "dst", "as_v2"),
    [
        (V2, SRC4, VRRP_GROUP_V4, False),
        (V3, SRC4, VRRP_GROUP_V4, False),
        (V3, SRC4, PEER4, False),
        (V3, SRC4, VRRP_GROUP_V4, True),
        (V3_6, SRC6, VRRP_GROUP_V6, False),
    ],
    ids=["v2-pass", "v3-ipv4", "v3-ipv4-unicast", "v3-ipv4-as-v2", "v3-ipv6"],
)
def test_scapy_decodes_our_vectors(
    adv: Advertisement, src: IPAddress, dst: IPAddress, as_v2: bool
) -> None:
    """RFC 3768 §5.3 / RFC 9568 §5.2, §5.2.8: scapy reads our octets and our checksums."""
    _scapy_agrees(adv, src, dst, as_v2)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_case)
def test_scapy_decodes_our_bytes(case: tuple[Advertisement, IPAddress, IPAddress, bool]) -> None:
    """RFC 3768 §5.3 / RFC 9568 §5.2, §5.2.8: scapy agrees with every field and checksum."""
    _scapy_agrees(*case)


def _scapy_build(adv: Advertisement, src: IPAddress, dst: IPAddress) -> tuple[bytes, int]:
    """(VRRP payload, TTL) of an advert that scapy built and summed."""
    addrs = [str(a) for a in adv.addresses]
    if adv.version == 2:
        auth = adv.auth_data.ljust(8, b"\0")
        vrrp = VRRP(
            vrid=adv.vrid,
            priority=adv.priority,
            authtype=adv.auth_type,
            adv=adv.interval_cs // 100,
            addrlist=addrs,
            auth1=int.from_bytes(auth[:4], "big"),
            auth2=int.from_bytes(auth[4:], "big"),
        )
        datagram = bytes(IP(src=str(src), dst=str(dst), ttl=255, tos=0xC0) / vrrp)
    elif isinstance(src, IPv4Address):
        vrrp3 = VRRPv3(vrid=adv.vrid, priority=adv.priority, adv=adv.interval_cs, addrlist=addrs)
        datagram = bytes(IP(src=str(src), dst=str(dst), ttl=255, tos=0xC0) / vrrp3)
    else:
        vrrp3 = VRRPv3(vrid=adv.vrid, priority=adv.priority, adv=adv.interval_cs, addrlist=addrs)
        pkt6 = IPv6(bytes(IPv6(src=str(src), dst=str(dst), hlim=255) / vrrp3))
        assert pkt6.nh == 112
        return bytes(pkt6.payload), pkt6.hlim
    got_src, got_dst, ttl, payload = parse_ipv4(datagram)
    assert (got_src, got_dst) == (src, dst)
    return payload, ttl


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(v2_cases(), v3_cases(4), v3_cases(6)))
def test_we_decode_scapy_bytes(case: tuple[Advertisement, IPAddress, IPAddress, bool]) -> None:
    """RFC 3768 §5.3 / RFC 9568 §5.2: adverts scapy builds and sums decode to the same fields."""
    adv, src, dst, _ = case
    payload, ttl = _scapy_build(adv, src, dst)
    assert decode(payload, src, dst, ttl=ttl) == adv


def test_we_decode_scapy_known_vectors() -> None:
    """RFC 3768 §5.3 / RFC 9568 §5.2: the known-answer adverts, built by scapy, decode."""
    for adv, src, dst in ((V2, SRC4, VRRP_GROUP_V4), (V3, SRC4, PEER4), (V3_6, SRC6, PEER6)):
        payload, ttl = _scapy_build(adv, src, dst)
        assert payload == encode(adv, src, dst)
        assert decode(payload, src, dst, ttl=ttl) == adv
