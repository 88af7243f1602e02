"""VRRP advertisement codec: VRRPv2 (RFC 3768) and VRRPv3 (RFC 9568), pure code, no I/O.

Only the VRRP message is handled here; the kernel builds the IP header on send, and
:func:`parse_ipv4` strips it on receive from a raw IPv4 socket.

VRRPv2 (RFC 3768 §5.3), IPv4 only::

    0       4       8               16              24              32
    |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
    |   Auth Type   |   Adver Int   |           Checksum            |
    |                   IPv4 Address (1 .. Count)                   |
    |                 Authentication Data (8 octets)                |

``Adver Int`` is whole seconds. ``Auth Type`` 0 is none and 1 the RFC 2338 plain-text
password (what keepalived calls ``auth_type PASS``), zero-padded to 8 octets; the 8
authentication octets are present whatever the type. The checksum covers the VRRP
message only.

VRRPv3 (RFC 9568 §5.2), IPv4 or IPv6::

    0       4       8               16              24              32
    |Version| Type  | Virtual Rtr ID|   Priority    |IPvX Addr Count|
    |(rsvd) |     Max Adver Int     |           Checksum            |
    |            IPvX Address (1 .. Count), 4 or 16 octets            |

``Max Adver Int`` is 12 bits of centiseconds. The checksum covers the message plus the
IP pseudo-header (RFC 8200 §8.1 layout for IPv6; source, destination, zero, protocol 112
and VRRP length for IPv4). For IPv4 some routers (and keepalived >= 2.2.8 with
``v3_checksum_as_v2``) leave the pseudo-header out, so that form is an option.

The address family of a VRRPv3 message is not in the message: it is the family of the IP
packet that carried it, so :func:`encode` and :func:`decode` take the IP source and
destination.
"""

from __future__ import annotations

import enum
import struct

# hmac.compare_digest without hmac: importing hmac loads OpenSSL's libcrypto (3.4 MB of the
# VRRP process's memory) for a comparison the interpreter has built in.
from _operator import _compare_digest as compare_digest
from collections import Counter
from dataclasses import dataclass, fields
from ipaddress import IPv4Address, IPv6Address
from typing import Final, TypeAlias

__all__ = [
    "AUTH_NONE",
    "AUTH_PASS",
    "VRRP_GROUP_V4",
    "VRRP_GROUP_V6",
    "VRRP_PROTO",
    "VRRP_TTL",
    "Addresses",
    "AdvertTemplate",
    "Advertisement",
    "Expectation",
    "IPAddress",
    "PacketError",
    "RejectReason",
    "check",
    "decode",
    "encode",
    "parse_ipv4",
]

IPAddress: TypeAlias = IPv4Address | IPv6Address
Addresses: TypeAlias = tuple[IPv4Address, ...] | tuple[IPv6Address, ...]

VRRP_PROTO: Final = 112
VRRP_TTL: Final = 255
VRRP_GROUP_V4: Final = IPv4Address("224.0.0.18")
VRRP_GROUP_V6: Final = IPv6Address("ff02::12")

AUTH_NONE: Final = 0
AUTH_PASS: Final = 1
_AUTH_AH: Final = 2
_AUTH_LEN: Final = 8

_TYPE_ADVERTISEMENT: Final = 1
_HDR_LEN: Final = 8

# Octets 4-5 differ between versions (auth type + seconds vs. rsvd + 12-bit centiseconds),
# so one layout reads and writes them as two octets and the version decides.
_HDR: Final = struct.Struct("!BBBBBBH")


class _V4Layouts(dict[int, struct.Struct]):
    """The layout of ``n`` IPv4 addresses (0 <= n <= 255), made when a count is first met:
    all 256 made at import stayed for good, 45 kB of the VRRP process for the one or two
    counts its instances use."""

    def __missing__(self, n: int) -> struct.Struct:
        if not 0 <= n <= 255:
            raise IndexError(n)  # as the table of 256 did
        layout = self[n] = struct.Struct(f"!{n}I")
        return layout


_V4_ADDRS: Final = _V4Layouts()
_IPV4_HDR: Final = struct.Struct("!BBHHHBBHII")


