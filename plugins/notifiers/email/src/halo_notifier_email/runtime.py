"""The ``email`` notifier at run time.

``notify`` only queues the event and returns, so the bus never waits on SMTP. One sender
task per notifier turns the queue into messages, in arrival order: it waits
``coalesce_window`` after the first pending event so that a burst (a flapping link) becomes
one message, holds messages back while ``rate_limit`` is reached, and retries a message the
server did not take with a doubling delay; events arriving meanwhile join that message. All
of this waiting is on the daemon's clock, so tests can drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections import Counter, deque
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiosmtplib

from halo_core import __version__
from halo_core.events import Event
from halo_core.plugin_api import Notifier, PluginContext
from halo_lib_eventfields import render, summary, text, values
from halo_notifier_email.plugin import DEFAULT_EVENTS, EmailNotifierConfig

log = logging.getLogger("halo.notifier.email")

# close() gets 10 s from the daemon: one last attempt at what is still queued fits in this.
CLOSE_TIMEOUT = 8.0


class Undeliverable(Exception):
    """A message the server refused for good (5xx): retrying would not help."""


class EmailNotifier(Notifier):
    """Coalesces events into messages and delivers them over SMTP."""

    # notify() only queues: the bus may cancel it quickly if something is badly wrong.
    timeout = 5.0

    def __init__(self, config: EmailNotifierConfig, context: PluginContext) -> None:
        self.config = config
        self.name = context.name
        self.clock = context.clock
        self.hostname = socket.gethostname()
        self.router_id = context.config.global_.router_id or self.hostname
        self.sender = config.notification_email_from or f"halo@{self.hostname}"
        # A missing environment variable or unreadable file stops the notifier from starting
        # (the daemon logs why) rather than failing on every message later.
        self.password = config.password.reveal() if config.password is not None else None
        self.tls_context = self._tls_context()
        self.kinds = frozenset(config.events if config.events is not None else DEFAULT_EVENTS)
        self.pending: list[Event] = []
        self.omitted = 0  # events left out of the pending message (max_events)
        self.sending: tuple[list[Event], int] | None = None  # the message being delivered
        self.sent_at: deque[float] = deque()
        self.counters: Counter[str] = Counter()
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.config.security == "none":
            return None
        ctx = ssl.create_default_context(cafile=self.config.ca_file)
        if not self.config.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    # ------------------------------------------------------------------ queueing

    async def notify(self, event: Event) -> None:
        if event.kind not in self.kinds:
            return
        self.counters["events"] += 1
        self.pending.append(event)
        self._trim()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"notifier:{self.name}:smtp"
            )
        self._wake.set()

    def _trim(self) -> None:
        excess = len(self.pending) - self.config.max_events
        if excess > 0:
            # The latest events say where things stand now; the oldest are counted instead.
            del self.pending[:excess]
            self.omitted += excess
            self.counters["dropped"] += excess

    def _take(self) -> tuple[list[Event], int]:
        batch, omitted = self.pending, self.omitted
        self.pending, self.omitted = [], 0
        return batch, omitted

    def _rate_delay(self) -> float:
        limit = self.config.rate_limit
        if not limit:
            return 0.0
        now = self.clock.now()
        while self.sent_at and self.sent_at[0] <= now - self.config.rate_period:
            self.sent_at.popleft()
        if len(self.sent_at) < limit:
            return 0.0
        return self.sent_at[0] + self.config.rate_period - now

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self.pending:
                continue
            try:
                await self._next_message()
            except Exception:  # a bug here must not silence every later alert
                self.counters["failed"] += 1
                log.exception("notifier %s: sending failed", self.name)

    async def _next_message(self) -> None:
        """Wait out the coalescing window and the rate limit, then deliver what gathered."""
        await self.clock.sleep(self.config.coalesce_window)
        delay = self._rate_delay()
        if delay > 0:
            self.counters["rate_limited"] += 1
            log.warning(
                "notifier %s: %d messages in %gs already: the next one waits %.0fs",
                self.name,
                self.config.rate_limit,
                self.config.rate_period,
                delay,
            )
            await self.clock.sleep(delay)
        await self._deliver(*self._take())

    # ------------------------------------------------------------------ delivery

    async def _deliver(self, batch: list[Event], omitted: int) -> None:
        delay = float(self.config.retry_delay)
        attempt = 0
        while True:
            attempt += 1
            self.sending = (batch, omitted)
            try:
                await self._send(self.message(batch, omitted))
            except Exception as exc:
                permanent = isinstance(exc, Undeliverable)
                why = describe(exc)
                self.last_error = why
                if permanent or attempt > self.config.retries:
                    self.sending = None
                    self.counters["failed"] += 1
                    log.error(
                        "notifier %s: gave up on a message about %d events after %d attempts: %s",
                        self.name,
                        len(batch) + omitted,
                        attempt,
                        why,
                    )
                    return
                self.counters["retried"] += 1
                log.warning(
                    "notifier %s: %s:%d did not take the message (%s); retrying in %gs",
                    self.name,
                    self.config.smtp_server,
                    self.config.port,
                    why,
                    delay,
                )
                await self.clock.sleep(delay)
                delay = min(delay * 2, float(self.config.retry_max_delay))
                # What happened meanwhile goes out in this same message.
                more, more_omitted = self._take()
                batch, omitted = batch + more, omitted + more_omitted
                excess = len(batch) - self.config.max_events
                if excess > 0:
                    del batch[:excess]
                    omitted += excess
                    self.counters["dropped"] += excess
                continue
            self.sending = None
            self.counters["sent"] += 1
            self.counters["coalesced"] += len(batch) - 1
            self.sent_at.append(self.clock.now())
            log.info(
                "notifier %s: mailed %d event%s to %s",
                self.name,
                len(batch),
                "" if len(batch) == 1 else "s",
                ", ".join(self.config.notification_email),
            )
            return

    async def _send(self, message: EmailMessage) -> None:
        cfg = self.config
        tls = cfg.security != "none"
        # aiosmtplib's timeout bounds each step (connect, EHLO, STARTTLS, AUTH, MAIL, RCPT,
        # DATA); bound the whole exchange too, so one message cannot hang the sender.
        async with asyncio.timeout(float(cfg.smtp_connect_timeout) * 4):
            try:
                refused, _ = await aiosmtplib.send(
                    message,
                    hostname=cfg.smtp_server,
                    port=cfg.port,
                    username=cfg.username,
                    password=self.password,
                    local_hostname=cfg.smtp_helo_name or self.hostname,
                    timeout=float(cfg.smtp_connect_timeout),
                    use_tls=cfg.security == "tls",
                    start_tls=cfg.security == "starttls",
                    validate_certs=cfg.tls_verify,
                    tls_context=self.tls_context if tls else None,
                )
            except aiosmtplib.SMTPRecipientsRefused as exc:
                if all(r.code >= 500 for r in exc.recipients):
                    raise Undeliverable(describe(exc)) from exc
                raise
            except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPNotSupported) as exc:
                code = getattr(exc, "code", 500)
                if code >= 500:
                    raise Undeliverable(describe(exc)) from exc
                raise
        if refused:
            self.counters["refused_recipients"] += len(refused)
            log.warning(
                "notifier %s: recipients refused: %s",
                self.name,
                ", ".join(f"{r} ({resp.code} {resp.message})" for r, resp in refused.items()),
            )

    # ------------------------------------------------------------------ the message

    def _fields(self, event: Event) -> dict[str, Any]:
        return values(event, router_id=self.router_id, notifier=self.name)

    def event_text(self, event: Event) -> str:
        fields = self._fields(event)
        if self.config.body is not None:
            return render(self.config.body, fields).rstrip("\n")
        lines = [fields["summary"], fields["detail"], ""]
        lines += [f"router_id: {self.router_id}", f"time: {fields['time']}"]
        lines += [f"kind: {event.kind}"]
        for key, value in fields.items():
            if key in ("kind", "router_id", "notifier", "time", "timestamp", "summary"):
                continue
            if key in ("detail", "name", "state") or value in (None, "", [], {}):
                continue
            lines.append(f"{key}: {text(value)}")
        return "\n".join(lines)

    def message(self, batch: list[Event], omitted: int = 0) -> EmailMessage:
        cfg = self.config
        latest = self._fields(batch[-1])
        if len(batch) == 1 and not omitted:
            subject = render(cfg.subject, latest)
        else:
            subject = render(cfg.digest_subject, {**latest, "count": len(batch) + omitted})
        msg = EmailMessage()
        msg["Subject"] = " ".join(subject.split())  # a header holds no line breaks
        msg["From"] = self.sender
        msg["To"] = ", ".join(cfg.notification_email)
        msg["Date"] = formatdate(localtime=True)
        # An explicit domain: make_msgid() would otherwise look up our FQDN (blocking DNS).
        msg["Message-ID"] = make_msgid("halo", domain=self.hostname)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
        msg["X-Mailer"] = f"halo {__version__}"
        parts = [self.event_text(e) for e in batch]
        if len(batch) > 1 or omitted:
            head = f"{len(batch) + omitted} events on {self.router_id}, oldest first"
            if omitted:
                head += f" ({omitted} earlier ones left out)"
            parts.insert(0, head + ":\n" + "\n".join(f"  {summary(e)}" for e in batch))
        msg.set_content("\n\n----\n\n".join(parts) + "\n")
        return msg

    # ------------------------------------------------------------------ life cycle

    def status(self) -> dict[str, Any]:
        keys = (
            "events",
            "sent",
            "coalesced",
            "retried",
            "failed",
            "dropped",
            "rate_limited",
            "refused_recipients",
        )
        out: dict[str, Any] = {k: self.counters[k] for k in keys}
        out["pending"] = len(self.pending) + (len(self.sending[0]) if self.sending else 0)
        out["last_error"] = self.last_error
        return out

    async def close(self) -> None:
        """Send what is still queued (the STOP changes of a stopping daemon) in one last
        message, without waiting for the window, the rate limit or retries."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        batch, omitted = self.sending or ([], 0)
        self.sending = None
        more, more_omitted = self._take()
        batch, omitted = batch + more, omitted + more_omitted
        if not batch:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._send(self.message(batch, omitted))
        except Exception as exc:
            self.counters["failed"] += 1
            self.last_error = describe(exc)
            log.error(
                "notifier %s: on close, could not deliver %d events: %s",
                self.name,
                len(batch) + omitted,
                self.last_error,
            )
            return
        self.counters["sent"] += 1
        self.counters["coalesced"] += len(batch) - 1


def describe(exc: BaseException) -> str:
    if isinstance(exc, Undeliverable):
        return str(exc)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return "recipients refused: " + ", ".join(
            f"{r.recipient} ({r.code} {r.message})" for r in exc.recipients
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{type(exc).__name__}: {exc.code} {exc.message}"
    if isinstance(exc, TimeoutError):
        return f"timed out ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"
