"""Notify scripts in real halo daemons (``python -m halo_core.cli run``) in lab namespaces:
a hanging ``notify_master`` is killed on time while VRRP adverts keep their pace, and the
seeds' use case - the new master's ``notify_master`` (re)starts a service that then answers
on the VIP after the old master died.

VRRPv3 at 0.1 s keeps elections well under a second; addresses are documentation ones.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path

import pytest

from halo_tool_lab.capture import vrrp_adverts
from halo_tool_lab.netns import wait_until
from halo_tool_lab.pytest_plugin import HaloFactory, LabFactory
from halo_tool_lab.testing import write_script

pytestmark = pytest.mark.lab

VIP = "192.0.2.100"


def config(router: str, priority: int, notifier: str) -> str:
    return f"""
global:
  router_id: {router}
  log_format: json
vrrp_instances:
  VI_1:
    interface: eth0
    virtual_router_id: 51
    priority: {priority}
    version: 3
    advert_int: 0.1
    virtual_ipaddress: ["{VIP}/24"]
notifiers:
  hooks:
    type: script
{notifier}"""


def test_hanging_notify_master_is_killed_and_adverts_keep_their_pace(
    lab: LabFactory, start_halo: HaloFactory, public_dir: Path, tmp_path: Path
) -> None:
    out = public_dir / "out"
    hang = write_script(
        public_dir / "hang.sh",
        f"echo $$ > {out}/script.pid\nsleep 300 & echo $! > {out}/child.pid\nwait\n",
    )
    lb = lab(1, ipv6=False)
    (h1,) = lb.hosts
    cap = lb.capture(tmp_path / "vrrp.pcap", filter="vrrp")
    halo = start_halo(h1, config("h1", 200, f"    notify_master: {hang}\n    timeout: 2s\n"))
    try:
        assert wait_until(lambda: (out / "child.pid").exists(), 10, 0.01), halo.log
        hang_start = time.time()
        assert halo.wait_log(r"notify_master for VI_1 MASTER: timed out", 6), halo.log
        hang_end = time.time()
        assert 1.8 < hang_end - hang_start < 3.5  # killed after its 2 s time-out
        time.sleep(0.3)
    finally:
        frames = cap.stop()
    for name in ("script.pid", "child.pid"):  # the script and what it started: both gone
        pid = int((out / name).read_text())
        assert wait_until(lambda pid=pid: _dead(pid), 3, 0.02), f"{name} {pid} survived"
    times = [a.time for a in vrrp_adverts(frames, vrid=51) if a.src == h1.ipv4]
    during = [t for t in times if hang_start - 0.2 <= t <= hang_end + 0.2]
    assert len(during) >= 18, during
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert max(gaps) < 0.2, f"adverts stalled: gaps up to {max(gaps):.3f}s"
    assert halo.proc.running


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


# The seeds' hook: the new master (re)starts its web service. A service started from a hook
# must not keep the hook's stdout/stderr (halo reads them until they close) and is better
# off in a session of its own; on a real system this is `systemctl restart nginx`.
RESTART = """
dir={out}/$HALO_ROUTER_ID
mkdir -p "$dir"
[ -f "$dir/web.pid" ] && kill "$(cat "$dir/web.pid")" 2>/dev/null
echo "served by $HALO_ROUTER_ID" > "$dir/index.html"
setsid {python} -m http.server --bind 0.0.0.0 --directory "$dir" 8080 \\
    </dev/null >/dev/null 2>&1 &
