"""Announcement pacing: gratuitous ARP (IPv4) and unsolicited neighbour advertisements
(IPv6) for the addresses a MASTER holds.

The runtime (:mod:`.runtime`) decides *which* addresses are held; this module decides *when*
their frames leave: the bursts on becoming MASTER (each address's first frame may leave
as soon as its add returns), the second burst after ``garp_master_delay``, the refreshes
every ``garp_master_refresh``, and the pause between two frames of a burst
(``garp_interval`` / ``gna_interval``). Everything pending for an instance is cancelled as
one when it leaves MASTER.

Frames are prebuilt per (interface, address) by :mod:`.frames` and sent on one
non-blocking ``AF_PACKET`` socket per interface (:class:`Port`); a full socket buffer
(EAGAIN / ENOBUFS) counts as a send error rather than blocking the loop.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import Protocol, TypeVar

from halo_backend_vip import frames
from halo_backend_vip.options import VipBackendConfig
from halo_core.scheduler import Clock, Timer
from halo_core.schema import IPAddress

log = logging.getLogger("halo.backend.vip")

ARPHRD_ETHER = 1
SIOCGIFHWADDR = 0x8927


def link_info(dev: str) -> tuple[int, bytes | None]:
    """(ifindex, MAC) of ``dev``; the MAC is None on a non-Ethernet link (nothing to
    announce there). Raises OSError when the interface does not exist."""
    index = socket.if_nametoindex(dev)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        # struct ifreq: the name, then a sockaddr whose family is the ARPHRD type.
        res = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, struct.pack("16s16x", dev.encode()))
    hatype = struct.unpack_from("H", res, 16)[0]
    return index, res[18:24] if hatype == ARPHRD_ETHER else None


class Port:
    """One interface: index, MAC, an AF_PACKET socket bound to it and its prebuilt frames."""

    def __init__(self, name: str, index: int, mac: bytes | None) -> None:
        self.name = name
        self.index = index
        self.mac = mac
        self.frames: dict[IPAddress, bytes] = {}
        self.sock: socket.socket | None = None
        if mac is not None:
            # Protocol 0: this socket only sends; the kernel queues nothing to it.
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            try:
                self.sock.bind((name, 0))
                self.sock.setblocking(False)
            except BaseException:
                self.sock.close()
                raise

    def frame(self, ip: IPAddress) -> bytes | None:
        if self.mac is None:
            return None
        data = self.frames.get(ip)
        if data is None:
            data = self.frames[ip] = (
                frames.unsolicited_na_frame(self.mac, ip)
                if isinstance(ip, IPv6Address)
                else frames.garp_frame(self.mac, ip)
            )
        return data

    def send(self, data: bytes) -> str | None:
        """Send one frame; the error text if it could not be sent (never blocks)."""
        if self.sock is None:
            return "not an Ethernet interface"
        try:
            self.sock.send(data)
        except OSError as exc:  # EAGAIN/ENOBUFS when the queue is full, ENETDOWN, ENXIO
            return exc.strerror or str(exc)
        return None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


class Held(Protocol):
    """One address held by an instance, as far as announcing goes."""

    @property
    def dev(self) -> str: ...

    @property
    def ip(self) -> IPAddress: ...

    @property
    def v6(self) -> bool: ...


H = TypeVar("H", bound=Held)


class Announced(Protocol):
    """An instance, as far as announcing goes: whether it is MASTER, what it holds, and
    where the frames sent are counted."""

    name: str
    master: bool
    counters: Counter[str]
    settings: VipBackendConfig  # the backend's settings with the instance's own applied

    @property
    def held(self) -> Sequence[Held]: ...


@dataclass(eq=False)
class _Pending:
    """What is scheduled for one instance: cancelled together on leaving MASTER."""

    second_burst: Timer | None = None
    refresh: Timer | None = None
    lower_prio: Timer | None = None
    bursts: set[asyncio.Task[None]] = field(default_factory=set)


Frame = tuple[Port, bytes, bool]  # (interface, frame, IPv6)


class Announcer:
    """Sends and paces the announcements of every instance of one backend."""

    def __init__(self, clock: Clock, port: Callable[[str], Port | None]) -> None:
        self.clock = clock
        self.port = port  # the interface's Port if it is known, else None
        self.pending: dict[str, _Pending] = {}

    @staticmethod
    def gap(inst: Announced, v6: bool) -> float:
        """The pause between two frames of a burst (0: back to back)."""
        return float(inst.settings.gna_interval if v6 else inst.settings.garp_interval)

    def announce(self, inst: Announced, repeat: int, only: Iterable[Held] | None = None) -> None:
        """Send ``repeat`` rounds of announcements for the held addresses (keepalived's
        order: one frame per address per round). Back to back when no interval is
        configured, else paced by a task that leaving MASTER cancels."""
        if repeat <= 0 or not inst.master:
            return
        wanted = set(only) if only is not None else None
        packets: list[Frame] = []
        for vip in inst.held:
            if wanted is not None and vip not in wanted:
                continue
            port = self.port(vip.dev)
            data = port.frame(vip.ip) if port is not None else None
            if port is not None and data is not None:
                packets.append((port, data, vip.v6))
        if not packets:
            return
        rounds = packets * repeat
        if not any(self.gap(inst, v6) for _, _, v6 in packets):
            self._send_all(inst, rounds)
            return
        pending = self.pending.setdefault(inst.name, _Pending())
        task = asyncio.get_running_loop().create_task(self._paced(inst, rounds))
        pending.bursts.add(task)
        task.add_done_callback(pending.bursts.discard)

    def announce_first(self, inst: Announced, vips: Iterable[H]) -> list[H]:
        """A new MASTER's first round, at once and before the addresses are added: one
        frame for each of ``vips`` whose interface is known. Returns those sent (the
        burst that follows the adds leaves them out of its first round). Nothing when
        announcing is off or paced: a paced burst keeps its own order."""
        if inst.settings.garp_master_repeat <= 0:
            return []
        packets: list[Frame] = []
        sent: list[H] = []
        for vip in vips:
            if self.gap(inst, vip.v6):
                return []
            port = self.port(vip.dev)
            data = port.frame(vip.ip) if port is not None else None
            if port is not None and data is not None:
                packets.append((port, data, vip.v6))
                sent.append(vip)
        self._send_all(inst, packets)
        return sent

    def follow_up(self, inst: Announced, delay: float, repeat: int) -> None:
        """After the first bursts of a new MASTER: the second burst ``delay`` seconds on,
        and the periodic refreshes."""
        pending = self.pending.setdefault(inst.name, _Pending())
        now = self.clock.now()
        if delay > 0 and repeat > 0:
            pending.second_burst = self.clock.call_at(
                now + delay, lambda: self.announce(inst, repeat)
            )
        refresh = float(inst.settings.garp_master_refresh)
        if refresh > 0:
            self._arm_refresh(inst, now + refresh)

    def lower_priority_heard(self, inst: Announced) -> None:
        """A MASTER heard a lower-priority master (a split brain healed): announce at
        once, and again after ``garp_lower_prio_delay``."""
        settings = inst.settings
        repeat = settings.garp_lower_prio_repeat
        if repeat is None:
            repeat = settings.garp_master_repeat
        delay = settings.garp_lower_prio_delay
        if delay is None:
            delay = settings.garp_master_delay
        self.announce(inst, repeat)
        pending = self.pending.setdefault(inst.name, _Pending())
        if float(delay) > 0 and repeat > 0:
            if pending.lower_prio is not None:
                pending.lower_prio.cancel()
            pending.lower_prio = self.clock.call_at(
                self.clock.now() + float(delay), lambda: self.announce(inst, repeat)
            )

    def cancel(self, inst: Announced) -> None:
        """Drop everything still scheduled for ``inst`` (it leaves MASTER)."""
        pending = self.pending.pop(inst.name, None)
        if pending is None:
            return
        for timer in (pending.second_burst, pending.refresh, pending.lower_prio):
            if timer is not None:
                timer.cancel()
        for task in pending.bursts:
            task.cancel()

    def _send_all(self, inst: Announced, packets: list[Frame]) -> None:
        errors: dict[str, int] = {}
        for port, data, v6 in packets:
            err = self._send_one(inst, port, data, v6)
            if err is not None:
                errors[f"{port.name}: {err}"] = errors.get(f"{port.name}: {err}", 0) + 1
        for what, n in errors.items():
            log.warning("%s: %d announcements not sent (%s)", inst.name, n, what)

    def _send_one(self, inst: Announced, port: Port, data: bytes, v6: bool) -> str | None:
        err = port.send(data)
        if err is None:
            inst.counters["na_sent" if v6 else "garp_sent"] += 1
        else:
            inst.counters["send_errors"] += 1
        return err

    async def _paced(self, inst: Announced, packets: list[Frame]) -> None:
        for i, (port, data, v6) in enumerate(packets):
            if i:
                await self.clock.sleep(self.gap(inst, packets[i - 1][2]))
            err = self._send_one(inst, port, data, v6)
            if err is not None:
                log.warning("%s: announcement not sent on %s: %s", inst.name, port.name, err)

    def _arm_refresh(self, inst: Announced, when: float) -> None:
        def due() -> None:
            if inst.master:
                self.announce(inst, inst.settings.garp_master_refresh_repeat)
                self._arm_refresh(inst, when + float(inst.settings.garp_master_refresh))

        self.pending.setdefault(inst.name, _Pending()).refresh = self.clock.call_at(when, due)
