"""Answering claims: while MASTER, another MAC announcing one of our addresses is answered at
once with our own announcement, so the last word on the segment is always ours.

Why: after a split brain heals, the old backup may hear the master's advert first and step
down without sending one. The master then never hears a lower-priority advert, never
announces again, and every host keeps the backup's MAC for the VIPs until its ARP entry
expires (keepalived has the same race). VRRP cannot tell the master what it missed, but the
backup's gratuitous ARPs / unsolicited neighbour advertisements reach it: a partition of
VRRP (a filter on protocol 112, a VLAN or multicast problem) passes them. So while an
instance is MASTER this module listens on its interfaces (one ``AF_PACKET`` socket each,
with a BPF filter passing only ARP, VRRP adverts and ICMPv6 neighbour advertisements) and
answers every claim of one of its addresses from another MAC: the claimer's last frame is
followed by ours, within :data:`ANSWER_GAP`.

The node that is about to step down must not answer the winner: when the partition heals
the winner's advert arrives just before its own announcements. So the adverts are read on
the same socket, in wire order, and a MAC seen advertising the instance's VRID with a higher
priority (equal: a higher MAC) in the last :data:`HIGHER_FOR` seconds is never answered.
Two halo masters of one split brain would answer each other for ever, so an answer carries
a mark the claim parser recognises — ``HALO`` and the instance's priority in the ARP frame's
padding, or an experimental ND option (type 253, RFC 4727) in a neighbour advertisement —
and a marked claim from a higher priority (equal: higher MAC, as VRRP's tie-break by
address) is left alone: only the node that will stay master after the heal answers. Hosts
ignore both marks. Unmarked claims (keepalived, another halo's ordinary bursts) are always
answered; a flood of forged claims is answered at most once per :data:`ANSWER_GAP` per
address, the last one of a burst always (a trailing answer).

The advert and MASTER-entry paths are untouched: this module only reads the backend's
instances and ports, and sends on the port's socket.
"""

from __future__ import annotations

import array
import asyncio
import logging
import socket
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from halo_backend_vip import frames
from halo_backend_vip.announce import Port
from halo_core.scheduler import Clock, Timer
from halo_core.schema import IPAddress

log = logging.getLogger("halo.backend.vip")

ANSWER_GAP = 0.05  # seconds: at most one answer per address in this time (forged floods)
LOG_EVERY = 10.0  # seconds: one log line per address and claimer in this time
MARK = b"HALO"
ND_OPT_HALO = 253  # RFC 4727: for experiments; receivers skip unknown options (RFC 4861)
PACKET_OUTGOING = 4  # sll_pkttype of our own frames, looped back to packet sockets
SO_ATTACH_FILTER = 26
READ_BATCH = 64  # frames read per wake-up, so a flood cannot hold the event loop

HIGHER_FOR = 3.0  # seconds a MAC heard advertising a higher priority is left alone
IPPROTO_VRRP = 112

# Classic BPF on an Ethernet frame (the socket gets every protocol): pass ARP, VRRP over IPv4
# or IPv6, and ICMPv6 neighbour advertisements; drop everything else in the kernel.
_ACCEPT, _DROP = 11, 12
_FILTER = [
    (0x28, 0, 0, 12),  # 0: ldh [12] (ethertype)
    (0x15, _ACCEPT - 2, 0, frames.ETH_P_ARP),  # 1
    (0x15, 0, 5 - 3, frames.ETH_P_IP),  # 2: IPv4 -> 3, else -> 5
    (0x30, 0, 0, 23),  # 3: ldb [23] (IPv4 protocol)
    (0x15, _ACCEPT - 5, _DROP - 5, IPPROTO_VRRP),  # 4
    (0x15, 0, _DROP - 6, frames.ETH_P_IPV6),  # 5
    (0x30, 0, 0, 20),  # 6: ldb [20] (IPv6 next header)
    (0x15, _ACCEPT - 8, 0, IPPROTO_VRRP),  # 7
    (0x15, 0, _DROP - 9, frames.IPPROTO_ICMPV6),  # 8
    (0x30, 0, 0, 54),  # 9: ldb [54] (ICMPv6 type)
    (0x15, _ACCEPT - 11, _DROP - 11, frames.ND_NEIGHBOR_ADVERT),  # 10
    (0x06, 0, 0, 0xFFFF),  # 11: accept
    (0x06, 0, 0, 0),  # 12: drop
]
ETH_P_ALL = 0x0003


