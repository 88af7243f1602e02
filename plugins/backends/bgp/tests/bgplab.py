"""A routed lab for the BGP tests and the benchmark: two server nodes and a router on one
segment (192.0.2.0/24, 2001:db8::/64), a client behind the router on its own link
(198.51.100.0/24). The client reaches the service address 203.0.113.10 only through the
router, which learns it over BGP from the nodes. The router is FRR (zebra + bgpd, and bfdd
for BFD) or BIRD 2, each started by hand in the router's namespace with its configuration,
pid file and control socket in the test's directory (nothing in /etc or /run).

Everything lives in namespaces of one :class:`halo_tool_lab.Lab` and goes with it.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from halo_tool_lab.netns import Host, Lab, Proc, wait_until

FARM = Path(__file__).resolve().parents[2] / "nftables" / "tests" / "farm.py"
FRR_DAEMONS = Path("/usr/lib/frr")
VIP = "203.0.113.10"
VIP6 = "2001:db8:ff::10"
PORT = 8080
ROUTER_AS = 65000
NODE_AS = 65001
CLIENT = "198.51.100.2"
CLIENT_GW = "198.51.100.1"


def frr_available() -> str | None:
    """None when FRR's daemons can run here, else why not."""
    missing = [d for d in ("zebra", "bgpd") if not (FRR_DAEMONS / d).exists()]
    if missing or shutil.which("vtysh") is None:
        return "FRR not installed (Debian package frr; scripts/test installs it as root)"
    return None


@dataclass
class Topology:
    lab: Lab
    n1: Host
    n2: Host
    router: Host
    client: Host
    workdir: Path
    router_class: Any = None  # the Router subclass a test runs against

    @property
    def nodes(self) -> list[Host]:
        return [self.n1, self.n2]


def build(lab: Lab, workdir: Path) -> Topology:
    """Wire a lab made with hosts ``n1 n2 r c``: the client leaves the segment (its eth0 goes
    down) for a veth link to the router; the nodes route the client subnet via the router."""
    n1, n2, r, c = (lab.host(n) for n in ("n1", "n2", "r", "c"))
    c.ip("link", "set", "eth0", "down")
    r.ip("link", "add", "eth1", "type", "veth", "peer", "name", "eth1", "netns", c.ns)
    r.ip("addr", "add", f"{CLIENT_GW}/24", "dev", "eth1")
    r.ip("addr", "add", "2001:db8:c::1/64", "dev", "eth1", "nodad")
    r.ip("link", "set", "eth1", "up")
    c.ip("addr", "add", f"{CLIENT}/24", "dev", "eth1")
    c.ip("addr", "add", "2001:db8:c::2/64", "dev", "eth1", "nodad")
    c.ip("link", "set", "eth1", "up")
    c.ip("route", "add", "default", "via", CLIENT_GW)
    c.ip("-6", "route", "add", "default", "via", "2001:db8:c::1")
    r.sysctl(
        {
            "net.ipv4.ip_forward": 1,
            "net.ipv6.conf.all.forwarding": 1,
            "net.ipv4.conf.all.send_redirects": 0,
            "net.ipv4.conf.eth0.send_redirects": 0,
            # ECMP by flow (addresses and ports), so that connections spread over both nodes
            "net.ipv4.fib_multipath_hash_policy": 1,
            "net.ipv6.fib_multipath_hash_policy": 1,
        }
    )
    for n in (n1, n2):
        n.ip("route", "add", "198.51.100.0/24", "via", str(r.ipv4))
        n.ip("-6", "route", "add", "2001:db8:c::/64", "via", str(r.ipv6))
    return Topology(lab, n1, n2, r, c, workdir)


# ------------------------------------------------------------------------------ routers


class Router:
    kind = "router"

    def routes(self, prefix: str = VIP) -> list[str]:
        """The next hops of *prefix* in the router's kernel table (what it forwards with)."""
        family = "-6" if ":" in prefix else "-4"
        out = self.host.ip_json(family, "route", "show", prefix)
        hops: list[str] = []
        for route in out:
            if "gateway" in route:
                hops.append(route["gateway"])
            hops += [h["gateway"] for h in route.get("nexthops", []) if "gateway" in h]
        return sorted(hops)

    def wait_routes(self, hops: list[str], prefix: str = VIP, timeout: float = 30.0) -> bool:
        return wait_until(lambda: self.routes(prefix) == sorted(hops), timeout, 0.05)

    host: Host
    procs: list[Proc]

    def __init__(self, topo: Topology, hold: int = 3, bfd: bool = False) -> None:
        raise NotImplementedError

    def communities(self, prefix: str = VIP) -> set[str]:
        """The communities the router holds on its best route to *prefix*."""
        raise NotImplementedError

    def stop(self) -> None:
        for p in self.procs:
            p.terminate_and_wait(5.0)


