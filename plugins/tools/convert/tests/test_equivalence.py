"""Behavioural equivalence: keepalived with a seed's configuration and halo with its
conversion, side by side in two network-namespace labs, must agree.

For each two-node seed (000: VRRPv2, PASS, three VIPs; 002: one VIP with a /24 prefix;
003: a vrrp_script tracked by the instance) the same steps run in both labs at the same
time - one with keepalived 2.2.7 on both nodes, one with halo on both nodes running
``halo convert``'s output - and each step's outcome is compared:

* the same node is elected master, holding the same addresses (address/prefix, scope);
* the adverts on the wire are the same (version, VRID, priority, interval, addresses,
  authentication type);
* with seed 003, a failing check script moves the VIPs to the backup and its recovery
  brings them back, in both;
* killing the master (SIGKILL, no goodbye advert) makes the backup take over, in about
  the same time, with the same addresses.

The only changes made to the seeds' configurations for the lab are the interface name
(the lab's hosts have ``eth0``), the check script's path (a script in a root-owned
directory that fails while a flag file names the host), and ``script_user root`` (the lab
has no ``keepalived_script`` user).
"""

from __future__ import annotations

import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import yaml

from halo_core import plugins as plugin_loader
from halo_tool_convert import convert_text
from halo_tool_lab.capture import Capture, VrrpAdvert, vrrp_adverts
from halo_tool_lab.halo import Halo
from halo_tool_lab.keepalived import Keepalived
from halo_tool_lab.netns import Host, Lab, wait_until
from halo_tool_lab.tools import needs_tools

pytestmark = [
    pytest.mark.lab,
    pytest.mark.keepalived,
    needs_tools("keepalived"),
    pytest.mark.timeout(120),
]

CORPUS = Path(__file__).resolve().parent / "corpus"
INSTANCE = "VI_1"


@dataclass(frozen=True)
class Seed:
    master: str
    backup: str
    vips: tuple[str, ...]
    vrid: int
    script: bool = False


SEEDS = {
    "seed-000": Seed(
        "seed-000-master.conf",
        "seed-000-backup.conf",
        ("192.0.2.16", "192.0.2.17", "192.0.2.18"),
        51,
    ),
    "seed-002": Seed("seed-002-nodea.conf", "seed-002-nodeb.conf", ("192.0.2.100",), 51),
    "seed-003": Seed(
        "seed-003-master.conf", "seed-003-backup.conf", ("192.0.2.100",), 51, script=True
    ),
}

CHECK_SCRIPT = """#!/bin/sh
# The lab's check_ng.sh: fails while a flag file names this host's network namespace.
ns=$(ip netns identify $$ 2>/dev/null)
[ ! -e "{dir}/fail-$ns" ]
"""


@pytest.fixture
def script_dir() -> Iterator[Path]:
    """A root-owned 0755 directory outside pytest's (0700) temporary tree, for scripts that
    keepalived and halo run."""
    d = Path(tempfile.mkdtemp(prefix="halo-convert-", dir="/run"))
    try:
        d.chmod(0o755)
        script = d / "check_ng.sh"
        script.write_text(CHECK_SCRIPT.format(dir=d))
        script.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def lab_config(name: str, script_dir: Path) -> str:
    """The seed's keepalived.conf with the lab's interface, script path and script user."""
    text = (CORPUS / name).read_text()
    text = re.sub(r"(?m)^(\s*interface\s+)\S+", r"\1eth0", text)
    text = text.replace("/usr/local/sbin/check_ng.sh", str(script_dir / "check_ng.sh"))
    return text.replace("global_defs {", "global_defs {\nscript_user root", 1)


# ------------------------------------------------------------------------------------ nodes


class Node:
    impl = ""

    def __init__(self, host: Host) -> None:
        self.host = host

    def states(self) -> list[str]:
        raise NotImplementedError

    def kill9(self) -> None:
        raise NotImplementedError

    def log(self) -> str:
        raise NotImplementedError

    def wait_state(self, state: str, timeout: float, count: int = 1) -> bool:
        def ok() -> bool:
            s = self.states()
            return s.count(state) >= count and s[-1] == state

        return wait_until(ok, timeout, 0.02)


