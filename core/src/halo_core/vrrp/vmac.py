"""Virtual MAC interfaces (keepalived's ``use_vmac``): a macvlan per instance.

RFC 5798 §7.3 gives every virtual router a MAC address, 00:00:5e:00:01:VRID (IPv6:
00:00:5e:00:02:VRID). Linux cannot give an address of its own MAC to a set of IP
addresses, so, as keepalived does, each instance gets a macvlan on its interface with
that MAC: the virtual addresses go on the macvlan, and the adverts leave from it (or from
the base interface with ``vmac_xmit_base``). A failover then moves the MAC with the
addresses, and the switches learn it from the new master's first advert. IPv6 instances
send their adverts from the base interface (their link-local source is the base
interface's, and an address on the macvlan would make a backup send MLD reports from the
virtual MAC).

The macvlan exists from start-up to stop on every router of the group, up but silent
while BACKUP: it has no IPv6 link-local address (address generation off), so it sends
no router solicitation or MLD report that would teach the switch the MAC on a backup's
port, and it never joins the VRRP group (no IGMP report from the virtual MAC either): the
adverts are received on the base interface, and the macvlan's socket only sends. That
needs bridge mode: a private macvlan (keepalived's mode; keepalived receives on the
macvlan and moves the IGMP reports with firewall rules) takes a multicast frame whose
source is its own MAC, the other router's advert, away from the base interface.

``arp_ignore`` is set on the base interface and the macvlan so that only the macvlan
answers ARP for the virtual addresses, with the virtual MAC (keepalived sets the same),
and ``arp_announce`` 2 on the base interface so that it never asks with a virtual address
as the sender; the base interface's values are restored when its last macvlan goes.

Written with ``struct`` like :mod:`halo_core.netlink`: the VRRP process imports no
pyroute2.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import struct
from dataclasses import dataclass, field

from halo_core.vrrp.transport import Interface, InterfaceSocket, interface_info

log = logging.getLogger("halo.vrrp")

RTM_NEWLINK = 16
RTM_DELLINK = 17
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLMSG_ERROR = 2
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_LINK = 5
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_MACVLAN_MODE = 1
MACVLAN_MODE_BRIDGE = 4
IFF_UP = 0x1
NLA_F_NESTED = 0x8000

_NLMSG = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")


class VmacError(OSError):
    """A macvlan could not be made or removed; the message says which and why."""


def _attr(kind: int, data: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(data), kind) + data
    return raw + b"\0" * (-len(raw) % 4)


def _request(kind: int, flags: int, body: bytes) -> None:
    """Send one rtnetlink request and wait for its acknowledgement."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as nl:
        nl.bind((0, 0))
        nl.settimeout(5.0)
        msg = _NLMSG.pack(_NLMSG.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, 1, 0)
        nl.send(msg + body)
        while True:
            data = nl.recv(65536)
            offset = 0
            while offset + _NLMSG.size <= len(data):
                length, mtype, _, seq, _ = _NLMSG.unpack_from(data, offset)
                if mtype == NLMSG_ERROR and seq == 1:
                    code = -struct.unpack_from("=i", data, offset + _NLMSG.size)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                    return
                offset += max(length, _NLMSG.size)


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def create_macvlan(name: str, base_index: int, mac: str) -> None:
    """Create the macvlan ``name`` (bridge mode) on the interface ``base_index``, with
    ``mac``. Not brought up."""
    info = _attr(IFLA_INFO_KIND, b"macvlan\0") + _attr(
        IFLA_INFO_DATA | NLA_F_NESTED,
        _attr(IFLA_MACVLAN_MODE, struct.pack("=I", MACVLAN_MODE_BRIDGE)),
    )
    body = (
        _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        + _attr(IFLA_IFNAME, name.encode() + b"\0")
        + _attr(IFLA_LINK, struct.pack("=I", base_index))
        + _attr(IFLA_ADDRESS, _mac_bytes(mac))
        + _attr(IFLA_LINKINFO | NLA_F_NESTED, info)
    )
    _request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)


def set_up(index: int) -> None:
    _request(RTM_NEWLINK, 0, _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP))


def delete_link(index: int) -> None:
    _request(RTM_DELLINK, 0, _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0))


def _sysctl(path: str, value: str | None = None) -> str:
    with open(path, "r+" if value is not None else "r") as fh:
        old = fh.read().strip()
        if value is not None:
            fh.seek(0)
            fh.write(value)
    return old


