"""The fault matrix on the wire (#15 §4): one fault, one pair, one protocol per trial.

Shared by ``tests/interop/test_fault_matrix.py`` (a shortened set) and ``bench/faults``
(the whole table). Built on :mod:`vrrp_peers` (nodes, configurations, the wire) and
:mod:`halo_tool_lab` (the lab, its impairments, the demo web server and client).

A trial: hosts ``a`` (priority 100, the master), ``b`` (priority 90) and ``client`` on one
segment; a web server on a and b; the client asks the VIP every 20 ms. The fault is applied
and ends at a time the fault itself defines (SIGCONT, the link back up, the partition
healed, the last reload...; for a kill, the backup's Master_Down_Interval after it). Then:

- **gap**: the longest time the client went without an answer, from the fault on;
- **settle**: from the fault's end to the last moment with two masters (both sending
  adverts, each within 1.5 advert intervals of its previous one) or none (no advert for 1.5
  intervals); passing needs it within one advert interval;
- **one master**: the VIP is on exactly one live host at the end, the final master's;
- **nothing left**: after a graceful stop of every node still running, no VIP remains;
- **no traceback** in any halo log;
- **last GARP**: the last gratuitous ARP for the VIP came from the final master's MAC
  (recorded, not part of the verdict: #15 §5 is another branch's fix).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from vrrp_peers import V2_PASS, V3_IPV4, HaloNode, KeepalivedNode, Node, Proto, Spec, Wire

from halo_tool_lab.capture import arp_packets, read_pcap
from halo_tool_lab.netns import Host, Lab, wait_until

PORT = 8080
CLIENT_INTERVAL = 0.02
PROTOS = {"v2": V2_PASS, "v3": V3_IPV4}
PAIRS = ("halo-halo", "halo-keepalived", "keepalived-halo")


@dataclass
class Timing:
    """How long the slow faults last: the bench's values by default, CI shortens them."""

    loss_seconds: float = 300.0
    storm_reloads: int = 100
    storm_seconds: float = 10.0
    flaps: int = 10


@dataclass
class Trial:
    """What one fault needs while it runs."""

    lab: Lab
    proto: Proto
    workdir: Path
    a: Host
    b: Host
    nodes: dict[str, Node]
    timing: Timing
    notes: list[str] = field(default_factory=list)
    dead: set[str] = field(default_factory=set)  # hosts left dead by the fault (no cleanup check)
    flag: Path | None = None  # the flapping check's file
    foreign: str | None = None  # an address put on b by someone else: it must stay

    def start(self, impl: str, host: Host, spec: Spec, name: str) -> Node:
        cls = HaloNode if impl == "halo" else KeepalivedNode
        node = cls(host, self.proto, spec, self.workdir, name)
        self.nodes[name] = node
        return node

    def master_down(self, priority: int) -> float:
        return self.proto.master_down(priority)


@dataclass
class Result:
    fault: str
    pair: str
    version: str
    gap: float = float("nan")
    settle: float = float("nan")
    final_master: str = "?"
    expected_master: str = "?"
    one_master: bool = False
    nothing_left: bool = False
    tracebacks: int = 0
    last_garp_from_master: bool | None = None
    interval: float = 0.0
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return (
            self.error is None
            and self.settle <= self.interval
            and self.one_master
            and self.final_master == self.expected_master
            and self.nothing_left
            and self.tracebacks == 0
        )

    def row(self) -> str:
        garp = {True: "yes", False: "NO", None: "-"}[self.last_garp_from_master]
        verdict = "pass" if self.passed else "FAIL"
        why = []
        if self.error:
            why.append(self.error)
        if self.settle > self.interval:
            why.append("settle")
        if not self.one_master:
            why.append("VIP not on exactly one host")
        if self.final_master != self.expected_master:
            why.append(f"master {self.final_master}, expected {self.expected_master}")
        if not self.nothing_left:
            why.append("address left behind")
        if self.tracebacks:
            why.append(f"{self.tracebacks} tracebacks")
        extra = "; ".join(why + self.notes)
        return (
            f"{self.fault:<14} {self.pair:<16} {self.version:<3} "
            f"{self.gap * 1000:>9.0f} {self.settle * 1000:>9.0f} "
            f"{self.final_master:>6} {garp:>5} {verdict:>5}  {extra}"
        )


