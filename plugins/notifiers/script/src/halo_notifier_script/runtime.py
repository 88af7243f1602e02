"""The ``script`` notifier at run time.

Each event is handled inside ``notify``, which the event bus calls one event at a time per
instance (per sync group, per virtual server): awaiting the scripts there is what keeps a
slow ``notify_backup`` from running after the ``notify_master`` that followed it, while other
instances and the VRRP engine itself never wait for them. The FIFO line is written first,
without blocking, so FIFO readers learn of a change even while a hook script is slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shlex
import socket
import stat
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from halo_core.events import Event, RealServerChanged, SyncGroupStateChanged, VrrpStateChanged
from halo_core.plugin_api import Notifier, PluginContext
from halo_core.script_runner import RunAs, ScriptRunner
from halo_notifier_script.plugin import ScriptNotifierConfig

log = logging.getLogger("halo.notifier.script")

# How long close() lets scripts that are still running finish (the daemon allows 10 s).
CLOSE_GRACE = 5.0


@dataclass(frozen=True)
class Change:
    """What an event means to keepalived-style scripts."""

    type: str  # INSTANCE, GROUP or REAL_SERVER
    name: str
    state: str  # MASTER, BACKUP, FAULT, STOP; UP or DOWN for real servers
    priority: int


def change_of(event: Event) -> Change | None:
    if isinstance(event, VrrpStateChanged):
        return Change("INSTANCE", event.instance, event.new.upper(), event.priority)
    if isinstance(event, SyncGroupStateChanged):
        # keepalived passes priority 0 for a group (vrrp_notify.c)
        return Change("GROUP", event.group, event.new.upper(), 0)
    if isinstance(event, RealServerChanged):
        return Change("REAL_SERVER", event.real_server, "UP" if event.up else "DOWN", event.weight)
    return None


def environment(event: Event, change: Change, *, notifier: str, router_id: str) -> dict[str, str]:
    """The ``HALO_*`` variables every script gets (documented in the README)."""
    env = {
        "HALO_NOTIFIER": notifier,
        "HALO_ROUTER_ID": router_id,
        "HALO_EVENT": event.kind,
        "HALO_TIME": f"{event.time:.6f}",
        "HALO_TYPE": change.type,
        "HALO_NAME": change.name,
        "HALO_STATE": change.state,
    }
    if isinstance(event, VrrpStateChanged):
        env.update(
            HALO_INSTANCE=event.instance,
            HALO_OLD_STATE=event.old,
            HALO_PRIORITY=str(event.priority),
            HALO_REASON=event.reason,
        )
        if event.group:
            env["HALO_GROUP"] = event.group
        if event.interface:
            env["HALO_INTERFACE"] = event.interface
        if event.vrid is not None:
            env["HALO_VRID"] = str(event.vrid)
    elif isinstance(event, SyncGroupStateChanged):
        env.update(
            HALO_GROUP=event.group,
            HALO_OLD_STATE=event.old,
            HALO_PRIORITY="0",
            HALO_MEMBERS=" ".join(event.members),
            HALO_REASON=event.reason,
        )
    elif isinstance(event, RealServerChanged):
        env.update(
            HALO_VIRTUAL_SERVER=event.virtual_server,
            HALO_REAL_SERVER=event.real_server,
            HALO_WEIGHT=str(event.weight),
            HALO_REASON=event.reason,
        )
    return env


def fifo_line(change: Change, event: Event) -> str:
    """keepalived's notify FIFO format: ``INSTANCE "VI_1" MASTER 100`` and
    ``GROUP "VG_1" BACKUP 0``; for real servers ``RS <real server> <virtual server> UP``
    (halo's ADDRESS:PORT labels rather than keepalived's ``[ADDRESS]:proto:PORT``)."""
    if isinstance(event, RealServerChanged):
        return f"RS {event.real_server} {event.virtual_server} {change.state}\n"
    return f'{change.type} "{change.name}" {change.state} {change.priority}\n'


class NotifyFifo:
    """A FIFO written without ever blocking: no reader, or a reader too slow to keep the pipe
    from filling, means the line is dropped (and counted by the caller).

    Only a real FIFO is written to: the path is opened without following a symbolic link and
    vetted on that descriptor (a FIFO owned by root or by ``owners``, not writable by
    others, who could forge lines for its reader), then reopened for writing through the
    descriptor, so what was vetted is what gets written."""

    def __init__(self, path: str, owners: frozenset[int] = frozenset({0})) -> None:
        self.path = path
        self.owners = owners | {0}
        self.fd: int | None = None
        self.created = False
        self.error: str | None = None
        with contextlib.suppress(OSError):
            os.close(self._vetted())

    def _vetted(self) -> int:
        """An O_PATH descriptor of the FIFO, made if missing; OSError (with ``error`` set) if
        it is not one halo may write to."""
        try:
            fd = os.open(self.path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            try:
                os.mkfifo(self.path, 0o600)
            except OSError as exc:
                self.error = f"cannot create {self.path}: {exc.strerror}"
                raise
            self.created = True
            fd = os.open(self.path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            self.error = f"{self.path}: {exc.strerror}"
            raise
        st = os.fstat(fd)
        problem = None
        if stat.S_ISLNK(st.st_mode):
            problem = f"{self.path} is a symbolic link, not a FIFO"
        elif not stat.S_ISFIFO(st.st_mode):
            problem = f"{self.path} exists and is not a FIFO"
        elif st.st_uid not in self.owners:
            problem = f"{self.path} is owned by uid {st.st_uid}, not root or the script user"
        elif st.st_mode & stat.S_IWOTH:
            problem = f"{self.path} is writable by others"
        if problem:
            os.close(fd)
            self.error = problem
            raise OSError(errno.EPERM, problem)
        return fd

    def write(self, line: str) -> bool:
        data = line.encode()
        if self.fd is None:
            try:
                vetted = self._vetted()
            except OSError:
                return False
            try:
                # O_NONBLOCK: open fails with ENXIO rather than wait for a reader.
                self.fd = os.open(
                    f"/proc/self/fd/{vetted}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC
                )
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    self.error = f"{self.path}: {exc.strerror}"
                return False
            finally:
                os.close(vetted)
        try:
            # Lines are far below PIPE_BUF: a write is atomic, all or EAGAIN.
            return os.write(self.fd, data) == len(data)
        except BlockingIOError:
            return False
        except OSError:  # EPIPE: the reader went away; reopen on the next line
            self.close()
            return False

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def remove(self) -> None:
        self.close()
        if self.created:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


class ScriptNotifier(Notifier):
    """Runs the configured commands for VRRP instance, sync group and real server changes."""

    def __init__(self, config: ScriptNotifierConfig, context: PluginContext) -> None:
        g = context.config.global_
        self.config = config
        self.name = context.name
        self.router_id = g.router_id or socket.gethostname()
        # Raises ValueError for an unknown user: the daemon then reports the notifier as not
        # started instead of running hooks as the wrong user.
        self.script_timeout = float(config.timeout)
        self.scripts = ScriptRunner(
            run_as=RunAs.resolve(config.script_user or g.script_user),
            secure=g.enable_script_security,
            timeout=self.script_timeout,
        )
        # The bus cancels a notify() that runs longer than this: allow the state's script,
        # the generic one and a margin.
        self.timeout = 2 * self.script_timeout + 5.0
        self.counters: Counter[str] = Counter()
        self.last_error: str | None = None
        self.inflight = 0
        self.fifo: NotifyFifo | None = None
        if config.notify_fifo:
            script_uid = self.scripts.run_as.uid if self.scripts.run_as else None
            owners = frozenset({os.geteuid() if script_uid is None else script_uid})
            self.fifo = NotifyFifo(config.notify_fifo, owners)
            if self.fifo.error:
                log.error("notifier %s: notify_fifo: %s", self.name, self.fifo.error)

    def commands_for(self, change: Change) -> list[tuple[str, list[str]]]:
        """(label, argv) of the commands to run, in order: the state's own, then ``notify``."""
        c = self.config
        if change.type == "REAL_SERVER":
            own = {"UP": ("notify_up", c.notify_up), "DOWN": ("notify_down", c.notify_down)}
        else:
            own = {
                "MASTER": ("notify_master", c.notify_master),
                "BACKUP": ("notify_backup", c.notify_backup),
                "FAULT": ("notify_fault", c.notify_fault),
                "STOP": ("notify_stop", c.notify_stop),
            }
        out: list[tuple[str, list[str]]] = []
        label, command = own.get(change.state, ("", None))
        if command:
            out.append((label, shlex.split(command)))
        if c.notify and change.type != "REAL_SERVER":
            # keepalived appends its four arguments after the configured ones.
            extra = [change.type, change.name, change.state, str(change.priority)]
            out.append(("notify", [*shlex.split(c.notify), *extra]))
        return out

    async def notify(self, event: Event) -> None:
        change = change_of(event)
        if change is None:
            return
        self.counters["events"] += 1
        if self.fifo is not None:
            if self.fifo.write(fifo_line(change, event)):
                self.counters["fifo_written"] += 1
            else:
                self.counters["fifo_dropped"] += 1
        commands = self.commands_for(change)
        if not commands:
            return
        env = environment(event, change, notifier=self.name, router_id=self.router_id)
        self.inflight += 1
        try:
            for label, argv in commands:
                await self._run(label, argv, env, change)
        finally:
            self.inflight -= 1

    async def _run(self, label: str, argv: list[str], env: dict[str, str], change: Change) -> None:
        started = time.monotonic()
        self.counters["runs"] += 1
        res = await self.scripts.run(argv, env=env)  # reported below, with counters
        took = time.monotonic() - started
        what = f"notifier {self.name}: {label} for {change.name} {change.state}"
        if res.ok:
            self.counters["succeeded"] += 1
            log.info("%s: done in %.2fs", what, took)
            return
        if res.timed_out:
            self.counters["timed_out"] += 1
        elif res.error is not None:
            self.counters["refused"] += 1  # not found, not executable, insecure
        else:
            self.counters["failed"] += 1
        self.last_error = f"{label}: {res.describe()}"
        log.warning("%s: %s (%s, after %.2fs)", what, res.describe(), argv[0], took)

    def status(self) -> dict[str, Any]:
        keys = (
            "events",
            "runs",
            "succeeded",
            "failed",
            "timed_out",
            "refused",
            "fifo_written",
            "fifo_dropped",
        )
        out: dict[str, Any] = {k: self.counters[k] for k in keys}
        out["running"] = self.inflight
        out["last_error"] = self.last_error
        return out

    async def close(self) -> None:
        # A notify_stop published as the daemon stops may still be running: give it a moment
        # (the bus kills what is left when it closes). Real time, since this waits on
        # processes, not on halo's timers.
        deadline = time.monotonic() + min(CLOSE_GRACE, self.script_timeout)
        while self.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.fifo is not None:
            self.fifo.remove()