# ---------------------------------------------------------------------------------------------
# frames


@dataclass(frozen=True)
class Claim:
    """Somebody announcing that ``ip`` is at ``mac``; ``priority`` when halo marked it."""

    ip: IPAddress
    mac: bytes
    priority: int | None = None


def parse_claim(frame: bytes) -> Claim | None:
    """The claim in an Ethernet frame (an ARP request or reply from a non-zero sender
    address, or a neighbour advertisement), or None."""
    if len(frame) < 14:
        return None
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == frames.ETH_P_ARP:
        # Ethernet/IPv4 (hardware 1, protocol 0x0800, lengths 6 and 4), request or reply
        if len(frame) < 42 or frame[14:20] != b"\x00\x01\x08\x00\x06\x04":
            return None
        if frame[20] != 0 or frame[21] not in (1, 2):
            return None
        ip4 = IPv4Address(frame[28:32])
        if int(ip4) == 0:  # an RFC 5227 probe claims nothing
            return None
        mark = frame[47] if frame[42:46] == MARK and len(frame) >= 48 else None
        return Claim(ip4, frame[22:28], mark)
    if ethertype == frames.ETH_P_IPV6:
        # hop limit 255, ICMPv6 neighbour advertisement, code 0 (RFC 4861 §7.1.2)
        if len(frame) < 78 or frame[20] != frames.IPPROTO_ICMPV6 or frame[21] != 255:
            return None
        if frame[54] != frames.ND_NEIGHBOR_ADVERT or frame[55] != 0:
            return None
        mac, mark = frame[6:12], None
        at = 78
        while at + 8 <= len(frame):
            kind, units = frame[at], frame[at + 1]
            if units == 0:
                return None  # malformed: receivers must drop it
            if kind == frames.ND_OPT_TARGET_LL_ADDR and units == 1:
                mac = frame[at + 2 : at + 8]
            elif kind == ND_OPT_HALO and units == 1 and frame[at + 2 : at + 6] == MARK:
                mark = frame[at + 6]
            at += 8 * units
        return Claim(IPv6Address(frame[62:78]), mac, mark)
    return None


@dataclass(frozen=True)
class Advert:
    """A VRRP advert's VRID and priority, from the sender's MAC."""

    vrid: int
    priority: int
    mac: bytes


def parse_advert(frame: bytes) -> Advert | None:
    """The VRRP advert (version 2 or 3) in an Ethernet frame, or None."""
    if len(frame) < 14:
        return None
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == frames.ETH_P_IP and len(frame) >= 34 and frame[23] == IPPROTO_VRRP:
        at = 14 + (frame[14] & 0x0F) * 4
    elif ethertype == frames.ETH_P_IPV6 and len(frame) >= 54 and frame[20] == IPPROTO_VRRP:
        at = 54
    else:
        return None
    if len(frame) < at + 3 or frame[at] & 0x0F != 1 or frame[at] >> 4 not in (2, 3):
        return None
    return Advert(frame[at + 1], frame[at + 2], frame[6:12])


def answer_frame(mac: bytes, ip: IPAddress, priority: int) -> bytes:
    """Our announcement of ``ip``, as :mod:`.frames` builds it, marked with ``priority``."""
    if isinstance(ip, IPv4Address):
        garp = frames.garp_frame(mac, ip)
        return garp[:42] + MARK + bytes([0, priority]) + garp[48:]
    na = frames.unsolicited_na_frame(mac, ip)
    option = bytes([ND_OPT_HALO, 1]) + MARK + bytes([priority, 0])
    icmp = bytearray(na[54:] + option)
    icmp[2:4] = b"\0\0"
    icmp[2:4] = frames.icmpv6_checksum(ip, frames.ALL_NODES, bytes(icmp)).to_bytes(2, "big")
    ip6 = bytearray(na[14:54])
    ip6[4:6] = len(icmp).to_bytes(2, "big")
    return na[:14] + bytes(ip6) + bytes(icmp)


