"""The ``script`` notifier at run time.

Each event is handled inside ``notify``, which the event bus calls one event at a time per
instance (per sync group, per virtual server): awaiting the scripts there is what keeps a
slow ``notify_backup`` from running after the ``notify_master`` that followed it, while other
instances and the VRRP engine itself never wait for them. The FIFO line is written first,
without blocking, so FIFO readers learn of a change even while a hook script is slow.

The FIFO's lines are keepalived 2.2.7's (``vrrp_notify.c``, ``ipwrapper.c``): ``INSTANCE
"VI_1" MASTER 100``, ``GROUP "G1" BACKUP 0``, ``INSTANCE "VI_1" MASTER_PRIORITY 90``,
``INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100``, ``VS [192.0.2.10]:tcp:80 UP`` and ``RS
[10.0.0.5]:tcp:80 [192.0.2.10]:tcp:80 DOWN``. As keepalived does, the FIFO is opened for
reading and writing, so lines wait in the pipe (64 KiB) until a reader comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shlex
import signal
import socket
import stat
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from halo_core.config.model import VirtualServer
from halo_core.events import (
    Event,
    PoolChanged,
    PriorityChanged,
    RealServerChanged,
    SyncGroupStateChanged,
    VrrpAnnounce,
    VrrpStateChanged,
)
from halo_core.plugin_api import Notifier, PluginContext
from halo_core.script_runner import RunAs, ScriptRunner
from halo_notifier_script.plugin import ScriptNotifierConfig

log = logging.getLogger("halo.notifier.script")

# How long close() lets scripts that are still running finish (the daemon allows 10 s).
CLOSE_GRACE = 5.0
# How long the FIFO script has, after SIGTERM and the FIFO's end, before it is killed.
FIFO_SCRIPT_GRACE = 2.0
# The FIFO script runs as long as the notifier: a time-out it never reaches (ten years).
FIFO_SCRIPT_LIFETIME = 10 * 365 * 86400.0
# keepalived's events that are not states: written to the FIFO only (and the
# notify_master_rx_lower_pri script for the first).
RX_LOWER_PRI = "MASTER_RX_LOWER_PRI"
PRIORITY_STATES = ("MASTER_PRIORITY", "BACKUP_PRIORITY")


@dataclass(frozen=True)
class Change:
    """What an event means to keepalived-style scripts."""

    type: str  # INSTANCE, GROUP, REAL_SERVER or VIRTUAL_SERVER
    name: str
    # MASTER, BACKUP, FAULT, STOP, DELETED; MASTER_RX_LOWER_PRI, MASTER_PRIORITY and
    # BACKUP_PRIORITY (FIFO only); UP or DOWN for real and virtual servers
    state: str
    priority: int


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


def trio(address: str, protocol: str, port: int | None) -> str:
    """keepalived's ``[ADDRESS]:proto:PORT`` (``inet_sockaddrtotrio``)."""
    return f"[{address}]:{protocol.lower()}:{port or 0}"


def vs_name(vs: VirtualServer | None, label: str) -> str:
    """keepalived's name of a virtual server in its FIFO lines (``format_vs``): ``FWM 7``,
    ``[ADDRESS]:tcp:80``; a group, which halo does not name, is ``[its label]:PORT``."""
    if vs is None:
        return label
    if vs.fwmark is not None:
        return f"FWM {vs.fwmark}"
    if vs.address is not None:
        return trio(str(vs.address), vs.protocol, vs.port)
    return f"[{label}]:{vs.port or 0}"