HEADER = (
    f"{'fault':<14} {'pair':<16} {'ver':<3} {'gap ms':>9} {'settle ms':>9} "
    f"{'master':>6} {'GARP':>5} {'result':>5}  notes"
)


# ---------------------------------------------------------------------------------------------
# process control for either implementation


def _pids(node: Node) -> list[int]:
    if isinstance(node, KeepalivedNode):
        return node.ka.pids()
    assert isinstance(node, HaloNode)
    return [node.halo.proc.pid]


def _signal(node: Node, sig: int) -> None:
    for pid in _pids(node):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _reload(node: Node) -> None:
    """SIGHUP to the daemon (keepalived's parent passes it on to its children)."""
    pid = node.ka.pid if isinstance(node, KeepalivedNode) else _pids(node)[0]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGHUP)


def _masters(node: Node) -> int:
    return node.states().count("MASTER")


# ---------------------------------------------------------------------------------------------
# the faults: each returns (the time it ended, the expected final master's host name)

Fault = Callable[[Trial], tuple[float, str]]


def kill9(t: Trial) -> tuple[float, str]:
    """The master's machine dies: cable out and every VRRP process SIGKILLed at once (kill
    -9 alone leaves its VIP and web server answering)."""
    killed = time.time()
    t.lab.unplug(t.a)
    t.nodes["a"].kill9()
    t.dead.add("a")
    return killed + t.master_down(90), "b"


def sigstop(t: Trial) -> tuple[float, str]:
    """The master freezes for twice the backup's Master_Down_Interval, then runs on."""
    node = t.nodes["a"]
    _signal(node, signal.SIGSTOP)
    time.sleep(max(2 * t.master_down(90), 1.0))
    _signal(node, signal.SIGCONT)
    return time.time(), "a"


def _unplug(host: str) -> Fault:
    def fault(t: Trial) -> tuple[float, str]:
        target = t.a if host == "a" else t.b
        with t.lab.unplug(target):
            time.sleep(max(2 * t.master_down(90), 1.0))
        return time.time(), "a"

    fault.__doc__ = f"{host}'s link goes down (switch port), then up again."
    return fault


def partition(t: Trial) -> tuple[float, str]:
    """No VRRP between the two routers (a bridge filter in the switch), then healed."""
    with t.lab.partition(t.a, proto=112):
        time.sleep(max(2 * t.master_down(90), 1.0))
    return time.time(), "a"


def loss30(t: Trial) -> tuple[float, str]:
    """30 % of the adverts dropped on the bridge (nftables numgen random)."""
    before = _masters(t.nodes["b"])
    with t.lab.loss(30, proto=112):
        time.sleep(t.timing.loss_seconds)
    takeovers = _masters(t.nodes["b"]) - before
    t.notes.append(f"{takeovers} takeovers by b during the loss")
    return time.time(), "a"


def flapping_check(t: Trial) -> tuple[float, str]:
    """a's tracked check (weight -20: 100 -> 80, under b's 90) flaps, then stays up."""
    assert t.flag is not None
    for _ in range(t.timing.flaps):
        t.flag.unlink(missing_ok=True)
        time.sleep(0.5)
        t.flag.touch()
        time.sleep(0.5)
    return time.time(), "a"


def vip_taken(t: Trial) -> tuple[float, str]:
    """Adding the VIP fails with EEXIST: b already holds it (put there by someone else)
    when a stops gracefully and b takes over. b must hold it, and leave it on its stop."""
    t.b.ip("addr", "add", str(t.proto.vip), "dev", "eth0")
    t.foreign = str(t.proto.vip)
    t.nodes["a"].stop()
    stopped = time.time()
    return stopped, "b"


def vip_dev_gone(t: Trial) -> tuple[float, str]:
    """Adding a VIP fails with ENODEV: b's second VIP names an interface that does not
    exist (b was started so) when a stops gracefully and b takes over."""
    t.nodes["a"].stop()
    return time.time(), "b"


def hup_storm(t: Trial) -> tuple[float, str]:
    """Reloads without end on the master: SIGHUP every storm_seconds/storm_reloads."""
    node = t.nodes["a"]
    before = _masters(t.nodes["b"])
    pause = t.timing.storm_seconds / t.timing.storm_reloads
    for _ in range(t.timing.storm_reloads):
        _reload(node)
        time.sleep(pause)
    takeovers = _masters(t.nodes["b"]) - before
    if takeovers:
        t.notes.append(f"{takeovers} takeovers by b during the storm")
    return time.time(), "a"


