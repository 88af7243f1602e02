"""Pre-listening: ``halo run`` hears VRRP from its first milliseconds.

A backup may declare its master down only after it has listened for Master_Down_Interval
(RFC 9568 §6.4.1). ``halo run`` spends a few hundred milliseconds of CPU before its engine
exists (its child validates the file, the VRRP process imports the engine). Instead of
waiting for the engine to start listening, the VRRP process opens raw protocol-112
sockets at once (:func:`start`), joined to VRRP's group on every interface of its network
namespace, and lets the kernel queue what arrives, with each packet's receive time. When
the engine exists, each instance the early sockets covered starts at the moment they
began to listen (``t_listen``), and the queued packets are replayed, in the order they
arrived and at the time they arrived, through the engine's own receive path
(:meth:`halo_core.vrrp.transport.InterfaceSocket.take`). Nothing is sent before the
configuration's verdict; these sockets never send.

Standard library only (``socket``, ``struct``, ``time``): this runs before anything else
of the VRRP process is imported. If anything fails, pre-listening is off and the engine
starts every instance when it exists, as without it.
"""

from __future__ import annotations

import errno
import socket
import struct
import time

from halo_core.vrrp.rawsock import (
    ANCILLARY,
    IP_PKTINFO,
    IPV6_PKTINFO,
    VRRP_PROTO,
    join_group,
    receive_time,
    set_receive_options,
)

TYPE_CHECKING = False  # typing is not loaded yet when this runs (halo_core.cli)
if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

FAMILIES = (socket.AF_INET, socket.AF_INET6)
MOST_QUEUED = 100_000
"""Packets read from the early sockets at most (their buffers hold a few thousand): a
flood cannot keep the replay reading."""

SIOCGIFCONF = 0x8912
IFREQ = 40  # sizeof(struct ifreq) on 64-bit Linux: name[16], then a sockaddr


class Heard:
    """One packet an early socket queued: the interface it arrived on, what the engine's
    socket would have read (data, ancillary data, address) and its kernel receive time."""

    __slots__ = ("addr", "anc", "data", "family", "index", "stamp")

    def __init__(
        self,
        family: int,
        index: int,
        data: bytes,
        anc: list[tuple[int, int, bytes]],
        addr: object,
        stamp: float | None,
    ) -> None:
        self.family = family
        self.index = index
        self.data = data
        self.anc = anc
        self.addr = addr
        self.stamp = stamp


class Prelistening:
    """The early sockets, from ``t_listen`` (the engine's clock: ``time.monotonic()``) on.

    ``interfaces``: each interface's index at ``t_listen``, by name; ``joined``: per family,
    the indexes whose VRRP group the sockets joined; ``addresses``: per family, the host's
    addresses at ``t_listen`` (packed), where unicast adverts to us could arrive."""

    def __init__(
        self,
        t_listen: float,
        t_listen_wall: float,
        sockets: list[tuple[int, socket.socket]],
        interfaces: Mapping[str, int],
        joined: Mapping[int, Collection[int]],
        addresses: Mapping[int, Collection[bytes]],
    ) -> None:
        self.t_listen = t_listen
        self.t_listen_wall = t_listen_wall
        self.sockets = sockets
        self.interfaces = dict(interfaces)
        self.joined = {f: frozenset(v) for f, v in joined.items()}
        self.addresses = {f: frozenset(v) for f, v in addresses.items()}

    def covers(
        self, family: int, interface: str, index: int, unicast_src: bytes | None = None
    ) -> bool:
        """Whether an instance on ``interface`` (index ``index`` now) was heard from
        ``t_listen``: the interface existed then with the same index and its family's
        group was joined on it; a unicast instance's own address (``unicast_src``, where
        its peers send) was on the host then."""
        if self.interfaces.get(interface) != index:
            return False  # created (or created again) since
        if family not in self.joined:
            return False  # no socket of this family could be opened
        if unicast_src is not None:
            return unicast_src in self.addresses.get(family, ())
        return index in self.joined.get(family, ())

    def drain(self) -> list[Heard]:
        """Everything the early sockets queued, in the order it arrived (a packet without a
        receive time last). Bounded: :data:`MOST_QUEUED` at most."""
        heard: list[Heard] = []
        seen: set[tuple[int, float | None, bytes]] = set()
        several = {f for f, _ in self.sockets if sum(g == f for g, _ in self.sockets) > 1}
        for family, sock in self.sockets:
            while len(heard) < MOST_QUEUED:
                try:
                    data, anc, _, addr = sock.recvmsg(2048, ANCILLARY)
                except OSError:  # BlockingIOError: nothing more queued
                    break
                found = Heard(family, _arrival_index(family, anc), data, anc, addr, None)
                found.stamp = receive_time(anc)
                if family in several:
                    # a unicast packet reaches every socket of its family: keep one copy
                    key = (family, found.stamp, data)
                    if key in seen:
                        continue
                    seen.add(key)
                heard.append(found)
        heard.sort(key=lambda h: float("inf") if h.stamp is None else h.stamp)
        return heard

    def close(self) -> None:
        for _, sock in self.sockets:
            sock.close()
        self.sockets = []


