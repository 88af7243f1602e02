"""The webhook notifier against a real aiohttp server on 127.0.0.1: the versioned payload,
the HMAC signature, retries after 5xx and time-outs, giving up, templates for chat
services, and secrets that never reach the logs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from halo_core import plugins
from halo_core.config import ConfigError, load_text
from halo_core.events import CheckResultEvent, SyncGroupStateChanged
from halo_lib_eventfields import Secret
from halo_notifier_webhook.plugin import WebhookNotifierConfig
from halo_notifier_webhook.runtime import PAYLOAD_VERSION, WebhookNotifier, payload
from halo_tool_lab.testing import free_port, make_context, vrrp

SECRET = "hmac-Key-0f-halo"
TOKEN = "T0KEN-in-the-path"


@dataclass
class Request:
    time: float
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An aiohttp app answering with the next scripted (status, delay, headers), then 200."""

    port: int = 0
    requests: list[Request] = field(default_factory=list)
    script: deque[tuple[int, float, dict[str, str]]] = field(default_factory=deque)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            Request(time.monotonic(), request.path, dict(request.headers), await request.read())
        )
        status, delay, headers = self.script.popleft() if self.script else (200, 0.0, {})
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=status, text="ok", headers=headers)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    r.port = runner.addresses[0][1]
    yield r
    await runner.cleanup()


def webhook(url: str, **options: Any) -> WebhookNotifier:
    options.setdefault("retry_delay", 0.01)
    options.setdefault("timeout", 2.0)
    cfg = WebhookNotifierConfig(url=options.pop("url_secret", None) or _secret(url), **options)
    return WebhookNotifier(cfg, make_context("hook"))


def _secret(value: Any) -> Secret:
    return Secret.parse(value)


