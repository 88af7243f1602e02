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

What happens *while* the fault lasts is judged too (#16), from the fault's start to the end
of the observation, against what an experienced keepalived operator expects of the
protocol's timing:

- **gap** (above) at most the fault's bound (a failing cell says when it began, and for
  how long the client itself sent nothing in it: a client not scheduled on a busy machine);
- **takeovers**: how many times a router took mastership from the other, on the wire. The
  adverts (priority > 0) of each router form runs (no silence over 1.5 intervals); a run
  that starts while, or after, the other router was master is a takeover. It makes its
  router the master if it outlasts the master's run; if it ends first it was a second
  master for a while (next point). The capture is on the switch, before any loss or filter:
  it sees what each router sent;
- **two masters**: the longest time both routers' runs overlap; at most 1.5 intervals
  (the moment a master takes an advert of higher priority to step down) except where the
  fault makes it unavoidable.

Notation: I the advert interval (1 s in VRRPv2, 0.1 s in VRRPv3), Skew_b and MDI_b b's
Skew_Time and Master_Down_Interval (3 I + Skew_b, priority 90; ``Proto``), D how long a
fault holds (``hold``: 2 MDI_b, at least 1 s), m the margin (``Timing.margin``: 0.15 s in
the bench, more in CI) for scheduling on a shared 2-core machine, a new TCP connection and
the client's ARP update. Three kinds of gap bound:

- *takeover*: MDI_b + I + m. The master goes silent: b waits out its Master_Down_Interval
  after the last advert it heard (up to I before the fault), then takes the VIP and sends
  gratuitous ARPs;
- *hand-over*: max(Skew_b, I) + m. The other router announces itself first: a priority-0
  advert makes b master after Skew_b; a higher-priority advert sends the other to backup
  at once, and the new master's gratuitous ARPs go with its first adverts;
- *quiet*: 5 client intervals (0.1 s) + m. Nothing that serves the VIP changes.

Fault → what happens (what the operator expects) → gap bound; takeovers; two masters:

- **kill9**: a is gone (cable out, SIGKILL); b takes over after MDI_b → takeover; 1; 1.5 I.
- **sigstop**: a's VRRP processes freeze, but its kernel keeps the VIP and its web server
  answers; b takes over after MDI_b (both answer); on SIGCONT a's advert (100) sends b back
  at once → hand-over; 2; 1.5 I.
- **link-down-a**: a loses carrier and leaves (FAULT); b takes over after MDI_b; back up, a
  preempts b → takeover; 2; 1.5 I.
- **link-down-b**: b loses carrier, unseen; back up, it hears a (100) and stays backup →
  quiet; 0; 1.5 I.
- **partition**: neither hears the other: b becomes a second master after MDI_b, both hold
  the VIP and answer (unavoidable); healed, b hears a (100) and steps down → hand-over; 1
  (b's claim); D + 1.5 I.
- **loss30**: b's timer runs out when 3 adverts in a row are lost (0.3³ after each one it
  hears) and b claims mastership; a answers b's lower-priority advert at once and b steps
  down when one of a's adverts gets through → hand-over; E = 0.7 × 0.3³ × adverts sent
  claims are expected (57 in 300 s at 0.1 s; the bench measured 51 and 59): at most E +
  4√E + 2 (four standard deviations of a Poisson count, and two), at least 1 when E > 10
  (none at all has odds under e⁻¹⁰); two masters not judged: each claim lasts until one
  of a's adverts gets through (0.3ᵏ for k intervals), and over dozens of claims some last
  several intervals.
- **flapping-check**: a's priority goes 100 → 80 → 100 each second; b (90, preempting)
  learns it only from a's adverts and takes over when those at 80 outlast MDI_b since the
  last one at 100; a takes back when its check is up again → hand-over; 0 to 2 × flaps. In
  VRRPv3 (0.1 s) each 0.5 s down outlasts MDI_b ≈ 0.37 s by less than the check's detection
  and an interval: either outcome is right (the bench sees 2 × flaps). In VRRPv2 the flap
  period equals the 1 s interval, so a's adverts land all in the up half (nothing happens)
  or all in the down half: then b takes over after MDI_b, a takes back the moment it hears
  b while up, and so on (the bench saw 0 with halo as b, 3 with keepalived as b, both by
  the RFC); 1.5 I.
- **vip-taken**, **vip-dev-gone**: a stops gracefully (priority 0), b takes over after
  Skew_b although one of its addresses fails → hand-over; 1; 1.5 I.
- **hup-storm**: reloads of the master change nothing it serves → quiet; 0; 1.5 I.
- **restart**: a stops gracefully (b takes over after Skew_b), starts again as backup and
  preempts b after its Master_Down_Interval → hand-over; 2; 1.5 I.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
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
    margin: float = 0.15  # added to every gap bound (see the module doc)


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

    @property
    def hold(self) -> float:
        return hold(self.proto)


