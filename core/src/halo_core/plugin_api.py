"""What a plugin author writes against: plugin type declarations, config base classes and the
runtime protocols of checkers, notifiers and backends.

A plugin distribution registers one module under the ``halo.plugins`` entry-point group. That
module implements :func:`halo_core.hookspecs.halo_plugin_types` and returns one
:class:`PluginType` per type it provides. The module must stay light: it declares schemas, and
names its runtime as ``"package.module:attribute"`` so that heavy libraries are imported only
when a config actually uses the type.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, runtime_checkable

from halo_core.schema import Alias, Command, Doc, IPAddress, Length, Range, Seconds

if TYPE_CHECKING:
    import argparse

    from halo_core.bus import EventBus
    from halo_core.config.model import GlobalConfig, HaloConfig
    from halo_core.events import Event
    from halo_core.scheduler import Clock, Scheduler

API_VERSION: tuple[int, int] = (1, 0)
"""The version of this plugin API, ``(major, minor)``. A plugin module declares the one it
was written against as ``HALO_PLUGIN_API = (1, 0)``; it loads when the major numbers are
equal and its minor is not newer than this one (a minor adds, a major changes or removes).
A module without the attribute is taken as written for 1.0, the first API."""

API_VERSION_ATTRIBUTE = "HALO_PLUGIN_API"

PluginKind = Literal["checker", "notifier", "backend"]
KINDS: tuple[PluginKind, ...] = ("checker", "notifier", "backend")

FIRST_PARTY_TYPES: dict[tuple[str, str], str] = {
    ("checker", "tcp"): "halo-checker-tcp",
    ("checker", "http"): "halo-checker-http",
    ("checker", "ssl"): "halo-checker-ssl",
    ("checker", "ssh"): "halo-checker-ssh",
    ("checker", "script"): "halo-checker-script",
    ("checker", "udp"): "halo-checker-udp",
    ("checker", "ping"): "halo-checker-ping",
    ("checker", "dns"): "halo-checker-dns",
    ("checker", "smtp"): "halo-checker-smtp",
    ("checker", "file"): "halo-checker-file",
    ("checker", "process"): "halo-checker-process",
    ("notifier", "email"): "halo-notifier-email",
    ("notifier", "script"): "halo-notifier-script",
    ("notifier", "webhook"): "halo-notifier-webhook",
    ("backend", "vip"): "halo-backend-vip",
    ("backend", "ipvs"): "halo-backend-ipvs",
    ("backend", "nftables"): "halo-backend-nftables",
    ("backend", "bgp"): "halo-backend-bgp",
}
"""The types halo's own distributions provide, (kind, type) → distribution: the install
hint of an unknown ``type:``, and how to tell that the plugin providing it is blocked or
failed to load. The one place the core names first-party plugins (a test keeps it equal to
what they declare)."""

CAPABILITIES: dict[str, str] = {
    # put VRRP instances' virtual addresses in the kernel and announce them
    "addresses": FIRST_PARTY_TYPES[("backend", "vip")],
}
"""Capabilities the core asks of backends (:attr:`PluginType.provides`), each with the
distribution that provides it: the install hint of the error a config gets when no
installed plugin provides what it needs."""


@dataclass(frozen=True)
class PluginType:
    """One type a plugin provides, e.g. a checker type named in checks' ``type:``.

    ``schema`` is a frozen dataclass deriving from :class:`CheckerConfig`,
    :class:`NotifierConfig` or :class:`BackendConfig`. ``factory`` builds the runtime object
    from a validated config and a context; give it as ``"module:attr"`` to import lazily.

    ``provides`` names capabilities the core relies on (see :data:`CAPABILITIES`): a
    backend that provides ``"addresses"`` puts VRRP instances' virtual addresses in the
    kernel. (Options a plugin adds to the core's sections, such as a VRRP instance's, are
    declared with the ``halo_config_extensions`` hook.)
    """

    kind: PluginKind
    name: str
    schema: type
    factory: str | Callable[..., Any]
    summary: str = ""
    provides: frozenset[str] = frozenset()

    def load_factory(self) -> Callable[..., Any]:
        if callable(self.factory):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        if not callable(obj):
            raise TypeError(f"factory {self.factory!r} is not callable")
        return obj  # type: ignore[no-any-return]


@dataclass(frozen=True)
class PluginContext:
    """What a notifier's or backend's factory gets besides its own config: its configured
    name, the whole configuration (e.g. the VRRP instances' virtual addresses), the bus to
    publish on, and the daemon's clock and scheduler (use them for anything timed, so that
    tests can drive time)."""

    name: str
    config: HaloConfig
    bus: EventBus
    clock: Clock
    scheduler: Scheduler


# --------------------------------------------------------------------------- checkers


@dataclass(frozen=True, kw_only=True)
class CheckerConfig:
    """Options every checker has (keepalived's names), defined once so that third-party
    checkers get them for free by deriving their schema from this class."""

    interval: Annotated[
        Seconds | None,
        Range(0.001, 86400),  # 0 would never run the check, a huge one never again
        Doc(
            "time between two checks (default: 1 s for a named check, like vrrp_script;"
            " the virtual server's delay_loop for a real server's check)"
        ),
    ] = None
    timeout: Annotated[
        Seconds | None,
        Range(0.001, 86400),  # 0 would fail every check
        Alias(("connect_timeout",)),  # keepalived's TCP_CHECK name; a checker may define its own
        Doc("how long one check may take before it counts as failed (default: the interval)"),
    ] = None
    rise: Annotated[int, Range(1, 1000), Doc("consecutive successes before the check is up")] = 1
    fall: Annotated[int, Range(1, 1000), Doc("consecutive failures before the check is down")] = 1
    retry: Annotated[
        int, Range(0, 100), Doc("extra attempts within one check before it counts as failed")
    ] = 0
    delay_before_retry: Annotated[Seconds, Doc("pause between those attempts")] = Seconds(1.0)
    warmup: Annotated[Seconds, Doc("the first check runs after a random delay up to this long")] = (
        Seconds(0.0)
    )
    weight: Annotated[
        int,
        Range(-254, 254),
        Doc("default weight when a VRRP instance tracks this check (vrrp_script weight)"),
    ] = 0
    init_fail: Annotated[
        bool, Doc("the check starts down (keepalived's vrrp_script init_fail), not up")
    ] = False
    notify_up: Annotated[str | None, Command(), Doc("command run when the check goes up")] = None
    notify_down: Annotated[str | None, Command(), Doc("command run when the check goes down")] = (
        None
    )

    def disabled(self) -> str | None:
        """Why this check cannot run at all, or None (the default: it can). Asked when the
        configuration is checked, (re)loaded and when the check starts. keepalived disables
        such a check instead of counting it failed (a vrrp_script or MISC_CHECK whose
        script is not found or not executable: "Disabling track script ... since not
        found/accessible"), and so does halo: the check never runs, ``halo check`` and
        the log warn with the reason, the status shows it DISABLED, and the VRRP instances
        that track it ignore it (neither priority nor FAULT), as if they did not track it.
        Keep it cheap and free of I/O beyond a stat of a file."""
        return None


def disabled_reason(config: CheckerConfig) -> str | None:
    """:meth:`CheckerConfig.disabled`, never raising: a plugin's method that fails tells
    nothing, and the check runs (and fails with the reason, if it must)."""
    try:
        why = config.disabled()
    except Exception:  # plugin territory
        return None
    if why is None:
        return None
    return " ".join(str(why).split()) or "disabled"


@dataclass(frozen=True)
class CheckTarget:
    """Whom a check probes — for a real server's check, its address and port — and the
    daemon-wide settings a checker may need (``script_user``, ``enable_script_security``)."""

    name: str
    address: IPAddress | None = None
    port: int | None = None
    global_config: GlobalConfig | None = None
    weight: int | None = None
    """A real server's configured weight, for a checker that reports a dynamic one
    (:attr:`CheckResult.weight`) relative to it; None for a named check."""


@dataclass(frozen=True)
class Endpoint:
    """Where a checker that connects goes: socket family, address, optional local address,
    and ``where`` (``192.0.2.1:80``, ``[2001:db8::1]:80``) for its messages."""

    family: int
    address: tuple[str, int]
    local: tuple[str, int] | None
    where: str


def endpoint(
    target: CheckTarget,
    ip: IPAddress | None,
    port: int | None,
    local_ip: IPAddress | None = None,
    local_port: int | None = None,
    *,
    default_port: int | None = None,
) -> Endpoint:
    """The endpoint from a checker's connection options (keepalived's connect and bind
    ones), defaulting to the real server's address and port, then ``default_port``. Raises
    ValueError for a check outside a real server without them."""
    import socket

    host = ip or target.address
    port = port or target.port or default_port
    if host is None or port is None:
        needed = "connect_ip and connect_port are" if default_port is None else "connect_ip is"
        raise ValueError(f"check {target.name}: {needed} needed outside a real server")
    family = socket.AF_INET6 if host.version == 6 else socket.AF_INET
    local = None
    if local_ip is not None or local_port is not None:
        any_addr = "::" if family == socket.AF_INET6 else "0.0.0.0"
        local = (str(local_ip or any_addr), local_port or 0)
    where = f"[{host}]:{port}" if host.version == 6 else f"{host}:{port}"
    return Endpoint(family, (str(host), port), local, where)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check. ``weight`` is set by checkers that report a dynamic weight
    (keepalived's ``misc_dynamic``); ``warning`` flags an ok result that needs attention (a
    certificate about to expire)."""

    ok: bool
    message: str = ""
    weight: int | None = None
    warning: str | None = None


@runtime_checkable
class Checker(Protocol):
    """The runtime of a checker type: built once per configured check by its factory
    ``factory(config, target) -> Checker``."""

    async def check(self) -> CheckResult:
        """Probe once. May raise; the scheduler counts an exception or a timeout as a failed
        check with the reason."""
        ...

    async def close(self) -> None:
        """Release sockets, sessions, processes. Called on shutdown and when a reload drops
        the check."""
        ...


class CheckNow(Protocol):
    """Optional for a checker's runtime, beside :class:`Checker`: start a round without
    awaiting. ``check_now()`` gives the :class:`CheckResult` when it is known at once, or an
    awaitable of it for the rest (awaited with the check's time-out, as ``check()`` is). It
    must never block: halo calls it for many checks in one wake-up of its event loop, which
    costs far less CPU than a task per round (a connect check: a connection on a LAN is
    usually established before ``connect`` returns). A checker with it still has
    ``check()``, which ``halo check --run`` and the tests use."""

    def check_now(self) -> CheckResult | Awaitable[CheckResult]: ...


# --------------------------------------------------------------------------- notifiers


@dataclass(frozen=True, kw_only=True)
class NotifierConfig:
    """Filters every notifier has: which events reach it."""

    events: Annotated[
        list[str] | None,
        Doc("event types to receive, e.g. [vrrp_state, real_server] (default: all)"),
    ] = None
    instances: Annotated[
        list[str] | None, Doc("VRRP instances, sync groups or virtual servers to follow")
    ] = None
    states: Annotated[
        list[str] | None, Doc("only these new states (MASTER, BACKUP, FAULT, STOP, UP, DOWN)")
    ] = None


FILTER_STATES: tuple[str, ...] = ("MASTER", "BACKUP", "FAULT", "STOP", "UP", "DOWN")
"""The states events carry, which a notifier's ``states`` filter may name: a VRRP instance's
or sync group's new state (``STOP`` when it stops), a check's or real server's ``UP`` and
``DOWN``."""


def event_filter(config: NotifierConfig) -> Callable[[Event], bool]:
    """The filters every notifier has: event kinds, instances/groups/services, new states."""
    kinds = set(config.events) if config.events is not None else None
    names = set(config.instances) if config.instances is not None else None
    states = {s.upper() for s in config.states} if config.states is not None else None

    def wanted(event: Event) -> bool:
        if kinds is not None and event.kind not in kinds:
            return False
        if names is not None:
            subject = {
                getattr(event, a)
                for a in ("instance", "group", "virtual_server", "check")
                if getattr(event, a, None)
            }
            if not subject & names:
                return False
        if states is not None:
            state = getattr(event, "new", None)
            if state is None and hasattr(event, "up"):
                state = "UP" if event.up else "DOWN"
            if state is None or str(state).upper() not in states:
                return False
        return True

    return wanted


@runtime_checkable
class Notifier(Protocol):
    """The runtime of a notifier type: ``factory(config, context) -> Notifier``.

    Derive your class from this one to inherit the defaults of the optional members
    (``timeout``, ``status``); an object that does not derive from it must have them all."""

    timeout: float = 60.0
    """How long one :meth:`notify` may take before the bus gives up on it, in seconds."""

    async def notify(self, event: Event) -> None:
        """Deliver one event. Runs on the event bus, isolated from VRRP: may be slow, may
        raise; the bus times it out, logs and counts failures."""
        ...

    async def close(self) -> None:
        """Flush and release resources."""
        ...

    def status(self) -> dict[str, Any]:
        """Counters and state for the status API (JSON-able); none by default."""
        return {}


# --------------------------------------------------------------------------- backends


@dataclass(frozen=True, kw_only=True)
class BackendConfig:
    """Base of every backend's schema."""


@runtime_checkable
class Backend(Protocol):
    """The runtime of a backend type: ``factory(config, context) -> Backend``. It receives
    bus events (VRRP state changes, pool changes) and applies them to the kernel.

    Derive your class from this one to inherit the defaults of the optional members
    (``kinds``, ``reload``, ``status``); an object that does not derive from it must have
    them all."""

    kinds: Collection[str] | None = None
    """The event kinds this backend is sent (``None``: every event). A backend that holds
    addresses has no business with the thousands of check results a big pool produces."""

    async def start(self) -> None:
        """Reconcile with the kernel at start-up (e.g. clean up what a crashed run left)."""
        ...

    async def handle(self, event: Event) -> None:
        """Apply one event. Errors are published as BackendFailed, never raised at VRRP."""
        ...

    async def stop(self) -> None:
        """Withdraw what this backend put in the kernel."""
        ...

    async def reload(self, config: HaloConfig) -> None:
        """The daemon reloaded a changed configuration (called before the VRRP engine
        applies it). Nothing by default."""
        return None

    def status(self) -> dict[str, Any]:
        """Counters and state for the status API (JSON-able); none by default."""
        return {}


@dataclass(frozen=True)
class PluginsConfig:
    """Which installed plugins to ignore."""

    block: Annotated[
        list[str],
        Doc("plugin names (entry-point or distribution names) not to load"),
        Length(max=1000),
    ] = field(default_factory=list)


# --------------------------------------------------------------------------- commands

DEFAULT_CONFIG = "/etc/halo/halo.yaml"


class UnknownName(Exception):
    """A name not in the configuration; the message says which ones are."""


def pick(what: str, name: str, names: Sequence[str], *, listed: str = "configured") -> str:
    """``name`` if it is one of ``names``, else :class:`UnknownName` saying which are, with
    a did-you-mean: for commands that take the name of a configured check, notifier…
    (``listed`` says what ``names`` are: ``configured``, ``known``)."""
    if name in names:
        return name
    import difflib  # only when a name is wrong: not on the daemon's import path

    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    configured = ", ".join(names) or "none"
    raise UnknownName(f"unknown {what} {name!r} ({hint}{listed}: {configured})")


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """``-c/--config``, the same for every command that reads the configuration (the core's
    and the ones plugins add through ``halo_add_commands``)."""
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=os.environ.get("HALO_CONFIG", DEFAULT_CONFIG),
        help="the configuration file (default: %(default)s; $HALO_CONFIG sets another)",
    )
