"""``halo watch IFACE``: every VRRP router heard on a segment, and what is wrong between them.

A split-brain diagnostic. It listens on one interface with packet sockets (no VRRP
membership, nothing sent), decodes adverts with halo's own codec
(:mod:`halo_core.vrrp.packet`: VRRPv2 and v3, IPv4 and IPv6) and reports, per virtual router
(address family and VRID):

- every router seen: source, MAC, version, priority, interval, addresses, authentication;
- **two masters**: two routers advertising at the same time. Only a master advertises, and
  during a normal takeover the old master's adverts stop as the new one's start; adverts
  from two sources that keep alternating mean both think they are master;
- **two owners**: two routers with priority 255;
- mismatched **intervals**, **address lists**, **versions**, **authentication** (VRRPv2) and
  **checksum** styles (VRRPv3 over IPv4 with or without the pseudo-header: keepalived's
  ``v3_checksum_as_v2``) between the routers of one VRID: each makes routers drop each
  other's adverts (or, in v3, only warn), which is how split brains start;
- adverts with a **TTL / hop limit** other than 255 (receivers drop them: a router between).

Exit status: 0 when no conflict was seen, 1 when one was, 2 when the interface could not
be watched. Only the standard library is used: no scapy on production nodes.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import itertools
import json
import selectors
import signal
import socket
import struct
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from types import FrameType
from typing import Any, TextIO

from halo_core.vrrp import packet
from halo_core.vrrp.packet import PacketError, RejectReason

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_MR_ALLMULTI = 2
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26

# Two masters: the sender alternates A B A B A. A takeover can show one stray advert from
# the old master after the new one's first (A B A B: its timer fired just before it heard
# the new master), so that is not enough; two routers that both keep advertising reach
# four alternations within about two intervals.
SPLIT_ALTERNATIONS = 4
MASTER_SLACK = 0.5  # seconds beyond three intervals before a quiet master counts as gone
TICK = 0.2  # conflicts are re-evaluated this often even when nothing arrives


# ---------------------------------------------------------------------------------- capture


def _protocol_filter(offset: int) -> tuple[ctypes.Array[ctypes.c_char], bytes]:
    """A classic BPF program accepting packets whose octet at ``offset`` (of the network
    header) is 112, VRRP: the kernel then hands us adverts only, however busy the link."""
    insns = [
        (0x30, 0, 0, offset),  # ldb [offset]
        (0x15, 0, 1, packet.VRRP_PROTO),  # jeq #112, accept, drop
        (0x06, 0, 0, 0x40000),  # ret #262144 (whole packet)
        (0x06, 0, 0, 0),  # ret #0
    ]
    code = b"".join(struct.pack("HBBI", *i) for i in insns)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(insns), ctypes.addressof(buf))
    return buf, fprog  # the buffer must outlive the setsockopt call


def open_sockets(iface: str, *, promisc: bool = False) -> list[socket.socket]:
    """One packet socket per IP version on ``iface``, filtered to VRRP, in all-multicast
    (or promiscuous) mode for as long as they are open. Raises ``OSError``."""
    ifindex = socket.if_nametoindex(iface)
    socks = []
    try:
        for ethertype, offset in ((ETH_P_IP, 9), (ETH_P_IPV6, 6)):
            # Protocol 0 receives nothing until bind: the filter is in place before the
            # first packet can queue.
            s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
            socks.append(s)
            buf, fprog = _protocol_filter(offset)
            s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            del buf
            s.bind((iface, ethertype))
            # A NIC filters multicast nobody joined; keepalived's group must come through.
            mode = PACKET_MR_PROMISC if promisc else PACKET_MR_ALLMULTI
            s.setsockopt(
                SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("iHH8s", ifindex, mode, 0, b"")
            )
            s.setblocking(False)
    except OSError:
        for s in socks:
            s.close()
        raise
    return socks


def parse_ipv6(datagram: bytes) -> tuple[IPv6Address, IPv6Address, int, bytes]:
    """(source, destination, hop limit, VRRP payload) of an IPv6 packet carrying VRRP."""
    if len(datagram) < 40 or datagram[0] >> 4 != 6:
        raise PacketError(RejectReason.BAD_IP_HEADER, f"{len(datagram)} octets")
    length = int.from_bytes(datagram[4:6], "big")
    if datagram[6] != packet.VRRP_PROTO:
        raise PacketError(RejectReason.BAD_PROTOCOL, f"next header {datagram[6]}")
    if 40 + length > len(datagram):
        raise PacketError(RejectReason.BAD_IP_HEADER, f"payload length {length}")
    src, dst = IPv6Address(datagram[8:24]), IPv6Address(datagram[24:40])
    return src, dst, datagram[7], bytes(datagram[40 : 40 + length])


@dataclass(frozen=True)
class Observation:
    """One advert as seen on the wire."""

    time: float
    family: int  # 4 or 6
    source: str
    destination: str
    ttl: int
    advert: packet.Advertisement
    mac: str | None = None
    checksum: str = "standard"  # or "v2-style": v3 over IPv4 without the pseudo-header


@dataclass(frozen=True)
class Invalid:
    """A VRRP packet halo's codec refuses (what every router on the segment would drop)."""

    time: float
    source: str
    reason: str
    detail: str