def restart(t: Trial) -> tuple[float, str]:
    """The master's daemon restarts (graceful stop, start again) and takes the VIP back."""
    old = t.nodes["a"]
    old.stop()
    impl = "halo" if isinstance(old, HaloNode) else "keepalived"
    new = t.start(impl, t.a, old.spec, "a2")
    if not new.wait_state("MASTER", 10 * t.master_down(100) + 10):
        t.notes.append("the restarted node never became master")
    t.nodes["a"] = new
    t.nodes["a-before-restart"] = old
    return time.time(), "a"


FAULTS: dict[str, Fault] = {
    "kill9": kill9,
    "sigstop": sigstop,
    "link-down-a": _unplug("a"),
    "link-down-b": _unplug("b"),
    "partition": partition,
    "loss30": loss30,
    "flapping-check": flapping_check,
    "vip-taken": vip_taken,
    "vip-dev-gone": vip_dev_gone,
    "hup-storm": hup_storm,
    "restart": restart,
}
HALO_A_ONLY = {"flapping-check", "hup-storm"}  # halo features on the master's side
HALO_B_ONLY = {"vip-dev-gone"}  # a halo configuration on the backup's side
# b's extra VIP makes the address lists differ: VRRPv2 drops such adverts from a non-owner
# (RFC 3768 §7.1), so b would be master from the start
V3_ONLY = {"vip-dev-gone"}


# ---------------------------------------------------------------------------------------------
# measuring


def settle_time(
    adverts: list[tuple[float, str]], fault_end: float, end: float, interval: float
) -> float:
    """From *fault_end* to the last moment with two masters or none (see the module doc);
    inf when nobody is advertising at *end*."""
    limit = 1.5 * interval
    live = sorted(a for a in adverts if a[0] >= fault_end - limit)
    if not live or live[-1][0] < end - limit:
        return float("inf")
    bad_until = fault_end
    # none: a silence longer than 1.5 intervals
    for (t0, _), (t1, _) in itertools.pairwise(live):
        if t1 - t0 > limit and t1 > fault_end:
            bad_until = max(bad_until, t1)
    # two: runs of one source overlapping a run of the other
    runs: dict[str, list[tuple[float, float]]] = {}
    for t, src in live:
        spans = runs.setdefault(src, [])
        if spans and t - spans[-1][1] <= limit:
            spans[-1] = (spans[-1][0], t)
        else:
            spans.append((t, t))
    sources = list(runs)
    for i, s1 in enumerate(sources):
        for s2 in sources[i + 1 :]:
            for a0, a1 in runs[s1]:
                for b0, b1 in runs[s2]:
                    lo, hi = max(a0, b0), min(a1, b1)
                    if lo < hi:
                        bad_until = max(bad_until, hi)
    return max(0.0, bad_until - fault_end)


def longest_gap(client_log: Path, since: float, until: float) -> float:
    answers = []
    with contextlib.suppress(FileNotFoundError):
        for line in client_log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if rec["ok"]:
                    answers.append(float(rec["done"]))
    answers = sorted(a for a in answers if since <= a <= until)
    if not answers:
        return until - since
    points = [since, *answers, until]
    return max(t1 - t0 for t0, t1 in itertools.pairwise(points))


def run_trial(
    fault_name: str, pair: str, version: str, workdir: Path, timing: Timing | None = None
) -> Result:
    """One trial; never raises for what it measures (an error is in ``Result.error``)."""
    proto = PROTOS[version]
    timing = timing or Timing()
    impl_a, impl_b = pair.split("-")
    result = Result(fault_name, pair, version, interval=proto.interval)
    workdir.mkdir(parents=True, exist_ok=True)
    flag_dir = Path(tempfile.mkdtemp(prefix="halo-faults-"))
    flag_dir.chmod(0o755)  # a check may run as an unprivileged user
    try:
        with Lab(["a", "b", "client"], ipv6=False) as lab:
            _trial(lab, fault_name, impl_a, impl_b, proto, workdir, timing, flag_dir, result)
    except Exception as exc:  # a broken trial is a failed cell with the reason, not a crash
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        for p in flag_dir.iterdir():
            p.unlink()
        flag_dir.rmdir()
    return result


