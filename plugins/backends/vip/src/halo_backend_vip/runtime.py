"""The ``vip`` backend at run time: virtual addresses in the kernel, announced on the wire.

What it does, per VRRP instance with virtual addresses (``virtual_ipaddress`` and
``virtual_ipaddress_excluded``; ``dev`` defaults to the instance's interface):

* **Entering MASTER**: add every address through rtnetlink (the struct-built
  :class:`~halo_backend_vip.netlink.AddressClient`, one socket; pyroute2 would cost 12.5 MB
  of a 35 MB budget and ten times the add latency) and announce it ``garp_master_repeat``
  times with gratuitous ARP / unsolicited neighbour advertisements. Each address's first
  frame leaves as soon as its add returns (keepalived's round order: one frame per
  address per round), with no sleep in between, because every millisecond here is a
  millisecond of clients sending to the old master. A second burst follows after
  ``garp_master_delay`` (the instance's own value wins), refreshes every
  ``garp_master_refresh`` while MASTER. A :class:`~halo_core.events.VrrpAnnounce` (this
  master heard a lower-priority one: a split brain healed) sends
  ``garp_lower_prio_repeat`` per address at once. Leaving MASTER cancels whatever is
  still pending.
* **Leaving MASTER** (BACKUP, FAULT, STOP) and on :meth:`VipBackend.stop`: delete the
  addresses again.
* **Ownership**: every address halo adds carries ``IFA_PROTO`` = :data:`IFA_PROTO_HALO`
  (0xA1, an otherwise unused value of the kernel's address-protocol byte; kernel ≥ 5.18).
  Only addresses carrying it are ever deleted, so what an operator or another daemon put
  on the box is never touched: an address equal to a VIP that exists without the marker
  when halo wants to add it stays the operator's (it is announced, not owned, and stays
  when halo leaves MASTER). At :meth:`start` every address carrying the marker is deleted:
  nothing can be MASTER yet, so such an address is a leftover of a crashed run.
* **Reconcile**: deletions are heard at once through rtnetlink multicast
  (:mod:`.netlink`); a VIP that disappears while MASTER is added back and re-announced.
  A periodic reconcile (``reconcile_interval``) repeats the whole comparison as a safety
  net, also removing marked addresses no MASTER instance wants and re-reading MACs.
* **Static addresses** (``global.static_ipaddress``, keepalived's ``static_ipaddress``):
  added at start whatever the VRRP states (once the VRRP engine has chosen each interface's
  source address: see :meth:`VipBackend._add_static`), never announced, kept by the reconcile,
  changed by a reload (those no longer listed removed, the new ones added), removed at
  :meth:`stop`. One that cannot be added is logged and retried by every reconcile.
* **Failures**: an address that cannot be added (interface missing, kernel refusal) is
  left out, as keepalived does: logged once with the reason, listed in the status
  (``unavailable``), tried again by every reconcile (so it appears when its interface
  does), and the instance stays MASTER with the others. Only when an instance holds none
  of its addresses is that published as :class:`~halo_core.events.BackendFailed` with the
  instance set (the VRRP engine puts it in FAULT and retries later) rather than have it
  claim addresses it does not hold. Nothing is raised at the bus.

This module owns the addresses (adding, withdrawing, reconciling with the kernel); when
and how often they are announced is :mod:`.announce`'s (bursts, second burst, refreshes,
pacing, the per-interface sockets and prebuilt frames).

Each instance's netlink changes run under its own lock, so a restore never interleaves with
a state change of the same instance while two instances becoming MASTER together overlap
their netlink round trips (the bus runs different instances' events concurrently); the
periodic reconcile and stop take every lock. Timers use the daemon's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import re
import socket
from asyncio import Task
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any

from halo_backend_vip.accept import NoAcceptFirewall
from halo_backend_vip.announce import Announcer, Port, link_info
from halo_backend_vip.claims import ClaimGuard
from halo_backend_vip.netlink import AddressClient, AddressEvent, AddressMonitor, NetlinkError
from halo_backend_vip.options import VipBackendConfig, VipGlobalOptions, VipInstanceOptions
from halo_core.bus import Subscription
from halo_core.config.model import HaloConfig
from halo_core.events import (
    BackendApplied,
    BackendFailed,
    Event,
    PriorityChanged,
    VrrpAnnounce,
    VrrpStateChanged,
)
from halo_core.log import fields
from halo_core.plugin_api import Backend, PluginContext
from halo_core.scheduler import Job
from halo_core.schema import IPAddress

log = logging.getLogger("halo.backend.vip")

__all__ = ["IFA_PROTO_HALO", "KernelAddress", "Port", "Vip", "VipBackend"]

IFA_PROTO_HALO = 0xA1
"""The ``IFA_PROTO`` value marking an address as halo's. The kernel defines 0–3 (unspec,
loopback, router advertisement, link-local); iproute2 versions that know IFA_PROTO show it
as ``proto 0xa1``."""

IFA_F_NODAD = 0x02  # IPv6: usable at once, no duplicate address detection (keepalived too)
SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
COUNTERS = (
    "added",
    "removed",
    "restored",
    "garp_sent",
    "na_sent",
    "send_errors",
    "netlink_errors",
    "skipped",
    "claims_heard",
    "claims_answered",
)


# ---------------------------------------------------------------------------------------------
# what is wanted, and what the kernel has


@dataclass(frozen=True)
class Vip:
    """One virtual address of an instance, with its device resolved."""

    address: IPv4Interface | IPv6Interface
    dev: str
    label: str | None = None
    scope: str | None = None
    broadcast: IPv4Address | None = None

    @property
    def ip(self) -> IPAddress:
        return self.address.ip

    @property
    def v6(self) -> bool:
        return self.address.version == 6

    def matches(self, index: int, addr: KernelAddress) -> bool:
        """Whether ``addr`` is this VIP as the kernel identifies addresses: IPv4 by
        (device, address, prefix length) — the same IPv4 address may be there twice with
        different prefixes — IPv6 by (device, address)."""
        return addr.key == self.key(index)

    def key(self, index: int) -> AddressKey:
        """What :meth:`matches` compares, for looking many up at once."""
        return (index, self.ip, None if self.v6 else self.address.network.prefixlen)

    def __str__(self) -> str:
        return f"{self.address} dev {self.dev}"


AddressKey = tuple[int, IPAddress, int | None]  # (ifindex, address, IPv4 prefix length)

STATIC = "static_ipaddress"
"""The name the static addresses go by in logs and status (no VRRP instance has it: they are
kept apart)."""


@dataclass(frozen=True)
class KernelAddress:
    """An address as dumped from the kernel."""

    index: int
    address: IPAddress
    prefixlen: int
    proto: int

    @property
    def ours(self) -> bool:
        return self.proto == IFA_PROTO_HALO

    @property
    def key(self) -> AddressKey:
        return (self.index, self.address, None if self.address.version == 6 else self.prefixlen)

    def __str__(self) -> str:
        return f"{self.address}/{self.prefixlen} (ifindex {self.index})"


@dataclass(eq=False)
class Instance:
    """A VRRP instance's addresses and what this backend did with them."""

    name: str
    vips: tuple[Vip, ...]
    settings: VipBackendConfig  # announcement settings, the instance's own applied
    master: bool = False
    owned: set[Vip] = field(default_factory=set)  # added by us and (as far as we know) there
    foreign: set[Vip] = field(default_factory=set)  # present without our marker: not ours
    noted_foreign: set[Vip] = field(default_factory=set)  # logged once
    announced_early: set[Vip] = field(default_factory=set)  # first round sent on entry
    # Could not be added (→ why), left out until a reconcile adds them; logged once each.
    unavailable: dict[Vip, str] = field(default_factory=dict)
    added_late: set[Vip] = field(default_factory=set)  # of those, added by the last repair
    restore_wanted: bool = False
    restore_task: asyncio.Task[None] | None = None
    counters: Counter[str] = field(default_factory=Counter)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def held(self) -> list[Vip]:
        """The VIPs on the box for this instance, ours or not: what gets announced."""
        return [v for v in self.vips if v in self.owned or v in self.foreign]


