"""The status API of real daemons (``python -m halo_core.cli run``) in lab namespaces: every
documented endpoint, /metrics through the Prometheus parser, the event stream across a
reload, ``halo status``, and a clean stop on SIGTERM.

Two nodes share two VRRP instances in a sync group (v3 at 0.1 s): node1 (priority 150) is
master, node2 (priority 100, minus 10 for a failing tracked check) is backup and sees it.
The unix sockets live in the test's temporary directory, which the test process reaches
from the root namespace (unix sockets do not belong to a network namespace).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from status_helpers import DOC, families, get_json, http, metrics, response_schema, validate

from halo_tool_lab.capture import vrrp_adverts
from halo_tool_lab.halo import Halo
from halo_tool_lab.netns import Host, Lab, lab_unavailable_reason, wait_until

pytestmark = pytest.mark.lab

VIP1, VIP2 = "192.0.2.101", "192.0.2.102"


def node_config(name: str, state_dir: Path, priority: int, priority2: int | None = None) -> str:
    return f"""
global:
  router_id: {name}
  log_format: json
  state_dir: {state_dir}
vrrp_sync_groups:
  G1:
    group: [VI_1, VI_2]
vrrp_instances:
  VI_1:
    interface: eth0
    virtual_router_id: 51
    priority: {priority}
    version: 3
    advert_int: 0.1
    virtual_ipaddress: [{VIP1}/24]
    track:
      - check: broken
        weight: -10
  VI_2:
    interface: eth0
    virtual_router_id: 52
    priority: {priority2 or priority}
    version: 3
    advert_int: 0.1
    virtual_ipaddress: [{VIP2}/24]
checks:
  broken: {{type: script, script: /bin/false, interval: 0.2, fall: 1}}
  fine: {{type: script, script: /bin/true, interval: 0.2}}
notifiers:
  scripts:
    type: script
    notify_master: /bin/true
virtual_servers:
  - address: 192.0.2.80
    port: 80
    delay_loop: 0.2
    real_servers:
      - address: 192.0.2.90
        port: 80
        checks: [{{type: script, script: /bin/true}}]
