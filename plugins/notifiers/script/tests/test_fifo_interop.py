"""The notify FIFO, keepalived 2.2.7 against halo: the same keepalived.conf runs as is on
one pair of lab hosts and through ``halo convert`` on another pair (on one segment, VRIDs
51 and 52), and the lines each node's ``vrrp_notify_fifo_script`` reads through start-up,
priority changes (a weighted ``track_file``, ``vrrp_notify_priority_changes``), the
master's death and the backup's stop must be the same, line by line."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from halo_tool_convert import convert_text
from halo_tool_lab.keepalived import Keepalived
from halo_tool_lab.netns import Host, wait_until
from halo_tool_lab.pytest_plugin import HaloFactory, LabFactory
from halo_tool_lab.tools import needs_tools

pytestmark = [
    pytest.mark.lab,
    pytest.mark.keepalived,
    needs_tools("keepalived"),
    pytest.mark.timeout(120),
]

# keepalived sends the FIFO script SIGTERM before the STOP lines: ignore it, read to EOF.
READER = """#!/bin/sh
trap '' TERM
while IFS= read -r line; do echo "$line" >> "$1.lines"; done < "$1"
"""

CONFIG = """global_defs {{
    router_id {name}
    script_user root
    vrrp_version 3
    vrrp_notify_fifo {dir}/{name}.fifo
    vrrp_notify_fifo_script {dir}/reader.sh
    vrrp_notify_priority_changes true
}}
track_file prio {{
    file {dir}/{name}.prio
    weight 10
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id {vrid}
    priority {priority}
    advert_int 0.1
    track_file {{
        prio
    }}
    virtual_ipaddress {{
        {vip}/24
    }}
}}
"""


@pytest.fixture
def fifo_dir() -> Iterator[Path]:
    """A root-owned 0755 directory for the reader script, the FIFOs and the track files
    (pytest's temporary tree is 0700; keepalived and halo vet the script's path)."""
    d = Path(tempfile.mkdtemp(prefix="halo-fifo-", dir="/run"))
    try:
        d.chmod(0o755)
        script = d / "reader.sh"
        script.write_text(READER)
        script.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def lines(d: Path, name: str) -> list[str]:
    path = d / f"{name}.fifo.lines"
    return path.read_text().splitlines() if path.exists() else []


def set_prio(d: Path, name: str, value: int) -> None:
    tmp = d / f"{name}.prio.tmp"
    tmp.write_text(f"{value}\n")
    os.replace(tmp, d / f"{name}.prio")


def test_fifo_lines_match_keepalived(
    lab: LabFactory, start_halo: HaloFactory, fifo_dir: Path, tmp_path: Path
) -> None:
    lb = lab(["k1", "k2", "h1", "h2"], ipv6=False)
    k1, k2, h1, h2 = lb.hosts
    d = fifo_dir

    def conf(name: str, vrid: int, priority: int, vip: str) -> str:
        set_prio(d, name, 0)
        return CONFIG.format(name=name, dir=d, vrid=vrid, priority=priority, vip=vip)

    ka1 = Keepalived(k1, conf("k1", 51, 200, "192.0.2.100"), tmp_path)
    halo_yaml = {
        name: convert_text(conf(name, 52, prio, "192.0.2.101"), config_id="x").yaml
        for name, prio in (("h1", 200), ("h2", 100))
    }
    ha1 = start_halo(h1, halo_yaml["h1"], state={"VI_1": "MASTER"}, timeout=15)
    assert ka1.wait_log(r"Entering MASTER STATE", 15), ka1.log
    ka2 = Keepalived(k2, conf("k2", 51, 100, "192.0.2.100"), tmp_path)
    ha2 = start_halo(h2, halo_yaml["h2"], state={"VI_1": "BACKUP"}, timeout=15)
    try:
        assert ka2.wait_log(r"Entering BACKUP STATE", 15), ka2.log

        def step(what: Callable[[str, Host], None], count: int) -> None:
            """Do ``what`` to the keepalived and the halo node, then wait for both FIFOs."""
            for name, host in (("k2", k2), ("h2", h2)):
                what(name, host)
            for name in ("k2", "h2"):
                assert wait_until(lambda n=name: len(lines(d, n)) >= count, 15, 0.05), (
                    name,
                    lines(d, name),
                    ka2.log if name == "k2" else ha2.log,
                )

        step(lambda n, h: None, 1)
        step(lambda n, h: set_prio(d, n, 5), 2)  # 100 + 5 x 10
        ka1.kill9()
        ha1.kill9()
        step(lambda n, h: None, 3)  # the master is gone: 150 takes over
        step(lambda n, h: set_prio(d, n, 0), 4)
        ka2.stop()
        ha2.stop()
        step(lambda n, h: None, 5)
    finally:
        for daemon in (ka1, ka2):
            if daemon.running:
                daemon.stop()
    expected = [
        'INSTANCE "VI_1" BACKUP 100',
        'INSTANCE "VI_1" BACKUP_PRIORITY 150',
        'INSTANCE "VI_1" MASTER 150',
        'INSTANCE "VI_1" MASTER_PRIORITY 100',
        'INSTANCE "VI_1" STOP 100',
    ]
    assert lines(d, "k2") == expected, ka2.log
    assert lines(d, "h2") == lines(d, "k2")
    # The first master's lines up to its death are the same too.
    assert (
        lines(d, "h1")
        == lines(d, "k1")
        == [
            'INSTANCE "VI_1" BACKUP 200',
            'INSTANCE "VI_1" MASTER 200',
        ]
    )
