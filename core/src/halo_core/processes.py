"""halo as two processes (docs/processes.md): the VRRP process that ``halo run`` starts, and
a worker it supervises for everything else.

The VRRP process runs the VRRP engine and the backends that provide addresses, nothing
else. The worker (``python -m halo_core.worker``, started by :class:`WorkerSupervisor`)
loads the same configuration and runs checks, pools, notifiers, the other backends and
every plugin hook; it sees VRRP through :class:`VrrpPeer`. Both talk over a
:class:`~halo_core.ipc.Link`; events published on either side's bus reach the other
side's subscribers.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from halo_core import ipc
from halo_core.events import (
    CheckStateChanged,
    Event,
    PriorityChanged,
    SyncGroupStateChanged,
    VrrpStateChanged,
)
from halo_core.vrrp import status as vrrp_status

if TYPE_CHECKING:
    from halo_core.daemon import Daemon
    from halo_core.listen import Bound

log = logging.getLogger("halo")

PING_INTERVAL = 1.0
HANG_LIMIT = 10.0
"""A worker that answers no ping for this long is killed and restarted."""
START_LIMIT = 180.0
"""How long a new worker may take to say it is ready: it imports and starts every plugin
first, which takes seconds on a slow machine (minutes in an emulated VM), and a plugin's
start may hold its loop so that pings go unanswered meanwhile. Once ready, HANG_LIMIT
applies."""
STOP_LIMIT = 60.0
"""How long the worker may take to stop (its shutdown hooks, a backend flushing a large
IPVS table) before it is killed. VRRP has stepped down by then - the backup has taken
over - so there is no hurry; systemd's unit allows 90 s for the whole stop."""
PREPARE_LIMIT = 30.0
"""How long the VRRP process waits for the worker to prepare a reload (load the file, build
the checkers it adds, have its backends take the file) before it refuses the reload. Longer
than HANG_LIMIT: a worker whose loop is held that long is killed before, and one that dies
cannot say no (docs/processes.md)."""
STABLE_AFTER = 30.0
"""A worker that ran this long restarts after the shortest delay again."""
SETTLE_AFTER_RELOAD = 3.0
"""Seconds without a reload after which the worker gives the old configuration's memory back."""
NOT_FORWARDED = frozenset({"config_reloaded"})
"""Kinds each side publishes for itself (both reload the file)."""


