"""VRRP at its limits, shortly (the benchmarks run the long versions: ``bench/cpu`` with
``--interval 0.01 --instances 1 --duration 600`` and ``--instances 255 --duration 300``).

* 10 ms adverts (VRRPv3's smallest interval): a halo pair holds steady, no takeover while
  the master lives, and the backup takes over promptly when the master is killed.
* 255 instances at 100 ms (2,550 adverts/s each way on one interface): no instance of the
  backup takes over while the master lives.
"""

from __future__ import annotations

import time
from pathlib import Path

from halo_tool_lab.halo import Halo
from halo_tool_lab.netns import wait_until
from halo_tool_lab.pytest_plugin import LabFactory
from halo_tool_lab.testing import many_instances_config


def masters(node: Halo) -> int:
    return sum(1 for m in node.messages() if "entering MASTER state" in m)


def steady_pair(lab: LabFactory, tmp_path: Path, instances: int, interval: float) -> list[Halo]:
    """A backup that holds everything alone, then a master that preempts it all."""
    net = lab(2, ipv6=False)
    h1, h2 = net.hosts
    backup = Halo(h2, many_instances_config(instances, interval, 90), tmp_path, name="backup")
    assert wait_until(lambda: masters(backup) >= instances, 30), backup.log[-2000:]
    master = Halo(h1, many_instances_config(instances, interval, 100), tmp_path, name="master")
    assert wait_until(lambda: masters(master) >= instances, 30), master.log[-2000:]
    time.sleep(1.0)  # the backup's step-downs are through
    return [master, backup]


def test_ten_millisecond_adverts_hold_and_fail_over(lab: LabFactory, tmp_path: Path) -> None:
    master, backup = steady_pair(lab, tmp_path, 1, 0.01)
    before = masters(backup)
    time.sleep(5.0)  # 500 adverts; Master_Down_Interval is 36.5 ms
    assert masters(backup) == before, backup.log[-2000:]
    assert masters(master) == 1
    master.kill9()
    killed = time.monotonic()
    assert wait_until(lambda: masters(backup) > before, 5.0, 0.002)
    # Bound 36.5 ms; generous for a shared machine (the benchmark measures it on the wire).
    assert time.monotonic() - killed < 1.0


def test_255_instances_at_100_ms_hold(lab: LabFactory, tmp_path: Path) -> None:
    master, backup = steady_pair(lab, tmp_path, 255, 0.1)
    before = masters(backup)
    time.sleep(10.0)
    assert masters(backup) == before, backup.log[-2000:]
    assert masters(master) == 255
    assert master.running and backup.running