def _filter_program() -> tuple[bytes, array.array[int]]:
    """``struct sock_fprog`` for SO_ATTACH_FILTER, and the buffer it points into (keep it
    alive until the call returns). An array, not ctypes: the VRRP process loads no ctypes
    for one pointer (a third of a megabyte)."""
    buf = array.array("B", b"".join(struct.pack("HBBI", *ins) for ins in _FILTER))
    return struct.pack("HL", len(_FILTER), buf.buffer_info()[0]), buf


# ---------------------------------------------------------------------------------------------
# the guard


class Guarded(Protocol):
    """An instance, as far as claims go (the runtime's Instance)."""

    name: str
    master: bool
    counters: Counter[str]

    @property
    def held(self) -> Sequence[_HeldVip]: ...


class _HeldVip(Protocol):
    @property
    def dev(self) -> str: ...

    @property
    def ip(self) -> IPAddress: ...


@dataclass(eq=False)
class _Address:
    """One address held by a MASTER instance, and the answers given for it."""

    instance: Guarded
    last_answer: float = float("-inf")
    trailing: Timer | None = None
    logged: dict[bytes, float] = field(default_factory=dict)  # claimer MAC -> last logged


class _Listener:
    """One interface's packet socket: ARP, VRRP and neighbour advertisements, in wire order."""

    def __init__(self, dev: str, on_frame: Callable[[str, bytes], None]) -> None:
        self.dev = dev
        self.loop = asyncio.get_running_loop()
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            prog, buf = _filter_program()
            self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)
            del buf
            self.sock.bind((dev, ETH_P_ALL))
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise
        self.loop.add_reader(self.sock.fileno(), self._drain, on_frame)

    def _drain(self, on_frame: Callable[[str, bytes], None]) -> None:
        for _ in range(READ_BATCH):
            try:
                data, addr = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # the interface went away: the next update reopens
                log.debug("claims: %s: %s", self.dev, exc)
                return
            if addr[2] != PACKET_OUTGOING:
                on_frame(self.dev, data)

    def close(self) -> None:
        try:
            self.loop.remove_reader(self.sock.fileno())
        finally:
            self.sock.close()