class RejectReason(enum.Enum):
    """Why an advertisement was refused; ``.value`` is the counter name.

    Everything here means "discard the packet" except :attr:`ADDRESS_LIST_MISMATCH`,
    which :func:`check` returns as a warning (see :attr:`is_warning`).
    """

    TOO_SHORT = "too_short"  # fewer octets than the fixed header
    BAD_LENGTH = "bad_length"  # length does not match the address count
    BAD_VERSION = "bad_version"  # not 2 or 3, v2 over IPv6, or not the configured version
    BAD_TYPE = "bad_type"  # not ADVERTISEMENT (1)
    BAD_TTL = "bad_ttl"  # TTL / hop limit not 255 on a multicast advert
    BAD_CHECKSUM = "bad_checksum"
    VRID_UNKNOWN = "vrid_unknown"  # VRID 0 (never valid) or not the configured one
    BAD_AUTH_TYPE = "bad_auth_type"  # v2 auth type other than 0 / 1 (AH is not supported)
    AUTH_TYPE_MISMATCH = "auth_type_mismatch"
    AUTH_MISMATCH = "auth_mismatch"
    BAD_INTERVAL = "bad_interval"  # advert interval 0
    INTERVAL_MISMATCH = "interval_mismatch"  # v2 only
    ADDRESS_LIST_MISMATCH = "address_list_mismatch"  # warning: log, count, accept
    ADDRESS_LIST_MISMATCH_DROP = "address_list_mismatch_drop"  # v2 from a non-owner
    BAD_IP_HEADER = "bad_ip_header"  # parse_ipv4 only
    BAD_PROTOCOL = "bad_protocol"  # parse_ipv4: IP protocol is not 112
    UNKNOWN_UNICAST_SOURCE = "unknown_unicast_source"  # check_unicast_src: not a peer

    @property
    def is_warning(self) -> bool:
        """True when the advert is still to be accepted (after logging and counting)."""
        return self is RejectReason.ADDRESS_LIST_MISMATCH


class PacketError(Exception):
    """A received packet was refused; ``reason`` says why, ``detail`` is for the log."""

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        # Both in args so the exception pickles (e.g. across a process pool) intact.
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}" if self.detail else self.reason.value


def interval_problem(version: int, seconds: float) -> str | None:
    """What is wrong with an advertisement interval of ``seconds`` in VRRP ``version``, or
    None: v2 carries whole seconds 1..255 (RFC 3768 §5.3.7), v3 centiseconds 1..4095 (RFC
    9568 §5.2.7). The one range check: the config, the codec and the FSM all ask here."""
    if version == 2:
        if not 1 <= seconds <= 255 or seconds != int(seconds):  # range first: int(nan) raises
            return "must be whole seconds from 1 to 255 in VRRPv2"
    elif not 0.01 <= seconds <= 40.95:
        return "must be from 0.01 to 40.95 seconds in VRRPv3"
    return None