def decode(
    datagram: bytes, ethertype: int, *, now: float, mac: str | None = None
) -> Observation | Invalid:
    """Decode an IP packet carrying VRRP. The TTL is checked here, not by the codec, so a
    wrong one is reported with the rest of the advert rather than hiding it."""
    source = "?"
    try:
        if ethertype == ETH_P_IPV6:
            src6, dst6, ttl, payload = parse_ipv6(datagram)
            source = str(src6)
            adv = packet.decode(payload, src6, dst6, ttl=packet.VRRP_TTL)
            return Observation(now, 6, source, str(dst6), ttl, adv, mac)
        src4, dst4, ttl, payload = packet.parse_ipv4(datagram)
        source = str(src4)
        try:
            adv = packet.decode(payload, src4, dst4, ttl=packet.VRRP_TTL)
            style = "standard"
        except PacketError as exc:
            if exc.reason is not RejectReason.BAD_CHECKSUM or payload[:1] != b"\x31":
                raise
            adv = packet.decode(payload, src4, dst4, ttl=packet.VRRP_TTL, v3_checksum_as_v2=True)
            style = "v2-style"
        return Observation(now, 4, source, str(dst4), ttl, adv, mac, style)
    except PacketError as exc:
        return Invalid(now, source, exc.reason.value, exc.detail)


# ---------------------------------------------------------------------------------- analysis


def _auth(adv: packet.Advertisement) -> str:
    if adv.version == 3:
        return "-"
    if adv.auth_type == packet.AUTH_NONE:
        return "none"
    # The password is clear text on the wire, but a diagnostic's output ends up in tickets
    # and chats: show a fingerprint that tells equal from different, not the password.
    return "PASS#" + hashlib.sha256(adv.auth_data).hexdigest()[:6]


def _seconds(cs: int) -> str:
    return f"{cs // 100}s" if cs % 100 == 0 else f"{cs / 100:g}s"


def family_name(family: int) -> str:
    return "IPv4" if family == 4 else "IPv6"


@dataclass
class Router:
    """What one source advertises for one virtual router."""

    family: int
    vrid: int
    source: str
    mac: str | None
    version: int
    priority: int
    interval_cs: int
    addresses: tuple[str, ...]
    auth: str
    checksum: str
    ttl: int
    first_seen: float
    last_seen: float
    adverts: int = 0
    history: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=256))

    @property
    def key(self) -> tuple[int, int]:
        return (self.family, self.vrid)

    def advertising(self, now: float) -> bool:
        """Still sending adverts as master (a master advertises every interval)."""
        quiet = now - self.last_seen
        return self.priority > 0 and quiet <= 3 * self.interval_cs / 100 + MASTER_SLACK

    def role(self, now: float) -> str:
        if self.priority == 0:
            return "stepped down"
        return "master" if self.advertising(now) else "silent"

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "family": family_name(self.family),
            "vrid": self.vrid,
            "source": self.source,
            "mac": self.mac,
            "version": self.version,
            "priority": self.priority,
            "interval": self.interval_cs / 100,
            "addresses": list(self.addresses),
            "auth": self.auth,
            "checksum": self.checksum,
            "ttl": self.ttl,
            "adverts": self.adverts,
            "first_seen": round(self.first_seen, 3),
            "last_seen": round(self.last_seen, 3),
            "role": self.role(now),
        }


@dataclass(frozen=True)
class Conflict:
    kind: str
    family: int
    vrid: int
    sources: tuple[str, ...]
    detail: str

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.kind, self.family, self.vrid)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "family": family_name(self.family),
            "vrid": self.vrid,
            "sources": list(self.sources),
            "detail": self.detail,
        }


