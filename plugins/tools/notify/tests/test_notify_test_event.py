"""`halo notify --test NOTIFIER`, driven through the real `halo` command against real servers
on loopback: an aiohttp server, an aiosmtpd SMTP server, scripts."""

from __future__ import annotations

from pathlib import Path

from aiosmtpd.controller import Controller

from halo_tool_lab.testing import HttpServer, free_port, run_halo

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
    r = run_halo("notify", "-c", str(config), "--test", "hook")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "TEST event" in r.stdout and "VI_1 BACKUP -> MASTER" in r.stdout
    assert "notifier hook (script): delivered in " in r.stdout
    assert out.read_text().startswith("VI_1 MASTER 150 TEST: sent by halo notify --test")
    r = run_halo("notify", "-c", str(config), "--test", "hook", "--instance", "VI_2")
    assert r.returncode == 0 and out.read_text().startswith("VI_2 MASTER 100 ")
    r = run_halo("notify", "-c", str(config), "--test", "hook", "--state", "BACKUP")
    assert r.returncode == 1 and "nothing sent" in r.stdout
    r = run_halo("notify", "-c", str(config), "--test", "failing")
    assert r.returncode == 1 and "FAILED" in r.stdout and "exit status 4" in r.stdout, r.stdout
    r = run_halo("notify", "-c", str(config), "--test", "hok")
    assert r.returncode == 2 and "did you mean 'hook'?" in r.stdout
    r = run_halo("notify", "-c", str(config), "--test", "hook", "--instance", "VI_9")
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
        r = run_halo("notify", "-c", str(config), "--test", "mail")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "notifier mail (email): delivered in " in r.stdout
        assert len(inbox.messages) == 1
        assert "Subject: [lb1] VRRP Instance VI_1 - Entering MASTER state" in inbox.messages[0]
        assert "TEST: sent by halo notify --test" in inbox.messages[0]
        r = run_halo("notify", "-c", str(config), "--test", "nomail")
        assert r.returncode == 1 and "notifier nomail (email): FAILED after " in r.stdout
        r = run_halo("notify", "-c", str(config), "--test", "hook")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "would drop this event" in r.stdout  # states: [BACKUP]
        assert [(p["name"], p["state"]) for p in http_server.posts] == [("VI_1", "MASTER")]
    finally:
        controller.stop()
