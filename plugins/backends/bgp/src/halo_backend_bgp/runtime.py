"""The ``bgp`` backend at run time: which prefixes to announce, and a speaker kept alive.

It reads only bus events (VRRP state, check state, pool state) and the configuration, so
it runs the same in the daemon or in a worker process fed by the bus.

- follow: an instance's virtual addresses are announced as host routes while it is
  MASTER; leaving MASTER withdraws them.
- anycast: ``prefixes`` are announced while every listed check is up and every listed
  virtual server has quorum.

A speaker that dies is restarted after ``restart_delay`` and everything wanted is
announced again; each death is published as a BackendFailed. After ``restart_limit``
failed starts in a row halo gives up for a while (retrying every 10 s): followed
instances are sent to FAULT (BackendFailed with the instance), and an anycast node
announces nothing anyway since its speaker is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterable
from ipaddress import ip_network
from typing import TYPE_CHECKING, Any

from halo_backend_bgp.plugin import BgpBackendConfig
from halo_backend_bgp.speakers import (
    ExaBgpSpeaker,
    FrrSpeaker,
    Prefix,
    Speaker,
    SpeakerError,
)
from halo_core.events import (
    BackendApplied,
    BackendCleared,
    BackendFailed,
    CheckResultEvent,
    CheckStateChanged,
    Event,
    PoolChanged,
    VrrpStateChanged,
)
from halo_core.plugin_api import Backend, PluginContext

if TYPE_CHECKING:
    from halo_core.config.model import HaloConfig

log = logging.getLogger("halo.backend.bgp")

GIVE_UP_RETRY = 10.0
"""Seconds between start attempts once restart_limit failures in a row were reached."""


def _sorted(prefixes: Iterable[Prefix]) -> list[Prefix]:
    return sorted(prefixes, key=lambda p: (p.version, p))


class BgpBackend(Backend):
    def __init__(self, config: BgpBackendConfig, context: PluginContext) -> None:
        self.config = config
        # A named check starts up (keepalived's vrrp_script) and says so only when it changes:
        # an anycast node waits for each check's first result before announcing.
        self.kinds: tuple[str, ...] = ("vrrp_state",)
        if config.mode == "anycast":
            self.kinds = ("check_state", "pool", *(("check_result",) if config.checks else ()))
        self.context = context
        self.name = context.name
        self.vips: dict[str, list[Prefix]] = self._followed(config, context.config)
        self.states: dict[str, str] = {}
        self.checks_up: dict[str, bool] = {}
        self.quorum: dict[str, bool] = {}
        self.speaker: Speaker = (
            ExaBgpSpeaker(config, self.name, context.config.global_.state_dir)
            if config.speaker == "exabgp"
            else FrrSpeaker(config, self.name)
        )
        self.announced: set[Prefix] = set()
        self.up = False
        self.gave_up = False
        self.stopping = False
        self.restarts = 0
        self.last_error = ""
        self.last_change = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sync_lock = asyncio.Lock()

    @staticmethod
    def _followed(config: BgpBackendConfig, model: HaloConfig) -> dict[str, list[Prefix]]:
        """Follow mode: each followed instance's addresses as host routes. Refuses names the
        configuration does not have (checks and virtual servers too, in anycast mode)."""
        vips: dict[str, list[Prefix]] = {}
        if config.mode == "follow":
            names = config.instances
            if names is None:
                names = [n for n, i in model.vrrp_instances.items() if i.virtual_ipaddress]
            unknown = [n for n in names if n not in model.vrrp_instances]
            if unknown:
                raise ValueError(f"instances: no VRRP instance named {', '.join(unknown)}")
            for n in names:
                inst = model.vrrp_instances[n]
                addresses = [*inst.virtual_ipaddress, *inst.virtual_ipaddress_excluded]
                vips[n] = [ip_network(a.ip) for a in addresses]
        else:
            unknown = [c for c in config.checks if c not in model.checks]
            if unknown:
                raise ValueError(f"checks: no check named {', '.join(unknown)}")
            services = {vs.name for vs in model.virtual_servers}
            unknown = [v for v in config.virtual_servers if v not in services]
            if unknown:
                raise ValueError(f"virtual_servers: no virtual server named {', '.join(unknown)}")
        return vips

    async def reload(self, config: HaloConfig) -> None:
        """A new configuration: new instance addresses, checks or prefixes are applied at
        once; new route attributes are announced again over the running ExaBGP (an UPDATE
        replaces the route); anything else about the speaker (peers, AS, timers, program,
        or attributes in FRR's route-map) restarts it."""
        configured = config.backends.get(self.name)
        new = getattr(configured, "config", None)
        if not isinstance(new, BgpBackendConfig) or new == self.config:
            self.vips = self._followed(self.config, config)
            await self.sync()
            return
        for key in ("mode", "speaker"):
            if getattr(new, key) != getattr(self.config, key):
                raise ValueError(f"{key} cannot change on reload; restart halo")
        vips = self._followed(new, config)
        attributes = ("communities", "med", "local_preference", "as_path_prepend", "next_hop")
        lists = ("instances", "prefixes", "checks", "virtual_servers", *attributes)
        speaker_changed = any(
            getattr(new, f.name) != getattr(self.config, f.name)
            for f in dataclasses.fields(new)
            if f.name not in lists
        ) or (
            new.speaker == "frr"
            and any(getattr(new, a) != getattr(self.config, a) for a in attributes)
        )
        reannounce = any(getattr(new, a) != getattr(self.config, a) for a in attributes)
        async with self._sync_lock:
            self.config = new
            self.speaker.config = new
            self.vips = vips
            if speaker_changed:
                self.up = False
                self._wake.set()  # the supervisor stops the speaker and starts it anew
                return
            if reannounce:
                self.announced.clear()  # announced again below, with the new attributes
        await self.sync()

    # -- what to announce ----------------------------------------------------------------------

    def wanted(self) -> set[Prefix]:
        if self.config.mode == "follow":
            return {
                p for n, vips in self.vips.items() if self.states.get(n) == "MASTER" for p in vips
            }
        healthy = all(self.checks_up.get(c, False) for c in self.config.checks) and all(
            self.quorum.get(v, False) for v in self.config.virtual_servers
        )
        return set(self.config.prefixes) if healthy else set()

    async def handle(self, event: Event) -> None:
        if isinstance(event, VrrpStateChanged) and event.instance in self.vips:
            self.states[event.instance] = event.new
            if event.new == "MASTER" and self.gave_up:
                self._fault(event.instance, self.last_error)
        elif isinstance(event, CheckStateChanged | CheckResultEvent):
            if event.check not in self.config.checks or self.checks_up.get(event.check) == event.up:
                return
            self.checks_up[event.check] = event.up
        elif isinstance(event, PoolChanged) and event.virtual_server in self.config.virtual_servers:
            self.quorum[event.virtual_server] = event.quorum
        else:
            return
        await self.sync()

    async def sync(self) -> None:
        """Announce what is wanted and not announced, withdraw the rest."""
        async with self._sync_lock:
            if not self.up:
                return
            want = self.wanted()
            try:
                for prefix in _sorted(self.announced - want):
                    await self.speaker.withdraw(prefix)
                    self.announced.discard(prefix)
                    self._applied(f"withdrew {prefix}")
                for prefix in _sorted(want - self.announced):
                    await self.speaker.announce(prefix)
                    self.announced.add(prefix)
                    self._applied(f"announced {prefix}")
            except SpeakerError as exc:
                self._report(str(exc))
                self._wake.set()  # a speaker that refuses commands is restarted

    def _applied(self, detail: str) -> None:
        self.last_change = time.time()
        log.info("%s: %s", self.name, detail)
        self.context.bus.publish(BackendApplied(backend=self.name, detail=detail))

    def _report(self, error: str) -> None:
        self.last_error = error
        log.error("%s: %s", self.name, error)
        self.context.bus.publish(BackendFailed(backend=self.name, error=error))

    def _fault(self, instance: str, error: str) -> None:
        # held until the speaker runs again: no MASTER in between that cannot be announced
        self.context.bus.publish(
            BackendFailed(backend=self.name, error=error, instance=instance, until_cleared=True)
        )

    # -- the speaker's life --------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"bgp-{self.name}")

    async def _supervise(self) -> None:
        failures = 0
        first = True
        while not self.stopping:
            try:
                await self.speaker.start()
            except SpeakerError as exc:
                failures += 1
                self._report(f"{self.speaker.name} did not start: {exc}")
            else:
                if not first:
                    self.restarts += 1
                    self._applied(f"{self.speaker.name} restarted (pid {self.speaker.pid})")
                first = False
                failures = 0
                if self.gave_up:
                    for instance in self.vips:
                        self.context.bus.publish(
                            BackendCleared(backend=self.name, instance=instance)
                        )
                self.gave_up = False
                self.up = True
                self.announced.clear()
                await self.sync()
                dead = asyncio.ensure_future(self.speaker.wait_dead())
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({dead, woken}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                self._wake.clear()
                self.up = False
                self.announced.clear()
                if self.stopping:
                    dead.cancel()
                    break
                if dead.done():
                    self._report(str(dead.result()))
                else:
                    dead.cancel()
                await self.speaker.close()
            if failures >= self.config.restart_limit:
                if not self.gave_up:
                    self.gave_up = True
                    self._give_up()
                delay = GIVE_UP_RETRY
            else:
                delay = float(self.config.restart_delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped(), delay)

    async def _stopped(self) -> None:
        while not self.stopping:
            await self._wake.wait()
            self._wake.clear()

    def _give_up(self) -> None:
        why = f"{self.speaker.name} cannot be started: {self.last_error}"
        log.error("%s: giving up for now: %s", self.name, why)
        for instance in self.vips:
            self._fault(instance, why)

    async def stop(self) -> None:
        """Withdraw everything, give the withdrawals time to leave, stop the speaker."""
        async with self._sync_lock:
            if self.up:
                for prefix in _sorted(self.announced):
                    with contextlib.suppress(SpeakerError):
                        await self.speaker.withdraw(prefix)
                        self._applied(f"withdrew {prefix}")
                if self.announced:
                    await asyncio.sleep(float(self.config.withdraw_grace))
                self.announced.clear()
            self.stopping = True
            self.up = False
            self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10.0)
        await self.speaker.close()

    def status(self) -> dict[str, Any]:
        return {
            "speaker": self.speaker.name,
            "mode": self.config.mode,
            "up": self.up,
            "pid": self.speaker.pid,
            "restarts": self.restarts,
            "announced": [str(p) for p in _sorted(self.announced)],
            "last_error": self.last_error,
        }
