"""The ``udp`` checker at run time: one connected, non-blocking UDP socket per check, so
that the kernel reports an ICMP port unreachable as ECONNREFUSED on it."""

from __future__ import annotations

import asyncio
import os
import socket

from halo_checker_udp.plugin import UdpCheck, octets
from halo_core.plugin_api import CheckResult, CheckTarget, endpoint


class UdpChecker:
    def __init__(self, config: UdpCheck, target: CheckTarget) -> None:
        end = endpoint(
            target, config.connect_ip, config.connect_port, config.bind_to, config.bind_port
        )
        self.family, self.address, self.local, self.where = (
            end.family,
            end.address,
            end.local,
            end.where,
        )
        self.payload = octets(config.payload)
        self.pattern = octets(config.reply) if config.reply is not None else None
        self.need_reply = config.require_reply or self.pattern is not None
        self.min_len, self.max_len = config.min_reply_length, config.max_reply_length
        # without a reply to wait for, silence for half the time-out means nobody refused
        self.quiet = 0.5 * float(config.timeout or config.interval or 1.0)

    async def check(self) -> CheckResult:
        loop = asyncio.get_running_loop()
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if self.local is not None:
                sock.bind(self.local)
            sock.connect(self.address)
            await loop.sock_sendall(sock, self.payload)
            if not self.need_reply:
                try:
                    await asyncio.wait_for(loop.sock_recv(sock, 65535), self.quiet)
                except TimeoutError:
                    return CheckResult(True, f"no ICMP error from {self.where}")
                return CheckResult(True, f"{self.where} answered")
            reply = await loop.sock_recv(sock, 65535)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            return CheckResult(False, f"{self.where}: {reason}")
        finally:
            sock.close()
        return self._judge(reply)

    def _judge(self, reply: bytes) -> CheckResult:
        n = len(reply)
        if n < self.min_len or (self.max_len is not None and n > self.max_len):
            return CheckResult(False, f"{self.where}: a reply of {n} octets")
        if self.pattern is not None and not reply.startswith(self.pattern):
            return CheckResult(False, f"{self.where}: the reply does not match")
        return CheckResult(True, f"{self.where} replied ({n} octets)")

    async def close(self) -> None:
        return None
