"""The seeds' nginx HA setup, end to end: two halo nodes, a web server ("nginx") on each, and
the tutorial's check_ng.sh run by the script checker.

Kill the master's web server: the check script restarts it and nothing moves. Make it
unrestartable: the script fails, the tracked weight (-20) drops the master below the
backup, and the VIP moves; a client on the segment follows.

The lab's nodes are network namespaces on one machine and share its process table, so each
node's web server has a name of its own (``nginx1``, ``nginx2``) and each node's script asks
``ps -C`` for that name: on two real machines both would be ``nginx``.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

from halo_tool_lab.halo import Halo
from halo_tool_lab.netns import Host, Lab, wait_until

VIP = "192.0.2.100"
PORT = 8080

# The tutorial's check_ng.sh (seed 003), with `systemctl start nginx` pointing at the fake and
# `systemctl stop keepalived` replaced by a failing exit: halo lowers the priority instead.
CHECK_NG = """#!/bin/bash
d=`date --date today +%Y%m%d_%H:%M:%S`
n=`ps -C {nginx} --no-heading|wc -l`
if [ $n -eq "0" ]; then
{dir}/{nginx}
sleep 1
n2=`ps -C {nginx} --no-heading|wc -l`
if [ $n2 -eq "0" ]; then
echo "$d nginx down, priority will drop" >> {dir}/check_ng.log
exit 1
fi
fi
"""

# A stand-in for nginx: its process name is its file name (the kernel names an interpreted
# script after the script), it detaches like nginx, answers with its node's name, and refuses to
# start while a "broken" file exists (a broken config, say).
FAKE_NGINX = """#!{python}
import os, socket, sys
here = os.path.dirname(os.path.abspath(__file__))
if os.path.exists(os.path.join(here, "broken")):
    sys.exit(1)
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
fd = os.open(os.devnull, os.O_RDWR)
for i in (0, 1, 2):
    os.dup2(fd, i)
name = open(os.path.join(here, "name")).read().strip()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {port}))
s.listen(64)
body = ("from server " + name + "\\n").encode()
while True:
    c, _ = s.accept()
    try:
        c.settimeout(2)
        c.recv(4096)
        c.sendall(b"HTTP/1.1 200 OK\\r\\nConnection: close\\r\\nContent-Length: "
                  + str(len(body)).encode() + b"\\r\\n\\r\\n" + body)
    except OSError:
        pass
    c.close()
"""


def config(node: Path, priority: int, state: str) -> str:
    return f"""
global:
  script_user: root          # the script starts the web server, as the tutorial's does
  state_dir: {node}/state
checks:
  chk_nginx:
    type: script
    script: {node}/check_ng.sh
    interval: 1
    timeout: 5               # the script sleeps 1 s after a restart
    weight: -20
vrrp_instances:
  VI_1:
    state: {state}
    interface: eth0
    virtual_router_id: 51
    priority: {priority}
    version: 3
    advert_int: 0.2
    virtual_ipaddress: [{VIP}/24]
    track:
      - check: chk_nginx
"""


def nginx_pids(host: Host) -> list[int]:
    """Live (not zombie) web server processes of this node."""
    out = []
    for pid in host.pids():
        try:
            with open(f"/proc/{pid}/stat") as fh:
                comm, state = fh.read().split("(", 1)[1].rsplit(")", 1)
        except OSError:
            continue
        if comm == f"nginx{host.name[-1]}" and state.split()[0] != "Z":
            out.append(pid)
    return out


def get(client: Host) -> str:
    code = (
        "import socket,sys\n"
        f"s=socket.create_connection(('{VIP}',{PORT}),timeout=1)\n"
        "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
        "print(s.recv(4096).decode().rsplit('from server ',1)[-1].strip())\n"
    )
    res = client.run(sys.executable, "-c", code, check=False, timeout=5)
    return res.stdout.strip() if res.returncode == 0 else ""


def test_check_script_restarts_then_fails_over(lab_root: None, public_dir: Path) -> None:
    if shutil.which("ps") is None:
        pytest.skip("needs ps (procps)")
    with Lab(["node1", "node2", "client"]) as lab:
        client = lab.host("client")
        halos = {}
        for name, prio, state in (("node1", 100, "MASTER"), ("node2", 90, "BACKUP")):
            node = public_dir / name
            node.mkdir(mode=0o755)
            (node / "name").write_text(name)
            nginx = f"nginx{name[-1]}"
            for fname, text in (
                ("check_ng.sh", CHECK_NG.format(dir=node, nginx=nginx)),
                (nginx, FAKE_NGINX.format(python=sys.executable, port=PORT)),
            ):
                (node / fname).write_text(text)
                (node / fname).chmod(0o755)
            halos[name] = Halo(lab.host(name), config(node, prio, state), node, name="halo")
            if name == "node1":
                assert wait_until(lambda: lab.host("node1").has_address(VIP), 15)
        node1, node2 = lab.host("node1"), lab.host("node2")
        logs = {n: public_dir / n / "halo.log" for n in halos}
        # The first check run started each node's nginx (none was running).
        started = wait_until(lambda: nginx_pids(node1) and nginx_pids(node2), 10)
        assert started, logs["node1"].read_text()
        assert wait_until(lambda: get(client) == "node1", 10)

        # 1. The web server dies: the script restarts it, the VIP stays.
        first = nginx_pids(node1)
        for pid in first:
            os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: nginx_pids(node1) and nginx_pids(node1) != first, 10), logs[
            "node1"
        ].read_text()
        assert wait_until(lambda: get(client) == "node1", 5)  # once the new one listens
        assert node1.has_address(VIP) and not node2.has_address(VIP)

        # 2. It cannot be restarted: the check fails, priority 100 - 20 < 90, node2 preempts.
        (public_dir / "node1" / "broken").write_text("")
        for pid in nginx_pids(node1):
            os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: node2.has_address(VIP), 20), logs["node1"].read_text()
        assert wait_until(lambda: not node1.has_address(VIP), 5)
        assert wait_until(lambda: get(client) == "node2", 10)
        text1 = logs["node1"].read_text()
        assert "check chk_nginx: down" in text1
        assert "priority 100 -> 80" in text1
        check_log = (public_dir / "node1" / "check_ng.log").read_text()
        assert "nginx down, priority will drop" in check_log

        # 3. Repaired: the script starts it again, priority back to 100, node1 preempts.
        (public_dir / "node1" / "broken").unlink()
        assert wait_until(lambda: node1.has_address(VIP), 20), logs["node1"].read_text()
        assert wait_until(lambda: get(client) == "node1", 10)
        for halo in halos.values():
            halo.stop()
