"""The daemon: loads the config and plugins, wires the bus, scheduler and VRRP engine, and
runs until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from halo_core import log as halo_log
from halo_core import version
from halo_core.bus import EventBus
from halo_core.config import Config, ConfigError, load
from halo_core.config.model import HaloConfig
from halo_core.events import CheckStateChanged, ConfigReloaded, Event
from halo_core.plugin_api import (
    CAPABILITIES,
    Backend,
    CheckerConfig,
    CheckTarget,
    Notifier,
    event_filter,
)
from halo_core.scheduler import Clock, LoopClock, Scheduler
from halo_core.schema import Configured

if TYPE_CHECKING:
    from halo_core.checks import CheckRunner
    from halo_core.handover import HookFailure, Verdict, WorkerInput
    from halo_core.hookspecs import DaemonState
    from halo_core.listen import Bound
    from halo_core.plugins import Plugins
    from halo_core.processes import VrrpPeer, WorkerSupervisor
    from halo_core.realtime import VrrpScheduling
    from halo_core.script_runner import ScriptRunner
    from halo_core.vrrp.engine import VrrpEngine
    from halo_core.vrrp.prelisten import Prelistening
    from halo_core.vrrp.status import VrrpStatus

log = logging.getLogger("halo")

HOOK_TIMEOUT = 10.0
BACKEND_TIMEOUT = 30.0
"""How long a backend may take to act on one event (a GARP burst with its delays)."""

PLUGIN_ERRORS = (Exception, SystemExit, KeyboardInterrupt, GeneratorExit)
"""What a plugin's code may raise at us: everything but our own task's cancellation."""

Role = Literal["all", "vrrp", "worker"]
"""What a daemon runs (docs/processes.md): "all" in one process; "vrrp" the VRRP engine and
the backends providing addresses, nothing else; "worker" the rest (checks, pools,
notifiers, other backends, every plugin hook), with a read-only view of VRRP."""


class Daemon:
    """One running halo: its config, plugins, bus, scheduler and (from #3 on) VRRP engine."""

    def __init__(
        self, config: Config, plugins: Plugins, *, clock: Clock | None = None, role: Role = "all"
    ) -> None:
        self.role: Role = role
        self.config = config
        self.plugins = plugins
        self.clock = clock or LoopClock()
        self.bus = EventBus()
        self.scheduler = Scheduler(self.clock)
        self.stopping = asyncio.Event()
        self.started = asyncio.Event()  # set once start() has built every part
        self.hook_failures: dict[str, int] = {}
        self.vrrp: VrrpEngine | None = None
        self.backends: dict[str, Backend] = {}
        self.checks: dict[str, CheckRunner] = {}
        self.notifiers: dict[str, Notifier] = {}
        self.failed_backends: dict[str, str] = {}
        self._reload_lock = asyncio.Lock()
        self._reload_waiting = False  # a SIGHUP's reload not started yet (see run_forever)
        # The checks' states as the worker last told them (role "vrrp"): what tracking reads
        # when it is (re)built, and what a restarted worker starts its checks from.
        self.known_checks: dict[str, bool] = {}
        self.supervisor: WorkerSupervisor | None = None  # role "vrrp"
        self.scheduling: VrrpScheduling | None = None  # the VRRP process's CPU scheduling
        self.peer: VrrpPeer | None = None  # role "worker"
        self.log_options: list[str] = []  # the command line's, for the worker
        # What the last reload changed in VRRP (role "vrrp"); in the worker, what the VRRP
        # process reported for the reload it asked for (part of the summary).
        self.vrrp_changes: list[str] = []
        # The process `halo run` started (the pid file's): systemd's MAINPID, the status
        # API's pid. The worker is its child.
        self.main_pid = os.getpid() if role != "worker" else os.getppid()
        # The VRRP process of `halo run` (role "vrrp"): its configuration is validated by
        # a child process (halo_core.handover), and a worker runs only when needed.
        self.handed_over = False
        # halo run's early sockets (halo_core.vrrp.prelisten), until the engine starts
        self.prelistening: Prelistening | None = None
        self._worker_wanted = False  # the last verdict read asks for a worker
        # ... or, if not, the endpoints to hold until a first connection wants one, and
        # those held now ({label: sockets}; halo_core.listen, docs/processes.md)
        self._listen_wanted: dict[str, str] = {}
        self.listening: dict[str, Bound] = {}
        self.with_worker = role == "vrrp"
        self.last_hup = 0.0  # when the last SIGHUP came (wall clock, for `halo reload`)
        self.reload_outcome = ReloadOutcome()  # the last reload's, as `halo reload` reads it
        self._prepared: _Prepared | None = None  # role "worker": a reload prepared, pending
        # Role "vrrp": the memory file holding the worker's configuration and plugins
        # (halo_core.handover.WorkerInput) for the configuration in force, handed to each
        # worker started; and a reload's, until the reload is applied or refused.
        self.worker_input = -1
        self._next_input = -1

    @functools.cached_property
    def scripts(self) -> ScriptRunner:
        """Runs the checks' notify_up / notify_down commands (made when first needed: the
        VRRP process runs none)."""
        from halo_core.script_runner import ScriptRunner

        return ScriptRunner(logger=log)

    def vrrp_status(self) -> VrrpStatus | None:
        """The VRRP instances' state, read-only: from the engine in this process, or as the
        VRRP process last reported it (see :meth:`refresh_vrrp_status`)."""
        if self.vrrp is not None:
            from halo_core.vrrp.status import of_engine

            return of_engine(self.vrrp)
        return self.peer.status if self.peer is not None else None

    async def refresh_vrrp_status(self) -> None:
        """Ask the VRRP process for its current state (bounded wait); a no-op in-process."""
        if self.peer is not None:
            await self.peer.refresh()

    async def call_hook(self, name: str, **kwargs: Any) -> list[Any]:
        """Call hook ``name`` on every plugin, each isolated: an exception or an awaitable that
        runs too long is logged against that plugin, and the others still run. Returns the
        results that are not None."""
        caller = getattr(self.plugins.hook, name)
        results = []
        for impl in reversed(caller.get_hookimpls()):
            plugin_name = self.plugins.manager.get_name(impl.plugin) or repr(impl.plugin)
            try:
                result = impl.function(*[kwargs[a] for a in impl.argnames])
                if inspect.isawaitable(result):
                    result = await bounded(result, HOOK_TIMEOUT)
                if result is not None:
                    results.append(result)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # plugin territory, even SystemExit: isolate, report
                self.hook_failures[plugin_name] = self.hook_failures.get(plugin_name, 0) + 1
                log.error(
                    "plugin %s: %s failed: %s: %s", plugin_name, name, type(exc).__name__, exc
                )
        return results

    async def start(self) -> None:
        if self.role == "vrrp":
            try:
                await self._start_backends()
                if self.config.model.vrrp_instances:
                    self._start_vrrp()
            finally:
                if self.prelistening is not None:  # heard and replayed, or nobody to hear
                    self.prelistening.close()
                    self.prelistening = None
            self.started.set()
            return
        await self.call_hook("halo_subscribe", bus=self.bus)
        await self.call_hook("halo_startup", daemon=self)
        self.bus.subscribe(self._notify_check, kinds=["check_state"], name="check-notify")
        self._start_notifiers()
        await self._start_backends()
        if self.config.model.vrrp_instances and self.role == "all":
            self._start_vrrp()
        self._start_checks()
        # Every backend listens now: what plugins publish from here (the pools' first state)
        # reaches each of them, before the daemon counts as started.
        await self._tell_state("started")
        self.started.set()

    def _start_vrrp(self) -> None:
        from halo_core.vrrp.engine import VrrpEngine

        self.vrrp = VrrpEngine(self.config.model, self.bus, self.clock, check_up=self._check_up)
        self.bus.subscribe(
            self.vrrp.on_backend_failed, kinds=["backend_failed", "backend_cleared"], name="vrrp"
        )
        self.vrrp.start(self.prelistening)  # closes them; start() does if this fails
        self._fault_without_address_backend()

    def _fault_without_address_backend(self) -> None:
        """An instance whose addresses nobody can put in the kernel must not claim MASTER:
        without a working backend that provides addresses it stays in FAULT (it would
        black-hole traffic)."""
        from halo_core.vrrp import fsm

        assert self.vrrp is not None
        configs = self.backend_configs()
        providers = self.plugins.providers("addresses")
        holders = [n for n, c in configs.items() if c.type in providers]
        if any(n in self.backends for n in holders):
            return
        why = next(
            (
                f"{configs[n].type} backend failed: {self.failed_backends[n]}"
                for n in holders
                if n in self.failed_backends
            ),
            f"no backend for addresses installed (pip install {CAPABILITIES['addresses']})",
        )
        for inst in self.vrrp.instances.values():
            if inst.cfg.virtual_ipaddress:
                inst.step(fsm.FaultSet(why))

    def _start_checks(self, skip: set[str] | frozenset[str] = frozenset()) -> None:
        if self.role == "vrrp":
            return  # checks run in the worker
        for name, configured in self.config.model.checks.items():
            if name in skip:
                continue
            runner = self._check_runner(self.config.model, name, configured)
            try:
                runner.start()
            except BaseException as exc:  # a checker that cannot be built is reported, not fatal
                why = f"{type(exc).__name__}: {exc}"
                log.error(
                    "check %s (%s): cannot start: %s",
                    name,
                    configured.type,
                    why,
                    extra=halo_log.fields(check=name, reason=why),
                )
                continue
            self.checks[name] = runner

    def _check_runner(self, model: HaloConfig, name: str, configured: Configured) -> CheckRunner:
        """A check's runner for ``model`` (not started)."""
        from halo_core.checks import CheckRunner

        return CheckRunner(
            name,
            self.plugins.type("checker", configured.type),
            configured.config,
            target=CheckTarget(name, global_config=model.global_),
            scheduler=self.scheduler,
            bus=self.bus,
            initial_up=self.known_checks.get(name, not configured.config.init_fail),
        )

    def _check_up(self, name: str) -> bool | None:
        """A named check's state (after rise/fall), None before it runs: what the VRRP
        engine reads when it (re)builds tracking; changes reach it on the bus."""
        runner = self.checks.get(name)
        if runner is not None:
            return None if runner.disabled else runner.up  # disabled: not tracked at all
        known = self.known_checks.get(name)
        configured = self.config.model.checks.get(name)
        if known is None and configured is not None:
            config = configured.config
            if isinstance(config, CheckerConfig) and config.init_fail:
                return False  # down until the check's first successes say otherwise
        return known

    def _notify_check(self, event: Event) -> None:
        """A named check's notify_up / notify_down, run in the background."""
        runner = self.checks.get(event.check) if isinstance(event, CheckStateChanged) else None
        if runner is None:
            return
        assert isinstance(event, CheckStateChanged)
        command = runner.config.notify_up if event.up else runner.config.notify_down
        if command:
            g = self.config.model.global_  # the settings in force now, after any reload
            self.scripts.user, self.scripts.secure = g.script_user, g.enable_script_security
            env = {"HALO_CHECK": event.check, "HALO_STATE": "UP" if event.up else "DOWN"}
            self.scripts.spawn(command, env=env, what=f"check {event.check}: notify")

    def backend_configs(self) -> dict[str, Configured]:
        """The configured backends, plus a default one providing addresses (with its
        defaults) when instances have virtual addresses and none was configured (what a
        keepalived user expects)."""
        out = dict(self.config.model.backends)
        wants_addresses = any(
            i.virtual_ipaddress for i in self.config.model.vrrp_instances.values()
        )
        providers = self.plugins.providers("addresses")
        if wants_addresses and providers and not any(c.type in providers for c in out.values()):
            name = providers[0]
            schema = self.plugins.schema_for("backend", name)
            assert schema is not None
            out.setdefault(name, Configured("backend", name, schema()))
        return out

    def _start_notifiers(self) -> None:
        from halo_core.plugin_api import PluginContext

        for name, configured in self.config.model.notifiers.items():
            ptype = self.plugins.type("notifier", configured.type)
            ctx = PluginContext(name, self.config.model, self.bus, self.clock, self.scheduler)
            try:
                notifier = ptype.load_factory()(configured.config, ctx)
                if not isinstance(notifier, Notifier):
                    raise TypeError(_not_a(notifier, Notifier))
            except BaseException as exc:  # reported, never fatal: VRRP runs without its mailer
                log.error(
                    "notifier %s (%s): cannot start: %s: %s",
                    name,
                    configured.type,
                    type(exc).__name__,
                    exc,
                )
                continue
            self.notifiers[name] = notifier
            wanted = event_filter(configured.config)

            async def deliver(
                event: Event, notifier: Notifier = notifier, wanted: Any = wanted
            ) -> None:
                if wanted(event):
                    await notifier.notify(event)

            self.bus.subscribe(
                deliver,
                name=f"notifier:{name}",
                timeout=float(notifier.timeout),
                kinds=configured.config.events,
            )

    def _backends_here(self) -> dict[str, Configured]:
        """The backends this process runs: those providing addresses in the VRRP process
        (a gratuitous ARP must leave the process that decides MASTER), the others in the
        worker."""
        configs = self.backend_configs()
        if self.role == "all":
            return configs
        providers = set(self.plugins.providers("addresses"))
        in_vrrp = self.role == "vrrp"
        return {n: c for n, c in configs.items() if (c.type in providers) == in_vrrp}

    async def _start_backends(self) -> None:
        from halo_core.plugin_api import PluginContext

        for name, configured in self._backends_here().items():
            ptype = self.plugins.type("backend", configured.type)
            ctx = PluginContext(name, self.config.model, self.bus, self.clock, self.scheduler)
            try:
                backend = ptype.load_factory()(configured.config, ctx)
                if not isinstance(backend, Backend):
                    raise TypeError(_not_a(backend, Backend))
                await bounded(backend.start(), HOOK_TIMEOUT)
            except BaseException as exc:  # a backend's failure is reported, never fatal
                self.failed_backends[name] = backend_error(
                    name, f"({configured.type}) cannot start", exc
                )
                continue
            self.backends[name] = backend
            self.bus.subscribe(
                self._backend_handler(name, backend),
                name=f"backend:{name}",
                kinds=backend.kinds,
            )

    def _backend_handler(self, name: str, backend: Backend) -> Callable[[Event], Awaitable[None]]:
        """``backend.handle`` bounded by BACKEND_TIMEOUT: one that times out or raises on a VRRP
        instance's event publishes BackendFailed, so that instance goes to FAULT rather than
        claim what the kernel may not hold."""
        from halo_core.events import BackendFailed

        async def handle(event: Event) -> None:
            try:
                result = backend.handle(event)
                if inspect.isawaitable(result):
                    await bounded(result, BACKEND_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # plugin territory: even SystemExit stays here
                if isinstance(exc, TimeoutError):
                    exc = TimeoutError(f"handling {event.kind} took over {BACKEND_TIMEOUT:g}s")
                why = backend_error(name, f"failed on {event.kind}", exc)
                instance = getattr(event, "instance", None)
                # Not for a failure report itself: a backend failing on every event would
                # feed on its own reports.
                if isinstance(instance, str) and not isinstance(event, BackendFailed):
                    self.bus.publish(BackendFailed(backend=name, error=why, instance=instance))

        return handle

    async def stop(self) -> None:
        for runner in self.checks.values():
            await runner.stop()
        if self.vrrp is not None:
            self.vrrp.stop()  # priority 0 from every master before anything else goes
        await self.bus.drain(timeout=5.0)  # let backends act on the STOP transitions
        if self.supervisor is not None:  # the worker hears the STOP transitions, then stops
            await self.supervisor.stop()
        for bound in self._stop_listening():
            bound.close()  # and the unix socket's file this process made
        if self.role != "vrrp":
            await self.call_hook("halo_shutdown", daemon=self)
        for name, notifier in self.notifiers.items():
            try:
                await bounded(notifier.close(), HOOK_TIMEOUT)
            except PLUGIN_ERRORS as exc:
                log.error("notifier %s: close failed: %s: %s", name, type(exc).__name__, exc)
        for name, backend in self.backends.items():
            try:
                # a backend's stop withdraws what it put in the kernel (a whole IPVS table):
                # it gets a backend's time, not a hook's
                await bounded(backend.stop(), BACKEND_TIMEOUT)
            except PLUGIN_ERRORS as exc:
                backend_error(name, "stop failed", exc)
        self.scheduler.close()
        await self.bus.drain(timeout=5.0)
        await self.bus.close()

    async def reload(self) -> bool:
        """Re-read the configuration file and apply the difference.

        The new file is validated completely first; if it is invalid the running
        configuration stays as it is and the errors are logged. Applying it is all or
        nothing: what would fail part-way (an instance on an interface this host lacks) is
        refused before anything changes, and a part that fails while applying (a backend
        refusing its reload) has the parts applied before it put back. With a worker, the
        worker prepares its part before this process applies anything, and one that cannot
        refuses the file for both (docs/processes.md). Unchanged instances, checks,
        pools, notifiers and backends are not touched (no advert, no announcement, no address
        change); changed ones are updated in place where possible. Reloads run one at a
        time, never interleaved; SIGHUPs that arrive while a reload waits to start are that
        one reload (it reads the file as it is then).
        """
        async with self._reload_lock:
            self._reload_waiting = False  # a SIGHUP from now on reads the file again
            outcome = self.reload_outcome = ReloadOutcome(covers=self.last_hup)
            log.addHandler(outcome)
            try:
                outcome.ok = await self._reload()
            except Exception as exc:  # costs the reload, never the daemon (SIGHUP's task)
                log.error("reload: applying failed: %s: %s", type(exc).__name__, exc)
            finally:
                log.removeHandler(outcome)
                self._drop_next_input()  # not applied (an applied one was adopted)
            return outcome.ok

    async def _reload(self) -> bool:
        if self.role == "vrrp":
            self.vrrp_changes = []
        try:
            new = await self.read_config(self.config.path)
        except ConfigError as exc:
            for line in exc.lines:
                log.error("reload: %s", line)
            log.error("reload: the configuration is invalid; the running one stays in force")
            return False
        except Exception as exc:  # the loader promises ConfigError only; keep running if not
            log.error("reload: cannot load %s: %s: %s", self.config.path, type(exc).__name__, exc)
            log.error("reload: the running configuration stays in force")
            return False
        old = self.config
        # All or nothing: what would fail part-way is refused before anything changes, and
        # a part that fails while applying puts the parts applied before it back.
        problems = self.vrrp.reload_problems(new.model) if self.vrrp is not None else []
        if problems:
            for problem in problems:
                log.error("reload: %s", problem)
            log.error("reload: cannot be applied; the running configuration stays in force")
            return False
        # The worker prepares its part (the same file) before this process changes anything;
        # it commits or puts back what it prepared when told (finally, below).
        committed = False
        if self.supervisor is not None:
            self.reload_outcome.worker_asked = True
            if self._next_input < 0:  # not handed over: this process read the file
                from halo_core import handover

                self._next_input = handover.input_file(new, self.plugins)
            refused = await self.supervisor.prepare(self._next_input)
            if refused:
                # the worker logged each of its problems; `halo reload` shows them from here
                self.reload_outcome.errors += [f"worker: {line}" for line in refused]
                log.error(
                    "reload: the worker cannot apply the file (%s); the running configuration"
                    " stays in force in both processes",
                    refused[0] if len(refused) == 1 else f"{len(refused)} problems",
                )
                self.supervisor.finish(commit=False)
                return False
        try:
            if new.model == old.model:
                log.info("reload: configuration unchanged for VRRP")
                self.bus.publish(ConfigReloaded(path=new.path, summary="unchanged"))
                committed = True
                self._adopt_next_input()
                # what VRRP does not see may have changed: a plugin's work (status_api)
                self._worker_or_listeners()
                return True
            self.config = new
            try:
                done = await self._apply(old, new)
            except _ApplyFailed as failed:
                log.error(
                    "reload: applying failed: %s; putting the running configuration back", failed
                )
                self.config = old
                await self._apply(new, old, restoring=failed.applied)
                log.error("reload: the running configuration stays in force")
                return False
            committed = True
            self._adopt_next_input()
        finally:
            if self.supervisor is not None and self.reload_outcome.worker_asked:
                self.supervisor.finish(commit=committed, vrrp_changes=self.vrrp_changes)
        self._worker_or_listeners()
        summary = "; ".join(done) or "no runtime change"
        log.info("reload: %s", summary)
        self.bus.publish(ConfigReloaded(path=new.path, summary=summary))
        return True

    @property
    def reload_pending(self) -> bool:
        """A reload's verdict is valid and not yet applied or refused (role "vrrp")."""
        return self._next_input >= 0

    def _adopt_next_input(self) -> None:
        """A reload was applied: workers started from now on get its configuration."""
        if self._next_input >= 0:
            from halo_core.handover import close_input

            close_input(self.worker_input)
            self.worker_input, self._next_input = self._next_input, -1

    def _drop_next_input(self) -> None:
        if self._next_input >= 0:
            from halo_core.handover import close_input

            close_input(self._next_input)
            self._next_input = -1

    # -- the worker's side of a reload (role "worker"): prepare, then commit or put back

    async def prepare_reload(self, given: WorkerInput | None = None) -> list[str]:
        """The worker's first phase of a reload the VRRP process asked for: validate the
        configuration it sent (``given``: the document its child read) and do everything of
        this process's part that can fail (build the checkers added or changed, have each
        backend take the new file), changing nothing that runs. Returns the errors, each
        logged (``[]``: prepared; then :meth:`commit_reload` or :meth:`abort_reload`
        follows, and no other reload runs until it has)."""
        await self.started.wait()
        await self._reload_lock.acquire()
        await self._tell_state("reloading")
        try:
            errors = await self._prepare(given)
        except Exception as exc:  # costs the reload, never the worker
            errors = [f"preparing failed: {type(exc).__name__}: {exc}"]
        if errors:
            for line in errors:
                log.error("reload: %s", line)
            log.error("reload: cannot be applied; the running configuration stays in force")
            self._reload_lock.release()
            await self._tell_state("reload-refused")
        return errors

    async def _prepare(self, given: WorkerInput | None) -> list[str]:
        try:
            new = await self.read_config(self.config.path, given)
        except ConfigError as exc:
            return exc.lines
        except Exception as exc:  # the loader promises ConfigError only
            return [f"cannot load {self.config.path}: {type(exc).__name__}: {exc}"]
        prepared = _Prepared(self.config, new)
        if new.model == self.config.model:
            self._prepared = prepared
            return []
        old_checks, errors = self.config.model.checks, []
        for name, configured in new.model.checks.items():
            if old_checks.get(name) == configured and name in self.checks:
                continue
            runner = self._check_runner(new.model, name, configured)
            try:
                runner.build()
            except PLUGIN_ERRORS as exc:  # plugin territory: a refusal, not the worker's end
                why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                errors.append(_at(new, ("checks", name), f"cannot start: {why}"))
                continue
            prepared.runners[name] = runner
        for name, backend in self.backends.items() if not errors else ():
            prepared.backends.append(name)
            try:
                await bounded(backend.reload(new.model), HOOK_TIMEOUT)
            except PLUGIN_ERRORS as exc:
                why = backend_error(name, "reload failed", exc)
                errors.append(_at(new, ("backends", name), f"reload failed: {why}"))
        if errors:
            await self._put_back(prepared)
            return errors
        self._prepared = prepared
        return []

    async def commit_reload(self, vrrp_changes: list[str]) -> bool:
        """The VRRP process applied its part: apply what :meth:`prepare_reload` prepared."""
        prepared, self._prepared = self._prepared, None
        if prepared is None:
            return False  # the prepare failed; it said so
        try:
            old, new = prepared.old, prepared.new
            self.vrrp_changes = vrrp_changes
            if new.model == old.model:
                log.info("reload: configuration unchanged")
                self.bus.publish(ConfigReloaded(path=new.path, summary="unchanged"))
                return True
            self.config = new
            done: list[str] = []
            for name in list(self.checks):
                if old.model.checks.get(name) != new.model.checks.get(name):
                    await self.checks.pop(name).stop()
                    what = "changed" if name in new.model.checks else "removed"
                    done.append(f"check {name} {what}")
            for name, runner in prepared.runners.items():
                runner.start()
                self.checks[name] = runner
                if name not in old.model.checks:
                    done.append(f"check {name} added")
            done += vrrp_changes
            # Plugins' own parts (isolated: a failure is logged against the plugin).
            for change in await self.call_hook("halo_reload", daemon=self, old=old, new=new):
                done += [str(c) for c in change] if isinstance(change, list) else []
            summary = "; ".join(done) or "no runtime change"
            log.info("reload: %s", summary)
            self.bus.publish(ConfigReloaded(path=new.path, summary=summary))
            return True
        finally:
            self._reload_lock.release()
            await self._tell_state("reloaded")

    async def abort_reload(self) -> None:
        """The VRRP process refused or could not apply the file: put back what
        :meth:`prepare_reload` prepared; the running configuration stays."""
        prepared, self._prepared = self._prepared, None
        if prepared is None:
            return  # the prepare failed and put back its part itself
        try:
            await self._put_back(prepared)
            log.error("reload: refused by the VRRP process; the running configuration stays")
        finally:
            self._reload_lock.release()
            await self._tell_state("reload-refused")

    async def _put_back(self, prepared: _Prepared) -> None:
        """Undo a prepare: each backend that took the new file gets the running one back
        (best effort: errors are logged), and the checkers built for it are closed."""
        for name in prepared.backends:
            try:
                await bounded(self.backends[name].reload(prepared.old.model), HOOK_TIMEOUT)
            except PLUGIN_ERRORS as exc:
                backend_error(name, "cannot be put back", exc)
        for runner in prepared.runners.values():
            await runner.stop()

    async def read_config(self, path: str, given: WorkerInput | None = None) -> Config:
        """The configuration at ``path``, validated; :class:`ConfigError` if it is not. The
        worker reads no file: ``given`` is what the VRRP process sent (without it, the
        configuration in force)."""
        if self.role == "worker":
            if given is None:
                return self.config
            from halo_core.handover import worker_config

            return await asyncio.to_thread(worker_config, given, self.plugins)
        if self.handed_over:
            from halo_core import handover

            found = await handover.verdict(path)
            config = handover.accept(found)
            self._drop_next_input()
            self._next_input = found.input_fd  # for the worker, if the reload is applied
            self._worker_wanted = found.worker  # started once the file is applied
            self._listen_wanted = found.listeners
            self.has_work_failed(found.hook_failures)
            return config
        # In a thread: reading and validating 3,000 instances takes about 2 s of CPU,
        # which on the event loop stalled every VRRP timer as long; in a thread the loop
        # waits for GIL hand-overs only (0.2-0.35 s at worst, bench/configs/reload_lag.py).
        return await asyncio.to_thread(load, path, self.plugins)

    def has_work_failed(self, failures: Sequence[HookFailure]) -> None:
        """Report the plugin hooks that raised in the validating child (their plugins were
        counted as having work), as a failing hook is reported here."""
        for plugin_name, hook, why in failures:
            self.hook_failures[plugin_name] = self.hook_failures.get(plugin_name, 0) + 1
            log.error("plugin %s: %s failed: %s", plugin_name, hook, why)

    def _add_worker(self) -> None:
        """A reload brought checks, notifiers, other backends or a plugin's work to a VRRP
        process that ran alone: start a worker for them (it reads the same file)."""
        from halo_core.processes import WorkerSupervisor

        self.with_worker = True
        self.supervisor = WorkerSupervisor(self)
        self.supervisor.handing = self._stop_listening()  # the worker serves on them
        self.supervisor.start()

    def _worker_or_listeners(self) -> None:
        """After a verdict was applied in a VRRP process without a worker: start the worker
        if the file has work for it, else hold the endpoints it names (rebinding those that
        changed)."""
        if self.with_worker or not self.handed_over:
            return
        if self._worker_wanted:
            self._add_worker()
        else:
            self._listen(self._listen_wanted)

    def _listen(self, wanted: dict[str, str]) -> None:
        """Hold the endpoints ``wanted`` ({label: endpoint}) for plugins whose only work is
        serving there: bound here, watched for a first connection, never accepted."""
        from halo_core import listen

        loop = asyncio.get_running_loop()
        for label, bound in list(self.listening.items()):
            if wanted.get(label) != str(bound.endpoint):
                for sock in bound.sockets:
                    loop.remove_reader(sock.fileno())
                bound.close()
                del self.listening[label]
        for label, endpoint in wanted.items():
            if label in self.listening:
                continue
            try:
                bound = listen.bind(listen.parse(endpoint))
            except (OSError, RuntimeError, ValueError) as exc:
                log.error("%s not started on %s: %s", label, endpoint, exc)
                continue
            self.listening[label] = bound
            for sock in bound.sockets:
                loop.add_reader(sock.fileno(), self._first_connection, label)
            log.info(
                "%s listening on %s (the worker starts on the first connection)", label, endpoint
            )

    def _first_connection(self, label: str) -> None:
        """A client connected to a held endpoint: the worker starts and answers it (the
        connection waits in the backlog meanwhile)."""
        if self.with_worker:
            return
        if self.stopping.is_set():  # no worker to start now
            for bound in self._stop_listening():  # level-triggered: it would spin
                bound.close()
            return
        log.info("%s: first connection, starting the worker", label)
        self._add_worker()

    def _stop_listening(self) -> list[Bound]:
        """Stop watching the held endpoints; what was held (still open: the caller hands it
        over or closes it)."""
        loop = asyncio.get_running_loop()
        held = list(self.listening.values())
        self.listening = {}
        for bound in held:
            for sock in bound.sockets:
                loop.remove_reader(sock.fileno())
        return held

    async def _apply(
        self, old: Config, new: Config, *, restoring: frozenset[str] | None = None
    ) -> list[str]:
        """Take every part from ``old`` to ``new``: backends, checks, VRRP, then the
        plugins' reload hooks. Raises :class:`_ApplyFailed` (every error logged) at the
        first part that fails, naming the parts touched so far. With ``restoring`` (the
        parts a failed apply touched) it puts those back instead, best effort: errors are
        logged and the others still go back."""
        done: list[str] = []
        applied: set[str] = set()

        def failed(part: str, why: str) -> None:
            if restoring is None:
                raise _ApplyFailed(f"{part}: {why}", frozenset(applied | {part}))
            log.error("reload: cannot put %s back: %s", part, why)

        for name, backend in self.backends.items():
            part = f"backend:{name}"
            if restoring is not None and part not in restoring:
                continue
            applied.add(part)
            try:
                await bounded(backend.reload(new.model), HOOK_TIMEOUT)
            except PLUGIN_ERRORS as exc:
                failed(part, backend_error(name, "reload failed", exc))
        if restoring is None or "checks" in restoring:
            applied.add("checks")
            try:
                done += await self._reload_checks(old.model, new.model)
            except Exception as exc:
                failed("checks", f"{type(exc).__name__}: {exc}")
        if restoring is not None and "vrrp" not in restoring:
            return done
        applied.add("vrrp")
        try:
            if self.role == "worker":
                done += self.vrrp_changes  # VRRP is the VRRP process's
            elif self.vrrp is None and new.model.vrrp_instances:
                self._start_vrrp()
                done.append("VRRP started")
            elif self.vrrp is not None:
                self.vrrp_changes = self.vrrp.reload(new.model)
                done += self.vrrp_changes
        except Exception as exc:
            failed("vrrp", f"{type(exc).__name__}: {exc}")
        if self.role != "vrrp" and restoring is None:
            # Plugins' own parts (isolated: a failure is logged against the plugin).
            changes = await self.call_hook("halo_reload", daemon=self, old=old, new=new)
            for change in changes:
                done += [str(c) for c in change] if isinstance(change, list) else []
        return done

    async def _reload_checks(self, old: HaloConfig, new: HaloConfig) -> list[str]:
        done = []
        for name in list(self.checks):
            changed = old.checks.get(name) != new.checks.get(name)
            # a disabled check is looked at again (its script may be there now: keepalived)
            if changed or self.checks[name].disabled:
                await self.checks.pop(name).stop()
            if changed:
                done.append(f"check {name} {'changed' if name in new.checks else 'removed'}")
        started = set(self.checks)
        self._start_checks(skip=started)
        done += [f"check {n} added" for n in new.checks if n not in started and n not in old.checks]
        return done

    def write_pid_file(self) -> None:
        path = pid_file(self.config)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                fh.write(f"{os.getpid()}\n")
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc.strerror)

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        reloads: set[asyncio.Task[bool]] = set()

        def on_hup() -> None:
            self.last_hup = time.time()  # the waiting reload covers this signal too
            if self._reload_waiting:
                # The reload that waits reads the file when it starts: another would only
                # validate the same file again (a storm of 20 SIGHUPs kept a's VRRP process
                # forking validations for 40 s in the soak).
                return
            self._reload_waiting = True
            task = loop.create_task(self._reload_on_signal())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        self.write_pid_file()
        if self.handed_over:
            from halo_core.processes import watch_children_without_thread

            watch_children_without_thread()
        if self.role == "vrrp" and self.with_worker:
            from halo_core.processes import WorkerSupervisor

            self.supervisor = WorkerSupervisor(self)  # hears VRRP's first transitions
        try:
            await self.start()
        except OSError as exc:
            log.error("cannot start: %s", exc)
            await self._tell_state("start-failed", str(exc))
            await self.stop()
            raise SystemExit(1) from None
        if self.role != "worker" and self.config.model.vrrp_instances:
            from halo_core.realtime import VrrpScheduling

            # After start-up (imports, files: CPU that is not urgent), before the worker
            # exists (it must not inherit real time).
            self.scheduling = VrrpScheduling(self.config.model.global_, loop)
            self.scheduling.apply()
        if self.supervisor is not None:
            self.supervisor.start()
        else:
            self._worker_or_listeners()  # the endpoints held until a first connection
        log.info("halo %s started with %s", version(), self.config.path)
        await self.stopping.wait()
        log.info("stopping")
        await self._tell_state("stopping")
        await self.stop()
        with contextlib.suppress(OSError):
            os.unlink(pid_file(self.config))

    async def _reload_on_signal(self, *, refused_by_vrrp: bool = False) -> bool:
        """SIGHUP: a reload, with its start and its outcome told to the plugins (systemd's
        RELOADING=1 and READY=1). In the worker, ``refused_by_vrrp``: the VRRP process
        refused the file, so it is not applied here either."""
        await self._tell_state("reloading")
        ok = False
        try:
            if refused_by_vrrp:
                log.error("reload: refused by the VRRP process; the running configuration stays")
                return False
            ok = await self.reload()
            self.reload_outcome.write(reload_file(self.config))
            if self.supervisor is not None and not self.reload_outcome.worker_asked:
                # Refused before the worker was asked to prepare (an invalid file): it only
                # reports the refusal (systemd, the status API) and keeps its configuration.
                self.supervisor.reload(self.vrrp_changes, refused=not ok)
        finally:
            await self._tell_state("reloaded" if ok else "reload-refused")
        return ok

    async def _tell_state(self, state: DaemonState, reason: str = "") -> None:
        if self.role == "vrrp":
            return  # plugin hooks run in the worker
        await self.call_hook("halo_daemon_state", daemon=self, state=state, reason=reason)


class ReloadOutcome(logging.Handler):
    """One reload's outcome, as ``halo reload`` reads it from the state directory: whether
    the file was applied, and every warning and error logged meanwhile (collected as a
    handler on the ``halo`` logger while the reload runs)."""

    def __init__(self, covers: float = 0.0) -> None:
        super().__init__(logging.WARNING)
        self.covers = covers  # the SIGHUPs up to this time (wall clock) are answered by it
        self.ok = False
        self.worker_asked = False  # the worker was asked to prepare (it then hears the end)
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        lines = self.errors if record.levelno >= logging.ERROR else self.warnings
        if len(lines) < 1000:  # a hostile file's problems are bounded, but not by us
            lines.append(halo_log.redact(record.getMessage()))

    written = 0  # outcomes handed to a writing thread, in order (the class's)

    def write(self, path: str) -> None:
        """Replace ``path`` with this outcome (best effort, like the pid file), from a thread:
        the VRRP process's loop must not wait for the disk (in the soak, a busy disk held
        it 269 ms in this rename, and a backup took over)."""
        doc: dict[str, object] = {"pid": os.getpid(), "covers": self.covers, "ok": self.ok}
        doc |= {"errors": list(self.errors), "warnings": list(self.warnings)}
        ReloadOutcome.written += 1
        threading.Thread(
            target=_write_outcome,
            args=(path, json.dumps(doc), ReloadOutcome.written),
            name="reload-outcome",
            daemon=True,
        ).start()


_outcome_lock = threading.Lock()
_outcome_written = [0]  # the newest outcome written so far


def _write_outcome(path: str, text: str, generation: int) -> None:
    """One outcome's write; when a newer outcome's thread wrote first, this older one is
    dropped."""
    with _outcome_lock:
        if generation < _outcome_written[0]:
            return
        _outcome_written[0] = generation
        try:
            with open(f"{path}.tmp", "w") as fh:
                fh.write(text)
            os.replace(f"{path}.tmp", path)
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc.strerror)


