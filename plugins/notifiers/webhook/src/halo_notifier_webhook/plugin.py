"""Schema and hooks of the ``webhook`` notifier. The runtime (and its HTTP client,
halo_lib_http) lives in :mod:`.runtime`."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import NotifierConfig, PluginType
from halo_core.schema import Alias, Doc, Pattern, Range, Seconds
from halo_lib_eventfields import Secret, json_template_problem, template_problem

# Event kinds posted when ``events:`` is not given: everything but the result of every single
# check probe, which would be a request per check per interval.
DEFAULT_EVENTS = (
    "vrrp_state",
    "vrrp_group_state",
    "vrrp_priority",
    "vrrp_announce",
    "real_server",
    "check_state",
    "pool",
    "backend_applied",
    "backend_failed",
    "config_reloaded",
)
URL = re.compile(r"https?://[^/\s?#]+\S*")
_HEADER_BREAK = re.compile(r"[\r\n\0]")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)


@dataclass(frozen=True, kw_only=True)
class WebhookNotifierConfig(NotifierConfig):
    """An HTTP request per event carrying halo's versioned JSON payload (docs/events.md),
    optionally signed with HMAC-SHA256, retried with a doubling delay on network errors,
    time-outs, 408, 425, 429 and 5xx. ``template`` replaces the payload, e.g. for a chat
    service's incoming webhook."""

    url: Annotated[
        Secret,
        Doc(
            "where to send the events (http:// or https://); may be {env: NAME} or"
            " {file: PATH}, as a chat service's webhook URL is a credential"
        ),
    ]
    method: Annotated[Literal["POST", "PUT"], Doc("HTTP method")] = "POST"
    headers: Annotated[
        dict[str, Secret],
        Doc("extra request headers; a value may be {env: NAME} or {file: PATH}"),
    ] = field(default_factory=dict)
    secret: Annotated[
        Secret | None,
        Alias(("hmac_secret",)),
        Doc("shared secret signing the body (HMAC-SHA256): {env: NAME}, {file: PATH} or itself"),
    ] = None
    signature_header: Annotated[
        str, Pattern(_TOKEN.pattern, "must be an HTTP header name"), Doc("header of the signature")
    ] = "X-Halo-Signature-256"
    timeout: Annotated[
        Seconds, Range(0.05, 300), Doc("time allowed for one request, connecting included")
    ] = Seconds(5.0)
    attempts: Annotated[
        int, Range(1, 100), Doc("tries per event, the first included, before giving up")
    ] = 4
    retry_delay: Annotated[
        Seconds,
        Range(0, 3600),
        Alias(("backoff",)),
        Doc("pause before the first retry, doubled for each next one"),
    ] = Seconds(1.0)
    retry_max_delay: Annotated[
        Seconds, Range(0, 3600), Doc("longest pause between retries (caps Retry-After too)")
    ] = Seconds(60.0)
    template: Annotated[
        dict[str, Any] | list[Any] | str | None,
        Doc(
            "body to send instead of halo's payload: a mapping whose strings are ${field}"
            " templates (sent as JSON), or a string template sent as it is"
        ),
    ] = None
    content_type: Annotated[
        str | None,
        Doc("Content-Type (default: application/json; text/plain for a string template)"),
    ] = None
    tls_verify: Annotated[bool, Doc("verify the server's certificate and name")] = True
    ca_file: Annotated[str | None, Doc("CA bundle (PEM) to verify the server with")] = None

    def __check__(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        bad_url = url_problem(self.url.value) if self.url.value is not None else None
        if bad_url:
            problems.append((("url",), bad_url))
        for name, value in self.headers.items():
            if not _TOKEN.fullmatch(name):
                problems.append((("headers", name), "is not an HTTP header name"))
            elif value.value is not None and _HEADER_BREAK.search(value.value):
                # CR or LF would end the header and start one of the config's choosing;
                # the HTTP client refuses it only when the first event is sent
                problems.append((("headers", name), "must be one line (no CR, LF or NUL)"))
        if isinstance(self.template, str):
            problem = template_problem(self.template)
            if problem:
                problems.append((("template",), problem))
        elif self.template is not None:
            found = json_template_problem(self.template)
            if found:
                problems.append((("template", *found[0]), found[1]))
        return problems


def url_problem(url: str) -> str | None:
    """What is wrong with a webhook URL, or None. Never quotes it: the URL is a secret."""
    if not URL.fullmatch(url):
        return "must be an http:// or https:// URL"
    try:
        port = urllib.parse.urlsplit(url).port
    except ValueError:  # "Port out of range 0-65535", "Port could not be cast…"
        return "must have a port from 1 to 65535"
    if port == 0:
        return "must have a port from 1 to 65535"
    return None


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="notifier",
            name="webhook",
            schema=WebhookNotifierConfig,
            factory="halo_notifier_webhook.runtime:WebhookNotifier",
            summary="signed JSON over HTTP",
        )
    ]
