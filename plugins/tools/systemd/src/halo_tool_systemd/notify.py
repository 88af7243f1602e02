"""systemd integration without libsystemd: ``sd_notify`` readiness, status, reload, stop and
the watchdog, driven by the daemon's hooks (:mod:`halo_tool_systemd.plugin`).

The protocol is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace), as described in
sd_notify(3). Outside systemd (no ``$NOTIFY_SOCKET``) everything here does nothing.

The watchdog keep-alive (``WATCHDOG=1`` every half ``WatchdogSec``) is sent from a timer on
the daemon's event loop, not from a thread: if the loop stalls, VRRP stalls with it, and
then systemd should notice and restart halo. That is the point of the watchdog. It starts
from ``halo_startup``, which runs on that loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from halo_core.daemon import Daemon
    from halo_core.events import Event
    from halo_core.hookspecs import DaemonState
    from halo_engine_pools.pool import Pool

log = logging.getLogger("halo.systemd")

_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Notifier:
    """A connection to systemd's notification socket."""

    def __init__(self, address: str) -> None:
        if address.startswith("@"):
            self.address = "\0" + address[1:]
        elif address.startswith("/"):
            self.address = address
        else:
            raise ValueError(f"unsupported NOTIFY_SOCKET {address!r}")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        # Never block the event loop on systemd: a full receive queue drops the message.
        self.sock.setblocking(False)

    def send(self, **fields: Any) -> bool:
        """Send ``KEY=VALUE`` lines (keyword names upper-cased); False if it failed."""
        text = "\n".join(f"{k.upper()}={v}" for k, v in fields.items())
        try:
            self.sock.sendto(text.encode(), self.address)
        except OSError as exc:
            log.debug("sd_notify %r failed: %s", text, exc)
            return False
        return True

    def close(self) -> None:
        self.sock.close()


def watchdog_interval(
    environ: dict[str, str] | os._Environ[str] = os.environ, main_pid: int | None = None
) -> float | None:
    """Seconds between keep-alives (half of ``WatchdogSec``), or None without a watchdog or
    when ``$WATCHDOG_PID`` names another process than halo's main one (``main_pid``)."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    main_pid = os.getpid() if main_pid is None else main_pid
    if not usec or (pid and pid.isdigit() and int(pid) != main_pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 / 2 if value > 0 else None


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Integration:
    """What the daemon tells systemd. Built by :func:`attach`; every method is harmless
    when not running under systemd."""

    def __init__(self, daemon: Daemon, notifier: Notifier | None, interval: float | None):
        self.daemon = daemon
        self.notifier = notifier
        self.interval = interval
        self._timer: asyncio.TimerHandle | None = None
        self._status_pending = False
        self._last_status: str | None = None
        self._subscription: Any = None
        if notifier is not None and interval is not None:
            self._keepalive()

    def _send(self, **fields: Any) -> None:
        if self.notifier is not None:
            self.notifier.send(**fields)

    def _keepalive(self) -> None:
        assert self.interval is not None
        self._send(watchdog=1)
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._keepalive)

    def ready(self) -> None:
        """Start-up finished: READY=1 and a status line, then keep the status current."""
        if self.notifier is None:
            return
        self._send(ready=1, status=self.status_line(), mainpid=self.daemon.main_pid)
        if self._subscription is None:
            self._subscription = self.daemon.bus.subscribe(
                self._on_event,
                kinds=["vrrp_state", "vrrp_group_state", "check_state", "config_reloaded"],
                name="systemd-status",
                timeout=1.0,
            )

    def reloading(self) -> None:
        # MONOTONIC_USEC is what systemd >= 253 (Type=notify-reload) needs to match this
        # RELOADING=1 with its own SIGHUP; older ones ignore it.
        self._send(reloading=1, monotonic_usec=monotonic_usec(), status="reloading")

    def reloaded(self, ok: bool) -> None:
        status = self.status_line()
        if not ok:
            status = "reload refused (invalid configuration; see the log); " + status
        self._send(ready=1, status=status)

    def stopping(self) -> None:
        self._send(stopping=1, status="stopping: stepping down and removing addresses")

    def failed(self, why: str) -> None:
        self._send(status=f"cannot start: {why}")

    def tell(self, state: DaemonState, reason: str) -> None:
        """What systemd hears when the daemon's state changes (the ``halo_daemon_state``
        hook)."""
        if state == "started":
            self.ready()
        elif state == "start-failed":
            self.failed(reason)
        elif state == "reloading":
            self.reloading()
        elif state in ("reloaded", "reload-refused"):
            self.reloaded(state == "reloaded")
        elif state == "stopping":
            self.stopping()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.notifier is not None:
            self.notifier.close()
            self.notifier = None

    def _on_event(self, event: Event) -> None:
        # Several changes in a row (a sync group, a reload) make one status update.
        if not self._status_pending:
            self._status_pending = True
            asyncio.get_running_loop().call_soon(self._update_status)

    def _update_status(self) -> None:
        self._status_pending = False
        line = self.status_line()
        if line != self._last_status:
            self._last_status = line
            self._send(status=line)

    def status_line(self) -> str:
        """One line for ``systemctl status``: instance states, then checks and pools."""
        d = self.daemon
        parts = []
        vrrp = d.vrrp_status()
        if vrrp is not None and vrrp.instances:
            states = [f"{n} {i.state}" for n, i in vrrp.instances.items()]
            shown = ", ".join(states[:6]) + (f" (+{len(states) - 6})" if len(states) > 6 else "")
            parts.append(shown)
        if d.checks:
            up = sum(1 for r in d.checks.values() if r.up)
            parts.append(f"{up}/{len(d.checks)} checks up")
        pools = _pools(d)
        if pools:
            ok = sum(1 for p in pools if p.quorum)
            parts.append(f"{ok}/{len(pools)} virtual servers with quorum")
        return "; ".join(parts) or "running"


def _pools(daemon: Daemon) -> tuple[Pool, ...]:
    """The real-server pools, from halo-engine-pools (none when it is not installed)."""
    try:
        from halo_engine_pools import pools
    except ImportError:
        return ()
    return pools(daemon)


def attach(daemon: Daemon) -> Integration:
    """Connect to systemd if it started us (``$NOTIFY_SOCKET``), and start the watchdog
    keep-alive if it asked for one. Call from the daemon's running event loop.

    The variables are removed from the environment so that scripts halo runs cannot talk
    to systemd on its behalf.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    interval = watchdog_interval(main_pid=daemon.main_pid)
    for name in _ENV:
        os.environ.pop(name, None)
    notifier = None
    if address:
        try:
            notifier = Notifier(address)
        except (ValueError, OSError) as exc:
            log.warning("systemd notification socket unusable: %s", exc)
    integration = Integration(daemon, notifier, interval)
    if notifier is not None:
        log.debug(
            "systemd notifications on %s%s",
            address,
            f", watchdog every {interval:g}s" if interval else "",
        )
    return integration