# ---------------------------------------------------------------------------------------------
# the backend


class VipBackend(Backend):
    """The ``vip`` backend, built by ``factory(config, context)``: a
    :class:`~halo_core.plugin_api.Backend`."""

    def __init__(self, config: VipBackendConfig, context: PluginContext) -> None:
        self.config = config
        self.context = context
        self.name = context.name
        self.instances: dict[str, Instance] = {
            name: Instance(name, vips, settings)
            for name, (vips, settings) in self._wanted_vips(context.config).items()
        }
        self.static = Instance(STATIC, self._static_vips(context.config), config)
        self.static_pending = True  # not added yet (see _add_static)
        self.v4_devs = {v.dev for i in self.instances.values() for v in i.vips if not v.v6}
        self.ports: dict[str, Port] = {}
        self.announcer = Announcer(context.clock, self.ports.get)
        # Answers other MACs claiming a MASTER's addresses (a split brain that healed).
        self.claims = ClaimGuard(context.clock, self.ports.get)
        self.promoted: dict[str, str] = {}  # dev → promote_secondaries before we set it
        self.firewall = NoAcceptFirewall(self.name)
        self.ipr: AddressClient | None = None
        self.monitor: AddressMonitor | None = None
        self.job: Job | None = None
        self.first_announce: Subscription | None = None
        self.closing = False
        self.counters: Counter[str] = Counter()  # backend-wide: leftovers, stale, reconciles
        self._tasks: set[asyncio.Task[None]] = set()

    def _wanted_vips(
        self, config: HaloConfig
    ) -> dict[str, tuple[tuple[Vip, ...], VipBackendConfig]]:
        out = {}
        for name, icfg in config.vrrp_instances.items():
            listed = (*icfg.virtual_ipaddress, *icfg.virtual_ipaddress_excluded)
            dev = icfg.address_interface  # the VMAC with use_vmac
            if dev is None and any(v.dev is None for v in listed):
                try:
                    dev = icfg.resolved_interface()
                except OSError:
                    dev = None  # the engine puts this instance in FAULT for the same reason
            vips = tuple(
                Vip(v.address, v.dev or dev or "", v.label, v.scope, v.broadcast) for v in listed
            )
            if vips:
                out[name] = (vips, self._settings(icfg.extensions[VipInstanceOptions]))
        return out

    @staticmethod
    def _static_vips(config: HaloConfig) -> tuple[Vip, ...]:
        listed = config.global_.extensions[VipGlobalOptions].static_ipaddress
        return tuple(Vip(v.address, v.dev or "", v.label, v.scope, v.broadcast) for v in listed)

    def _settings(self, own: VipInstanceOptions) -> VipBackendConfig:
        """The backend's announcement settings with an instance's own (keepalived's
        instance-level garp_* keywords) applied."""
        given = {
            f.name: getattr(own, f.name)
            for f in dataclasses.fields(own)
            if getattr(own, f.name) is not None
        }
        return dataclasses.replace(self.config, **given) if given else self.config

    async def reload(self, config: HaloConfig) -> None:
        """Follow a reloaded configuration. Called before the VRRP engine applies it: new
        instances become known, and a MASTER whose address list changed gets the new
        addresses added and announced and the dropped ones (if ours) removed, with no
        change at all to the addresses it keeps. Removed instances are withdrawn when the
        engine steps them down."""
        for name, (vips, settings) in self._wanted_vips(config).items():
            inst = self.instances.get(name)
            if inst is None:
                self.instances[name] = Instance(name, vips, settings)
                continue
            inst.settings = settings
            if vips == inst.vips:
                continue
            added = [v for v in vips if v not in inst.vips]
            dropped = [v for v in inst.vips if v not in vips]
            async with inst.lock:
                inst.vips = vips
                if not inst.master:
                    continue
                inst.owned -= set(dropped)
                inst.foreign -= set(dropped)
                # Only what left the list, and only if ours (another MASTER's stays).
                for vip in dropped:
                    inst.unavailable.pop(vip, None)
                removed, _ = await self._remove_ours(Instance(name, tuple(dropped), settings))
                new, failed = await self._ensure(inst, added)
            log.info(
                "%s: reload: added %s, removed %s",
                name,
                ", ".join(map(str, new)) or "nothing",
                ", ".join(map(str, removed)) or "nothing",
            )
            if new:
                self.announcer.announce(inst, inst.settings.garp_master_repeat, only=new)
            self._left_out(inst, failed)
        self.v4_devs = {v.dev for i in self.instances.values() for v in i.vips if not v.v6}
        self.claims.update(self.instances.values())
        await self._reload_static(self._static_vips(config))
        await self.firewall.apply(config)

    async def _reload_static(self, vips: tuple[Vip, ...]) -> None:
        """keepalived's reload: the static addresses no longer listed go (if ours), the new
        ones are added, the others are not touched."""
        static = self.static
        if vips == static.vips:
            return
        if self.static_pending:
            static.vips = vips  # added with the others
            return
        dropped = tuple(v for v in static.vips if v not in vips)
        async with static.lock:
            static.vips = vips
            static.owned -= set(dropped)
            static.foreign -= set(dropped)
            for vip in dropped:
                static.unavailable.pop(vip, None)
            removed, _ = await self._remove_ours(Instance(STATIC, dropped, self.config))
            added, failed = await self._ensure(static, [v for v in vips if v not in static.held])
        log.info(
            "%s: reload: added %s, removed %s",
            STATIC,
            ", ".join(map(str, added)) or "nothing",
            ", ".join(map(str, removed)) or "nothing",
        )
        self._left_out(static, failed)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if not marker_supported():
            # Older kernels drop IFA_PROTO silently: halo would take its own addresses for
            # an operator's and never remove them, so it must not manage addresses at all.
            raise RuntimeError(
                f"Linux {os.uname().release} does not keep IFA_PROTO on addresses (needs"
                " 5.18 or later), so halo could not tell its addresses from others'"
            )
        # Before any address is added: with no_accept, none may take a packet.
        await self.firewall.apply(self.context.config)
        self.ipr = AddressClient()  # requests only; events come through the AddressMonitor
        try:
            for addr in await self._dump():
                if addr.ours:
                    await self._delete(addr)
                    self.counters["leftovers_removed"] += 1
                    log.warning("%s: removed %s left behind by a previous run", self.name, addr)
            self.monitor = AddressMonitor(self._on_address_event, self._on_overrun)
            if not self.context.config.vrrp_instances:
                await self._add_static()
        except BaseException:
            self.ipr.close()
            await self.firewall.remove()
            raise
        # Resolve interfaces and prebuild frames now, so becoming MASTER costs no more than
        # the netlink adds. Missing interfaces are not an error until an instance needs them.
        for inst in self.instances.values():
            for vip in inst.vips:
                with contextlib.suppress(OSError):
                    self._port(vip.dev).frame(vip.ip)
        self.first_announce = self.context.bus.subscribe_immediate(
            self._announce_now,
            name=f"backend:{self.name}:first-announce",
            kinds=["vrrp_state", "vrrp_priority"],
        )
        interval = float(self.config.reconcile_interval)
        if interval > 0:
            self.job = self.context.scheduler.every(
                f"backend:{self.name}:reconcile", interval, self.reconcile, first_delay=interval
            )
        log.debug(
            "%s: managing %d addresses of %d instances",
            self.name,
            sum(len(i.vips) for i in self.instances.values()),
            len(self.instances),
        )

    async def _add_static(self) -> None:
        """Add the static addresses: at the first VRRP state change (the engine has read its
        interfaces by then), or at start when there is no VRRP instance. keepalived never
        takes one of its own addresses as an interface's address for its adverts, and
        halo's engine takes the interface's first address when it starts: a static address
        of scope link, which the kernel lists first, would otherwise become the source of
        every advert (keepalived's vrrp.static_ipaddress sample)."""
        self.static_pending = False
        if not self.static.vips or self.closing:
            return
        async with self.static.lock:
            added, failed = await self._ensure(self.static, self.static.vips)
        log.info("%s: added %s", STATIC, ", ".join(map(str, added)) or "nothing new")
        self._left_out(self.static, failed)

    async def stop(self) -> None:
        self.closing = True
        if self.first_announce is not None:
            self.context.bus.unsubscribe(self.first_announce)
            self.first_announce = None
        if self.job is not None:
            self.context.scheduler.cancel(self.job.name)
            self.job = None
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        for inst in self.instances.values():
            self.announcer.cancel(inst)
        self.claims.close()
        if self.ipr is not None:
            async with self._all_locks():
                for inst in (*self.instances.values(), self.static):
                    inst.master = False
                    inst.owned.clear()
                    inst.foreign.clear()
                # Everything marked as ours goes, whichever instance it belonged to.
                for addr in await self._dump():
                    if addr.ours:
                        await self._delete(addr)
                        log.info("%s: removed %s on stop", self.name, addr)
            self.ipr.close()
            self.ipr = None
        for task in list(self._tasks):
            task.cancel()
        await self.firewall.remove()
        for dev, value in self.promoted.items():
            with contextlib.suppress(OSError):
                _write_sysctl(dev, value)
        self.promoted.clear()
        for port in self.ports.values():
            port.close()
        self.ports.clear()

    def _announce_now(self, event: Event) -> None:
        """The VRRP engine's direct route (called inside its publish, right after the new
        master's first advert): the first gratuitous ARPs / NAs leave now, not after a task
        switch and the netlink adds. Clients may send to us a few hundred microseconds
        before the addresses are up; those packets would otherwise go to the dead master.

        The claim guard hears of a priority change and of leaving MASTER on this route too:
        told only after a task switch, it answered the winner's announcements with the
        priority the instance became master with (a tracked check had lowered it since) or
        after the step-down, and the segment kept the loser's MAC for the VIP."""
        if isinstance(event, PriorityChanged):
            self.claims.note_priority(event.instance, event.new)
            return
        if not isinstance(event, VrrpStateChanged) or self.closing:
            return
        if event.new != "MASTER":
            self.claims.forget(event.instance)
            return
        inst = self.instances.get(event.instance)
        if inst is not None:
            self.claims.note_master(inst.name, event.priority, event.vrid)
            inst.announced_early = set(self.announcer.announce_first(inst, inst.vips))

    async def handle(self, event: Event) -> None:
        try:
            if isinstance(event, VrrpStateChanged) and self.static_pending:
                await self._add_static()
            if isinstance(event, VrrpStateChanged):
                inst = self.instances.get(event.instance)
                if inst is None:
                    return
                if event.new == "MASTER":
                    await self._become_master(inst)
                elif inst.master or inst.owned or inst.foreign:
                    await self._withdraw(inst, f"entering {event.new}")
                if not self.closing:
                    self.claims.update(self.instances.values())
            elif isinstance(event, VrrpAnnounce):
                inst = self.instances.get(event.instance)
                if inst is None or not inst.master:
                    return
                log.info("%s: announcing again (%s)", inst.name, event.reason)
                self.announcer.lower_priority_heard(inst)
        except Exception as exc:  # never raise at the bus; report instead
            instance = getattr(event, "instance", None)
            log.exception(
                "%s: failed handling %s",
                self.name,
                event.kind,
                extra=fields(instance=instance, backend=self.name),
            )
            self.context.bus.publish(
                BackendFailed(
                    backend=self.name, error=f"{type(exc).__name__}: {exc}", instance=instance
                )
            )

    # ------------------------------------------------------------------ state changes

    async def _become_master(self, inst: Instance) -> None:
        self.announcer.cancel(inst)
        repeat = inst.settings.garp_master_repeat
        # Without pacing, each address's first announcement leaves right after its own add
        # (keepalived's round order is kept: round one interleaved with the adds, then the
        # other rounds), so the first frame does not wait for the remaining adds.
        interleave = repeat > 0 and not any(self.announcer.gap(inst, v.v6) for v in inst.vips)
        early, inst.announced_early = inst.announced_early, set()
        first_round: set[Vip] = set()

        def held(vip: Vip) -> None:
            if interleave:
                if vip not in early:
                    self.announcer.announce(inst, 1, only=(vip,))
                first_round.add(vip)

        async with inst.lock:
            if self.closing:
                return
            inst.master = True
            added, failed = await self._ensure(inst, inst.vips, on_held=held)
            if not inst.held:
                inst.master = False  # nothing was added: nothing to roll back
        if not inst.master:
            # Not one address could be added: FAULT (BackendFailed) rather than a MASTER
            # that serves nothing; the engine retries later.
            self._fail(inst, "; ".join(f"cannot add {v}: {why}" for v, why in failed.items()))
            return
        self._left_out(inst, failed)  # the others are served; these wait for a reconcile
        if interleave:
            self.announcer.announce(inst, 1, only=set(inst.held) - first_round)
            self.announcer.announce(inst, repeat - 1)
        else:
            self.announcer.announce(inst, repeat)
        self.announcer.follow_up(inst, float(inst.settings.garp_master_delay), repeat)
        log.info(
            "%s: MASTER: added %s", inst.name, ", ".join(str(v) for v in added) or "nothing new"
        )
        self.context.bus.publish(
            BackendApplied(backend=self.name, detail=f"{inst.name}: {len(inst.held)} addresses up")
        )

    async def _withdraw(self, inst: Instance, why: str) -> None:
        self.announcer.cancel(inst)
        async with inst.lock:
            inst.master = False
            inst.owned.clear()
            inst.foreign.clear()
            if self.closing:
                return
            removed, failures = await self._remove_ours(inst)
        if removed:
            log.info("%s: %s: removed %s", inst.name, why, ", ".join(str(a) for a in removed))
            self.context.bus.publish(
                BackendApplied(
                    backend=self.name, detail=f"{inst.name}: {len(removed)} addresses down"
                )
            )
        if failures:
            self._fail(inst, "; ".join(failures))

    def _fail(self, inst: Instance, error: str) -> None:
        log.error(
            "%s: %s",
            inst.name,
            error,
            extra=fields(instance=inst.name, backend=self.name, reason=error),
        )
        self.context.bus.publish(BackendFailed(backend=self.name, error=error, instance=inst.name))

    # ------------------------------------------------------------------ netlink

    async def _dump(self) -> list[KernelAddress]:
        assert self.ipr is not None
        out: list[KernelAddress] = []
        for a in await self.ipr.dump():
            if a.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            cls = IPv4Address if a.family == socket.AF_INET else IPv6Address
            out.append(KernelAddress(a.index, cls(a.address), a.prefixlen, a.proto))
        return out

    async def _delete(self, addr: KernelAddress) -> bool:
        """Delete one address; False (logged) if the kernel refused. Gone already is fine."""
        try:
            assert self.ipr is not None
            await self.ipr.delete(addr.index, addr.address.packed, addr.prefixlen)
        except NetlinkError as exc:
            if exc.code in (errno.EADDRNOTAVAIL, errno.ENODEV):
                return True
            self.counters["netlink_errors"] += 1
            log.error("%s: cannot remove %s: %s", self.name, addr, os.strerror(exc.code))
            return False
        return True

    def _port(self, dev: str) -> Port:
        """The interface's Port, rebuilt when the interface was recreated (new ifindex)."""
        try:
            index = socket.if_nametoindex(dev)
        except OSError:
            raise OSError(errno.ENODEV, f"no interface named {dev}") from None
        port = self.ports.get(dev)
        if port is None or port.index != index:
            if port is not None:
                port.close()
            _, mac = link_info(dev)
            port = self.ports[dev] = Port(dev, index, mac)
            if self.config.promote_secondaries and dev in self.v4_devs:
                self._promote_secondaries(dev)
        return port

    def _promote_secondaries(self, dev: str) -> None:
        # keepalived does the same: without it, deleting the primary address of a subnet
        # makes the kernel delete every secondary address of that subnet with it.
        if dev in self.promoted:
            return
        try:
            value = _read_sysctl(dev)
            if value != "0":
                return
            _write_sysctl(dev, "1")
        except OSError as exc:
            log.warning("%s: cannot set promote_secondaries on %s: %s", self.name, dev, exc)
            return
        self.promoted[dev] = value

    async def _ensure(
        self, inst: Instance, vips: Iterable[Vip], on_held: Callable[[Vip], None] | None = None
    ) -> tuple[list[Vip], dict[Vip, str]]:
        """Add ``vips``; (added, {not added: why}). EEXIST is sorted out: ours (a restore
        racing an event, say) counts as held, anyone else's is held but never owned.
        ``on_held(vip)`` runs as soon as each one is known to be on the box. One that fails
        does not stop the others."""
        added: list[Vip] = []
        failed: dict[Vip, str] = {}
        for vip in vips:
            try:
                port = self._port(vip.dev)
            except OSError as exc:
                inst.counters["netlink_errors"] += 1
                failed[vip] = str(exc.strerror or exc)
                continue
            args: dict[str, Any] = {"proto": IFA_PROTO_HALO}
            if vip.v6:
                args["flags"] = IFA_F_NODAD
            else:
                if vip.label:
                    args["label"] = vip.label
                if vip.broadcast is not None:
                    args["broadcast"] = vip.broadcast.packed
            if vip.scope:
                args["scope"] = SCOPES[vip.scope]
            try:
                assert self.ipr is not None
                await self.ipr.add(port.index, vip.ip.packed, vip.address.network.prefixlen, **args)
            except NetlinkError as exc:
                if exc.code == errno.EEXIST:
                    owner = await self._owner(vip, port.index)
                    if owner is not None:
                        self._hold(inst, vip, ours=owner)
                        self._available(inst, vip)
                        if on_held is not None:
                            on_held(vip)
                        continue
                inst.counters["netlink_errors"] += 1
                failed[vip] = os.strerror(exc.code)
                continue
            inst.owned.add(vip)
            inst.foreign.discard(vip)
            inst.counters["added"] += 1
            added.append(vip)
            self._available(inst, vip)
            if on_held is not None:
                on_held(vip)
        return added, failed

    def _available(self, inst: Instance, vip: Vip) -> None:
        why = inst.unavailable.pop(vip, None)
        if why is not None:
            inst.added_late.add(vip)
            log.info(
                "%s: added %s, left out before (%s)",
                inst.name,
                vip,
                why,
                extra=fields(instance=inst.name, backend=self.name),
            )

    def _left_out(self, inst: Instance, failed: dict[Vip, str]) -> None:
        """A MASTER goes on without the VIPs it could not add (keepalived does too): each
        is logged once (again only if the reason changes), counted and listed in the
        status, and retried by the reconcile. One holding none of its VIPs is a failure
        (BackendFailed: FAULT, the engine retries) instead."""
        if not failed:
            return
        if inst.master and not inst.held:
            self._fail(inst, "; ".join(f"cannot add {v}: {why}" for v, why in failed.items()))
            return
        for vip, why in failed.items():
            if inst.unavailable.get(vip) == why:
                continue
            inst.unavailable[vip] = why
            inst.counters["skipped"] += 1
            log.error(
                "%s: cannot add %s: %s; serving the other addresses, retrying%s",
                inst.name,
                vip,
                why,
                f" every {float(self.config.reconcile_interval):g}s"
                if float(self.config.reconcile_interval) > 0
                else " on the next state change",
                extra=fields(instance=inst.name, backend=self.name, reason=why),
            )

    async def _owner(self, vip: Vip, index: int) -> bool | None:
        """True if ``vip`` is on the box with our marker, False without, None if absent."""
        found = [a for a in await self._dump() if vip.matches(index, a)]
        if not found:
            return None
        return any(a.ours for a in found)

    def _hold(self, inst: Instance, vip: Vip, *, ours: bool) -> None:
        if ours:
            inst.owned.add(vip)
            inst.foreign.discard(vip)
            return
        inst.owned.discard(vip)
        inst.foreign.add(vip)
        if vip not in inst.noted_foreign:
            inst.noted_foreign.add(vip)
            log.warning(
                "%s: %s is already configured by someone else: %sit is not halo's and will"
                " not be removed",
                inst.name,
                vip,
                "" if inst is self.static else "announcing it, but ",
            )

    async def _remove_ours(self, inst: Instance) -> tuple[list[Vip], list[str]]:
        """Delete this instance's VIPs that carry our marker and no MASTER instance holds."""
        present = await self._dump()
        removed: list[Vip] = []
        failures: list[str] = []
        for vip in inst.vips:
            try:
                index = socket.if_nametoindex(vip.dev)
            except OSError:
                continue  # the interface is gone, and its addresses with it
            for addr in present:
                if not (addr.ours and vip.matches(index, addr)) or self._wanted(addr, inst):
                    continue
                if await self._delete(addr):
                    inst.counters["removed"] += 1
                    removed.append(vip)
                else:
                    inst.counters["netlink_errors"] += 1
                    failures.append(f"cannot remove {vip}")
        return removed, failures

    def _wanted(self, addr: KernelAddress, besides: Instance | None = None) -> bool:
        """Whether a MASTER instance (other than ``besides``) or the static addresses hold
        ``addr`` as its own."""
        for inst in (*self.instances.values(), self.static):
            if inst is besides or not (inst.master or inst is self.static):
                continue
            for vip in inst.owned:
                port = self.ports.get(vip.dev)
                if port is not None and vip.matches(port.index, addr):
                    return True
        return False

    # ------------------------------------------------------------------ reconcile

    def _on_address_event(self, event: AddressEvent) -> None:
        if self.closing or not event.deleted:
            return
        for inst in self.instances.values():
            if not inst.master:
                continue
            for vip in inst.held:
                port = self.ports.get(vip.dev)
                if port is not None and vip.matches(port.index, _as_kernel(event)):
                    self._schedule_restore(inst)
                    break

    def _on_overrun(self) -> None:
        if not self.closing:
            self._spawn(self.reconcile())

    def _spawn(self, coro: Coroutine[Any, Any, None], inst: Instance | None = None) -> Task[None]:
        """Run ``coro`` in a task of its own; a failure is logged and reported, not lost."""

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("%s: background reconcile failed", self.name)
                self.context.bus.publish(
                    BackendFailed(
                        backend=self.name,
                        error=f"{type(exc).__name__}: {exc}",
                        instance=inst.name if inst is not None else None,
                    )
                )

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _schedule_restore(self, inst: Instance) -> None:
        inst.restore_wanted = True
        if inst.restore_task is None or inst.restore_task.done():
            inst.restore_task = self._spawn(self._restore(inst), inst)

    async def _restore(self, inst: Instance) -> None:
        # Loops while deletions keep arriving, so one that lands mid-restore is not missed.
        while inst.restore_wanted and not self.closing:
            inst.restore_wanted = False
            async with inst.lock:
                if not inst.master or self.closing:
                    return
                restored, failed = await self._repair(inst, await self._dump())
            self._after_repair(inst, restored, failed)

    async def _repair(
        self, inst: Instance, present: list[KernelAddress]
    ) -> tuple[list[Vip], dict[Vip, str]]:
        """Put back the VIPs of a MASTER instance that are missing from ``present``."""
        return await self._repair_indexed(inst, _by_key(present))

    async def _repair_indexed(
        self, inst: Instance, present: dict[AddressKey, list[KernelAddress]]
    ) -> tuple[list[Vip], dict[Vip, str]]:
        missing: list[Vip] = []
        for vip in inst.vips:
            port = self.ports.get(vip.dev)
            found = present.get(vip.key(port.index), []) if port is not None else []
            if not found:
                missing.append(vip)
            else:
                self._hold(inst, vip, ours=any(a.ours for a in found))
        inst.added_late.clear()
        restored, failed = await self._ensure(inst, missing)
        # One left out so far and added now is no restore.
        inst.counters["restored"] += sum(v not in inst.added_late for v in restored)
        return restored, failed

    def _after_repair(self, inst: Instance, restored: list[Vip], failed: dict[Vip, str]) -> None:
        if restored:
            self.announcer.announce(inst, inst.settings.garp_master_repeat, only=restored)
            others = [v for v in restored if v not in inst.added_late]
            inst.added_late.clear()
            if others:
                log.warning(
                    "%s: %s removed by someone else; restored and announced",
                    inst.name,
                    ", ".join(str(v) for v in others),
                )
            self.context.bus.publish(
                BackendApplied(
                    backend=self.name, detail=f"{inst.name}: {len(restored)} addresses restored"
                )
            )
        self._left_out(inst, failed)

    async def reconcile(self) -> None:
        """Compare the kernel with what is wanted: restore the MASTER instances' missing
        VIPs, remove marked addresses nobody wants, pick up MAC changes."""
        if self.closing or self.ipr is None:
            return
        self.counters["reconciles"] += 1
        results: list[tuple[Instance, list[Vip], dict[Vip, str]]] = []
        async with self._all_locks():
            if self.closing:
                return
            self._refresh_macs()
            present = await self._dump()
            # Indexed once: comparing every address with every VIP was quadratic, and at
            # 255 instances it held the event loop (and the adverts) for a few hundred ms.
            wanted = {
                vip.key(port.index)
                for inst in (*self.instances.values(), self.static)
                if inst.master or inst is self.static
                for vip in inst.owned
                if (port := self.ports.get(vip.dev)) is not None
            }
            for addr in present:
                if addr.ours and addr.key not in wanted and await self._delete(addr):
                    self.counters["stale_removed"] += 1
                    log.warning("%s: removed %s, which no MASTER holds", self.name, addr)
            by_key = _by_key(present)
            for inst in self.instances.values():
                if inst.master:
                    restored, failed = await self._repair_indexed(inst, by_key)
                    results.append((inst, restored, failed))
            # Static addresses that could not be added are tried again; one removed by
            # someone else stays removed (keepalived does not put it back either).
            _, static_failed = await self._ensure(self.static, list(self.static.unavailable))
        for inst, restored, failed in results:
            self._after_repair(inst, restored, failed)
        self._left_out(self.static, static_failed)

    @contextlib.asynccontextmanager
    async def _all_locks(self) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for name in sorted(self.instances):  # one order everywhere: no deadlock
                await stack.enter_async_context(self.instances[name].lock)
            await stack.enter_async_context(self.static.lock)
            yield

    def _refresh_macs(self) -> None:
        for dev, port in list(self.ports.items()):
            try:
                index, mac = link_info(dev)
            except OSError:
                continue
            if index != port.index or mac != port.mac:
                log.info("%s: %s changed (index or MAC); rebuilding its frames", self.name, dev)
                port.close()
                self.ports[dev] = Port(dev, index, mac)

    # ------------------------------------------------------------------ introspection

    def status(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "instances": {
                name: {
                    "master": inst.master,
                    "addresses": [str(v) for v in inst.vips],
                    "owned": [str(v) for v in inst.vips if v in inst.owned],
                    "foreign": [str(v) for v in inst.vips if v in inst.foreign],
                    "unavailable": {str(v): why for v, why in inst.unavailable.items()},
                    "counters": {k: inst.counters[k] for k in COUNTERS},
                }
                for name, inst in self.instances.items()
            },
            STATIC: {
                "addresses": [str(v) for v in self.static.vips],
                "owned": [str(v) for v in self.static.vips if v in self.static.owned],
                "foreign": [str(v) for v in self.static.vips if v in self.static.foreign],
                "unavailable": {str(v): why for v, why in self.static.unavailable.items()},
            },
            "interfaces": {
                dev: {"index": p.index, "mac": p.mac.hex(":") if p.mac else None}
                for dev, p in self.ports.items()
            },
            "promote_secondaries_set": sorted(self.promoted),
            "counters": dict(self.counters),
        }


def _by_key(addresses: Iterable[KernelAddress]) -> dict[AddressKey, list[KernelAddress]]:
    out: dict[AddressKey, list[KernelAddress]] = {}
    for addr in addresses:
        out.setdefault(addr.key, []).append(addr)
    return out


def marker_supported(release: str | None = None) -> bool:
    """Whether the kernel keeps IFA_PROTO on addresses (Linux 5.18 and later)."""
    m = re.match(r"(\d+)\.(\d+)", release if release is not None else os.uname().release)
    return m is not None and (int(m[1]), int(m[2])) >= (5, 18)


def _as_kernel(event: AddressEvent) -> KernelAddress:
    return KernelAddress(event.index, event.address, event.prefixlen, event.proto)


def _sysctl_path(dev: str) -> str:
    return f"/proc/sys/net/ipv4/conf/{dev}/promote_secondaries"


def _read_sysctl(dev: str) -> str:
    with open(_sysctl_path(dev)) as fh:
        return fh.read().strip()


def _write_sysctl(dev: str, value: str) -> None:
    with open(_sysctl_path(dev), "w") as fh:
        fh.write(value)
