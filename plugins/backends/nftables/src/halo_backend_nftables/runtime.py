"""The ``nftables`` backend at run time: pool states in, atomic ``nft -j -f -`` transactions out.

* **State, not deltas.** Every :class:`~halo_core.events.PoolChanged` carries a service's
  whole wanted state; it is recorded and the service's chain is rewritten from it (flush +
  add in one transaction). Changes that pile up while a transaction runs (the bus hands
  different services' events over concurrently) go out together in the next one.
* **Atomic.** One ``nft -j -f -`` run is one kernel transaction: traffic sees the ruleset
  before or after it, never half of it, and a refused transaction changes nothing. When a
  batch of several services is refused, each is retried alone, so one bad service does not
  hold the others back; a service whose update fails keeps its previous rules, is reported
  (:class:`~halo_core.events.BackendFailed`) and retried every ``reconcile_interval``.
* **Ownership.** Only halo's table (``inet`` family, ``table`` option) is ever written. A
  full rebuild is ``add table; delete table; add …`` in one transaction, which replaces our
  table whatever state it is in and touches nothing else.
* **Start.** Without a table from a previous run, the skeleton (dispatch maps, base
  chains, empty service chains) is built at once and services fill in as they report. With
  one (``keep_on_stop``), it is left serving until every service has reported (or
  ``startup_grace`` passed), then replaced atomically: a restart drops no new connection.
* **Drift.** Every ``reconcile_interval`` the table is listed (``nft -j list table``) and
  compared with what halo last wrote (chains, their rules' count and comments, element
  counts of sets and maps); any difference, or a missing table, triggers a rebuild.
* **VIP firewall** (``vip_firewall``): the VIPs of instances that are MASTER without owning
  them (priority < 255, not in ``accept_instances``) are dropped in an input chain of our
  table, updated on every :class:`~halo_core.events.VrrpStateChanged`.

``nft`` runs as an asyncio subprocess with a time limit: the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

from halo_backend_nftables import ruleset
from halo_backend_nftables.plugin import NftablesBackendConfig
from halo_backend_nftables.ruleset import Dest, Json, Mode, Options, Service, State
from halo_core.config.model import HaloConfig, VirtualServer
from halo_core.events import BackendApplied, BackendFailed, Event, PoolChanged, VrrpStateChanged
from halo_core.log import fields
from halo_core.plugin_api import Backend, PluginContext
from halo_core.scheduler import Job, Timer
from halo_core.schema import IPAddress

log = logging.getLogger("halo.backend.nftables")

__all__ = ["NftError", "NftablesBackend", "Plan", "plan_services"]

# IPVS schedulers nftables cannot do (they need live connection counts or per-destination
# state): the closest stateless equivalent, announced once in the log.
APPROXIMATE: dict[str, Mode] = {
    "wlc": "wrr",
    "sed": "wrr",
    "nq": "wrr",
    "lblc": "wrr",
    "lblcr": "wrr",
    "lc": "rr",
    "ovf": "fo",
    "dh": "hash",
}
EXACT: dict[str, Mode] = {
    "rr": "rr",
    "wrr": "wrr",
    "random": "random",
    "sh": "hash",
    "mh": "hash",
    "hash": "hash",
    "fo": "fo",
}


class NftError(RuntimeError):
    """``nft`` could not be run or refused a command."""


@dataclass
class Plan:
    """The services a backend balances, and what it had to say about the config."""

    services: list[Service]
    problems: list[str]  # services left out (reported as BackendFailed)
    notes: list[str]  # approximations (logged)


def _prefix(mask: IPAddress | None, family: int) -> int | None:
    if mask is None or mask.version != family:
        return None
    bits = mask.max_prefixlen
    prefix = bin(int(mask)).count("1")
    full = (1 << bits) - 1
    if int(mask) != full ^ (full >> prefix):
        return None  # not a contiguous mask: hash the whole address
    return prefix


def _family(vs: VirtualServer) -> int:
    if vs.address is not None:
        return vs.address.version
    # A firewall-mark service has no address: its real servers say which family it is
    # (like IPVS, one family per service; keepalived's fwmark services are IPv4 by default).
    addresses = [rs.address for rs in vs.real_servers]
    if vs.sorry_server is not None:
        addresses.append(vs.sorry_server.address)
    return 6 if addresses and all(a.version == 6 for a in addresses) else 4


def plan_services(config: HaloConfig, wanted: Sequence[str] | None) -> Plan:
    """Turn the config's virtual servers into :class:`~.ruleset.Service` objects. A
    service's index (its chain ``vsN``) is its position in the config, so names stay
    stable when ``virtual_servers`` selects a subset."""
    services: list[Service] = []
    problems: list[str] = []
    notes: list[str] = []
    labels = [vs.label for vs in config.virtual_servers]
    for name in wanted or ():
        if name not in labels:
            problems.append(f"virtual server {name!r} is not in the configuration")
    for index, vs in enumerate(config.virtual_servers):
        if wanted is not None and vs.label not in wanted:
            continue
        if vs.group:
            problems.append(
                f"{vs.label}: a virtual server group cannot be done with the nftables backend"
                " (use the ipvs backend); service left out"
            )
            continue
        if vs.lb_kind != "NAT":
            problems.append(
                f"{vs.label}: lb_kind {vs.lb_kind} cannot be done with nftables DNAT"
                " (use the ipvs backend); service left out"
            )
            continue
        family = _family(vs)
        mode = EXACT.get(vs.lb_algo)
        if mode is None:
            mode = APPROXIMATE[vs.lb_algo]
            notes.append(
                f"{vs.label}: lb_algo {vs.lb_algo} needs connection counts nftables does not"
                f" keep; balancing with {mode} instead"
            )
        if vs.persistence_timeout is not None and mode != "hash":
            # nftables has no per-client memory with a timeout; a hash of the client
            # address pins it as long as the pool does not change.
            notes.append(
                f"{vs.label}: persistence by a hash of the client address (the timeout does"
                " not apply)"
            )
            mode = "hash"
        prefix = _prefix(vs.persistence_granularity, family)
        if prefix is not None and prefix % 8:
            notes.append(
                f"{vs.label}: persistence_granularity /{prefix} rounded to /{prefix // 8 * 8}"
                " (whole bytes)"
            )
        services.append(
            Service(
                index=index,
                label=vs.label,
                family=4 if family == 4 else 6,
                protocol=vs.protocol.lower(),
                address=vs.address,
                port=vs.port or None,
                fwmark=vs.fwmark,
                mode=mode,
                hash_prefix=prefix,
                seed=ruleset.seed_of(vs.label),
            )
        )
    return Plan(services, problems, notes)


def _dests(event: PoolChanged) -> tuple[Dest, ...]:
    # Port 0 (a service on every port, its real servers without one): keep the client's port.
    return tuple(Dest(ip_address(m.address), m.port or None, m.weight) for m in event.members)


def _describe(dests: Sequence[Dest] | None) -> str:
    if dests is None:
        return "not reported"
    live = [d for d in dests if d.weight > 0]
    return ", ".join(f"{d} w{d.weight}" for d in live) or "no real server"


class NftablesBackend(Backend):
    """The ``nftables`` backend: ``factory(config, context)`` of
    :class:`~halo_core.plugin_api.Backend`."""

    def __init__(self, config: NftablesBackendConfig, context: PluginContext) -> None:
        self.config = config
        self.context = context
        self.name = context.name
        self.opts = Options(
            table=config.table,
            masquerade=config.masquerade,
            snat_to=tuple(config.snat_to),
            empty_reject=config.empty_service == "reject",
            vip_firewall=config.vip_firewall,
            hash_buckets=config.hash_buckets,
        )
        self.plan = plan_services(context.config, config.virtual_servers)
        self.services = self.plan.services
        self.by_label = {s.label: s for s in self.services}
        self.by_index = {s.index: s for s in self.services}
        # what the pools want, and what (as far as we know) the kernel has
        self.wanted: dict[int, tuple[Dest, ...] | None] = {s.index: None for s in self.services}
        self.kernel: dict[int, tuple[Dest, ...] | None] = dict(self.wanted)
        self.broken: dict[int, str] = {}  # service index → the error of its last update
        self.dirty: set[int] = set()
        # VIP firewall: instances whose VIPs are dropped while they are MASTER
        self.fw_instances: dict[str, frozenset[IPAddress]] = {}
        if config.vip_firewall:
            # vip_firewall is the opt-in: every non-owner instance but those listed. (An
            # instance's own accept: false is the addresses backend's drop table; its default,
            # true, is keepalived's and must not switch this firewall off.)
            for name, inst in context.config.vrrp_instances.items():
                if inst.priority < 255 and name not in config.accept_instances:
                    self.fw_instances[name] = frozenset(
                        v.address.ip
                        for v in (*inst.virtual_ipaddress, *inst.virtual_ipaddress_excluded)
                    )
        self.masters: set[str] = set()
        self.wanted_vips: frozenset[IPAddress] = frozenset()
        self.kernel_vips: frozenset[IPAddress] = frozenset()
        self.vips_dirty = False

        self.built = False  # our table, as last generated, is in the kernel
        self.ready = False  # every service reported (or the start-up grace is over)
        self.expected: ruleset.Shape | None = None
        self.lock = asyncio.Lock()
        self.closing = False
        self.job: Job | None = None
        self.grace: Timer | None = None
        self.last_error: str | None = None
        self.counters: Counter[str] = Counter()
        self.noted: set[tuple[int, Dest]] = set()  # unusable real servers already logged
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        for note in self.plan.notes:
            log.info("%s: %s", self.name, note)
        for problem in self.plan.problems:
            log.error("%s: %s", self.name, problem, extra=fields(backend=self.name, reason=problem))
            self.context.bus.publish(BackendFailed(backend=self.name, error=problem))
        # Fails (and the daemon reports it) when nft is missing or nf_tables unusable.
        tables = await self._nft(["-j", "list", "tables"])
        exists = any(
            item.get("table", {}).get("family") == "inet"
            and item.get("table", {}).get("name") == self.opts.table
            for item in json.loads(tables or "{}").get("nftables", [])
        )
        if exists and self.services:
            # A table kept by the previous run keeps serving until the pools have spoken.
            log.info(
                "%s: table inet %s from a previous run serves until every service has"
                " reported (at most %.1f s)",
                self.name,
                self.opts.table,
                float(self.config.startup_grace),
            )
            self.grace = self.context.clock.call_at(
                self.context.clock.now() + float(self.config.startup_grace), self._grace_over
            )
        else:
            self.ready = True
            async with self.lock:
                await self._rebuild("start")
        interval = float(self.config.reconcile_interval)
        if interval > 0:
            self.job = self.context.scheduler.every(
                f"backend:{self.name}:reconcile", interval, self.reconcile, first_delay=interval
            )

    def _grace_over(self) -> None:
        self.grace = None
        if self.ready or self.closing:
            return
        missing = [s.label for s in self.services if self.wanted[s.index] is None]
        log.warning(
            "%s: no state yet for %s; building the table without them",
            self.name,
            ", ".join(missing),
        )
        self.ready = True
        self._spawn(self._sync("start-up grace over"))

    async def stop(self) -> None:
        self.closing = True
        if self.job is not None:
            self.context.scheduler.cancel(self.job.name)
            self.job = None
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None
        # A pending rebuild task sees `closing` and returns; never cancel one mid-transaction.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        async with self.lock:
            if self.config.keep_on_stop:
                log.info("%s: keeping table inet %s", self.name, self.opts.table)
                return
            try:
                await self._apply(ruleset.delete_table(self.opts))
            except NftError as exc:
                log.error("%s: cannot delete table inet %s: %s", self.name, self.opts.table, exc)
                return
            self.built = False
            log.info("%s: deleted table inet %s", self.name, self.opts.table)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ events

    async def handle(self, event: Event) -> None:
        try:
            if isinstance(event, PoolChanged):
                service = self.by_label.get(event.virtual_server)
                if service is None:
                    return
                dests = _dests(event)
                self._note_unusable(service, dests)
                self.wanted[service.index] = dests
                self.dirty.add(service.index)
                await self._sync(f"{service.label}: {event.reason}")
            elif isinstance(event, VrrpStateChanged) and event.instance in self.fw_instances:
                if event.new == "MASTER":
                    self.masters.add(event.instance)
                else:
                    self.masters.discard(event.instance)
                vips = frozenset().union(*(self.fw_instances[m] for m in self.masters))
                if vips != self.wanted_vips:
                    self.wanted_vips = vips
                    self.vips_dirty = True
                    await self._sync(f"{event.instance} {event.new}")
        except Exception as exc:  # never raise at the bus: report instead
            log.exception(
                "%s: failed handling %s", self.name, event.kind, extra=fields(backend=self.name)
            )
            self.context.bus.publish(
                BackendFailed(backend=self.name, error=f"{type(exc).__name__}: {exc}")
            )

    def _note_unusable(self, service: Service, dests: Sequence[Dest]) -> None:
        usable = {(u.address, u.port) for u in ruleset.usable(service, dests)}
        for d in dests:
            if d.weight <= 0 or (d.address, d.port) in usable or (service.index, d) in self.noted:
                continue
            self.noted.add((service.index, d))
            why = (
                "another address family (nftables cannot translate between them)"
                if d.address.version != service.family
                else "no port while other real servers have one"
            )
            log.warning("%s: %s: real server %s left out: %s", self.name, service.label, d, why)

    async def _sync(self, reason: str) -> None:
        async with self.lock:
            if self.closing:
                return
            if not self.ready:
                if any(v is None for v in self.wanted.values()):
                    return  # the kept table serves until every service has reported
                self.ready = True
                if self.grace is not None:
                    self.grace.cancel()
                    self.grace = None
            if not self.built:
                await self._rebuild(reason)
                return
            await self._update(reason)

    async def reconcile(self) -> None:
        """Retry what failed and repair what changed behind our back."""
        async with self.lock:
            if self.closing or not self.ready:
                return
            if not self.built:
                await self._rebuild("retry")
                return
            if self.broken:
                self.dirty |= set(self.broken)
                await self._update("retry")
            try:
                out = await self._nft(["-j", "list", "table", "inet", self.opts.table])
                have = ruleset.listed_shape(json.loads(out), self.opts.table)
            except NftError as exc:
                if "No such file or directory" not in str(exc):
                    log.warning("%s: cannot read the table back: %s", self.name, exc)
                    return
                have = None
            if self.expected is None:
                state = State(dict(self.kernel), self.kernel_vips)
                self.expected = ruleset.expected_shape(
                    ruleset.full(self.services, state, self.opts)
                )
            drift = ruleset.describe_drift(self.expected, have)
            if drift is None:
                return
            self.counters["drift_repairs"] += 1
            log.warning(
                "%s: table inet %s was changed outside halo (%s); rebuilding it",
                self.name,
                self.opts.table,
                drift,
            )
            await self._rebuild(f"repair: {drift}")

    # ------------------------------------------------------------------ transactions

    def _state(self) -> State:
        # A service whose last update failed keeps what the kernel has (its last good state).
        members = {
            s.index: self.kernel[s.index] if s.index in self.broken else self.wanted[s.index]
            for s in self.services
        }
        return State(members=members, vips=self.wanted_vips)

    async def _rebuild(self, reason: str) -> None:
        state = self._state()
        cmds = ruleset.full(self.services, state, self.opts)
        try:
            await self._apply(cmds)
        except NftError as exc:
            self.built = False
            self._failed(f"rebuilding table inet {self.opts.table} ({reason}): {exc}")
            return
        self.built = True
        self.kernel.update(state.members)
        self.kernel_vips = state.vips
        self.dirty -= {i for i in self.dirty if i not in self.broken}
        self.vips_dirty = False
        self.expected = ruleset.expected_shape(cmds)
        self.counters["rebuilds"] += 1
        self.last_error = None
        reported = sum(1 for v in state.members.values() if v is not None)
        detail = f"table inet {self.opts.table} built ({reason}): {reported} services"
        log.info("%s: %s", self.name, detail)
        self.context.bus.publish(BackendApplied(backend=self.name, detail=detail))

    async def _update(self, reason: str) -> None:
        indexes = sorted(self.dirty)
        self.dirty.clear()
        units: list[tuple[str, int | None, list[Json]]] = []
        for i in indexes:
            s = self.by_index[i]
            units.append((s.label, i, ruleset.service_update(s, self.wanted[i], self.opts)))
        vips = self.vips_dirty
        self.vips_dirty = False
        if vips:
            units.append(("VIP firewall", None, ruleset.vips_update(self.wanted_vips, self.opts)))
        if not units:
            return
        try:
            await self._apply([c for _, _, cmds in units for c in cmds])
            done = units
        except NftError as exc:
            if len(units) == 1:
                done = []
                self._unit_failed(units[0], exc)
            else:
                # One transaction per unit, so that one refused service holds nobody back.
                done = []
                for unit in units:
                    try:
                        await self._apply(unit[2])
                    except NftError as exc2:
                        self._unit_failed(unit, exc2)
                    else:
                        done.append(unit)
        for label, index, _ in done:
            if index is None:
                self.kernel_vips = self.wanted_vips
                detail = "VIP firewall: " + (
                    ", ".join(sorted(map(str, self.kernel_vips))) or "nothing dropped"
                )
            else:
                self.kernel[index] = self.wanted[index]
                if self.broken.pop(index, None) is not None:
                    log.info("%s: %s applied again", self.name, label)
                detail = f"{label}: {_describe(self.kernel[index])}"
            self.counters["updates"] += 1
            log.info("%s: %s (%s)", self.name, detail, reason)
            self.context.bus.publish(BackendApplied(backend=self.name, detail=detail))
        if done:
            self.expected = None  # recomputed by the next reconcile, off the change's path

    def _unit_failed(self, unit: tuple[str, int | None, list[Json]], exc: NftError) -> None:
        label, index, _ = unit
        if index is None:
            self.vips_dirty = True
        else:
            self.broken[index] = str(exc)  # retried by the next reconcile
        self._failed(f"{label}: {exc}")

    def _failed(self, error: str) -> None:
        self.counters["failures"] += 1
        if error == self.last_error:
            log.debug("%s: still failing: %s", self.name, error)
            return  # reported already: retries of the same failure stay quiet
        self.last_error = error
        log.error(
            "%s: %s (previous rules kept; retrying)",
            self.name,
            error,
            extra=fields(backend=self.name, reason=error),
        )
        self.context.bus.publish(BackendFailed(backend=self.name, error=error))

    async def _apply(self, cmds: list[Json]) -> None:
        await self._nft(["-j", "-f", "-"], json.dumps(ruleset.document(cmds)))

    async def _nft(self, args: list[str], stdin: str | None = None) -> str:
        """Run nft; its stdout. Raises NftError with nft's message on failure."""
        try:
            proc = await asyncio.create_subprocess_exec(
                self.config.nft,
                *args,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise NftError(f"cannot run {self.config.nft}: {exc.strerror or exc}") from None
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None),
                float(self.config.nft_timeout),
            )
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise NftError(
                f"nft did not finish within {float(self.config.nft_timeout)} s"
            ) from None
        if proc.returncode != 0:
            lines = [ln.strip() for ln in err.decode(errors="replace").splitlines() if ln.strip()]
            # nft repeats the offending input under each error; the "Error:" lines say it all
            message = " | ".join(ln for ln in lines if "Error" in ln) or " | ".join(lines)
            raise NftError(message[:500] or f"nft exited with {proc.returncode}")
        return out.decode()

    # ------------------------------------------------------------------ introspection

    def status(self) -> dict[str, Any]:
        return {
            "table": f"inet {self.opts.table}",
            "built": self.built,
            "services": {
                s.label: {
                    "applied": _describe(self.kernel[s.index]),
                    "error": self.broken.get(s.index),
                }
                for s in self.services
            },
            "vips_dropped": sorted(map(str, self.kernel_vips)),
            "counters": dict(self.counters),
        }