class KeepalivedNode(Node):
    impl = "keepalived"

    def __init__(self, host: Host, conf: str, workdir: Path) -> None:
        super().__init__(host)
        self.ka = Keepalived(host, conf, workdir, name=f"ka-{host.name}")

    def states(self) -> list[str]:
        return re.findall(rf"\({INSTANCE}\) Entering (\w+) STATE", self.ka.log)

    def kill9(self) -> None:
        self.ka.kill9()

    def log(self) -> str:
        return self.ka.log


class HaloNode(Node):
    impl = "halo"

    def __init__(self, host: Host, conf: str, workdir: Path, plugins: Any) -> None:
        super().__init__(host)
        result = convert_text(conf, f"{host.name}.conf", config_id=host.name, plugins=plugins)
        data = yaml.safe_load(result.yaml)
        g = data.setdefault("global", {})
        g["log_format"] = "json"  # the test reads the state changes from the log
        g["state_dir"] = str(workdir / f"halo-{host.name}.state")  # one per machine
        config = yaml.safe_dump(data, sort_keys=False)
        self.halo = Halo(host, config, workdir, name=f"halo-{host.name}", log_level="debug")

    def log(self) -> str:
        return self.halo.proc.log_text()

    def states(self) -> list[str]:
        return self.halo.states(INSTANCE)

    def kill9(self) -> None:
        self.halo.kill9()


@dataclass
class Side:
    """One implementation's lab: two hosts, a capture, two nodes."""

    impl: str
    lab: Lab
    cap: Capture
    master: Node | None = None
    backup: Node | None = None

    @property
    def h1(self) -> Host:
        return self.lab.hosts[0]

    @property
    def h2(self) -> Host:
        return self.lab.hosts[1]

    def start(self, which: str, conf: str, workdir: Path, plugins: Any) -> Node:
        host = self.h1 if which == "master" else self.h2
        node: Node
        if self.impl == "keepalived":
            node = KeepalivedNode(host, conf, workdir)
        else:
            node = HaloNode(host, conf, workdir, plugins)
        setattr(self, which, node)
        return node

    def vips(self, host: Host, vips: tuple[str, ...]) -> set[tuple[str, str, str]]:
        """The seed's VIPs configured on *host*: (address/prefix, device, scope)."""
        wanted = {IPv4Address(v) for v in vips}
        return {(str(a.interface), a.dev, a.scope) for a in host.addresses() if a.ip in wanted}

    def adverts(self, src: Host, after: float = 0.0) -> list[VrrpAdvert]:
        return [a for a in vrrp_adverts(self.cap.frames()) if a.src == src.ipv4 and a.time > after]

    def logs(self) -> str:
        parts = []
        for n in (self.master, self.backup):
            if n is not None:
                tail = "\n".join(n.log().splitlines()[-40:])
                parts.append(f"--- {self.impl} {n.host.name} ---\n{tail}")
        return "\n".join(parts)


def both(sides: list[Side], what: Callable[[Side], bool], timeout: float) -> list[bool]:
    """Wait (up to *timeout*, for both at once) until *what* holds on each side."""
    deadline = time.monotonic() + timeout
    done = [False] * len(sides)
    while True:
        for i, s in enumerate(sides):
            done[i] = done[i] or bool(what(s))
        if all(done) or time.monotonic() > deadline:
            return done
        time.sleep(0.02)


def wire_summary(adverts: list[VrrpAdvert]) -> set[tuple[Any, ...]]:
    return {
        (a.version, a.vrid, a.priority, a.interval, a.addresses, a.auth_type, str(a.dst))
        for a in adverts
    }


# ------------------------------------------------------------------------------------ test


