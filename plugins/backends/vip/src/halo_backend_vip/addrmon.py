"""Address-change notifications from rtnetlink, parsed with ``struct``.

The backend must hear at once when someone deletes a VIP it holds (an operator's
``ip addr del``, a network manager "cleaning up", an IPv6 flush on link down) so that the
master restores and re-announces it within milliseconds rather than at the next periodic
reconcile. That is a multicast subscription to RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR and
a few lines of parsing; a dedicated socket keeps these events apart from pyroute2's
request/response socket (whose queue would otherwise fill with events nobody reads).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from halo_core.schema import IPAddress

log = logging.getLogger("halo.backend.vip")

__all__ = ["AddressEvent", "AddressMonitor", "parse_address_messages"]

RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
RTM_NEWADDR = 20
RTM_DELADDR = 21
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_PROTO = 11
_NLMSG = struct.Struct("=IHHII")
_IFADDR = struct.Struct("=BBBBi")
_RTA = struct.Struct("=HH")


@dataclass(frozen=True)
class AddressEvent:
    """One RTM_NEWADDR / RTM_DELADDR: which address appeared or vanished, where."""

    deleted: bool
    index: int
    address: IPAddress
    prefixlen: int
    proto: int  # IFA_PROTO, 0 when absent


def parse_address_messages(data: bytes) -> list[AddressEvent]:
    """The address events in one netlink datagram (other message types are skipped)."""
    out: list[AddressEvent] = []
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind, _, _, _ = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size or offset + length > len(data):
            break
        body = offset + _NLMSG.size
        if kind in (RTM_NEWADDR, RTM_DELADDR) and body + _IFADDR.size <= offset + length:
            family, prefixlen, _, _, index = _IFADDR.unpack_from(data, body)
            attrs: dict[int, bytes] = {}
            attr = body + _IFADDR.size
            while attr + _RTA.size <= offset + length:
                alen, atype = _RTA.unpack_from(data, attr)
                if alen < _RTA.size:
                    break
                attrs[atype & 0x3FFF] = data[attr + _RTA.size : attr + alen]
                attr += (alen + 3) & ~3
            # IPv4 puts the local address in IFA_LOCAL (IFA_ADDRESS is the peer on a
            # point-to-point link); IPv6 only has IFA_ADDRESS.
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            size = 4 if family == socket.AF_INET else 16
            if family in (socket.AF_INET, socket.AF_INET6) and raw and len(raw) == size:
                proto = attrs.get(IFA_PROTO, b"\0")[:1]
                out.append(
                    AddressEvent(
                        deleted=kind == RTM_DELADDR,
                        index=index,
                        address=ipaddress.ip_address(raw),
                        prefixlen=prefixlen,
                        proto=proto[0] if proto else 0,
                    )
                )
        offset += (length + 3) & ~3
    return out


class AddressMonitor:
    """Calls ``on_event`` for every address change in this namespace, and ``on_overrun``
    when the kernel dropped notifications (ENOBUFS): the caller must then re-read the truth."""

    def __init__(
        self, on_event: Callable[[AddressEvent], None], on_overrun: Callable[[], None]
    ) -> None:
        self.on_event = on_event
        self.on_overrun = on_overrun
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.sock.bind((0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            self.sock.setblocking(False)
            self.loop = asyncio.get_running_loop()
            self.loop.add_reader(self.sock.fileno(), self._readable)
        except BaseException:
            self.sock.close()
            raise

    def _readable(self) -> None:
        for _ in range(64):  # bounded: let the rest of the loop run between batches
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("address notifications: %s; re-reading the kernel", exc.strerror)
                self.on_overrun()
                return
            for event in parse_address_messages(data):
                self.on_event(event)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