TITLES = {
    "two_masters": "two masters",
    "two_owners": "two address owners (priority 255)",
    "interval_mismatch": "advert intervals differ",
    "address_mismatch": "address lists differ",
    "version_mismatch": "VRRP versions differ",
    "auth_mismatch": "authentication differs",
    "checksum_mismatch": "checksum styles differ (v3_checksum_as_v2)",
    "bad_ttl": "TTL / hop limit is not 255 (receivers drop these adverts)",
}


def _alternations(a: Router, b: Router, since: float) -> int:
    """How often the sender changes between a and b in their recent non-zero adverts."""
    merged = sorted(
        [(t, 0) for t, p in a.history if t >= since and p > 0]
        + [(t, 1) for t, p in b.history if t >= since and p > 0]
    )
    return sum(1 for x, y in itertools.pairwise(merged) if x[1] != y[1])


class Watch:
    """The routers seen so far and the conflicts between them. Pure: time comes in."""

    def __init__(self) -> None:
        self.routers: dict[tuple[int, int, str], Router] = {}
        self.conflicts: dict[tuple[str, int, int], Conflict] = {}
        self.seen: dict[tuple[str, int, int], Conflict] = {}
        self.invalid: Counter[tuple[str, str]] = Counter()

    def observe(self, obs: Observation) -> list[tuple[str, Router, str]]:
        """Record an advert; returns ("new"|"changed", router, what) for the output."""
        adv = obs.advert
        key = (obs.family, adv.vrid, obs.source)
        fields = {
            "version": adv.version,
            "priority": adv.priority,
            "interval_cs": adv.interval_cs,
            "addresses": tuple(str(a) for a in adv.addresses),
            "auth": _auth(adv),
            "checksum": obs.checksum,
            "ttl": obs.ttl,
        }
        router = self.routers.get(key)
        out: list[tuple[str, Router, str]] = []
        if router is None:
            router = Router(
                obs.family,
                adv.vrid,
                obs.source,
                obs.mac,
                first_seen=obs.time,
                last_seen=obs.time,
                **fields,  # type: ignore[arg-type]
            )
            self.routers[key] = router
            out.append(("new", router, ""))
        else:
            changes = []
            for name, value in fields.items():
                old = getattr(router, name)
                if old != value:
                    changes.append(f"{name} {_show(name, old)} -> {_show(name, value)}")
                    setattr(router, name, value)
            if changes:
                out.append(("changed", router, ", ".join(changes)))
        router.last_seen = obs.time
        router.mac = obs.mac or router.mac
        router.adverts += 1
        router.history.append((obs.time, adv.priority))
        return out

    def record_invalid(self, bad: Invalid) -> bool:
        """Count a refused packet; True the first time this source has this problem."""
        self.invalid[(bad.source, bad.reason)] += 1
        return self.invalid[(bad.source, bad.reason)] == 1

    def groups(self) -> dict[tuple[int, int], list[Router]]:
        out: dict[tuple[int, int], list[Router]] = {}
        for r in self.routers.values():
            out.setdefault(r.key, []).append(r)
        return out

    def find_conflicts(self, now: float) -> list[Conflict]:
        found: list[Conflict] = []
        for (fam, vr), routers in sorted(self.groups().items()):

            def add(
                kind: str, members: list[Router], detail: str, fam: int = fam, vr: int = vr
            ) -> None:
                found.append(Conflict(kind, fam, vr, tuple(r.source for r in members), detail))

            masters: set[str] = set()
            live = [r for r in routers if r.advertising(now)]
            for i, a in enumerate(live):
                for b in live[i + 1 :]:
                    window = 3 * max(a.interval_cs, b.interval_cs) / 100 + MASTER_SLACK
                    if _alternations(a, b, now - window) >= SPLIT_ALTERNATIONS:
                        masters |= {a.source, b.source}
            if masters:
                members = [r for r in routers if r.source in masters]
                add(
                    "two_masters",
                    members,
                    ", ".join(f"{r.source} (priority {r.priority})" for r in members),
                )
            owners = [r for r in routers if r.priority == 255]
            if len(owners) > 1:
                add("two_owners", owners, ", ".join(r.source for r in owners))
            for kind, attr in (
                ("version_mismatch", "version"),
                ("interval_mismatch", "interval_cs"),
                ("address_mismatch", "addresses"),
                ("auth_mismatch", "auth"),
                ("checksum_mismatch", "checksum"),
            ):
                values = {getattr(r, attr) for r in routers}
                if kind == "auth_mismatch":
                    values.discard("-")  # v3: no authentication (a version mismatch instead)
                if len(values) > 1:
                    add(
                        kind,
                        routers,
                        "; ".join(f"{r.source}: {_show(attr, getattr(r, attr))}" for r in routers),
                    )
            bad = [r for r in routers if r.ttl != packet.VRRP_TTL]
            if bad:
                add("bad_ttl", bad, ", ".join(f"{r.source}: {r.ttl}" for r in bad))
        return found

    def evaluate(self, now: float) -> tuple[list[Conflict], list[Conflict]]:
        """(conflicts that started, conflicts that ended) since the last evaluation."""
        current = {c.key: c for c in self.find_conflicts(now)}
        started = [c for k, c in current.items() if k not in self.conflicts]
        ended = [c for k, c in self.conflicts.items() if k not in current]
        self.conflicts = current
        for c in current.values():
            self.seen.setdefault(c.key, c)
        return started, ended


