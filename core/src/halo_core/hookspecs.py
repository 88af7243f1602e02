"""Every hook a halo plugin can implement, in one place.

A plugin is a module registered under the ``halo.plugins`` entry-point group; halo loads it
with pluggy and calls the functions it marks with :data:`hookimpl`. Each hook below says when
it is called, what it returns and whether the first result wins. ``docs/hooks.md`` has one
section per hook with an example (a test fails when one is missing).

Hooks run on the daemon's event loop and must not block: return an awaitable for anything
that waits (halo awaits it with a time limit) and keep imports of heavy libraries inside the
runtime objects your factories build.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Literal

import pluggy

if TYPE_CHECKING:
    import argparse

    from halo_core.bus import EventBus
    from halo_core.config import Config
    from halo_core.daemon import Daemon
    from halo_core.plugin_api import PluginType

PROJECT = "halo"
ENTRY_POINT_GROUP = "halo.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# What :func:`halo_daemon_state` reports, in the order a daemon's life goes through them.
DaemonState = Literal[
    "started", "start-failed", "reloading", "reloaded", "reload-refused", "stopping"
]

# What :func:`halo_reload` may return: phrases for the reload's summary, or None.
Changes = list[str] | None


@hookspec
def halo_plugin_types() -> list[PluginType]:
    """Declare the checker, notifier and backend types this plugin provides.

    Called once, when plugins are loaded (by every ``halo`` command, including ``check``, so
    it must be cheap: return schemas and lazy factories, import nothing heavy).
    Returns a list of :class:`halo_core.plugin_api.PluginType`. All plugins' results are collected;
    two plugins declaring the same kind and name is a load error for the second one.
    """
    raise NotImplementedError


@hookspec
def halo_config_extensions() -> dict[str, type]:
    """Add options to the core's sections: ``{point: schema}``, ``point`` one of
    ``"global"`` (the daemon-wide settings) and ``"vrrp_instance"`` (every VRRP instance).

    Called once, when plugins are loaded (like :func:`halo_plugin_types`, it must be cheap).
    ``schema`` is a frozen dataclass described with the markers of :mod:`halo_core.schema`,
    every field with a default; its fields become keys of that section, validated with the
    section (``file:line:col`` errors, did-you-mean) and shown in ``halo schema`` as its
    keys. A field whose type is a dataclass is a named sub-section (``global: status_api:
    {...}``). Read the validated object with ``section.extensions[schema]`` (its defaults
    when the section sets none of your keys). A key the core's section has or another
    plugin added there is a load error for this plugin.
    """
    raise NotImplementedError


@hookspec
def halo_has_work(config: Config) -> bool:
    """Whether this plugin has anything to do in the daemon for ``config``: the answer
    that decides, for a plugin with daemon hooks (:func:`halo_subscribe`,
    :func:`halo_startup`, :func:`halo_daemon_state`, :func:`halo_reload`), whether halo
    needs a worker process for it.

    Called in the child that validates the configuration (``halo_core.handover.judge``),
    at start and at each reload, with the validated file, before any daemon hook; never in
    the daemon itself. Only plugins with daemon hooks are asked, each on its own. It must
    be cheap and read only ``config`` (and the environment, which the child inherits from
    the daemon). Returns True when the plugin has work, False when it has none. A plugin
    with daemon hooks that does not implement this hook has work for every configuration;
    one whose hook raises counts as having work, and the failure is logged against it.
    When no plugin has work and the configuration has no checks, notifiers, virtual
    servers or backends besides the address backend, halo runs as one process; a reload
    that gives a plugin work starts the worker (one that takes all work away leaves it
    running). A plugin whose work is only serving on sockets says so with
    :func:`halo_listen_on`: its worker then starts on the first connection.
    """
    raise NotImplementedError


@hookspec
def halo_listen_on(config: Config) -> dict[str, str] | None:
    """The sockets this plugin would listen on for ``config`` when serving there is all it
    has to do (an API that answers requests and runs nothing in between), as ``{label:
    endpoint}``: ``endpoint`` written ``unix:/PATH`` or ``HOST:PORT``, ``label`` what the
    log calls it (``"status API"``). ``None`` or ``{}``: the plugin has other work.

    Called in the child that validates the configuration, right after :func:`halo_has_work`
    answered True, at start and at each reload; never in the daemon. Like
    :func:`halo_has_work` it must be cheap and read only ``config``. When every plugin with
    work answers with endpoints and the configuration has nothing else for a worker, halo
    starts none: the VRRP process binds the endpoints itself (a unix socket with mode 0660,
    a stale file replaced, as :func:`halo_core.listen.bind` does), never accepts on them,
    and starts the worker on their first connection, handing the sockets over; that
    connection waits in the backlog and is answered by the worker. Serve with
    ``halo_core.listen.inherited(endpoint) or halo_core.listen.bind(endpoint)`` at
    :func:`halo_startup`, so an inherited socket is used instead of a new one. A plugin that
    does not implement this hook, or raises in it, gets its worker at once, as before.
    """
    raise NotImplementedError


@hookspec
def halo_subscribe(bus: EventBus) -> None:
    """Subscribe to the event bus with ``bus.subscribe(handler, ...)``.

    Called once per daemon start, after the config is loaded and before any VRRP instance
    starts, so a subscriber sees every event from the first state change on. Every plugin is
    called; the return value is ignored. Handlers run isolated: a handler that raises or
    hangs is logged, counted and timed out without delaying the publisher or other
    subscribers.
    """


@hookspec
def halo_startup(daemon: Daemon) -> Awaitable[None] | None:
    """The daemon is starting with a validated config (``daemon.config``).

    Called once, after :func:`halo_subscribe` and before the VRRP instances start. Return
    ``None`` or an awaitable, which is awaited with a time limit; an exception or time-out is
    logged and reported against this plugin, and the daemon carries on. Every plugin is
    called.
    """


@hookspec
def halo_reload(daemon: Daemon, old: Config, new: Config) -> Awaitable[Changes] | Changes:
    """A new config has been validated and the core has applied it (``daemon.config`` is
    ``new``; backends, checks and VRRP instances are updated): apply your part.

    Called on SIGHUP / ``halo reload`` after validation succeeded (an invalid config never
    reaches plugins). Return what you changed, as short phrases for the reload's summary
    (``"virtual server web changed"``), or ``None``; an awaitable is awaited with a time
    limit. Every plugin is called; failures are logged and do not stop the reload.
    """


@hookspec
def halo_shutdown(daemon: Daemon) -> Awaitable[None] | None:
    """The daemon is stopping (SIGTERM, SIGINT or ``halo`` exiting).

    Called once after the VRRP instances have stepped down (priority 0 sent) and before
    backends withdraw their state. Return ``None`` or an awaitable (awaited with a time
    limit). Every plugin is called; failures are logged.
    """


@hookspec
def halo_daemon_state(daemon: Daemon, state: DaemonState, reason: str) -> None:
    """The running daemon's state changed, as a service manager such as systemd sees it.

    Called with ``state``: ``"started"`` at the end of ``Daemon.start`` (also when a program
    calls it itself; every backend has started and subscribed to the bus, the VRRP instances
    and checks run, so what a plugin publishes now reaches every backend from its first
    event: the place to start what backends apply, such as real-server pools), and by
    ``halo run``'s main loop: ``"start-failed"`` (``reason`` says why; the daemon stops and
    exits 1), ``"reloading"`` (SIGHUP received, the file not read yet), then
    ``"reloaded"`` or ``"reload-refused"`` (invalid file or failed reload; the running
    configuration stays), and ``"stopping"`` (SIGTERM or SIGINT received, before anything
    stops). ``reason`` is empty except for ``"start-failed"``. Returns nothing, and must not
    block: it runs on the daemon's event loop. Every plugin is called; failures are logged.
    """


@hookspec
def halo_add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add sub-commands to the ``halo`` command line.

    Called when the command line is built for a plugin's command or for ``halo --help``,
    before arguments are parsed. Add a parser with
    ``subparsers.add_parser(name, help=..., description=...)``, give every option a ``help=``
    that names its default when it has one (``%(default)s``), and set ``func`` (a callable
    taking the parsed ``argparse.Namespace`` and returning an exit status) with
    ``set_defaults``. Every plugin is called on its own: a name already taken, or an
    exception, is a load error for that plugin (its commands are left out) and the other
    plugins' commands are added.
    """


@hookspec
def halo_convert_keepalived() -> list[Any]:
    """Teach the keepalived.conf converter the keywords this plugin's types stand for, say a
    checker's ``DNS_CHECK`` block.

    Called only by the converter (a tool plugin), once per conversion, before the
    keepalived.conf is read; never by the daemon. Returns a list of the converter API's
    ``Keyword`` (the block a keyword appears in, the keyword, and the function converting
    it) and ``Finish`` (what to write once a block, or the whole file, is converted); import
    that API inside the hook, so the plugin loads without the tool (docs/hooks.md). Every
    plugin is called; a keyword replaces the converter's own entry for it (which reports the
    plugin as missing, or the keyword as unsupported). Two plugins converting the same
    keyword, or a hook that raises, make the conversion fail with a one-line message.
    """
    raise NotImplementedError
