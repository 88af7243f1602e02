"""Stale ARP after a split brain heals: the trial shared by ``test_stale_arp.py`` (a few
trials in CI) and ``bench/stale_arp/run.py`` (the long run).

Three hosts on the lab's bridge: the master (h1, priority 100), the backup (h2, 90) and an
observer (h3) that has the VIP in its neighbour table. One trial: VRRP (IP protocol 112) is
dropped at the master's switch port, so the backup becomes MASTER too and announces the VIP
from its MAC; ARP still passes, as it does when a firewall or a multicast problem splits
VRRP. At a random point the filter goes. The backup steps down on the master's next advert;
if that comes before the backup's own (the race), the master hears nothing and, without
halo's claim answers, never announces again. After the heal settles, the trial reads the
capture on the bridge: the last gratuitous ARP for the VIP must come from the master's MAC
(else the trial is *stale*), and the observer's neighbour entry must point at it.

The ``freeze`` fault is the other way to a split brain that ends: the master's processes
are stopped (SIGSTOP) until the backup has taken over, then continued (SIGCONT).
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from vrrp_peers import V3_IPV4, HaloNode, KeepalivedNode, Node, Spec, Wire, start_node

from halo_tool_lab.capture import arp_packets
from halo_tool_lab.netns import Lab, Proc

MASTER_PRIO, BACKUP_PRIO = 100, 90
PROTO = V3_IPV4  # VRRPv3 at 0.1 s
VIP = IPv4Address(PROTO.vip.split("/")[0])
SETTLE = 1.0  # seconds after the backup stepped down before the wire is judged
START_TIMEOUT = 15.0
FAULTS = ("partition", "freeze")


def _proc(node: Node) -> Proc:
    if isinstance(node, HaloNode):
        return node.halo.proc
    assert isinstance(node, KeepalivedNode)
    return node.ka.proc


class TrialError(RuntimeError):
    """A trial that could not be run as designed (a node that did not change state)."""


@dataclass
class Outcome:
    pair: str  # "master->backup"
    fault: str  # "partition" or "freeze"
    trial: int
    stale: bool  # the last gratuitous ARP for the VIP is not the master's
    silent: bool  # the backup sent no advert after the heal: the race happened
    last_garp_from: str  # "master", "backup" or "nobody"
    answer_delay: float | None  # backup's last GARP -> master's next, seconds
    observer_mac: str | None  # the observer's neighbour entry for the VIP after settling


class StaleArpLab:
    """A lab with a master, a backup and an observer; :meth:`trial` runs one heal."""

    def __init__(self, lab: Lab, master_impl: str, backup_impl: str, workdir: Path) -> None:
        self.lab = lab
        self.pair = f"{master_impl}->{backup_impl}"
        self.master_host, self.backup_host, self.observer = lab.hosts[:3]
        self.capture = lab.capture(
            workdir / f"heal-{master_impl}-{backup_impl}.pcap", filter="vrrp,arp"
        )
        self.wire = Wire(self.capture)
        self.backup: Node = start_node(
            backup_impl,
            self.backup_host,
            PROTO,
            Spec(BACKUP_PRIO),
            workdir,
            f"backup-{backup_impl}",
        )
        if not self.backup.wait_state("MASTER", PROTO.master_down(BACKUP_PRIO) + START_TIMEOUT):
            raise TrialError(f"{self.backup} never became MASTER alone\n{self.backup.tail()}")
        self.master: Node = start_node(
            master_impl,
            self.master_host,
            PROTO,
            Spec(MASTER_PRIO, "MASTER"),
            workdir,
            f"master-{master_impl}",
        )
        if not self.master.wait_state("MASTER", START_TIMEOUT):
            raise TrialError(f"{self.master} never became MASTER\n{self.master.tail()}")
        if not self.backup.wait_state("BACKUP", 5.0):
            raise TrialError(f"{self.backup} did not step down\n{self.backup.tail()}")
        # The observer learns the VIP (at the master's MAC) as any client would.
        self.observer.ping(VIP, count=2)
        self.trials = 0

    @contextmanager
    def _fault(self, fault: str) -> Iterator[None]:
        if fault == "partition":
            with self.lab.partition(self.master_host, proto=112):
                yield
            return
        proc = _proc(self.master)
        proc.kill_group(signal.SIGSTOP)
        try:
            yield
        finally:
            proc.kill_group(signal.SIGCONT)

    def trial(self, fault: str = "partition") -> Outcome:
        self.trials += 1
        n = self.trials
        started = time.time()
        masters_before = self.backup.states().count("MASTER")
        backups_before = self.backup.states().count("BACKUP")
        with self._fault(fault):
            if not self.backup.wait_state("MASTER", 5.0, count=masters_before + 1):
                raise TrialError(
                    f"trial {n}: {self.backup} did not take over\n{self.backup.tail()}"
                )
            # Both are MASTER now; the backup has announced the VIP from its MAC.
            time.sleep(random.uniform(0.3, 1.0) + random.uniform(0, PROTO.interval))
        healed = time.time()
        if not self.backup.wait_state("BACKUP", 5.0, count=backups_before + 1):
            raise TrialError(f"trial {n}: {self.backup} did not step down\n{self.backup.tail()}")
        time.sleep(SETTLE)
        master_mac = self.master_host.mac
        backup_mac = self.backup_host.mac
        garps = [
            a
            for a in arp_packets(self.capture.frames())
            if a.time > started and a.sender_ip == VIP and a.gratuitous
        ]
        last = garps[-1] if garps else None
        last_from = (
            "nobody"
            if last is None
            else "master"
            if last.sender_mac == master_mac
            else "backup"
            if last.sender_mac == backup_mac
            else last.sender_mac
        )
        backup_last = max((a.time for a in garps if a.sender_mac == backup_mac), default=None)
        answer = None
        if backup_last is not None:
            after = [a.time for a in garps if a.sender_mac == master_mac and a.time > backup_last]
            answer = after[0] - backup_last if after else None
        silent = not self.wire.sent_by(self.backup.source, after=healed + 0.001)
        neigh = self.observer.ip_json("neigh", "show", str(VIP))
        observer_mac = neigh[0].get("lladdr") if neigh else None
        return Outcome(
            self.pair, fault, n, last_from != "master", silent, last_from, answer, observer_mac
        )

    def close(self) -> None:
        for node in (self.master, self.backup):
            if node.running:
                node.kill9()
        self.capture.stop()
