"""#16 §3: a backup's master's repeated adverts stay in the kernel
(:mod:`halo_core.vrrp.repeatfilter`).

* The filter itself, run by the kernel on crafted IPv4 datagrams (BPF_PROG_TEST_RUN): it
  drops exactly the armed bytes, whatever the IP ID and header checksum, notes when and how
  many, and passes everything else whole. (The IPv6 filter reads the header from before
  the packet a raw socket sees, which a test run does not reproduce: the lab test below
  runs it.)
* The instance's side, with a fake clock: the kernel's count and time move its
  Master_Down_Timer and its counters; every step takes the bytes back before it reads them.
* A halo backup hearing a halo master, over IPv4 and IPv6: the adverts it accepts keep
  being counted while its socket reads almost none of them, and a priority-0 advert still
  gets through at once.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))

from vrrp_targets import ipv4_datagram, vrrp_targets

from halo_core.vrrp import fsm, packet, repeatfilter
from halo_tool_lab.halo import Halo
from halo_tool_lab.netns import wait_until
from halo_tool_lab.pytest_plugin import LabFactory
from halo_tool_lab.testing import many_instances_config

MASTER, GROUP = IPv4Address("192.0.2.12"), IPv4Address("224.0.0.18")


def datagram(
    vrid: int = 7,
    priority: int = 100,
    *,
    ident: int = 1,
    ttl: int = 255,
    src: IPv4Address = MASTER,
    addresses: int = 1,
    options: bool = False,
) -> bytes:
    adv = packet.Advertisement(
        version=3,
        vrid=vrid,
        priority=priority,
        interval_cs=10,
        addresses=tuple(IPv4Address(f"198.51.100.{i}") for i in range(addresses)),
    )
    return ipv4_datagram(
        packet.encode(adv, src, GROUP),
        src,
        GROUP,
        ident=ident,
        ttl=ttl,
        options=b"\x94\x04\x00\x00" if options else b"",  # router alert
    )


def frame(data: bytes) -> bytes:
    return b"\x01\x00\x5e\x00\x00\x12" + b"\x02\x48\x41\x00\x00\x01" + b"\x08\x00" + data


@pytest.fixture
def kernel_filter() -> Iterator[repeatfilter.RepeatFilter]:
    if os.geteuid() != 0:
        pytest.skip("loading an eBPF socket filter needs root")
    # Any socket carries a filter: an unbound UDP one hears nothing and sends nothing.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            f = repeatfilter.RepeatFilter(sock)
        except OSError as exc:
            pytest.skip(f"the kernel refuses the filter: {exc}")
        yield f
        f.close()


def verdict(f: repeatfilter.RepeatFilter, data: bytes) -> int:
    return repeatfilter.run_program(f.program, frame(data))[0]


def test_the_armed_advert_is_dropped_and_noted_whatever_its_ip_id(
    kernel_filter: repeatfilter.RepeatFilter,
) -> None:
    f = kernel_filter
    d = datagram()
    assert verdict(f, d) == len(d)  # not armed: kept whole
    f.arm(d)
    before = time.monotonic_ns()
    assert verdict(f, d) == 0
    assert verdict(f, datagram(ident=4242)) == 0  # another IP ID, so another checksum
    last, count = f.seen(7)
    assert count == 2 and before <= last <= time.monotonic_ns()


@pytest.mark.parametrize(
    "other",
    [
        datagram(priority=0),  # the master steps down
        datagram(priority=101),
        datagram(ttl=254),  # RFC 9568 §7.1: must be dropped by the instance, counted
        datagram(src=IPv4Address("192.0.2.13")),  # another router
        datagram(addresses=2),  # another length
        datagram(vrid=8),  # another VRID, not armed
    ],
    ids=["priority-0", "priority", "ttl", "source", "length", "vrid"],
)
def test_anything_else_is_kept_whole(
    kernel_filter: repeatfilter.RepeatFilter, other: bytes
) -> None:
    kernel_filter.arm(datagram())
    assert verdict(kernel_filter, other) == len(other)
    assert kernel_filter.seen(7)[1] == 0


def test_disarmed_long_and_optioned_adverts_are_kept(
    kernel_filter: repeatfilter.RepeatFilter,
) -> None:
    f = kernel_filter
    f.arm(datagram())
    f.disarm(7)
    assert verdict(f, datagram()) == len(datagram())
    long = datagram(addresses=40)  # over LONGEST: never armed, always read
    assert len(long) > repeatfilter.LONGEST
    f.arm(long)
    assert verdict(f, long) == len(long)
    optioned = datagram(options=True)  # the VRID is not at byte 21: never armed
    f.arm(optioned)
    assert verdict(f, optioned) == len(optioned)
    assert f.seen(7)[1] == 0


def test_the_figures_stay_readable_after_close(
    kernel_filter: repeatfilter.RepeatFilter,
) -> None:
    """A stopping daemon's last status reads its instances after their sockets closed."""
    f = kernel_filter
    f.arm(datagram())
    verdict(f, datagram())
    seen = f.seen(7)
    f.close()
    assert f.seen(7) == seen
    f.disarm(7)  # a step after the close: nothing to take back, and no error
    f.close()


