"""Packet capture for the lab: AF_PACKET to pcap in a helper process, and a pcap reader.

The capture runs as ``ip netns exec NS python -m halo_tool_lab.capture --iface IF --out F``
(:class:`Capture` starts it through the lab so it is always cleaned up). It binds a raw
AF_PACKET socket to the interface (promiscuous, so on the switch bridge it sees every frame
crossing the segment, each exactly once), stamps frames with kernel receive times
(SO_TIMESTAMPNS) and writes a nanosecond pcap (magic 0xa1b23c4d, Ethernet). Readiness is
signalled by creating ``OUT.ready`` after the socket is bound and the pcap header written.
SIGTERM/SIGINT drain the socket, flush and exit 0. Records are flushed after every burst,
so the file can be read while the capture runs.

The reader and the parsers below are plain ``struct`` code (stdlib only).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from halo_tool_lab.netns import Namespace, Proc

__all__ = [
    "FILTERS",
    "ArpPacket",
    "Capture",
    "Frame",
    "IpPacket",
    "NeighbourAdvert",
    "VrrpAdvert",
    "arp_packets",
    "frame_matches",
    "neighbour_adverts",
    "parse_ip",
    "parse_vrrp",
    "read_pcap",
    "vrrp_adverts",
]

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
IPPROTO_VRRP = 112
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD: struct timespec of native longs
SNAPLEN = 262144

FILTERS = ("all", "vrrp", "arp", "nd", "icmp", "icmp6", "ip", "ip6", "proto=N", "ether=0xNNNN")


# ---------------------------------------------------------------------------------------------
# frames and parsing


@dataclass(frozen=True)
class Frame:
    """One captured Ethernet frame."""

    time: float  # seconds since the epoch
    data: bytes
    time_ns: int = 0
    wire_len: int = 0

    @property
    def src_mac(self) -> str:
        return _mac(self.data[6:12])

    @property
    def dst_mac(self) -> str:
        return _mac(self.data[0:6])

    @property
    def ethertype(self) -> int:
        return _l3(self.data)[0]


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _l3(data: bytes) -> tuple[int, int]:
    """(ethertype, offset of the L3 header), skipping 802.1Q tags."""
    if len(data) < 14:
        return (0, len(data))
    off = 12
    (etype,) = struct.unpack_from("!H", data, off)
    while etype in (ETH_P_8021Q, 0x88A8) and len(data) >= off + 6:
        off += 4
        (etype,) = struct.unpack_from("!H", data, off)
    return (etype, off + 2)


@dataclass(frozen=True)
class IpPacket:
    version: int
    src: IPv4Address | IPv6Address
    dst: IPv4Address | IPv6Address
    proto: int  # IPv4 protocol, or the IPv6 upper-layer next header (extension headers skipped)
    ttl: int  # TTL / hop limit
    payload: bytes


_IPV6_EXT = {0, 43, 60}  # hop-by-hop, routing, destination options


def parse_ip(data: bytes) -> IpPacket | None:
    """Parse the IPv4/IPv6 header of an Ethernet frame (None for anything else)."""
    etype, off = _l3(data)
    if etype == ETH_P_IP and len(data) >= off + 20:
        ihl = (data[off] & 0x0F) * 4
        total = struct.unpack_from("!H", data, off + 2)[0]
        end = min(len(data), off + total) if total >= ihl else len(data)
        return IpPacket(
            4,
            IPv4Address(data[off + 12 : off + 16]),
            IPv4Address(data[off + 16 : off + 20]),
            data[off + 9],
            data[off + 8],
            data[off + ihl : end],
        )
    if etype == ETH_P_IPV6 and len(data) >= off + 40:
        plen = struct.unpack_from("!H", data, off + 4)[0]
        nh, hlim = data[off + 6], data[off + 7]
        src = IPv6Address(data[off + 8 : off + 24])
        dst = IPv6Address(data[off + 24 : off + 40])
        end = min(len(data), off + 40 + plen)
        p = off + 40
        while nh in _IPV6_EXT and p + 2 <= end:
            nh, hlen = data[p], (data[p + 1] + 1) * 8
            p += hlen
        return IpPacket(6, src, dst, nh, hlim, data[p:end])
    return None


@dataclass(frozen=True)
class VrrpAdvert:
    time: float
    src_mac: str
    dst_mac: str
    src: IPv4Address | IPv6Address
    dst: IPv4Address | IPv6Address
    ttl: int
    version: int
    type: int
    vrid: int
    priority: int
    interval: float  # seconds (v2: whole seconds; v3: centiseconds / 100)
    addresses: tuple[IPv4Address | IPv6Address, ...]
    auth_type: int | None  # VRRPv2 only
    checksum: int


def parse_vrrp(frame: Frame) -> VrrpAdvert | None:
    ip = parse_ip(frame.data)
    if ip is None or ip.proto != IPPROTO_VRRP or len(ip.payload) < 8:
        return None
    p = ip.payload
    version, typ = p[0] >> 4, p[0] & 0x0F
    vrid, prio, count = p[1], p[2], p[3]
    size = 4 if ip.version == 4 else 16
    addrs: list[IPv4Address | IPv6Address] = []
    for i in range(count):
        chunk = p[8 + i * size : 8 + (i + 1) * size]
        if len(chunk) == size:
            addrs.append(ipaddress.ip_address(chunk))
    if version == 2:
        auth: int | None = p[4]
        interval = float(p[5])
    else:
        auth = None
        interval = (struct.unpack_from("!H", p, 4)[0] & 0x0FFF) / 100.0
    return VrrpAdvert(
        time=frame.time,
        src_mac=frame.src_mac,
        dst_mac=frame.dst_mac,
        src=ip.src,
        dst=ip.dst,
        ttl=ip.ttl,
        version=version,
        type=typ,
        vrid=vrid,
        priority=prio,
        interval=interval,
        addresses=tuple(addrs),
        auth_type=auth,
        checksum=struct.unpack_from("!H", p, 6)[0],
    )


def vrrp_adverts(frames: Iterable[Frame], *, vrid: int | None = None) -> list[VrrpAdvert]:
    """The VRRP packets among *frames* (IPv4 protocol / IPv6 next header 112)."""
    out = []
    for f in frames:
        adv = parse_vrrp(f)
        if adv is not None and (vrid is None or adv.vrid == vrid):
            out.append(adv)
    return out


@dataclass(frozen=True)
class ArpPacket:
    time: float
    src_mac: str  # Ethernet source
    dst_mac: str
    op: int  # 1 request, 2 reply
    sender_mac: str
    sender_ip: IPv4Address
    target_mac: str
    target_ip: IPv4Address

    @property
    def gratuitous(self) -> bool:
        return self.sender_ip == self.target_ip


def arp_packets(frames: Iterable[Frame]) -> list[ArpPacket]:
    """The Ethernet/IPv4 ARP packets among *frames*."""
    out = []
    for f in frames:
        etype, off = _l3(f.data)
        d = f.data
        if etype != ETH_P_ARP or len(d) < off + 28:
            continue
        htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", d, off)
        if htype != 1 or ptype != ETH_P_IP or hlen != 6 or plen != 4:
            continue
        b = off + 8
        out.append(
            ArpPacket(
                time=f.time,
                src_mac=f.src_mac,
                dst_mac=f.dst_mac,
                op=op,
                sender_mac=_mac(d[b : b + 6]),
                sender_ip=IPv4Address(d[b + 6 : b + 10]),
                target_mac=_mac(d[b + 10 : b + 16]),
                target_ip=IPv4Address(d[b + 16 : b + 20]),
            )
        )
    return out


@dataclass(frozen=True)
class NeighbourAdvert:
    time: float
    src_mac: str
    dst_mac: str
    src: IPv6Address
    dst: IPv6Address
    target: IPv6Address
    router: bool
    solicited: bool
    override: bool
    target_lladdr: str | None  # target link-layer address option


def neighbour_adverts(frames: Iterable[Frame]) -> list[NeighbourAdvert]:
    """The ICMPv6 neighbour advertisements (type 136) among *frames*."""
    out = []
    for f in frames:
        ip = parse_ip(f.data)
        if ip is None or ip.version != 6 or ip.proto != 58 or len(ip.payload) < 24:
            continue
        p = ip.payload
        if p[0] != 136:
            continue
        flags = p[4]
        lladdr = None
        o = 24
        while o + 2 <= len(p) and p[o + 1]:
            otype, olen = p[o], p[o + 1] * 8
            if otype == 2 and olen >= 8:
                lladdr = _mac(p[o + 2 : o + 8])
            o += olen
        assert isinstance(ip.src, IPv6Address) and isinstance(ip.dst, IPv6Address)
        out.append(
            NeighbourAdvert(
                time=f.time,
                src_mac=f.src_mac,
                dst_mac=f.dst_mac,
                src=ip.src,
                dst=ip.dst,
                target=IPv6Address(p[8:24]),
                router=bool(flags & 0x80),
                solicited=bool(flags & 0x40),
                override=bool(flags & 0x20),
                target_lladdr=lladdr,
            )
        )
    return out


def frame_matches(data: bytes, filters: Sequence[str]) -> bool:
    """True if *data* matches any of *filters* (see :data:`FILTERS`; empty matches all)."""
    if not filters:
        return True
    etype, _ = _l3(data)
    ip: IpPacket | None = None
    ip_done = False
    for flt in filters:
        if flt == "all":
            return True
        if flt == "arp":
            if etype == ETH_P_ARP:
                return True
            continue
        if flt.startswith("ether="):
            if etype == int(flt[6:], 0):
                return True
            continue
        if flt == "ip":
            if etype == ETH_P_IP:
                return True
            continue
        if flt == "ip6":
            if etype == ETH_P_IPV6:
                return True
            continue
        if not ip_done:
            ip, ip_done = parse_ip(data), True
        if ip is None:
            continue
        if flt == "vrrp" and ip.proto == IPPROTO_VRRP:
            return True
        if flt == "icmp" and ip.version == 4 and ip.proto == 1:
            return True
        if flt == "icmp6" and ip.version == 6 and ip.proto == 58:
            return True
        if (
            flt == "nd"
            and ip.version == 6
            and ip.proto == 58
            and ip.payload
            and 133 <= ip.payload[0] <= 137
        ):
            return True
        if flt.startswith("proto=") and ip.proto == int(flt[6:], 0):
            return True
    return False


def _parse_filters(spec: str | None) -> list[str]:
    if not spec:
        return []
    out = [s.strip() for s in spec.split(",") if s.strip()]
    for s in out:
        ok = s in FILTERS or (s.startswith(("proto=", "ether=")) and _is_int(s.split("=", 1)[1]))
        if not ok:
            raise ValueError(f"unknown capture filter {s!r} (known: {', '.join(FILTERS)})")
    return out


def _is_int(s: str) -> bool:
    try:
        int(s, 0)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# pcap files


def read_pcap(path: Path | str) -> list[Frame]:
    """Read a classic pcap file (µs or ns, either byte order). A truncated final record,
    as left by a capture that is still running, is ignored."""
    raw = Path(path).read_bytes()
    if len(raw) < 24:
        return []
    (magic_le,) = struct.unpack_from("<I", raw, 0)
    if magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
        endian = "<"
        magic = magic_le
    else:
        endian = ">"
        (magic,) = struct.unpack_from(">I", raw, 0)
        if magic not in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            raise ValueError(f"{path}: not a pcap file (magic {magic_le:#x})")
    scale = 1 if magic == PCAP_MAGIC_NS else 1000
    rec = struct.Struct(endian + "IIII")
    frames: list[Frame] = []
    off = 24
    while off + rec.size <= len(raw):
        sec, frac, incl, orig = rec.unpack_from(raw, off)
        off += rec.size
        if off + incl > len(raw):
            break
        t_ns = sec * 1_000_000_000 + frac * scale
        frames.append(Frame(t_ns / 1e9, raw[off : off + incl], t_ns, orig))
        off += incl
    return frames


class _PcapWriter:
    def __init__(self, fh: BinaryIO, snaplen: int) -> None:
        self.fh = fh
        self.snaplen = snaplen
        fh.write(struct.pack("<IHHiIII", PCAP_MAGIC_NS, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
        fh.flush()

    def write(self, t_ns: int, data: bytes, wire_len: int) -> None:
        data = data[: self.snaplen]
        sec, nsec = divmod(t_ns, 1_000_000_000)
        self.fh.write(struct.pack("<IIII", sec, nsec, len(data), wire_len))
        self.fh.write(data)


# ---------------------------------------------------------------------------------------------
# the capture process


def _open_socket(iface: str, promisc: bool) -> socket.socket:
    # Protocol 0 first so nothing is queued before bind() restricts us to the interface.
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        except PermissionError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.bind((iface, ETH_P_ALL))
        if promisc:
            mreq = struct.pack("iHH8s", socket.if_nametoindex(iface), PACKET_MR_PROMISC, 0, b"")
            s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


_TS = struct.Struct("@ll")


def run_capture(
    iface: str,
    out: Path,
    *,
    filters: Sequence[str] = (),
    ready: Path | None = None,
    promisc: bool = True,
    snaplen: int = 65535,
    count: int | None = None,
    duration: float | None = None,
) -> int:
    """Capture on *iface* into *out* until SIGTERM/SIGINT, *count* frames or *duration* s.

    Returns the number of frames written.
    """
    stop = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    rfd, wfd = os.pipe()
    os.set_blocking(wfd, False)
    signal.set_wakeup_fd(wfd)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    written = 0
    sock = _open_socket(iface, promisc)
    with sock, open(out, "wb") as fh:
        writer = _PcapWriter(fh, snaplen)
        if ready is not None:
            tmp = ready.with_name(ready.name + ".tmp")
            tmp.write_text(f"{os.getpid()}\n")
            tmp.rename(ready)
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(rfd, select.POLLIN)
        deadline = None if duration is None else time.monotonic() + duration
        cmsg_size = socket.CMSG_SPACE(_TS.size)
        while not stop:
            wait_ms = 1000
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait_ms = min(wait_ms, max(1, int(left * 1000)))
            for fd, _ in poller.poll(wait_ms):
                if fd == rfd:
                    with contextlib.suppress(BlockingIOError):
                        os.read(rfd, 512)
            # Drain whatever is queued (also after a stop request: nothing already received
            # by the kernel is lost).
            while True:
                try:
                    data, anc, _flags, _addr = sock.recvmsg(SNAPLEN, cmsg_size)
                except (BlockingIOError, InterruptedError):
                    break
                t_ns = 0
                for level, typ, cdata in anc:
                    if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                        sec, nsec = _TS.unpack(cdata[: _TS.size])
                        t_ns = sec * 1_000_000_000 + nsec
                if not t_ns:
                    t_ns = time.time_ns()
                if frame_matches(data, filters):
                    writer.write(t_ns, data, len(data))
                    written += 1
                    if count is not None and written >= count:
                        stop = True
                        break
            fh.flush()
    signal.set_wakeup_fd(-1)
    os.close(rfd)
    os.close(wfd)
    return written


def _main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m halo_tool_lab.capture", description="AF_PACKET capture to a ns pcap"
    )
    ap.add_argument("--iface", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--ready", type=Path, help="file created once capturing (default OUT.ready)")
    ap.add_argument("--filter", default="", help=f"comma-separated, any of: {', '.join(FILTERS)}")
    ap.add_argument("--no-promisc", action="store_true")
    ap.add_argument("--snaplen", type=int, default=65535)
    ap.add_argument("--count", type=int)
    ap.add_argument("--duration", type=float)
    args = ap.parse_args(argv)
    try:
        filters = _parse_filters(args.filter)
    except ValueError as exc:
        ap.error(str(exc))
    ready = args.ready or args.out.with_name(args.out.name + ".ready")
    n = run_capture(
        args.iface,
        args.out,
        filters=filters,
        ready=ready,
        promisc=not args.no_promisc,
        snaplen=args.snaplen,
        count=args.count,
        duration=args.duration,
    )
    print(f"captured {n} frames on {args.iface}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------
# the controlling side


class Capture:
    """A running capture (see the module docstring); usually made by :meth:`Lab.capture`."""

    def __init__(
        self,
        node: Namespace,
        iface: str,
        out: Path,
        *,
        filter: str | None = None,
        promisc: bool = True,
        snaplen: int = 65535,
        ready_timeout: float = 10.0,
    ) -> None:
        _parse_filters(filter)  # fail early, in the caller
        self.node = node
        self.iface = iface
        self.path = Path(out)
        self.ready_path = self.path.with_name(self.path.name + ".ready")
        self.log_path = self.path.with_name(self.path.name + ".log")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for p in (self.path, self.ready_path):
            p.unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "halo_tool_lab.capture",
            "--iface",
            iface,
            "--out",
            str(self.path),
            "--ready",
            str(self.ready_path),
            "--snaplen",
            str(snaplen),
        ]
        if filter:
            argv += ["--filter", filter]
        if not promisc:
            argv.append("--no-promisc")
        self.proc: Proc = node.spawn(*argv, log=self.log_path)
        deadline = time.monotonic() + ready_timeout
        while not self.ready_path.exists():
            if not self.proc.running or time.monotonic() > deadline:
                self.proc.terminate_and_wait(2.0)
                log = self.log_path.read_text(errors="replace").strip()[-800:]
                raise RuntimeError(f"capture on {node.ns}/{iface} did not start: {log}")
            time.sleep(0.005)

    @property
    def running(self) -> bool:
        return self.proc.running

    def frames(self) -> list[Frame]:
        """Frames written so far (the capture keeps running)."""
        return read_pcap(self.path)

    def stop(self, timeout: float = 5.0) -> list[Frame]:
        """Stop (SIGTERM; everything received so far is written) and return all frames."""
        if self.proc.running:
            rc = self.proc.terminate_and_wait(timeout)
            if rc != 0:
                log = self.log_path.read_text(errors="replace").strip()[-800:]
                raise RuntimeError(f"capture exited with {rc}: {log}")
        return read_pcap(self.path)

    def __enter__(self) -> Capture:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
            self.stop()


if __name__ == "__main__":
    sys.exit(_main())
