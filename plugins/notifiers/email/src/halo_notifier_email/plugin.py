"""Schema and hooks of the ``email`` notifier. The runtime (and aiosmtplib) lives in
:mod:`.runtime`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import NotifierConfig, PluginType
from halo_core.schema import Alias, Doc, Length, Range, Seconds
from halo_lib_eventfields import Secret, template_problem

# Event kinds mailed when ``events:`` is not given: state changes, not every check probe.
DEFAULT_EVENTS = (
    "vrrp_state",
    "vrrp_group_state",
    "real_server",
    "check_state",
    "backend_failed",
    "config_reloaded",
)
DEFAULT_SUBJECT = "[${router_id}] ${summary}"
DEFAULT_DIGEST_SUBJECT = "[${router_id}] ${count} events, latest: ${summary}"


@dataclass(frozen=True, kw_only=True)
class EmailNotifierConfig(NotifierConfig):
    """E-mail alerts over SMTP (keepalived's smtp_alert with the global_defs SMTP settings).
    Changes that come within ``coalesce_window`` of each other travel in one message, at
    most ``rate_limit`` messages go out per ``rate_period``, and a message the server does
    not take is retried with a growing delay."""

    smtp_server: Annotated[
        str, Alias(("server",)), Length(min=1), Doc("SMTP server: host name or address")
    ]
    smtp_port: Annotated[
        int | None,
        Range(1, 65535),
        Alias(("port",)),
        Doc("SMTP port (default: 465 with security tls, else 25)"),
    ] = None
    security: Annotated[
        Literal["none", "starttls", "tls"],
        Doc("none: plain SMTP; starttls: upgrade with STARTTLS (required); tls: implicit TLS"),
    ] = "none"
    tls_verify: Annotated[bool, Doc("verify the server's certificate and name")] = True
    ca_file: Annotated[
        str | None, Doc("CA bundle (PEM) to verify the server with, instead of the system's")
    ] = None
    username: Annotated[str | None, Doc("SMTP AUTH user (needs starttls or tls)")] = None
    password: Annotated[
        Secret | None,
        Doc("SMTP AUTH password: {env: NAME}, {file: PATH} or the value itself"),
    ] = None
    smtp_helo_name: Annotated[
        str | None, Alias(("helo_name",)), Doc("name sent in EHLO (default: the host name)")
    ] = None
    smtp_connect_timeout: Annotated[
        Seconds,
        Range(0.1, 3600),
        Alias(("connect_timeout",)),
        Doc("time allowed to connect, and for each SMTP command"),
    ] = Seconds(30.0)
    notification_email: Annotated[
        list[str],
        Alias(("to", "recipients")),
        Length(min=1, max=1000),
        Doc("recipients (To:)"),
    ]
    notification_email_from: Annotated[
        str | None,
        Alias(("from",)),
        Doc("sender (From:); default halo@HOSTNAME"),
    ] = None
    subject: Annotated[str, Doc("subject of a message about one event (a ${field} template)")] = (
        DEFAULT_SUBJECT
    )
    digest_subject: Annotated[
        str,
        Doc("subject of a message about several events; ${count} and the latest's fields"),
    ] = DEFAULT_DIGEST_SUBJECT
    body: Annotated[
        str | None,
        Doc("text of one event in a message (a ${field} template; default: every field)"),
    ] = None
    coalesce_window: Annotated[
        Seconds,
        Range(0, 3600),
        Alias(("window",)),
        Doc("events arriving within this long of the first pending one share a message"),
    ] = Seconds(10.0)
    rate_limit: Annotated[
        int, Range(0, 100000), Doc("at most this many messages per rate_period (0: no limit)")
    ] = 20
    rate_period: Annotated[Seconds, Range(1, 86400 * 7), Doc("see rate_limit")] = Seconds(3600.0)
    max_events: Annotated[
        int,
        Range(1, 10000),
        Doc("events listed in one message; beyond this the oldest are left out (counted)"),
    ] = 100
    retries: Annotated[
        int, Range(0, 1000), Doc("further attempts at a message the server did not take")
    ] = 6
    retry_delay: Annotated[
        Seconds, Range(0, 3600), Doc("pause before the first retry, doubled for each next one")
    ] = Seconds(5.0)
    retry_max_delay: Annotated[Seconds, Range(0, 86400), Doc("longest pause between retries")] = (
        Seconds(300.0)
    )

    @property
    def port(self) -> int:
        if self.smtp_port is not None:
            return self.smtp_port
        return 465 if self.security == "tls" else 25

    def __check__(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for key, extra in (("subject", ()), ("digest_subject", ("count",)), ("body", ())):
            value = getattr(self, key)
            problem = template_problem(value, extra) if value is not None else None
            if problem:
                problems.append(((key,), problem))
        if (self.username is None) != (self.password is None):
            problems.append(((), "username and password go together"))
        if self.username is not None and self.security == "none":
            # Never send a password in clear text: a relay that wants AUTH supports TLS.
            problems.append((("username",), "SMTP AUTH needs security: starttls or tls"))
        for i, address in enumerate(self.notification_email):
            if not _mailbox(address):
                problems.append((("notification_email", i), f"{address[:60]!r} is no address"))
        if self.notification_email_from is not None and not _mailbox(self.notification_email_from):
            problems.append((("notification_email_from",), "must be an e-mail address"))
        # A line break in a header value would start a header of the config's choosing
        # (Bcc: …), and the SMTP library refuses it only when a message is due.
        lines: list[tuple[tuple[str | int, ...], str | None]] = [
            (("notification_email", i), a) for i, a in enumerate(self.notification_email)
        ]
        lines += [((key,), getattr(self, key)) for key in _ONE_LINE]
        for where, value in lines:
            if value is not None and _CONTROL.search(value):
                problems.append((where, "must be one line, without control characters"))
        return problems


# user@domain, or a local mailbox ("root", "acassen") that the relay delivers locally, as
# keepalived sends it (RFC 5321 §4.1.1.3 lets a server accept an unqualified recipient).
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")


def _mailbox(address: str) -> bool:
    return "@" in address or bool(_LOCAL_PART.fullmatch(address))


_ONE_LINE = ("notification_email_from", "subject", "digest_subject", "smtp_helo_name", "username")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="notifier",
            name="email",
            schema=EmailNotifierConfig,
            factory="halo_notifier_email.runtime:EmailNotifier",
            summary="e-mail over SMTP",
        )
    ]


@hookimpl
def halo_convert_keepalived() -> list[Any]:
    from halo_notifier_email.keepalived import keywords

    return list(keywords())
