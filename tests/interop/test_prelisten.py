"""Pre-listening (issue #16 §4): ``halo run`` listens for VRRP from its first milliseconds,
and its instances count Master_Down_Interval from then, not from when the engine exists.

* A master already on the segment (halo or keepalived), heard only by the early sockets
  (20 ms adverts: Master_Down_Interval is 73 ms, the engine exists hundreds of
  milliseconds later), keeps the new node BACKUP: it sends no advert unless the master
  really was silent for Master_Down_Interval (on this loaded machine keepalived's master
  at 10 ms was seen silent for 38 ms once), judged on the wire.
* A master killed after the new node began to listen but before its engine exists (a
  large configuration makes validation slow) was heard: the new node takes over as soon
  as its engine exists, naming that master as silent, never earlier than Master_Down_Interval
  after the master's last advert.
* Alone, the new node's first advert leaves Master_Down_Interval after listening began;
  when the engine exists only after that, at once.
* An instance whose interface appears later (``dynamic_interfaces``) is not pre-listened: it
  counts from when it starts, as before.

Judged on the wire (the lab's switch) and from the node's debug log, which says when
listening began (wall clock) and how many packets were replayed.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from vrrp_peers import INSTANCE, HaloNode, InteropFactory, Proto, Spec, halo_config

from halo_tool_lab.halo import Halo
from halo_tool_lab.netns import wait_until
from halo_tool_lab.pytest_plugin import LabFactory
from halo_tool_lab.tools import needs_tools

pytestmark = pytest.mark.lab

KEEPALIVED = [pytest.mark.keepalived, needs_tools("keepalived")]
MASTERS = [
    pytest.param("halo", id="halo"),
    pytest.param("keepalived", id="keepalived", marks=KEEPALIVED),
]
V3_10MS = Proto("v3-ipv4-10ms", 3, False, 0.01)
V3_20MS = Proto("v3-ipv4-20ms", 3, False, 0.02)
V3_IPV6_20MS = Proto("v3-ipv6-20ms", 3, True, 0.02)
V3_1S = Proto("v3-ipv4-1s", 3, False, 1.0)
BACKUP = 90

PRELISTENED = re.compile(
    r"pre-listening: (\d+) of \d+ instances started ([\d.]+) ms ago, at ([\d.]+) \(wall"
    r" clock\), when listening began; (\d+) packets replayed"
)


def prelistened(node: HaloNode | Halo) -> tuple[int, float, float, int] | None:
    """From the node's log: (instances pre-listened, how long before the engine started
    they began (s), when listening began (epoch s), packets replayed)."""
    for message in node.messages():
        if m := PRELISTENED.search(message):
            return int(m[1]), float(m[2]) / 1000, float(m[3]), int(m[4])
    return None


@pytest.mark.parametrize("proto", [V3_20MS, V3_IPV6_20MS], ids=lambda p: p.id)
@pytest.mark.parametrize("master_impl", MASTERS)
def test_a_master_heard_before_the_engine_exists_keeps_the_new_node_backup(
    interop: InteropFactory, master_impl: str, proto: Proto
) -> None:
    s = interop(proto)
    h1, h2 = s.hosts
    master = s.start(master_impl, h1, Spec(100, "MASTER"), "master")
    s.wire.wait(master.source, timeout=20.0, count=20)  # advertising, 10 ms apart
    spawned = time.time()
    new = s.start("halo", h2, Spec(BACKUP), "new")
    assert isinstance(new, HaloNode)
    assert wait_until(lambda: prelistened(new) is not None, 20.0), s.logs()
    found = prelistened(new)
    assert found is not None
    instances, engine_after, _, replayed = found
    assert instances == 1
    # The engine started after a whole Master_Down_Interval: without the replayed adverts
    # the instance would have been master at once.
    assert engine_after > proto.master_down(BACKUP), found
    assert replayed > 0, found
    assert new.wait_state("BACKUP", 10.0), s.logs()
    time.sleep(1.0)  # fifty more adverts, now on the engine's own socket
    assert new.states()[0] == "BACKUP", s.logs()
    # Every advert of the new node must follow a silence of the master of a whole
    # Master_Down_Interval (a broken replay would advertise as soon as the engine starts).
    bound = proto.master_down(BACKUP) - 0.001
    for advert in s.wire.sent_by(new.source, after=spawned):
        last = s.wire.last_from(master.source, before=advert.time)
        assert last is not None
        silent = advert.time - last.time
        assert silent >= bound, f"advert {silent * 1000:.1f} ms after the master's" + s.logs()


def children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


@pytest.mark.parametrize("master_impl", MASTERS)
def test_a_master_that_died_before_the_engine_exists_was_heard(
    interop: InteropFactory, master_impl: str, tmp_path: Path
) -> None:
    proto = V3_20MS
    s = interop(proto)
    h1, h2 = s.hosts
    master = s.start(master_impl, h1, Spec(100, "MASTER"), "master")
    s.wire.wait(master.source, timeout=20.0, count=20)
    # 1,000 more instances, on interfaces that never appear: validating them takes the
    # child about a second, while the early sockets listen.
    config = halo_config("new", proto, Spec(BACKUP), tmp_path / "new.state").replace(
        "global:\n", "global:\n  dynamic_interfaces: true\n"
    )
    for i in range(1000):
        config += (
            f"  WAIT_{i}:\n    interface: absent{i // 250}\n"
            f"    virtual_router_id: {i % 250 + 1}\n    priority: {BACKUP}\n"
        )
    new = Halo(h2, config, tmp_path, name="new", log_level="debug")
    try:
        # the validating child is forked: the early sockets open right after
        assert wait_until(lambda: children(new.proc.pid) != [], 20.0, 0.005), new.log
        time.sleep(0.1)
        master.kill9()
        assert wait_until(lambda: prelistened(new) is not None, 30.0), new.log
        found = prelistened(new)
        assert found is not None
        _, engine_after, since, replayed = found
        first = s.wire.wait(h2.ipv4, timeout=20.0)[0]
        last = s.wire.last_from(master.source, before=first.time)
        assert last is not None
        # the window: the master spoke after listening began, and was silent a whole
        # Master_Down_Interval before the engine existed
        assert since < last.time < since + engine_after - proto.master_down(BACKUP), found
        assert replayed > 0
        assert first.time - last.time >= proto.master_down(BACKUP) - 0.001
        assert wait_until(lambda: new.states(INSTANCE)[:2] == ["BACKUP", "MASTER"], 10.0), new.log
        taking = f"{INSTANCE}: entering MASTER state (master down timer expired, last master"
        assert taking in new.log, new.log  # it had heard the master: replayed, not missed
    finally:
        new.kill9()


@pytest.mark.parametrize("proto", [V3_1S, V3_10MS], ids=lambda p: p.id)
def test_alone_the_first_advert_leaves_master_down_interval_after_listening_began(
    interop: InteropFactory, proto: Proto
) -> None:
    s = interop(proto)
    mdi = proto.master_down(BACKUP)
    new = s.start("halo", s.hosts[0], Spec(BACKUP), "alone")
    first = s.wire.wait(new.source, timeout=mdi + 20.0)[0]
    # (the log is written from a thread: its line may follow the advert)
    assert wait_until(lambda: prelistened(new) is not None, 10.0), s.logs()
    found = prelistened(new)
    assert found is not None
    _, engine_after, since, replayed = found
    assert replayed == 0
    late = first.time - (since + mdi)
    assert late > -0.001, f"{late * 1000:+.1f} ms: early"  # it listened a whole interval
    if engine_after < mdi:
        # Generous for a loaded machine: the timer runs from the start of listening.
        assert late < 0.25, f"{late * 1000:+.1f} ms late"
    else:
        # The engine came after the deadline: the first advert leaves as it starts.
        assert late < engine_after - mdi + 0.25, f"{late * 1000:+.1f} ms late"
    # the MASTER line, like every line, is written by the log thread after the advert
    assert wait_until(lambda: new.states() == ["BACKUP", "MASTER"], 10.0), s.logs()


def test_an_interface_that_appears_later_is_not_prelistened(
    lab: LabFactory, tmp_path: Path
) -> None:
    """dynamic_interfaces: the instance starts when its interface appears and counts its
    Master_Down_Interval from there, not from when halo began to listen."""
    host = lab(1, ipv6=False).hosts[0]
    config = "\n".join(
        [
            "global:",
            "  log_format: json",
            "  dynamic_interfaces: true",
            "vrrp_instances:",
            f"  {INSTANCE}:",
            "    interface: late0",
            "    virtual_router_id: 51",
            f"    priority: {BACKUP}",
            "    version: 3",
            "    advert_int: 1",
        ]
    )
    node = Halo(host, config + "\n", tmp_path, name="late", log_level="debug")
    assert node.wait_log("waiting for it", 20.0), node.log
    time.sleep(0.5)  # listening began well before the interface exists
    host.ip("link", "add", "late0", "type", "veth", "peer", "name", "late1")
    host.ip("addr", "add", "198.51.100.1/24", "dev", "late0")
    host.ip("link", "set", "late1", "up")
    host.ip("link", "set", "late0", "up")
    assert node.wait_state(INSTANCE, "MASTER", 20.0), node.log

    def at(pattern: str) -> float:
        record = next(r for r in node.records() if re.search(pattern, str(r.get("message"))))
        return datetime.fromisoformat(record["time"]).timestamp()

    appeared = at("interface late0 appeared: starting")
    master = at(f"{INSTANCE}: entering MASTER state")
    assert master - appeared >= V3_1S.master_down(BACKUP) - 0.001
    assert "listening since" not in node.log
    assert "pre-listening: " not in node.log  # the one instance did not exist at start
    node.stop()
