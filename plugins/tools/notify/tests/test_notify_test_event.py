"""`halo notify --test NOTIFIER`, driven through the real `halo` command against real servers
on loopback: an aiohttp server, an aiosmtpd SMTP server, scripts."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from halo_tool_lab.testing import free_port

HALO = str(Path(sys.executable).parent / "halo")


def halo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HALO, *args], capture_output=True, text=True, timeout=60)


class HttpServer:
    """An aiohttp server on loopback, in a thread of its own (the `halo` under test is
    another process): answers /health with 200 and /broken with 503, records POSTs."""

    def __init__(self) -> None:
        self.posts: list[dict[str, object]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _start(self) -> None:
        async def health(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        async def broken(request: web.Request) -> web.Response:
            return web.Response(status=503, text="down for maintenance")

        async def hook(request: web.Request) -> web.Response:
            self.posts.append(await request.json())
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/health", health)
        app.router.add_get("/broken", broken)
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def __enter__(self) -> HttpServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    with HttpServer() as server:
        yield server


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


def test_notify_test_script(tmp_path: Path) -> None:
    out = tmp_path / "hook.out"
    config = tmp_path / "halo.yaml"
    config.write_text(
        VRRP
        + f"""
  VI_2:
    interface: eth1
    virtual_router_id: 52
    virtual_ipaddress: [192.0.2.17]
notifiers:
  hook:
    type: script
    script_user: root
    notify_master: >-
      /bin/sh -c 'echo "$HALO_INSTANCE $HALO_STATE $HALO_PRIORITY $HALO_REASON" > {out}'
  failing:
    type: script
    script_user: root
    notify_master: /bin/sh -c 'echo disk full >&2; exit 4'
"""
    )
    r = halo("notify", "-c", str(config), "--test", "hook")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "TEST event" in r.stdout and "VI_1 BACKUP -> MASTER" in r.stdout
    assert "notifier hook (script): delivered in " in r.stdout
    assert out.read_text().startswith("VI_1 MASTER 150 TEST: sent by halo notify --test")
    r = halo("notify", "-c", str(config), "--test", "hook", "--instance", "VI_2")
    assert r.returncode == 0 and out.read_text().startswith("VI_2 MASTER 100 ")
    r = halo("notify", "-c", str(config), "--test", "hook", "--state", "BACKUP")
    assert r.returncode == 1 and "nothing sent" in r.stdout
    r = halo("notify", "-c", str(config), "--test", "failing")
    assert r.returncode == 1 and "FAILED" in r.stdout and "exit status 4" in r.stdout, r.stdout
    r = halo("notify", "-c", str(config), "--test", "hok")
    assert r.returncode == 2 and "did you mean 'hook'?" in r.stdout
    r = halo("notify", "-c", str(config), "--test", "hook", "--instance", "VI_9")
    assert r.returncode == 2 and "unknown VRRP instance 'VI_9'" in r.stdout


class Inbox:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(getattr(envelope, "content", b"").decode())
        return "250 OK"


def test_notify_test_email_and_webhook(tmp_path: Path, http_server: HttpServer) -> None:
    inbox = Inbox()
    smtp_port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        config = tmp_path / "halo.yaml"
        config.write_text(
            "global: {router_id: lb1}\n"
            + VRRP
            + f"""
notifiers:
  mail:
    type: email
    smtp_server: 127.0.0.1
    smtp_port: {smtp_port}
    notification_email: [ops@example.com]
    coalesce_window: 1h
  nomail:
    type: email
    smtp_server: 127.0.0.1
    smtp_port: {free_port()}
    notification_email: [ops@example.com]
  hook:
    type: webhook
    url: http://127.0.0.1:{http_server.port}/hook
    states: [BACKUP]
"""
        )
        r = halo("notify", "-c", str(config), "--test", "mail")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "notifier mail (email): delivered in " in r.stdout
        assert len(inbox.messages) == 1
        assert "Subject: [lb1] VRRP Instance VI_1 - Entering MASTER state" in inbox.messages[0]
        assert "TEST: sent by halo notify --test" in inbox.messages[0]
        r = halo("notify", "-c", str(config), "--test", "nomail")
        assert r.returncode == 1 and "notifier nomail (email): FAILED after " in r.stdout
        r = halo("notify", "-c", str(config), "--test", "hook")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "would drop this event" in r.stdout  # states: [BACKUP]
        assert [(p["name"], p["state"]) for p in http_server.posts] == [("VI_1", "MASTER")]
    finally:
        controller.stop()
