"""`halo check --run CHECK`, driven through the real `halo` command against real servers on
loopback: a TCP listener, an aiohttp server, scripts. (`halo notify --test` is tested beside
halo-tool-notify.)"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from halo_tool_lab.testing import HttpServer, free_port, run_halo


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on loopback that accepts connections (the kernel completes them)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


VRRP = """
vrrp_instances:
  VI_1:
    interface: eth0
    virtual_router_id: 51
    priority: 150
    virtual_ipaddress: [192.0.2.16]
"""


def test_check_run_tcp_script_http(tmp_path: Path, listener: int, http_server: HttpServer) -> None:
    closed = free_port()
    config = tmp_path / "halo.yaml"
    config.write_text(
        VRRP
        + f"""
checks:
  open: {{type: tcp, connect_ip: 127.0.0.1, connect_port: {listener}}}
  closed: {{type: tcp, connect_ip: 127.0.0.1, connect_port: {closed}, retry: 1,
            delay_before_retry: 0.1s}}
  script_ok: {{type: script, script: /bin/true}}
  script_bad: {{type: script, script: "/bin/sh -c 'exit 3'"}}
  web: {{type: http, connect_ip: 127.0.0.1, connect_port: {http_server.port},
         url: [{{path: /health}}]}}
  web_broken: {{type: http, connect_ip: 127.0.0.1, connect_port: {http_server.port},
                url: [{{path: /broken}}], timeout: 2s}}
"""
    )
    passing = {"open": "tcp", "script_ok": "script", "web": "http"}
    for name, kind in passing.items():
        r = run_halo("check", "-c", str(config), "--run", name)
        assert r.returncode == 0, (name, r.stdout, r.stderr)
        assert r.stdout.startswith(f"check {name} ({kind}): passed in "), r.stdout
    r = run_halo("check", "-c", str(config), "--run", "closed")
    assert r.returncode == 1, r.stdout
    assert "check closed (tcp): FAILED in " in r.stdout and "(2 attempts)" in r.stdout
    assert f"reason: connect to 127.0.0.1:{closed}: Connection refused" in r.stdout
    r = run_halo("check", "-c", str(config), "--run", "script_bad")
    assert r.returncode == 1 and "FAILED" in r.stdout and "3" in r.stdout, r.stdout
    r = run_halo("check", "-c", str(config), "--run", "web_broken")
    assert r.returncode == 1 and "503" in r.stdout, r.stdout


def test_check_run_unknown_name_and_invalid_config(tmp_path: Path) -> None:
    config = tmp_path / "halo.yaml"
    config.write_text(VRRP + "checks:\n  web: {type: script, script: /bin/true}\n")
    r = run_halo("check", "-c", str(config), "--run", "wbe")
    assert r.returncode == 2
    assert (
        r.stdout.strip() == "halo check: unknown check 'wbe' (did you mean 'web'? configured: web)"
    )
    config.write_text(VRRP + "checks:\n  web: {type: script, script: /bin/true, fall: 0}\n")
    r = run_halo("check", "-c", str(config), "--run", "web")
    assert r.returncode == 2 and f"{config}:" in r.stderr and not r.stdout


class Inbox:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(getattr(envelope, "content", b"").decode())
        return "250 OK"
