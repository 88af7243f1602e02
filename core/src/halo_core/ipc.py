"""The link between the VRRP process and the worker process (docs/processes.md).

One ``SOCK_SEQPACKET`` socketpair: every datagram is one JSON object with a type ``t``.
Events travel as ``{"t": "event", "kind": ..., <fields>}`` and are decoded back into the
same :mod:`halo_core.events` dataclasses, so each side's event bus stays the programming
model: what one side publishes, the other side's subscribers receive.

Writes never block the event loop: a datagram the kernel cannot take now waits in a bounded
queue flushed when the socket is writable; past the bound the oldest are dropped and
counted (the supervisor restarts a worker that stops reading).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
import mmap
import os
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

from halo_core.events import Event

log = logging.getLogger("halo.ipc")

Message = dict[str, Any]
Queued = bytes | tuple[bytes, list[int]]
"""A datagram waiting to be sent, with the descriptors it carries (``SCM_RIGHTS``)."""

MAX_QUEUE = 10_000
"""Datagrams waiting for a slow reader before the oldest are dropped."""
BUFFER = 4 * 1024 * 1024
"""Socket buffer asked for (the kernel caps it at net.core.wmem_max); a datagram larger
than what the kernel grants cannot be sent and is dropped, counted."""
MAX_FDS = 4
"""Most descriptors one datagram carries (a reload's configuration: one)."""
FDS = "fds"
"""The key under which a received message holds the descriptors that came with it (the
receiver's to close)."""


def socketpair() -> tuple[socket.socket, socket.socket]:
    """Two connected ends; the second is meant to be inherited by the worker."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for s in (ours, theirs):
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            s.setsockopt(socket.SOL_SOCKET, opt, BUFFER)
    return ours, theirs


def _event_classes() -> dict[str, type[Event]]:
    out: dict[str, type[Event]] = {}
    todo: list[type[Event]] = [Event]
    while todo:
        cls = todo.pop()
        out.setdefault(cls.kind, cls)
        todo += cls.__subclasses__()
    return out


def encode_event(event: Event) -> Message | None:
    """``event`` as a message, or None when a field is not plain data (such an event, e.g.
    a pool's desired state carrying its config, stays on its own side)."""
    msg: Message = {"t": "event", "kind": event.kind}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, tuple) and all(isinstance(v, str | int | float) for v in value):
            value = list(value)  # a sync group's members: back to a tuple in decode_event
        elif not isinstance(value, str | int | float | bool | None):
            return None
        msg[f.name] = value
    return msg


def decode_event(msg: Message, classes: dict[str, type[Event]] | None = None) -> Event | None:
    """The event a message carries, or None for an unknown kind or malformed fields."""
    cls = (classes or _event_classes()).get(str(msg.get("kind")))
    if cls is None or cls is Event:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    fields: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in msg.items() if k in names
    }
    try:
        return cls(**fields)
    except TypeError:
        return None


@dataclasses.dataclass
class LinkStats:
    sent: int = 0
    received: int = 0
    queued_max: int = 0
    dropped: int = 0
    undecodable: int = 0