def split_label(label: str) -> tuple[str, int | None]:
    """``ADDRESS:PORT`` / ``[V6]:PORT`` / ``ADDRESS`` (a pool's real-server label)."""
    if label.startswith("["):
        host, _, rest = label[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if label.count(":") == 1:
        host, port = label.split(":")
        return host, int(port)
    return label, None


def fifo_line(change: Change, event: Event, vs: VirtualServer | None = None) -> str:
    """keepalived's notify FIFO line for a change (see the module's docstring)."""
    if isinstance(event, RealServerChanged):
        host, port = split_label(event.real_server)
        protocol = vs.protocol if vs is not None else "TCP"
        rs = trio(host, protocol, port)
        return f"RS {rs} {vs_name(vs, event.virtual_server)} {change.state}\n"
    if isinstance(event, PoolChanged):
        return f"VS {vs_name(vs, event.virtual_server)} {change.state}\n"
    return f'{change.type} "{change.name}" {change.state} {change.priority}\n'


class NotifyFifo:
    """A FIFO written without ever blocking. Opened for reading and writing, as keepalived
    opens it: lines wait in the pipe until somebody reads; a pipe full because nobody reads,
    or the reader is too slow, means the line is dropped (and counted by the caller).

    Only a real FIFO is written to: the path is opened without following a symbolic link and
    vetted on that descriptor (a FIFO owned by root or by ``owners``, not writable by
    others, who could forge lines for its reader), then reopened for writing through the
    descriptor, so what was vetted is what gets written."""

    def __init__(
        self,
        path: str,
        owners: frozenset[int] = frozenset({0}),
        chown: tuple[int, int] | None = None,
    ) -> None:
        self.path = path
        self.owners = owners | {0}
        # Who gets a FIFO halo makes (keepalived chowns its FIFO to the user it is given):
        # the script user, so that its notify_fifo_script can read it.
        self.chown = chown
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
            if self.chown is not None:
                with contextlib.suppress(OSError):
                    os.chown(self.path, *self.chown, follow_symlinks=False)
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

    def open(self) -> bool:
        """Open the FIFO if it is not (keepalived opens its FIFOs at start): lines written
        from then on wait in the pipe for a reader. False if it cannot be opened."""
        if self.fd is not None:
            return True
        try:
            vetted = self._vetted()
        except OSError:
            return False
        try:
            # O_RDWR, as keepalived: never waits for a reader, never gets EPIPE.
            self.fd = os.open(f"/proc/self/fd/{vetted}", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            self.error = f"{self.path}: {exc.strerror}"
            return False
        finally:
            os.close(vetted)
        return True

    def write(self, line: str) -> bool:
        data = line.encode()
        if not self.open():
            return False
        assert self.fd is not None
        try:
            # Lines are far below PIPE_BUF: a write is atomic, all or EAGAIN.
            return os.write(self.fd, data) == len(data)
        except BlockingIOError:  # the pipe is full
            return False
        except OSError:
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
    """Runs the configured commands for VRRP instance, sync group and real server changes,
    and writes keepalived's notify FIFO lines."""

    def __init__(self, config: ScriptNotifierConfig, context: PluginContext) -> None:
        g = context.config.global_
        self.config = config
        self.name = context.name
        self.router_id = g.router_id or socket.gethostname()
        # Raises ValueError for an unknown user: the daemon then reports the notifier as not
        # started instead of running hooks as the wrong user.
        self.script_timeout = float(config.timeout)
        run_as = RunAs.resolve(config.script_user or g.script_user)
        self.scripts = ScriptRunner(
            run_as=run_as, secure=g.enable_script_security, timeout=self.script_timeout
        )
        # The bus cancels a notify() that runs longer than this: allow the state's script,
        # the generic one and a margin.
        self.timeout = 2 * self.script_timeout + 5.0
        self.counters: Counter[str] = Counter()
        self.last_error: str | None = None
        self.inflight = 0
        # What the lines keepalived writes need and the events do not carry: each
        # instance's last state and priority, each virtual server's config and quorum.
        self.instance_state: dict[str, tuple[str, int]] = {}
        self.quorum: dict[str, bool] = {}
        self.services: dict[str, VirtualServer] = {
            vs.label: vs for vs in context.config.virtual_servers
        }
        self.fifo: NotifyFifo | None = None
        self.fifo_script: asyncio.Task[Any] | None = None
        self.fifo_script_pid: int | None = None
        if config.notify_fifo:
            script_uid = run_as.uid if run_as else None
            owners = frozenset({os.geteuid() if script_uid is None else script_uid})
            chown = None
            if run_as and run_as.uid is not None and run_as.gid is not None:
                chown = (run_as.uid, run_as.gid)
            self.fifo = NotifyFifo(config.notify_fifo, owners, chown)
            if self.fifo.error:
                log.error("notifier %s: notify_fifo: %s", self.name, self.fifo.error)
            elif config.notify_fifo_script:
                self._start_fifo_script(config.notify_fifo_script, config.notify_fifo, run_as)
            if self.fifo.error is None and not self.fifo.open():
                log.error("notifier %s: notify_fifo: %s", self.name, self.fifo.error)

    # ------------------------------------------------------------------ the FIFO script

    def _start_fifo_script(self, command: str, fifo: str, run_as: RunAs | None) -> None:
        """keepalived's notify_fifo_script: started before the FIFO is opened, with the
        FIFO's path as its last argument, running as long as the notifier."""
        runner = ScriptRunner(
            run_as=run_as,
            secure=self.scripts.secure,
            timeout=FIFO_SCRIPT_LIFETIME,
        )

        def started(pid: int) -> None:
            self.fifo_script_pid = pid

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.error("notifier %s: notify_fifo_script needs a running event loop", self.name)
            return
        argv = [*shlex.split(command), fifo]
        self.fifo_script = loop.create_task(
            runner.run(argv, started=started), name=f"notifier:{self.name}:fifo-script"
        )
        self.fifo_script.add_done_callback(self._fifo_script_ended)

    def _fifo_script_ended(self, task: asyncio.Task[Any]) -> None:
        self.fifo_script_pid = None
        if task.cancelled():
            return
        res = task.result()
        level = logging.INFO if res.ok else logging.WARNING
        log.log(level, "notifier %s: notify_fifo_script ended: %s", self.name, res.describe())
        if res.error is not None:
            self.last_error = f"notify_fifo_script: {res.describe()}"

    async def _stop_fifo_script(self) -> None:
        """As keepalived: SIGTERM, then the FIFO's end (the script reads what is left, the
        STOP lines), then a kill if it is still there."""
        task = self.fifo_script
        if task is None:
            return
        pid = self.fifo_script_pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
        if self.fifo is not None:
            self.fifo.close()
        done, _ = await asyncio.wait({task}, timeout=FIFO_SCRIPT_GRACE)
        if not done:
            task.cancel()  # kills the script's process group
            await asyncio.wait({task}, timeout=FIFO_SCRIPT_GRACE)

    # ------------------------------------------------------------------ events

    def _wants(self, option: bool | list[str], instance: str) -> bool:
        if isinstance(option, list):
            return instance in option
        return bool(option)

    def change_of(self, event: Event) -> Change | None:
        """What ``event`` means to keepalived-style scripts and FIFO readers, or None."""
        c = self.config
        if isinstance(event, VrrpStateChanged):
            self.instance_state[event.instance] = (event.new.upper(), event.priority)
            state = event.new.upper()
            if event.removed:
                # keepalived reports an instance a reload deleted as FAULT, unless asked
                # for DELETED (notify_deleted).
                deleted = c.notify_deleted
                asked = True if isinstance(deleted, str) else self._wants(deleted, event.instance)
                state = "DELETED" if asked else "FAULT"
            return Change("INSTANCE", event.instance, state, event.priority)
        if isinstance(event, SyncGroupStateChanged):
            # keepalived passes priority 0 for a group (vrrp_notify.c)
            return Change("GROUP", event.group, event.new.upper(), 0)
        if isinstance(event, RealServerChanged):
            return Change(
                "REAL_SERVER", event.real_server, "UP" if event.up else "DOWN", event.weight
            )
        if isinstance(event, PriorityChanged):
            state, _ = self.instance_state.get(event.instance, ("BACKUP", event.old))
            self.instance_state[event.instance] = (state, event.new)
            if not self._wants(c.notify_priority_changes, event.instance):
                return None
            kind = PRIORITY_STATES[0] if state == "MASTER" else PRIORITY_STATES[1]
            return Change("INSTANCE", event.instance, kind, event.new)
        if isinstance(event, VrrpAnnounce):
            _, priority = self.instance_state.get(event.instance, ("MASTER", 0))
            return Change("INSTANCE", event.instance, RX_LOWER_PRI, priority)
        if isinstance(event, PoolChanged):
            before = self.quorum.get(event.virtual_server)
            self.quorum[event.virtual_server] = event.quorum
            if before is None or before == event.quorum:
                return None  # keepalived writes quorum changes
            return Change(
                "VIRTUAL_SERVER", event.virtual_server, "UP" if event.quorum else "DOWN", 0
            )
        return None

    def commands_for(self, change: Change) -> list[tuple[str, list[str]]]:
        """(label, argv) of the commands to run, in order: the state's own, then ``notify``."""
        c = self.config
        deleted = c.notify_deleted if isinstance(c.notify_deleted, str) else None
        if change.type == "VIRTUAL_SERVER" or change.state in PRIORITY_STATES:
            return []  # keepalived writes these to the FIFO only
        if change.type == "REAL_SERVER":
            own = {"UP": ("notify_up", c.notify_up), "DOWN": ("notify_down", c.notify_down)}
        else:
            own = {
                "MASTER": ("notify_master", c.notify_master),
                "BACKUP": ("notify_backup", c.notify_backup),
                "FAULT": ("notify_fault", c.notify_fault),
                "STOP": ("notify_stop", c.notify_stop),
                "DELETED": ("notify_deleted", deleted),
                RX_LOWER_PRI: ("notify_master_rx_lower_pri", c.notify_master_rx_lower_pri),
            }
        out: list[tuple[str, list[str]]] = []
        label, command = own.get(change.state, ("", None))
        if command:
            out.append((label, shlex.split(command)))
        if c.notify and change.type != "REAL_SERVER" and change.state != RX_LOWER_PRI:
            # keepalived appends its four arguments after the configured ones.
            extra = [change.type, change.name, change.state, str(change.priority)]
            out.append(("notify", [*shlex.split(c.notify), *extra]))
        return out

    async def notify(self, event: Event) -> None:
        change = self.change_of(event)
        if change is None:
            return
        self.counters["events"] += 1
        if self.fifo is not None:
            name = getattr(event, "virtual_server", None)
            vs = self.services.get(name) if name else None
            if self.fifo.write(fifo_line(change, event, vs)):
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
        out["fifo_script_running"] = self.fifo_script_pid is not None
        return out

    async def close(self) -> None:
        # A notify_stop published as the daemon stops may still be running: give it a moment
        # (the bus kills what is left when it closes). Real time, since this waits on
        # processes, not on halo's timers.
        deadline = time.monotonic() + min(CLOSE_GRACE, self.script_timeout)
        while self.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await self._stop_fifo_script()
        if self.fifo is not None:
            self.fifo.remove()
