"""A network-namespace lab: a few hosts on one virtual Ethernet segment.

Topology (nothing is ever created in, or attached to, the root namespace)::

    namespace <prefix>sw : bridge br0 (STP off, forward delay 0) with ports p1, p2, ...
    namespace <prefix>h1 : eth0 (peer of p1), lo, 192.0.2.11/24, 2001:db8::11/64
    namespace <prefix>h2 : eth0 (peer of p2), lo, 192.0.2.12/24, 2001:db8::12/64
    ...

Host *i* (1-based) gets address ``subnet4[10 + i]`` and ``subnet6[0x10 + i]`` written with the
same digits (h1 = .11 / ::11, h2 = .12 / ::12), so 192.0.2.100 and the like stay free for
virtual addresses. Each veth is created inside the switch namespace with its peer placed
straight into the host namespace.

Every namespace, process and nftables rule the lab creates is removed by :meth:`Lab.close`,
which is idempotent, runs from ``with`` blocks, ``atexit`` and SIGTERM/SIGHUP handlers, and
only ever signals processes the lab started itself or processes living in namespaces it
created. This module is stdlib-only and has no pytest dependency: ``halo demo`` uses it.

Run ``python -m halo_tool_lab.netns ping [--count N] DST`` inside a namespace for a small,
bounded ICMP echo client (used by :meth:`Host.ping`; no ``ping`` binary needed), and
``python -m halo_tool_lab.netns sweep`` to delete namespaces left by killed lab owners.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ipaddress
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from halo_tool_lab.capture import Capture

__all__ = [
    "Address",
    "Host",
    "Impairment",
    "Lab",
    "LabError",
    "Namespace",
    "PingResult",
    "Proc",
    "lab_unavailable_reason",
    "sweep_stale_labs",
    "wait_until",
]

StrPath = str | os.PathLike[str]
Direction = Literal["from", "to", "both"]

IP = "ip"
NFT = "nft"
BRIDGE = "br0"
HOST_IFNAME = "eth0"
NFT_TABLE = "halo"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_STALE_RE = re.compile(r"^halo-(\d+)-[0-9a-f]{4}-")
_DEFAULT_TIMEOUT = 30.0


class LabError(RuntimeError):
    """A lab operation failed (the message names the command and its error output)."""


# ---------------------------------------------------------------------------------------------
# small helpers


def _run(
    argv: Sequence[StrPath],
    *,
    check: bool = True,
    timeout: float = _DEFAULT_TIMEOUT,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    args = [os.fspath(a) for a in argv]
    cp = subprocess.run(
        args,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and cp.returncode != 0:
        msg = (cp.stderr or cp.stdout).strip().splitlines()
        raise LabError(f"{' '.join(args)} failed ({cp.returncode}): {' | '.join(msg)[:500]}")
    return cp


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.02) -> bool:
    """Poll *predicate* until it is truthy or *timeout* seconds pass; return its last verdict."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)


def _netns_list() -> set[str]:
    cp = _run([IP, "-j", "netns", "list"], check=False)
    if cp.returncode != 0 or not cp.stdout.strip():
        return set()
    try:
        return {str(e["name"]) for e in json.loads(cp.stdout)}
    except (ValueError, KeyError, TypeError):
        return set()


def _netns_pids(ns: str) -> list[int]:
    cp = _run([IP, "netns", "pids", ns], check=False)
    if cp.returncode != 0:
        return []
    return [int(tok) for tok in cp.stdout.split() if tok.isdigit()]


def _pid_gone(pid: int) -> bool:
    """True when *pid* no longer exists or is a zombie (already dead, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return True
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state in (b"Z", b"X")


def _live_group_members(pgid: int) -> list[int]:
    """PIDs in process group *pgid* that are not (yet) dead."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            out.append(int(entry))
    return out


def _kill_namespace_processes(namespaces: Sequence[str], timeout: float = 2.0) -> list[int]:
    """SIGKILL every process living in *namespaces* (which must be ones we created)."""
    killed: list[int] = []
    for ns in namespaces:
        for pid in _netns_pids(ns):
            if pid == os.getpid():
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    if killed:
        wait_until(lambda: all(_pid_gone(p) for p in killed), timeout)
    return killed