class ClaimGuard:
    """Listens while some instance is MASTER and answers claims of its addresses."""

    def __init__(self, clock: Clock, port: Callable[[str], Port | None]) -> None:
        self.clock = clock
        self.port = port
        self.addresses: dict[tuple[str, IPAddress], _Address] = {}
        self.listeners: dict[str, _Listener] = {}
        # the instances the engine says are MASTER -> (priority now, VRID)
        self.masters: dict[str, tuple[int, int | None]] = {}
        # (interface, VRID) -> MAC -> (priority advertised, when)
        self.adverts: dict[tuple[str, int], dict[bytes, tuple[int, float]]] = {}

    def note_master(self, instance: str, priority: int, vrid: int | None) -> None:
        """The priority ``instance`` became MASTER with (what its answers carry) and its
        VRID (whose adverts tell who outranks it)."""
        self.masters[instance] = (priority, vrid)

    def note_priority(self, instance: str, priority: int) -> None:
        """``instance``'s priority moved (a tracked input) while it may be MASTER: a master
        whose priority fell under a backup's is the one about to yield, so its claims are
        weighed, and its answers marked, with the priority it has now."""
        if instance in self.masters:
            self.masters[instance] = (priority, self.masters[instance][1])

    def forget(self, instance: str) -> None:
        """``instance`` left MASTER: answer nothing for it from now on (called as the engine
        publishes the change, before the backend has withdrawn the addresses, so a winner's
        announcement read in between is not answered)."""
        self.masters.pop(instance, None)
        for key in [k for k, held in self.addresses.items() if held.instance.name == instance]:
            self._drop(key)

    def update(self, instances: Iterable[Guarded]) -> None:
        """Follow what the MASTER instances hold: listen where they hold addresses, nowhere
        else. Call after every state change."""
        wanted: dict[tuple[str, IPAddress], Guarded] = {}
        for inst in instances:
            # the engine's word (note_master/forget) over the backend's, which lags it
            if inst.master and inst.name in self.masters:
                for vip in inst.held:
                    wanted[(vip.dev, vip.ip)] = inst
        for key in [k for k in self.addresses if k not in wanted]:
            self._drop(key)
        for key, inst in wanted.items():
            known = self.addresses.get(key)
            if known is None or known.instance is not inst:
                if known is not None:
                    self._drop(key)
                self.addresses[key] = _Address(inst)
        devs = {dev for dev, _ in wanted}
        for dev in [d for d in self.listeners if d not in devs]:
            self.listeners.pop(dev).close()
        for dev in devs - set(self.listeners):
            try:
                self.listeners[dev] = _Listener(dev, self.heard)
            except OSError as exc:
                log.warning("claims: cannot listen on %s: %s", dev, exc.strerror or exc)
        self.adverts = {k: v for k, v in self.adverts.items() if k[0] in devs}

    def close(self) -> None:
        for key in list(self.addresses):
            self._drop(key)
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()

    def heard(self, dev: str, data: bytes) -> None:
        """One frame from ``dev``: answer it if it claims one of our addresses."""
        claim = parse_claim(data)
        if claim is None:
            advert = parse_advert(data)
            if advert is not None:
                seen = self.adverts.setdefault((dev, advert.vrid), {})
                seen[advert.mac] = (advert.priority, self.clock.now())
            return
        held = self.addresses.get((dev, claim.ip))
        port = self.port(dev)
        if held is None or port is None or port.mac is None or claim.mac == port.mac:
            return
        ours, vrid = self.masters[held.instance.name]  # addresses are held for these only
        if claim.priority is not None and (claim.priority, claim.mac) > (ours, port.mac):
            return  # a halo master that will outlast us answers; we must not answer it back
        if vrid is not None:
            prio, when = self.adverts.get((dev, vrid), {}).get(claim.mac, (0, -HIGHER_FOR))
            if self.clock.now() - when < HIGHER_FOR and (prio, claim.mac) > (ours, port.mac):
                return  # the master we are about to yield to: its word stands
        inst = held.instance
        inst.counters["claims_heard"] += 1
        now = self.clock.now()
        if now - held.logged.get(claim.mac, float("-inf")) >= LOG_EVERY:
            held.logged[claim.mac] = now
            log.warning(
                "%s: %s claims %s, which this MASTER holds on %s: announcing again",
                inst.name,
                claim.mac.hex(":"),
                claim.ip,
                dev,
            )
        if now - held.last_answer >= ANSWER_GAP:
            self._answer(dev, claim.ip, held)
        elif held.trailing is None:
            key = (dev, claim.ip)
            held.trailing = self.clock.call_at(
                held.last_answer + ANSWER_GAP, lambda: self._trailing(key)
            )

    def _trailing(self, key: tuple[str, IPAddress]) -> None:
        held = self.addresses.get(key)
        if held is not None:
            held.trailing = None
            if held.instance.master:
                self._answer(key[0], key[1], held)

    def _answer(self, dev: str, ip: IPAddress, held: _Address) -> None:
        held.last_answer = self.clock.now()
        port = self.port(dev)
        if port is None or port.mac is None:
            return
        priority, _ = self.masters[held.instance.name]
        err = port.send(answer_frame(port.mac, ip, priority))
        counters = held.instance.counters
        if err is None:
            counters["claims_answered"] += 1
            counters["na_sent" if isinstance(ip, IPv6Address) else "garp_sent"] += 1
        else:
            counters["send_errors"] += 1
            log.warning("%s: answer for %s not sent on %s: %s", held.instance.name, ip, dev, err)

    def _drop(self, key: tuple[str, IPAddress]) -> None:
        held = self.addresses.pop(key)
        if held.trailing is not None:
            held.trailing.cancel()