PROBE = """\
import asyncio, json, sys, time
from halo_core.bus import EventBus
from halo_core.config import load, plugins_for
from halo_core.scheduler import LoopClock, new_event_loop
from halo_core.vrrp.engine import VrrpEngine

def snapshot(engine):
    sock = next(iter(engine.transport.sockets.values()))
    counters = [i.counters for i in engine.instances.values()]
    return {
        "filtered": sock.repeats is not None,
        "read": sock.received,
        "accepted": sum(c["adverts_received"] for c in counters),
        "in_kernel": sum(c["repeats_in_kernel"] for c in counters),
        "priority_zero": sum(c["priority_zero_received"] for c in counters),
        "states": sorted({i.state.value for i in engine.instances.values()}),
    }

async def main() -> None:
    path = sys.argv[1]
    config = load(path, plugins_for(path))
    engine = VrrpEngine(config.model, EventBus(), LoopClock())
    engine.start()
    await asyncio.sleep(float(sys.argv[2]))  # the master preempts, then is heard
    first = snapshot(engine)
    await asyncio.sleep(2.0)
    print(json.dumps({"first": first, "second": snapshot(engine)}), flush=True)
    for _ in range(1000):  # the test stops the master: its priority-0 adverts
        if snapshot(engine)["states"] == ["MASTER"]:
            break
        await asyncio.sleep(0.01)
    print(json.dumps({"last": snapshot(engine)}), flush=True)
    engine.stop()

with asyncio.Runner(loop_factory=new_event_loop) as runner:
    runner.run(main())
"""


def config(ipv6: bool, instances: int, interval: float, priority: int) -> str:
    if not ipv6:
        return many_instances_config(instances, interval, priority)
    return "global: {log_format: json}\nvrrp_instances:\n" + "".join(
        f"  VI_{i}:\n    interface: eth0\n    virtual_router_id: {i}\n"
        f"    priority: {priority}\n    version: 3\n    advert_int: {interval:g}\n"
        f'    virtual_ipaddress: ["2001:db8::{100 + i}/128"]\n'
        for i in range(1, instances + 1)
    )


