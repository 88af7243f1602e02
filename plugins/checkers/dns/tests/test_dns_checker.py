"""The dns checker against a small DNS responder on loopback (written here with
``struct``): an answer, NXDOMAIN, a stray reply before the real one, a closed port; and its
conversion from keepalived's DNS_CHECK."""

from __future__ import annotations

import asyncio
import socket
import struct

from halo_checker_dns.runtime import question
from halo_core.plugin_api import CheckResult
from halo_tool_lab.testing import probe_check

HEADER = struct.Struct("!HHHHHH")


async def probe(text: str) -> CheckResult:
    return await probe_check(f"checks:\n  c: {text}\n")


class Responder(asyncio.DatagramProtocol):
    """example.com A -> 192.0.2.7; anything else NXDOMAIN. Sends a reply with a wrong
    identifier first, as a spoofer or a late answer would."""

    def __init__(self) -> None:
        self.questions: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        ident = HEADER.unpack_from(data)[0]
        q = data[HEADER.size :]
        self.questions.append(q)
        known = q == question("example.com", 1)
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 7])
        reply_flags = 0x8180 if known else 0x8183
        body = q + (answer if known else b"")
        stray = HEADER.pack(ident ^ 1, reply_flags, 1, int(known), 0, 0) + body
        self.transport.sendto(stray, addr)
        self.transport.sendto(HEADER.pack(ident, reply_flags, 1, int(known), 0, 0) + body, addr)


async def test_answers_nxdomain_and_a_closed_port() -> None:
    loop = asyncio.get_running_loop()
    transport, dns = await loop.create_datagram_endpoint(Responder, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    base = f"type: dns, connect_ip: 127.0.0.1, connect_port: {port}"
    try:
        result = await probe(f"{{{base}, query_name: example.com}}")
        assert result.ok and result.message == f"127.0.0.1:{port}: A example.com: 1 answers"
        result = await probe(f"{{{base}, query_name: nowhere.example, query_type: AAAA}}")
        assert not result.ok
        assert result.message == f"127.0.0.1:{port}: AAAA nowhere.example: NXDOMAIN"
        assert dns.questions[-1] == question("nowhere.example", 28)
    finally:
        transport.close()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    closed = s.getsockname()[1]
    s.close()
    result = await probe(f"{{type: dns, connect_ip: 127.0.0.1, connect_port: {closed}}}")
    assert not result.ok and result.message.endswith("Connection refused")


def test_root_question_is_one_zero_octet() -> None:
    assert question(".", 2) == b"\0\x00\x02\x00\x01"


def test_keepalived_dns_check_converts() -> None:
    from halo_tool_convert import convert_text

    result = convert_text(
        "virtual_server 192.0.2.10 53 {\n  protocol UDP\n"
        "  real_server 192.0.2.21 53 {\n    DNS_CHECK {\n      type aaaa\n"
        "      name www.example.com\n    }\n  }\n}\n",
        config_id="x",
    )
    for line in ("type: dns", "query_type: AAAA", "query_name: www.example.com", "retry: 3"):
        assert line in result.yaml, result.yaml
    assert not result.warnings and not result.unsupported
