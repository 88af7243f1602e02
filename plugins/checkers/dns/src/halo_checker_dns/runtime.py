"""The ``dns`` checker at run time: one query over a connected UDP socket per check, built
and read with ``struct`` (RFC 1035 §4.1)."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct

from halo_checker_dns.plugin import QTYPES, DnsCheck
from halo_core.plugin_api import CheckResult, CheckTarget, endpoint

_HEADER = struct.Struct("!HHHHHH")
RCODES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def question(name: str, qtype: int) -> bytes:
    labels = [p for p in name.rstrip(".").split(".") if p]
    qname = b"".join(bytes([len(p)]) + p.encode("ascii") for p in labels) + b"\0"
    return qname + struct.pack("!HH", qtype, 1)  # class IN


class DnsChecker:
    def __init__(self, config: DnsCheck, target: CheckTarget) -> None:
        end = endpoint(target, config.connect_ip, config.connect_port, default_port=53)
        self.family, self.address, self.where = end.family, end.address, end.where
        self.bind = str(config.bind_to) if config.bind_to is not None else None
        self.question = question(config.query_name, QTYPES[config.query_type])
        self.what = f"{config.query_type} {config.query_name}"

    async def check(self) -> CheckResult:
        loop = asyncio.get_running_loop()
        ident = random.getrandbits(16)
        # RD set, as keepalived's query: a recursive server answers from its cache
        query = _HEADER.pack(ident, 0x0100, 1, 0, 0, 0) + self.question
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if self.bind is not None:
                sock.bind((self.bind, 0))
            sock.connect(self.address)
            await loop.sock_sendall(sock, query)
            while True:
                reply = await loop.sock_recv(sock, 65535)
                if len(reply) >= _HEADER.size and _HEADER.unpack_from(reply)[0] == ident:
                    break  # anything else is not the answer to this query
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            return CheckResult(False, f"{self.where}: {reason}")
        finally:
            sock.close()
        _, flags, qdcount, ancount, _, _ = _HEADER.unpack_from(reply)
        if not flags & 0x8000:
            return CheckResult(False, f"{self.where}: not a response")
        rcode = flags & 0x000F
        if rcode:
            return CheckResult(False, f"{self.where}: {self.what}: {RCODES.get(rcode, rcode)}")
        if qdcount != 1 or reply[_HEADER.size : _HEADER.size + len(self.question)].lower() != (
            self.question.lower()
        ):
            return CheckResult(False, f"{self.where}: the answer is to another question")
        return CheckResult(True, f"{self.where}: {self.what}: {ancount} answers")

    async def close(self) -> None:
        return None
