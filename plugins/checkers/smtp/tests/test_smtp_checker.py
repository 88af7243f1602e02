"""The smtp checker against a real SMTP server on loopback (aiosmtpd), a server that
refuses with 554, one that is not SMTP and a closed port; and its conversion from
keepalived's SMTP_CHECK."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

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


def start_smtp(seen: Seen) -> tuple[Any, int]:
    """An aiosmtpd server on a free loopback port: (its controller, the port)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    controller = aiosmtpd.Controller(seen, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, port


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Seen]]:
    seen = Seen()
    controller, port = start_smtp(seen)
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
        "      helo_name mail.example\n    }\n  }\n}\n",
        config_id="x",
    )
    for line in ("type: smtp", "helo_name: mail.example", "timeout: 3"):
        assert line in result.yaml, result.yaml
    assert result.unsupported == []


HOSTS = """virtual_server 192.0.2.10 25 {{
  real_server 192.0.2.21 25 {{
    SMTP_CHECK {{
      helo_name lb1.example
      retry 0
      {own}
      host {{
        connect_ip 127.0.0.1
        connect_port {port1}
      }}
      host {{
        connect_ip 127.0.0.1
        connect_port {port2}
        connect_timeout 2
      }}
    }}
  }}
}}
"""


async def test_host_blocks_become_one_check_each_against_real_servers(
    smtp_server: tuple[int, Seen],
) -> None:
    """keepalived 2.2.7 still reads SMTP_CHECK's host blocks and runs one checker per host
    (the check's own connection too, when it has one): so does the conversion, and the
    checks it writes probe the real aiosmtpd servers they name."""
    from halo_core import plugins
    from halo_core.plugin_api import CheckTarget
    from halo_tool_convert import convert_text
    from halo_tool_lab.testing import load_config

    port1, seen = smtp_server
    second = Seen()
    controller, port2 = start_smtp(second)
    try:
        for own, count in (("", 2), ("connect_ip 127.0.0.1\n      connect_port 1", 3)):
            result = convert_text(HOSTS.format(own=own, port1=port1, port2=port2), config_id="x")
            assert result.unsupported == [] and result.warnings == []
            assert [n.keyword for n in result.notes].count("host") == 2
            rs = load_config(result.yaml).model.virtual_servers[0].real_servers[0]
            assert len(rs.checks) == count, result.yaml
            configs = [c.config for c in rs.checks]
            assert all(c.helo_name == "lb1.example" for c in configs)
            assert [(c.connect_port, c.timeout) for c in configs[-2:]] == [
                (port1, 5),  # keepalived's default connect_timeout
                (port2, 2),
            ]
            factory = plugins.load().type("checker", "smtp").load_factory()
            outcomes = [
                (await factory(c, CheckTarget("c", rs.address, 25)).check()).ok for c in configs
            ]
            # the check's own connection (port 1) fails; each host's server answers
            assert outcomes == [False] * (count - 2) + [True, True]
        assert seen.helo and second.helo == seen.helo
    finally:
        controller.stop()
