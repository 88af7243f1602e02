"""A kernel socket filter that keeps a backup's master's repeated adverts out of the process.

A backup hears its master's advert every interval, and nearly all of them are the same
bytes (but for the IP header's ID and checksum): each one only restarts the
Master_Down_Timer (RFC 9568 §6.4.2). Reading them costs the process a wake-up and a
``recvmsg`` each (a backup of 100 instances at 0.1 s reads 1,000 a second). So, once an
instance has accepted an advert whose repeats change nothing but the timer's start, it
hands the advert's bytes to this filter (``arm``); the filter, an eBPF program on the
instance's raw socket, drops each later packet with exactly those bytes and notes when it
came (the kernel's ``CLOCK_MONOTONIC``, the event loop's clock) and how many came. The
instance reads those two numbers when it looks at its timer (``seen``), from memory shared
with the kernel (a ``BPF_F_MMAPABLE`` array map: no system call). Anything else - another
router, a changed priority, a priority-0 advert, a malformed packet - differs in its bytes
and is read as before, and every step of the instance's state machine takes the bytes back
(``disarm``) first, so that the next advert is judged in full again.

What the filter compares: for IPv4, the whole datagram, header (TTL, protocol,
addresses) included, at most ``LONGEST`` bytes (20 of header, 8 of VRRP header, 8 of
authentication, and 31 addresses); for IPv6, the header from the payload length on (hop
limit and addresses included) and the VRRP message, at most ``LONGEST`` bytes together (7
addresses). A longer advert, one with IPv4 options or IPv6 extension headers, is always
read.

Dropping a packet in a socket filter drops it for this socket only: tcpdump and other
sockets see every advert. Without the bpf(2) system call (a kernel without eBPF, a process
without CAP_BPF), ``attach`` returns None and every advert is read, as before.
"""

from __future__ import annotations

import logging
import mmap
import os
import socket
import struct

from halo_core import cfunc
from halo_core.vrrp.rawsock import VRRP_PROTO

log = logging.getLogger("halo.vrrp")

LONGEST = 160
"""Bytes: the longest datagram the filter compares (a multiple of 8)."""

# One map entry per VRID, its value: the armed length (0: not armed), padding, the receive
# time of the latest packet dropped (ns, CLOCK_MONOTONIC), how many were dropped, and the
# datagram's bytes with the IP ID and header checksum zeroed, zero-padded to LONGEST.
_LENGTH, _LAST, _COUNT, _BYTES = 0, 8, 16, 24
VALUE_SIZE = _BYTES + LONGEST
ENTRIES = 256
_SEEN = struct.Struct("@QQ")  # native: one 8-byte load each (the kernel writes them)
_U32 = struct.Struct("@I")
_HEAD6 = struct.Struct("!HBB")  # an IPv6 header's payload length, next header, hop limit

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351}
_BPF_MAP_CREATE, _BPF_PROG_LOAD, _BPF_PROG_TEST_RUN = 0, 5, 10
_BPF_MAP_TYPE_ARRAY = 2
_BPF_PROG_TYPE_SOCKET_FILTER = 1
_BPF_F_MMAPABLE = 1 << 10
_SO_ATTACH_BPF = 50
_HELPER_MAP_LOOKUP, _HELPER_KTIME_NS, _HELPER_SKB_LOAD_BYTES = 1, 5, 26
_HELPER_SKB_LOAD_BYTES_RELATIVE, _BPF_HDR_START_NET = 68, 1
_HEADER6 = 36  # IPv6 header bytes compared: 4-39 (payload length, next header, hop limit,
# addresses; not the version, traffic class and flow label)

# --- the program, in eBPF instructions (linux/bpf.h; the registers: r0 result, r1-r5
# arguments, r6-r9 kept across calls, r10 the frame pointer)
_INSN = struct.Struct("<BBhi")


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return _INSN.pack(code, (src << 4) | dst, off, imm)


