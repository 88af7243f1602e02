"""The email notifier against real aiosmtpd servers on 127.0.0.1 (plain, STARTTLS with AUTH,
implicit TLS), and its coalescing, rate limiting and retries on a fake clock."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from halo_core import plugins
from halo_core.config import ConfigError, load_text
from halo_core.events import CheckResultEvent, RealServerChanged
from halo_notifier_email.plugin import EmailNotifierConfig
from halo_notifier_email.runtime import EmailNotifier
from halo_tool_lab.clock import FakeClock
from halo_tool_lab.testing import eventually, free_port, make_context, vrrp

PASSWORD = "s3cret-Pa55"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: Message
    tls: bool
    login: bytes | None


@dataclass
class Inbox:
    """aiosmtpd handler keeping what it receives; ``nobody@`` recipients are refused (550)."""

    messages: list[Received] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        auth = session.auth_data
        login = auth.login if isinstance(auth, LoginPassword) else None
        # STARTTLS or implicit TLS: either way the transport is an SSL one now
        tls = server.transport.get_extra_info("ssl_object") is not None
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), msg, tls, login))
        return "250 OK"


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        b"halo",
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, auth_data=data if ok else None)


@dataclass
class Pki:
    ca_file: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    path = tmp_path_factory.mktemp("pki") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return Pki(path, ctx)


ServerFactory = Callable[..., tuple[Inbox, int]]


@pytest.fixture
def smtp() -> Iterator[ServerFactory]:
    """Factory: ``smtp(port=None, **controller_options) -> (inbox, port)``; stopped after."""
    controllers: list[Controller] = []

    def start(port: int | None = None, **options: Any) -> tuple[Inbox, int]:
        inbox = Inbox()
        port = port or free_port()
        c = Controller(inbox, hostname="127.0.0.1", port=port, **options)
        c.start()
        controllers.append(c)
        return inbox, port

    yield start
    for c in controllers:
        c.stop()


def mailer(port: int, clock: Any = None, **options: Any) -> EmailNotifier:
    options.setdefault("notification_email", ["ops@example.com", "oncall@example.com"])
    options.setdefault("notification_email_from", "halo@lb1.example.com")
    options.setdefault("coalesce_window", 0.0)
    options.setdefault("smtp_connect_timeout", 2.0)
    options.setdefault("retry_delay", 0.05)
    cfg = EmailNotifierConfig(smtp_server="127.0.0.1", smtp_port=port, **options)
    return EmailNotifier(cfg, make_context("mail", clock=clock))


# --------------------------------------------------------------------------- real servers


async def test_plain_smtp_message_and_headers(smtp: ServerFactory) -> None:
    inbox, port = smtp()
    n = mailer(port)
    await n.notify(vrrp("MASTER", old="BACKUP", priority=150, reason="master down timer"))
    await eventually(lambda: n.status()["sent"] == 1)
    got = inbox.messages[0]
    assert got.mail_from == "halo@lb1.example.com"
    assert got.rcpt_tos == ["ops@example.com", "oncall@example.com"]
    assert not got.tls
    msg = got.message
    assert msg["Subject"] == "[lb1] VRRP Instance VI_1 - Entering MASTER state"
    assert msg["From"] == "halo@lb1.example.com"
    assert msg["To"] == "ops@example.com, oncall@example.com"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Date"] and msg["Message-ID"]
    assert isinstance(msg, EmailMessage)
    body = msg.get_content()
    for line in (
        "=> VRRP Instance is now owning VRRP VIPs <=",
        "router_id: lb1",
        "instance: VI_1",
        "old: BACKUP",
        "new: MASTER",
        "priority: 150",
        "reason: master down timer",
    ):
        assert line in body.splitlines(), body
    assert n.status()["sent"] == 1
    await n.close()


async def test_starttls_auth_templates_and_secret_from_env(
    smtp: ServerFactory,
    pki: Pki,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbox, port = smtp(
        tls_context=pki.server_context,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    monkeypatch.setenv("HALO_TEST_SMTP_PASSWORD", PASSWORD)
    p = plugins.load()
    text = f"""