@dataclass
class _Prepared:
    """A reload the worker prepared: the running and the new configuration, the checkers
    built for the checks it adds or changes, the backends that took the new file."""

    old: Config
    new: Config
    runners: dict[str, CheckRunner] = field(default_factory=dict)
    backends: list[str] = field(default_factory=list)


def _at(config: Config, path: tuple[str, ...], message: str) -> str:
    """``message`` about the part at ``path`` of ``config``, as ``halo check`` words its
    problems (``file:line:col: path: message``), or ``path: message`` without a place."""
    from halo_core.config import Located
    from halo_core.config.document import locate

    mark = locate(config.raw, path) if config.raw is not None else None
    if mark is None:
        return f"{'.'.join(path)}: {message}"
    return str(Located(mark, path, message))


class _ApplyFailed(Exception):
    """A reload failed while being applied; ``applied`` names the parts already touched."""

    def __init__(self, why: str, applied: frozenset[str]) -> None:
        super().__init__(why)
        self.applied = applied


def backend_error(name: str, what: str, exc: BaseException) -> str:
    """Log a backend's failure as an ERROR with its structured fields; give the reason."""
    why = f"{type(exc).__name__}: {exc}"
    log.error("backend %s %s: %s", name, what, why, extra=halo_log.fields(backend=name, reason=why))
    return why


