"""Answering claims: while MASTER, another MAC announcing one of our addresses is answered at
once with our own announcement, so the last word on the segment is always ours.

Why: after a split brain heals, the old backup may hear the master's advert first and step
down without sending one. The master then never hears a lower-priority advert, never
announces again, and every host keeps the backup's MAC for the VIPs until its ARP entry
expires (keepalived has the same race). VRRP cannot tell the master what it missed, but the
backup's gratuitous ARPs / unsolicited neighbour advertisements reach it: a partition of
VRRP (a filter on protocol 112, a VLAN or multicast problem) passes them. So while an
instance is MASTER this module listens on its interfaces (an ``AF_PACKET`` socket for ARP,
one for IPv6 with a BPF filter that passes only ICMPv6 neighbour advertisements) and answers
every claim of one of its addresses from another MAC: the claimer's last frame is followed by
ours, within :data:`ANSWER_GAP`.

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

import asyncio
import ctypes
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

# Classic BPF on an Ethernet frame: IPv6 next header ICMPv6 (58) at byte 20 and ICMPv6 type
# neighbour advertisement (136) at byte 54, else drop in the kernel.
_NA_FILTER = [
    (0x30, 0, 0, 20),  # ldb [20]
    (0x15, 0, 3, frames.IPPROTO_ICMPV6),  # jeq #58, next, drop
    (0x30, 0, 0, 54),  # ldb [54]
    (0x15, 0, 1, frames.ND_NEIGHBOR_ADVERT),  # jeq #136, next, drop
    (0x06, 0, 0, 0xFFFF),  # ret: pass
    (0x06, 0, 0, 0),  # ret: drop
]


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


def _na_filter() -> tuple[bytes, ctypes.Array[ctypes.c_char]]:
    """``struct sock_fprog`` for SO_ATTACH_FILTER, and the buffer it points into (keep it
    alive until the call returns)."""
    code = b"".join(struct.pack("HBBI", *ins) for ins in _NA_FILTER)
    buf = ctypes.create_string_buffer(code, len(code))
    return struct.pack("HL", len(_NA_FILTER), ctypes.addressof(buf)), buf


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
    priority: int
    last_answer: float = float("-inf")
    trailing: Timer | None = None
    logged: dict[bytes, float] = field(default_factory=dict)  # claimer MAC -> last logged


class _Listener:
    """The packet sockets of one interface (ARP always, IPv6 when it has IPv6 addresses)."""

    def __init__(self, dev: str, v6: bool, on_frame: Callable[[str, bytes], None]) -> None:
        self.dev = dev
        self.socks: list[socket.socket] = []
        self.loop = asyncio.get_running_loop()
        try:
            self._open(frames.ETH_P_ARP, None)
            if v6:
                prog, buf = _na_filter()
                self._open(frames.ETH_P_IPV6, prog)
                del buf
        except BaseException:
            self.close()
            raise
        for sock in self.socks:
            self.loop.add_reader(sock.fileno(), self._drain, sock, on_frame)

    def _open(self, proto: int, prog: bytes | None) -> None:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
        self.socks.append(sock)
        if prog is not None:
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)
        sock.bind((self.dev, proto))
        sock.setblocking(False)

    def _drain(self, sock: socket.socket, on_frame: Callable[[str, bytes], None]) -> None:
        for _ in range(READ_BATCH):
            try:
                data, addr = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # the interface went away: the next update reopens
                log.debug("claims: %s: %s", self.dev, exc)
                return
            if addr[2] != PACKET_OUTGOING:
                on_frame(self.dev, data)

    def close(self) -> None:
        for sock in self.socks:
            try:
                self.loop.remove_reader(sock.fileno())
            finally:
                sock.close()
        self.socks.clear()


class ClaimGuard:
    """Listens while some instance is MASTER and answers claims of its addresses."""

    def __init__(self, clock: Clock, port: Callable[[str], Port | None]) -> None:
        self.clock = clock
        self.port = port
        self.addresses: dict[tuple[str, IPAddress], _Address] = {}
        self.listeners: dict[tuple[str, bool], _Listener] = {}  # (dev, with IPv6)
        self.priorities: dict[str, int] = {}

    def note_master(self, instance: str, priority: int) -> None:
        """The priority ``instance`` became MASTER with: what its answers carry."""
        self.priorities[instance] = priority

    def update(self, instances: Iterable[Guarded]) -> None:
        """Follow what the MASTER instances hold: listen where they hold addresses, nowhere
        else. Call after every state change."""
        wanted: dict[tuple[str, IPAddress], Guarded] = {}
        for inst in instances:
            if inst.master:
                for vip in inst.held:
                    wanted[(vip.dev, vip.ip)] = inst
        for key in [k for k in self.addresses if k not in wanted]:
            self._drop(key)
        for key, inst in wanted.items():
            prio = self.priorities.get(inst.name, 0)
            known = self.addresses.get(key)
            if known is None or known.instance is not inst:
                if known is not None:
                    self._drop(key)
                self.addresses[key] = _Address(inst, prio)
            else:
                known.priority = prio
        devs: dict[str, bool] = {}
        for dev, ip in wanted:
            devs[dev] = devs.get(dev, False) or isinstance(ip, IPv6Address)
        for listening in [k for k in self.listeners if devs.get(k[0]) is not k[1]]:
            self.listeners.pop(listening).close()
        for dev, v6 in devs.items():
            if (dev, v6) not in self.listeners:
                try:
                    self.listeners[(dev, v6)] = _Listener(dev, v6, self.heard)
                except OSError as exc:
                    log.warning("claims: cannot listen on %s: %s", dev, exc.strerror or exc)

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
            return
        held = self.addresses.get((dev, claim.ip))
        port = self.port(dev)
        if held is None or port is None or port.mac is None or claim.mac == port.mac:
            return
        if claim.priority is not None and (claim.priority, claim.mac) > (held.priority, port.mac):
            return  # a halo master that will outlast us answers; we must not answer it back
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
        err = port.send(answer_frame(port.mac, ip, held.priority))
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