def _trial(
    lab: Lab,
    fault_name: str,
    impl_a: str,
    impl_b: str,
    proto: Proto,
    workdir: Path,
    timing: Timing,
    flag_dir: Path,
    result: Result,
) -> None:
    a, b, client = (lab.host(n) for n in ("a", "b", "client"))
    for h in (a, b):
        h.spawn(sys.executable, "-m", "halo_tool_lab.demo", "serve", h.name, "--port", str(PORT))
    pcap = workdir / "wire.pcap"
    capture = lab.capture(pcap, filter="arp,vrrp")
    wire = Wire(capture)
    t = Trial(lab, proto, workdir, a, b, {}, timing)
    spec_a = Spec(100)
    if fault_name == "flapping-check":
        t.flag = flag_dir / "up"
        t.flag.touch()
        spec_a = Spec(
            100,
            halo_track=(("flag", -20),),
            halo_checks=(
                f"flag: {{type: script, script: '/usr/bin/test -e {t.flag}', interval: 0.1,"
                " timeout: 1, rise: 1, fall: 1}"
            ),
        )
    t.start(impl_a, a, spec_a, "a")
    if not wait_until(lambda: a.has_address(proto.vip_address), 20):
        raise RuntimeError("a never became master")
    spec_b = Spec(90)
    if fault_name == "vip-dev-gone":
        spec_b = Spec(90, halo_vips=("192.0.2.101/24 dev gone0",))
    node_b = t.start(impl_b, b, spec_b, "b")
    if not node_b.wait_state("BACKUP", 20):
        raise RuntimeError("b never became backup")
    time.sleep(3 * proto.interval + 0.3)
    client_log = workdir / "client.jsonl"
    client_log.unlink(missing_ok=True)
    client_proc = client.spawn(
        sys.executable, "-m", "halo_tool_lab.demo", "client", str(proto.vip_address),
        "--port", str(PORT), "--interval", str(CLIENT_INTERVAL), "--duration", "3600",
        "--out", str(client_log),
    )  # fmt: skip
    time.sleep(0.5)
    fault_start = time.time()
    fault_end, expected = FAULTS[fault_name](t)
    result.expected_master = expected
    # Observe long enough for a preempting master to take over and for a few adverts after.
    time.sleep(max(t.master_down(100) + 10 * proto.interval, 1.5))
    wait_until(lambda: client_log.exists(), 2)
    end = time.time()
    client_proc.kill_group(signal.SIGTERM)
    src_name = {a.ipv4: "a", b.ipv4: "b"}
    live = [
        (ad.time, src_name.get(ad.src, str(ad.src)))
        for ad in wire.adverts()
        if ad.priority > 0 and ad.time <= end
    ]
    result.settle = settle_time(live, fault_end, end, proto.interval)
    result.final_master = live[-1][1] if live else "-"
    result.gap = longest_gap(client_log, fault_start, end)
    holders = [h.name for h in (a, b) if h.name not in t.dead and h.has_address(proto.vip_address)]
    result.one_master = holders == [result.final_master]
    vip = IPv4Address(str(proto.vip_address))
    capture.stop()
    garps = [p for p in arp_packets(read_pcap(pcap)) if p.gratuitous and p.sender_ip == vip]
    host_of_mac = {a.mac: "a", b.mac: "b"}
    if garps:
        result.last_garp_from_master = host_of_mac.get(garps[-1].src_mac) == result.final_master
    # Graceful stops: nothing may stay configured (a dead host keeps what it had).
    for node in t.nodes.values():
        if node.running:
            node.stop()
    for h in (a, b):
        if h.name in t.dead:
            continue
        configured = [str(x.interface) for x in h.addresses("eth0") if x.ip == vip]
        if h is b and t.foreign is not None:
            if t.foreign in configured:
                configured.remove(t.foreign)
            else:  # not "left behind", but worth knowing (keepalived does this)
                result.notes.append(f"b removed {t.foreign}, which it had not added")
        if configured:
            result.nothing_left = False
            result.notes.append(f"{h.name} kept {', '.join(configured)}")
            break
    else:
        result.nothing_left = True
    result.tracebacks = sum(
        n.log.count("Traceback") for n in t.nodes.values() if isinstance(n, HaloNode)
    )
    result.notes += t.notes
