"""VRRP peers in a lab - halo or the real keepalived - and what they put on the wire.

Shared by the interop tests (``tests/interop``) and the failover benchmark
(``bench/failover/run.py``). Only :mod:`halo_tool_lab` and the standard library are used (and
:mod:`halo_tool_convert` with yaml for ``Spec(strict=True)``, imported there), so this module
could move into :mod:`halo_tool_lab` unchanged.

* :class:`Proto` - a protocol setting (VRRPv2 with PASS at 1 s, VRRPv3 over IPv4 or IPv6 at
  100 ms) with the RFC timers: Master_Down_Interval and Skew_Time.
* :class:`Spec` - one node's instance parameters (priority, nopreempt, unicast peers...).
* :func:`halo_config` / :func:`keepalived_config` - the same instance in each dialect.
* :class:`HaloNode` / :class:`KeepalivedNode` - a running node (``start_node`` picks one):
  ``kill9()`` (a dead machine), ``stop()`` (graceful: one priority-0 advert), ``states()``
  (the state changes it logged).
* :class:`Wire` - the VRRP adverts captured on the lab's switch, with bounded waits.

Mastership is judged from the wire and the logs; virtual addresses are at most an extra
check (halo's VIP backend is a plugin that may not be installed). Time on the wire is the
capture's kernel receive time on the switch bridge, so "old master's last advert -> new
master's first advert" is measured on one clock, outside both implementations.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_interface
from pathlib import Path

from halo_tool_lab.capture import (
    PCAP_MAGIC_NS,
    PCAP_MAGIC_US,
    Capture,
    Frame,
    VrrpAdvert,
    parse_vrrp,
)
from halo_tool_lab.halo import Halo
from halo_tool_lab.keepalived import Keepalived
from halo_tool_lab.netns import Host, Lab, wait_until

IPAddress = IPv4Address | IPv6Address

VRID = 51
INSTANCE = "VI_1"
VIP4 = "192.0.2.100/24"
VIP6 = "2001:db8::100/64"
GROUP4 = IPv4Address("224.0.0.18")
GROUP6 = IPv6Address("ff02::12")


# ---------------------------------------------------------------------------------------------
# protocol settings and the RFC timers


@dataclass(frozen=True)
class Proto:
    """One protocol setting shared by every node of a test."""

    id: str
    version: int
    ipv6: bool
    interval: float  # Advertisement_Interval, seconds
    auth_pass: str | None = None  # VRRPv2 PASS

    @property
    def vip(self) -> str:
        return VIP6 if self.ipv6 else VIP4

    @property
    def vip_address(self) -> IPAddress:
        return ip_interface(self.vip).ip

    @property
    def group(self) -> IPAddress:
        return GROUP6 if self.ipv6 else GROUP4

    def skew(self, priority: int) -> float:
        """Skew_Time: RFC 5798/9568 §6.1 (v3) and RFC 3768 §6.1 (v2, whole seconds)."""
        if self.version == 3:
            return (256 - priority) * self.interval / 256
        return (256 - priority) / 256

    def master_down(self, priority: int) -> float:
        """Master_Down_Interval = 3 * Advertisement_Interval + Skew_Time."""
        return 3 * self.interval + self.skew(priority)

    def __str__(self) -> str:
        return self.id


V2_PASS = Proto("v2-pass-1s", 2, False, 1.0, auth_pass="halo1234")
V3_IPV4 = Proto("v3-ipv4-100ms", 3, False, 0.1)
V3_IPV6 = Proto("v3-ipv6-100ms", 3, True, 0.1)


@dataclass(frozen=True)
class Spec:
    """One node's VRRP instance (VRID, interface and VIP come from the test's :class:`Proto`)."""

    priority: int
    state: str = "BACKUP"  # keepalived ignores nopreempt with state MASTER
    nopreempt: bool = False
    auth_pass: str | None = None  # None: the protocol's
    unicast_src: IPAddress | None = None
    unicast_peers: tuple[IPAddress, ...] = ()
    vrid: int = VRID
    vip: bool = True  # False: no virtual address (the cloud pattern: a notify script moves it)
    interface: bool = True  # False: none configured in halo (found from unicast_src)
    use_vmac: bool = False  # the VIP and the adverts on a macvlan with the virtual MAC
    # halo only (keepalived's configuration ignores them): tracked checks, and the YAML of
    # the `checks:` section they name
    halo_track: tuple[tuple[str, int], ...] = ()  # (check, weight)
    halo_checks: str = ""
    halo_vips: tuple[str, ...] = ()  # more virtual addresses ("ADDR/LEN dev IFNAME")
    # keepalived's vrrp_strict; halo then runs `halo convert` of keepalived's file
    strict: bool = False


def _auth(proto: Proto, spec: Spec) -> str | None:
    if proto.version != 2:
        return None
    return spec.auth_pass or proto.auth_pass


def halo_config(name: str, proto: Proto, spec: Spec, state_dir: Path) -> str:
    """halo's YAML for *spec*: JSON logs (parsed by the tests) and a state directory of its
    own (pid file, status socket, backend state: the lab's hosts share one filesystem).
    With ``spec.strict``, ``halo convert``'s output for keepalived's file, with those two."""
    if spec.strict:
        return converted_config(keepalived_config(name, proto, spec), state_dir)
    lines = [
        "global:",
        f"  router_id: {name}",
        "  log_format: json",
        f'  state_dir: "{state_dir}"',
        "vrrp_instances:",
        f"  {INSTANCE}:",
        *(["    interface: eth0"] if spec.interface else []),
        f"    state: {spec.state}",
        f"    virtual_router_id: {spec.vrid}",
        f"    priority: {spec.priority}",
        f"    version: {proto.version}",
        f"    advert_int: {proto.interval:g}",
    ]
    if spec.nopreempt:
        lines.append("    nopreempt: true")
    if spec.use_vmac:
        lines.append("    use_vmac: true")
    auth = _auth(proto, spec)
    if auth is not None:
        lines += ["    authentication:", "      auth_type: PASS", f'      auth_pass: "{auth}"']
    if spec.unicast_src is not None:
        lines.append(f'    unicast_src_ip: "{spec.unicast_src}"')
    if spec.unicast_peers:
        lines.append("    unicast_peer:")
        lines += [f'      - "{p}"' for p in spec.unicast_peers]
    if spec.halo_track:
        lines.append("    track:")
        lines += [f"      - {{check: {c}, weight: {w}}}" for c, w in spec.halo_track]
    if spec.vip:
        lines += ["    virtual_ipaddress:", f'      - "{proto.vip}"']
        lines += [f'      - "{v}"' for v in spec.halo_vips]
    if spec.halo_checks:
        lines += ["checks:", *("  " + line for line in spec.halo_checks.splitlines())]
    return "\n".join(lines) + "\n"


def converted_config(keepalived_conf: str, state_dir: Path) -> str:
    """``halo convert`` of *keepalived_conf*, with JSON logs and *state_dir* added."""
    import yaml  # here: only the strict scenarios convert

    from halo_tool_convert import convert_text

    doc = yaml.safe_load(convert_text(keepalived_conf, "keepalived.conf", config_id="lab").yaml)
    doc["global"].update(log_format="json", state_dir=str(state_dir))
    return str(yaml.safe_dump(doc, sort_keys=False))


def keepalived_config(name: str, proto: Proto, spec: Spec) -> str:
    """keepalived.conf for *spec* (run with ``-P``: VRRP only)."""
    out = [
        "global_defs {",
        f"    router_id {name}",
        f"    vrrp_version {proto.version}",
        *(["    vrrp_strict"] if spec.strict else []),
        "}",
        f"vrrp_instance {INSTANCE} {{",
        f"    state {spec.state}",
        # always: keepalived 2.2.7 stops on an instance without one ("Unknown interface!")
        "    interface eth0",
        f"    virtual_router_id {spec.vrid}",
        f"    priority {spec.priority}",
        f"    advert_int {proto.interval:g}",
    ]
    if spec.nopreempt:
        out.append("    nopreempt")
    if spec.use_vmac:
        out.append("    use_vmac")
    auth = _auth(proto, spec)
    if auth is not None:
        out += [
            "    authentication {",
            "        auth_type PASS",
            f"        auth_pass {auth}",
            "    }",
        ]
    if spec.unicast_src is not None:
        out.append(f"    unicast_src_ip {spec.unicast_src}")
    if spec.unicast_peers:
        out += ["    unicast_peer {", *(f"        {p}" for p in spec.unicast_peers), "    }"]
    if spec.vip:
        out += ["    virtual_ipaddress {", f"        {proto.vip}", "    }"]
    out.append("}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# running nodes


class Node:
    """A VRRP node (one instance) running in a lab host."""

    impl = ""
    log_path: Path

    def __init__(self, host: Host, proto: Proto, spec: Spec, workdir: Path, name: str) -> None:
        self.host = host
        self.proto = proto
        self.spec = spec
        self.workdir = workdir
        self.name = name
        self.started_at = time.time()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} prio {self.spec.priority}>"

    @property
    def source(self) -> IPAddress:
        """The source address of this node's adverts (what the wire and the peer see)."""
        if self.spec.unicast_src is not None:
            return self.spec.unicast_src
        return self.host.link_local if self.proto.ipv6 else self.host.ipv4

    @property
    def running(self) -> bool:
        raise NotImplementedError

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def states(self) -> list[str]:
        """The states this node logged entering, in order (MASTER, BACKUP, FAULT...)."""
        raise NotImplementedError

    def state(self) -> str | None:
        s = self.states()
        return s[-1] if s else None

    def wait_state(self, state: str, timeout: float, *, count: int = 1) -> bool:
        """Wait until the node has logged entering *state* at least *count* times and that is
        its latest state."""

        def ok() -> bool:
            s = self.states()
            return s.count(state) >= count and s[-1] == state

        return wait_until(ok, timeout, 0.01)

    def kill9(self) -> None:
        """A dead machine: SIGKILL, no goodbye."""
        raise NotImplementedError

    def stop(self) -> None:
        """Graceful stop (SIGTERM): a master sends one priority-0 advert."""
        raise NotImplementedError

    def tail(self, lines: int = 40) -> str:
        return f"--- {self.name} ({self.impl}) log ---\n" + "\n".join(
            self.log.splitlines()[-lines:]
        )


class HaloNode(Node):
    """``halo run -c CONFIG --log-level debug`` in the host (:class:`halo_tool_lab.Halo`)."""

    impl = "halo"

    def __init__(self, host: Host, proto: Proto, spec: Spec, workdir: Path, name: str) -> None:
        super().__init__(host, proto, spec, workdir, name)
        self.state_dir = workdir / f"halo-{host.name}.state"  # per machine, as on a real one
        config = halo_config(name, proto, spec, self.state_dir)
        self.halo = Halo(host, config, workdir, name=f"halo-{name}", log_level="debug")
        self.log_path = self.halo.log_path

    @property
    def running(self) -> bool:
        return self.halo.running

    def messages(self) -> list[str]:
        return self.halo.messages()

    def counters(self, instance: str = INSTANCE) -> dict[str, int]:
        """The instance's counters (adverts sent, received, dropped by reason), as the
        daemon's status API reports them."""
        from halo_tool_status.client import ApiError, get_json
        from halo_tool_status.endpoint import resolve

        # The status API lives in the worker, which may still be starting on a busy machine
        # when VRRP has long been master.
        deadline = time.monotonic() + 30
        while True:
            try:
                doc = get_json(resolve(None, str(self.state_dir)), f"/v1/instances/{instance}")
                break
            except ApiError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        return {str(k): int(v) for k, v in doc["counters"].items()}

    def states(self) -> list[str]:
        return self.halo.states(INSTANCE)

    def kill9(self) -> None:
        self.halo.kill9()

    def stop(self) -> None:
        self.halo.stop()


class KeepalivedNode(Node):
    """keepalived 2.2.7 with ``-P`` (see :class:`halo_tool_lab.keepalived.Keepalived`)."""

    impl = "keepalived"
    _STATE = re.compile(rf"\({INSTANCE}\) Entering (\w+) STATE")

    def __init__(self, host: Host, proto: Proto, spec: Spec, workdir: Path, name: str) -> None:
        super().__init__(host, proto, spec, workdir, name)
        self.ka = Keepalived(host, keepalived_config(name, proto, spec), workdir, name=name)
        self.log_path = self.ka.log_path

    @property
    def running(self) -> bool:
        return self.ka.running

    def states(self) -> list[str]:
        return self._STATE.findall(self.log)

    def kill9(self) -> None:
        self.ka.kill9()

    def stop(self) -> None:
        self.ka.stop()


def start_node(
    impl: str, host: Host, proto: Proto, spec: Spec, workdir: Path, name: str | None = None
) -> Node:
    """Start a halo or keepalived node; *name* (default the host's) must be unique per run."""
    name = name or host.name
    if impl == "halo":
        return HaloNode(host, proto, spec, workdir, name)
    if impl == "keepalived":
        return KeepalivedNode(host, proto, spec, workdir, name)
    raise ValueError(f"unknown implementation {impl!r}")


# ---------------------------------------------------------------------------------------------
# the wire


class TimeoutWaiting(AssertionError):
    """A bounded wait for something on the wire ran out."""


class Wire:
    """The VRRP adverts of one VRID captured on the lab's switch bridge.

    The pcap is read incrementally (only the records written since the last look), so
    polling it stays cheap on a busy machine however long the capture runs.
    """

    def __init__(self, capture: Capture, vrid: int = VRID) -> None:
        self.capture = capture
        self.vrid = vrid
        self._offset = 0
        self._record: struct.Struct | None = None
        self._scale = 1
        self._adverts: list[VrrpAdvert] = []

    def adverts(self) -> list[VrrpAdvert]:
        """Every advert captured so far, in capture order."""
        try:
            with open(self.capture.path, "rb") as fh:
                fh.seek(self._offset)
                raw = fh.read()
        except FileNotFoundError:
            return self._adverts
        off = 0
        if self._record is None:
            if len(raw) < 24:
                return self._adverts
            for endian in "<>":
                (magic,) = struct.unpack_from(endian + "I", raw, 0)
                if magic in (PCAP_MAGIC_NS, PCAP_MAGIC_US):
                    self._record = struct.Struct(endian + "IIII")
                    self._scale = 1 if magic == PCAP_MAGIC_NS else 1000
                    break
            else:
                raise ValueError(f"{self.capture.path}: not a pcap file")
            off = 24
        rec = self._record
        assert rec is not None
        while off + rec.size <= len(raw):
            sec, frac, incl, orig = rec.unpack_from(raw, off)
            if off + rec.size + incl > len(raw):
                break  # a record still being written
            t_ns = sec * 1_000_000_000 + frac * self._scale
            data = raw[off + rec.size : off + rec.size + incl]
            adv = parse_vrrp(Frame(t_ns / 1e9, data, t_ns, orig))
            if adv is not None and adv.vrid == self.vrid:
                self._adverts.append(adv)
            off += rec.size + incl
        self._offset += off
        return self._adverts

    def sent_by(self, src: IPAddress, *, after: float = 0.0) -> list[VrrpAdvert]:
        return [a for a in self.adverts() if a.src == src and a.time > after]

    def last_from(self, src: IPAddress, *, before: float = float("inf")) -> VrrpAdvert | None:
        """The last advert from *src* earlier than *before*. After a kill, pass the new
        master's first advert: the capture may not have written the last one yet when the
        kill returns."""
        mine = [a for a in self.sent_by(src) if a.time < before]
        return mine[-1] if mine else None

    def wait(
        self,
        src: IPAddress,
        *,
        timeout: float,
        after: float = 0.0,
        count: int = 1,
        priority: int | None = None,
    ) -> list[VrrpAdvert]:
        """Wait for *count* adverts from *src* later than *after* (epoch seconds), optionally
        with that *priority*; returns them all. Raises :class:`TimeoutWaiting`."""

        def found() -> list[VrrpAdvert]:
            return [
                a
                for a in self.sent_by(src, after=after)
                if priority is None or a.priority == priority
            ]

        if not wait_until(lambda: len(found()) >= count, timeout, 0.01):
            got = found()
            raise TimeoutWaiting(
                f"{len(got)} of {count} adverts from {src}"
                f"{f' with priority {priority}' if priority is not None else ''}"
                f" within {timeout:.2f} s"
            )
        return found()

    def quiet(self, src: IPAddress, *, after: float) -> bool:
        """No advert from *src* later than *after*."""
        return not self.sent_by(src, after=after)


# ---------------------------------------------------------------------------------------------
# a scenario


@dataclass
class Interop:
    """One interop scenario: hosts on a segment, the capture, the nodes started so far."""

    lab: Lab
    proto: Proto
    workdir: Path
    wire: Wire
    nodes: list[Node] = field(default_factory=list)

    @property
    def hosts(self) -> list[Host]:
        return self.lab.hosts

    def start(self, impl: str, host: Host, spec: Spec, name: str | None = None) -> Node:
        node = start_node(impl, host, self.proto, spec, self.workdir, name)
        self.nodes.append(node)
        return node

    def logs(self, lines: int = 40) -> str:
        """The end of every node's log, for assertion messages."""
        return "\n" + "\n".join(n.tail(lines) for n in self.nodes)


InteropFactory = Callable[..., Interop]
