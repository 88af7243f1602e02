"""The ``webhook`` notifier at run time.

``notify`` delivers one event, retries included, before it returns: the event bus calls it
one event at a time per instance (group, virtual server), so a receiver sees each instance's
changes in order, while a slow or dead receiver only delays this notifier's own deliveries.
Retry pauses are on the daemon's clock; request time-outs are real time (they bound I/O).

Requests go out through halo_lib_http (not aiohttp: 11.5 MB resident for a POST now and
then). ``ssl`` is imported only for an https URL, and ``hmac`` (which loads OpenSSL's
libcrypto) only to sign with a secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

from halo_core import __version__
from halo_core.events import Event
from halo_core.plugin_api import Notifier, PluginContext
from halo_lib_eventfields import (
    detail,
    event_data,
    name_of,
    render,
    render_json,
    state_of,
    summary,
    utc_time,
    values,
)
from halo_lib_http import Client, HttpError
from halo_notifier_webhook.plugin import DEFAULT_EVENTS, WebhookNotifierConfig, url_problem

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("halo.notifier.webhook")

PAYLOAD_VERSION = 1
RETRY_STATUSES = frozenset({408, 425, 429})  # and every 5xx


def payload(event: Event, *, router_id: str, notifier: str, delivery: str) -> dict[str, Any]:
    """halo's webhook payload, version 1 (docs/events.md). Receivers may rely on these keys;
    a change that removes or retypes one bumps ``version``, new keys may appear anytime."""
    return {
        "version": PAYLOAD_VERSION,
        "id": delivery,
        "kind": event.kind,
        "router_id": router_id,
        "notifier": notifier,
        "time": utc_time(event.time),
        "timestamp": event.time,
        "name": name_of(event),
        "state": state_of(event) or None,
        "summary": summary(event),
        "detail": detail(event),
        "data": event_data(event),
    }


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    import hashlib
    import hmac

    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the delta-seconds form; an HTTP date is ignored)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class WebhookNotifier(Notifier):
    """POSTs (or PUTs) each event to one URL."""

    def __init__(self, config: WebhookNotifierConfig, context: PluginContext) -> None:
        self.config = config
        self.name = context.name
        self.clock = context.clock
        self.router_id = context.config.global_.router_id or socket.gethostname()
        self.url = config.url.reveal()
        problem = url_problem(self.url)
        if problem:  # checked here for a URL from the environment or a file
            raise ValueError(f"url {problem}")
        self.origin = _origin(self.url)
        # Secrets are read once, at start: a missing variable or file keeps the notifier
        # from starting (the daemon logs why, never the value).
        self.secret = config.secret.reveal().encode() if config.secret is not None else None
        self.headers = {k: v.reveal() for k, v in config.headers.items()}
        self.kinds = frozenset(config.events if config.events is not None else DEFAULT_EVENTS)
        self.ssl: ssl.SSLContext | None = self._ssl()
        self.counters: Counter[str] = Counter()
        self.last_error: str | None = None
        self.client = Client(headers={"User-Agent": f"halo/{__version__}"})
        # The bus cancels a notify() running longer than this: every attempt may time out
        # and every pause may be as long as retry_max_delay.
        self.timeout = (
            config.attempts * float(config.timeout)
            + (config.attempts - 1) * float(config.retry_max_delay)
            + 5.0
        )

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.url.startswith("https:"):
            return None  # the client's default; unused for http
        import ssl

        ctx = ssl.create_default_context(cafile=self.config.ca_file)
        if not self.config.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def body(self, event: Event, delivery: str) -> tuple[bytes, str]:
        """The request body and its content type."""
        cfg = self.config
        if cfg.template is None:
            data = payload(event, router_id=self.router_id, notifier=self.name, delivery=delivery)
            return json.dumps(data).encode(), cfg.content_type or "application/json"
        fields = values(event, router_id=self.router_id, notifier=self.name)
        if isinstance(cfg.template, str):
            return render(cfg.template, fields).encode(), cfg.content_type or "text/plain"
        rendered = render_json(cfg.template, fields)
        return json.dumps(rendered).encode(), cfg.content_type or "application/json"

    async def notify(self, event: Event) -> None:
        if event.kind not in self.kinds:
            return
        cfg = self.config
        self.counters["events"] += 1
        delivery = str(uuid.uuid4())  # the same on every attempt: receivers can de-duplicate
        body, content_type = self.body(event, delivery)
        headers = {
            **self.headers,
            "Content-Type": content_type,
            "X-Halo-Event": event.kind,
            "X-Halo-Delivery": delivery,
        }
        if self.secret is not None:
            headers[cfg.signature_header] = sign(self.secret, body)
        delay = float(cfg.retry_delay)
        for attempt in range(1, cfg.attempts + 1):
            wait_hint: float | None = None
            try:
                status, wait_hint = await self._request(body, headers)
            except HttpError as exc:  # its text says why, in a few words
                why, retryable = str(exc), True
            except TimeoutError:
                why, retryable = f"no answer within {float(cfg.timeout):g}s", True
            except OSError as exc:
                why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                retryable = True
            else:
                if 200 <= status < 300:
                    self.counters["sent"] += 1
                    log.debug("notifier %s: %s delivered (HTTP %d)", self.name, event.kind, status)
                    return
                why = f"HTTP {status}"
                retryable = status in RETRY_STATUSES or status >= 500
            self.last_error = why
            if not retryable or attempt == cfg.attempts:
                self.counters["failed"] += 1
                log.error(
                    "notifier %s: %s: gave up on %s (%s) after %d attempt%s: %s",
                    self.name,
                    self.origin,
                    event.kind,
                    summary(event),
                    attempt,
                    "" if attempt == 1 else "s",
                    why,
                )
                return
            self.counters["retried"] += 1
            pause = min(max(delay, wait_hint or 0.0), float(cfg.retry_max_delay))
            log.warning("notifier %s: %s: %s; retrying in %gs", self.name, self.origin, why, pause)
            await self.clock.sleep(pause)
            delay = min(delay * 2, float(cfg.retry_max_delay))

    async def _request(self, body: bytes, headers: dict[str, str]) -> tuple[int, float | None]:
        cfg = self.config
        async with asyncio.timeout(float(cfg.timeout)):
            response = await self.client.request(
                cfg.method,
                self.url,
                body=body,
                headers=headers,
                tls=self.ssl,
                # A redirected POST turns into a GET on the way: report it as the failure
                # it is (redirects are not followed).
            )
            async with response:
                # Read (a bounded amount of) the answer so the connection can be reused.
                await response.read(64 * 1024)
                return response.status, retry_after(response.headers.get("Retry-After"))

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: self.counters[k] for k in ("events", "sent", "retried", "failed")}
        out["last_error"] = self.last_error
        return out

    async def close(self) -> None:
        await self.client.close()


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL: what logs show (a path or query may hold a token, as
    in chat services' incoming webhook URLs)."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}"
