"""The notifiers inside a real Daemon (no VRRP): built from YAML, filtered, flushed on stop;
and ``halo check`` stays light with all three configured."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from halo_core import plugins
from halo_core.config import load_text
from halo_core.daemon import Daemon
from halo_tool_lab.testing import eventually, free_port, vrrp

ROOT = Path(__file__).resolve().parents[2]


class Inbox:
    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = getattr(envelope, "content", b"")
        for line in content.decode().splitlines():
            if line.startswith("Subject: "):
                self.subjects.append(line[len("Subject: ") :])
        return "250 OK"


async def test_daemon_wires_filters_and_flushes_on_stop(tmp_path: Path) -> None:
    got: list[dict[str, object]] = []

    async def receive(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    inbox = Inbox()
    smtp_port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        # the filters name instances of the configuration, which halo check validates;
        # the daemon then runs without them, so that the test needs no interface
        text = f"""
global: {{router_id: lb1}}
vrrp_instances:
  VI_1: {{interface: eth0, virtual_router_id: 51, virtual_ipaddress: [192.0.2.16]}}
  VI_2: {{interface: eth0, virtual_router_id: 52, virtual_ipaddress: [192.0.2.17]}}
notifiers:
  hook:
    type: webhook
    url: http://127.0.0.1:{runner.addresses[0][1]}/hook
    instances: [VI_1]
    states: [MASTER]
  mail:
    type: email
    smtp_server: 127.0.0.1
    smtp_port: {smtp_port}
    notification_email: [ops@example.com]
    coalesce_window: 1h
"""
        p = plugins.load()
        cfg = load_text(text, str(tmp_path / "halo.yaml"), p)
        cfg = replace(cfg, model=replace(cfg.model, vrrp_instances={}))
        daemon = Daemon(cfg, p)
        await daemon.start()
        assert set(daemon.notifiers) == {"hook", "mail"}
        daemon.bus.publish(vrrp("BACKUP", instance="VI_1"))
        daemon.bus.publish(vrrp("MASTER", instance="VI_2"))
        daemon.bus.publish(vrrp("MASTER", instance="VI_1"))
        await eventually(lambda: len(got) == 1)
        assert (got[0]["name"], got[0]["state"]) == ("VI_1", "MASTER")
        assert inbox.subjects == []  # held by the 1 h window...
        await daemon.stop()
        # ...and sent when the daemon stops
        assert inbox.subjects == [
            "[lb1] 3 events, latest: VRRP Instance VI_1 - Entering MASTER state"
        ]
    finally:
        controller.stop()
        await runner.cleanup()


def test_halo_check_does_not_import_the_network_libraries(tmp_path: Path) -> None:
    config = tmp_path / "halo.yaml"
    config.write_text(
        "notifiers:\n"
        "  mail: {type: email, smtp_server: 127.0.0.1, notification_email: [a@example.com]}\n"
        "  hook: {type: webhook, url: {env: HALO_UNSET_URL}, secret: {env: HALO_UNSET}}\n"
        "  hooks: {type: script, notify_master: /bin/true}\n"
    )
    probe = (
        "import sys\n"
        "from halo_core import cli\n"
        f"assert cli.main(['check', '-c', {str(config)!r}]) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'aiosmtplib')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-1] == "[]"


@pytest.mark.parametrize("name", ["script", "email", "webhook"])
def test_readme_examples_are_valid(name: str) -> None:
    readme = ROOT / "plugins" / "notifiers" / name / "README.md"
    blocks = [
        b.split("```", 1)[0]
        for b in readme.read_text().split("```yaml\n")[1:]
        if "\nnotifiers:" in "\n" + b.split("```", 1)[0]
    ]
    assert blocks
    p = plugins.load()
    for block in blocks:
        load_text(block, str(readme), p)


def test_filter_states_are_the_states_events_carry() -> None:
    """``states:`` is validated against FILTER_STATES: every state a VRRP event can carry
    (INITIALIZE is published as STOP) and a check's UP/DOWN, and nothing else."""
    from halo_core.plugin_api import FILTER_STATES
    from halo_core.vrrp.engine import STOP
    from halo_core.vrrp.fsm import State

    published = {s.value for s in State if s is not State.INITIALIZE} | {STOP}
    assert set(FILTER_STATES) == published | {"UP", "DOWN"}