def _check_fields(
    version: int,
    vrid: int,
    interval_cs: int,
    addresses: Addresses,
    auth_type: int,
    auth_data: bytes,
) -> None:
    if version not in (2, 3):
        raise ValueError(f"version must be 2 or 3, not {version!r}")
    if not 1 <= vrid <= 255:
        raise ValueError(f"vrid must be 1..255, not {vrid!r}")
    if not isinstance(addresses, tuple):
        raise TypeError("addresses must be a tuple")
    if len(addresses) > 255:
        raise ValueError(f"an advert carries 0..255 addresses, not {len(addresses)}")
    if addresses:
        family = IPv4Address if isinstance(addresses[0], IPv4Address) else IPv6Address
        if not all(isinstance(a, family) for a in addresses):
            raise TypeError("addresses must all be IPv4Address or all IPv6Address")
        if version == 2 and family is not IPv4Address:
            raise ValueError("VRRPv2 is IPv4 only (RFC 3768)")
    problem = interval_problem(version, interval_cs / 100)
    if problem:
        raise ValueError(f"advert interval {interval_cs!r} cs: {problem}")
    if version == 2:
        if auth_type == AUTH_NONE:
            if auth_data:
                raise ValueError("auth_data must be empty without authentication")
        elif auth_type == AUTH_PASS:
            if len(auth_data) > _AUTH_LEN or auth_data.endswith(b"\0"):
                # A trailing NUL would be indistinguishable from the padding.
                raise ValueError("PASS auth_data is at most 8 octets, no trailing NUL")
        else:
            raise ValueError(f"unsupported v2 auth type {auth_type!r} (0 none, 1 PASS)")
    else:
        if auth_type != AUTH_NONE or auth_data:
            raise ValueError("VRRPv3 has no authentication fields (RFC 9568 §5.2)")


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One VRRP ADVERTISEMENT, as sent or as received; validated on construction.

    ``interval_cs`` is centiseconds for both versions (v2 carries whole seconds on the
    wire, so it must be a multiple of 100 there). ``auth_data`` is the v2 PASS password
    without its zero padding.
    """

    version: int
    vrid: int
    priority: int
    interval_cs: int
    addresses: Addresses
    auth_type: int = AUTH_NONE
    auth_data: bytes = b""

    def __post_init__(self) -> None:
        _check_fields(
            self.version,
            self.vrid,
            self.interval_cs,
            self.addresses,
            self.auth_type,
            self.auth_data,
        )
        if not 0 <= self.priority <= 255:
            raise ValueError(f"priority must be 0..255, not {self.priority!r}")


@dataclass(frozen=True, slots=True)
class Expectation(Advertisement):
    """What the receiving virtual router is configured with, for :func:`check`: the advert
    it would send itself. Its priority is not compared."""


def _csum_fold(total: int) -> int:
    """The checksum field value for a big-endian sum ``total`` of the covered octets.

    2**16 ≡ 1 (mod 0xFFFF), so an integer read big-endian from an even number of octets
    is congruent to the sum of its 16-bit words, and the ones'-complement sum of those
    words (RFC 1071) is that value mod 0xFFFF, mapped to 1..0xFFFF when non-zero. One
    ``int.from_bytes`` plus one modulo is 2.5 to 7 times faster than summing an
    ``array('H')`` or a ``struct`` unpack here.
    """
    if total == 0:
        return 0xFFFF
    return 0xFFFE - (total - 1) % 0xFFFF


def _pseudo_sum(src: IPAddress, dst: IPAddress, length: int) -> int:
    # Every field of either pseudo-header is a whole number of 16-bit words, so its
    # word sum is congruent to the plain sum of the fields read as integers.
    return int(src) + int(dst) + VRRP_PROTO + length


def _same_family(adv_v4: bool, src: IPAddress, dst: IPAddress) -> None:
    if isinstance(src, IPv4Address) is not adv_v4 or isinstance(dst, IPv4Address) is not adv_v4:
        raise ValueError("src, dst and the advertised addresses must be one address family")


def _parts(
    adv: Advertisement, src: IPAddress, dst: IPAddress, v3_checksum_as_v2: bool
) -> tuple[int, int, int, bytes, int]:
    """(byte 4, byte 5, partial sum without the priority, body, count) for ``adv``."""
    addrs = adv.addresses
    count = len(addrs)
    v4 = isinstance(addrs[0] if addrs else src, IPv4Address)
    _same_family(v4, src, dst)
    if v4:
        body = _V4_ADDRS[count].pack(*map(int, addrs))
    else:
        acc = 0
        for a in addrs:
            acc = (acc << 128) | int(a)
        body = acc.to_bytes(16 * count, "big")
    if adv.version == 2:
        body += adv.auth_data.ljust(_AUTH_LEN, b"\0")
        b4, b5 = adv.auth_type, adv.interval_cs // 100
        pseudo = 0
    else:
        b4, b5 = adv.interval_cs >> 8, adv.interval_cs & 0xFF
        pseudo = 0 if (v4 and v3_checksum_as_v2) else _pseudo_sum(src, dst, _HDR_LEN + len(body))
    vers_type = (adv.version << 4) | _TYPE_ADVERTISEMENT
    total = (
        ((vers_type << 8) | adv.vrid) + count + ((b4 << 8) | b5) + int.from_bytes(body, "big")
    ) + pseudo
    return b4, b5, total, body, count


def encode(
    adv: Advertisement, src: IPAddress, dst: IPAddress, *, v3_checksum_as_v2: bool = False
) -> bytes:
    """The VRRP message for ``adv`` sent from ``src`` to ``dst``, checksum filled in.

    ``dst`` is the real IP destination: the multicast group, or the peer for unicast.
    For VRRPv3 over IPv4 that address goes into the pseudo-header even for unicast, as
    keepalived 2.2.7 does by default (vrrp.c:1325 in ``vrrp_build_vrrp_v3``, updated per
    peer at vrrp.c:434 in ``vrrp_update_pkt``; checked likewise at vrrp.c:990). Not
    copied: 2.2.7's receive-side retry with 224.0.0.18 in the pseudo-header for peers
    running keepalived <= 1.3.6 (vrrp.c:998-1015, ``old_unicast_checksum``).
    ``v3_checksum_as_v2`` leaves the IPv4 pseudo-header out (RFC 9568 §5.2.8 as some
    vendors read it; keepalived >= 2.2.8 ``v3_checksum_as_v2``); it has no effect on
    VRRPv2 or IPv6. Raises ``ValueError`` if src/dst are not the advert's family.
    """
    b4, b5, total, body, count = _parts(adv, src, dst, v3_checksum_as_v2)
    csum = _csum_fold(total + (adv.priority << 8))
    vers_type = (adv.version << 4) | _TYPE_ADVERTISEMENT
    return _HDR.pack(vers_type, adv.vrid, adv.priority, count, b4, b5, csum) + body


class AdvertTemplate:
    """A pre-encoded advert for one sender whose priority is the only thing that moves.

    ``AdvertTemplate(adv, src, dst).encode(p)`` equals
    ``encode(replace(adv, priority=p), src, dst)`` at about a fifth of the cost; build a
    new template when anything else (addresses, source, peer) changes.
    """

    __slots__ = ("_body", "_head", "_total", "adv")

    def __init__(
        self,
        adv: Advertisement,
        src: IPAddress,
        dst: IPAddress,
        *,
        v3_checksum_as_v2: bool = False,
    ) -> None:
        self.adv = adv
        b4, b5, self._total, self._body, count = _parts(adv, src, dst, v3_checksum_as_v2)
        self._head = ((adv.version << 4) | _TYPE_ADVERTISEMENT, adv.vrid, count, b4, b5)

    def encode(self, priority: int) -> bytes:
        """The message with ``priority`` (0..255) in place."""
        if not 0 <= priority <= 255:
            raise ValueError(f"priority must be 0..255, not {priority!r}")
        vers_type, vrid, count, b4, b5 = self._head
        csum = _csum_fold(self._total + (priority << 8))
        return _HDR.pack(vers_type, vrid, priority, count, b4, b5, csum) + self._body


def _is_multicast(addr: IPAddress) -> bool:
    if isinstance(addr, IPv4Address):
        return int(addr) >> 28 == 0xE
    return int(addr) >> 120 == 0xFF


def decode(
    payload: bytes,
    src: IPAddress,
    dst: IPAddress,
    *,
    ttl: int,
    v3_checksum_as_v2: bool = False,
) -> Advertisement:
    """Parse and verify a received VRRP message (the IP payload).

    Performs the checks of RFC 3768 §7.1 / RFC 9568 §7.1 that need no configuration,
    in the RFCs' order: TTL / hop limit, version, type (§5.3.2 / §5.2.2), completeness,
    checksum, VRID (0 is never configured), then the v2 auth type
    (0 or 1) and a zero interval (RFC 9568 erratum 8301). ``src``, ``dst`` and ``ttl``
    come from the IP header or the socket's ancillary data. An address count of 0 is
    accepted: §7.1 does not drop it, and keepalived sends it for an instance without
    virtual addresses (the cloud pattern, where a notify script moves the address).

    The TTL / hop-limit check applies only when ``dst`` is multicast: keepalived 2.2.7
    skips it for unicast peers (vrrp.c:848), where a routed path lowers the TTL.

    Raises :class:`PacketError` for anything wrong with ``payload``, and nothing else
    for any bytes; ``ValueError`` only if ``src`` and ``dst`` are of different families
    (a caller bug, not packet content).
    """
    if type(payload) is not bytes:
        payload = bytes(payload)
    v4 = isinstance(src, IPv4Address)
    if isinstance(dst, IPv4Address) is not v4:
        raise ValueError("src and dst must be one address family")
    if ttl != VRRP_TTL and _is_multicast(dst):
        raise PacketError(RejectReason.BAD_TTL, f"TTL/hop limit {ttl}, expected 255")
    length = len(payload)
    if length < _HDR_LEN:
        raise PacketError(RejectReason.TOO_SHORT, f"{length} octets")
    vers_type, vrid, priority, count, b4, b5, _ = _HDR.unpack_from(payload)
    version = vers_type >> 4
    if version == 2:
        if not v4:
            raise PacketError(RejectReason.BAD_VERSION, "VRRPv2 over IPv6")
    elif version != 3:
        raise PacketError(RejectReason.BAD_VERSION, f"version {version}")
    if vers_type & 0x0F != _TYPE_ADVERTISEMENT:
        raise PacketError(RejectReason.BAD_TYPE, f"type {vers_type & 0x0F}")
    addr_len = 4 if v4 else 16
    expected = _HDR_LEN + count * addr_len + (_AUTH_LEN if version == 2 else 0)
    if length != expected:
        raise PacketError(RejectReason.BAD_LENGTH, f"{length} octets, {count} addresses")
    total = int.from_bytes(payload, "big")
    if version == 3 and not (v4 and v3_checksum_as_v2):
        total += _pseudo_sum(src, dst, length)
    # Valid when the ones'-complement sum over everything, checksum included, is 0xFFFF.
    if total % 0xFFFF:
        raise PacketError(RejectReason.BAD_CHECKSUM, f"from {src}")
    if vrid == 0:
        raise PacketError(RejectReason.VRID_UNKNOWN, "VRID 0")
    if version == 2:
        if b4 == AUTH_NONE:
            auth_data = b""  # RFC 3768 §5.3.10: ignored on reception
        elif b4 == AUTH_PASS:
            auth_data = payload[-_AUTH_LEN:].rstrip(b"\0")
        else:
            kind = "IPsec AH" if b4 == _AUTH_AH else str(b4)
            raise PacketError(RejectReason.BAD_AUTH_TYPE, f"auth type {kind}")
        interval_cs = b5 * 100
        auth_type = b4
    else:
        interval_cs = ((b4 & 0x0F) << 8) | b5  # the top 4 bits are reserved, ignored
        auth_type, auth_data = AUTH_NONE, b""
    if interval_cs == 0:
        raise PacketError(RejectReason.BAD_INTERVAL, "advert interval 0")
    raw = payload[_HDR_LEN : _HDR_LEN + count * addr_len]
    # One cache per family: 16 octets are four IPv4 addresses or one IPv6 address.
    cache = _ADDRESS_LISTS4 if v4 else _ADDRESS_LISTS6
    addresses = cache.get(raw)
    if addresses is None:
        if v4:
            addresses = tuple(map(IPv4Address, _V4_ADDRS[count].unpack_from(raw)))
        else:
            addresses = tuple([IPv6Address(raw[i : i + 16]) for i in range(0, len(raw), 16)])
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[raw] = addresses
    # Every field was checked above: build it without __post_init__'s second check.
    adv = object.__new__(Advertisement)
    for name, value in zip(
        _ADVERT_FIELDS,
        (version, vrid, priority, interval_cs, addresses, auth_type, auth_data),
        strict=True,
    ):
        _set(adv, name, value)
    return adv


# A receiver sees the same few address lists and sources over and over: decoding reuses
# the address objects (bounded; cleared when full) instead of building them per advert.
_CACHE_SIZE: Final = 4096
_ADDRESS_LISTS4: dict[bytes, Addresses] = {}
_ADDRESS_LISTS6: dict[bytes, Addresses] = {}
_SOURCES4: dict[int, IPv4Address] = {}
_ADVERT_FIELDS: Final = tuple(f.name for f in fields(Advertisement))
_set = object.__setattr__


def _v4(value: int) -> IPv4Address:
    addr = _SOURCES4.get(value)
    if addr is None:
        if len(_SOURCES4) >= _CACHE_SIZE:
            _SOURCES4.clear()
        addr = _SOURCES4[value] = IPv4Address(value)
    return addr


def _pad_auth(data: bytes) -> bytes:
    return data.ljust(_AUTH_LEN, b"\0")


def check(adv: Advertisement, exp: Expectation) -> RejectReason | None:
    """The receive checks that need configuration, in RFC 3768 §7.1 / RFC 9568 §7.1 order.

    Returns ``None`` to accept, or the first failing reason:

    - ``BAD_VERSION``: not the configured version.
    - ``VRID_UNKNOWN``: not the configured VRID. The caller's demultiplexer normally
      decides this (no instance for the VRID on that interface → count and drop); this
      only guards against handing an advert to the wrong instance.
    - v2 only: ``AUTH_TYPE_MISMATCH``, then ``AUTH_MISMATCH`` (PASS password compared
      in constant time on the zero-padded 8 octets, as keepalived does).
    - v2 only: ``ADDRESS_LIST_MISMATCH_DROP`` when the address list differs and the
      sender is not the address owner (priority != 255): RFC 3768 §7.1 says the receiver
      MUST drop it then.
    - v2 only: ``INTERVAL_MISMATCH``. VRRPv3 learns the master's interval instead
      (RFC 9568 §6.4.2), so a v3 mismatch is not reported here.
    - ``ADDRESS_LIST_MISMATCH`` is a **warning**, returned only when nothing above
      failed: the count or the set of addresses differs from the configured ones (order
      does not matter). The caller logs it, counts it and still accepts the advert
      (RFC 9568 §7.1; RFC 3768 §7.1 for the address owner). ``reason.is_warning`` is
      true for it alone.

    Also the caller's: "the local router is not the address owner" (RFC 3768 §7.1; a
    SHOULD-log in RFC 9568 erratum 8298), and unicast peer / source filtering.
    """
    if adv.version != exp.version:
        return RejectReason.BAD_VERSION
    if adv.vrid != exp.vrid:
        return RejectReason.VRID_UNKNOWN
    v2 = adv.version == 2
    if v2:
        if adv.auth_type != exp.auth_type:
            return RejectReason.AUTH_TYPE_MISMATCH
        if exp.auth_type == AUTH_PASS and not compare_digest(
            _pad_auth(adv.auth_data), _pad_auth(exp.auth_data)
        ):
            return RejectReason.AUTH_MISMATCH
    addresses_match = adv.addresses == exp.addresses or (
        len(adv.addresses) == len(exp.addresses)
        and Counter(adv.addresses) == Counter(exp.addresses)
    )
    if v2:
        if not addresses_match and adv.priority != 255:
            return RejectReason.ADDRESS_LIST_MISMATCH_DROP
        if adv.interval_cs != exp.interval_cs:
            return RejectReason.INTERVAL_MISMATCH
    if not addresses_match:
        return RejectReason.ADDRESS_LIST_MISMATCH
    return None


def parse_ipv4(datagram: bytes) -> tuple[IPv4Address, IPv4Address, int, bytes]:
    """(source, destination, TTL, VRRP payload) of an IPv4 datagram from a raw socket.

    Honours IHL (options) and Total Length (trailing octets beyond it are dropped).
    The header checksum is not verified: Linux drops bad ones in ``ip_rcv`` before any
    raw socket sees the packet, and reassembles fragments, so a fragment here means a
    malformed header. Raises :class:`PacketError` (``BAD_IP_HEADER``, or
    ``BAD_PROTOCOL`` for anything but protocol 112, e.g. IPsec AH).
    """
    if len(datagram) < 20:
        raise PacketError(RejectReason.BAD_IP_HEADER, f"{len(datagram)} octets")
    ver_ihl, _, total_len, _, frag, ttl, proto, _, src, dst = _IPV4_HDR.unpack_from(datagram)
    ihl = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or ihl < 20:
        raise PacketError(RejectReason.BAD_IP_HEADER, f"version/IHL 0x{ver_ihl:02x}")
    if not ihl <= total_len <= len(datagram):
        raise PacketError(
            RejectReason.BAD_IP_HEADER,
            f"total length {total_len}, IHL {ihl}, received {len(datagram)}",
        )
    if frag & 0x3FFF:
        raise PacketError(RejectReason.BAD_IP_HEADER, "fragment")
    if proto != VRRP_PROTO:
        raise PacketError(RejectReason.BAD_PROTOCOL, f"IP protocol {proto}")
    return _v4(src), _v4(dst), ttl, bytes(datagram[ihl:total_len])
