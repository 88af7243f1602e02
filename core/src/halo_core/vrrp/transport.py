"""VRRP on the wire: raw IP protocol 112 sockets, one per (interface, address family).

Every instance on an interface shares its socket; received adverts are demultiplexed by
VRID. Outgoing packets get what RFC 5798 §5.1 requires and keepalived does: TTL / hop limit
255, TOS / traffic class 0xc0 (network control), destination 224.0.0.18 or ff02::12 (or the
unicast peers), source the configured address or the interface's primary IPv4 / link-local
IPv6 address, set per packet with IP_PKTINFO / IPV6_PKTINFO so instances with different
sources can share the socket. Multicast loopback is off, so we never hear ourselves.

Sockets are non-blocking and read from the event loop's reader callback; nothing here waits.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

from halo_core.scheduler import grid_after
from halo_core.schema import IPAddress
from halo_core.vrrp import packet, repeatfilter
from halo_core.vrrp.rawsock import (
    ANCILLARY,
    GROUP4_PACKED,
    GROUP6_PACKED,
    IP_PKTINFO,
    IPV6_HOPLIMIT,
    IPV6_PKTINFO,
    SO_TIMESTAMPNS,
    TIMESPEC,
    VRRP_PROTO,
    group_request,
    join_group,
    set_receive_options,
)

log = logging.getLogger("halo.vrrp")

GROUP4 = ipaddress.IPv4Address(GROUP4_PACKED)
GROUP6 = ipaddress.IPv6Address(GROUP6_PACKED)

# Not all of these are exported by Python's socket module (the receiving side's are in
# halo_core.vrrp.rawsock, shared with the early sockets of halo_core.vrrp.prelisten).
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
SOL_SOCKET = socket.SOL_SOCKET
IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)


POLL_EVERY = 0.002
"""Seconds: while adverts arrive closer together than the polling period (a backup of many
instances hears its masters' adverts in clumps), the socket is read once more a polling
period after a reader wake-up instead of at every arrival (``InterfaceSocket._on_readable``):
the rest of the clump in one read, each advert still counted from its kernel receive time
(on the millisecond grid, shared with other timers: ``halo_core.scheduler.grid_after``).
A backup's timer drains the socket before it expires, so nothing is decided on a stale
view. The shortest polling period; see ``POLL_AT_MOST``."""

POLL_AT_MOST = 0.03
"""Seconds: the longest polling period. Between POLL_EVERY and this, a socket polls every
half of the smallest Skew_Time of its instances (``Receiver.coalescing_limit``): a master's
priority-0 advert, read that much later, still leaves its backup the rest of the Skew_Time
to take over on time (the timer runs from the kernel's receive time). It was 10 ms, when
a socket polled on while adverts kept coming: a real-time backup of 100 instances at 0.1 s
(1,000 adverts/s, Skew_Time 65 ms) woke about 270 times a second polling every 2 ms and 70
every 10 ms. Now one poll gathers what a reader wake-up began, and a period that spans a
master's clumps (a halo master's 100 adverts came in two, 14 ms apart) takes the socket
from five wake-ups an advert interval to two (bench/cpu/README.md); 30 ms is about half
the Skew_Time at 0.1 s and a priority of 90, as the bench runs it."""

DECODED_CACHE = 1024
"""Distinct adverts remembered per socket (cleared when full): a few per VRID heard."""


class Receiver(Protocol):
    """The instance that owns one VRID on an interface."""

    v3_checksum_as_v2: bool

    def on_advert(
        self, adv: packet.Advertisement, src: IPAddress, dst: IPAddress, now: float
    ) -> bool:
        """Handle an advert received at ``now``. True: it was accepted, and its repeats
        would change nothing but when it was last heard (the socket's kernel filter may
        drop them and note when they came: :mod:`halo_core.vrrp.repeatfilter`)."""
        ...

    def coalescing_limit(self) -> float:
        """Seconds an advert for this instance may wait in the socket unread; the socket
        is told (``retune``) when it changes."""
        ...


@dataclass(frozen=True)
class Interface:
    """What the VRRP engine needs to know about one interface."""

    name: str
    index: int
    ipv4: ipaddress.IPv4Address | None
    link_local: ipaddress.IPv6Address | None
    mac: str | None


def interface_info(name: str) -> Interface:
    """Look an interface up. Raises OSError if it does not exist."""
    index = socket.if_nametoindex(name)
    return Interface(name, index, primary_ipv4(name), link_local_ipv6(name), _mac(name))


def primary_ipv4(name: str) -> ipaddress.IPv4Address | None:
    """The interface's primary IPv4 address (the first one, as SIOCGIFADDR reports it)."""
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(
                s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15])
            )  # SIOCGIFADDR
        except OSError:
            return None
    return ipaddress.IPv4Address(res[20:24])