def _delete_namespaces(namespaces: Sequence[str]) -> list[str]:
    """Delete *namespaces* (killing what lives in them first); return the ones still present."""
    existing = _netns_list()
    todo = [ns for ns in namespaces if ns in existing]
    for attempt in range(3):
        if not todo:
            break
        _kill_namespace_processes(todo)
        for ns in todo:
            _run([IP, "netns", "delete", ns], check=False)
        existing = _netns_list()
        todo = [ns for ns in todo if ns in existing]
        if todo:
            time.sleep(0.1 * (attempt + 1))
    return todo


@cache
def lab_unavailable_reason() -> str | None:
    """None when labs can be built here, else a one-line reason (not root, no ``ip``...)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which(IP) is None:
        return "iproute2 'ip' command not found"
    probe = f"halo-{os.getpid()}-{secrets.token_hex(2)}-probe"
    created = False
    checks: list[tuple[list[str], str]] = [
        ([IP, "-n", probe, "link", "add", "v0", "type", "veth", "peer", "v1"], "veth pairs"),
        ([IP, "-n", probe, "link", "add", "b0", "type", "bridge"], "bridges"),
        ([IP, "netns", "exec", probe, "true"], "'ip netns exec'"),
    ]
    try:
        cp = _run([IP, "netns", "add", probe], check=False, timeout=10)
        if cp.returncode != 0:
            first = (cp.stderr.strip().splitlines() or ["unknown error"])[0]
            return f"'ip netns add' does not work here: {first}"
        created = True
        for argv, what in checks:
            cp = _run(argv, check=False, timeout=10)
            if cp.returncode != 0:
                first = (cp.stderr.strip().splitlines() or ["unknown error"])[0]
                return f"cannot use {what} in a network namespace: {first}"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot probe network namespaces: {exc}"
    finally:
        if created:
            _delete_namespaces([probe])
    return None


def sweep_stale_labs() -> list[str]:
    """Delete lab namespaces left by dead processes (``halo-<pid>-xxxx-*`` with *pid* gone).

    Only names following this module's pattern whose creating PID no longer exists are
    touched; a live PID (even an unrelated process reusing it) keeps its namespaces.
    """
    stale: list[str] = []
    for ns in sorted(_netns_list()):
        m = _STALE_RE.match(ns)
        if not m:
            continue
        pid = int(m.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            stale.append(ns)
        except PermissionError:
            pass
    left = set(_delete_namespaces(stale))
    return [ns for ns in stale if ns not in left]


# ---------------------------------------------------------------------------------------------
# signal / atexit bookkeeping shared by all labs of this process

_live_labs: list[Lab] = []
_prev_handlers: dict[int, Any] = {}
_handled_signals = (signal.SIGTERM, signal.SIGHUP)
_registry_lock = threading.RLock()


def _on_fatal_signal(signum: int, frame: FrameType | None) -> None:
    # Look up the previous handler first: closing the last lab forgets it.
    prev = _prev_handlers.get(signum, signal.SIG_DFL)
    with _registry_lock:
        labs = list(_live_labs)
    for lab in labs:
        with contextlib.suppress(Exception):
            lab.close()
    _restore_handlers(force=True)
    if callable(prev):
        prev(signum, frame)
    elif prev == signal.SIG_IGN:
        return
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    if _prev_handlers or threading.current_thread() is not threading.main_thread():
        return
    for sig in _handled_signals:
        try:
            prev = signal.getsignal(sig)
            if prev == signal.SIG_IGN:  # the process survives this signal: so do its labs
                continue
            _prev_handlers[sig] = prev
            signal.signal(sig, _on_fatal_signal)
        except (ValueError, OSError):  # pragma: no cover - not the main interpreter
            _prev_handlers.pop(sig, None)


def _restore_handlers(force: bool = False) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, prev in list(_prev_handlers.items()):
        # Only put the old handler back if nobody replaced ours in the meantime.
        if force or signal.getsignal(sig) is _on_fatal_signal:
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
        del _prev_handlers[sig]


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    """Defer SIGINT/SIGTERM/SIGHUP (this thread) so cleanup is not cut short."""
    sigs = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (OSError, ValueError):  # pragma: no cover
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# ---------------------------------------------------------------------------------------------
# processes


class Proc:
    """A process started in a lab namespace, leading its own session and process group."""

    def __init__(
        self, popen: subprocess.Popen[bytes], argv: Sequence[str], ns: str, log: Path | None
    ) -> None:
        self.popen = popen
        self.pid: int = popen.pid
        self.pgid: int = popen.pid  # start_new_session=True: the process leads its group
        self.argv = list(argv)
        self.ns = ns
        self.log = log

    def __repr__(self) -> str:
        return f"<Proc pid={self.pid} ns={self.ns} argv={self.argv!r} rc={self.returncode}>"

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send *sig* to this process only (nothing happens once it has been reaped)."""
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Send *sig* to the process group this process leads.

        Only done while the leader is not yet reaped (alive or a zombie), so the group ID is
        certainly still ours.
        """
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, sig)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process (raises :class:`subprocess.TimeoutExpired`)."""
        return self.popen.wait(timeout)

    def terminate_and_wait(self, timeout: float = 5.0) -> int:
        """SIGTERM, wait up to *timeout*, then SIGKILL the whole group; return the exit code."""
        self.kill(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_group(signal.SIGKILL)
            rc = self.popen.wait(10)
        # Give the rest of the group a moment to die too (zombies waiting for init count as
        # dead: some container inits reap only every second or two).
        wait_until(lambda: not _live_group_members(self.pgid), 2.0, 0.005)
        return rc

    def log_text(self) -> str:
        if self.log is None:
            return ""
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


# ---------------------------------------------------------------------------------------------
# namespaces and hosts


class Address(NamedTuple):
    """One address as listed by ``ip -j addr``."""

    interface: IPv4Interface | IPv6Interface  # address/prefix
    label: str | None
    scope: str
    dev: str
    flags: frozenset[str] = frozenset()

    @property
    def ip(self) -> IPv4Address | IPv6Address:
        return self.interface.ip


@dataclass(frozen=True)
class PingResult:
    sent: int
    received: int
    rtts: tuple[float, ...]  # seconds

    @property
    def ok(self) -> bool:
        """Every echo request was answered."""
        return self.sent > 0 and self.received == self.sent


class Namespace:
    """A network namespace owned by a :class:`Lab` (the switch, or the base of a host)."""

    def __init__(self, lab: Lab, name: str, ns: str) -> None:
        self.lab = lab
        self.name = name
        self.ns = ns

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ns={self.ns}>"

    def run(
        self,
        *argv: StrPath,
        check: bool = True,
        timeout: float = _DEFAULT_TIMEOUT,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run *argv* inside the namespace (``ip netns exec``), capturing text output."""
        return _run(
            [IP, "netns", "exec", self.ns, *argv], check=check, timeout=timeout, input=input
        )

    def ip(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``ip -n NS ARGS`` (cheaper than :meth:`run`)."""
        return _run([IP, "-n", self.ns, *args], check=check, input=input)

    def ip_json(self, *args: str) -> Any:
        """Parsed output of ``ip -j -n NS ARGS``."""
        out = _run([IP, "-j", "-n", self.ns, *args]).stdout
        return json.loads(out) if out.strip() else []

    def sysctl(self, settings: Mapping[str, str | int]) -> None:
        if settings:
            self.run("sysctl", "-q", "-w", *(f"{k}={v}" for k, v in settings.items()))

    def spawn(
        self,
        *argv: StrPath,
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: StrPath | None = None,
    ) -> Proc:
        """Start *argv* in the namespace, in a new session/process group, tracked for cleanup.

        stdout and stderr go to *log* (appended) or are discarded; *env* entries are added to
        the current environment.
        """
        return self.lab._spawn(self, argv, log=log, env=env, cwd=cwd)

    def pids(self) -> list[int]:
        """PIDs of every process currently in this namespace."""
        return _netns_pids(self.ns)


class Host(Namespace):
    """A lab host: its own namespace with ``eth0`` plugged into the switch."""

    def __init__(
        self,
        lab: Lab,
        name: str,
        ns: str,
        *,
        index: int,
        port: str,
        ipv4: IPv4Interface,
        ipv6: IPv6Interface,
        mac: str,
    ) -> None:
        super().__init__(lab, name, ns)
        self.index = index
        self.ifname = HOST_IFNAME
        self.port = port  # the switch-side veth name
        self.ipv4_interface = ipv4
        self.ipv6_interface = ipv6
        self.ipv4: IPv4Address = ipv4.ip
        self.ipv6: IPv6Address = ipv6.ip  # configured only when the lab has ipv6=True
        self.mac = mac
        self.link_local: IPv6Address = _eui64_link_local(mac)

    def addresses(self, dev: str | None = None) -> list[Address]:
        """Every address in the namespace (or on *dev*), from ``ip -j addr``."""
        args = ["addr", "show"] + (["dev", dev] if dev else [])
        result: list[Address] = []
        for link in self.ip_json(*args):
            for ai in link.get("addr_info", []):
                if "local" not in ai:
                    continue
                iface = ipaddress.ip_interface(f"{ai['local']}/{ai.get('prefixlen', 128)}")
                flags = frozenset(k for k, v in ai.items() if v is True)
                result.append(
                    Address(
                        interface=iface,
                        label=ai.get("label"),
                        scope=str(ai.get("scope", "")),
                        dev=str(link.get("ifname", "")),
                        flags=flags,
                    )
                )
        return result

    def has_address(self, addr: str | IPv4Address | IPv6Address, dev: str | None = None) -> bool:
        want = ipaddress.ip_address(str(addr).split("/")[0])
        return any(a.ip == want for a in self.addresses(dev))

    def wait_address(
        self,
        addr: str | IPv4Address | IPv6Address,
        *,
        present: bool = True,
        timeout: float = 10.0,
        interval: float = 0.02,
    ) -> bool:
        """Wait until *addr* is (or with present=False: is no longer) configured here."""
        return wait_until(lambda: self.has_address(addr) == present, timeout, interval)

    def ping(
        self,
        dst: str | IPv4Address | IPv6Address,
        *,
        count: int = 3,
        interval: float = 0.05,
        timeout: float = 2.0,
    ) -> PingResult:
        """Send *count* ICMP echo requests from this host (bounded; no ``ping`` binary needed).

        Link-local destinations get ``%eth0`` appended automatically.
        """
        target = str(dst)
        if ":" in target and "%" not in target and ipaddress.ip_address(target).is_link_local:
            target += f"%{self.ifname}"
        cp = self.run(
            sys.executable,
            "-m",
            "halo_tool_lab.netns",
            "ping",
            "--count",
            str(count),
            "--interval",
            str(interval),
            "--timeout",
            str(timeout),
            target,
            check=False,
            timeout=count * interval + timeout + 30,
        )
        try:
            doc = json.loads(cp.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise LabError(f"ping helper failed: {cp.stderr.strip()[:500]}") from exc
        return PingResult(int(doc["sent"]), int(doc["received"]), tuple(doc["rtts"]))


def _eui64_link_local(mac: str) -> IPv6Address:
    b = bytes.fromhex(mac.replace(":", ""))
    eui = bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:6]
    return IPv6Address(b"\xfe\x80" + bytes(6) + eui)


# ---------------------------------------------------------------------------------------------
# impairments


@dataclass(eq=False)
class Impairment:
    """An nftables base chain in the switch (or a port shut down); remove() undoes it."""

    lab: Lab
    description: str
    _undo: Callable[[], None] = field(repr=False)
    active: bool = True

    def remove(self) -> None:
        if not self.active:
            return
        self.active = False
        if not self.lab.closed:
            self._undo()
        with contextlib.suppress(ValueError):
            self.lab._impairments.remove(self)

    def __enter__(self) -> Impairment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


# ---------------------------------------------------------------------------------------------
# the lab


class Lab:
    """Hosts on one bridged segment, each in its own network namespace.

    ``Lab(3)`` makes hosts h1..h3; ``Lab(["a", "b"])`` names them. Use it as a context manager
    (or call :meth:`close`, which is idempotent); it is also closed at interpreter exit and on
    SIGTERM/SIGHUP (the previous handlers are restored afterwards, and the signal is then
    handled as before).
    """

    def __init__(
        self,
        hosts: int | Sequence[str] = 2,
        *,
        prefix: str | None = None,
        subnet4: str = "192.0.2.0/24",
        subnet6: str = "2001:db8::/64",
        ipv6: bool = True,
        mcast_snooping: bool = False,
        ready_timeout: float = 5.0,
    ) -> None:
        if isinstance(hosts, str):
            hosts = [hosts]
        names = [f"h{i}" for i in range(1, hosts + 1)] if isinstance(hosts, int) else list(hosts)
        if not names:
            raise ValueError("a lab needs at least one host")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate host names: {names}")
        for n in names:
            if not _NAME_RE.match(n) or n == "sw":
                raise ValueError(f"bad host name {n!r}")
        self.prefix = (
            prefix if prefix is not None else f"halo-{os.getpid()}-{secrets.token_hex(2)}-"
        )
        if not _NAME_RE.match(self.prefix):
            raise ValueError(f"bad prefix {self.prefix!r}")
        self.subnet4 = IPv4Network(subnet4)
        self.subnet6 = IPv6Network(subnet6)
        if 10 + len(names) >= self.subnet4.num_addresses - 1:
            raise ValueError(f"{subnet4} is too small for {len(names)} hosts")
        self.ipv6_enabled = ipv6
        self.switch: str = self.prefix + "sw"
        self.bridge = BRIDGE
        self.switch_node = Namespace(self, "sw", self.switch)
        self.hosts: list[Host] = []
        for i, n in enumerate(names, start=1):
            v4 = IPv4Interface((int(self.subnet4.network_address) + 10 + i, self.subnet4.prefixlen))
            v6 = IPv6Interface(
                (int(self.subnet6.network_address) + int(str(10 + i), 16), self.subnet6.prefixlen)
            )
            mac = f"02:48:41:{(i >> 16) & 0xFF:02x}:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"
            self.hosts.append(
                Host(self, n, self.prefix + n, index=i, port=f"p{i}", ipv4=v4, ipv6=v6, mac=mac)
            )
        self._procs: list[Proc] = []
        self._impairments: list[Impairment] = []
        self._chain_seq = 0
        self._nft_table_made = False
        self._closed = False
        self._lock = threading.RLock()
        self._namespaces: list[str] = [h.ns for h in self.hosts] + [self.switch]
        self._owned: list[str] = []  # namespaces this lab did create: the only ones it deletes
        with _registry_lock:
            _live_labs.append(self)
            _install_handlers()
        atexit.register(self._atexit)
        try:
            self._build(mcast_snooping, ready_timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                self.close()
            raise

    # -- construction -------------------------------------------------------------------------

    def _build(self, mcast_snooping: bool, ready_timeout: float) -> None:
        existing = _netns_list()
        clash = [ns for ns in self._namespaces if ns in existing]
        if clash:
            # Never adopt (and later delete) somebody else's namespace.
            raise LabError(f"namespaces already exist: {', '.join(clash)}")
        for ns in self._namespaces:
            try:
                _run([IP, "netns", "add", ns])  # fails if the name exists: then not ours
            except LabError:
                raise
            except BaseException:
                # Interrupted: with a per-run prefix, a name that now exists is ours.
                if ns in _netns_list():
                    self._owned.append(ns)
                raise
            self._owned.append(ns)
        sw = self.switch_node
        # The switch stays silent: no IPv6 (no MLD/RS/DAD from br0 or the ports).
        sw.sysctl({"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1})
        for h in self.hosts:
            settings: dict[str, str | int] = {
                "net.ipv4.conf.all.arp_accept": 1,
                "net.ipv4.conf.default.arp_accept": 1,
            }
            if self.ipv6_enabled:
                settings |= {
                    "net.ipv6.conf.all.accept_dad": 0,
                    "net.ipv6.conf.default.accept_dad": 0,
                    "net.ipv6.conf.default.router_solicitations": 0,
                }
            else:
                settings |= {
                    "net.ipv6.conf.all.disable_ipv6": 1,
                    "net.ipv6.conf.default.disable_ipv6": 1,
                }
            h.sysctl(settings)
        batch = [
            f"link add {BRIDGE} type bridge stp_state 0 forward_delay 0 "
            f"mcast_snooping {1 if mcast_snooping else 0}",
            f"link set {BRIDGE} up",
        ]
        for h in self.hosts:
            batch.append(f"link add {h.port} type veth peer name {HOST_IFNAME} netns {h.ns}")
            batch.append(f"link set {h.port} master {BRIDGE} up")
        sw.ip("-batch", "-", input="\n".join(batch) + "\n")
        for h in self.hosts:
            batch = [
                "link set lo up",
                f"link set {HOST_IFNAME} address {h.mac}",
                f"addr add {h.ipv4_interface} dev {HOST_IFNAME}",
            ]
            if self.ipv6_enabled:
                batch.append(f"addr add {h.ipv6_interface} dev {HOST_IFNAME} nodad")
            batch.append(f"link set {HOST_IFNAME} up")
            h.ip("-batch", "-", input="\n".join(batch) + "\n")
        if not self.wait_ready(ready_timeout):
            raise LabError(f"lab links did not come up within {ready_timeout} s")

    def _ports_ready(self, ports: Sequence[str] | None = None) -> bool:
        want = set(ports) if ports is not None else {h.port for h in self.hosts}
        ready: set[str] = set()
        for link in self.switch_node.ip_json("-d", "link", "show"):
            name = link.get("ifname")
            slave = link.get("linkinfo", {}).get("info_slave_data", {})
            if link.get("operstate") == "UP" and slave.get("state") == "forwarding":
                ready.add(str(name))
        return want <= ready

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Wait until every port forwards and every host's eth0 is operationally up."""

        def hosts_up() -> bool:
            return all(
                h.ip_json("link", "show", "dev", HOST_IFNAME)[0].get("operstate") == "UP"
                for h in self.hosts
            )

        return wait_until(lambda: self._ports_ready() and hosts_up(), timeout, 0.01)

    # -- accessors ----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def namespaces(self) -> list[str]:
        """Names of the namespaces this lab owns."""
        return list(self._namespaces)

    @property
    def processes(self) -> list[Proc]:
        return list(self._procs)

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name or h.ns == name:
                return h
        raise KeyError(name)

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Lab {self.prefix!r} hosts={[h.name for h in self.hosts]} {state}>"

    # -- processes ----------------------------------------------------------------------------

    def _spawn(
        self,
        node: Namespace,
        argv: Sequence[StrPath],
        *,
        log: Path | None,
        env: Mapping[str, str] | None,
        cwd: StrPath | None,
    ) -> Proc:
        if not argv:
            raise ValueError("nothing to run")
        args = [os.fspath(a) for a in argv]
        full_env = {**os.environ, **env} if env is not None else None
        with self._lock:
            if self._closed:
                raise LabError("lab is closed")
            out: Any = subprocess.DEVNULL
            fh = None
            if log is not None:
                log.parent.mkdir(parents=True, exist_ok=True)
                fh = open(log, "ab")  # noqa: SIM115 - handed to the child, closed below
                out = fh
            try:
                popen = subprocess.Popen(
                    [IP, "netns", "exec", node.ns, *args],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=full_env,
                    cwd=cwd,
                    start_new_session=True,
                )
            finally:
                if fh is not None:
                    fh.close()
            proc = Proc(popen, args, node.ns, log)
            self._procs.append(proc)
            return proc

    def _stop_processes(self, grace: float = 1.0) -> None:
        procs = [p for p in self._procs if p.popen.returncode is None]
        for p in procs:
            p.kill_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(max(0.0, deadline - time.monotonic()))
        for p in procs:
            p.kill_group(signal.SIGKILL)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(5.0)

    # -- impairments (nftables in the switch namespace) ----------------------------------------

    def _nft(self, script: str) -> None:
        if shutil.which(NFT) is None:
            raise LabError(f"{NFT} not found: partitions and losses need nftables")
        self.switch_node.run(NFT, "-f", "-", input=script)

    def _add_chain(self, description: str, rules: Sequence[str]) -> Impairment:
        with self._lock:
            if self._closed:
                raise LabError("lab is closed")
            self._chain_seq += 1
            chain = f"impair{self._chain_seq}"
            lines = [] if self._nft_table_made else [f"add table bridge {NFT_TABLE}"]
            lines.append(
                f"add chain bridge {NFT_TABLE} {chain} "
                "{ type filter hook forward priority 0; policy accept; }"
            )
            lines += [f"add rule bridge {NFT_TABLE} {chain} {r}" for r in rules]
            self._nft("\n".join(lines) + "\n")
            self._nft_table_made = True

            def undo() -> None:
                self._nft(
                    f"flush chain bridge {NFT_TABLE} {chain}\n"
                    f"delete chain bridge {NFT_TABLE} {chain}\n"
                )

            imp = Impairment(self, description, undo)
            self._impairments.append(imp)
            return imp

    @staticmethod
    def _port_matches(port: str, direction: Direction) -> list[str]:
        if direction not in ("from", "to", "both"):
            raise ValueError(f"bad direction {direction!r}")
        out = []
        if direction in ("from", "both"):
            out.append(f'iifname "{port}"')
        if direction in ("to", "both"):
            out.append(f'oifname "{port}"')
        return out

    def partition(
        self, host: Host, proto: int | None = 112, *, direction: Direction = "both"
    ) -> Impairment:
        """Drop IP protocol *proto* (IPv4 protocol / IPv6 next header; None: every frame) at
        *host*'s switch port: frames it sends (``"from"``), frames sent to it (``"to"``) or
        both. Use as a context manager or call ``.remove()``.
        """
        match = "" if proto is None else f" meta l4proto {int(proto)}"
        rules = [f"{m}{match} drop" for m in self._port_matches(host.port, direction)]
        what = "all traffic" if proto is None else f"IP protocol {proto}"
        return self._add_chain(f"partition {host.name} ({what}, {direction})", rules)

    def loss(
        self,
        percent: float,
        *,
        host: Host | None = None,
        proto: int | None = None,
        direction: Direction = "both",
    ) -> Impairment:
        """Drop about *percent* % of the frames crossing the switch (optionally only those of
        *host*'s port, only IP protocol *proto*). Resolution is 0.01 %.
        """
        if not 0 <= percent <= 100:
            raise ValueError("percent must be within 0..100")
        cond = "" if proto is None else f" meta l4proto {int(proto)}"
        share = round(percent * 100)
        if share < 10000:
            cond += f" numgen random mod 10000 < {share}"
        matches = self._port_matches(host.port, direction) if host is not None else [""]
        rules = [f"{m}{cond} drop".strip() for m in matches] if share > 0 else []
        target = host.name if host is not None else "all ports"
        return self._add_chain(f"loss {percent}% {target}", rules)

    def unplug(self, host: Host) -> Impairment:
        """Take *host*'s switch port down (the host sees carrier loss) until removed."""
        self.switch_node.ip("link", "set", host.port, "down")

        def undo() -> None:
            self.switch_node.ip("link", "set", host.port, "up")
            wait_until(lambda: self._ports_ready([host.port]), 5.0, 0.01)

        imp = Impairment(self, f"unplug {host.name}", undo)
        with self._lock:
            self._impairments.append(imp)
        return imp

    def heal(self) -> None:
        """Remove every active impairment."""
        for imp in list(self._impairments):
            imp.remove()

    # -- capture ------------------------------------------------------------------------------

    def capture(
        self,
        out: Path,
        *,
        host: Host | None = None,
        filter: str | None = None,
        iface: str | None = None,
        ready_timeout: float = 10.0,
    ) -> Capture:
        """Start a packet capture on the switch bridge (every host's traffic) or on *host*.

        The bridge sees each frame once, as it enters the switch: before the impairment
        chains (a partitioned host's frames are still captured there; capture in the
        receiving host to see what got through). *filter*: see ``capture.FILTERS``.
        """
        from halo_tool_lab.capture import Capture

        node: Namespace = host if host is not None else self.switch_node
        dev = iface or (host.ifname if host is not None else self.bridge)
        return Capture(node, dev, out, filter=filter, ready_timeout=ready_timeout)

    # -- teardown -----------------------------------------------------------------------------

    def _atexit(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def close(self) -> None:
        """Stop every process the lab started and delete its namespaces.

        Idempotent. Raises :class:`LabError` only if a namespace could not be removed (a
        second call tries again).
        """
        if self._closed:
            return
        with _signals_blocked(), self._lock:
            if self._closed:
                return
            try:
                self._stop_processes()
            finally:
                left = _delete_namespaces(self._owned)
                self._owned = [ns for ns in self._owned if ns in left]
            for imp in self._impairments:
                imp.active = False
            self._impairments.clear()
            if left:
                raise LabError(f"could not delete namespaces: {', '.join(left)}")
            self._closed = True
            atexit.unregister(self._atexit)
            with _registry_lock:
                if self in _live_labs:
                    _live_labs.remove(self)
                if not _live_labs:
                    _restore_handlers()


# ---------------------------------------------------------------------------------------------
# ``python -m halo_tool_lab.netns ping``: a bounded ICMP echo client


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def _ping(dst: str, count: int, interval: float, timeout: float) -> PingResult:
    count = max(0, min(count, 10000))
    info = socket.getaddrinfo(dst, None, proto=0, type=socket.SOCK_RAW)
    family, _, _, _, sockaddr = next(i for i in info if i[0] in (socket.AF_INET, socket.AF_INET6))
    v6 = family == socket.AF_INET6
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    req_type, rep_type = (128, 129) if v6 else (8, 0)
    ident = os.getpid() & 0xFFFF
    sent_at: dict[int, float] = {}
    rtts: list[float] = []
    with socket.socket(family, socket.SOCK_RAW, proto) as s:
        s.setblocking(False)
        start = time.monotonic()
        next_send = start
        seq = 0
        last_send = start
        while True:
            now = time.monotonic()
            if seq < count and now >= next_send:
                seq += 1
                payload = struct.pack("!d", time.time()) + bytes(24)
                hdr = struct.pack("!BBHHH", req_type, 0, 0, ident, seq)
                csum = 0 if v6 else _checksum(hdr + payload)  # the kernel does ICMPv6
                pkt = struct.pack("!BBHHH", req_type, 0, csum, ident, seq) + payload
                with contextlib.suppress(OSError):
                    s.sendto(pkt, sockaddr)
                sent_at[seq] = time.monotonic()
                last_send = sent_at[seq]
                next_send += interval
            if len(rtts) >= count or (seq >= count and now >= last_send + timeout):
                break
            if now > start + count * interval + timeout + 5:
                break
            wait = max(
                0.0, min(next_send if seq < count else last_send + timeout, now + 0.05) - now
            )
            r, _, _ = select.select([s], [], [], wait)
            if not r:
                continue
            try:
                data = s.recv(65535)
            except BlockingIOError:
                continue
            if not v6:
                data = data[(data[0] & 0x0F) * 4 :]
            if len(data) < 8:
                continue
            typ, _, _, rid, rseq = struct.unpack("!BBHHH", data[:8])
            if typ == rep_type and rid == ident and rseq in sent_at:
                rtts.append(time.monotonic() - sent_at.pop(rseq))
    return PingResult(seq, len(rtts), tuple(rtts))


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m halo_tool_lab.netns")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ping", help="bounded ICMP echo; prints a JSON summary")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("dst")
    sub.add_parser("sweep", help="delete lab namespaces left behind by dead processes")
    args = parser.parse_args(argv)
    if args.cmd == "ping":
        res = _ping(args.dst, args.count, args.interval, args.timeout)
        print(json.dumps({"sent": res.sent, "received": res.received, "rtts": list(res.rtts)}))
        return 0 if res.ok else 1
    removed = sweep_stale_labs()
    for ns in removed:
        print(ns)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
