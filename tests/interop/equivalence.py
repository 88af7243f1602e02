"""keepalived and halo side by side on the same keepalived.conf: what each does, compared.

Shared by ``tests/interop/test_equivalence_samples.py`` (the VRRP-only samples) and
``bench/equivalence/run.py`` (every sample, the table in docs/keepalived-equivalence.md).

For one *case* (a keepalived sample, or a seed's pair of node configurations):

1. :func:`rewrite` makes the file fit the lab: addresses outside the lab ranges are mapped
   consistently into 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 (IPv6 into 2001:db8::/32),
   interface names are kept and each becomes a veth in the node's namespace, notify scripts
   become a recorder script (same base name, logs its name and arguments), the harness's
   namespace replaces ``net_namespace``, and ``script_user root`` is set (the lab has no
   ``keepalived_script`` user).
2. :func:`run_case` builds two identical labs (one namespace per node, every interface on a
   segment of its own shared by the case's nodes), runs keepalived on the rewritten file in
   one and halo on ``halo convert``'s output of the same file in the other, lets both settle,
   and observes each: addresses (``ip -j addr``), routes and rules (``ip -j route``/``rule``,
   every table), the adverts on each segment (decoded with scapy), the notify script calls,
   the nftables ruleset (compared by what it drops: :mod:`nft_effect`), the IPVS table
   (``ipvsadm -Ln``; halo's also through ``halo ipvs``) where the kernel has IPVS, and the
   instances' final states.
3. :func:`compare` lists every difference; :class:`Verdict` says same, differs or not
   runnable (and why).

Everything runs in namespaces this module creates (removed on every exit path); only lab
addresses are configured.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address
from pathlib import Path
from typing import Any

import nft_effect
import yaml

from halo_core import plugins as plugin_loader
from halo_core.plugins import Plugins
from halo_tool_convert import ConvertError, convert_file
from halo_tool_lab.capture import Capture, parse_vrrp, read_pcap
from halo_tool_lab.halo import Halo
from halo_tool_lab.keepalived import Keepalived
from halo_tool_lab.netns import Host, Lab, wait_until

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = Path("/usr/share/doc/keepalived/samples")
CORPUS = ROOT / "plugins" / "tools" / "convert" / "tests" / "corpus"
LAB_NETS = (
    IPv4Network("192.0.2.0/24"),
    IPv4Network("198.51.100.0/24"),
    IPv4Network("203.0.113.0/24"),
)
LAB_NET6 = ipaddress.IPv6Network("2001:db8::/32")

# The seeds of halo convert's corpus: the nodes of each, in the order they start.
SEEDS: dict[str, tuple[str, ...]] = {
    "seed-000": ("seed-000-master.conf", "seed-000-backup.conf"),
    "seed-001-lvs-dr": ("seed-001-lvs-dr.conf",),
    "seed-002": ("seed-002-nodea.conf", "seed-002-nodeb.conf"),
    "seed-003": ("seed-003-master.conf", "seed-003-backup.conf"),
}

# Under emulation (the IPVS VM) everything but the protocol's timers is slower.
SLOW = float(os.environ.get("HALO_EQUIV_SLOW", "1"))
READY_LIMIT = 120.0  # seconds (times SLOW) for halo and its worker to start

# Features other branches are building: a difference in a case using one is "pending".
# None right now (use_vmac, the notify FIFOs, vrrp_track_process and accept mode are built).
PENDING: dict[str, str] = {}


# ---------------------------------------------------------------------------------------------
# cases


@dataclass(frozen=True)
class Case:
    """One keepalived configuration per node (a sample has one node, a seed pair two)."""

    name: str
    texts: tuple[str, ...]
    # a check script the files name that is not on this machine: replaced by one that
    # succeeds (default), or left missing to compare what each does then
    missing_scripts: bool = False

    @property
    def uses_ipvs(self) -> bool:
        return any(re.search(r"(?m)^\s*virtual_server(_group)?\s", t) for t in self.texts)

    @property
    def vrrp_only(self) -> bool:
        return not self.uses_ipvs

    def pending(self) -> list[str]:
        """The pending features (see PENDING) the case's files use."""
        found: list[str] = []
        for text in self.texts:
            for line in _code_lines(text):
                words = line.split()
                if words and words[0] in PENDING and PENDING[words[0]] not in found:
                    found.append(PENDING[words[0]])
        return found


def sample_cases() -> list[Case]:
    """keepalived's 25 samples (``keepalived.conf.NAME`` -> case ``NAME``)."""
    if not SAMPLES.is_dir():
        return []
    return [
        Case(p.name.removeprefix("keepalived.conf."), (p.read_text(),))
        for p in sorted(SAMPLES.glob("keepalived.conf.*"))
    ]


def seed_cases() -> list[Case]:
    """The seeds the repository carries (halo convert's corpus)."""
    return [
        Case(name, tuple((CORPUS / f).read_text() for f in files))
        for name, files in SEEDS.items()
        if all((CORPUS / f).is_file() for f in files)
    ]


def all_cases() -> list[Case]:
    cases = sample_cases() + seed_cases()
    # keepalived disables a track script it cannot find; compare that on its own
    cases += [
        Case(f"{c.name} (check script missing)", c.texts, missing_scripts=True)
        for c in seed_cases()
        if c.name == "seed-003"
    ]
    return cases


def _code_lines(text: str) -> Iterator[str]:
    """Lines without comments (``#`` and ``!``) and without a leading ``@config-id``."""
    for raw in text.splitlines():
        line = re.split(r"[#!]", raw, maxsplit=1)[0]
        line = re.sub(r"^\s*@\^?\S+\s", " ", line)
        if line.strip():
            yield line