def _ipv4_conf(dev: str, key: str) -> str:
    return f"/proc/sys/net/ipv4/conf/{dev}/{key}"


@dataclass
class Vmac:
    """One instance's macvlan."""

    name: str
    base: str
    mac: str
    index: int = 0


@dataclass
class VmacSet:
    """The macvlans of one daemon, and the base interfaces' sysctls to restore."""

    vmacs: dict[str, Vmac] = field(default_factory=dict)  # by macvlan name
    saved: dict[str, dict[str, str]] = field(default_factory=dict)  # base → key → old

    def create(self, name: str, base: Interface, mac: str) -> Interface:
        """Make (or take over a leftover of a previous run) the macvlan ``name`` on
        ``base`` with ``mac``, up, and return it. Raises VmacError."""
        if name in self.vmacs:
            raise VmacError(errno.EEXIST, f"VMAC {name} is used by two instances")
        try:
            existing = interface_info(name)
        except OSError:
            existing = None
        if existing is not None:
            if existing.mac != mac:
                raise VmacError(
                    errno.EEXIST,
                    f"cannot create VMAC {name}: an interface of that name exists"
                    f" (MAC {existing.mac}, not {mac})",
                )
            # Ours from a run that did not stop cleanly: start afresh (no stale addresses).
            log.warning("VMAC %s left behind by a previous run: recreating it", name)
            delete_link(existing.index)
        try:
            create_macvlan(name, base.index, mac)
            vmac = Vmac(name, base.name, mac, socket.if_nametoindex(name))
            self.vmacs[name] = vmac
            for key, value in (
                ("arp_ignore", "1"),
                ("arp_filter", "1"),
                ("accept_local", "1"),
                ("rp_filter", "0"),
            ):
                _sysctl(_ipv4_conf(name, key), value)
            # No link-local address, so nothing (router solicitation, MLD) leaves from the
            # virtual MAC while BACKUP; without IPv6 there is nothing to turn off.
            with contextlib.suppress(FileNotFoundError):
                _sysctl(f"/proc/sys/net/ipv6/conf/{name}/addr_gen_mode", "1")
            self._protect_base(base.name)
            set_up(vmac.index)
        except OSError as exc:
            if name in self.vmacs:
                self.remove(name)
            raise VmacError(
                exc.errno or errno.EIO, f"cannot create VMAC {name} on {base.name}: {exc.strerror}"
            ) from None
        log.info("VMAC %s (%s) created on %s", name, mac, base.name)
        return interface_info(name)

    def _protect_base(self, base: str) -> None:
        # Without these the base interface answers ARP for the virtual addresses too,
        # with its own MAC, and the virtual MAC would be pointless; and asks with a
        # virtual address as the sender (the source of a reply routed out of it), which
        # teaches the asked host the base MAC for that address.
        if base in self.saved:
            return
        saved: dict[str, str] = {}
        for key, value in (("arp_ignore", "1"), ("arp_filter", "1"), ("arp_announce", "2")):
            old = _sysctl(_ipv4_conf(base, key))
            if old != value:
                _sysctl(_ipv4_conf(base, key), value)
                saved[key] = old
        self.saved[base] = saved

    def remove(self, name: str) -> None:
        """Delete one macvlan (its addresses go with it); restore its base interface's
        sysctls when it was the last one there."""
        vmac = self.vmacs.pop(name, None)
        if vmac is None:
            return
        try:
            delete_link(vmac.index)
            log.info("VMAC %s removed", name)
        except OSError as exc:
            if exc.errno != errno.ENODEV:
                log.warning("cannot remove VMAC %s: %s", name, exc.strerror)
        if not any(v.base == vmac.base for v in self.vmacs.values()):
            for key, old in self.saved.pop(vmac.base, {}).items():
                with contextlib.suppress(OSError):  # the base interface is gone
                    _sysctl(_ipv4_conf(vmac.base, key), old)

    def close(self) -> None:
        for name in list(self.vmacs):
            self.remove(name)


class SendOnlySocket(InterfaceSocket):
    """A VRRP socket on a macvlan that only sends: it joins no group (no IGMP/MLD report
    from the virtual MAC) and is never read (the adverts are received on the base
    interface's socket)."""

    JOINS = False

    def __init__(
        self, iface: Interface, family: int, *, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        super().__init__(iface, family, loop=loop)
        self.loop.remove_reader(self.sock.fileno())