def _program(map_fd: int, family: int = socket.AF_INET) -> bytes:
    """The filter: drop a packet equal to its VRID's armed bytes, noting when it came; pass
    everything else whole. IPv4: the datagram (an IPv4 raw socket's filter sees it from
    the IP header on) but for the IP ID and header checksum. IPv6: the header's bytes from
    the payload length on (read from the network header: the filter sees the VRRP message),
    then the VRRP message."""
    v6 = family == socket.AF_INET6
    buf = -LONGEST  # the packet, copied to the stack (r10 + buf)
    key = buf - 8  # the map key, the VRID
    # an instruction, or a jump to "pass" at the end: (code, dst, src, imm), resolved below
    code: list[bytes | tuple[int, int, int, int]] = []

    def jump(op: int, dst: int, imm: int = 0, src: int = 0) -> None:
        code.append((op, dst, src, imm))

    code.append(_insn(0xBF, 6, 1))  # r6 = r1 (the __sk_buff)
    code.append(_insn(0x61, 7, 6, 0))  # r7 = skb->len
    head = _HEADER6 if v6 else 0  # bytes of IP header before the packet's own
    jump(0x25, 7, LONGEST - head)  # if r7 > what fits: pass
    jump(0xA5, 7, 8 if v6 else 28)  # if r7 < a VRRP header (and an IPv4 one): pass
    for at in range(0, LONGEST, 8):  # zero the copy: the compare reads all of it
        code.append(_insn(0x7A, 10, 0, buf + at, 0))
    if v6:  # the header's bytes 4-39, from the network header
        code.append(_insn(0xBF, 1, 6))  # r1 = skb
        code.append(_insn(0xB7, 2, 0, 0, 4))  # r2 = 4: from the payload length on
        code.append(_insn(0xBF, 3, 10))  # r3 = r10 + buf
        code.append(_insn(0x07, 3, 0, 0, buf))
        code.append(_insn(0xB7, 4, 0, 0, _HEADER6))  # r4 = 36
        code.append(_insn(0xB7, 5, 0, 0, _BPF_HDR_START_NET))
        code.append(_insn(0x85, 0, 0, 0, _HELPER_SKB_LOAD_BYTES_RELATIVE))
        jump(0x55, 0, 0)  # if r0 != 0: pass
    code.append(_insn(0xBF, 1, 6))  # r1 = skb
    code.append(_insn(0xB7, 2, 0, 0, 0))  # r2 = 0 (from the start of the packet)
    code.append(_insn(0xBF, 3, 10))  # r3 = r10 + buf + head
    code.append(_insn(0x07, 3, 0, 0, buf + head))
    code.append(_insn(0xBF, 4, 7))  # r4 = len
    code.append(_insn(0x85, 0, 0, 0, _HELPER_SKB_LOAD_BYTES))
    jump(0x55, 0, 0)  # if r0 != 0: pass
    if not v6:
        code.append(_insn(0x6A, 10, 0, buf + 4, 0))  # the IP ID: not compared
        code.append(_insn(0x6A, 10, 0, buf + 10, 0))  # the header checksum: not compared
    # r1 = the VRID (IPv4: byte 21 of a header without options)
    code.append(_insn(0x71, 1, 10, buf + head + 1 if v6 else buf + 21))
    code.append(_insn(0x63, 10, 1, key))  # the key
    code.append(_insn(0x18, 1, 1, 0, map_fd))  # r1 = the map (a 16-byte instruction)
    code.append(_insn(0x00, 0, 0, 0, 0))
    code.append(_insn(0xBF, 2, 10))  # r2 = r10 + key
    code.append(_insn(0x07, 2, 0, 0, key))
    code.append(_insn(0x85, 0, 0, 0, _HELPER_MAP_LOOKUP))
    jump(0x15, 0, 0)  # if r0 == NULL: pass
    code.append(_insn(0xBF, 8, 0))  # r8 = the entry
    code.append(_insn(0x61, 1, 8, _LENGTH))  # r1 = armed length (0: not armed)
    jump(0x5D, 1, 0, 7)  # if r1 != len: pass
    for at in range(0, LONGEST, 8):
        code.append(_insn(0x79, 1, 10, buf + at))  # r1 = datagram word
        code.append(_insn(0x79, 2, 8, _BYTES + at))  # r2 = armed word
        jump(0x5D, 1, 0, 2)  # if r1 != r2: pass
    code.append(_insn(0x85, 0, 0, 0, _HELPER_KTIME_NS))
    code.append(_insn(0x7B, 8, 0, _LAST))  # entry.last = now
    code.append(_insn(0xB7, 1, 0, 0, 1))
    code.append(_insn(0xDB, 8, 1, _COUNT, 0))  # lock entry.count += 1
    code.append(_insn(0xB7, 0, 0, 0, 0))  # drop
    code.append(_insn(0x95))
    end = len(code)  # pass: r0 = len, the whole packet
    code.append(_insn(0xBF, 0, 7))
    code.append(_insn(0x95))
    return b"".join(  # every item is one 8-byte slot
        item if isinstance(item, bytes) else _insn(item[0], item[1], item[2], end - i - 1, item[3])
        for i, item in enumerate(code)
    )