def _show(name: str, value: Any) -> str:
    if name == "interval_cs":
        return _seconds(int(value))
    if name == "addresses":
        return ",".join(value) or "none"
    if name == "version":
        return f"v{value}"
    return str(value)


# ---------------------------------------------------------------------------------- output


class Output:
    """Streamed lines (or JSON lines) as things happen, and a summary at the end."""

    def __init__(self, stream: TextIO, as_json: bool) -> None:
        self.stream = stream
        self.json = as_json

    def _emit(self, now: float, what: str, text: str, doc: dict[str, Any]) -> None:
        if self.json:
            print(json.dumps({"event": what, "time": round(now, 3), **doc}), file=self.stream)
        else:
            stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
            print(f"{stamp}  {text}", file=self.stream)
        self.stream.flush()

    def router(self, now: float, what: str, r: Router, change: str) -> None:
        where = f"VRID {r.vrid:<3} {family_name(r.family)}  {r.source}"
        if what == "new":
            auth = f"  auth {r.auth}" if r.version == 2 else ""
            mac = f" ({r.mac})" if r.mac else ""
            text = (
                f"new       {where}{mac}  v{r.version} priority {r.priority} every "
                f"{_seconds(r.interval_cs)}{auth}  addresses {_show('addresses', r.addresses)}"
            )
            if r.checksum != "standard":
                text += f"  checksum {r.checksum}"
            self._emit(now, "router", text, r.as_dict(now))
        else:
            self._emit(
                now,
                "change",
                f"changed   {where}  {change}",
                {**r.as_dict(now), "change": change},
            )

    def conflict(self, now: float, c: Conflict, started: bool) -> None:
        where = f"VRID {c.vrid:<3} {family_name(c.family)}"
        if started:
            text = f"CONFLICT  {where}  {TITLES[c.kind]}: {c.detail}"
            self._emit(now, "conflict", text, c.as_dict())
        else:
            self._emit(now, "resolved", f"resolved  {where}  {TITLES[c.kind]}", c.as_dict())

    def invalid(self, now: float, bad: Invalid) -> None:
        self._emit(
            now,
            "invalid",
            f"invalid   from {bad.source}: {bad.reason.replace('_', ' ')} {bad.detail}".rstrip(),
            {"source": bad.source, "reason": bad.reason, "detail": bad.detail},
        )

    def summary(self, watch: Watch, now: float, iface: str, seconds: float) -> None:
        routers = sorted(watch.routers.values(), key=lambda r: (r.family, r.vrid, r.source))
        if self.json:
            doc = {
                "event": "summary",
                "interface": iface,
                "seconds": round(seconds, 3),
                "routers": [r.as_dict(now) for r in routers],
                "conflicts": [c.as_dict() for c in watch.conflicts.values()],
                "seen_conflicts": [c.as_dict() for c in watch.seen.values()],
                "invalid": [
                    {"source": s, "reason": r, "count": n}
                    for (s, r), n in sorted(watch.invalid.items())
                ],
            }
            print(json.dumps(doc), file=self.stream)
            return
        from halo_core.cli import table

        print(file=self.stream)
        print(
            f"{len(routers)} router(s) heard on {iface} in {seconds:.1f} s"
            + (":" if routers else "."),
            file=self.stream,
        )
        if routers:
            rows = [
                [
                    r.vrid,
                    family_name(r.family),
                    f"v{r.version}",
                    r.source,
                    r.mac,
                    r.priority,
                    _seconds(r.interval_cs),
                    r.auth,
                    r.adverts,
                    f"{now - r.last_seen:.1f}s ago",
                    r.role(now),
                    _show("addresses", r.addresses),
                ]
                for r in routers
            ]
            headers = [
                "VRID",
                "FAMILY",
                "VER",
                "SOURCE",
                "MAC",
                "PRIO",
                "INTERVAL",
                "AUTH",
                "ADVERTS",
                "LAST",
                "ROLE",
                "ADDRESSES",
            ]
            for line in table(headers, rows):
                print(line, file=self.stream)
        now_keys = set(watch.conflicts)
        if watch.seen:
            print(file=self.stream)
            for key, c in watch.seen.items():
                state = "NOW " if key in now_keys else "seen"
                print(
                    f"{state}  VRID {c.vrid} {family_name(c.family)}: {TITLES[c.kind]}: "
                    f"{watch.conflicts.get(key, c).detail}",
                    file=self.stream,
                )
        else:
            print("\nno conflicts seen", file=self.stream)
        for (source, reason), n in sorted(watch.invalid.items()):
            print(f"invalid: {n} packet(s) from {source}: {reason}", file=self.stream)