def _arrival_index(family: int, anc: list[tuple[int, int, bytes]]) -> int:
    """The index of the interface a packet arrived on (0 if the kernel did not say)."""
    level = socket.IPPROTO_IP if family == socket.AF_INET else socket.IPPROTO_IPV6
    kind = IP_PKTINFO if family == socket.AF_INET else IPV6_PKTINFO
    offset = 0 if family == socket.AF_INET else 16  # in_pktinfo / in6_pktinfo
    for lvl, knd, value in anc:
        if lvl == level and knd == kind and len(value) >= offset + 4:
            return int(struct.unpack_from("i" if offset == 0 else "I", value, offset)[0])
    return 0


def start() -> Prelistening | str:
    """Open the early sockets and join VRRP's group on every interface; the reason
    pre-listening is off when it cannot be (no permission, no interface)."""
    try:
        interfaces = {name: index for index, name in socket.if_nameindex()}
    except OSError as exc:
        return f"cannot list the interfaces: {exc.strerror or exc}"
    if not interfaces:
        return "no interfaces"
    sockets: list[tuple[int, socket.socket]] = []
    joined: dict[int, set[int]] = {}
    reasons = []
    for family in FAMILIES:
        try:
            joined[family] = _listen(family, interfaces.values(), sockets)
        except OSError as exc:
            reasons.append(f"{_name(family)}: {exc.strerror or exc}")
    if not sockets:
        return "; ".join(reasons) or "no socket"
    t_listen, t_listen_wall = time.monotonic(), time.time()
    addresses: dict[int, set[bytes]] = {
        socket.AF_INET: _ipv4_addresses(),
        socket.AF_INET6: _ipv6_addresses(),
    }
    return Prelistening(t_listen, t_listen_wall, sockets, interfaces, joined, addresses)


def _name(family: int) -> str:
    return "IPv4" if family == socket.AF_INET else "IPv6"


def _listen(
    family: int, indexes: Iterable[int], sockets: list[tuple[int, socket.socket]]
) -> set[int]:
    """Sockets of ``family`` joined to VRRP's group on every interface that allows it
    (appended to ``sockets``); the indexes joined. A socket joins at most
    net.ipv4.igmp_max_memberships groups (20): past that, another socket."""
    joined: set[int] = set()
    sock = _open(family)
    sockets.append((family, sock))
    for index in indexes:
        try:
            join_group(sock, family, index)
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                continue  # this interface cannot (no IPv6 on it, ...): not covered
            sock = _open(family)
            sockets.append((family, sock))
            try:
                join_group(sock, family, index)
            except OSError:
                continue
        joined.add(index)
    return joined


def _open(family: int) -> socket.socket:
    """A receiving raw socket for VRRP, on no interface in particular: the same receive
    options as the engine's (:func:`~halo_core.vrrp.rawsock.set_receive_options`), and the
    interface each packet arrived on."""
    sock = socket.socket(family, socket.SOCK_RAW, VRRP_PROTO)
    try:
        set_receive_options(sock, family)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    except OSError:
        sock.close()
        raise
    return sock


def _ipv4_addresses() -> set[bytes]:
    """The host's IPv4 addresses (SIOCGIFCONF: every address, each under its label)."""
    import array
    import fcntl

    size = 64 * IFREQ
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        while True:
            buffer = array.array("B", bytes(size))
            request = struct.pack("iL", size, buffer.buffer_info()[0])
            try:
                used = struct.unpack_from("i", fcntl.ioctl(s.fileno(), SIOCGIFCONF, request))[0]
            except OSError:
                return set()
            if used < size or size >= 1 << 24:
                break
            size *= 4  # full: there may be more
    data = buffer.tobytes()
    # each ifreq: the label (16 bytes), then a sockaddr_in: family, port, address
    return {data[i + 20 : i + 24] for i in range(0, used - IFREQ + 1, IFREQ)}


def _ipv6_addresses() -> set[bytes]:
    """The host's IPv6 addresses (``/proc/net/if_inet6``)."""
    try:
        with open("/proc/net/if_inet6") as fh:
            return {bytes.fromhex(line.split()[0]) for line in fh if line.strip()}
    except (OSError, ValueError):
        return set()


SocketKey = tuple[int, int]  # an engine socket: (address family, interface index)


def covered_instances(instances: Mapping[str, tuple[SocketKey, bool, str | None]]) -> set[str]:
    """The instances that start at ``t_listen``, from each one's (socket, whether the early
    sockets covered it, sync group). An instance covered itself is left out when another on
    its socket is not (the socket's queued packets are replayed to all its instances, or to
    none) or another of its sync group is not (a member's takeover carries the group)."""
    ok = {name for name, (_, covered, _) in instances.items() if covered}
    while True:
        left_out = [spec for name, spec in instances.items() if name not in ok]
        keys = {key for key, _, _ in left_out}
        groups = {group for _, _, group in left_out if group is not None}
        kept = {n for n in ok if instances[n][0] not in keys and instances[n][2] not in groups}
        if kept == ok:
            return ok
        ok = kept


def to_replay(heard: Iterable[Heard], cutoffs: Mapping[SocketKey, float]) -> list[Heard]:
    """The packets to hand to the engine's sockets, in order: those that arrived on an
    interface whose socket replays (``cutoffs``: the wall-clock time each began to hear
    for itself) before that socket heard for itself; it skips its own copies of those."""
    out = []
    for h in heard:
        cutoff = cutoffs.get((h.family, h.index))
        if cutoff is not None and (h.stamp is None or h.stamp < cutoff):
            out.append(h)
    return out