def hold(proto: Proto) -> float:
    """How long a freeze, an unplugged cable or a partition lasts: twice b's
    Master_Down_Interval (so b takes over in the middle), at least a second."""
    return max(2 * proto.master_down(90), 1.0)


@dataclass(frozen=True)
class Expect:
    """What a fault should cause while it lasts (see the table in the module doc)."""

    gap: float  # the client's longest gap, seconds
    takeovers: tuple[int, int]  # changes of hands on the wire, at least and at most
    overlap: float | None  # two masters at once, seconds; None: not judged
    why: str


FLAP_HALF = 0.5  # seconds the flapping check spends down, then up


def expect(fault: str, proto: Proto, timing: Timing) -> Expect:
    """The bounds of *fault* under *proto* (the module doc's table, in code)."""
    i, m = proto.interval, timing.margin
    takeover = proto.master_down(90) + i + m
    handover = max(proto.skew(90), i) + m
    quiet = 5 * CLIENT_INTERVAL + m
    step_down = 1.5 * i
    match fault:
        case "kill9":
            return Expect(takeover, (1, 1), step_down, "b takes over after MDI_b")
        case "sigstop":
            return Expect(handover, (2, 2), step_down, "b takes over, a's advert sends it back")
        case "link-down-a":
            return Expect(takeover, (2, 2), step_down, "b takes over, a preempts it back")
        case "link-down-b":
            return Expect(quiet, (0, 0), step_down, "the backup is away")
        case "partition":
            return Expect(handover, (1, 1), hold(proto) + step_down, "b is a second master")
        case "loss30":
            e = 0.7 * 0.3**3 * timing.loss_seconds / i
            most = math.ceil(e + 4 * math.sqrt(e) + 2)
            least = 1 if e > 10 else 0
            return Expect(handover, (least, most), None, f"about {e:.0f} claims by b expected")
        case "flapping-check":
            return Expect(handover, (0, 2 * timing.flaps), step_down, "b may take over")
        case "vip-taken" | "vip-dev-gone":
            return Expect(handover, (1, 1), step_down, "a stops, b takes over after Skew_b")
        case "hup-storm":
            return Expect(quiet, (0, 0), step_down, "reloads change nothing served")
        case "restart":
            return Expect(handover, (2, 2), step_down, "b takes over, a2 preempts it back")
    raise ValueError(f"no expectation for fault {fault!r}")


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
    # during the fault (see the module doc)
    gap_bound: float = float("nan")
    gap_at: float = float("nan")  # when the longest gap began, seconds after the fault's start
    gap_client_idle: float = 0.0  # the longest time in the gap the client sent no request
    fault_seconds: float = float("nan")  # from the fault's start to its end
    takeovers: int = -1
    takeovers_expected: tuple[int, int] = (0, 0)
    expected_why: str = ""  # what the fault should cause, in a few words
    overlap: float = float("nan")
    overlap_bound: float | None = None  # None: not judged

    @property
    def during_ok(self) -> bool:
        """The checks of what happened while the fault lasted."""
        lo, hi = self.takeovers_expected
        return (
            self.gap <= self.gap_bound
            and lo <= self.takeovers <= hi
            and (self.overlap_bound is None or self.overlap <= self.overlap_bound)
        )

    @property
    def passed(self) -> bool:
        return (
            self.error is None
            and self.settle <= self.interval
            and self.one_master
            and self.final_master == self.expected_master
            and self.nothing_left
            and self.tracebacks == 0
            and self.during_ok
        )

    def row(self) -> str:
        garp = {True: "yes", False: "NO", None: "-"}[self.last_garp_from_master]
        verdict = "pass" if self.passed else "FAIL"
        lo, hi = self.takeovers_expected
        expected = f"{lo}" if lo == hi else f"{lo}-{hi}"
        two = "-" if self.overlap_bound is None else f"{self.overlap_bound * 1000:.0f}"
        why = []
        if self.error:
            why.append(self.error)
        if not self.gap <= self.gap_bound:
            why.append(
                f"gap over {self.gap_bound * 1000:.0f} ms, from {self.gap_at:.2f} s into"
                f" the fault (which lasted {self.fault_seconds:.2f} s)"
                + (
                    f", the client sending nothing for {self.gap_client_idle * 1000:.0f} ms of it"
                    if self.gap_client_idle > 5 * CLIENT_INTERVAL
                    else ""
                )
            )
        if not lo <= self.takeovers <= hi:
            why.append(f"{self.takeovers} takeovers, expected {expected} ({self.expected_why})")
        if self.overlap_bound is not None and not self.overlap <= self.overlap_bound:
            why.append(f"two masters for {self.overlap * 1000:.0f} ms")
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
            f"{self.gap * 1000:>6.0f} {self.gap_bound * 1000:>6.0f} "
            f"{self.takeovers:>4} {expected:>6} "
            f"{self.overlap * 1000:>6.0f} {two:>6} {self.settle * 1000:>9.0f} "
            f"{self.final_master:>6} {garp:>5} {verdict:>5}  {extra}"
        )