# ---------------------------------------------------------------------------------- command


def receive(
    socks: list[socket.socket], until: float | None
) -> Iterator[Observation | Invalid | None]:
    """Decoded packets until ``until`` (time.monotonic()), and ``None`` after every wait of
    at most TICK, so that the caller notices time passing on a quiet link."""
    sel = selectors.DefaultSelector()
    for s, ethertype in zip(socks, (ETH_P_IP, ETH_P_IPV6), strict=True):
        sel.register(s, selectors.EVENT_READ, ethertype)
    try:
        while True:
            left = TICK if until is None else min(TICK, until - time.monotonic())
            if left <= 0:
                return
            for key, _ in sel.select(left):
                s = socks[[x.fileno() for x in socks].index(key.fd)]
                while True:
                    try:
                        data, addr = s.recvfrom(65535)
                    except BlockingIOError:
                        break
                    mac = addr[4].hex(":") if len(addr) > 4 and addr[4] else None
                    yield decode(data, key.data, now=time.time(), mac=mac)
            yield None
    finally:
        sel.close()


def run(
    iface: str,
    *,
    seconds: float | None,
    as_json: bool = False,
    promisc: bool = False,
    stream: TextIO = sys.stdout,
) -> int:
    try:
        socks = open_sockets(iface, promisc=promisc)
    except OSError as exc:
        hint = " (needs root or CAP_NET_RAW)" if isinstance(exc, PermissionError) else ""
        print(f"halo watch: cannot listen on {iface}: {exc.strerror or exc}{hint}", file=sys.stderr)
        return 2
    out = Output(stream, as_json)
    watch = Watch()
    if not as_json:
        span = f"for {seconds:g} s" if seconds else "until Ctrl-C"
        print(f"halo watch: listening for VRRP adverts on {iface} {span}", file=stream)
        stream.flush()
    start = time.monotonic()
    until = start + seconds if seconds else None
    last_eval = 0.0

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        for item in receive(socks, until):
            now = time.time()
            if item is None:
                pass
            elif isinstance(item, Invalid):
                if watch.record_invalid(item):
                    out.invalid(item.time, item)
            else:
                for what, router, change in watch.observe(item):
                    out.router(item.time, what, router, change)
            if time.monotonic() - last_eval >= TICK / 2:
                last_eval = time.monotonic()
                started, ended = watch.evaluate(now)
                for c in ended:
                    out.conflict(now, c, started=False)
                for c in started:
                    out.conflict(now, c, started=True)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        for s in socks:
            s.close()
    now = time.time()
    started, ended = watch.evaluate(now)
    for c in ended:
        out.conflict(now, c, started=False)
    for c in started:
        out.conflict(now, c, started=True)
    with contextlib.suppress(BrokenPipeError):
        out.summary(watch, now, iface, time.monotonic() - start)
    return 1 if watch.seen else 0


def cmd_watch(args: argparse.Namespace) -> int:
    return run(args.interface, seconds=args.seconds, as_json=args.json, promisc=args.promisc)