notifiers:
  mail:
    type: email
    smtp_server: localhost
    smtp_port: {port}
    security: starttls
    ca_file: {pki.ca_file}
    username: halo
    password: {{env: HALO_TEST_SMTP_PASSWORD}}
    notification_email: [ops@example.com]
    coalesce_window: 0
    subject: "${{router_id}}: ${{instance}} ${{old}} -> ${{new}} (${{priority}})"
    body: "${{instance}} is ${{new}} on ${{router_id}} since ${{time}}: ${{reason}}"
"""
    cfg = load_text(text, "t.yaml", p).model.notifiers["mail"].config
    assert PASSWORD not in repr(cfg)
    n = EmailNotifier(cfg, make_context("mail"))
    with caplog.at_level(logging.DEBUG):
        await n.notify(vrrp("BACKUP", old="MASTER", priority=90, reason="higher priority seen"))
        await eventually(lambda: n.status()["sent"] == 1)
    got = inbox.messages[0]
    assert got.tls and got.login == b"halo"
    assert got.message["Subject"] == "lb1: VI_1 MASTER -> BACKUP (90)"
    body = got.message.get_content()
    assert body.startswith("VI_1 is BACKUP on lb1 since ")
    assert body.rstrip().endswith(": higher priority seen")
    assert PASSWORD not in caplog.text
    await n.close()


async def test_implicit_tls(smtp: ServerFactory, pki: Pki) -> None:
    inbox, port = smtp(ssl_context=pki.server_context)
    n = mailer(port, security="tls", ca_file=str(pki.ca_file))
    await n.notify(vrrp("MASTER"))
    await eventually(lambda: n.status()["sent"] == 1)
    assert inbox.messages[0].tls
    await n.close()


async def test_a_burst_of_50_changes_is_one_message(smtp: ServerFactory) -> None:
    inbox, port = smtp()
    n = mailer(port, coalesce_window=0.5)
    for i in range(50):
        new, old = ("MASTER", "BACKUP") if i % 2 == 0 else ("BACKUP", "MASTER")
        await n.notify(vrrp(new, old=old, reason=f"flap {i}"))
    await eventually(lambda: n.status()["sent"] == 1)
    await asyncio.sleep(0.3)
    assert len(inbox.messages) == 1
    msg = inbox.messages[0].message
    assert msg["Subject"] == "[lb1] 50 events, latest: VRRP Instance VI_1 - Entering BACKUP state"
    body = msg.get_content().replace("\r\n", "\n")
    assert body.startswith("50 events on lb1, oldest first:\n")
    assert body.count("reason: flap") == 50
    assert body.index("reason: flap 0\n") < body.index("reason: flap 49\n")
    status = n.status()
    assert (status["sent"], status["coalesced"], status["events"]) == (1, 49, 50)
    await n.close()


async def test_server_down_then_up_is_delivered_after_retry(smtp: ServerFactory) -> None:
    port = free_port()
    n = mailer(port, retry_delay=0.1, retry_max_delay=0.2, retries=100)
    await n.notify(vrrp("MASTER"))
    await eventually(lambda: n.status()["retried"] >= 2)
    assert n.status()["sent"] == 0
    inbox, _ = smtp(port=port)
    await eventually(lambda: n.status()["sent"] == 1)
    assert len(inbox.messages) == 1
    status = n.status()
    assert (status["sent"], status["failed"], status["pending"]) == (1, 0, 0)
    assert "Connect" in (status["last_error"] or "") or "refused" in (status["last_error"] or "")
    await n.close()


async def test_gives_up_after_the_retries_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    n = mailer(free_port(), retries=2, retry_delay=0.01)
    with caplog.at_level(logging.WARNING, logger="halo.notifier.email"):
        await n.notify(vrrp("FAULT"))
        await eventually(lambda: n.status()["failed"] == 1)
    assert n.status()["retried"] == 2
    assert "gave up on a message about 1 events after 3 attempts" in caplog.text
    await n.close()


async def test_refused_recipient_is_not_retried(smtp: ServerFactory) -> None:
    inbox, port = smtp()
    n = mailer(port, notification_email=["nobody@example.com"])
    await n.notify(vrrp("MASTER"))
    await eventually(lambda: n.status()["failed"] == 1)
    assert n.status()["retried"] == 0
    assert "550" in (n.status()["last_error"] or "")
    assert not inbox.messages
    await n.close()


async def test_close_sends_what_is_pending(smtp: ServerFactory) -> None:
    inbox, port = smtp()
    n = mailer(port, coalesce_window=3600)
    await n.notify(vrrp("STOP", old="MASTER"))
    await n.close()
    assert len(inbox.messages) == 1
    assert inbox.messages[0].message["Subject"] == "[lb1] VRRP Instance VI_1 - Stopping"


# --------------------------------------------------------------------------- fake clock


class FakeSend:
    """Stands in for the SMTP exchange: records (time, message); fails while told to."""

    def __init__(self, clock: FakeClock, failures: int = 0) -> None:
        self.clock = clock
        self.failures = failures
        self.sent: list[tuple[float, EmailMessage]] = []
        self.attempts: list[float] = []

    async def __call__(self, message: EmailMessage) -> None:
        self.attempts.append(self.clock.now())
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("connection refused")
        self.sent.append((self.clock.now(), message))


def fake_mailer(
    clock: FakeClock, failures: int = 0, **options: Any
) -> tuple[EmailNotifier, FakeSend]:
    n = mailer(1, clock=clock, **options)
    fake = FakeSend(clock, failures)
    n._send = fake  # type: ignore[method-assign]
    return n, fake


async def test_rate_limit_holds_messages_and_merges_what_waits() -> None:
    clock = FakeClock(start=0)
    n, fake = fake_mailer(clock, coalesce_window=1, rate_limit=2, rate_period=60)
    for t in (0, 10):
        await n.notify(vrrp("MASTER", reason=f"at {t}"))
        await clock.advance(10)
    assert [t for t, _ in fake.sent] == [1, 11]
    # The limit is reached: the next events wait for the first message to age out (t=61)
    # and then go out together.
    await n.notify(vrrp("BACKUP", reason="at 20"))
    await clock.advance(20)
    await n.notify(vrrp("MASTER", reason="at 40"))
    await clock.advance(20)
    assert len(fake.sent) == 2
    await clock.advance(5)
    assert [t for t, _ in fake.sent] == [1, 11, 61]
    assert fake.sent[2][1]["Subject"].startswith("[lb1] 2 events")
    assert n.status()["rate_limited"] == 1
    await n.close()


async def test_retry_backoff_doubles_up_to_the_cap_and_gathers_new_events() -> None:
    clock = FakeClock(start=0)
    n, fake = fake_mailer(
        clock, failures=3, coalesce_window=1, retry_delay=2, retry_max_delay=5, retries=5
    )
    await n.notify(vrrp("MASTER"))
    await clock.advance(3.5)
    await n.notify(vrrp("BACKUP", old="MASTER"))  # arrives while the server is down
    await clock.advance(30)
    assert fake.attempts == [1, 3, 7, 12]  # window, then +2, +4, +5 (capped)
    assert len(fake.sent) == 1
    assert fake.sent[0][1]["Subject"].startswith("[lb1] 2 events")
    status = n.status()
    assert (status["retried"], status["sent"], status["coalesced"]) == (3, 1, 1)
    await n.close()


async def test_max_events_keeps_the_latest() -> None:
    clock = FakeClock(start=0)
    n, fake = fake_mailer(clock, coalesce_window=5, max_events=5)
    for i in range(8):
        await n.notify(vrrp("MASTER", reason=f"change {i}"))
    await clock.advance(6)
    (_, msg), *_ = fake.sent
    body = msg.get_content()
    assert body.startswith("8 events on lb1, oldest first (3 earlier ones left out):")
    assert "reason: change 2\n" not in body and "reason: change 3\n" in body
    assert n.status()["dropped"] == 3
    await n.close()


async def test_default_events_leave_out_every_check_probe() -> None:
    clock = FakeClock(start=0)
    n, fake = fake_mailer(clock)
    await n.notify(CheckResultEvent(check="web", ok=True, up=True))
    await n.notify(
        RealServerChanged(
            virtual_server="192.0.2.1:80", real_server="10.0.0.5:80", up=False, weight=0
        )
    )
    await clock.advance(1)
    assert [m["Subject"] for _, m in fake.sent] == [
        "[lb1] Realserver 10.0.0.5:80 of virtual server 192.0.2.1:80 - DOWN"
    ]
    await n.close()


# --------------------------------------------------------------------------- schema


def test_schema_keepalived_names_and_aliases() -> None:
    p = plugins.load()
    text = (
        "notifiers:\n"
        "  mail:\n"
        "    type: email\n"
        "    server: smtp.example.com\n"
        "    port: 587\n"
        "    security: starttls\n"
        "    connect_timeout: 5s\n"
        "    to: [ops@example.com, '\"Ops\" <ops2@example.com>']\n"
        "    from: halo@example.com\n"
        "    window: 30s\n"
        "    username: halo\n"
        "    password: {file: /etc/halo/smtp.pass}\n"
    )
    cfg = load_text(text, "t.yaml", p).model.notifiers["mail"].config
    assert (cfg.smtp_server, cfg.port, cfg.smtp_connect_timeout) == ("smtp.example.com", 587, 5)
    assert cfg.notification_email == ["ops@example.com", '"Ops" <ops2@example.com>']
    assert (cfg.notification_email_from, cfg.coalesce_window) == ("halo@example.com", 30)
    assert repr(cfg.password) == "Secret(file='/etc/halo/smtp.pass')"
    assert (
        EmailNotifierConfig(smtp_server="x", notification_email=["a@b"], security="tls").port == 465
    )


def test_schema_errors() -> None:
    p = plugins.load()
    text = (
        "notifiers:\n"
        "  mail:\n"
        "    type: email\n"
        "    smtp_server: 127.0.0.1\n"
        "    notification_email: [ops root]\n"
        "    username: halo\n"
        "    password: {env: X, file: y}\n"
        '    subject: "${instace} is ${new}"\n'
    )
    with pytest.raises(ConfigError) as exc:
        load_text(text, "t.yaml", p)
    assert exc.value.lines == [
        "t.yaml:7:15: notifiers.mail.password: needs exactly one of 'env' or 'file'",
    ]
    text = text.replace("password: {env: X, file: y}", "password: {env: X}")
    with pytest.raises(ConfigError) as exc:
        load_text(text, "t.yaml", p)
    assert exc.value.lines == [
        "t.yaml:5:26: notifiers.mail.notification_email[0]: 'ops root' is no address",
        "t.yaml:6:15: notifiers.mail.username: SMTP AUTH needs security: starttls or tls",
        "t.yaml:8:14: notifiers.mail.subject: unknown field 'instace' in template"
        " (did you mean 'instance'?)",
    ]


def test_missing_password_keeps_the_notifier_from_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HALO_TEST_NO_SUCH_VAR", raising=False)
    p = plugins.load()
    text = (
        "notifiers:\n  mail:\n    type: email\n    smtp_server: 127.0.0.1\n"
        "    notification_email: [ops@example.com]\n    security: starttls\n"
        "    username: halo\n    password: {env: HALO_TEST_NO_SUCH_VAR}\n"
    )
    cfg = load_text(text, "t.yaml", p).model.notifiers["mail"].config
    with pytest.raises(ValueError, match="HALO_TEST_NO_SUCH_VAR is not set"):
        EmailNotifier(cfg, make_context())