@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
def test_a_backup_counts_its_masters_adverts_without_reading_them(
    lab: LabFactory, tmp_path: Path, ipv6: bool
) -> None:
    instances, interval = 5, 0.05
    net = lab(2, ipv6=ipv6)
    h1, h2 = net.hosts
    master = Halo(h1, config(ipv6, instances, interval, 100), tmp_path, name="m")
    assert wait_until(lambda: master.wait_state("VI_1", "MASTER", 0.1), 15), master.log[-2000:]
    (tmp_path / "backup.yaml").write_text(config(ipv6, instances, interval, 90))
    (tmp_path / "probe.py").write_text(PROBE)
    out = tmp_path / "probe.out"
    probe = h2.spawn(
        sys.executable, str(tmp_path / "probe.py"), str(tmp_path / "backup.yaml"), "1.0", log=out
    )
    assert wait_until(lambda: '"second"' in out.read_text(), 30), out.read_text()
    master.stop()
    assert probe.wait(30) == 0, out.read_text()
    lines = [json.loads(x) for x in out.read_text().splitlines() if x.startswith("{")]
    first, second = lines[0]["first"], lines[0]["second"]
    last = lines[1]["last"]
    if not first["filtered"]:
        pytest.skip("the kernel refuses the filter here: every advert is read")
    assert first["states"] == second["states"] == ["BACKUP"]
    # 2 s of 5 instances at 50 ms: about 200 adverts accepted...
    accepted = second["accepted"] - first["accepted"]
    assert accepted >= 100, lines
    assert second["in_kernel"] - first["in_kernel"] >= accepted - 5, lines
    # ...and almost none read by the process (a first advert of each instance after a step)
    assert second["read"] - first["read"] <= 5, lines
    # The master's stepping down is not a repeat: read, and acted on.
    assert last["states"] == ["MASTER"] and last["priority_zero"] >= instances, lines


class FakeKernel:
    """The filter's side the instance sees (``seen``, ``disarm``), driven by the test as
    the kernel would: repeats counted, the latest one's receive time noted."""

    def __init__(self) -> None:
        self.last_ns, self.count = 0, 0
        self.calls: list[str] = []

    def kernel_drops(self, at: float) -> None:
        self.last_ns, self.count = round(at * 1e9), self.count + 1

    def seen(self, vrid: int) -> tuple[int, int]:
        self.calls.append("seen")
        return self.last_ns, self.count

    def disarm(self, vrid: int) -> None:
        self.calls.append("disarm")


def filtered_backup() -> tuple[Any, packet.Advertisement, FakeKernel]:
    (target,) = [t for t in vrrp_targets() if t.name == "v3/ipv4/backup"]
    runtime = target.runtime
    kernel = FakeKernel()
    runtime._filter, runtime._filter_last, runtime._filter_count = kernel, 0, 0
    runtime.sock.drain = lambda: None  # nothing queued: the kernel kept the repeats
    adv = packet.Advertisement(
        version=3,
        vrid=51,
        priority=200,
        interval_cs=target.exp.interval_cs,
        addresses=target.exp.addresses,
    )
    return runtime, adv, kernel


def test_repeats_counted_in_the_kernel_move_the_timer_and_the_counters() -> None:
    runtime, adv, kernel = filtered_backup()
    assert runtime.on_advert(adv, MASTER, GROUP, 1000.0) is True  # the socket arms it
    interval = adv.interval_cs / 100
    for i in range(1, 4):
        kernel.kernel_drops(1000.0 + i * interval)
    mdi = runtime.machine.master_down_interval
    assert runtime.machine.master_down_timer == pytest.approx(1000.0 + 3 * interval + mdi)
    assert runtime.counters["adverts_received"] == 4
    assert runtime.counters["repeats_in_kernel"] == 3
    # The master falls silent: the instance takes over Master_Down_Interval after the last
    # repeat the kernel noted, not after the last advert it read.
    deadline = runtime.machine.master_down_timer
    runtime.clock.t = deadline - 0.001
    runtime._wake()
    assert runtime.state is fsm.State.BACKUP
    runtime.clock.t = deadline
    runtime._wake()
    assert runtime.state is fsm.State.MASTER


def test_a_step_takes_the_bytes_back_before_it_reads_the_kernel() -> None:
    runtime, adv, kernel = filtered_backup()
    runtime.on_advert(adv, MASTER, GROUP, 1000.0)
    kernel.kernel_drops(1001.0)
    kernel.calls.clear()
    stop = replace(adv, priority=0)  # not a repeat: read, and stepped
    assert runtime.on_advert(stop, MASTER, GROUP, 1001.5) is False
    # Taken back first, so that no repeat is dropped unseen between the read and the step.
    assert kernel.calls[0] == "disarm" and "seen" in kernel.calls
    assert runtime.counters["adverts_received"] == 3  # the kernel's repeat counted, in order
    assert runtime.machine.master_down_timer == pytest.approx(1001.5 + runtime.machine.skew_time)
