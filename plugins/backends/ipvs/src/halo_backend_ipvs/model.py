"""IPVS as data: what halo wants, what the kernel has, the difference, and ``ipvsadm -Ln``.

Pure Python (no pyroute2, no sockets): the runtime turns kernel dumps into these objects and
executes the :class:`Op` list :func:`diff` returns, and the tests check the logic without a
kernel.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network, ip_address
from pathlib import Path
from typing import Any, Literal

from halo_core.config.model import HaloConfig, VirtualServer
from halo_core.events import PoolMember
from halo_core.schema import IPAddress

AF_INET = int(socket.AF_INET)
AF_INET6 = int(socket.AF_INET6)
PROTOCOLS = {"TCP": socket.IPPROTO_TCP, "UDP": socket.IPPROTO_UDP, "SCTP": 132}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}

# ip_vs.h: IP_VS_CONN_F_FWD_MASK values
FWD_METHODS = {"NAT": 0, "TUN": 2, "DR": 3}
FWD_NAMES = {0: "Masq", 1: "Local", 2: "Tunnel", 3: "Route", 4: "Bypass"}
# ip_vs.h: IP_VS_CONN_F_TUNNEL_TYPE_* and IP_VS_TUNNEL_ENCAP_FLAG_*
TUN_TYPES = {"ipip": 0, "gue": 1, "gre": 2}
TUN_FLAGS = {"nocsum": 0, "csum": 1, "remcsum": 2}
TUN_NAMES = {v: k for k, v in TUN_TYPES.items()}
CSUM_NAMES = {v: k for k, v in TUN_FLAGS.items()}

# ip_vs.h: service flags
F_PERSISTENT = 0x0001
F_HASHED = 0x0002  # set by the kernel on every service: never compared
F_ONEPACKET = 0x0004
F_SCHED1 = 0x0008
F_SCHED2 = 0x0010
F_SCHED3 = 0x0020

# keepalived's names of the scheduler flags (ipvsadm's for mh and sh)
LB_FLAGS = {
    "flag-1": F_SCHED1,
    "flag-2": F_SCHED2,
    "flag-3": F_SCHED3,
    "sh-fallback": F_SCHED1,
    "sh-port": F_SCHED2,
    "mh-fallback": F_SCHED1,
    "mh-port": F_SCHED2,
}

# The schedulers the kernel ships (ip_vs_*.ko); keepalived's lb_algo list has two more.
SCHEDULERS = frozenset(
    {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}
)


# ------------------------------------------------------------------------------ identities


@dataclass(frozen=True, order=True)
class ServiceKey:
    """What identifies a virtual service to the kernel."""

    af: int
    protocol: int  # 0 for a firewall-mark service
    address: str  # "" for a firewall-mark service
    port: int
    fwmark: int = 0

    @property
    def v6(self) -> bool:
        return self.af == AF_INET6

    def __str__(self) -> str:
        if self.fwmark:
            return f"FWM {self.fwmark} ({'IPv6' if self.v6 else 'IPv4'})"
        host = f"[{self.address}]" if self.v6 else self.address
        return f"{PROTOCOL_NAMES.get(self.protocol, self.protocol)} {host}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return {
            "af": self.af,
            "protocol": self.protocol,
            "address": self.address,
            "port": self.port,
            "fwmark": self.fwmark,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServiceKey:
        return cls(
            af=int(data["af"]),
            protocol=int(data["protocol"]),
            address=str(data["address"]),
            port=int(data["port"]),
            fwmark=int(data.get("fwmark", 0)),
        )


@dataclass(frozen=True)
class ServiceAttrs:
    """The settable part of a service. ``netmask`` is a prefix length for both families."""

    scheduler: str
    flags: int = 0  # without F_HASHED
    timeout: int = 0
    netmask: int = 32

    def describe(self) -> str:
        text = self.scheduler
        if self.flags & F_PERSISTENT:
            text += f" persistent {self.timeout} mask /{self.netmask}"
        return text


@dataclass(frozen=True, order=True)
class DestKey:
    address: str
    port: int

    @property
    def v6(self) -> bool:
        return ":" in self.address

    def __str__(self) -> str:
        host = f"[{self.address}]" if self.v6 else self.address
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class DestAttrs:
    fwd: int
    weight: int
    u_thresh: int = 0
    l_thresh: int = 0
    tun_type: int = 0
    tun_port: int = 0
    tun_flags: int = 0


@dataclass
class KernelDest:
    attrs: DestAttrs
    active: int = 0
    inactive: int = 0
    persistent: int = 0


@dataclass
class KernelService:
    """A service as dumped from the kernel, with its destinations."""

    key: ServiceKey
    attrs: ServiceAttrs
    pe_name: str = ""
    dests: dict[DestKey, KernelDest] = field(default_factory=dict)


# ------------------------------------------------------------------------------ from config


@dataclass(frozen=True)
class Planned:
    """A virtual service of the config as this backend will run it."""

    label: str
    key: ServiceKey
    attrs: ServiceAttrs
    fwd: int
    tunnel: tuple[int, int, int] = (0, 0, 0)  # type, port, flags of lb_kind TUN


def prefix_of(mask: IPAddress | None, af: int) -> int | None:
    """A netmask address (``255.255.255.0``, ``ffff:ffff::``) as a prefix length."""
    if mask is None or (mask.version == 6) != (af == AF_INET6):
        return None
    bits = mask.max_prefixlen
    prefix = bin(int(mask)).count("1")
    full = (1 << bits) - 1
    if int(mask) != full ^ (full >> prefix):
        return None  # not a contiguous mask: keep the default (the whole address)
    return prefix


def service_af(vs: VirtualServer) -> int:
    if vs.address is not None:
        return AF_INET6 if vs.address.version == 6 else AF_INET
    # A firewall-mark service has one family in IPVS; its real servers tell which.
    addresses = [rs.address for rs in vs.real_servers]
    if vs.sorry_server is not None:
        addresses.append(vs.sorry_server.address)
    return AF_INET6 if addresses and all(a.version == 6 for a in addresses) else AF_INET


def service_keys(vs: VirtualServer) -> list[ServiceKey]:
    """The IPVS services of a virtual server: one, or one per address and mark of its group."""
    protocol = PROTOCOLS[vs.protocol]
    if vs.fwmark is not None:
        return [ServiceKey(service_af(vs), 0, "", 0, vs.fwmark)]
    if vs.address is not None:
        af = AF_INET6 if vs.address.version == 6 else AF_INET
        return [ServiceKey(af, protocol, str(vs.address), vs.port or 0)]
    keys: list[ServiceKey] = []
    for entry in vs.group:
        if entry.fwmark is not None:
            keys.append(ServiceKey(service_af(vs), 0, "", 0, entry.fwmark))
        for address in entry.addresses():
            af = AF_INET6 if address.version == 6 else AF_INET
            keys.append(ServiceKey(af, protocol, str(address), entry.port))
    return keys


def plan(config: HaloConfig, wanted: Sequence[str] | None) -> tuple[list[Planned], list[str]]:
    """The config's virtual services as IPVS services (and the problems of those left out).
    A virtual server with a group is one service per address (and mark) of the group."""
    out: list[Planned] = []
    problems: list[str] = []
    labels = [vs.label for vs in config.virtual_servers]
    for name in wanted or ():
        if name not in labels:
            problems.append(f"virtual server {name!r} is not in the configuration")
    seen: dict[ServiceKey, str] = {}
    for vs in config.virtual_servers:
        if wanted is not None and vs.label not in wanted:
            continue
        if vs.lb_algo not in SCHEDULERS:
            problems.append(
                f"{vs.label}: IPVS has no {vs.lb_algo!r} scheduler (use one of"
                f" {', '.join(sorted(SCHEDULERS))}); service left out"
            )
            continue
        tunnel = (0, 0, 0)
        if vs.lb_kind == "TUN":
            tunnel = (TUN_TYPES[vs.tun_type], vs.tun_port or 0, TUN_FLAGS[vs.tun_checksum])
        for key in service_keys(vs):
            if key in seen:
                problems.append(f"{vs.label}: {key} is also {seen[key]}'s; left out")
                continue
            seen[key] = vs.label
            full = 128 if key.v6 else 32
            flags, timeout, netmask = 0, 0, full
            for name in vs.lb_flags:
                flags |= LB_FLAGS[name]
            if vs.persistence_timeout is not None:
                flags |= F_PERSISTENT
                timeout = max(1, round(float(vs.persistence_timeout)))
                netmask = prefix_of(vs.persistence_granularity, key.af) or full
            out.append(
                Planned(
                    label=vs.label,
                    key=key,
                    attrs=ServiceAttrs(vs.lb_algo, flags, timeout, netmask),
                    fwd=FWD_METHODS[vs.lb_kind],
                    tunnel=tunnel,
                )
            )
    return out, problems


def dests_of(members: Iterable[PoolMember], planned: Planned) -> dict[DestKey, DestAttrs]:
    """A pool's members as the destinations of one of its IPVS services (the first of two
    equal address/port wins). A member without a port takes the service's, as ipvsadm
    does: in a group each service may have its own."""
    out: dict[DestKey, DestAttrs] = {}
    tun_type, tun_port, tun_flags = planned.tunnel
    for m in members:
        key = DestKey(str(ip_address(m.address)), m.port or planned.key.port)
        out.setdefault(key, DestAttrs(planned.fwd, m.weight, 0, 0, tun_type, tun_port, tun_flags))
    return out


# ------------------------------------------------------------------------------ difference

OpKind = Literal["add_service", "set_service", "del_service", "add_dest", "set_dest", "del_dest"]


@dataclass(frozen=True)
class Op:
    kind: OpKind
    service: ServiceKey
    attrs: ServiceAttrs | None = None
    dest: DestKey | None = None
    dest_attrs: DestAttrs | None = None

    def __str__(self) -> str:
        what = self.kind.replace("_", " ")
        if self.dest is not None:
            weight = f" weight {self.dest_attrs.weight}" if self.dest_attrs else ""
            return f"{what} {self.dest}{weight}"
        return f"{what} {self.attrs.describe() if self.attrs else self.service}"


def diff(
    key: ServiceKey,
    attrs: ServiceAttrs,
    dests: Mapping[DestKey, DestAttrs],
    have: KernelService | None,
) -> list[Op]:
    """The operations that turn ``have`` into the wanted service; none when it matches, so a
    service that already is right (after a restart, say) is left exactly as it is and keeps
    its connections. New and changed destinations come before removed ones: a pool moving
    to its sorry server never has zero destinations in between."""
    if have is None:
        return [Op("add_service", key, attrs)] + [
            Op("add_dest", key, dest=d, dest_attrs=a) for d, a in sorted(dests.items())
        ]
    ops: list[Op] = []
    if have.attrs != attrs:
        ops.append(Op("set_service", key, attrs))
    for d, a in sorted(dests.items()):
        current = have.dests.get(d)
        if current is None:
            ops.append(Op("add_dest", key, dest=d, dest_attrs=a))
        elif current.attrs != a:
            ops.append(Op("set_dest", key, dest=d, dest_attrs=a))
    for d in sorted(set(have.dests) - set(dests)):
        ops.append(Op("del_dest", key, dest=d))
    return ops


# ------------------------------------------------------------------------------ ipvsadm -Ln

TITLE = (
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
)


def _address_sort(address: str) -> int:
    return int(ip_address(address)) if address else 0


def _sched_flags(scheduler: str, flags: int) -> str:
    names = {
        "sh": ("sh-fallback", "sh-port", "flag-3"),
        "mh": ("mh-fallback", "mh-port", "flag-3"),
    }.get(scheduler, ("flag-1", "flag-2", "flag-3"))
    return ",".join(
        n for n, f in zip(names, (F_SCHED1, F_SCHED2, F_SCHED3), strict=True) if flags & f
    )


def render(services: Iterable[KernelService], header: str) -> str:
    """The table in ``ipvsadm -Ln``'s format and order (services by firewall mark, family,
    address, protocol, port; destinations by address and port)."""
    lines = [header.rstrip("\n"), TITLE.rstrip("\n")]
    order = sorted(
        services,
        key=lambda s: (
            s.key.fwmark,
            s.key.af,
            _address_sort(s.key.address),
            s.key.protocol,
            s.key.port,
        ),
    )
    for s in order:
        k, a = s.key, s.attrs
        if k.fwmark:
            name = f"{'FWM':<4} {k.fwmark}" + (" IPv6" if k.v6 else "")
        else:
            host = f"[{k.address}]" if k.v6 else k.address
            name = f"{PROTOCOL_NAMES.get(k.protocol, str(k.protocol)):<4} {host}:{k.port}"
        line = f"{name} {a.scheduler}"
        if a.flags & (F_SCHED1 | F_SCHED2 | F_SCHED3):
            line += f" ({_sched_flags(a.scheduler, a.flags)})"
        if a.flags & F_PERSISTENT:
            line += f" persistent {a.timeout}"
            if k.v6:
                if a.netmask < 128:
                    line += f" mask {a.netmask}"
            elif a.netmask != 32:
                line += f" mask {IPv4Network(f'0.0.0.0/{a.netmask}').netmask}"
            if s.pe_name:
                line += f" pe {s.pe_name}"
        if a.flags & F_ONEPACKET:
            line += " ops"
        lines.append(line)
        for d in sorted(s.dests, key=lambda d: (d.v6, _address_sort(d.address), d.port)):
            kd = s.dests[d]
            lines.append(
                f"  -> {d!s:<28} {FWD_NAMES.get(kd.attrs.fwd, '?'):<7} {kd.attrs.weight:<6}"
                f" {kd.active:<10} {kd.inactive:<10}"
            )
    return "\n".join(lines) + "\n"


def to_json(services: Iterable[KernelService]) -> list[dict[str, Any]]:
    return [
        {
            "service": str(s.key),
            **s.key.to_json(),
            "scheduler": s.attrs.scheduler,
            "persistent": bool(s.attrs.flags & F_PERSISTENT),
            "timeout": s.attrs.timeout,
            "netmask": s.attrs.netmask,
            "flags": _sched_flags(s.attrs.scheduler, s.attrs.flags).split(",")
            if s.attrs.flags & (F_SCHED1 | F_SCHED2 | F_SCHED3)
            else [],
            "dests": [
                {
                    "address": d.address,
                    "port": d.port,
                    "forward": FWD_NAMES.get(kd.attrs.fwd, str(kd.attrs.fwd)),
                    "weight": kd.attrs.weight,
                    "active": kd.active,
                    "inactive": kd.inactive,
                    **(
                        {
                            "tunnel": {
                                "type": TUN_NAMES.get(kd.attrs.tun_type, str(kd.attrs.tun_type)),
                                "port": kd.attrs.tun_port,
                                "checksum": CSUM_NAMES.get(
                                    kd.attrs.tun_flags, str(kd.attrs.tun_flags)
                                ),
                            }
                        }
                        if kd.attrs.fwd == FWD_METHODS["TUN"]
                        else {}
                    ),
                }
                for d, kd in sorted(s.dests.items())
            ],
        }
        for s in services
    ]


# ------------------------------------------------------------------------------ ownership


def read_owned(path: Path) -> tuple[set[ServiceKey], str | None]:
    """The services a previous run recorded as halo's; (keys, problem reading the file)."""
    try:
        data = json.loads(path.read_text())
        return {ServiceKey.from_json(item) for item in data["services"]}, None
    except FileNotFoundError:
        return set(), None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return set(), f"cannot read {path}: {exc}"


def write_owned(path: Path, keys: Iterable[ServiceKey]) -> None:
    """Record ``keys`` atomically (write a temporary file, then rename it over the old one),
    so a crash never leaves a half-written ownership list."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "version": 1,
        "comment": "IPVS services owned by halo; others are never touched",
        "services": [k.to_json() for k in sorted(keys)],
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=1)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
