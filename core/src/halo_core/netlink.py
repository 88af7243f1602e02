"""Minimal rtnetlink, written with ``struct``: a link monitor and an address client.

The VRRP engine needs one thing from netlink: to hear at once when an interface goes down
or comes back (keepalived puts the instance in FAULT). That is a multicast subscription to
RTMGRP_LINK and a few lines of parsing, so the core does it itself rather than import
pyroute2 (13 MB of RSS and 0.2 s of start-up measured here); plugins that manage addresses
use pyroute2.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("halo.netlink")

RTMGRP_LINK = 1
RTM_NEWLINK = 16
RTM_DELLINK = 17
IFLA_IFNAME = 3
IFF_UP = 0x1
IFF_RUNNING = 0x40
_NLMSG = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_RTA = struct.Struct("=HH")

LinkCallback = Callable[[str, bool], None]
"""(interface name, usable) on every change of an interface's state."""


def link_is_up(name: str) -> bool:
    """Whether ``name`` is administratively up with a carrier, read from sysfs."""
    try:
        with open(f"/sys/class/net/{name}/flags") as fh:
            flags = int(fh.read().strip(), 16)
        with open(f"/sys/class/net/{name}/operstate") as fh:
            oper = fh.read().strip()
    except OSError:
        return False
    return bool(flags & IFF_UP) and oper in ("up", "unknown")


def parse_links(data: bytes) -> list[tuple[str, int, bool]]:
    """(name, index, up) for each RTM_NEWLINK / RTM_DELLINK message in a netlink buffer."""
    out = []
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind, _, _, _ = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size or offset + length > len(data):
            break
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            body = offset + _NLMSG.size
            _, _, index, flags, _ = _IFINFO.unpack_from(data, body)
            name = None
            attr = body + _IFINFO.size
            while attr + _RTA.size <= offset + length:
                alen, atype = _RTA.unpack_from(data, attr)
                if alen < _RTA.size:
                    break
                if atype == IFLA_IFNAME:
                    name = data[attr + _RTA.size : attr + alen].split(b"\0", 1)[0].decode()
                attr += (alen + 3) & ~3
            if name is not None:
                up = kind == RTM_NEWLINK and (flags & (IFF_UP | IFF_RUNNING)) == (
                    IFF_UP | IFF_RUNNING
                )
                out.append((name, index, up))
        offset += (length + 3) & ~3
    return out


class LinkMonitor:
    """Calls back with (name, up) whenever a watched interface's state changes."""

    def __init__(self, callback: LinkCallback) -> None:
        self.callback = callback
        self.state: dict[str, bool] = {}
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.bind((0, RTMGRP_LINK))
        self.sock.setblocking(False)
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.sock.fileno(), self._readable)

    def watch(self, name: str) -> bool:
        self.state[name] = link_is_up(name)
        return self.state[name]

    def _readable(self) -> None:
        for _ in range(64):
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:  # ENOBUFS: we lost events; re-read the truth from sysfs
                log.warning("netlink: %s; re-reading link states", exc.strerror)
                for name in self.state:
                    self._update(name, link_is_up(name))
                return
            for name, _, up in parse_links(data):
                if name in self.state:
                    self._update(name, up)

    def _update(self, name: str, up: bool) -> None:
        if self.state.get(name) != up:
            self.state[name] = up
            self.callback(name, up)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


# --------------------------------------------------------------------------- addresses

RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_DUMP = 0x300
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_BROADCAST = 4
IFA_FLAGS = 8
IFA_PROTO = 11
IFA_F_NODAD = 0x02
_IFADDR = struct.Struct("=BBBBI")


class NetlinkError(OSError):
    """The kernel refused a request; ``code`` is the errno (as pyroute2 names it)."""

    @property
    def code(self) -> int:
        return self.errno or 0


@dataclass(frozen=True)
class KernelAddress:
    """One address as the kernel lists it."""

    index: int
    family: int
    address: bytes
    prefixlen: int
    scope: int
    flags: int
    proto: int
    label: str | None


def _attr(kind: int, data: bytes) -> bytes:
    length = _RTA.size + len(data)
    return _RTA.pack(length, kind) + data + b"\0" * ((4 - length % 4) % 4)