async def test_payload_signature_and_headers(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "hook.key"
    key.write_text(SECRET + "\n")  # the final newline is not part of the secret
    monkeypatch.setenv("HALO_TEST_TOKEN", "Bearer abc")
    p = plugins.load()
    text = f"""
notifiers:
  hook:
    type: webhook
    url: {receiver.url()}
    secret: {{file: {key}}}
    headers:
      Authorization: {{env: HALO_TEST_TOKEN}}
      X-Team: ops
"""
    cfg = load_text(text, "t.yaml", p).model.notifiers["hook"].config
    n = WebhookNotifier(cfg, make_context("hook"))
    event = vrrp("MASTER", old="BACKUP", priority=150, group="G1", reason="master down timer")
    await n.notify(event)
    (req,) = receiver.requests
    expected = "sha256=" + hmac.new(SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Halo-Signature-256"] == expected
    assert req.headers["Authorization"] == "Bearer abc"
    assert req.headers["X-Team"] == "ops"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["X-Halo-Event"] == "vrrp_state"
    assert req.headers["User-Agent"].startswith("halo/")
    body = req.json()
    assert req.headers["X-Halo-Delivery"] == body["id"]
    assert body == {
        "version": 1,
        "id": body["id"],
        "kind": "vrrp_state",
        "router_id": "lb1",
        "notifier": "hook",
        "time": body["time"],
        "timestamp": event.time,
        "name": "VI_1",
        "state": "MASTER",
        "summary": "VRRP Instance VI_1 - Entering MASTER state",
        "detail": "=> VRRP Instance is now owning VRRP VIPs <=",
        "data": {
            "instance": "VI_1",
            "old": "BACKUP",
            "new": "MASTER",
            "priority": 150,
            "reason": "master down timer",
            "group": "G1",
            "interface": "eth0",
            "vrid": 51,
            "removed": False,
        },
    }
    assert body["time"].endswith("+00:00")
    assert n.status() == {"events": 1, "sent": 1, "retried": 0, "failed": 0, "last_error": None}
    await n.close()


async def test_retries_after_500s_with_the_same_delivery(receiver: Receiver) -> None:
    receiver.script.extend([(500, 0, {}), (503, 0, {})])
    n = webhook(receiver.url(), secret=_secret(SECRET))
    await n.notify(vrrp("BACKUP"))
    assert len(receiver.requests) == 3
    bodies = {r.body for r in receiver.requests}
    ids = {r.headers["X-Halo-Delivery"] for r in receiver.requests}
    assert len(bodies) == 1 and len(ids) == 1  # receivers can de-duplicate
    status = n.status()
    assert (status["sent"], status["retried"], status["failed"]) == (1, 2, 0)
    assert status["last_error"] == "HTTP 503"
    await n.close()


async def test_gives_up_after_the_configured_attempts(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script.extend([(500, 0, {})] * 10)
    n = webhook(receiver.url(f"/hooks/{TOKEN}"), attempts=3, secret=_secret(SECRET))
    with caplog.at_level(logging.DEBUG):
        await n.notify(vrrp("FAULT"))
    assert len(receiver.requests) == 3
    assert n.status()["failed"] == 1 and n.status()["retried"] == 2
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("halo"))
    assert "gave up on vrrp_state (VRRP Instance VI_1 - Entering FAULT state)" in ours
    assert "after 3 attempts: HTTP 500" in ours
    # Neither the signing key nor a token in the URL's path is ever logged.
    assert SECRET not in ours and TOKEN not in ours
    assert f"http://127.0.0.1:{receiver.port}:" in ours
    await n.close()


async def test_client_errors_are_not_retried(receiver: Receiver) -> None:
    receiver.script.append((400, 0, {}))
    n = webhook(receiver.url())
    await n.notify(vrrp("MASTER"))
    assert len(receiver.requests) == 1
    assert (n.status()["failed"], n.status()["last_error"]) == (1, "HTTP 400")
    await n.close()


async def test_time_out_and_retry_after(receiver: Receiver) -> None:
    receiver.script.extend([(200, 1.0, {}), (429, 0, {"Retry-After": "0.3"})])
    n = webhook(receiver.url(), timeout=0.2)
    await n.notify(vrrp("MASTER"))
    first, second, third = receiver.requests
    assert 0.15 < second.time - first.time < 0.9  # the first request timed out
    assert third.time - second.time >= 0.29  # Retry-After beat the 20 ms back-off
    assert n.status()["sent"] == 1 and n.status()["retried"] == 2
    await n.close()


async def test_https_receiver_verified_and_connection_reused(tmp_path: Path) -> None:
    """TLS with a CA file, without verification, and refused with the system's CAs; one
    connection carries the deliveries of one notifier."""
    import ssl

    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    r = Receiver()
    peers: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        peers.append(peer[1] if peer else 0)
        return await r.handle(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx).start()
    r.port = runner.addresses[0][1]
    url = r.url().replace("http:", "https:")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    try:
        verified = webhook(url, ca_file=str(ca_file))
        for state in ("MASTER", "BACKUP"):
            await verified.notify(vrrp(state))
        assert verified.status()["sent"] == 2 and len(set(peers)) == 1
        await verified.close()
        unverified = webhook(url, tls_verify=False)
        await unverified.notify(vrrp("MASTER"))
        assert unverified.status()["sent"] == 1
        await unverified.close()
        system = webhook(url, attempts=1)
        await system.notify(vrrp("MASTER"))
        assert (system.status()["last_error"] or "").startswith("certificate rejected: ")
        await system.close()
    finally:
        await runner.cleanup()


async def test_unreachable_receiver() -> None:
    port = free_port()
    n = webhook(f"http://127.0.0.1:{port}/", attempts=2)
    await n.notify(vrrp("MASTER"))
    assert n.status()["failed"] == 1
    assert n.status()["last_error"] == f"connect to 127.0.0.1:{port}: Connection refused"
    await n.close()


async def test_chat_template(receiver: Receiver) -> None:
    template = {
        "text": '[${router_id}] ${summary}: "${reason}"',
        "priority": "${priority}",
        "members": "${members}",
        "blocks": [{"type": "mrkdwn", "text": "*${name}* is now ${state}"}],
    }
    n = webhook(receiver.url(), template=template)
    await n.notify(vrrp("BACKUP", priority=90, reason='saw "lb2" with priority 200'))
    await n.notify(
        SyncGroupStateChanged(
            group="G1", old="BACKUP", new="MASTER", members=("VI_1", "VI_2"), reason="r"
        )
    )
    first, second = (r.json() for r in receiver.requests)
    assert first == {
        "text": '[lb1] VRRP Instance VI_1 - Entering BACKUP state: "saw "lb2" with priority 200"',
        "priority": 90,  # a lone ${field} keeps its JSON type
        "members": None,
        "blocks": [{"type": "mrkdwn", "text": "*VI_1* is now BACKUP"}],
    }
    assert second["members"] == ["VI_1", "VI_2"]
    await n.close()


async def test_text_template(receiver: Receiver) -> None:
    n = webhook(receiver.url(), template="${router_id} ${name} ${state}\n")
    await n.notify(vrrp("MASTER"))
    (req,) = receiver.requests
    assert (req.body, req.headers["Content-Type"]) == (b"lb1 VI_1 MASTER\n", "text/plain")
    await n.close()


async def test_default_events_and_order_per_instance(receiver: Receiver) -> None:
    """No request per check probe; one instance's events arrive in order even when the
    first delivery is slow, because the bus hands them over one at a time."""
    receiver.script.append((200, 0.3, {}))
    n = webhook(receiver.url())
    bus = make_context().bus

    async def deliver(event: Any) -> None:
        await n.notify(event)

    bus.subscribe(deliver, timeout=n.timeout)
    bus.publish(vrrp("BACKUP", old="MASTER", reason="first"))
    bus.publish(CheckResultEvent(check="web", ok=True, up=True))
    bus.publish(vrrp("MASTER", reason="second"))
    await bus.drain(timeout=5)
    assert [r.json()["data"]["reason"] for r in receiver.requests] == ["first", "second"]
    await n.close()


def test_schema() -> None:
    p = plugins.load()
    ok = (
        "notifiers:\n"
        "  chat:\n"
        "    type: webhook\n"
        "    url: {env: CHAT_WEBHOOK_URL}\n"
        "    hmac_secret: {file: /etc/halo/chat.key}\n"
        "    backoff: 500ms\n"
        "    template: {text: '${summary}'}\n"
    )
    cfg = load_text(ok, "t.yaml", p).model.notifiers["chat"].config
    assert (repr(cfg.url), repr(cfg.secret)) == (
        "Secret(env='CHAT_WEBHOOK_URL')",
        "Secret(file='/etc/halo/chat.key')",
    )
    assert cfg.retry_delay == 0.5
    bad = (
        "notifiers:\n"
        "  chat:\n"
        "    type: webhook\n"
        "    url: ftp://example.com/x\n"
        "    headers: {'Bad Header': x}\n"
        "    template: {blocks: [{text: '${stat}'}]}\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_text(bad, "t.yaml", p)
    assert exc.value.lines == [
        "t.yaml:4:10: notifiers.chat.url: must be an http:// or https:// URL",
        "t.yaml:5:29: notifiers.chat.headers.Bad Header: is not an HTTP header name",
        "t.yaml:6:32: notifiers.chat.template.blocks[0].text: unknown field 'stat' in template"
        " (did you mean 'state'?)",
    ]


def test_url_from_the_environment_is_checked_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HALO_TEST_URL", "not a url")
    with pytest.raises(ValueError, match="url must be an http"):
        webhook("", url_secret=_secret({"env": "HALO_TEST_URL"}))
    monkeypatch.delenv("HALO_TEST_URL")
    with pytest.raises(ValueError, match="HALO_TEST_URL is not set"):
        webhook("", url_secret=_secret({"env": "HALO_TEST_URL"}))


def test_documented_payload_matches_the_real_one() -> None:
    """docs/events.md shows version 1 with exactly the keys halo sends."""
    doc = (Path(__file__).resolve().parents[4] / "docs" / "events.md").read_text()
    example = json.loads(doc.split("```json\n", 1)[1].split("```", 1)[0])
    real = payload(vrrp("MASTER"), router_id="lb1", notifier="ops_hook", delivery="x")
    assert example["version"] == real["version"] == PAYLOAD_VERSION == 1
    assert list(example) == list(real)
    assert list(example["data"]) == list(real["data"])
