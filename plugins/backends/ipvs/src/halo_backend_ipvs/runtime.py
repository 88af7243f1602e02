"""The ``ipvs`` backend at run time: pool states reconciled into the kernel's IPVS table.

* **Reconcile, don't replay.** A :class:`~halo_core.events.PoolChanged` records the
  service's wanted destinations; the service is then read back from the kernel (one
  ``get`` and one destination dump) and only the difference is applied
  (:func:`.model.diff`). A service that already matches gets no request at all, so a
  restart keeps every connection, and a missed event is repaired by the next one.
* **Ownership.** halo owns the services its config declares, and only those. They are
  recorded in a state file (``global.state_dir``/``ipvs-NAME.json``, written atomically)
  before anything is created, so the next run can remove those a new config dropped;
  services nobody recorded are never read for writing, let alone deleted.
* **Errors.** Each service is reconciled on its own: a netlink error is reported for that
  service (:class:`~halo_core.events.BackendFailed`, once per distinct error), the service
  is retried every ``reconcile_interval``, and the others carry on. Nothing is raised at
  the bus, so VRRP never notices.
* **Drift.** The same periodic reconcile puts back what was changed behind halo's back
  (``ipvsadm -d`` of a real server, a deleted service).
* **IPVS-wide settings.** ``connection_timeouts`` are set once at start (``IPVS_CMD_SET_CONFIG``);
  the ``sync_daemon`` runs as backup daemon from the start and as master daemon while its
  VRRP instance is MASTER (``IPVS_CMD_NEW_DAEMON``/``DEL_DAEMON``), as keepalived does.
* **Stop.** Services stay (a restart keeps connections) unless ``flush_on_stop``, which
  deletes halo's services, never anyone else's.

pyroute2 0.9 pitfalls handled here: the ``"update"`` command means *delete* (``"set"`` is
used); ``IPVSDest`` defaults to direct routing and ``IPVSService`` to ``wlc``, so every
field is always given; an IPv6 service's netmask is a prefix length carried in the same
32-bit attribute as IPv4's mask (host byte order).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import shutil
import socket
import struct
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from pyroute2 import AsyncIPVS, IPVSDest, IPVSService
from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST, genlmsg, nla
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic import ipvs as genl_ipvs

from halo_backend_ipvs import model
from halo_backend_ipvs.model import (
    AF_INET6,
    F_HASHED,
    DestAttrs,
    DestKey,
    KernelDest,
    KernelService,
    Op,
    Planned,
    ServiceAttrs,
    ServiceKey,
)
from halo_backend_ipvs.plugin import IpvsBackendConfig, IpvsSyncDaemon, IpvsTimeouts
from halo_core.events import BackendApplied, BackendFailed, Event, PoolChanged, VrrpStateChanged
from halo_core.log import fields
from halo_core.plugin_api import Backend, PluginContext
from halo_core.scheduler import Job

log = logging.getLogger("halo.backend.ipvs")
if logging.getLogger("pyroute2").level == logging.NOTSET:
    # pyroute2 logs every netlink message at DEBUG; `--log-level debug` is for halo's lines.
    logging.getLogger("pyroute2").setLevel(logging.INFO)

__all__ = ["IpvsBackend", "IpvsUnavailable", "KernelIpvs", "show_table"]

T = TypeVar("T")
FLAGS_MASK = 0xFFFFFFFF  # halo owns every flag of its services
PROC_IPVS = "/proc/net/ip_vs"


class IpvsUnavailable(RuntimeError):
    """The kernel has no IPVS (or this process may not use it)."""


def _errtext(exc: BaseException) -> str:
    if isinstance(exc, NetlinkError):
        return f"{os.strerror(exc.code)} (errno {exc.code})"
    if isinstance(exc, TimeoutError):
        return "no answer from the kernel in time"
    return f"{type(exc).__name__}: {exc}"


def _netmask_attr(af: int, prefix: int) -> str:
    # IPVS_SVC_ATTR_NETMASK is a 32-bit attribute: IPv4 sends the mask in network order, IPv6
    # the prefix length as a host-order integer (ipvsadm does the same). pyroute2 encodes
    # the attribute as an IPv4 address, so the IPv6 integer is passed as the address whose
    # bytes are that integer's.
    if af == AF_INET6:
        return socket.inet_ntoa(struct.pack("=I", prefix))
    return socket.inet_ntoa(struct.pack("!I", (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF))


def _netmask_prefix(af: int, value: str | None) -> int:
    if value is None:
        return 128 if af == AF_INET6 else 32
    raw = socket.inet_aton(value)
    if af == AF_INET6:
        return int(struct.unpack("=I", raw)[0])
    return bin(struct.unpack("!I", raw)[0]).count("1")


def _service_request(key: ServiceKey, attrs: ServiceAttrs | None = None) -> Any:
    kw: dict[str, Any] = {"af": key.af}
    if key.fwmark:
        kw["fwmark"] = key.fwmark
    else:
        kw.update(addr=key.address, port=key.port, protocol=key.protocol)
    attrs = attrs or ServiceAttrs("wlc", netmask=128 if key.v6 else 32)
    kw.update(
        sched_name=attrs.scheduler,
        flags={"flags": attrs.flags, "mask": FLAGS_MASK},
        timeout=attrs.timeout,
        netmask=_netmask_attr(key.af, attrs.netmask),
    )
    return IPVSService(**kw)


class ipvs_settings_msg(genlmsg):  # type: ignore[misc]  # pyroute2 is untyped
    """IPVS_CMD_SET_CONFIG and the daemon commands, which pyroute2's ``ipvsmsg`` carries as
    opaque bytes."""

    prefix = "IPVS_CMD_ATTR_"
    nla_map = (
        ("IPVS_CMD_ATTR_UNSPEC", "none"),
        ("IPVS_CMD_ATTR_SERVICE", "hex"),
        ("IPVS_CMD_ATTR_DEST", "hex"),
        ("IPVS_CMD_ATTR_DAEMON", "daemon"),
        ("IPVS_CMD_ATTR_TIMEOUT_TCP", "uint32"),
        ("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN", "uint32"),
        ("IPVS_CMD_ATTR_TIMEOUT_UDP", "uint32"),
    )

    class daemon(nla):  # type: ignore[misc]
        prefix = "IPVS_DAEMON_ATTR_"
        nla_map = (
            ("IPVS_DAEMON_ATTR_UNSPEC", "none"),
            ("IPVS_DAEMON_ATTR_STATE", "uint32"),
            ("IPVS_DAEMON_ATTR_MCAST_IFN", "asciiz"),
            ("IPVS_DAEMON_ATTR_SYNC_ID", "uint32"),
            ("IPVS_DAEMON_ATTR_SYNC_MAXLEN", "uint16"),
            ("IPVS_DAEMON_ATTR_MCAST_GROUP", "ip4addr"),
            ("IPVS_DAEMON_ATTR_MCAST_GROUP6", "ip6addr"),
            ("IPVS_DAEMON_ATTR_MCAST_PORT", "be16"),
            ("IPVS_DAEMON_ATTR_MCAST_TTL", "uint8"),
        )


# ip_vs.h: IP_VS_STATE_MASTER / IP_VS_STATE_BACKUP
DAEMON_STATES = {"master": 1, "backup": 2}


def timeouts_request(timeouts: IpvsTimeouts) -> Any:
    msg = ipvs_settings_msg()
    msg["cmd"] = genl_ipvs.IPVS_CMD_SET_CONFIG
    msg["version"] = genl_ipvs.GENL_VERSION
    msg["attrs"] = [
        (name, round(float(value)))
        for name, value in (
            ("IPVS_CMD_ATTR_TIMEOUT_TCP", timeouts.tcp),
            ("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN", timeouts.tcp_fin),
            ("IPVS_CMD_ATTR_TIMEOUT_UDP", timeouts.udp),
        )
        if value is not None
    ]
    return msg


def daemon_request(sync: IpvsSyncDaemon, state: str, *, start: bool, syncid: int = 0) -> Any:
    attrs: list[tuple[str, Any]] = [("IPVS_DAEMON_ATTR_STATE", DAEMON_STATES[state])]
    if start:
        attrs += [
            ("IPVS_DAEMON_ATTR_MCAST_IFN", sync.interface),
            ("IPVS_DAEMON_ATTR_SYNC_ID", syncid if sync.syncid is None else sync.syncid),
        ]
        if sync.maxlen is not None:
            attrs.append(("IPVS_DAEMON_ATTR_SYNC_MAXLEN", sync.maxlen))
        if sync.mcast_group is not None:
            v6 = sync.mcast_group.version == 6
            attrs.append(
                (f"IPVS_DAEMON_ATTR_MCAST_GROUP{'6' if v6 else ''}", str(sync.mcast_group))
            )
        if sync.mcast_port is not None:
            attrs.append(("IPVS_DAEMON_ATTR_MCAST_PORT", sync.mcast_port))
        if sync.mcast_ttl is not None:
            attrs.append(("IPVS_DAEMON_ATTR_MCAST_TTL", sync.mcast_ttl))
    msg = ipvs_settings_msg()
    msg["cmd"] = genl_ipvs.IPVS_CMD_NEW_DAEMON if start else genl_ipvs.IPVS_CMD_DEL_DAEMON
    msg["version"] = genl_ipvs.GENL_VERSION
    msg["attrs"] = [("IPVS_CMD_ATTR_DAEMON", {"attrs": attrs})]
    return msg


def _dest_request(dest: DestKey, attrs: DestAttrs | None = None) -> Any:
    # Every field, always: a "set" without fwd_method would silently switch NAT to DR.
    attrs = attrs or DestAttrs(fwd=0, weight=0)
    return IPVSDest(
        addr=dest.address,
        port=dest.port,
        addr_family=socket.AF_INET6 if dest.v6 else socket.AF_INET,
        fwd_method=attrs.fwd,
        weight=attrs.weight,
        u_thresh=attrs.u_thresh,
        l_thresh=attrs.l_thresh,
        tun_type=attrs.tun_type,
        # IPVS_DEST_ATTR_TUN_PORT is big-endian; pyroute2 declares it host-order
        tun_port=socket.htons(attrs.tun_port),
        tun_flags=attrs.tun_flags,
    )


def _attr(nla: Any, name: str, default: Any = None) -> Any:
    value = nla.get_attr(name)
    return default if value is None else value


def parse_service(msg: Any) -> KernelService:
    nla = msg.get_attr("IPVS_CMD_ATTR_SERVICE")
    af = int(_attr(nla, "IPVS_SVC_ATTR_AF"))
    fwmark = int(_attr(nla, "IPVS_SVC_ATTR_FWMARK", 0))
    key = ServiceKey(
        af=af,
        protocol=0 if fwmark else int(_attr(nla, "IPVS_SVC_ATTR_PROTOCOL", 0)),
        address="" if fwmark else str(_attr(nla, "IPVS_SVC_ATTR_ADDR", "")),
        port=0 if fwmark else int(_attr(nla, "IPVS_SVC_ATTR_PORT", 0)),
        fwmark=fwmark,
    )
    flags = _attr(nla, "IPVS_SVC_ATTR_FLAGS", {"flags": 0})
    attrs = ServiceAttrs(
        scheduler=str(_attr(nla, "IPVS_SVC_ATTR_SCHED_NAME", "")),
        flags=int(flags["flags"]) & ~F_HASHED,
        timeout=int(_attr(nla, "IPVS_SVC_ATTR_TIMEOUT", 0)),
        netmask=_netmask_prefix(af, nla.get_attr("IPVS_SVC_ATTR_NETMASK")),
    )
    return KernelService(key, attrs, pe_name=str(_attr(nla, "IPVS_SVC_ATTR_PE_NAME", "")))


def parse_dest(msg: Any) -> tuple[DestKey, KernelDest]:
    nla = msg.get_attr("IPVS_CMD_ATTR_DEST")
    key = DestKey(str(_attr(nla, "IPVS_DEST_ATTR_ADDR")), int(_attr(nla, "IPVS_DEST_ATTR_PORT", 0)))
    attrs = DestAttrs(
        fwd=int(_attr(nla, "IPVS_DEST_ATTR_FWD_METHOD", 0)) & 0x7,
        weight=int(_attr(nla, "IPVS_DEST_ATTR_WEIGHT", 0)),
        u_thresh=int(_attr(nla, "IPVS_DEST_ATTR_U_THRESH", 0)),
        l_thresh=int(_attr(nla, "IPVS_DEST_ATTR_L_THRESH", 0)),
        tun_type=int(_attr(nla, "IPVS_DEST_ATTR_TUN_TYPE", 0)),
        tun_port=socket.ntohs(int(_attr(nla, "IPVS_DEST_ATTR_TUN_PORT", 0))),
        tun_flags=int(_attr(nla, "IPVS_DEST_ATTR_TUN_FLAGS", 0)),
    )
    return key, KernelDest(
        attrs,
        active=int(_attr(nla, "IPVS_DEST_ATTR_ACTIVE_CONNS", 0)),
        inactive=int(_attr(nla, "IPVS_DEST_ATTR_INACT_CONNS", 0)),
        persistent=int(_attr(nla, "IPVS_DEST_ATTR_PERSIST_CONNS", 0)),
    )


class KernelIpvs:
    """The kernel's IPVS table through one pyroute2 ``AsyncIPVS`` socket. Every request has a
    time limit; after a timeout the socket is replaced (its state is unknown)."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.sock: Any = None

    async def open(self, *, modprobe: bool = True) -> None:
        try:
            await self._connect()
        except IpvsUnavailable:
            if not modprobe or shutil.which("modprobe") is None:
                raise
            # Like keepalived: load ip_vs when the generic-netlink family is missing.
            proc = await asyncio.create_subprocess_exec(
                "modprobe",
                "-q",
                "ip_vs",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await asyncio.wait_for(proc.wait(), 30)
            await self._connect()

    async def _connect(self) -> None:
        sock = AsyncIPVS()
        try:
            await asyncio.wait_for(sock.setup_endpoint(), self.timeout)
        except NetlinkError as exc:
            sock.close()
            if exc.code in (errno.ENOENT, errno.ENOTSUP):
                raise IpvsUnavailable("IPVS is not available in this kernel (ip_vs)") from None
            if exc.code == errno.EPERM:
                raise IpvsUnavailable("not allowed to use IPVS (needs CAP_NET_ADMIN)") from None
            raise
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    async def _call(self, aw: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(aw, self.timeout)
        except TimeoutError:
            self.close()
            raise

    async def _sock(self) -> Any:
        if self.sock is None:
            await self._connect()
        return self.sock

    async def services(self) -> list[KernelService]:
        sock = await self._sock()
        return [parse_service(m) for m in await self._call(sock.service("dump"))]

    async def dests(self, key: ServiceKey) -> dict[DestKey, KernelDest]:
        sock = await self._sock()
        msgs = await self._call(sock.dest("dump", service=_service_request(key)))
        return dict(parse_dest(m) for m in msgs)

    async def get(self, key: ServiceKey) -> KernelService | None:
        """The service with its destinations; None when the kernel has no such service."""
        sock = await self._sock()
        try:
            msgs = await self._call(sock.service("get", service=_service_request(key)))
        except NetlinkError as exc:
            if exc.code in (errno.ESRCH, errno.ENOENT):
                return None
            raise
        if not msgs:
            return None
        service = parse_service(msgs[0])
        service.dests = await self.dests(key)
        return service

    async def table(self) -> list[KernelService]:
        services = await self.services()
        for s in services:
            s.dests = await self.dests(s.key)
        return services

    async def settings(self, msg: Any) -> None:
        """Send one IPVS-wide request (timeouts, sync daemon)."""
        sock = await self._sock()
        await self._call(sock._do_request(msg, msg_flags=NLM_F_REQUEST | NLM_F_ACK))

    async def execute(self, op: Op, *, fallback: bool = True) -> None:
        """Apply one operation; tolerant of the kernel being already there (an add that
        finds the object updates it, a delete that finds nothing is done)."""
        sock = await self._sock()
        svc = _service_request(op.service, op.attrs)
        try:
            if op.kind == "add_service":
                await self._call(sock.service("add", service=svc))
            elif op.kind == "set_service":
                await self._call(sock.service("set", service=svc))
            elif op.kind == "del_service":
                await self._call(sock.service("del", service=svc))
            else:
                assert op.dest is not None
                dest = _dest_request(op.dest, op.dest_attrs)
                command = {"add_dest": "add", "set_dest": "set", "del_dest": "del"}[op.kind]
                await self._call(sock.dest(command, service=svc, dest=dest))
        except NetlinkError as exc:
            retry = {
                ("add_service", errno.EEXIST): "set_service",
                ("set_service", errno.ESRCH): "add_service",
                ("add_dest", errno.EEXIST): "set_dest",
                ("set_dest", errno.ENOENT): "add_dest",
            }.get((op.kind, exc.code))
            if retry is not None and fallback:  # once: never ping-pong between add and set
                await self.execute(
                    Op(retry, op.service, op.attrs, op.dest, op.dest_attrs),  # type: ignore[arg-type]
                    fallback=False,
                )
                return
            if op.kind in ("del_service", "del_dest") and exc.code in (errno.ESRCH, errno.ENOENT):
                return  # already gone
            raise


class IpvsBackend(Backend):
    """The ``ipvs`` backend, built by ``factory(config, context)``: a
    :class:`~halo_core.plugin_api.Backend`."""

    def __init__(self, config: IpvsBackendConfig, context: PluginContext) -> None:
        self.config = config
        self.context = context
        self.name = context.name
        self.planned, self.problems = model.plan(context.config, config.virtual_servers)
        self.by_label: dict[str, list[Planned]] = {}
        for p in self.planned:
            self.by_label.setdefault(p.label, []).append(p)
        self.by_key: dict[ServiceKey, Planned] = {p.key: p for p in self.planned}
        self.wanted: dict[ServiceKey, dict[DestKey, DestAttrs] | None] = {
            p.key: None for p in self.planned
        }
        self.broken: dict[ServiceKey, str] = {}
        self.reported: dict[ServiceKey | None, str] = {}  # the last error published per service
        self.dirty: set[ServiceKey] = set()
        state_dir = context.config.global_.state_dir
        self.state_path = Path(
            config.state_file or os.path.join(state_dir, f"ipvs-{self.name}.json")
        )
        self.kernel = KernelIpvs(float(config.netlink_timeout))
        self.lock = asyncio.Lock()
        self.closing = False
        self.job: Job | None = None
        self.counters: dict[str, int] = {"applied": 0, "failures": 0, "repaired": 0}
        self.leftovers: set[ServiceKey] = set()
        self.sync_running: set[str] = set()  # the sync daemons running: master, backup
        self.syncid = 0
        sync = config.sync_daemon
        if sync is not None and sync.vrrp_instance is not None:
            instance = context.config.vrrp_instances.get(sync.vrrp_instance)
            if instance is None:
                self.problems.append(
                    f"sync_daemon: no VRRP instance {sync.vrrp_instance!r}; the sync daemon"
                    " runs as backup only"
                )
            else:
                self.syncid = instance.virtual_router_id

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        for problem in self.problems:
            log.error("%s: %s", self.name, problem, extra=fields(backend=self.name, reason=problem))
            self.context.bus.publish(BackendFailed(backend=self.name, error=problem))
        await self.kernel.open()  # raises when there is no IPVS: the daemon reports it
        if self.config.connection_timeouts is not None:
            try:
                await self.kernel.settings(timeouts_request(self.config.connection_timeouts))
            except (NetlinkError, OSError, TimeoutError) as exc:
                self._failed(None, f"cannot set the IPVS timeouts: {_errtext(exc)}")
        if self.config.sync_daemon is not None:
            both = self.config.sync_daemon.vrrp_instance is None
            async with self.lock:
                await self._sync_daemon({"master", "backup"} if both else {"backup"})
        before, unreadable = model.read_owned(self.state_path)
        if unreadable:
            log.warning(
                "%s: %s; only the configured services count as halo's", self.name, unreadable
            )
        mine = set(self.by_key)
        # Record first, create later: a crash in between still leaves the ownership known.
        self._record(before | mine)
        kept: set[ServiceKey] = set()
        stale = before - mine
        if stale:
            present = {s.key for s in await self.kernel.services()}
            for key in sorted(stale & present):
                try:
                    await self.kernel.execute(Op("del_service", key))
                except (NetlinkError, OSError, TimeoutError) as exc:
                    kept.add(key)
                    self._failed(
                        None, f"cannot remove {key} (no longer configured): {_errtext(exc)}"
                    )
                else:
                    log.info(
                        "%s: removed %s: halo's, no longer in the configuration", self.name, key
                    )
        self.leftovers = kept  # halo's, not configured, still there: retried on flush
        self._record(mine | kept)
        interval = float(self.config.reconcile_interval)
        if interval > 0:
            self.job = self.context.scheduler.every(
                f"backend:{self.name}:reconcile", interval, self.reconcile, first_delay=interval
            )

    async def stop(self) -> None:
        self.closing = True
        if self.job is not None:
            self.context.scheduler.cancel(self.job.name)
            self.job = None
        async with self.lock:
            try:
                if self.config.flush_on_stop:
                    left: set[ServiceKey] = set()
                    for key in sorted(set(self.by_key) | self.leftovers):
                        try:
                            await self.kernel.execute(Op("del_service", key))
                        except (NetlinkError, OSError, TimeoutError) as exc:
                            left.add(key)
                            log.error("%s: cannot remove %s: %s", self.name, key, _errtext(exc))
                    self._record(left)
                    log.info(
                        "%s: flush on stop: removed halo's services (%d left)", self.name, len(left)
                    )
                await self._sync_daemon(set())
            finally:
                self.kernel.close()

    async def _sync_daemon(self, wanted: set[str]) -> None:
        """Run the sync daemons ``wanted`` (master, backup), like keepalived: stop the one
        no longer wanted first, then start the other."""
        sync = self.config.sync_daemon
        if sync is None:
            return
        state = "none"
        try:
            for state in sorted(self.sync_running - wanted):
                try:
                    await self.kernel.settings(daemon_request(sync, state, start=False))
                except NetlinkError as exc:
                    if exc.code != errno.ESRCH:
                        raise
                self.sync_running.discard(state)
                log.info("%s: IPVS sync daemon %s stopped", self.name, state)
            for state in sorted(wanted - self.sync_running):
                request = daemon_request(sync, state, start=True, syncid=self.syncid)
                try:
                    await self.kernel.settings(request)
                except NetlinkError as exc:
                    if exc.code != errno.EEXIST:  # left running by an earlier run
                        raise
                self.sync_running.add(state)
                log.info(
                    "%s: IPVS sync daemon %s on %s (syncid %d)",
                    self.name,
                    state,
                    sync.interface,
                    self.syncid if sync.syncid is None else sync.syncid,
                )
        except (NetlinkError, OSError, TimeoutError) as exc:
            self._failed(None, f"IPVS sync daemon {state}: {_errtext(exc)}")

    def _record(self, keys: set[ServiceKey]) -> None:
        try:
            model.write_owned(self.state_path, keys)
        except OSError as exc:
            self._failed(None, f"cannot record owned services in {self.state_path}: {exc}")

    # ------------------------------------------------------------------ events

    async def handle(self, event: Event) -> None:
        try:
            sync = self.config.sync_daemon
            if (
                isinstance(event, VrrpStateChanged)
                and sync is not None
                and event.instance == sync.vrrp_instance
            ):
                async with self.lock:
                    if not self.closing:
                        await self._sync_daemon({"master"} if event.new == "MASTER" else {"backup"})
                return
            if not isinstance(event, PoolChanged):
                return
            group = self.by_label.get(event.virtual_server)
            if not group:
                return
            for planned in group:
                self.wanted[planned.key] = model.dests_of(event.members, planned)
                self.dirty.add(planned.key)
            mine = {p.key for p in group}
            async with self.lock:
                if self.closing:
                    return
                # Whatever piled up while the lock was held goes now, one service at a time.
                keys = sorted(self.dirty)
                self.dirty.clear()
                for key in keys:
                    await self._reconcile(key, event.reason if key in mine else "update")
        except Exception as exc:  # never raise at the bus: report instead
            log.exception(
                "%s: failed handling %s", self.name, event.kind, extra=fields(backend=self.name)
            )
            self.context.bus.publish(
                BackendFailed(backend=self.name, error=f"{type(exc).__name__}: {exc}")
            )

    async def reconcile(self) -> None:
        """Compare every owned service with the kernel; fix differences and retry failures.
        The lock is taken per service, so a pool change waits for one service's check at
        most, not for the whole pass."""
        async with self.lock:
            if self.closing:
                return
            # One dump of every service instead of a get each: half the requests.
            try:
                dumped = {s.key: s for s in await self.kernel.services()}
            except (NetlinkError, OSError, TimeoutError) as exc:
                self._failed(None, f"cannot read the IPVS table: {_errtext(exc)}")
                return
        for key in sorted(self.by_key):
            async with self.lock:
                if self.closing:
                    return
                if self.wanted[key] is not None:
                    await self._reconcile(key, "reconcile", dumped)

    async def _reconcile(
        self,
        key: ServiceKey,
        reason: str,
        dumped: dict[ServiceKey, KernelService] | None = None,
    ) -> None:
        """Bring one service to its wanted state, reading it back first (from ``dumped``,
        a dump of every service just made, when given)."""
        planned = self.by_key[key]
        dests = self.wanted[key]
        if dests is None:
            return
        done: list[Op] = []
        op: Op | None = None
        try:
            if dumped is None:
                have = await self.kernel.get(key)
            else:
                have = dumped.get(key)
                if have is None:  # absent from the dump, or created since: ask again
                    have = await self.kernel.get(key)
                else:
                    have.dests = await self.kernel.dests(key)
            for op in model.diff(key, planned.attrs, dests, have):
                await self.kernel.execute(op)
                done.append(op)
        except (NetlinkError, OSError, TimeoutError) as exc:
            self.broken[key] = _errtext(exc)
            what = f"{op}: " if op is not None else ""
            self._failed(key, f"{planned.label}: {what}{_errtext(exc)}")
            if done:
                log.info(
                    "%s: %s: partly applied: %s",
                    self.name,
                    planned.label,
                    "; ".join(map(str, done)),
                )
            return
        if self.broken.pop(key, None) is not None:
            self.reported.pop(key, None)
            log.info("%s: %s: applied again after a failure", self.name, planned.label)
        if not done:
            return
        if reason == "reconcile":
            self.counters["repaired"] += 1
            log.warning(
                "%s: %s differed from the wanted state (changed outside halo?); repaired",
                self.name,
                planned.label,
            )
        self.counters["applied"] += 1
        detail = f"{planned.label}: " + "; ".join(map(str, done))
        log.info("%s: %s (%s)", self.name, detail, reason)
        self.context.bus.publish(BackendApplied(backend=self.name, detail=detail))

    def _failed(self, key: ServiceKey | None, error: str) -> None:
        self.counters["failures"] += 1
        if self.reported.get(key) == error:
            log.debug("%s: still failing: %s", self.name, error)
            return  # retries of the same failure are not reported again
        self.reported[key] = error
        log.error(
            "%s: %s (will retry)", self.name, error, extra=fields(backend=self.name, reason=error)
        )
        self.context.bus.publish(BackendFailed(backend=self.name, error=error))

    # ------------------------------------------------------------------ introspection

    def status(self) -> dict[str, Any]:
        return {
            "state_file": str(self.state_path),
            "services": {
                (p.label if len(self.by_label[p.label]) == 1 else f"{p.label} {p.key}"): {
                    "key": str(p.key),
                    "error": self.broken.get(p.key),
                }
                for p in self.planned
            },
            "counters": dict(self.counters),
        }


# ------------------------------------------------------------------------------ halo ipvs


def header() -> str:
    """The version line of ``ipvsadm -Ln`` (read from /proc, which needs no netlink)."""
    try:
        with open(PROC_IPVS) as fh:
            return fh.readline().rstrip("\n")
    except OSError:
        return "IP Virtual Server (version unknown)"


def show_table(*, as_json: bool = False, out: Any = None) -> int:
    """``halo ipvs``: print the kernel's table like ``ipvsadm -Ln``."""
    out = out or sys.stdout

    async def read() -> list[KernelService]:
        kernel = KernelIpvs()
        await kernel.open(modprobe=False)
        try:
            return await kernel.table()
        finally:
            kernel.close()

    try:
        services = asyncio.run(read())
    except IpvsUnavailable as exc:
        print(f"halo ipvs: {exc}", file=sys.stderr)
        return 1
    except (NetlinkError, OSError, TimeoutError) as exc:
        print(f"halo ipvs: cannot read the IPVS table: {_errtext(exc)}", file=sys.stderr)
        return 1
    if as_json:
        out.write(json.dumps({"header": header(), "services": model.to_json(services)}, indent=2))
        out.write("\n")
    else:
        out.write(model.render(services, header()))
    return 0
