"""The udp checker against real sockets on loopback: an echo server, a silent one, a closed
port (the kernel's ICMP port unreachable), reply patterns and lengths; and its
conversion from keepalived's UDP_CHECK."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from halo_core.plugin_api import CheckResult
from halo_tool_lab.testing import probe_check


async def probe(text: str) -> CheckResult:
    return await probe_check(f"checks:\n  c: {text}\n")


class Echo(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.seen.append(data)
        self.transport.sendto(b"PONG" + data, addr)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A bound UDP socket that never answers (so no ICMP error either)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()[1]
    s.close()


def closed_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


async def test_reply_required_and_matched() -> None:
    loop = asyncio.get_running_loop()
    transport, echo = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    base = f"type: udp, connect_ip: 127.0.0.1, connect_port: {port}, payload: '0102'"
    try:
        result = await probe(f"{{{base}, require_reply: true}}")
        assert result.ok and result.message == f"127.0.0.1:{port} replied (6 octets)"
        assert echo.seen == [b"\x01\x02"]
        assert (await probe(f"{{{base}, reply: '504f4e47'}}")).ok  # "PONG"
        result = await probe(f"{{{base}, reply: 'ffff'}}")
        assert not result.ok and result.message.endswith("the reply does not match")
        result = await probe(f"{{{base}, require_reply: true, max_reply_length: 4}}")
        assert not result.ok and result.message.endswith("a reply of 6 octets")
    finally:
        transport.close()


async def test_without_reply_silence_is_success_and_icmp_is_failure(silent_port: int) -> None:
    base = "type: udp, connect_ip: 127.0.0.1, timeout: 0.4s"
    result = await probe(f"{{{base}, connect_port: {silent_port}}}")
    assert result.ok and result.message == f"no ICMP error from 127.0.0.1:{silent_port}"
    port = closed_port()
    result = await probe(f"{{{base}, connect_port: {port}}}")
    assert not result.ok and result.message == f"127.0.0.1:{port}: Connection refused"


async def test_reply_required_from_a_silent_server_times_out(silent_port: int) -> None:
    text = f"{{type: udp, connect_ip: 127.0.0.1, connect_port: {silent_port}, timeout: 0.2s"
    result = await probe(text + ", require_reply: true}")
    assert not result.ok and "timed out" in result.message


def test_schema_errors() -> None:
    from halo_tool_lab.testing import config_errors

    head = "checks:\n  c:\n    type: udp\n"
    assert config_errors(head + "    payload: '0g'\n") == [
        "f.yaml:4:14: checks.c.payload: must be hexadecimal octets, e.g. 0a1b2c",
    ]
    assert config_errors(head + "    min_reply_length: 5\n    max_reply_length: 4\n") == [
        "f.yaml:5:23: checks.c.max_reply_length: is shorter than min_reply_length",
    ]


def test_keepalived_udp_check_converts() -> None:
    from halo_tool_convert import convert_text

    result = convert_text(
        "virtual_server 192.0.2.10 53 {\n  protocol UDP\n"
        "  real_server 192.0.2.21 53 {\n    UDP_CHECK {\n      connect_timeout 2\n"
        "      payload 0a0B\n      require_reply 0c0d\n      min_reply_length 2\n"
        "    }\n  }\n}\n",
        config_id="x",
    )
    assert "type: udp" in result.yaml
    for line in ("payload: 0a0b", "reply: 0c0d", "min_reply_length: 2", "timeout: 2"):
        assert line in result.yaml, result.yaml
    assert not result.warnings and not result.unsupported