def link_local_ipv6(name: str) -> ipaddress.IPv6Address | None:
    try:
        with open("/proc/net/if_inet6") as fh:
            for line in fh:
                hexaddr, _, _, scope, _, ifname = line.split()
                if ifname == name and int(scope, 16) == 0x20:
                    return ipaddress.IPv6Address(bytes.fromhex(hexaddr))
    except OSError:
        return None
    return None


def _mac(name: str) -> str | None:
    try:
        with open(f"/sys/class/net/{name}/address") as fh:
            return fh.read().strip()
    except OSError:
        return None


class InterfaceSocket:
    """The shared protocol-112 socket of one interface and address family."""

    JOINS = True  # join the VRRP group (a send-only socket must not: see vrrp.vmac)
    opened_at = 0.0
    """Wall clock: when this socket began to hear its interface."""
    repeats: repeatfilter.RepeatFilter | None = None
    """The kernel filter of a backup's master's repeats (sockets that read; None: every
    advert is read): :mod:`halo_core.vrrp.repeatfilter`."""
    heard_before = 0.0
    """Wall clock: the packets received before this were replayed from the early sockets
    (:mod:`halo_core.vrrp.prelisten`) when the engine started; this socket skips its copies."""

    def __init__(
        self, iface: Interface, family: int, *, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.iface = iface
        self.family = family
        self.loop = loop or asyncio.get_running_loop()
        self.receivers: dict[int, Receiver] = {}
        self.counters: Counter[str] = Counter()  # per-interface: drops before we know the instance
        self.received = 0  # packets read
        self._routes: dict[tuple[IPAddress, IPAddress], tuple[list[Any], tuple[Any, ...]]] = {}
        # advert bytes from the IP source address on -> (v3_checksum_as_v2, advert, source,
        # destination, IP header bytes 0-3 and 6-9): see take_all
        self._decoded: dict[
            bytes, tuple[bool, packet.Advertisement, IPAddress, IPAddress, bytes, bytes]
        ] = {}
        self._header_parts: dict[bytes, bytes] = {}
        self.sock = self._open()
        # a backup's master's repeats stay in the kernel (None: all are read)
        self.repeats = repeatfilter.attach(self.sock, family) if self.JOINS else None
        self.loop.add_reader(self.sock.fileno(), self._on_readable)
        self.closed = False
        self._last_read = float("-inf")  # loop time of the last wake-up that read adverts
        self._clumps = False  # the last poll read a clump's rest: gather from its first advert
        self._poll: asyncio.TimerHandle | None = None  # polling instead of the reader
        self._poll_every: float | None = None  # the polling period; None: to compute
        self._latest = float("-inf")  # loop time: when the latest advert read was received

    # ------------------------------------------------------------------ setup

    def _open(self) -> socket.socket:
        s = socket.socket(self.family, socket.SOCK_RAW, VRRP_PROTO)
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.iface.name.encode())
            if self.family == socket.AF_INET:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xC0)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
                mreqn = group_request(self.family, self.iface.index)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            else:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_TCLASS, 0xC0)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.iface.index)
            set_receive_options(s, self.family)
            if self.JOINS:
                join_group(s, self.family, self.iface.index)
        except OSError:
            s.close()
            raise
        # From here on this socket hears every advert the interface receives: what the
        # early sockets heard before this is theirs to hand over (see heard_before).
        self.opened_at = time.time()
        return s

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._poll is not None:
            self._poll.cancel()
        else:
            self.loop.remove_reader(self.sock.fileno())
        try:  # leave the group explicitly: the switch's IGMP/MLD snooping learns it at once
            request = group_request(self.family, self.iface.index)
            if self.family == socket.AF_INET:
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, request)
            else:
                self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, request)
        except OSError:
            pass
        self.sock.close()
        if self.repeats is not None:
            self.repeats.close()

    # ------------------------------------------------------------------ sending

    def _route(self, src: IPAddress, dst: IPAddress) -> tuple[list[Any], tuple[Any, ...]]:
        """The ancillary data and address of a message from ``src`` to ``dst``, built once."""
        route: tuple[list[Any], tuple[Any, ...]]
        if self.family == socket.AF_INET:
            info = struct.pack("i4s4s", self.iface.index, src.packed, b"\0" * 4)
            route = ([(socket.IPPROTO_IP, IP_PKTINFO, info)], (str(dst), 0))
        else:
            info = struct.pack("16sI", src.packed, self.iface.index)
            anc = [(socket.IPPROTO_IPV6, IPV6_PKTINFO, info)]
            route = (anc, (str(dst), 0, 0, self.iface.index))
        self._routes[(src, dst)] = route
        return route

    def send(self, payload: bytes, src: IPAddress, dst: IPAddress, ttl: int = 0) -> bool:
        """Send one VRRP message (``ttl``: this packet's TTL / hop limit, 0 for the
        socket's 255). Returns False (and counts) if the kernel refused it."""
        anc, address = self._routes.get((src, dst)) or self._route(src, dst)
        if ttl:
            if self.family == socket.AF_INET:
                hops = (socket.IPPROTO_IP, socket.IP_TTL, struct.pack("i", ttl))
            else:
                hops = (socket.IPPROTO_IPV6, IPV6_HOPLIMIT, struct.pack("i", ttl))
            anc = [*anc, hops]
        try:
            self.sock.sendmsg([payload], anc, 0, address)
        except OSError as exc:
            self.counters["send_errors"] += 1
            if self.counters["send_errors"] <= 3 or exc.errno != errno.ENETDOWN:
                log.warning("%s: cannot send VRRP to %s: %s", self.iface.name, dst, exc.strerror)
            return False
        return True

    # ------------------------------------------------------------------ receiving

    def retune(self) -> None:
        """An instance's coalescing limit may have changed (its priority, its master's
        interval) or instances came or went: compute the polling period again."""
        self._poll_every = None

    def _polling_period(self) -> float:
        every = self._poll_every
        if every is None:
            limit = min((r.coalescing_limit() for r in self.receivers.values()), default=0.0)
            every = self._poll_every = min(POLL_AT_MOST, max(POLL_EVERY, limit / 2))
        return every

    def _on_readable(self) -> None:
        """The reader: read what is queued. If traffic is dense (this wake-up read more than
        one advert, the previous read was less than a polling period ago, or the last poll
        read the rest of a clump), gather: leave the reader and read once more a polling
        period from now, so that the rest of a master's clump of adverts costs one wake-up,
        not one each (see POLL_EVERY). The last: a halo master's instances advertise
        together (fsm: the Adver_Timer's grid), and a real-time backup woken by a clump's
        first advert often reads it alone; it then woke again for the second."""
        before = self.received
        if self._readable():
            return  # more queued: the reader fires again at once
        now = self.loop.time()
        every = self._polling_period()
        if (
            self.received - before > 1 or now - self._last_read < every or self._clumps
        ) and not self.closed:
            self.loop.remove_reader(self.sock.fileno())
            self._poll = self.loop.call_at(grid_after(now + every), self._polled)
        self._last_read = now

    def _polled(self) -> None:
        """Polling: read what arrived. Back to the reader unless adverts were still arriving
        in the second half of the period (traffic steadier than clumps: poll again)."""
        self._poll = None
        if self.closed:
            return
        before = self.received
        self.drain()
        now = self.loop.time()
        every = self._polling_period()
        self._clumps = self.received - before > 1
        if self.received != before and self._latest > now - every / 2:
            self._poll = self.loop.call_at(grid_after(now + every), self._polled)
        else:
            self.loop.add_reader(self.sock.fileno(), self._on_readable)
        self._last_read = now

    def drain(self) -> None:
        """Handle everything queued now. A backup calls this before its Master_Down_Timer
        fires: the master's advert may be waiting behind a burst of others."""
        while not self.closed and self._readable():
            pass

    def _readable(self, batch: int = 64) -> bool:
        """Handle up to ``batch`` queued packets (bounded so one busy interface cannot
        starve the loop); True if there may be more."""
        now = self.loop.time()
        wall = time.time() - now  # the receive times are the wall clock's
        recvmsg = self.sock.recvmsg
        packets: list[tuple[bytes, list[tuple[int, int, bytes]], int, Any]] = []
        append = packets.append
        more = True
        for _ in range(batch):
            try:
                append(recvmsg(2048, ANCILLARY))
            except BlockingIOError:
                more = False
                break
            except OSError as exc:
                self.counters["receive_errors"] += 1
                log.warning("%s: receive error: %s", self.iface.name, exc.strerror)
                more = False
                break
        if packets:
            self.take_all(packets, now, wall)
        return more

    def take(
        self, data: bytes, anc: list[tuple[int, int, bytes]], addr: Any, now: float, wall: float
    ) -> None:
        """Handle one packet: at start, one the early sockets queued for this interface
        before this socket existed (the engine replays those through here: the same
        decoding, checks and counters as the packets this socket reads)."""
        self.take_all([(data, anc, 0, addr)], now, wall)

    def take_all(
        self,
        packets: list[tuple[bytes, list[tuple[int, int, bytes]], int, Any]],
        now: float,
        wall: float,
    ) -> None:
        """Handle packets (``recvmsg``'s tuples) read at loop time ``now`` (``wall``: the
        wall clock minus the loop's, to place the kernel's receive time).

        The IPv4 loop is written out in one function: a backup of 100 instances at 0.1 s
        reads 1,000 adverts a second, nearly all a master's repeats, and a call per step
        was a third of the Python work per advert (bench/cpu/README.md)."""
        if self.family != socket.AF_INET:
            for data, anc, _, addr in packets:
                at = self._receive_time(anc, now, wall)
                if at is not None:
                    self.received += 1
                    self._latest = at
                    self._handle6(data, anc, addr, at)
            return
        decoded, receivers, unpack = self._decoded, self.receivers, TIMESPEC.unpack_from
        repeats = self.repeats
        heard_before, taken, latest = self.heard_before, 0, now
        try:
            for data, anc, _, _ in packets:
                at = now
                if anc:
                    # An IPv4 socket asks for one item, the kernel's receive time
                    # (rawsock.set_receive_options).
                    level, kind, value = anc[0]
                    if kind == SO_TIMESTAMPNS and level == SOL_SOCKET:
                        sec, nsec = unpack(value)
                        stamp = sec + nsec * 1e-9
                        if stamp < heard_before:
                            continue  # the early sockets heard it too, and it was replayed
                        at = stamp - wall
                        if at > now:  # the two clocks read apart: never later than the read
                            at = now
                taken += 1
                latest = at
                # A master sends the same bytes every time but for the IP ID and header
                # checksum (bytes 4-5 and 10-11): an advert decoded before is looked up by
                # the rest (addresses and VRRP message; the header's other bytes compared).
                seen = decoded.get(data[12:])
                if seen is not None and data.startswith(seen[4]) and data.startswith(seen[5], 6):
                    # Only IPv4 headers without options are remembered: byte 21 is the VRID.
                    receiver = receivers.get(data[21])
                    if receiver is not None and seen[0] is receiver.v3_checksum_as_v2:
                        accepted = receiver.on_advert(seen[1], seen[2], seen[3], at)
                        if accepted and repeats is not None:
                            repeats.arm(data)
                        continue
                    if receiver is None and not seen[0]:
                        self._dispatch(seen[1], seen[2], seen[3], at)  # counted: VRID unknown
                        continue
                    # else decoded for the other checksum style (the instance changed): again
                if self._decode4(data, at) and repeats is not None:
                    repeats.arm(data)
        finally:
            if taken:
                self.received += taken
                self._latest = latest

    def _receive_time(
        self, anc: list[tuple[int, int, bytes]], now: float, wall: float
    ) -> float | None:
        """A packet's kernel receive time in loop time (``now`` without one), or None for
        a packet the early sockets heard too (replayed from there)."""
        for level, kind, value in anc:
            if kind == SO_TIMESTAMPNS and level == SOL_SOCKET and len(value) >= TIMESPEC.size:
                sec, nsec = TIMESPEC.unpack_from(value)
                stamp: float = sec + nsec * 1e-9
                if stamp < self.heard_before:
                    return None
                return min(stamp - wall, now)
        return now

    def _decode4(self, datagram: bytes, now: float) -> bool:
        """An IPv4 packet not seen before: decode it, remember it, hand it on (True: its
        instance accepted it, see ``Receiver.on_advert``)."""
        try:
            src, dst, ttl, payload = packet.parse_ipv4(datagram)
            csum_v2 = self._csum_v2(payload)
            adv = packet.decode(payload, src, dst, ttl=ttl, v3_checksum_as_v2=csum_v2)
        except packet.PacketError as exc:
            self._drop(exc, None)
            return False
        if len(self._decoded) >= DECODED_CACHE:
            self._decoded.clear()
            self._header_parts.clear()
        if datagram[0] == 0x45:  # no IP options, so byte 21 is the VRID
            # The header bytes compared are the same for most adverts heard (one object
            # each, warm in the cache for all of them rather than one cold per advert).
            parts = self._header_parts
            head = parts.setdefault(datagram[:4], datagram[:4])
            mid = parts.setdefault(datagram[6:10], datagram[6:10])
            self._decoded[datagram[12:]] = (csum_v2, adv, src, dst, head, mid)
        return self._dispatch(adv, src, dst, now)

    def _handle6(
        self, payload: bytes, anc: list[tuple[int, int, bytes]], addr: tuple[str, ...], now: float
    ) -> None:
        try:
            hop_limit, dst = self._ancillary6(anc)
            src = ipaddress.IPv6Address(addr[0].split("%")[0])
            adv = packet.decode(payload, src, dst, ttl=hop_limit)
        except packet.PacketError as exc:
            self._drop(exc, None)
            return
        if self._dispatch(adv, src, dst, now) and self.repeats is not None:
            self.repeats.arm6(payload, src.packed, dst.packed, hop_limit)

    def _ancillary6(self, anc: list[tuple[int, int, bytes]]) -> tuple[int, ipaddress.IPv6Address]:
        """(hop limit, destination) from the IPv6 ancillary data: -1 and the group when
        absent (a multicast advert without a hop limit is then refused). Malformed data, or
        a packet the kernel says arrived on another interface, is a bad header."""
        hop_limit = -1
        dst: ipaddress.IPv6Address = GROUP6
        for level, kind, value in anc:
            if level != socket.IPPROTO_IPV6:
                continue
            if kind == IPV6_HOPLIMIT:
                if len(value) < 4:
                    raise packet.PacketError(packet.RejectReason.BAD_IP_HEADER, "hop limit")
                hop_limit = struct.unpack("i", value[:4])[0]
            elif kind == IPV6_PKTINFO:
                if len(value) < 20:
                    raise packet.PacketError(packet.RejectReason.BAD_IP_HEADER, "pktinfo")
                dst = ipaddress.IPv6Address(value[:16])
                index = struct.unpack("I", value[16:20])[0]
                if index != self.iface.index:
                    raise packet.PacketError(
                        packet.RejectReason.BAD_IP_HEADER, f"received on interface {index}"
                    )
        return hop_limit, dst

    def _csum_v2(self, payload: bytes) -> bool:
        # The checksum style of v3 over IPv4 is a per-instance option: look up the instance
        # by VRID (byte 1) before decoding.
        return len(payload) >= 2 and self._v2_style(payload[1])

    def _v2_style(self, vrid: int) -> bool:
        receiver = self.receivers.get(vrid)
        return receiver is not None and receiver.v3_checksum_as_v2

    def _drop(self, exc: packet.PacketError, vrid: int | None) -> None:
        self.counters[exc.reason.value] += 1
        log.debug("%s: dropped VRRP packet: %s %s", self.iface.name, exc.reason.value, exc.detail)

    def _dispatch(
        self, adv: packet.Advertisement, src: IPAddress, dst: IPAddress, now: float
    ) -> bool:
        receiver = self.receivers.get(adv.vrid)
        if receiver is None:
            # RFC 9568 §7.1: a VRID we do not run is not our business (counted, not logged).
            self.counters[packet.RejectReason.VRID_UNKNOWN.value] += 1
            return False
        return receiver.on_advert(adv, src, dst, now)


class Transport:
    """All interface sockets of one daemon, opened on demand and shared by instances."""

    def __init__(self) -> None:
        self.sockets: dict[tuple[str, int], InterfaceSocket] = {}

    def socket_for(self, iface: Interface, family: int) -> InterfaceSocket:
        key = (iface.name, family)
        sock = self.sockets.get(key)
        if sock is None or sock.closed:
            sock = self.sockets[key] = InterfaceSocket(iface, family)
        return sock

    def release(self, iface_name: str, family: int, vrid: int) -> None:
        sock = self.sockets.get((iface_name, family))
        if sock is None:
            return
        sock.receivers.pop(vrid, None)
        if sock.repeats is not None:
            sock.repeats.disarm(vrid)
        sock.retune()
        if not sock.receivers:
            sock.close()
            del self.sockets[(iface_name, family)]

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()