HEADER = (
    f"{'fault':<14} {'pair':<16} {'ver':<3} {'gap ms':>6} {'≤ ms':>6} "
    f"{'tko':>4} {'exp':>6} {'2M ms':>6} {'≤ ms':>6} {'settle ms':>9} "
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
    time.sleep(t.hold)
    _signal(node, signal.SIGCONT)
    return time.time(), "a"


def _unplug(host: str) -> Fault:
    def fault(t: Trial) -> tuple[float, str]:
        target = t.a if host == "a" else t.b
        with t.lab.unplug(target):
            time.sleep(t.hold)
        return time.time(), "a"

    fault.__doc__ = f"{host}'s link goes down (switch port), then up again."
    return fault


def partition(t: Trial) -> tuple[float, str]:
    """No VRRP between the two routers (a bridge filter in the switch), then healed."""
    with t.lab.partition(t.a, proto=112):
        time.sleep(t.hold)
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
        time.sleep(FLAP_HALF)
        t.flag.touch()
        time.sleep(FLAP_HALF)
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


def advert_runs(adverts: list[tuple[float, str]], limit: float) -> list[tuple[float, float, str]]:
    """Each router's adverts (time, source) as runs (first, last, source): no silence over
    *limit* within a run. Sorted by their first advert."""
    runs: dict[str, list[tuple[float, float]]] = {}
    for t, src in sorted(adverts):
        spans = runs.setdefault(src, [])
        if spans and t - spans[-1][1] <= limit:
            spans[-1] = (spans[-1][0], t)
        else:
            spans.append((t, t))
    return sorted((t0, t1, src) for src, spans in runs.items() for t0, t1 in spans)


def _overlaps(
    runs: list[tuple[float, float, str]],
) -> list[tuple[float, float]]:
    """The spans (from, to) where runs of two different routers overlap."""
    out = []
    for (a0, a1, s1), (b0, b1, s2) in itertools.combinations(runs, 2):
        lo, hi = max(a0, b0), min(a1, b1)
        if s1 != s2 and lo < hi:
            out.append((lo, hi))
    return out


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
    for _, hi in _overlaps(advert_runs(live, limit)):
        bad_until = max(bad_until, hi)
    return max(0.0, bad_until - fault_end)


def takeovers(adverts: list[tuple[float, str]], since: float, interval: float) -> int:
    """How many times after *since* a router took mastership from the other: a run of its
    adverts starting while, or after, the other was master. One that outlasts the master's
    run makes it the master; one that ends first was a second master for a while."""
    runs = advert_runs(adverts, 1.5 * interval)
    before = [r for r in runs if r[0] < since]
    master, master_end = (None, -math.inf)
    if before:
        _, master_end, master = max(before, key=lambda r: r[1])
    count = 0
    for t0, t1, src in runs:
        if t0 < since:
            continue
        if src == master:
            master_end = max(master_end, t1)
            continue
        count += master is not None
        if t1 > master_end:
            master, master_end = src, t1
    return count


def two_masters(adverts: list[tuple[float, str]], since: float, interval: float) -> float:
    """The longest time after *since* both routers were sending adverts (runs overlapping)."""
    spans = _overlaps(advert_runs(adverts, 1.5 * interval))
    return max((hi - max(lo, since) for lo, hi in spans if hi > since), default=0.0)


def _client_records(client_log: Path) -> list[dict[str, float | bool]]:
    records = []
    with contextlib.suppress(FileNotFoundError):
        for line in client_log.read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                rec = json.loads(line)
                records.append({"t": float(rec["t"]), "done": float(rec["done"]), "ok": rec["ok"]})
    return records


def longest_gap(client_log: Path, since: float, until: float) -> tuple[float, float]:
    """The longest time without an answer between *since* and *until*, and when it began."""
    answers = sorted(
        float(r["done"])
        for r in _client_records(client_log)
        if r["ok"] and since <= r["done"] <= until
    )
    if not answers:
        return until - since, since
    points = [since, *answers, until]
    return max((t1 - t0, t0) for t0, t1 in itertools.pairwise(points))


def client_idle(client_log: Path, since: float, until: float) -> float:
    """The longest time between *since* and *until* in which the client started no request:
    a gap the client itself was not scheduled for is not the service's."""
    starts = sorted(float(r["t"]) for r in _client_records(client_log) if since <= r["t"] <= until)
    points = [since, *starts, until]
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
    result.gap, gap_start = longest_gap(client_log, fault_start, end)
    result.gap_at = gap_start - fault_start
    result.gap_client_idle = client_idle(client_log, gap_start, gap_start + result.gap)
    result.fault_seconds = fault_end - fault_start
    bounds = expect(fault_name, proto, timing)
    result.gap_bound = bounds.gap
    result.takeovers = takeovers(live, fault_start, proto.interval)
    result.takeovers_expected = bounds.takeovers
    result.expected_why = bounds.why
    result.overlap = two_masters(live, fault_start, proto.interval)
    result.overlap_bound = bounds.overlap
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
