"""The ``smtp`` checker at run time: greeting, HELO, QUIT on one connection per check."""

from __future__ import annotations

import asyncio
import os
import socket

from halo_checker_smtp.plugin import SmtpCheck
from halo_core.plugin_api import CheckResult, CheckTarget, endpoint


async def reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    """One SMTP reply (RFC 5321 §4.2: "250-..." lines continue, "250 ..." ends it)."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if len(text) < 3 or not text[:3].isdigit():
            raise ConnectionError(f"not an SMTP reply: {text[:60]!r}")
        if text[3:4] != "-":
            return int(text[:3]), text[4:]


class SmtpChecker:
    def __init__(self, config: SmtpCheck, target: CheckTarget) -> None:
        end = endpoint(
            target,
            config.connect_ip,
            config.connect_port,
            config.bind_to,
            config.bind_port,
            default_port=25,
        )
        (self.host, self.port), self.local, self.where = end.address, end.local, end.where
        self.helo = config.helo_name or socket.gethostname()

    async def check(self) -> CheckResult:
        writer = None
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, local_addr=self.local
            )
            code, text = await reply(reader)
            if code != 220:
                return CheckResult(False, f"{self.where}: greeting {code} {text}".rstrip())
            writer.write(f"HELO {self.helo}\r\n".encode())
            code, text = await reply(reader)
            if code != 250:
                return CheckResult(False, f"{self.where}: HELO answered {code} {text}".rstrip())
            writer.write(b"QUIT\r\n")
            await writer.drain()
            return CheckResult(True, f"{self.where}: greeting and HELO answered")
        except OSError as exc:  # ConnectionError included
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            return CheckResult(False, f"{self.where}: {reason}")
        finally:
            if writer is not None:
                writer.close()

    async def close(self) -> None:
        return None