def _bpf(command: int, attr: bytes) -> tuple[int, bytes]:
    """bpf(2): its result, and ``attr`` as the kernel left it."""
    call = cfunc.function("syscall", returns_long=True)
    number = _SYS_BPF.get(os.uname().machine)
    if number is None:
        raise OSError(0, f"no bpf(2) number known for {os.uname().machine}")
    attr = attr.ljust(128, b"\0")
    buf = cfunc.buffer(attr)
    result = call(number, command, buf, len(attr))
    if result < 0:
        error = cfunc.errno()
        raise OSError(error, os.strerror(error))
    return result, bytes(buf)


def new_map() -> int:
    """A new map for the filter: its file descriptor."""
    attr = struct.pack(
        "@IIIIIIII16s",
        _BPF_MAP_TYPE_ARRAY,
        4,
        VALUE_SIZE,
        ENTRIES,
        _BPF_F_MMAPABLE,
        0,
        0,
        0,
        b"halo_repeats",
    )
    return _bpf(_BPF_MAP_CREATE, attr)[0]


def load(map_fd: int, family: int = socket.AF_INET) -> int:
    """Load the filter for ``map_fd`` and sockets of ``family``; its program's file
    descriptor (OSError with the verifier's log if the kernel refuses it)."""
    program = _program(map_fd, family)
    insns = cfunc.buffer(program)
    license_ = cfunc.buffer(b"GPL\0")
    log_buf = cfunc.buffer(65536)
    attr = struct.pack(
        "@IIQQIIQII16s",
        _BPF_PROG_TYPE_SOCKET_FILTER,
        len(program) // 8,
        cfunc.address(insns),
        cfunc.address(license_),
        1,
        65536,
        cfunc.address(log_buf),
        0,
        0,
        b"halo_repeats",
    )
    try:
        return _bpf(_BPF_PROG_LOAD, attr)[0]
    except OSError as exc:
        verifier = bytes(log_buf).rstrip(b"\0").decode(errors="replace").strip()
        raise OSError(exc.errno, f"{exc.strerror}: {verifier[-2000:]}") from None


def run_program(program: int, frame: bytes, repeat: int = 1) -> tuple[int, int]:
    """Run a loaded filter on an Ethernet ``frame`` in the kernel, ``repeat`` times
    (BPF_PROG_TEST_RUN; the tests, and ``bench/cpu/run.py`` for its cost): (its verdict,
    the bytes of the packet kept, 0 to drop; ns per run)."""
    data = cfunc.buffer(frame)
    attr = struct.pack("@IIIIQQII", program, 0, len(frame), 0, cfunc.address(data), 0, repeat, 0)
    _, out = _bpf(_BPF_PROG_TEST_RUN, attr)
    verdict, duration = struct.unpack_from("@I", out, 4)[0], struct.unpack_from("@I", out, 36)[0]
    return verdict, duration