class FrrRouter(Router):
    """zebra + bgpd (+ bfdd) in the router's namespace, multipath on."""

    kind = "frr"

    def __init__(self, topo: Topology, hold: int = 3, bfd: bool = False) -> None:
        self.host = topo.router
        self.dir = frr_directory(topo.workdir, "frr-router")
        neighbors = ""
        for n in topo.nodes:
            neighbors += (
                f" neighbor {n.ipv4} remote-as {NODE_AS}\n"
                f" neighbor {n.ipv4} timers 1 {hold}\n"
                f" neighbor {n.ipv4} timers connect 1\n"
                f" neighbor {n.ipv6} remote-as {NODE_AS}\n"
                f" neighbor {n.ipv6} timers 1 {hold}\n"
                f" neighbor {n.ipv6} timers connect 1\n"
            )
            if bfd:
                neighbors += f" neighbor {n.ipv4} bfd\n neighbor {n.ipv4} bfd profile fast\n"
        bgpd = (
            "hostname r\n"
            f"router bgp {ROUTER_AS}\n bgp router-id {self.host.ipv4}\n"
            " no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n"
            " bgp bestpath as-path multipath-relax\n"
            f"{neighbors}"
            " address-family ipv4 unicast\n"
            + "".join(f"  neighbor {n.ipv4} activate\n" for n in topo.nodes)
            + "  maximum-paths 8\n exit-address-family\n"
            " address-family ipv6 unicast\n"
            + "".join(f"  neighbor {n.ipv6} activate\n" for n in topo.nodes)
            + "  maximum-paths 8\n exit-address-family\n"
        )
        self.procs = start_frr(self.host, self.dir, bgpd, BFDD_CONF if bfd else None)

    def vtysh(self, command: str) -> str:
        return self.host.run("vtysh", "--vty_socket", str(self.dir), "-c", command).stdout

    def communities(self, prefix: str = VIP) -> set[str]:
        family = "ipv6" if ":" in prefix else "ipv4"
        text = self.vtysh(f"show bgp {family} unicast {prefix}/{128 if ':' in prefix else 32}")
        return {w for ln in text.splitlines() if "Community:" in ln for w in ln.split()[1:]}


@dataclass
class NodeFrr:
    """FRR on a server node: the speaker of ``speaker: frr`` (halo adds its networks)."""

    dir: Path
    procs: list[Proc]

    @property
    def vtysh(self) -> list[str]:
        return ["vtysh", "--vty_socket", str(self.dir)]


def node_frr_conf(topo: Topology, node: Host, hold: int = 3, bfd: bool = False) -> str:
    r = topo.router
    conf = (
        f"router bgp {NODE_AS}\n bgp router-id {node.ipv4}\n"
        " no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n"
        f" neighbor {r.ipv4} remote-as {ROUTER_AS}\n neighbor {r.ipv4} timers 1 {hold}\n"
        f" neighbor {r.ipv4} timers connect 1\n"
    )
    if bfd:
        conf += f" neighbor {r.ipv4} bfd\n neighbor {r.ipv4} bfd profile fast\n"
    return (
        conf + f" address-family ipv4 unicast\n  neighbor {r.ipv4} activate\n exit-address-family\n"
    )


BFDD_CONF = (
    "bfd\n profile fast\n  detect-multiplier 3\n  receive-interval 100\n"
    "  transmit-interval 100\n exit\nexit\n"
)


def start_node_frr(topo: Topology, node: Host, hold: int = 3, bfd: bool = False) -> NodeFrr:
    directory = frr_directory(topo.workdir, f"frr-{node.name}")
    conf = node_frr_conf(topo, node, hold, bfd)
    return NodeFrr(directory, start_frr(node, directory, conf, BFDD_CONF if bfd else None))


def frr_directory(parent: Path, name: str) -> Path:
    """A directory FRR's daemons (which run as user frr) can write: *parent* is pytest's
    private tmp_path, so this one is made in /tmp and removed by :func:`remove_frr_dirs`."""
    directory = Path(tempfile.mkdtemp(prefix=f"halo-{name}-"))
    directory.chmod(0o755)
    shutil.chown(directory, "frr", "frr")
    (parent / f"{name}.path").write_text(str(directory))
    _FRR_DIRS.append(directory)
    return directory


_FRR_DIRS: list[Path] = []


def remove_frr_dirs() -> None:
    while _FRR_DIRS:
        shutil.rmtree(_FRR_DIRS.pop(), ignore_errors=True)


def start_frr(host: Host, directory: Path, bgpd_conf: str, bfdd_conf: str | None) -> list[Proc]:
    """FRR's daemons in *host*, every path under *directory* (also its vtysh socket)."""
    (directory / "zebra.conf").write_text("hostname zebra\n")
    (directory / "bgpd.conf").write_text(bgpd_conf)
    daemons = ["zebra", "bgpd"]
    if bfdd_conf is not None:
        (directory / "bfdd.conf").write_text(bfdd_conf)
        daemons.append("bfdd")
    return [start_frr_daemon(host, directory, daemon) for daemon in daemons]


