"""The smtp checker against a real SMTP server on loopback (aiosmtpd), a server that
refuses with 554, one that is not SMTP and a closed port; and its conversion from
keepalived's SMTP_CHECK."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from halo_core.plugin_api import CheckResult
from halo_tool_lab.testing import probe_check

aiosmtpd = pytest.importorskip("aiosmtpd.controller")


async def probe(text: str) -> CheckResult:
    return await probe_check(f"checks:\n  c: {text}\n")


class Seen:
    def __init__(self) -> None:
        self.helo: list[str] = []

    async def handle_HELO(
        self, server: object, session: object, envelope: object, name: str
    ) -> str:
        self.helo.append(name)
        session.host_name = name  # type: ignore[attr-defined]
        return "250 pleased to meet you"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Seen]]:
    seen = Seen()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    controller = aiosmtpd.Controller(seen, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, seen
    controller.stop()


async def test_a_real_smtp_server(smtp_server: tuple[int, Seen]) -> None:
    port, seen = smtp_server
    text = f"{{type: smtp, connect_ip: 127.0.0.1, connect_port: {port}, helo_name: lb1.example}}"
    result = await probe(text)
    assert result.ok and result.message == f"127.0.0.1:{port}: greeting and HELO answered"
    assert seen.helo == ["lb1.example"]


async def serve(greeting: bytes) -> tuple[asyncio.Server, int]:
    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(talk, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_refusals_and_strangers() -> None:
    server, port = await serve(b"554-no service\r\n554 go away\r\n")
    result = await probe(f"{{type: smtp, connect_ip: 127.0.0.1, connect_port: {port}}}")
    assert not result.ok and result.message == f"127.0.0.1:{port}: greeting 554 go away"
    server.close()
    server, port = await serve(b"SSH-2.0-OpenSSH\r\n")
    result = await probe(f"{{type: smtp, connect_ip: 127.0.0.1, connect_port: {port}}}")
    assert not result.ok and "not an SMTP reply: 'SSH-2.0-OpenSSH'" in result.message
    server.close()
    await server.wait_closed()
    result = await probe(f"{{type: smtp, connect_ip: 127.0.0.1, connect_port: {port}}}")
    assert not result.ok and result.message.endswith("Connection refused")


def test_keepalived_smtp_check_converts() -> None:
    from halo_tool_convert import convert_text

    result = convert_text(
        "virtual_server 192.0.2.10 25 {\n"
        "  real_server 192.0.2.21 25 {\n    SMTP_CHECK {\n      connect_timeout 3\n"
        "      helo_name mail.example\n      host {\n        connect_ip 192.0.2.22\n"
        "      }\n    }\n  }\n}\n",
        config_id="x",
    )
    for line in ("type: smtp", "helo_name: mail.example", "timeout: 3"):
        assert line in result.yaml, result.yaml
    assert [r.keyword for r in result.unsupported] == ["host"]