def _not_a(obj: object, protocol: type) -> str:
    """Why a factory's product is refused: it neither derives from the plugin API's
    protocol nor has all its members."""
    return (
        f"the factory built a {type(obj).__name__}, which is not a"
        f" {protocol.__module__}.{protocol.__name__} (derive from it)"
    )


def pid_file(config: Config) -> str:
    return os.path.join(config.model.global_.state_dir, "halo.pid")


def reload_file(config: Config) -> str:
    """Where the running daemon leaves its last reload's outcome (:class:`ReloadOutcome`)."""
    return os.path.join(config.model.global_.state_dir, "halo.reload")


async def bounded(aw: Awaitable[Any], timeout: float) -> Any:
    """``await aw`` for at most ``timeout`` seconds (TimeoutError after). Unlike
    ``asyncio.wait_for`` on 3.11 it runs no task of its own, so a plugin's SystemExit or
    KeyboardInterrupt reaches our ``except`` instead of ending the event loop."""
    async with asyncio.timeout(timeout):
        return await aw


def run(
    config: Config, plugins: Plugins, *, log_level: str | None = None, log_format: str | None = None
) -> int:
    """Run a daemon for a loaded configuration until it is told to stop. ``log_level`` and
    ``log_format`` (from the command line) win over ``global.log_level`` and
    ``global.log_format``."""
    from halo_core.handover import needs_worker

    worker, failures = needs_worker(config, plugins)
    daemon = Daemon(config, plugins, role="vrrp" if worker else "all")
    return _serve(daemon, log_level, log_format, failures)