"""


class Node(Halo):
    """A halo daemon in a lab host, asked through its status API socket."""

    @property
    def sock(self) -> str:
        return str(self.state_dir / "halo.sock")

    def get(self, path: str) -> Any:
        return get_json(self.sock, path)

    def instance(self, name: str) -> dict[str, Any]:
        return self.get(f"/v1/instances/{name}")  # type: ignore[no-any-return]


def start_node(host: Host, tmp: Path, name: str, priority: int) -> Node:
    # the state_dir Halo gives a daemon, written out so that a reload keeps it
    node = Node(host, node_config(name, tmp / f"{name}.state", priority), tmp, name=name)
    assert wait_until(lambda: Path(node.sock).exists(), 15), node.proc.log_text()
    return node


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, Node]]:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(f"lab unavailable: {reason}")
    tmp = tmp_path_factory.mktemp("api")
    with Lab(2) as lab:
        n1 = start_node(lab.host("h1"), tmp, "node1", 150)
        n2 = start_node(lab.host("h2"), tmp, "node2", 100)

        def settled() -> bool:
            a, b = n1.instance("VI_1"), n2.instance("VI_1")
            return (
                a["state"] == "MASTER"
                and b["state"] == "BACKUP"
                and b["master"] == "192.0.2.11"
                and b["priority"] == 90
            )

        assert wait_until(settled, 10, 0.1), n2.proc.log_text()
        yield n1, n2


def test_every_documented_endpoint(pair: tuple[Node, Node]) -> None:
    """Each path of /openapi.json answers on a real daemon, and each JSON answer matches
    its documented schema."""
    n1, n2 = pair
    served = n1.get("/openapi.json")
    assert served == json.loads(json.dumps(DOC))
    for node in pair:
        snap = node.get("/v1/status")
        examples = {
            "/v1/instances/{name}": snap["instances"][0]["name"],
            "/v1/checks/{name}": snap["checks"][0]["name"],
            "/v1/pools/{name}": snap["pools"][0]["name"],
        }
        for template in DOC["paths"]:
            if template == "/v1/events":
                continue  # a stream: test_event_stream_across_a_reload
            path = template
            if template in examples:
                path = template.replace("{name}", quote(examples[template], safe=""))
            status, headers, body = http(node.sock, path)
            assert status == 200, (path, body)
            schema = response_schema(template)
            if schema is None:
                assert headers["content-type"].startswith("text/plain"), path
                assert body
            else:
                validate(json.loads(body), schema)

    # What an operator looks for, on both sides.
    m1, b1 = n1.instance("VI_1"), n2.instance("VI_1")
    assert m1["state"] == "MASTER" and m1["master"] is None and m1["priority"] == 140
    assert m1["counters"]["adverts_sent"] > 0
    assert 0 <= m1["timers"]["advert_timer_in"] <= 0.1
    assert m1["timers"]["master_down_timer_in"] is None
    assert b1["state"] == "BACKUP" and b1["master_priority"] == 140
    assert (b1["priority"], b1["base_priority"]) == (90, 100)
    assert b1["tracks"] == [{"input": "check broken", "up": False, "weight": -10, "reverse": False}]
    assert b1["counters"]["adverts_received"] > 0 and b1["timers"]["master_down_timer_in"] > 0
    assert b1["virtual_ipaddress"] == [f"{VIP1}/24"] and b1["group"] == "G1"
    assert n1.get("/v1/sync-groups") == [
        {"name": "G1", "state": "MASTER", "members": ["VI_1", "VI_2"]}
    ]
    (vip,) = n1.get("/v1/backends")
    assert vip["type"] == "vip" and vip["status"]["instances"]["VI_1"]["master"] is True
    (notifier,) = n1.get("/v1/notifiers")
    assert notifier["name"] == "scripts" and notifier["type"] == "script"
    (pool,) = n1.get("/v1/pools")
    assert pool["name"] == "192.0.2.80:80" and pool["quorum"] is True
    bus = n1.get("/v1/bus")
    assert bus["published"] > 0
    assert {"status-api", "vrrp", "notifier:scripts"} <= {s["name"] for s in bus["subscribers"]}


def test_metrics_through_the_prometheus_parser(pair: tuple[Node, Node]) -> None:
    n1, n2 = pair
    before = n1.instance("VI_1")["counters"]["adverts_sent"]
    status, headers, body = http(n1.sock, "/metrics")
    assert status == 200 and headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    m, types = metrics(text), families(text)
    vi1 = frozenset({("vrrp_instance", "VI_1")})

    def one(name: str, **labels: str) -> float:
        return m[(name, frozenset({("vrrp_instance", "VI_1"), *labels.items()}))]

    assert one("halo_vrrp_state", vrid="51", state="MASTER") == 1
    assert one("halo_vrrp_state", vrid="51", state="BACKUP") == 0
    assert m[("halo_vrrp_priority", vi1)] == 140 and m[("halo_vrrp_base_priority", vi1)] == 150
    assert m[("halo_vrrp_adverts_sent_total", vi1)] >= before > 0
    assert m[("halo_vrrp_advert_interval_seconds", vi1)] == 0.1
    assert one("halo_vrrp_adverts_rejected_total", reason="bad_checksum") == 0
    assert types["halo_vrrp_adverts_sent"] == "counter" and types["halo_vrrp_state"] == "gauge"
    assert m[("halo_vrrp_sync_group_state", frozenset({("group", "G1"), ("state", "MASTER")}))] == 1
    assert m[("halo_check_up", frozenset({("check", "broken"), ("type", "script")}))] == 0
    assert m[("halo_pool_quorum", frozenset({("virtual_server", "192.0.2.80:80")}))] == 1
    added = {("backend", "vip"), ("vrrp_instance", "VI_1"), ("counter", "added")}
    assert m[("halo_backend_instance_counter_total", frozenset(added))] == 1
    backup = metrics(http(n2.sock, "/metrics")[2].decode())
    assert backup[("halo_vrrp_master_priority", vi1)] == 140
    assert backup[("halo_vrrp_adverts_received_total", vi1)] > 0


def test_halo_status_command(pair: tuple[Node, Node]) -> None:
    n1, n2 = pair
    out = subprocess.run(
        [sys.executable, "-m", "halo_core.cli", "status", "-c", str(n2.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("halo 0.1.0 on node2 (pid ")
    header = next(ln for ln in lines if ln.startswith("INSTANCE"))
    row = next(ln for ln in lines if ln.startswith("VI_1 "))
    # Aligned: each value starts under its column's title.
    for title, value in (("STATE", "BACKUP"), ("PRIO", "90"), ("BASE", "100")):
        assert row[header.index(title) :].startswith(value), (header, row)
    assert "192.0.2.11 (140)" in row and "v3" in row
    assert any(ln.startswith("G1") and "BACKUP" in ln for ln in lines)
    assert any(ln.startswith("broken ") and " DOWN " in ln for ln in lines)
    assert any(ln.startswith("192.0.2.80:80") and "192.0.2.90:80" in ln for ln in lines)
    as_json = subprocess.run(
        [sys.executable, "-m", "halo_core.cli", "status", "--api", f"unix:{n1.sock}", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["instances"][0]["state"] == "MASTER"


class Stream:
    """A blocking /v1/events reader."""

    def __init__(self, sock_path: str, query: str = "") -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(sock_path)
        self.sock.sendall(f"GET /v1/events{query} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        assert b" 200 OK" in head and b"text/event-stream" in head
        assert self._until(b"\n\n").startswith(b": halo")

    def _until(self, sep: bytes) -> bytes:
        while sep not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        block, _, self.buf = self.buf.partition(sep)
        return block

    def next_event(self) -> tuple[str, dict[str, Any]]:
        while True:
            block = self._until(b"\n\n").decode()
            if block.startswith(":"):
                continue
            fields = dict(line.split(": ", 1) for line in block.splitlines())
            return fields["event"], json.loads(fields["data"])

    def wait_for(self, kind: str, timeout: float = 10.0) -> list[tuple[str, dict[str, Any]]]:
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self.next_event()
            seen.append(event)
            if event[0] == kind:
                return seen
        raise AssertionError(f"no {kind} event; saw {seen}")

    def close(self) -> None:
        self.sock.close()


def test_event_stream_across_a_reload(pair: tuple[Node, Node]) -> None:
    _, n2 = pair
    stream = Stream(n2.sock)
    try:
        # A lower priority for VI_2 is applied in place: the stream shows the priority
        # change and the reload, and the API counts it.
        n2.config_path.write_text(node_config("node2", n2.state_dir, 100, priority2=95))
        out = subprocess.run(
            [sys.executable, "-m", "halo_core.cli", "reload", "-c", str(n2.config_path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        seen = stream.wait_for("config_reloaded")
        kinds = [k for k, _ in seen]
        assert "vrrp_priority" in kinds, seen
        prio = next(e for k, e in seen if k == "vrrp_priority")
        assert (prio["instance"], prio["old"], prio["new"]) == ("VI_2", 100, 95)
        assert prio["source"] == "vrrp:VI_2"
        reloaded = seen[-1][1]
        assert "VI_2 updated in place" in reloaded["summary"]
    finally:
        stream.close()
    assert n2.get("/v1/status")["halo"]["reloads"] == 1
    m = metrics(http(n2.sock, "/metrics")[2].decode())
    assert m[("halo_config_reloads_total", frozenset())] == 1


def test_sigterm_steps_down_cleanly(lab: Any, tmp_path: Path) -> None:
    """SIGTERM: the event stream shows the STOP, a priority-0 advert goes out, the address
    is removed, the socket and pid file are gone, and the exit status is 0."""
    lb = lab(1)
    cap = lb.capture(tmp_path / "vrrp.pcap", filter="vrrp")
    node = start_node(lb.host("h1"), tmp_path, "n", 150)
    assert wait_until(lambda: node.instance("VI_1")["state"] == "MASTER", 10, 0.05)
    assert wait_until(lambda: VIP1 in str(node.host.addresses()), 5)
    stream = Stream(node.sock, "?kinds=vrrp_state")
    try:
        node.proc.kill(signal.SIGTERM)
        stops = set()
        while len(stops) < 2:
            _, event = stream.next_event()
            if event["new"] == "STOP":
                stops.add(event["instance"])
        assert stops == {"VI_1", "VI_2"}
        with pytest.raises(EOFError):
            while True:
                stream.next_event()
    finally:
        stream.close()
    assert node.proc.wait(10) == 0
    frames = cap.stop()
    zero = [a for a in vrrp_adverts(frames, vrid=51) if a.priority == 0]
    assert zero and str(zero[0].src) == "192.0.2.11"
    assert VIP1 not in str(node.host.addresses()) and VIP2 not in str(node.host.addresses())
    assert not Path(node.sock).exists() and not (node.state_dir / "halo.pid").exists()
