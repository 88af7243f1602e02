"""Real VRRP receivers for the fuzzer (:func:`halo_tool_lab.fuzz.fuzz_vrrp`): the interface
socket's receive path and real :class:`InstanceRuntime` objects, without a kernel socket.
Here and not in halo-tool-lab because plugins may not import the engine; ``bench/fuzz``
imports it from this directory."""

from __future__ import annotations

import socket
import struct
from collections import Counter
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from halo_core import plugins
from halo_core.bus import EventBus
from halo_core.config import load_text
from halo_core.scheduler import Timer
from halo_core.vrrp import fsm
from halo_core.vrrp.engine import InstanceRuntime
from halo_core.vrrp.transport import Interface, InterfaceSocket
from halo_tool_lab.fuzz import IFINDEX, OWN4, OWN6, PASSWORD, VRID, Expected, Target


def ipv4_datagram(
    payload: bytes,
    src: IPv4Address,
    dst: IPv4Address,
    *,
    ident: int = 0,
    ttl: int = 255,
    options: bytes = b"",
) -> bytes:
    """An IPv4 datagram carrying ``payload`` (a VRRP message) as a raw socket reads it: the
    header's ID and checksum as a sender's kernel writes them, so that two with different
    IDs differ in both (a master's repeats)."""
    ihl = 5 + len(options) // 4
    header = (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x40 | ihl,
            0xC0,
            ihl * 4 + len(payload),
            ident,
            0,
            ttl,
            112,
            0,
            src.packed,
            dst.packed,
        )
        + options
    )
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:] + payload


class _NoTimers:
    """A clock whose timers never fire: the receive path is fuzzed, not the timeouts, and a
    million packets must not leave a million cancelled timers behind."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def call_at(self, when: float, callback: Any) -> Timer:
        return self

    def cancel(self) -> None:
        pass

    async def sleep(self, delay: float) -> None:
        pass


class ReceiveOnly(InterfaceSocket):
    """The real socket's receive path, fed by the fuzzer; sends are counted, not sent."""

    def __init__(self, iface: Interface, family: int) -> None:  # no kernel socket
        self.iface, self.family = iface, family
        self.receivers = {}
        self.counters = Counter()
        self.closed = False
        self.sent = 0
        self.received = 0  # packets taken (InterfaceSocket.take)
        self._decoded = {}  # the receive path's cache of advert bytes already decoded
        self._header_parts = {}

    def send(self, payload: bytes, src: Any, dst: Any, ttl: int = 0) -> bool:
        self.sent += 1
        return True


def vrrp_targets() -> list[Target]:
    """Six real instances: v2/IPv4, v3/IPv4, v3/IPv6, each in BACKUP (priority 100) and
    MASTER (priority 255, the address owner)."""
    iface = Interface("eth0", IFINDEX, OWN4, OWN6, "02:48:41:00:00:01")
    loaded = plugins.load()
    out: list[Target] = []
    for version, v6 in ((2, False), (3, False), (3, True)):
        addrs: tuple[Any, ...] = (
            (IPv6Address("2001:db8::100"), IPv6Address("2001:db8::101"))
            if v6
            else (IPv4Address("192.0.2.100"), IPv4Address("192.0.2.101"))
        )
        prefix = 64 if v6 else 24
        auth = "    authentication: {auth_type: PASS, auth_pass: s3cret}\n" if version == 2 else ""
        for role, priority in (("backup", 100), ("master", 255)):
            text = (
                "global: {router_id: fuzz}\nvrrp_instances:\n  VI_1:\n    interface: eth0\n"
                f"    virtual_router_id: {VRID}\n    priority: {priority}\n"
                f"    version: {version}\n    advert_int: 1\n{auth}"
                f"    virtual_ipaddress: [{', '.join(f'{a}/{prefix}' for a in addrs)}]\n"
            )
            cfg = load_text(text, "fuzz.yaml", loaded).model.vrrp_instances["VI_1"]
            sock = ReceiveOnly(iface, socket.AF_INET6 if v6 else socket.AF_INET)
            runtime = InstanceRuntime(
                "VI_1", cfg, iface, sock, clock=_NoTimers(), bus=EventBus(max_queue=1)
            )
            sock.receivers[VRID] = runtime
            runtime.step(fsm.Startup())
            exp = Expected(
                version,
                v6,
                100,
                addrs,  # type: ignore[arg-type]
                PASSWORD if version == 2 else None,
                frozenset(runtime.local_addresses),
            )
            out.append(Target(f"v{version}/{'ipv6' if v6 else 'ipv4'}/{role}", exp, sock, runtime))
    return out
