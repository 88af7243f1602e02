"""Pre-listening's replay (issue #16 §4), without a kernel: which instances start at
``t_listen``, which queued packets go to which engine socket, and what the replayed
adverts do to a real backup through the interface socket's own receive path, on a fake
clock. The lab tests (``tests/interop/test_prelisten.py``) run the whole thing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from ipaddress import IPv4Address
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))

from vrrp_targets import ipv4_datagram, vrrp_targets

from halo_core.vrrp import fsm, packet
from halo_core.vrrp.prelisten import Heard, Prelistening, covered_instances, to_replay
from halo_core.vrrp.rawsock import SO_TIMESTAMPNS, TIMESPEC

V4, V6 = socket.AF_INET, socket.AF_INET6
MASTER = IPv4Address("192.0.2.12")
GROUP = IPv4Address("224.0.0.18")
WALL = 1_700_000_000.0  # the wall clock minus the engine's (monotonic) clock


def test_an_instance_starts_at_t_listen_only_with_its_socket_and_group() -> None:
    specs = {
        "alone": ((V4, 2), True, None),
        "late_iface": ((V4, 5), False, None),  # created after listening began
        "same_socket_as_late": ((V4, 5), True, None),
        "grouped_with_late": ((V6, 2), True, "G"),
        "late_in_group": ((V6, 3), False, "G"),
        "same_socket_as_grouped": ((V6, 2), True, None),
    }
    assert covered_instances(specs) == {"alone"}
    assert covered_instances({"a": ((V4, 2), True, "G"), "b": ((V4, 3), True, "G")}) == {"a", "b"}


def test_covers_needs_the_same_interface_its_join_and_a_unicast_address() -> None:
    early = Prelistening(
        10.0,
        WALL + 10.0,
        [],
        {"eth0": 2, "eth1": 3},
        {V4: {2, 3}, V6: {2}},
        {V4: {IPv4Address("192.0.2.11").packed}},
    )
    assert early.covers(V4, "eth0", 2)
    assert not early.covers(V4, "eth0", 9)  # deleted and created again since
    assert not early.covers(V4, "vrrp.51", 4)  # a VMAC made by the engine
    assert not early.covers(V6, "eth1", 3)  # no IPv6 group joined there
    assert early.covers(V4, "eth1", 3, IPv4Address("192.0.2.11").packed)
    assert not early.covers(V4, "eth1", 3, IPv4Address("192.0.2.99").packed)  # added since
    v4_only = Prelistening(10.0, WALL + 10.0, [], {"eth0": 2}, {V4: {2}}, {V6: {b"\xfe" * 16}})
    assert not v4_only.covers(V6, "eth0", 2, b"\xfe" * 16)  # no IPv6 socket: nothing heard


def heard(index: int, stamp: float | None, family: int = V4) -> Heard:
    return Heard(family, index, b"", [], None, stamp)


def test_to_replay_keeps_the_order_and_what_the_engine_socket_missed() -> None:
    packets = [heard(2, 1.0), heard(3, 1.1), heard(2, 1.2, V6), heard(2, 1.3), heard(2, 2.5)]
    chosen = to_replay(packets, {(V4, 2): 2.0})
    assert chosen == [packets[0], packets[3]]  # other sockets' left out, 2.5 is the engine's
    assert to_replay([heard(2, None)], {(V4, 2): 2.0})[0].stamp is None  # time unknown: kept


def datagram(priority: int, interval_cs: int, addresses: tuple[IPv4Address, ...]) -> bytes:
    adv = packet.Advertisement(
        version=3, vrid=51, priority=priority, interval_cs=interval_cs, addresses=addresses
    )
    return ipv4_datagram(packet.encode(adv, MASTER, GROUP), MASTER, GROUP)


def stamped(at: float) -> list[tuple[int, int, bytes]]:
    """Ancillary data with a kernel receive time at engine time ``at``."""
    wall = WALL + at
    return [(socket.SOL_SOCKET, SO_TIMESTAMPNS, TIMESPEC.pack(int(wall), round(wall % 1 * 1e9)))]


def test_replayed_adverts_move_the_master_down_timer_as_if_heard_live() -> None:
    (target,) = [t for t in vrrp_targets() if t.name == "v3/ipv4/backup"]
    runtime, sock = target.runtime, target.sock
    t_listen, now = 1000.0, 1005.0  # the engine exists 5 s after listening began
    runtime.clock.t = now
    runtime.machine = fsm.initial(runtime.machine.config)
    runtime.step(fsm.Startup(), now=t_listen)
    mdi = runtime.machine.master_down_interval
    assert runtime.machine.master_down_timer == t_listen + mdi < now  # expired, unreplayed
    data = datagram(200, runtime.interval_cs, target.exp.addresses)  # type: ignore[arg-type]
    times = [t_listen + 0.5 + i for i in range(5)]  # the master, every second
    for at in times:
        sock.take(data, stamped(at), None, now, WALL)
    assert runtime.state is fsm.State.BACKUP
    assert runtime.machine.master_down_timer == pytest.approx(times[-1] + mdi, abs=1e-6)
    assert runtime.machine.master_address == MASTER
    assert runtime.counters["adverts_received"] == len(times)
    # The engine's socket opened at 1004.75: its copy of an advert received before is
    # skipped (the replay had it); a later one counts.
    sock.heard_before = WALL + 1004.75
    received = sock.received
    sock.take(data, stamped(times[-1]), None, now, WALL)
    assert sock.received == received
    sock.take(data, stamped(1004.9), None, now, WALL)
    assert sock.received == received + 1
    assert runtime.machine.master_down_timer == pytest.approx(1004.9 + mdi, abs=1e-6)
    # A duplicate that slipped through anyway (same advert, same time) changes nothing.
    machine = runtime.machine
    sock.heard_before = 0.0
    sock.take(data, stamped(1004.9), None, now, WALL)
    assert runtime.machine.master_down_timer == machine.master_down_timer
    assert runtime.machine.state is machine.state


def test_with_nothing_heard_the_timer_is_due_at_t_listen_plus_mdi() -> None:
    """Point 3: the engine came after the deadline; the first tick takes over at once."""
    (target,) = [t for t in vrrp_targets() if t.name == "v3/ipv4/backup"]
    runtime = target.runtime
    runtime.machine = fsm.initial(runtime.machine.config)
    runtime.step(fsm.Startup(), now=1000.0)
    deadline = runtime.machine.next_deadline()
    assert deadline == 1000.0 + runtime.machine.master_down_interval
    machine, actions = fsm.step(runtime.machine, fsm.Tick(), deadline + 0.5)
    assert machine.state is fsm.State.MASTER
    assert any(isinstance(a, fsm.SendAdvert) for a in actions)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to open raw sockets, then not)")
def test_without_permission_pre_listening_is_off_with_one_line() -> None:
    """As nobody (no CAP_NET_RAW) no early socket opens: start() says why, in one line, and
    halo run then starts every instance as before."""
    probe = (
        "import os; from halo_core.vrrp import prelisten; os.setuid(65534);"
        " print(repr(prelisten.start()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert out == "'IPv4: Operation not permitted; IPv6: Operation not permitted'"