def watch_children_without_thread() -> None:
    """Wait for child processes (the worker, a reload's validation) through a pidfd on the
    running loop. Python 3.11's default waits for each in a thread of its own, whose stack
    and malloc arena cost the VRRP process about a megabyte (3.12 uses a pidfd itself).
    Process-wide: for the VRRP process only, whose one loop lives as long as it does."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)


def _vrrp_kind(event: Event) -> bool:
    return isinstance(event, VrrpStateChanged | PriorityChanged | SyncGroupStateChanged)


class WorkerSupervisor:
    """In the VRRP process: starts the worker, restarts it when it dies or hangs (with a
    growing delay, counted and logged), and bridges the two buses. Never waits on the
    worker from the VRRP loop: every write is non-blocking."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.link: ipc.Link | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.stopping = False
        self.ready = False
        self._failures = 0  # restarts in a row without a stable run
        self._started_at = 0.0
        self._last_pong = 0.0
        self._heard = False
        self._ping_timer: asyncio.TimerHandle | None = None
        self._status_pending = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._prepare_id = 0
        self._preparing: asyncio.Future[list[str] | None] | None = None
        self._asked: int | None = None  # the prepare to commit or abort next
        # Listening sockets the VRRP process held for the worker (halo_core.listen): handed
        # to the next worker started, then closed here; a restarted worker binds its own.
        self.handing: list[Bound] = []
        # What VRRP publishes while it starts, before the first worker exists: the first
        # worker's notifiers hear it (a restarted worker starts from the status instead).
        self._early: list[Event] | None = []
        daemon.bus.taps.append(self._tap)

    def wants(self) -> list[str]:
        """Kinds this side's subscribers ask for by name (the engine's check_state and
        backend_failed): the worker sends only those, not its thousands of check results a
        second. A subscriber of every kind (the address backend) gets what arrives."""
        kinds: set[str] = {"check_state", "backend_failed", "backend_cleared"}
        for sub in self.daemon.bus.subscriptions:
            kinds |= sub.kinds or set()
        return sorted(kinds)

    # -- lifecycle

    def start(self) -> None:
        self._spawn_soon(0.0)

    def _spawn_soon(self, delay: float) -> None:
        task = asyncio.get_running_loop().create_task(self._spawn(delay), name="worker:spawn")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        d = self.daemon
        while d.reload_pending and not self.stopping:
            # a worker that died while preparing a reload: the next gets what the reload
            # decides (the file VRRP applies, or the running one), not what ran before
            await asyncio.sleep(0.05)
        if self.stopping:
            return
        if d.worker_input < 0:  # a daemon that read its file itself
            from halo_core.handover import input_file

            d.worker_input = input_file(d.config, d.plugins)
        ours, theirs = ipc.socketpair()
        # No file to read, no plugin to discover: the worker gets the document and the
        # plugins the validating child found (docs/processes.md).
        cmd = [sys.executable, "-m", "halo_core.worker", "--fd", str(theirs.fileno())]
        cmd += ["--input-fd", str(d.worker_input)]
        level = logging.getLevelName(logging.getLogger("halo").getEffectiveLevel())
        cmd += ["--log-level", str(level).lower(), *d.log_options]
        fds, env = [theirs.fileno(), d.worker_input], None
        handing, self.handing = self.handing, []
        if handing:
            from halo_core import listen

            held, named = listen.handing_over(handing)
            fds += held
            env = dict(os.environ, **{listen.ENV: named})
        try:
            process = await asyncio.create_subprocess_exec(*cmd, pass_fds=fds, env=env)
        except OSError as exc:
            ours.close()
            theirs.close()
            log.error("worker process: cannot start: %s", exc)
            self._after_exit(None)
            return
        finally:
            for bound in handing:
                # the worker owns them now, and the unix socket's file; gone with a worker
                # that could not start, they leave a stale file its successor replaces
                bound.close(unlink=False)
        theirs.close()
        self.process = process
        self.ready = False
        self.link = link = ipc.Link(ours, self._on_message)
        self._started_at = self._last_pong = time.monotonic()
        self._heard = False
        link.send(
            {
                "t": "hello",
                "pid": os.getpid(),
                "wants": self.wants(),
                "checks": dict(d.known_checks),
                "status": self._status_wire(),
            }
        )
        early, self._early = self._early or [], None
        for event in early:
            link.send_event(event)
        log.info("worker process %d started", process.pid)
        self._arm_ping()
        code = await process.wait()
        link.close()
        if self._preparing is not None and not self._preparing.done():
            self._preparing.set_result(None)  # it cannot answer now
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        if not self.stopping:
            self._after_exit(code)

    def _after_exit(self, code: int | None) -> None:
        if time.monotonic() - self._started_at > STABLE_AFTER:
            self._failures = 0
        self._failures += 1
        self.restarts += 1
        delay = min(10.0, 0.2 * 2 ** (self._failures - 1))
        how = f"exited with status {code}" if code is not None and code >= 0 else "was killed"
        if code is not None and code < 0:
            how = f"was killed by {signal.Signals(-code).name}"
        log.error(
            "worker process %s; restart %d in %.1fs (VRRP is not affected; tracked checks keep"
            " their last state meanwhile)",
            how,
            self.restarts,
            delay,
        )
        self._spawn_soon(delay)

    def _arm_ping(self) -> None:
        self._ping_timer = asyncio.get_running_loop().call_later(PING_INTERVAL, self._ping)

    def _ping(self) -> None:
        link, process = self.link, self.process
        if link is None or link.closed or process is None or process.returncode is not None:
            return
        silent = time.monotonic() - self._last_pong
        if silent > (HANG_LIMIT if self._heard else START_LIMIT):
            log.error("worker process %d answered nothing for %.0fs: killed", process.pid, silent)
            process.kill()
            return
        link.send({"t": "ping"})
        self._arm_ping()

    async def prepare(self, given: int) -> list[str]:
        """Ask the worker to prepare a reload (the first phase: nothing runs differently
        yet) of the configuration in memory file ``given`` (passed with the message), and
        wait for its answer, bounded by PREPARE_LIMIT; the VRRP loop runs on meanwhile.
        Gives the worker's problems, ``[]`` when it is ready to commit. :meth:`finish` must
        follow. No worker to ask, or one that dies before it answers, counts as ready: a
        restarted worker gets the configuration applied (docs/processes.md)."""
        link, process = self.link, self.process
        self._asked = None
        if link is None or link.closed or process is None or process.returncode is not None:
            log.warning("reload: no worker process to prepare it; a new one gets the file")
            return []
        self._prepare_id += 1
        self._asked = ident = self._prepare_id
        answer: asyncio.Future[list[str] | None] = asyncio.get_running_loop().create_future()
        self._preparing = answer
        link.send({"t": "prepare", "id": ident}, fds=[given])
        try:
            async with asyncio.timeout(PREPARE_LIMIT):
                problems = await answer
        except TimeoutError:
            return [f"no answer within {PREPARE_LIMIT:g}s"]
        finally:
            self._preparing = None
        if problems is None:
            log.warning(
                "reload: the worker process ended before it answered; VRRP applies the file,"
                " and the restarted worker gets it"
            )
            self._asked = None
            return []
        return problems

    def finish(self, *, commit: bool, vrrp_changes: list[str] | None = None) -> None:
        """The second phase: tell the worker to commit what it prepared (this process has
        applied its part), or to put it back."""
        ident, self._asked = self._asked, None
        if ident is not None and self.link is not None:
            t = "commit" if commit else "abort"
            self.link.send({"t": t, "id": ident, "vrrp_changes": vrrp_changes or []})

    def reload(self, vrrp_changes: list[str], *, refused: bool = False) -> None:
        """Tell the worker to reload too, or (``refused``) that this process refused the
        file, so the worker keeps its configuration too and only reports the refusal."""
        if self.link is not None:
            self.link.send({"t": "reload", "vrrp_changes": vrrp_changes, "refused": refused})

    async def stop(self) -> None:
        """Tell the worker to stop (after the STOP transitions it has been sent), wait for
        it (bounded), kill it if it does not go."""
        self.stopping = True
        handing, self.handing = self.handing, []
        for bound in handing:  # no worker took them
            bound.close()
        for task in list(self._tasks):
            if self.process is None:
                task.cancel()
        link, process = self.link, self.process
        if link is not None:
            link.send({"t": "stop"})
            await link.flush(2.0)
        if process is not None and process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), STOP_LIMIT)
            except TimeoutError:
                log.error("worker process %d did not stop in %gs: killed", process.pid, STOP_LIMIT)
                process.kill()
                await process.wait()
        for task in list(self._tasks):
            task.cancel()

    # -- messages

    def _tap(self, event: Event) -> None:
        if event.kind in NOT_FORWARDED:
            return
        if self._early is not None and len(self._early) < ipc.MAX_QUEUE:
            self._early.append(event)
        link = self.link
        if link is None or link.closed:
            return
        link.send_event(event)
        if _vrrp_kind(event) and not self._status_pending:
            # The worker's view is refreshed after a burst of transitions, once.
            self._status_pending = True
            asyncio.get_running_loop().call_later(0.05, self._push_status)

    def _push_status(self) -> None:
        self._status_pending = False
        if self.link is not None:
            self.link.send({"t": "status", "status": self._status_wire()})

    def _status_wire(self) -> dict[str, Any] | None:
        """The VRRP state for the worker's view, with this process's backends and bus."""
        status = self.daemon.vrrp_status()
        if status is None:
            return None
        backends: dict[str, Any] = {}
        for name, backend in self.daemon.backends.items():
            try:
                backends[name] = dict(backend.status())
            except Exception as exc:  # plugin territory: the status must still answer
                backends[name] = {"error": f"status() failed: {type(exc).__name__}: {exc}"}
        wire = vrrp_status.to_wire(status)
        wire["backends"] = backends
        wire["bus"] = self.daemon.bus.status()
        return wire

    def _on_message(self, msg: ipc.Message) -> None:
        t = msg.get("t")
        link = self.link
        assert link is not None
        if t == "event":
            event = link.event_of(msg)
            if event is None:
                return
            if isinstance(event, CheckStateChanged):
                self.daemon.known_checks[event.check] = event.up
            self.daemon.bus.publish(event, tap=False)
        elif t == "pong":
            self._last_pong = time.monotonic()
        elif t == "status?":
            link.send({"t": "status", "id": msg.get("id"), "status": self._status_wire()})
        elif t == "prepared":
            answer = self._preparing
            if answer is not None and not answer.done() and msg.get("id") == self._asked:
                problems = msg.get("problems")
                answer.set_result([str(p) for p in problems] if isinstance(problems, list) else [])
        elif t == "ready":
            self.ready = True
            self._heard = True  # started: from now on, pings must be answered in time
            log.info("worker process %s ready", self.process.pid if self.process else "?")


