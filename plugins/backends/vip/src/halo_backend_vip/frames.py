"""Announcement frames, built once with ``struct`` and sent as they are.

A new master must make its neighbours forget the old master's MAC at once, so each frame
is a complete Ethernet frame prebuilt per (interface MAC, address) and handed to an
AF_PACKET socket unchanged: no per-packet encoding on the failover path.

* Gratuitous ARP, exactly as keepalived sends it: Ethernet broadcast from the interface's
  own MAC, an ARP *request* "who-has VIP tell VIP" (sender and target protocol address both
  the VIP, target hardware address ff:ff:ff:ff:ff:ff), zero-padded to the 60-byte minimum.
* Unsolicited neighbour advertisement (RFC 4861 §7.2.6): from the VIP to all-nodes
  ff02::1 (Ethernet 33:33:00:00:00:01), hop limit 255 (receivers drop anything else),
  ICMPv6 type 136 with Override set and Solicited / Router clear, the VIP as target and a
  target link-layer address option carrying the MAC; checksum over the IPv6 pseudo-header.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

__all__ = [
    "ETH_P_ARP",
    "ETH_P_IPV6",
    "ETH_ZLEN",
    "NA_FLAG_OVERRIDE",
    "NA_FLAG_ROUTER",
    "NA_FLAG_SOLICITED",
    "garp_frame",
    "icmpv6_checksum",
    "mac_bytes",
    "unsolicited_na_frame",
]

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_ZLEN = 60  # minimum Ethernet frame without FCS; shorter frames are padded
BROADCAST = b"\xff" * 6
ALL_NODES = IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"  # 33:33 + low 32 bits of ff02::1 (RFC 2464)
IPPROTO_ICMPV6 = 58
ND_NEIGHBOR_ADVERT = 136
ND_OPT_TARGET_LL_ADDR = 2
NA_FLAG_ROUTER = 0x80000000
NA_FLAG_SOLICITED = 0x40000000
NA_FLAG_OVERRIDE = 0x20000000

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_NA = struct.Struct("!BBHI16sBB6s")  # ICMPv6 header, flags, target, one 8-byte option


def mac_bytes(mac: str | bytes) -> bytes:
    """``"02:48:41:00:00:01"`` → 6 bytes (bytes are checked and passed through)."""
    raw = mac if isinstance(mac, bytes) else bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"not an Ethernet address: {mac!r}")
    return raw


def garp_frame(mac: str | bytes, ip: IPv4Address) -> bytes:
    """The gratuitous ARP request announcing that ``ip`` is at ``mac``."""
    hw = mac_bytes(mac)
    addr = ip.packed
    frame = _ETH.pack(BROADCAST, hw, ETH_P_ARP) + _ARP.pack(
        1,  # hardware type: Ethernet
        ETH_P_IP,
        6,
        4,
        1,  # op: request (what keepalived sends, and what every stack accepts)
        hw,
        addr,
        BROADCAST,
        addr,
    )
    return frame.ljust(ETH_ZLEN, b"\0")


def icmpv6_checksum(src: IPv6Address, dst: IPv6Address, message: bytes) -> int:
    """The Internet checksum of an ICMPv6 message and its pseudo-header (RFC 8200 §8.1)."""
    data = src.packed + dst.packed + struct.pack("!I3xB", len(message), IPPROTO_ICMPV6) + message
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def unsolicited_na_frame(
    mac: str | bytes, ip: IPv6Address, *, router: bool = False, hop_limit: int = 255
) -> bytes:
    """The unsolicited neighbour advertisement announcing that ``ip`` is at ``mac``
    (Override set; Router only when asked, e.g. for a forwarding host)."""
    hw = mac_bytes(mac)
    flags = NA_FLAG_OVERRIDE | (NA_FLAG_ROUTER if router else 0)
    unsummed = _NA.pack(ND_NEIGHBOR_ADVERT, 0, 0, flags, ip.packed, ND_OPT_TARGET_LL_ADDR, 1, hw)
    csum = icmpv6_checksum(ip, ALL_NODES, unsummed)
    icmp = _NA.pack(ND_NEIGHBOR_ADVERT, 0, csum, flags, ip.packed, ND_OPT_TARGET_LL_ADDR, 1, hw)
    ip6 = _IP6.pack(6 << 28, len(icmp), IPPROTO_ICMPV6, hop_limit, ip.packed, ALL_NODES.packed)
    return _ETH.pack(ALL_NODES_MAC, hw, ETH_P_IPV6) + ip6 + icmp