@pytest.mark.parametrize("seed_name", sorted(SEEDS))
def test_keepalived_and_halo_agree(
    lab: Callable[..., Lab], tmp_path: Path, script_dir: Path, seed_name: str
) -> None:
    seed = SEEDS[seed_name]
    plugins = plugin_loader.load()
    if "vip" not in plugins.names("backend"):
        pytest.skip("the vip backend plugin is not installed: halo would not move the VIPs")
    master_conf = lab_config(seed.master, script_dir)
    backup_conf = lab_config(seed.backup, script_dir)
    sides = []
    for impl in ("keepalived", "halo"):
        lb = lab(2, ipv6=False)
        sides.append(Side(impl, lb, lb.capture(tmp_path / f"{impl}.pcap", filter="vrrp")))
    ka, ha = sides

    def report() -> str:
        return "\n".join(s.logs() for s in sides)

    # 1. The MASTER node starts first and takes the addresses after Master_Down_Interval
    for s in sides:
        s.start("master", master_conf, tmp_path / s.impl, plugins)
    ok = both(sides, lambda s: s.vips(s.h1, seed.vips) and s.master.wait_state("MASTER", 0), 10)
    assert all(ok), report()

    # 2. The BACKUP node joins, stays BACKUP, and the master keeps the addresses
    for s in sides:
        s.start("backup", backup_conf, tmp_path / s.impl, plugins)
    ok = both(sides, lambda s: s.backup is not None and s.backup.wait_state("BACKUP", 0), 10)
    assert all(ok), report()
    time.sleep(1.5)  # a few adverts from the master, none from the backup
    for s in sides:
        assert s.master is not None and s.backup is not None
        assert s.master.states()[-1] == "MASTER", report()
        assert s.backup.states()[-1] == "BACKUP", report()
        assert not s.vips(s.h2, seed.vips), report()
    assert ka.vips(ka.h1, seed.vips) == ha.vips(ha.h1, seed.vips), report()
    assert len(ka.vips(ka.h1, seed.vips)) == len(seed.vips)
    # the same adverts on the wire (everything but the source address, which is the host's)
    assert wire_summary(ka.adverts(ka.h1)) == wire_summary(ha.adverts(ha.h1)), report()
    assert not ka.adverts(ka.h2) and not ha.adverts(ha.h2), report()

    if seed.script:
        # 3. The master's check fails: it goes to FAULT and the backup takes the addresses
        for s in sides:
            (script_dir / f"fail-{s.h1.ns}").touch()
        ok = both(sides, lambda s: bool(s.vips(s.h2, seed.vips)), 10)
        assert all(ok), report()
        for s in sides:
            assert s.master is not None and s.master.wait_state("FAULT", 2), report()
            assert not s.vips(s.h1, seed.vips), report()
        # 4. It recovers: back to BACKUP, then it preempts the lower-priority backup
        for s in sides:
            (script_dir / f"fail-{s.h1.ns}").unlink()
        ok = both(sides, lambda s: s.vips(s.h1, seed.vips) and not s.vips(s.h2, seed.vips), 15)
        assert all(ok), report()
        for s in sides:
            assert s.master is not None and s.master.states()[-3:] == [
                "FAULT",
                "BACKUP",
                "MASTER",
            ], report()
            assert s.backup is not None and s.backup.wait_state("BACKUP", 2), report()

    # 5. The master dies (SIGKILL: no goodbye advert): the backup takes over
    killed_at = time.time()
    for s in sides:
        assert s.master is not None
        s.master.kill9()
    ok = both(sides, lambda s: bool(s.vips(s.h2, seed.vips)), 10)
    assert all(ok), report()
    for s in sides:
        assert s.backup is not None and s.backup.wait_state("MASTER", 2), report()
    time.sleep(0.5)
    assert ka.vips(ka.h2, seed.vips) == ha.vips(ha.h2, seed.vips), report()
    takeover = {}
    for s in sides:
        last = [a for a in s.adverts(s.h1) if a.time <= killed_at + 0.05]
        first = s.adverts(s.h2, after=killed_at - 0.05)
        assert last and first, report()
        takeover[s.impl] = first[0].time - last[-1].time
        assert all(a.priority == 90 for a in first)
    # Master_Down_Interval for priority 90 at 1 s: 3 + (256 - 90) / 256 = 3.65 s
    for impl, t in takeover.items():
        assert abs(t - 3.65) < 0.5, (impl, takeover)
    assert wire_summary(ka.adverts(ka.h2, killed_at)) == wire_summary(ha.adverts(ha.h2, killed_at))
    for s in sides:
        s.cap.stop()
    times = ", ".join(f"{k} {v:.3f} s" for k, v in takeover.items())
    print(f"\n{seed_name}: takeover after kill: {times}")