class VrrpPeer:
    """In the worker: the VRRP process as this side sees it. Holds the read-only
    :class:`~halo_core.vrrp.status.VrrpStatus`, forwards what the VRRP side consumes, and
    publishes what VRRP publishes on this side's bus."""

    def __init__(self, daemon: Daemon, sock: socket.socket) -> None:
        self.daemon = daemon
        self.link = ipc.Link(sock, self._on_message, self._on_close, fds=True)
        self.status: vrrp_status.VrrpStatus | None = None
        self.wants: frozenset[str] | None = frozenset()
        self.hello = asyncio.get_running_loop().create_future()
        self.stop_requested = asyncio.Event()
        self._pending: list[Event] | None = []  # events until the daemon has started
        self._requests: dict[int, asyncio.Future[None]] = {}
        self._next_id = 0
        self._reloads: set[asyncio.Task[Any]] = set()
        self._prepares: dict[int, asyncio.Task[list[str]]] = {}
        self._settle: asyncio.TimerHandle | None = None
        daemon.bus.taps.append(self._tap)

    def started(self) -> None:
        pending, self._pending = self._pending or [], None
        for event in pending:
            self.daemon.bus.publish(event, tap=False)
        self.link.send({"t": "ready"})

    async def refresh(self, timeout: float = 1.0) -> None:
        self._next_id += 1
        ident = self._next_id
        future = self._requests[ident] = asyncio.get_running_loop().create_future()
        self.link.send({"t": "status?", "id": ident})
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass  # the last state known stays
        finally:
            self._requests.pop(ident, None)

    def _tap(self, event: Event) -> None:
        if event.kind in NOT_FORWARDED:
            return
        if self.wants is None or event.kind in self.wants:
            self.link.send_event(event)

    def _apply(self, event: Event) -> None:
        """Keep the view current between full status records: a state or priority change
        is known here before any subscriber hears of it."""
        from dataclasses import replace

        s = self.status
        if s is None:
            return
        if isinstance(event, VrrpStateChanged) and event.group is None:
            inst = s.instances.get(event.instance)
            if inst is not None:
                s.instances[event.instance] = replace(
                    inst, state=event.new, priority=event.priority
                )
        elif isinstance(event, PriorityChanged):
            inst = s.instances.get(event.instance)
            if inst is not None:
                s.instances[event.instance] = replace(inst, priority=event.new)
        elif isinstance(event, SyncGroupStateChanged):
            s.group_states[event.group] = event.new

    def _on_message(self, msg: ipc.Message) -> None:
        t = msg.get("t")
        fds: list[int] = msg.pop(ipc.FDS, [])
        if t != "prepare":
            for fd in fds:  # none is expected
                os.close(fd)
        if t == "event":
            event = self.link.event_of(msg)
            if event is None:
                return
            self._apply(event)
            if self._pending is not None:
                self._pending.append(event)
            else:
                self.daemon.bus.publish(event, tap=False)
        elif t == "status":
            self._set_status(msg.get("status"))
            future = self._requests.get(msg.get("id", 0))
            if future is not None and not future.done():
                future.set_result(None)
        elif t == "ping":
            self.link.send({"t": "pong"})
        elif t == "hello":
            self._set_status(msg.get("status"))
            wants = msg.get("wants")
            self.wants = frozenset(wants) if isinstance(wants, list) else None
            checks = msg.get("checks")
            if isinstance(checks, dict):
                self.daemon.known_checks = {str(k): bool(v) for k, v in checks.items()}
            if not self.hello.done():
                self.hello.set_result(None)
        elif t == "reload":
            changes = msg.get("vrrp_changes")
            self.daemon.vrrp_changes = [str(c) for c in changes or []]
            refused = bool(msg.get("refused"))
            self._background(self.daemon._reload_on_signal(refused_by_vrrp=refused))
        elif t == "prepare":
            ident = int(msg.get("id") or 0)
            self._prepares[ident] = self._background(self._prepare(ident, fds))
        elif t in ("commit", "abort"):
            changes = [str(c) for c in msg.get("vrrp_changes") or []]
            self._background(self._finish(int(msg.get("id") or 0), t == "commit", changes))
        elif t == "stop":
            self.stop_requested.set()

    def _background(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._reloads.add(task)
        task.add_done_callback(self._reload_done)
        if self._settle is not None:
            self._settle.cancel()
            self._settle = None
        return task

    def _reload_done(self, task: asyncio.Task[Any]) -> None:
        self._reloads.discard(task)
        if not self._reloads and self._settle is None:
            self._settle = asyncio.get_running_loop().call_later(
                SETTLE_AFTER_RELOAD, self._give_back_memory
            )

    def _give_back_memory(self) -> None:
        """Once reloads have been quiet a while: the old configuration's checks, plugins and
        their sockets are garbage, partly in reference cycles that only a full collection
        finds, and the C heap keeps what they freed. Without this the worker's RSS rose in
        steps with every burst of reloads (a SIGHUP storm) and stayed at the peak."""
        from halo_core.realtime import trim_heap

        self._settle = None
        gc.collect()
        trim_heap()

    async def _prepare(self, ident: int, fds: list[int]) -> list[str]:
        """Prepare the reload of the configuration the message brought (a memory file)."""
        from halo_core import handover

        try:
            # in a thread, as the file used to be read: 3,000 instances are 1 MB to unpickle
            given = await asyncio.to_thread(handover.read_input, fds[0]) if fds else None
        except (OSError, ValueError) as exc:
            given, problems = None, [f"reload: {exc}"]
        else:
            problems = []
        finally:
            for fd in fds:
                handover.close_input(fd)
        if given is None and not problems:
            problems = ["reload: no configuration came from the VRRP process"]
        if problems:
            log.error("%s", problems[0])
            await self.daemon.started.wait()  # the answer is a refusal either way
        else:
            problems = await self.daemon.prepare_reload(given)
        self.link.send({"t": "prepared", "id": ident, "problems": problems})
        return problems

    async def _finish(self, ident: int, commit: bool, vrrp_changes: list[str]) -> None:
        """Commit or put back the prepare ``ident``, once it is done (an abort may come
        while it still runs: the VRRP process stopped waiting for it)."""
        task = self._prepares.pop(ident, None)
        if task is None:
            return
        problems = await task
        if problems:
            return  # refused: nothing was kept
        if commit:
            await self.daemon.commit_reload(vrrp_changes)
        else:
            await self.daemon.abort_reload()

    def _set_status(self, wire: object) -> None:
        if isinstance(wire, dict):
            try:
                self.status = vrrp_status.from_wire(wire)
            except (KeyError, TypeError) as exc:
                log.error("worker: malformed VRRP status from the VRRP process: %s", exc)

    def _on_close(self) -> None:
        if not self.stop_requested.is_set():
            log.warning("worker: the VRRP process is gone; stopping")
        self.stop_requested.set()
        if not self.hello.done():
            self.hello.set_result(None)