def _attrs(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    out = {}
    while offset + _RTA.size <= end:
        alen, atype = _RTA.unpack_from(data, offset)
        if alen < _RTA.size:
            break
        out[atype & 0x3FFF] = data[offset + _RTA.size : offset + alen]
        offset += (alen + 3) & ~3
    return out


class AddressClient:
    """Add, delete and list interface addresses over rtnetlink, without pyroute2.

    One non-blocking NETLINK_ROUTE socket; requests are serialised (a request is tens of
    microseconds) and each waits for the kernel's acknowledgement on the event loop. Why not
    pyroute2: importing it costs 12.5 MB of RSS and its add round trip 0.3-0.7 ms, measured
    here, against a node budget of 35 MB and keepalived's 0.5 ms from advert to first GARP.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.setblocking(False)
        self.sock.bind((0, 0))
        self.seq = 0
        self.lock = asyncio.Lock()

    def close(self) -> None:
        self.sock.close()

    async def _request(self, kind: int, flags: int, body: bytes) -> list[bytes]:
        """Send one request; return the payloads of its answer (a dump's messages)."""
        loop = asyncio.get_running_loop()
        async with self.lock:
            self.seq = (self.seq + 1) & 0xFFFFFFFF
            seq = self.seq
            self.sock.send(
                _NLMSG.pack(_NLMSG.size + len(body), kind, flags | NLM_F_REQUEST, seq, 0) + body
            )
            out: list[bytes] = []
            while True:
                data = await loop.sock_recv(self.sock, 1 << 16)
                offset = 0
                while offset + _NLMSG.size <= len(data):
                    length, mtype, _, mseq, _ = _NLMSG.unpack_from(data, offset)
                    if length < _NLMSG.size:
                        break
                    payload = data[offset + _NLMSG.size : offset + length]
                    offset += (length + 3) & ~3
                    if mseq != seq:
                        continue  # a late answer to an abandoned request
                    if mtype == NLMSG_ERROR:
                        (code,) = struct.unpack_from("=i", payload)
                        if code:
                            raise NetlinkError(-code, os.strerror(-code))
                        return out
                    if mtype == NLMSG_DONE:
                        return out
                    out.append(payload)

    @staticmethod
    def _body(
        index: int,
        address: bytes,
        prefixlen: int,
        *,
        scope: int = 0,
        label: str | None = None,
        broadcast: bytes | None = None,
        flags: int = 0,
        proto: int | None = None,
    ) -> bytes:
        family = socket.AF_INET if len(address) == 4 else socket.AF_INET6
        body = _IFADDR.pack(family, prefixlen, flags & 0xFF, scope, index)
        if family == socket.AF_INET:
            body += _attr(IFA_LOCAL, address)
        body += _attr(IFA_ADDRESS, address)
        if label:
            body += _attr(IFA_LABEL, label.encode() + b"\0")
        if broadcast is not None:
            body += _attr(IFA_BROADCAST, broadcast)
        if flags:
            body += _attr(IFA_FLAGS, struct.pack("=I", flags))
        if proto is not None:
            body += _attr(IFA_PROTO, struct.pack("=B", proto))
        return body

    async def add(self, index: int, address: bytes, prefixlen: int, **opts: Any) -> None:
        """Add an address (``opts``: scope, label, broadcast, flags, proto). EEXIST if there."""
        body = self._body(index, address, prefixlen, **opts)
        await self._request(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body)

    async def delete(self, index: int, address: bytes, prefixlen: int) -> None:
        await self._request(RTM_DELADDR, NLM_F_ACK, self._body(index, address, prefixlen))

    async def dump(self) -> list[KernelAddress]:
        out = []
        body = _IFADDR.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        for payload in await self._request(RTM_GETADDR, NLM_F_DUMP, body):
            family, prefixlen, flags8, scope, index = _IFADDR.unpack_from(payload)
            attrs = _attrs(payload, _IFADDR.size, len(payload))
            raw = attrs.get(IFA_LOCAL) if family == socket.AF_INET else None
            raw = raw or attrs.get(IFA_ADDRESS)
            if raw is None:
                continue
            flags = struct.unpack("=I", attrs[IFA_FLAGS])[0] if IFA_FLAGS in attrs else flags8
            proto = attrs[IFA_PROTO][0] if IFA_PROTO in attrs else 0
            label = attrs[IFA_LABEL].split(b"\0", 1)[0].decode() if IFA_LABEL in attrs else None
            out.append(KernelAddress(index, family, raw, prefixlen, scope, flags, proto, label))
        return out
