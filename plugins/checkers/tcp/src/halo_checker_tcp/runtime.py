"""The ``tcp`` checker at run time: one asyncio connection attempt per check."""

from __future__ import annotations

import asyncio
import socket

from halo_checker_tcp.plugin import TcpCheck
from halo_core.api import CheckResult, CheckTarget


class TcpChecker:
    def __init__(self, config: TcpCheck, target: CheckTarget) -> None:
        host = config.connect_ip or target.address
        port = config.connect_port or target.port
        if host is None or port is None:
            raise ValueError(
                f"check {target.name}: connect_ip and connect_port are needed outside a real server"
            )
        self.host = str(host)
        self.port = port
        self.local = (
            str(config.bind_to or ("::" if ":" in self.host else "0.0.0.0")),
            config.bind_port or 0,
        )
        self.bind = config.bind_to is not None or config.bind_port is not None

    async def check(self) -> CheckResult:
        try:
            _, writer = await asyncio.open_connection(
                self.host, self.port, local_addr=self.local if self.bind else None
            )
        except OSError as exc:
            return CheckResult(False, f"connect to {self.host}:{self.port}: {exc.strerror or exc}")
        # Close with RST-free FIN like keepalived; we never send data.
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x00" * 8)
        writer.close()
        return CheckResult(True, f"connected to {self.host}:{self.port}")

    async def close(self) -> None:
        return None