echo $! > "$dir/web.pid"
echo "$HALO_INSTANCE $HALO_STATE" >> "$dir/restarts"
"""


def test_new_master_restarts_the_service_behind_the_vip(
    lab: LabFactory, start_halo: HaloFactory, public_dir: Path, tmp_path: Path
) -> None:
    out = public_dir / "out"
    restart = write_script(
        public_dir / "restart-web.sh", RESTART.format(out=out, python=sys.executable)
    )
    lb = lab(["lb1", "lb2", "client"], ipv6=False)
    lb1, lb2, client = lb.hosts
    hook = f"    notify_master: {restart}\n    script_user: root\n    timeout: 10s\n"
    # lb1 becomes master before lb2 starts: otherwise lb2 may win the first election for
    # a moment (whoever starts first) and its hook would run before the test's failover.
    first = start_halo(lb1, config("lb1", 200, hook), state={"VI_1": "MASTER"}, timeout=10)
    second = start_halo(lb2, config("lb2", 100, hook))

    def answer() -> str:
        res = client.run(
            "curl", "-s", "--max-time", "0.5", f"http://{VIP}:8080/", check=False, timeout=5
        )
        return res.stdout.strip()

    assert wait_until(lambda: answer() == "served by lb1", 10, 0.1), (answer(), first.log)
    assert second.wait_log(r"VI_1: entering BACKUP state", 5), second.log
    assert not (out / "lb2" / "restarts").exists()

    # lb1 dies: no goodbye, and it drops off the network.
    first.kill9()
    lb.unplug(lb1)
    assert second.wait_log(r"VI_1: entering MASTER state", 5), second.log
    assert second.wait_log(r"notify_master for VI_1 MASTER: done", 10), second.log
    assert (out / "lb2" / "restarts").read_text() == "VI_1 MASTER\n"
    assert lb2.has_address(VIP)
    assert wait_until(lambda: answer() == "served by lb2", 10, 0.1), (answer(), second.log)


def test_reload_removing_an_instance_runs_notify_deleted(
    lab: LabFactory, start_halo: HaloFactory, public_dir: Path
) -> None:
    """A real daemon (the VRRP process and its worker): a reload that removes an instance
    reports it as DELETED to notify_deleted, notify and the FIFO; one without
    notify_deleted as FAULT (keepalived's default); a plain stop is still STOP."""
    out = public_dir / "out"
    out.mkdir(exist_ok=True)
    record = write_script(public_dir / "record.sh", f'echo "$*" >> {out}/calls\n')
    fifo = public_dir / "notify.fifo"
    (h1,) = lab(1, ipv6=False).hosts

    def recorded() -> list[str]:
        path = out / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def instance(name: str, vrid: int) -> str:
        return (
            f"  {name}:\n    interface: eth0\n    virtual_router_id: {vrid}\n"
            f"    priority: 200\n    version: 3\n    advert_int: 0.1\n"
            f'    virtual_ipaddress: ["192.0.2.{vrid}/24"]\n'
        )

    def conf(*names: str) -> str:
        text = "vrrp_instances:\n"
        text += "".join(
            instance(n, 100 + i) for i, n in enumerate(("VI_1", "VI_2", "VI_3")) if n in names
        )
        text += (
            "notifiers:\n  hooks:\n    type: script\n    script_user: root\n"
            f"    notify: {record}\n    notify_deleted: [VI_2]\n"
            f"    notify_fifo: {fifo}\n"
        )
        return text

    halo = start_halo(h1, conf("VI_1", "VI_2", "VI_3"), state={"VI_2": "MASTER", "VI_3": "MASTER"})
    assert wait_until(fifo.exists, 30, 0.05), halo.log  # made when the worker starts
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        halo.reload(conf("VI_1"))
        wanted = {"INSTANCE VI_2 DELETED 200", "INSTANCE VI_3 FAULT 200"}
        assert wait_until(lambda: wanted <= set(recorded()), 15, 0.05), halo.log
        halo.stop()
        assert wait_until(lambda: "INSTANCE VI_1 STOP 200" in recorded(), 10, 0.05), halo.log
        calls = recorded()
        lines = os.read(reader, 65536).decode().splitlines()
    finally:
        os.close(reader)
    assert "INSTANCE VI_2 DELETED 200" in calls and "INSTANCE VI_3 FAULT 200" in calls, calls
    assert "INSTANCE VI_1 STOP 200" in calls and "INSTANCE VI_2 STOP 200" not in calls, calls
    assert 'INSTANCE "VI_2" DELETED 200' in lines and 'INSTANCE "VI_3" FAULT 200' in lines, lines