def start_frr_daemon(host: Host, directory: Path, daemon: str) -> Proc:
    """One FRR daemon (zebra first) reading DIRECTORY/DAEMON.conf; waits for its vty socket."""
    vty = directory / f"{daemon}.vty"
    vty.unlink(missing_ok=True)
    argv = [str(FRR_DAEMONS / daemon), "-f", str(directory / f"{daemon}.conf")]
    argv += ["-i", str(directory / f"{daemon}.pid"), "-z", str(directory / "zserv.api")]
    argv += ["--vty_socket", str(directory), "-P", "0", "--log", f"file:{directory / daemon}.log"]
    if daemon == "bfdd":
        argv += ["--bfdctl", str(directory / "bfdd.sock")]
    proc = host.spawn(*argv, log=directory / f"{daemon}.out")
    if not wait_until(vty.exists, 10.0):
        raise RuntimeError(f"{daemon} did not start: {(directory / f'{daemon}.out').read_text()}")
    return proc


BIRD_BFD = """
protocol bfd {
    interface "eth0" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
}
"""


class BirdRouter(Router):
    """BIRD 2 in the router's namespace: BGP from both nodes, ECMP into the kernel."""

    kind = "bird"

    def __init__(self, topo: Topology, hold: int = 3, bfd: bool = False) -> None:
        self.host = topo.router
        self.dir = topo.workdir / "bird-router"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "bird.ctl"
        peers = ""
        for i, n in enumerate(topo.nodes, start=1):
            for family, addr, local in (
                ("ipv4", n.ipv4, self.host.ipv4),
                ("ipv6", n.ipv6, self.host.ipv6),
            ):
                peers += textwrap.dedent(f"""
                    protocol bgp n{i}_{family} {{
                        local {local} as {ROUTER_AS};
                        neighbor {addr} as {NODE_AS};
                        hold time {hold};
                        keepalive time 1;
                        connect retry time 1;
                        error wait time 1, 2;
                        {"bfd on;" if bfd and family == "ipv4" else ""}
                        {family} {{ import all; export none; }};
                    }}
                    """)
        conf = (
            textwrap.dedent(f"""
            router id {self.host.ipv4};
            log "{self.dir / "bird.log"}" all;
            protocol device {{ scan time 1; }}
            protocol direct {{ ipv4; ipv6; }}
            protocol kernel {{ ipv4 {{ import none; export all; }}; merge paths on; }}
            protocol kernel {{ ipv6 {{ import none; export all; }}; merge paths on; }}
            """)
            + (BIRD_BFD if bfd else "")
            + peers
        )
        (self.dir / "bird.conf").write_text(conf)
        argv = ["bird", "-f", "-c", str(self.dir / "bird.conf"), "-s", str(self.socket)]
        argv += ["-P", str(self.dir / "bird.pid")]
        self.procs = [self.host.spawn(*argv, log=self.dir / "bird.out")]
        if not wait_until(self.socket.exists, 10.0):
            raise RuntimeError(f"bird did not start: {(self.dir / 'bird.out').read_text()}")

    def birdc(self, command: str) -> str:
        return self.host.run("birdc", "-s", str(self.socket), command).stdout

    def communities(self, prefix: str = VIP) -> set[str]:
        text = self.birdc(f"show route {prefix}/{128 if ':' in prefix else 32} all")
        found = set()
        for line in text.splitlines():
            if "BGP.community:" in line:
                # "(65001,100) (65535,65281)" -> 65001:100 …
                found |= {c.strip("()").replace(",", ":") for c in line.split(":", 1)[1].split()}
        return found


# ------------------------------------------------------------------------------ traffic


def serve(topo: Topology) -> list[Proc]:
    """A web server on each node answering its own name, on the service address too."""
    procs = []
    for n in topo.nodes:
        procs.append(
            n.spawn(
                sys.executable,
                FARM,
                "serve",
                n.name,
                "--port",
                str(PORT),
                log=topo.workdir / f"farm-{n.name}.log",
            )
        )
    for n in topo.nodes:
        wait_until(lambda n=n: _listening(n), 10.0)
    return procs


def _listening(host: Host) -> bool:
    out = host.run("ss", "-Hltn", f"sport = :{PORT}", check=False).stdout
    return bool(out.strip())


def ask(topo: Topology, count: int = 20, target: str = VIP, timeout: float = 1.0) -> Counter[str]:
    """*count* connections from the client to the service, each a new one: who answered
    (``failed`` for those that got no answer)."""
    argv = [sys.executable, str(FARM), "get", target, str(PORT), "--count", str(count)]
    argv += ["--timeout", str(timeout)]
    out = topo.client.run(*argv, check=False, timeout=count * timeout + 30).stdout
    try:
        data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return Counter(failed=count)
    result = Counter({str(k): int(v) for k, v in data.get("servers", {}).items()})
    if data.get("failed"):
        result["failed"] = int(data["failed"])
    return result


def wait_answers(topo: Topology, names: set[str], timeout: float = 30.0, target: str = VIP) -> bool:
    """Wait until the client's connections reach exactly *names* (and none fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = ask(topo, 16, target)
        if set(seen) == names:
            return True
        time.sleep(0.2)
    return False
