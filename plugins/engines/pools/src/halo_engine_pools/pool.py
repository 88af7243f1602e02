"""Real-server pools: keepalived's ``virtual_server`` semantics, independent of any kernel.

A :class:`Pool` runs the checks of every real server of one virtual service and keeps the
service's desired state: a real server is up while all its checks are up; a failed server
is removed, or kept with weight 0 with ``inhibit_on_failure``; ``alpha`` starts servers down
until their checks pass; the service has quorum while the live weight reaches ``quorum``
(with ``hysteresis`` either side against flapping), runs ``quorum_up``/``quorum_down`` when
that changes, and uses the ``sorry_server`` while it has none. Each change is published as a
:class:`~halo_core.events.PoolChanged` carrying the whole desired state, which the
load-balancer backends apply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from halo_core import log as halo_log
from halo_core.checks import CheckRunner
from halo_core.config.model import GlobalConfig, RealServer, VirtualServer
from halo_core.events import PoolChanged, PoolMember, RealServerChanged
from halo_core.plugin_api import CheckResult, CheckTarget
from halo_core.plugins import Plugins
from halo_core.scheduler import Scheduler
from halo_core.script_runner import ScriptRunner

if TYPE_CHECKING:
    from halo_core.bus import EventBus

log = logging.getLogger("halo.pools")


@dataclass
class ServerState:
    config: RealServer
    port: int | None
    label: str
    checks: dict[str, CheckRunner] = field(default_factory=dict)
    up: bool = True

    @property
    def weight(self) -> int:
        # a check may set the weight: misc_dynamic (keepalived: exit code - 2), a weighted
        # FILE_CHECK (the configured weight + value x weight)
        for runner in self.checks.values():
            if runner.dynamic_weight is not None:
                return runner.dynamic_weight
        return self.config.weight


class Pool:
    """One virtual service and its real servers at run time."""

    def __init__(
        self,
        vs: VirtualServer,
        *,
        plugins: Plugins,
        scheduler: Scheduler,
        bus: EventBus,
        global_config: GlobalConfig | None = None,
    ) -> None:
        self.vs = vs
        self.label = vs.label
        self.bus = bus
        self.global_config = global_config
        g = global_config or GlobalConfig()
        self.scripts = ScriptRunner(user=g.script_user, secure=g.enable_script_security, logger=log)
        self.servers: list[ServerState] = []
        for rs in vs.real_servers:
            port = rs.port if rs.port is not None else vs.port
            host = f"[{rs.address}]" if rs.address.version == 6 else str(rs.address)
            state = ServerState(
                rs, port, f"{host}:{port}" if port else host, up=not vs.alpha or not rs.checks
            )
            for i, configured in enumerate(rs.checks):
                name = f"{self.label}/{state.label}/{configured.type}" + (
                    f"#{i}" if len(rs.checks) > 1 else ""
                )
                state.checks[name] = CheckRunner(
                    name,
                    plugins.type("checker", configured.type),
                    configured.config,
                    target=CheckTarget(name, rs.address, port, global_config, weight=rs.weight),
                    scheduler=scheduler,
                    bus=bus,
                    on_change=self._check_changed,
                    initial_up=not vs.alpha,
                    default_interval=float(vs.delay_loop),
                )
            self.servers.append(state)
        self.quorum = self.live_weight() >= vs.quorum

    # ------------------------------------------------------------------ state

    def live_weight(self) -> int:
        return sum(s.weight for s in self.servers if s.up)

    def members(self) -> tuple[PoolMember, ...]:
        out = []
        for s in self.servers:
            inhibit = s.config.inhibit_on_failure
            if inhibit is None:
                inhibit = self.vs.inhibit_on_failure
            if s.up:
                out.append(PoolMember(str(s.config.address), s.port, s.weight))
            elif inhibit:
                out.append(PoolMember(str(s.config.address), s.port, 0))
        sorry = self.vs.sorry_server
        if sorry is not None and (not self.quorum or self.vs.sorry_server_inhibit):
            port = sorry.port if sorry.port is not None else self.vs.port
            out.append(PoolMember(str(sorry.address), port, 0 if self.quorum else 1, sorry=True))
        return tuple(out)

    def publish(self, reason: str) -> None:
        self.bus.publish(
            PoolChanged(
                virtual_server=self.label,
                service=self.vs,
                members=self.members(),
                quorum=self.quorum,
                reason=reason,
            )
        )

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        for s in self.servers:
            for runner in s.checks.values():
                runner.start()
        self.publish("start")

    async def stop(self) -> None:
        for s in self.servers:
            for runner in s.checks.values():
                await runner.stop()
        if self.vs.omega and self.vs.quorum_down:
            await self.scripts.run(
                self.vs.quorum_down,
                env=self._env("omega: quorum_down on stop"),
                what=f"{self.label}: omega: quorum_down on stop",
            )
        self.scripts.cancel()

    # ------------------------------------------------------------------ reactions

    def _check_changed(self, name: str, up: bool, result: CheckResult) -> None:
        for s in self.servers:
            if name in s.checks:
                now_up = all(r.up for r in s.checks.values())
                if now_up != s.up:
                    s.up = now_up
                    self._server_changed(s, result.message)
                elif result.weight is not None:
                    self.publish(f"{s.label} weight {s.weight}")
                return

    def _server_changed(self, s: ServerState, message: str) -> None:
        what = "up" if s.up else "down"
        log.log(
            logging.INFO if s.up else logging.WARNING,
            "%s: real server %s is %s (%s)",
            self.label,
            s.label,
            what,
            message,
            extra=halo_log.fields(
                virtual_server=self.label,
                server=s.label,
                from_state="DOWN" if s.up else "UP",
                to_state="UP" if s.up else "DOWN",
                reason=message,
            ),
        )
        self.bus.publish(
            RealServerChanged(
                virtual_server=self.label,
                real_server=s.label,
                up=s.up,
                weight=s.weight if s.up else 0,
                reason=message,
            )
        )
        command = s.config.notify_up if s.up else s.config.notify_down
        if command:
            self._spawn(command, f"{s.label} {what}")
        self._update_quorum()
        self.publish(f"{s.label} {what}")

    def _update_quorum(self) -> None:
        live = self.live_weight()
        h = self.vs.hysteresis
        if self.quorum and live < self.vs.quorum - h:
            self.quorum = False
            log.warning(
                "%s: quorum lost (live weight %d < %d)",
                self.label,
                live,
                self.vs.quorum - h,
                extra=halo_log.fields(virtual_server=self.label),
            )
            if self.vs.quorum_down:
                self._spawn(self.vs.quorum_down, "quorum lost")
        elif not self.quorum and live >= self.vs.quorum + h:
            self.quorum = True
            log.info(
                "%s: quorum gained (live weight %d >= %d)", self.label, live, self.vs.quorum + h
            )
            if self.vs.quorum_up:
                self._spawn(self.vs.quorum_up, "quorum gained")

    def _spawn(self, command: str, why: str) -> None:
        self.scripts.spawn(command, env=self._env(why), what=f"{self.label}: {why}")

    def _env(self, why: str) -> dict[str, str]:
        return {"HALO_VIRTUAL_SERVER": self.label, "HALO_REASON": why}