def run_vrrp(
    found: Verdict,
    *,
    log_level: str | None = None,
    log_format: str | None = None,
    prelistening: Prelistening | None = None,
) -> int:
    """``halo run``: the VRRP process, for the verdict of the child that validated the
    configuration (:mod:`halo_core.handover`). It runs the VRRP engine and the backends that
    provide addresses, and a worker for the rest when there is any. ``prelistening``: the
    sockets that have listened since the process began (:mod:`halo_core.vrrp.prelisten`)."""
    from halo_core import handover
    from halo_core.plugins import Plugins

    config = handover.accept(found)
    plugins = Plugins(errors=list(found.plugin_errors))  # no hook is called here
    for t in found.address_types:
        plugins.types["backend"][t.name] = t
    daemon = Daemon(config, plugins, role="vrrp")
    daemon.worker_input = found.input_fd
    daemon.handed_over = True
    daemon.with_worker = found.worker
    daemon._listen_wanted = found.listeners
    daemon.prelistening = prelistening
    return _serve(daemon, log_level, log_format, found.hook_failures)


def _serve(
    daemon: Daemon,
    log_level: str | None,
    log_format: str | None,
    hook_failures: Sequence[HookFailure] = (),
) -> int:
    g = daemon.config.model.global_
    # The process that runs VRRP writes its log from a thread: a blocked write must not
    # hold the loop that sends adverts.
    background = daemon.role != "worker"
    halo_log.setup(log_level or g.log_level, log_format or g.log_format, background=background)
    for err in daemon.plugins.errors:
        log.error("plugin %s not loaded: %s", err.name, err.message)
    daemon.has_work_failed(hook_failures)
    from halo_core.scheduler import new_event_loop

    if log_format:
        daemon.log_options = ["--log-format", log_format]
    # the VRRP process's loop sleeps to the millisecond (10 ms adverts): see new_event_loop
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(daemon.run_forever())
    return 0