class Link:
    """One end of the socketpair on the running event loop."""

    def __init__(
        self,
        sock: socket.socket,
        on_message: Callable[[Message], None],
        on_close: Callable[[], None] = lambda: None,
        *,
        fds: bool = False,
    ) -> None:
        """``fds``: this end receives descriptors with messages (the worker's: a reload's
        configuration); a message that brought some holds them under :data:`FDS`."""
        sock.setblocking(False)
        self.sock = sock
        self.on_message = on_message
        self.on_close = on_close
        self.stats = LinkStats()
        self.closed = False
        self._queue: deque[Queued] = deque()
        self._ancillary = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize) if fds else 0
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)
        self._classes = _event_classes()
        # Room for the largest datagram, in pages the kernel gives when first written: a
        # bytearray of this size is zero-filled, 4 MB resident in each process for good.
        self._buffer = mmap.mmap(-1, BUFFER)

    def send(self, msg: Message, fds: list[int] | None = None) -> None:
        """Send now or queue; never blocks, never raises. ``fds``: descriptors to pass
        with it (copies are sent: the caller keeps and closes its own)."""
        if self.closed:
            return
        try:
            # default=str: a plugin's status() may hold addresses and such.
            data = json.dumps(msg, separators=(",", ":"), default=str).encode()
        except (TypeError, ValueError) as exc:
            self.stats.dropped += 1
            log.error("ipc: cannot encode a %s message: %s", msg.get("t"), exc)
            return
        item: Queued = data
        if fds:
            try:
                item = (data, [os.dup(fd) for fd in fds[:MAX_FDS]])
            except OSError as exc:
                self.stats.dropped += 1
                log.error("ipc: cannot pass a descriptor with a %s message: %s", msg.get("t"), exc)
                return
        if not self._queue and self._write(item):
            return
        if len(self._queue) >= MAX_QUEUE:
            _forget(self._queue.popleft())
            self.stats.dropped += 1
        self._queue.append(item)
        self.stats.queued_max = max(self.stats.queued_max, len(self._queue))
        if len(self._queue) == 1:
            self._loop.add_writer(self.sock.fileno(), self._writable)

    def send_event(self, event: Event) -> bool:
        msg = encode_event(event)
        if msg is None:
            return False
        self.send(msg)
        return True

    def event_of(self, msg: Message) -> Event | None:
        event = decode_event(msg, self._classes)
        if event is None:
            self.stats.undecodable += 1
        return event

    def _write(self, item: Queued) -> bool:
        """True when the datagram was sent or can never be (dropped); False: try later."""
        try:
            if isinstance(item, bytes):
                data = item
                self.sock.send(data)
            else:
                data, fds = item
                rights = array.array("i", fds)
                self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
        except BlockingIOError:
            return False
        except OSError as exc:
            _forget(item)
            if exc.errno == errno.EMSGSIZE:  # larger than the socket buffer
                self.stats.dropped += 1
                log.error("ipc: a %d-byte message is too large; dropped", len(data))
                return True
            self._lost()
            return True
        _forget(item)
        self.stats.sent += 1
        return True

    def _writable(self) -> None:
        while self._queue:
            if not self._write(self._queue[0]):
                return
            if self.closed:
                return
            self._queue.popleft()
        self._loop.remove_writer(self.sock.fileno())

    def _readable(self) -> None:
        for _ in range(256):  # then let the loop run timers: adverts come first
            fds: list[int] = []
            try:
                if self._ancillary:
                    size, ancillary, _, _ = self.sock.recvmsg_into(
                        [self._buffer], self._ancillary, socket.MSG_CMSG_CLOEXEC
                    )
                    fds = _rights(ancillary)
                else:
                    size = self.sock.recv_into(self._buffer)
            except BlockingIOError:
                return
            except OSError:
                size = 0
            if not size:
                _forget((b"", fds))
                self._lost()
                return
            self.stats.received += 1
            try:
                msg = json.loads(self._buffer[:size])
            except ValueError:
                msg = None
            if not isinstance(msg, dict):
                self.stats.undecodable += 1
                _forget((b"", fds))
                continue
            if fds:
                msg[FDS] = fds
            self.on_message(msg)
            if self.closed:
                return

    def _lost(self) -> None:
        if self.closed:
            return
        self.close()
        self.on_close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        fd = self.sock.fileno()
        if fd >= 0:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
        for item in self._queue:
            _forget(item)
        self._queue.clear()
        self.sock.close()

    async def flush(self, timeout: float) -> None:
        """Wait (bounded) until every queued datagram has reached the kernel."""
        deadline = self._loop.time() + timeout
        while self._queue and not self.closed and self._loop.time() < deadline:
            await asyncio.sleep(0.01)


def _forget(item: Queued) -> None:
    """Close the descriptors a datagram carried (sent, dropped or never delivered)."""
    if not isinstance(item, bytes):
        for fd in item[1]:
            with contextlib.suppress(OSError):
                os.close(fd)


def _rights(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors an ``SCM_RIGHTS`` message brought."""
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return list(fds)