def config_id(case: Case) -> str:
    """The ``-i`` both daemons get: the first ``@id`` the files use (keepalived's samples
    show the 'high' node first), else ``lab``."""
    for text in case.texts:
        m = re.search(r"(?m)^\s*@\^?(\w+)\s", text)
        if m:
            return m.group(1)
    return "lab"


# ---------------------------------------------------------------------------------------------
# rewriting a file for the lab

_V4 = re.compile(
    r"(?<![\w.:/-])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})?(?:/(\d{1,2}))?(?![\w.])"
)
_V6 = re.compile(r"(?<![\w:.])([0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7})(?:/(\d{1,3}))?(?![\w:])")
_IFNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")
_NOTIFY = re.compile(
    r"^(\s*(?:@\^?\S+\s+)?(?:notify\w*|\w*notify_fifo_script|misc_path)\s+)(\"[^\"]*\"|\S+)(.*)$"
)


def _kept_v4(a: IPv4Address) -> bool:
    """Addresses that stay as written: the lab's, and those no interface gets (any, loopback,
    multicast, masks)."""
    return (
        any(a in n for n in LAB_NETS)
        or int(a) == 0
        or a.is_loopback
        or a.is_multicast
        or int(a) >= int(IPv4Address("240.0.0.0"))
    )


@dataclass
class Rewritten:
    """A case made fit for the lab."""

    texts: tuple[str, ...]
    # per node: interface -> the base addresses the harness configures on it
    interfaces: tuple[dict[str, list[IPv4Interface]], ...]
    mapping: dict[str, str]  # original /24 (or address) -> lab block, for the report
    recorder_dir: Path
    ipv6: bool
    # the base names of MISC_CHECK scripts (misc_path): run every delay_loop, so which runs
    # happened is compared, not how many (that depends on when each daemon started)
    periodic: frozenset[str] = frozenset()

    def calls(self, text: str) -> Counter[str]:
        """The recorded calls of ``text``, a periodic script's each counted once."""
        out: Counter[str] = Counter()
        for line in text.splitlines():
            if line.split(" ", 1)[0] in self.periodic:
                out[line] = 1
            else:
                out[line] += 1
        return out


