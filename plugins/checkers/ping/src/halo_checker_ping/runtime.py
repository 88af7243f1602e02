"""The ``ping`` checker at run time: one echo request per check, on a raw ICMP socket (the
daemon runs as root) or, where that is refused, an unprivileged ICMP datagram socket
(``net.ipv4.ping_group_range``). Replies are matched on identifier and sequence, so other
pings on the host (a raw socket sees them all) are ignored."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import struct

from halo_checker_ping.plugin import PingCheck
from halo_core.plugin_api import CheckResult, CheckTarget

_ECHO = struct.Struct("!BBHHH")
_SEQUENCE = itertools.count(1)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


class PingChecker:
    def __init__(self, config: PingCheck, target: CheckTarget) -> None:
        host = config.connect_ip or target.address
        if host is None:
            raise ValueError(f"check {target.name}: connect_ip is needed outside a real server")
        self.v6 = host.version == 6
        self.host = str(host)
        self.bind = str(config.bind_to) if config.bind_to is not None else None
        self.payload = bytes(range(256))[: config.size] if config.size else b""
        self.ident = os.getpid() & 0xFFFF

    def _socket(self) -> tuple[socket.socket, bool]:
        family = socket.AF_INET6 if self.v6 else socket.AF_INET
        proto = socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP
        try:
            return socket.socket(family, socket.SOCK_RAW, proto), True
        except PermissionError:
            return socket.socket(family, socket.SOCK_DGRAM, proto), False

    async def check(self) -> CheckResult:
        loop = asyncio.get_running_loop()
        seq = next(_SEQUENCE) & 0xFFFF
        kind, reply_kind = (128, 129) if self.v6 else (8, 0)
        sock, raw = self._socket()
        try:
            sock.setblocking(False)
            if self.bind is not None:
                sock.bind((self.bind, 0))
            header = _ECHO.pack(kind, 0, 0, self.ident, seq)
            # ICMPv6: the kernel fills in the checksum (it covers a pseudo-header)
            csum = 0 if self.v6 else _checksum(header + self.payload)
            packet = _ECHO.pack(kind, 0, csum, self.ident, seq) + self.payload
            await loop.sock_sendto(sock, packet, (self.host, 0))
            while True:
                data, peer = await loop.sock_recvfrom(sock, 65535)
                if raw and not self.v6:
                    data = data[(data[0] & 0x0F) * 4 :]  # a raw IPv4 socket gives the IP header
                if len(data) < _ECHO.size or peer[0] != self.host:
                    continue
                rkind, _, _, ident, rseq = _ECHO.unpack_from(data)
                # an unprivileged socket has its identifier rewritten by the kernel
                if rkind == reply_kind and rseq == seq and (ident == self.ident or not raw):
                    return CheckResult(True, f"echo reply from {self.host}")
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            return CheckResult(False, f"ping {self.host}: {reason}")
        finally:
            sock.close()

    async def close(self) -> None:
        return None