class RepeatFilter:
    """The filter on one raw VRRP socket (IPv4 or IPv6), and its map (one entry per VRID)."""

    def __init__(self, sock: socket.socket, family: int = socket.AF_INET) -> None:
        self.map = new_map()
        self.program = -1
        try:
            self.program = load(self.map, family)
            sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_BPF, self.program)
            size = -(-ENTRIES * VALUE_SIZE // mmap.PAGESIZE) * mmap.PAGESIZE
            self.memory: mmap.mmap | bytearray = mmap.mmap(self.map, size, mmap.MAP_SHARED)
        except BaseException:
            for fd in (self.map, self.program):
                if fd >= 0:
                    os.close(fd)
            raise
        self._armed: dict[int, bytes] = {}  # VRID -> the bytes armed

    def arm(self, datagram: bytes) -> None:
        """Drop the repeats of ``datagram`` (an IPv4 VRRP datagram without IP options) from
        now on; its VRID's earlier bytes, if any, no longer."""
        if len(datagram) > LONGEST or datagram[0] != 0x45 or len(datagram) < 28:
            return
        kept = b"".join((datagram[:4], b"\0\0", datagram[6:10], b"\0\0", datagram[12:]))
        self._arm(datagram[21], kept, len(datagram))

    def arm6(self, payload: bytes, src: bytes, dst: bytes, hop_limit: int) -> None:
        """The same for an IPv6 VRRP message (``payload``) from ``src`` to ``dst`` (packed
        addresses) received with ``hop_limit``, without extension headers."""
        if len(payload) > LONGEST - _HEADER6 or len(payload) < 8 or not 0 <= hop_limit <= 255:
            return
        kept = b"".join((_HEAD6.pack(len(payload), VRRP_PROTO, hop_limit), src, dst, payload))
        self._arm(payload[1], kept, len(payload))

    def _arm(self, vrid: int, kept: bytes, length: int) -> None:
        if self._armed.get(vrid) == kept:
            return
        base = vrid * VALUE_SIZE
        memory = self.memory
        _U32.pack_into(memory, base + _LENGTH, 0)  # not armed while the bytes change
        memory[base + _BYTES : base + VALUE_SIZE] = kept.ljust(LONGEST, b"\0")
        _U32.pack_into(memory, base + _LENGTH, length)
        self._armed[vrid] = kept

    def disarm(self, vrid: int) -> None:
        """Read ``vrid``'s adverts again from now on."""
        if self._armed.pop(vrid, None) is not None:
            _U32.pack_into(self.memory, vrid * VALUE_SIZE + _LENGTH, 0)

    def seen(self, vrid: int) -> tuple[int, int]:
        """(the receive time in ns of the latest advert dropped for ``vrid``, how many
        have been dropped since the socket opened). A packet being dropped on another CPU
        as this reads may show one and not yet the other: the next look sees both."""
        return _SEEN.unpack_from(self.memory, vrid * VALUE_SIZE + _LAST)  # type: ignore[return-value]

    def close(self) -> None:
        """Detach from the kernel. The figures stay readable, as they were: an instance may
        be read after its socket closed (a stopping daemon's last status)."""
        if isinstance(self.memory, mmap.mmap):
            self._armed.clear()
            frozen = bytearray(self.memory)
            self.memory.close()
            self.memory = frozen
            os.close(self.program)
            os.close(self.map)


_refusal_logged = False


def attach(sock: socket.socket, family: int) -> RepeatFilter | None:
    """A :class:`RepeatFilter` on ``sock``, or None (logged once) if the kernel refuses."""
    global _refusal_logged
    try:
        return RepeatFilter(sock, family)
    except (OSError, AttributeError) as exc:
        if not _refusal_logged:
            _refusal_logged = True
            log.info("VRRP: every advert is read (no kernel filter for repeats: %s)", exc)
        return None
