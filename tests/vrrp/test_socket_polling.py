"""#16 §3: a socket hearing a clump of adverts reads it in two wake-ups - the reader, then
one poll a polling period later - and goes back to its reader; it polls on only while
adverts keep arriving late in the period."""

from __future__ import annotations

from typing import Any

from halo_core.vrrp.transport import InterfaceSocket


class _Loop:
    def __init__(self) -> None:
        self.t = 1000.0
        self.reading = True
        self.timers: list[tuple[float, Any]] = []

    def time(self) -> float:
        return self.t

    def add_reader(self, fd: int, callback: Any) -> None:
        self.reading = True

    def remove_reader(self, fd: int) -> None:
        self.reading = False

    def call_at(self, when: float, callback: Any) -> Any:
        self.timers.append((when, callback))
        return self


class _Sock:
    def fileno(self) -> int:
        return 99


def polling_socket(period: float = 0.03) -> tuple[InterfaceSocket, _Loop, list[list[float]]]:
    """A socket without a kernel socket: each read takes the next list of receive times."""
    loop = _Loop()
    sock = InterfaceSocket.__new__(InterfaceSocket)
    sock.loop = loop  # type: ignore[assignment]
    sock.sock = _Sock()  # type: ignore[assignment]
    sock.receivers, sock.closed, sock.received = {}, False, 0
    sock._last_read, sock._latest = float("-inf"), float("-inf")
    sock._clumps = False
    sock._poll, sock._poll_every = None, period
    queued: list[list[float]] = []

    def readable(batch: int = 64) -> bool:
        for at in queued.pop(0) if queued else []:
            sock.received += 1
            sock._latest = at
        return False

    sock._readable = readable  # type: ignore[method-assign]
    return sock, loop, queued


def test_a_clump_is_read_by_the_reader_and_one_poll() -> None:
    sock, loop, queued = polling_socket()
    queued += [[1000.0, 1000.0], [1000.001 + i * 0.0001 for i in range(98)]]
    sock._on_readable()  # two adverts: a clump begins
    assert not loop.reading and len(loop.timers) == 1
    when, poll = loop.timers.pop()
    assert 1000.03 <= when < 1000.031  # a polling period later, on the millisecond grid
    loop.t = when
    poll()  # the rest, all received early in the period: back to the reader
    assert sock.received == 100 and loop.reading and not loop.timers


def test_one_advert_at_a_time_stays_on_the_reader() -> None:
    sock, loop, queued = polling_socket()
    queued += [[1000.0]]
    sock._on_readable()
    assert loop.reading and not loop.timers
    loop.t, queued[:] = 1000.1, [[1000.1]]  # the next one an interval later
    sock._on_readable()
    assert loop.reading and not loop.timers


def test_steady_traffic_is_polled_on() -> None:
    sock, loop, queued = polling_socket()
    queued += [[1000.0, 1000.0], [1000.0 + i * 0.001 for i in range(30)]]
    sock._on_readable()
    when, poll = loop.timers.pop()
    loop.t = when
    poll()  # adverts kept coming until the poll: poll again, not the reader
    assert not loop.reading and len(loop.timers) == 1
    loop.t = loop.timers.pop()[0]
    sock._polled()  # nothing more: back to the reader
    assert loop.reading and not loop.timers


def test_after_a_polled_clump_the_next_clump_is_gathered_from_its_first_advert() -> None:
    """A halo master's instances advertise together; a real-time backup woken by the first
    advert of a clump often reads it alone. Once a poll has read a clump's rest, the next
    clump's first reader wake-up polls at once: two wake-ups a clump, not three."""
    sock, loop, queued = polling_socket()
    queued += [[1000.0, 1000.0], [1000.001 + i * 0.0001 for i in range(98)]]
    sock._on_readable()
    loop.t = 1000.03
    sock._polled()  # the clump's rest, then back to the reader
    assert loop.reading
    loop.t, loop.timers = 1000.1, []
    queued += [[1000.1]]  # the next clump's first advert, alone
    sock._on_readable()
    assert not loop.reading and [when for when, _ in loop.timers] == [1000.13]
    # a lone advert per wake-up (one instance, or sparse traffic): no poll ever read a
    # clump, so the reader stays
    sock, loop, queued = polling_socket()
    for k in range(3):
        loop.t = 1000.0 + k
        queued += [[loop.t]]
        sock._on_readable()
        assert loop.reading and loop.timers == []