class _V4Map:
    """Each /24 the files use (outside the lab ranges) gets a block of the lab ranges; a host
    keeps its last octet modulo the block size. Blocks are as large as the number of /24s
    allows (a /24 each for up to three) and no two hosts of one /24 may meet."""

    def __init__(self, texts: Sequence[str]) -> None:
        hosts: dict[tuple[int, int, int], set[int]] = {}
        kept_24: set[int] = set()
        for text in texts:
            for m in _V4.finditer(text):
                octets = [int(x) for x in m.group(1, 2, 3)]
                last = int(m.group(4)) if m.group(4) is not None else 0
                if any(o > 255 for o in (*octets, last)):
                    continue
                addr = IPv4Address(".".join(map(str, (*octets, last))))
                if _kept_v4(addr):
                    if any(addr in n for n in LAB_NETS):
                        kept_24.add(int(addr) >> 8)
                    continue
                hosts.setdefault((octets[0], octets[1], octets[2]), set()).add(last)
        free = [n for n in LAB_NETS if int(n.network_address) >> 8 not in kept_24]
        self.size = 0
        self.blocks: dict[tuple[int, int, int], IPv4Network] = {}
        for size in (256, 128, 64, 32, 16):
            nblocks = sum(256 // size for _ in free)
            clash = any(len({h % size for h in hs}) != len(hs) for hs in hosts.values())
            if len(hosts) <= nblocks and not clash:
                self.size = size
                break
        if hosts and not self.size:
            raise ValueError("too many networks to map into the lab ranges")
        prefix = 32 - (self.size.bit_length() - 1) if self.size else 32
        spare: list[IPv4Network] = []
        for net in free:
            spare += list(net.subnets(new_prefix=prefix)) if self.size else []
        for key in sorted(hosts):
            self.blocks[key] = spare.pop(0)
        self.spare = spare  # blocks no file uses: for interfaces without a subnet
        self.prefix = prefix

    def address(self, octets: tuple[int, int, int], last: int) -> IPv4Address:
        block = self.blocks[octets]
        return block.network_address + (last % self.size)

    def sub(self, m: re.Match[str]) -> str:
        octets_s = m.group(1, 2, 3)
        octets = (int(octets_s[0]), int(octets_s[1]), int(octets_s[2]))
        if any(o > 255 for o in octets) or octets not in self.blocks:
            return m.group(0)
        plen = m.group(5)
        if m.group(4) is None:  # "192.168.100./24": keepalived's sample writes it so
            net = self.blocks[octets].network_address
            head = ".".join(str(net).split(".")[:3])
            return f"{head}./{plen}" if plen is not None else f"{head}."
        addr = self.address(octets, int(m.group(4)))
        if plen is None:
            return str(addr)
        p = int(plen)
        if p == 0:
            return f"{addr}/0"
        return f"{addr}/{max(p, self.prefix)}"


def _map_v6(m: re.Match[str]) -> str:
    text = m.group(1)
    try:
        addr = IPv6Address(text)
    except ValueError:
        return m.group(0)
    if addr in LAB_NET6 or addr.is_link_local or addr.is_multicast or addr.is_loopback:
        return m.group(0)
    if int(addr) == 0:
        return m.group(0)
    # 2001:db8:X::/48 per original /48, the low 80 bits kept
    top48 = int(addr) >> 80
    mapped = IPv6Address(
        (0x20010DB8 << 96) | ((top48 & 0xFFFF) << 80) | (int(addr) & ((1 << 80) - 1))
    )
    return str(mapped) + (f"/{m.group(2)}" if m.group(2) else "")


def _is_v6(text: str) -> bool:
    try:
        IPv6Address(text)
    except ValueError:
        return False
    return True


def interfaces_of(texts: Iterable[str]) -> list[str]:
    """The interface names the files use, in order of appearance."""
    names: list[str] = []

    def add(name: str) -> None:
        if _IFNAME.match(name) and name not in names and name not in ("lo", "default"):
            names.append(name)

    for text in texts:
        in_track = False
        for line in _code_lines(text):
            words = line.split()
            if in_track:
                if "}" in line:
                    in_track = False
                elif words:
                    add(words[0])
                continue
            for i, w in enumerate(words[:-1]):
                if w in (
                    "interface",
                    "dev",
                    "lvs_sync_daemon_interface",
                    "lvs_sync_daemon",
                    "default_interface",
                ):
                    add(words[i + 1])
            if words and words[0] in ("track_interface", "dont_track_primary") and "{" in line:
                in_track = "}" not in line
    return names


_SCRIPT = re.compile(r'^(\s*(?:@\^?\S+\s+)?script\s+"?)(/[^\s"]+)(.*)$')
SUCCEEDING = (
    "#!/bin/sh\n# equivalence harness: stands in for a check script this machine lacks\nexit 0\n"
)


def _recorder(dir: Path) -> str:
    return f"""#!/bin/sh
# equivalence harness: records a notify call (its name and arguments) for this namespace
ns=$(ip netns identify $$ 2>/dev/null)
printf '%s %s\\n' "$(basename "$0")" "$*" >> "{dir}/calls-$ns.log"
exit 0
"""


def rewrite(case: Case, recorder_dir: Path) -> Rewritten:
    """The case's files made fit for the lab (see the module docstring)."""
    v4 = _V4Map(case.texts)
    names = interfaces_of(case.texts) or ["eth0"]
    bin_dir = recorder_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    recorder = _recorder(recorder_dir)
    texts: list[str] = []
    periodic: set[str] = set()
    for text in case.texts:
        out_lines: list[str] = []
        for line in text.splitlines():
            code = re.split(r"(?<!\S)[#!]", line, maxsplit=1)[0]
            if re.match(r"^\s*(@\^?\S+\s+)?net_namespace\s", code):
                out_lines.append("# net_namespace: the harness runs each daemon in its own")
                continue
            m = _NOTIFY.match(code)
            if m and not re.match(r"^\s*\S*notify_fifo\s", code):
                value = m.group(2)
                quoted = value.startswith('"')
                inner = value.strip('"').strip()
                prog, _, args = inner.partition(" ")
                script = bin_dir / Path(prog).name
                if re.match(r"^\s*(?:@\^?\S+\s+)?misc_path\s", code):
                    periodic.add(script.name)
                if not script.exists():
                    script.write_text(recorder)
                    script.chmod(0o755)
                new = f"{script} {args.strip()}".strip()
                line = m.group(1) + (f'"{new}"' if quoted or args.strip() else new) + m.group(3)
            sm = _SCRIPT.match(code)
            if sm and not case.missing_scripts and not Path(sm.group(2)).exists():
                stub = recorder_dir / "checks" / Path(sm.group(2)).name
                stub.parent.mkdir(exist_ok=True)
                stub.write_text(SUCCEEDING)
                stub.chmod(0o755)
                line = sm.group(1) + str(stub) + sm.group(3)
            line = _V4.sub(v4.sub, line)
            line = _V6.sub(_map_v6, line)
            out_lines.append(line)
        new_text = "\n".join(out_lines) + "\n"
        if re.search(r"(?m)^\s*global_defs\s*\{", new_text):
            new_text = re.sub(
                r"(?m)^(\s*global_defs\s*\{)", r"\1\n   script_user root", new_text, count=1
            )
        else:
            new_text = "global_defs {\n   script_user root\n}\n" + new_text
        texts.append(new_text)
    ipv6 = any(_is_v6(m.group(1)) for t in texts for m in _V6.finditer(t))
    interfaces = _base_addresses(texts, names, v4)
    mapping = {f"{a}.{b}.{c}.0/24": str(net) for (a, b, c), net in sorted(v4.blocks.items())}
    return Rewritten(tuple(texts), interfaces, mapping, recorder_dir, ipv6, frozenset(periodic))


def _base_addresses(
    texts: Sequence[str], names: list[str], v4: _V4Map
) -> tuple[dict[str, list[IPv4Interface]], ...]:
    """Per node, the addresses the harness gives each interface so that what the file names
    is on-link where keepalived's author had it: a VIP's or a gateway's subnet on the
    interface of its line (``dev``, else the instance's ``interface``, else the first), the
    ``src``/``unicast_src_ip``/``mcast_src_ip`` addresses themselves, and an address of a
    spare block on any interface that would have none."""
    mentioned: set[IPv4Address] = set()
    for text in texts:
        for m in _V4.finditer(text):
            if m.group(4) is not None:
                with contextlib.suppress(ValueError):
                    mentioned.add(IPv4Address(".".join(m.group(1, 2, 3, 4))))
    blocks_by_net = {net: net for net in v4.blocks.values()}
    taken = set(mentioned)
    result: list[dict[str, list[IPv4Interface]]] = []
    per_iface_net: dict[str, set[IPv4Network]] = {n: set() for n in names}
    locals_by_node: list[dict[str, list[IPv4Interface]]] = []
    for text in texts:
        local: dict[str, list[IPv4Interface]] = {n: [] for n in names}
        current = names[0]
        routes_block = False  # in static_/virtual_ routes or rules: destinations are not on-link
        for line in _code_lines(text):
            words = line.split()
            if not words:
                continue
            if routes_block:
                if "}" in line and len(words) == 1:
                    routes_block = False
                    continue
            elif words[0].endswith(("_routes", "_rules")) and "{" in line:
                routes_block = "}" not in line
                continue
            if words[0] == "interface" and len(words) > 1 and words[1] in local:
                current = words[1]
                continue
            if words[0] == "vrrp_instance":
                current = names[0]
            dev = current
            if "dev" in words[:-1]:
                d = words[words.index("dev") + 1]
                if d in local:
                    dev = d
            for i, w in enumerate(words):
                try:
                    a = IPv4Address(w.split("/")[0])
                except ValueError:
                    continue
                if a.is_loopback or a.is_multicast or int(a) == 0 or int(a) >= 0xF0000000:
                    continue
                net = _block_of(a, v4, blocks_by_net)
                if net is None:
                    continue
                prev = words[i - 1] if i else ""
                if prev in ("src", "unicast_src_ip", "mcast_src_ip"):
                    iface = IPv4Interface(f"{a}/{net.prefixlen}")
                    if iface not in local[dev]:
                        local[dev].append(iface)
                elif routes_block and prev not in ("via", "gw", "or"):
                    continue  # a route's or rule's destination
                per_iface_net[dev].add(net)
        locals_by_node.append(local)
    # Every interface needs an IPv4 address (keepalived sends from it): a spare block for
    # one that the files give none.
    for name in names:
        if not per_iface_net[name]:
            per_iface_net[name].add(v4.spare.pop(0) if v4.spare else IPv4Network("203.0.113.0/28"))
    for local in locals_by_node:
        node: dict[str, list[IPv4Interface]] = {}
        for name in names:
            addrs = list(local[name])
            for net in sorted(per_iface_net[name]):
                if any(a.ip in net for a in addrs):
                    continue
                host = _free_host(net, taken)
                taken.add(host)
                addrs.append(IPv4Interface(f"{host}/{net.prefixlen}"))
            node[name] = addrs
        result.append(node)
    return tuple(result)


def _block_of(
    a: IPv4Address, v4: _V4Map, blocks: dict[IPv4Network, IPv4Network]
) -> IPv4Network | None:
    for net in blocks:
        if a in net:
            return net
    for lab in LAB_NETS:
        if a in lab:
            return lab
    return None


def _free_host(net: IPv4Network, taken: set[IPv4Address]) -> IPv4Address:
    hosts = list(net.hosts()) or [net.network_address]
    for h in reversed(hosts):
        if h not in taken:
            return h
    raise ValueError(f"no free address in {net}")


# ---------------------------------------------------------------------------------------------
# running one side


@dataclass
class Observed:
    """What one implementation did, after settling."""

    impl: str
    started: bool = True
    exit_note: str = ""  # set when a daemon exited early
    addresses: list[set[tuple[str, ...]]] = field(default_factory=list)  # per node
    primaries: list[set[tuple[str, ...]]] = field(default_factory=list)
    routes: list[set[str]] = field(default_factory=list)
    rules: list[set[str]] = field(default_factory=list)
    adverts: set[tuple[Any, ...]] = field(default_factory=set)
    calls: list[Counter[str]] = field(default_factory=list)
    states: list[dict[str, str]] = field(default_factory=list)
    nft: list[str] = field(default_factory=list)
    ipvs: list[str] = field(default_factory=list)
    halo_ipvs_matches: bool | None = None
    log_tail: str = ""
    convert_summary: str = ""


def _addresses(host: Host, primary: bool = False) -> set[tuple[str, ...]]:
    """(device, address/prefix, scope, label) of every address; with *primary*, only the
    primary address of each subnet (the one its routes take as source)."""
    out: set[tuple[str, ...]] = set()
    for link in host.ip_json("addr", "show"):
        for ai in link.get("addr_info", []):
            if "local" not in ai or (primary and ai.get("secondary")):
                continue
            label = ai.get("label") or ""
            out.add(
                (
                    str(link.get("ifname")),
                    f"{ai['local']}/{ai.get('prefixlen')}",
                    str(ai.get("scope", "")),
                    label if label != link.get("ifname") else "",
                )
            )
    return out


_ROUTE_NOISE = ("expires", "pref", "metrics")


def _routes(host: Host) -> set[str]:
    out = set()
    for fam in ("-4", "-6"):
        for r in host.ip_json(fam, "route", "show", "table", "all"):
            for k in _ROUTE_NOISE:
                r.pop(k, None)
            out.add(json.dumps(r, sort_keys=True))
    return out


def _rules(host: Host) -> set[str]:
    out = set()
    for fam in ("-4", "-6"):
        for r in host.ip_json(fam, "rule", "show"):
            out.add(json.dumps(r, sort_keys=True))
    return out


_KA_STATE = re.compile(r"\((\S+)\) Entering (\w+) STATE")
_HALO_STATE = re.compile(r"(?<![\w-])([\w.-]+): entering (\w+) state")


def _last_states(log: str, rx: re.Pattern[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in rx.finditer(log):
        out[m.group(1)] = m.group(2).upper()
    return out


def _ifname_segment(name: str, names: list[str]) -> str:
    return "br0" if name == "eth0" else f"bx{names.index(name)}"


class Side:
    """One implementation's lab: a namespace per node, a segment per interface name."""

    def __init__(
        self,
        impl: str,
        case: Case,
        rw: Rewritten,
        workdir: Path,
        *,
        with_ipvs: bool,
    ) -> None:
        self.impl = impl
        self.case = case
        self.rw = rw
        self.workdir = workdir / impl
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.with_ipvs = with_ipvs
        self.names = list(rw.interfaces[0])
        self.lab = Lab(len(case.texts), ipv6=rw.ipv6, ready_timeout=5 * SLOW)
        self.captures: dict[str, Capture] = {}
        self.daemons: list[Keepalived | Halo] = []
        self.convert_summary = ""
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        sw = self.lab.switch_node
        batch: list[str] = []
        segments = ["br0"]
        for j, name in enumerate(self.names):
            if name == "eth0":
                continue
            seg = f"bx{j}"
            segments.append(seg)
            batch += [
                f"link add {seg} type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
                f"link set {seg} up",
            ]
            for h in self.lab.hosts:
                port = f"p{h.index}x{j}"
                batch.append(f"link add {port} type veth peer name {name} netns {h.ns}")
                batch.append(f"link set {port} master {seg} up")
        if batch:
            sw.ip("-batch", "-", input="\n".join(batch) + "\n")
        for i, h in enumerate(self.lab.hosts):
            h.ip("-4", "addr", "flush", "dev", "eth0")  # the lab's own: the case's instead
            hb = []
            for j, name in enumerate(self.names):
                if name != "eth0":
                    hb.append(f"link set {name} address 02:48:4c:{h.index:02x}:{j:02x}:01")
                for a in self.rw.interfaces[i][name]:
                    hb.append(f"addr add {a} dev {name}")
                hb.append(f"link set {name} up")
            h.ip("-batch", "-", input="\n".join(hb) + "\n")
        ok = wait_until(
            lambda: all(
                all(
                    link.get("operstate") in ("UP", "UNKNOWN")
                    for link in h.ip_json("link", "show")
                    if link.get("ifname") in self.names
                )
                for h in self.lab.hosts
            ),
            5.0,
        )
        if not ok:
            raise RuntimeError("the lab's interfaces did not come up")
        for seg in segments:
            self.captures[seg] = Capture(
                sw,
                seg,
                self.workdir / f"{seg}.pcap",
                # keepalived's `auth_type AH` adverts are IP protocol 51 around the VRRP
                filter="vrrp,proto=51",
                ready_timeout=10 * SLOW,
            )

    def start(self, cid: str) -> None:
        for i, (h, text) in enumerate(zip(self.lab.hosts, self.rw.texts, strict=True)):
            if self.impl == "keepalived":
                self.daemons.append(
                    Keepalived(
                        h,
                        text,
                        self.workdir,
                        name=f"n{i}",
                        vrrp_only=not self.with_ipvs,
                        extra_args=["-i", cid],
                    )
                )
            else:
                conf = self.workdir / f"n{i}.conf"
                conf.write_text(text)
                out = self.workdir / f"n{i}.converted.yaml"
                # what `halo convert -i ID -o OUT FILE` writes (test_keepalived_samples.py
                # checks that the command's output is this), without a process per node
                try:
                    result = convert_file(str(conf), config_id=cid, plugins=_plugins())
                except ConvertError as exc:
                    raise CaseError(f"halo convert refuses it: {exc}") from exc
                out.write_text(result.yaml)
                self.convert_summary = result.summary()
                data = yaml.safe_load(out.read_text()) or {}
                g = data.setdefault("global", None) or {}
                data["global"] = g
                g["log_format"] = "json"  # the harness reads the states from the log
                # a directory of its own on a file system that takes unix sockets (the
                # IPVS VM shares the work directory over 9p, which does not)
                g["state_dir"] = str(self.rw.recorder_dir / f"{self.impl}-n{i}.state")
                self.daemons.append(
                    Halo(h, yaml.safe_dump(data, sort_keys=False), self.workdir, name=f"n{i}")
                )
            # the nodes of a pair start one after the other, as the seeds' tests do
            if i + 1 < len(self.lab.hosts):
                time.sleep(0.5)

    def ready(self) -> bool:
        """Every halo daemon of this side has started, worker included, or has exited."""
        return all(_halo_ready(d) or not d.running for d in self.daemons if isinstance(d, Halo))

    def snapshot(self, span: float) -> tuple[Any, ...]:
        """What may still change while the daemons settle."""
        states = []
        for d in self.daemons:
            if isinstance(d, Keepalived):
                states.append(_last_states(d.log, _KA_STATE))
            else:
                states.append(_halo_states(d))
        addrs = [_addresses(h) for h in self.lab.hosts]
        t = time.time() - span
        adverts = set()
        for seg, cap in self.captures.items():
            for f in read_pcap(cap.path):
                a = parse_vrrp(f) if f.time >= t else None  # the lab's codec: fast enough
                if a is not None:
                    adverts.add((seg, a.src_mac, a.vrid, a.priority, a.addresses))
        if not self.ready():
            return (time.monotonic(),)  # still starting: never "stable"
        calls = []
        for h in self.lab.hosts:
            path = self.rw.recorder_dir / f"calls-{h.ns}.log"
            calls.append(sorted(self.rw.calls(path.read_text() if path.exists() else "").items()))
        ipvs = [_ipvsadm(h) for h in self.lab.hosts] if self.with_ipvs else []
        return (states, addrs, adverts, calls, ipvs)

    def observe(self, since: float) -> Observed:
        obs = Observed(self.impl, convert_summary=self.convert_summary)
        for d in self.daemons:
            if not d.running:
                obs.exit_note = f"{self.impl} exited ({d.proc.returncode})"
        for i, (h, d) in enumerate(zip(self.lab.hosts, self.daemons, strict=True)):
            obs.addresses.append(_addresses(h))
            obs.primaries.append(_addresses(h, primary=True))
            obs.routes.append(_routes(h))
            obs.rules.append(_rules(h))
            log = d.log if isinstance(d, Keepalived) else d.proc.log_text()
            if isinstance(d, Keepalived):
                obs.states.append(_last_states(log, _KA_STATE))
            else:
                obs.states.append({k: v for k, v in _halo_states(d).items()})
            calls_path = self.rw.recorder_dir / f"calls-{h.ns}.log"
            obs.calls.append(self.rw.calls(calls_path.read_text() if calls_path.exists() else ""))
            if shutil.which("nft"):
                cp = h.run("nft", "list", "ruleset", check=False, timeout=30 * SLOW)
                obs.nft.append(cp.stdout.strip())
            if self.with_ipvs:
                obs.ipvs.append(_ipvsadm(h))
                if self.impl == "halo":
                    shown = h.run(
                        sys.executable,
                        "-m",
                        "halo_core.cli",
                        "ipvs",
                        check=False,
                        timeout=120 * SLOW,
                    ).stdout
                    obs.halo_ipvs_matches = shown == obs.ipvs[-1]
            obs.log_tail += (
                f"--- {self.impl} node {i} ---\n"
                + "\n".join((log if isinstance(d, Keepalived) else d.log).splitlines()[-25:])
                + "\n"
            )
        for seg, cap in self.captures.items():
            for adv in _scapy_adverts(cap.path, since):
                obs.adverts.add((seg, *adv))
        return obs

    def close(self) -> None:
        for d in self.daemons:
            with contextlib.suppress(Exception):
                if d.running:
                    d.stop(10 * SLOW)
        for cap in self.captures.values():
            with contextlib.suppress(Exception):
                cap.stop()
        self.lab.close()


def _halo_ready(d: Halo) -> bool:
    """halo has started, and its worker (checks, notifiers) too if it has one."""
    log = d.log
    if not re.search(r"halo \S+ started with", log):
        return False
    return "worker process" not in log or re.search(r"worker process \d+ ready", log) is not None


@functools.cache
def _plugins() -> Plugins:
    return plugin_loader.load()


def _halo_states(d: Halo) -> dict[str, str]:
    out: dict[str, str] = {}
    for msg in d.messages():
        m = _HALO_STATE.search(msg)
        if m:
            out[m.group(1)] = m.group(2).upper()
    return out


def _ipvsadm(h: Host) -> str:
    if not shutil.which("ipvsadm"):
        return ""
    return h.run("ipvsadm", "-Ln", check=False, timeout=30 * SLOW).stdout


def _scapy_adverts(pcap: Path, since: float) -> set[tuple[Any, ...]]:
    """(source address and MAC, version, vrid, priority, interval s, addresses, auth type)
    of each advert
    captured after *since*, decoded by scapy (independent of halo's codec)."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.ipsec import AH
    from scapy.layers.l2 import Ether
    from scapy.layers.vrrp import VRRP, VRRPv3

    out: set[tuple[Any, ...]] = set()
    for f in read_pcap(pcap):
        if f.time < since:
            continue
        pkt = Ether(f.data)
        ip = str(pkt[IP].src) if IP in pkt else str(pkt[IPv6].src) if IPv6 in pkt else "?"
        src = f"{ip} {pkt[Ether].src}"
        # keepalived's AH: the VRRPv2 advert follows AH's header
        ah = VRRP(bytes(pkt[AH].payload)) if AH in pkt and pkt[AH].nh == 112 else None
        if VRRPv3 in pkt:
            v3 = pkt[VRRPv3]
            out.add(
                (
                    src,
                    3,
                    int(v3.vrid),
                    int(v3.priority),
                    int(v3.adv) / 100,
                    tuple(sorted(str(a) for a in v3.addrlist)),
                    None,
                )
            )
        elif ah is not None or VRRP in pkt:
            v2 = ah if ah is not None else pkt[VRRP]
            out.add(
                (
                    src,
                    int(v2.version),
                    int(v2.vrid),
                    int(v2.priority),
                    float(v2.adv),
                    tuple(sorted(str(a) for a in v2.addrlist)),
                    int(v2.authtype),
                )
            )
    return out


# ---------------------------------------------------------------------------------------------
# comparing and the verdict


class CaseError(Exception):
    """The case could not be run here (one line)."""


@dataclass
class Verdict:
    case: str
    kind: str  # "same", "differs", "not runnable"
    details: list[tuple[str, str]] = field(default_factory=list)  # (category, text)
    pending: list[str] = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0

    @property
    def categories(self) -> set[str]:
        return {cat for cat, _ in self.details}

    def cell(self) -> str:
        if self.kind == "same":
            return "same"
        if self.kind == "not runnable":
            return f"not runnable here: {self.note}"
        what = "; ".join(text for _, text in self.details)
        if self.pending:
            return f"differs: feature pending ({', '.join(self.pending)}): {what}"
        return f"differs: {what}"


def _fmt(items: Iterable[Any]) -> str:
    return ", ".join(sorted(str(i) for i in items)) or "nothing"


CATEGORIES = (
    "ran",
    "states",
    "addresses",
    "primary",
    "routes",
    "route-protocol",
    "rules",
    "notify",
    "adverts",
    "nftables",
    "ipvs",
)


def compare(ka: Observed, ha: Observed) -> list[tuple[str, str]]:
    """Every difference between keepalived's and halo's observations: (category, text)."""
    diffs: list[tuple[str, str]] = []
    if (ka.exit_note or ha.exit_note) and (
        ka.exit_note != ha.exit_note.replace("halo", "keepalived")
    ):
        diffs.append(("ran", f"keepalived {ka.exit_note or 'ran'}, halo {ha.exit_note or 'ran'}"))
    n = max(len(ka.addresses), len(ha.addresses))
    for i in range(n):
        diffs += _compare_node(ka, ha, i, f"node {i + 1}: " if n > 1 else "")
    if ka.adverts != ha.adverts:
        only_ka = ka.adverts - ha.adverts
        only_ha = ha.adverts - ka.adverts
        diffs.append(
            (
                "adverts",
                f"adverts only keepalived: {_fmt(map(_advert_text, only_ka))}"
                f"; only halo: {_fmt(map(_advert_text, only_ha))}",
            )
        )
    if ha.halo_ipvs_matches is False:
        diffs.append(("ipvs", "`halo ipvs` differs from `ipvsadm -Ln` on halo's node"))
    return diffs


def _compare_node(ka: Observed, ha: Observed, i: int, node: str) -> list[tuple[str, str]]:
    """The differences on the *i*-th node of the case."""
    diffs: list[tuple[str, str]] = []

    def pair(attr: str, default: Any) -> tuple[Any, Any]:
        a, b = getattr(ka, attr), getattr(ha, attr)
        return (a[i] if i < len(a) else default, b[i] if i < len(b) else default)

    def only(cat: str, what: str, a: Iterable[str], b: Iterable[str]) -> None:
        diffs.append((cat, f"{node}{what} only keepalived: {_fmt(a)}; only halo: {_fmt(b)}"))

    sa, sb = pair("states", {})
    if sa != sb:
        keys = sorted(set(sa) | set(sb))
        bad = [f"{k} {sa.get(k, '-')}/{sb.get(k, '-')}" for k in keys if sa.get(k) != sb.get(k)]
        diffs.append(("states", f"{node}states (keepalived/halo): {', '.join(bad)}"))
    aa, ab = pair("addresses", set())
    if aa != ab:
        only("addresses", "addresses", _addr_texts(aa - ab), _addr_texts(ab - aa))
    pa, pb = pair("primaries", set())
    if pa != pb and aa == ab:
        only("primary", "primary address", _addr_texts(pa - pb), _addr_texts(pb - pa))
    ra, rb = pair("routes", set())
    pa_, pb_ = _by_protocol(ra), _by_protocol(rb)
    if set(pa_) != set(pb_):
        only(
            "routes",
            "routes",
            map(_route_text, set(pa_) - set(pb_)),
            map(_route_text, set(pb_) - set(pa_)),
        )
    protos = Counter((pa_[k], pb_[k]) for k in set(pa_) & set(pb_) if pa_[k] != pb_[k])
    if protos:
        text = ", ".join(
            f"{n} 'proto {a}' in keepalived, 'proto {b}' in halo"
            for (a, b), n in sorted(protos.items())
        )
        diffs.append(("route-protocol", f"{node}routes: {text}"))
    ua, ub = pair("rules", set())
    if ua != ub:
        only("rules", "rules", map(_route_text, ua - ub), map(_route_text, ub - ua))
    ca, cb = pair("calls", Counter())
    if ca != cb:
        only("notify", "notify calls", (ca - cb).elements(), (cb - ca).elements())
    nft_diff = nft_effect.compare(*pair("nft", ""))
    if nft_diff is not None:
        diffs.append(("nftables", f"{node}nftables: {nft_diff}"))
    ia, ib = pair("ipvs", "")
    if ia != ib:
        diffs.append(("ipvs", f"{node}IPVS table: keepalived {ia!r}, halo {ib!r}"))
    return diffs


def _addr_texts(items: Iterable[tuple[str, ...]]) -> list[str]:
    return [" ".join(x for x in t if x) for t in items]


def _by_protocol(routes: Iterable[str]) -> dict[str, str]:
    """route without its protocol (and preferred source) -> the protocol. The kernel's
    routes for a subnet take the subnet's primary address as source, which is compared on
    its own (category "primary")."""
    out = {}
    for r in routes:
        d = json.loads(r)
        d.pop("prefsrc", None)
        proto = str(d.pop("protocol", ""))
        out[json.dumps(d, sort_keys=True)] = proto
    return out


def _route_text(r: str) -> str:
    d = json.loads(r)
    parts = [str(d.pop("dst", d.pop("src", "")))]
    for k in ("gateway", "dev", "table", "type", "scope", "prefsrc", "priority", "protocol"):
        if k in d:
            parts.append(f"{k} {d[k]}")
    for k in ("from", "to"):
        if k in d:
            parts.append(f"{k} {d[k]}")
    return " ".join(parts)


def _advert_text(x: tuple[Any, ...]) -> str:
    seg, src, version, vrid, prio, interval, addrs, auth = x
    a = f" auth {auth}" if auth is not None else ""
    mac = src.split()[-1]
    return (
        f"[{seg} from {mac} v{version} vrid {vrid} prio {prio} int {interval:g}{a}"
        f" {'/'.join(addrs)}]"
    )


def advert_interval(case: Case) -> float:
    """The slowest advert interval of the case's instances (keepalived's default 1 s)."""
    ints = [1.0]
    for text in case.texts:
        for m in re.finditer(r"(?m)^\s*(?:@\^?\S+\s+)?advert_int\s+([\d.]+)", text):
            with contextlib.suppress(ValueError):
                ints.append(float(m.group(1)))
    return max(ints)


def check_time(case: Case) -> float:
    """The longest a track script takes to change state: interval x max(rise, fall)."""
    longest = 0.0
    for text in case.texts:
        for block in re.findall(r"(?ms)^\s*vrrp_script\s+\S+\s*\{(.*?)^\s*\}", text):

            def num(key: str, default: float, body: str = block) -> float:
                m = re.search(rf"(?m)^\s*(?:@\^?\S+\s+)?{key}\s+([\d.]+)", body)
                return float(m.group(1)) if m else default

            longest = max(longest, num("interval", 1) * max(num("rise", 1), num("fall", 1)))

        # a real server's checker: the first check after delay_loop, then its retries
        def most(key: str, default: float, body: str = text) -> float:
            found = re.findall(rf"(?m)^\s*(?:@\^?\S+\s+)?{key}\s+([\d.]+)", body)
            return max([float(x) for x in found] or [default])

        if re.search(r"(?m)^\s*real_server\s", text):
            retries = max(most("retry", 1), most("nb_get_retry", 1))
            per_try = most("connect_timeout", 5) + most("delay_before_retry", 1)
            longest = max(longest, most("delay_loop", 60) + (retries + 1) * per_try)
    return longest


def wait_stable(sides: Sequence[Side], span: float, max_wait: float) -> bool:
    """Wait until neither side changes (states, addresses, the adverts of the last *span*
    seconds, notify calls) for *span* + 1 s: checks and tracked interfaces have moved the
    priorities where they go, the notify scripts have run (halo's run in its worker, which
    may start seconds after the VRRP process). False after *max_wait*."""
    deadline = time.monotonic() + max_wait
    last: list[Any] = []
    since = time.monotonic()
    while time.monotonic() < deadline:
        now = [s.snapshot(span) for s in sides]
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= span + 1.0:
            return True
        time.sleep(0.25 * SLOW)  # a snapshot runs a dozen processes: slow under emulation
    return False


@contextlib.contextmanager
def recorder_directory() -> Iterator[Path]:
    """A root-owned 0755 directory under /run for the recorder scripts and their logs
    (keepalived refuses scripts in a directory others may write)."""
    d = Path(tempfile.mkdtemp(prefix="halo-equiv-", dir="/run"))
    try:
        d.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def ipvs_here() -> bool:
    return os.path.exists("/proc/net/ip_vs")


def run_case(case: Case, workdir: Path, *, ipvs: bool | None = None) -> Verdict:
    """Run *case* with keepalived and with halo side by side and judge it."""
    with_ipvs = ipvs_here() if ipvs is None else ipvs
    if case.uses_ipvs and not with_ipvs:
        return Verdict(
            case.name,
            "not runnable",
            note="IPVS: this kernel has none (run it in the VM: bench/equivalence/run.py --vm)",
        )
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with recorder_directory() as rec:
        try:
            rw = rewrite(case, rec)
        except ValueError as exc:
            return Verdict(case.name, "not runnable", note=str(exc))
        cid = config_id(case)
        sides: list[Side] = []
        try:
            for impl in ("keepalived", "halo"):
                sides.append(Side(impl, case, rw, workdir, with_ipvs=with_ipvs and case.uses_ipvs))
            for s in sides:
                s.start(cid)
            # the settle time counts from halo being ready: under emulation its worker takes
            # minutes to start, and a clock started with the processes ran out before it
            # had programmed anything (what was compared then was a half-started halo)
            if not wait_until(lambda: sides[1].ready(), READY_LIMIT * SLOW, interval=0.5):
                return Verdict(
                    case.name,
                    "not runnable",
                    note=f"halo was not ready after {READY_LIMIT * SLOW:.0f} s (too slow here)",
                )
            interval = advert_interval(case)
            time.sleep(3 * interval + 1)  # Master_Down_Interval: the first elections
            span = interval + 1.0
            limit = (40.0 + 3 * interval + check_time(case)) * SLOW
            settled = wait_stable(sides, max(span, check_time(case)), max_wait=limit)
            since = time.time()
            time.sleep(span)
            ka, ha = (s.observe(since) for s in sides)
        except CaseError as exc:
            return Verdict(
                case.name, "differs", details=[("ran", str(exc))], pending=case.pending()
            )
        except Exception as exc:  # the harness could not run it: say so, run the others
            return Verdict(case.name, "not runnable", note=f"harness: {exc}"[:300])
        finally:
            for s in sides:
                s.close()
        (workdir / "logs.txt").write_text(ka.log_tail + ha.log_tail)
        (workdir / "rewritten.conf").write_text("\n### next node\n".join(rw.texts))
        # A worker killed before it was ever ready (its start limit, under emulation) that
        # then started is compared; one killed once ready leaves nothing to compare.
        at_start = late = 0
        for d in sides[1].daemons:
            log, *since = re.split(r"worker process \d+ ready", d.log, maxsplit=1)
            since_ready = since[0] if since else ""
            at_start += log.count("answered nothing for")
            late += since_ready.count("answered nothing for")
        if late:  # the machine is too slow for halo's supervisor: nothing to compare
            return Verdict(
                case.name,
                "not runnable",
                note=f"halo's worker was killed {late} times by its hang limit (too slow here)",
            )
        diffs = compare(ka, ha)
        notes = [] if settled else ["still changing after the settle time"]
        if at_start:
            notes.append(f"halo's worker was killed {at_start} times by its start limit first")
        note = "; ".join(notes)
        seconds = time.monotonic() - t0
        if not diffs:
            return Verdict(case.name, "same", note=note, seconds=seconds)
        return Verdict(
            case.name, "differs", details=diffs, pending=case.pending(), note=note, seconds=seconds
        )


def run_cases(cases: Sequence[Case], workdir: Path, *, jobs: int = 2) -> list[Verdict]:
    """Every case, *jobs* at a time (each case in labs of its own)."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_case, c, workdir / c.name) for c in cases]
        return [f.result() for f in futures]


def markdown_table(verdicts: Sequence[Verdict]) -> str:
    lines = ["| sample | verdict |", "| --- | --- |"]
    for v in verdicts:
        cell = v.cell().replace("|", "\\|")
        lines.append(f"| {v.case} | {cell} |")
    return "\n".join(lines) + "\n"
