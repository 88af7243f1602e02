"""What VRRP's raw sockets share: option numbers, group requests and receive options.

The engine's sockets (:mod:`halo_core.vrrp.transport`) and the early ones ``halo run``
opens before its configuration is validated (:mod:`halo_core.vrrp.prelisten`) use these.
Standard library only: the early sockets open before the engine's modules are imported.
"""

from __future__ import annotations

import socket
import struct

VRRP_PROTO = 112
GROUP4_PACKED = socket.inet_pton(socket.AF_INET, "224.0.0.18")
GROUP6_PACKED = socket.inet_pton(socket.AF_INET6, "ff02::12")

# Not all of these are exported by Python's socket module.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IP_MULTICAST_ALL = 49
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
IPV6_MULTICAST_ALL = 29
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
RECEIVE_BUFFER = 2 * 1024 * 1024
ANCILLARY = 256  # room for IPv6 pktinfo and hop limit, and the receive time
TIMESPEC = struct.Struct("@qq")


def group_request(family: int, index: int) -> bytes:
    """The membership request for VRRP's group on interface ``index``: an ``ip_mreqn``
    (IPv4) or an ``ipv6_mreq`` (IPv6)."""
    if family == socket.AF_INET:
        return struct.pack("4s4si", GROUP4_PACKED, b"\0" * 4, index)
    return struct.pack("16sI", GROUP6_PACKED, index)


def join_group(sock: socket.socket, family: int, index: int) -> None:
    """Join VRRP's group on interface ``index``."""
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group_request(family, index))
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group_request(family, index))


def set_receive_options(sock: socket.socket, family: int) -> None:
    """What every receiving VRRP socket asks for: only the groups it joined, the hop limit
    and destination of IPv6 packets (IPv4's are in the header it reads), the kernel's
    receive time of each packet, a receive buffer for bursts, and no blocking."""
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
    # Room for a second of 255 instances' adverts (the default, 208 kB, holds about 270):
    # a busy moment must delay adverts, never drop them.
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
    except OSError:  # without CAP_NET_ADMIN: as much as net.core.rmem_max allows
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    # The kernel's receive time of each advert: what an advert read late (behind a burst,
    # at a timer's wake-up, or queued before the engine existed) counts from.
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setblocking(False)


def receive_time(anc: list[tuple[int, int, bytes]]) -> float | None:
    """The kernel's receive time (``CLOCK_REALTIME`` seconds) in a packet's ancillary data."""
    for level, kind, value in anc:
        if kind == SO_TIMESTAMPNS and level == socket.SOL_SOCKET:
            sec, nsec = TIMESPEC.unpack_from(value)
            return float(sec + nsec * 1e-9)
    return None
