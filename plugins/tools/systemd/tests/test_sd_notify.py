"""sd_notify against a real datagram socket the test binds (what systemd's NOTIFY_SOCKET
is), in process and with the daemon as a process in a lab host. The unit file is tested in
test_systemd_unit.py."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from halo_core.config import load_text
from halo_core.daemon import Daemon
from halo_core.plugins import load as load_plugins
from halo_tool_systemd import notify


class NotifySocket:
    """systemd's side: a bound AF_UNIX datagram socket collecting messages."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address if not address.startswith("@") else "\0" + address[1:])
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self.cursor = 0

    def collect(self, seconds: float = 0.0) -> list[dict[str, str]]:
        deadline = time.monotonic() + seconds
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    return [m for _, m in self.messages]
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append((time.monotonic(), fields))

    def wait_for(self, key: str, value: str | None = None, timeout: float = 10.0) -> dict[str, str]:
        """The next message (after the last one waited for) with ``key``(=``value``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.collect(0.05)
            for i in range(self.cursor, len(self.messages)):
                m = self.messages[i][1]
                if key in m and (value is None or m[key] == value):
                    self.cursor = i + 1
                    return m
        raise AssertionError(f"no {key}={value} in {[m for _, m in self.messages]}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, NotifySocket]]:
    path = str(tmp_path / "notify")
    ns = NotifySocket(path)
    yield path, ns
    ns.close()


def test_notifier_path_and_abstract(notify_socket: tuple[str, NotifySocket]) -> None:
    path, ns = notify_socket
    n = notify.Notifier(path)
    assert n.send(ready=1, status="all good")
    n.close()
    name = f"@halo-test-{os.getpid()}"
    abstract = NotifySocket(name)
    try:
        n = notify.Notifier(name)
        assert n.send(watchdog=1)
        n.close()
        assert abstract.collect(0.1) == [{"WATCHDOG": "1"}]
    finally:
        abstract.close()
    assert ns.collect(0.1) == [{"READY": "1", "STATUS": "all good"}]
    with pytest.raises(ValueError):
        notify.Notifier("vsock:2:1234")
    # Nobody listening: the daemon carries on.
    gone = notify.Notifier(str(Path(path).with_name("nobody")))
    assert gone.send(ready=1) is False
    gone.close()


def test_watchdog_interval() -> None:
    pid = str(os.getpid())
    assert notify.watchdog_interval({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert notify.watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": pid}) == 0.1
    assert notify.watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}) is None
    assert notify.watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert notify.watchdog_interval({}) is None


async def test_watchdog_stops_when_the_loop_stalls(
    notify_socket: tuple[str, NotifySocket], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The keep-alive runs on the event loop, so a blocked loop stops it; and the
    variables are taken out of the environment the daemon's scripts inherit."""
    path, ns = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # keep-alive every 50 ms
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    daemon = Daemon(load_text(f"global: {{state_dir: {tmp_path}}}"), load_plugins())
    # Receive in a thread, so each message is stamped when it arrives.
    collector = threading.Thread(target=ns.collect, args=(1.5,))
    collector.start()
    sd = notify.attach(daemon)
    assert "NOTIFY_SOCKET" not in os.environ and "WATCHDOG_USEC" not in os.environ
    await asyncio.sleep(0.5)
    time.sleep(0.5)  # the loop is stuck: no keep-alive may go out now
    stalled_at = time.monotonic()
    await asyncio.sleep(0.3)
    sd.close()
    await asyncio.to_thread(collector.join)
    times = [t for t, m in ns.messages if m == {"WATCHDOG": "1"}]
    assert len(times) >= 8
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) >= 0.45  # the stall
    assert sum(1 for t in times if stalled_at - 0.45 < t < stalled_at - 0.02) == 0
    assert sorted(gaps)[len(gaps) // 2] == pytest.approx(0.05, abs=0.04)


def test_daemon_notifies_systemd(
    lab: Any, tmp_path: Path, notify_socket: tuple[str, NotifySocket]
) -> None:
    """READY=1 after start (with its status and main PID), WATCHDOG=1 at half WatchdogSec,
    STATUS= as instances change, RELOADING=1 with MONOTONIC_USEC then READY=1 around a
    reload, STOPPING=1 on SIGTERM."""
    path, ns = notify_socket
    host = lab(1).host("h1")
    config = tmp_path / "halo.yaml"
    config.write_text(
        f"""
global: {{state_dir: {tmp_path}/state}}
vrrp_instances:
  VI_1:
    interface: eth0
    virtual_router_id: 7
    priority: 100
    version: 3
    advert_int: 0.1
    virtual_ipaddress: [192.0.2.77/24]
"""
    )
    proc = host.spawn(
        sys.executable,
        "-m",
        "halo_core.cli",
        "run",
        "-c",
        config,
        env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"},
        log=tmp_path / "halo.log",
    )
    ready = ns.wait_for("READY", "1")
    assert ready["MAINPID"] == str(proc.pid)
    # READY comes once the worker is up too; VRRP started before it and at 0.1 s adverts
    # may already be MASTER by then (docs/processes.md).
    assert ready["STATUS"] in ("VI_1 INITIALIZE", "VI_1 BACKUP", "VI_1 MASTER")
    ns.wait_for("STATUS", "VI_1 MASTER", timeout=5)
    before = len(ns.messages)
    ns.collect(1.0)
    keepalives = [t for t, m in ns.messages[before:] if m.get("WATCHDOG") == "1"]
    assert 5 <= len(keepalives) <= 15, ns.messages  # every 0.1 s (a loaded machine lags)

    proc.kill(signal.SIGHUP)
    reloading = ns.wait_for("RELOADING", "1")
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert 0 < now - int(reloading["MONOTONIC_USEC"]) < 5_000_000
    after = ns.wait_for("READY", "1")
    assert "MASTER" in after["STATUS"]

    config.write_text("global: {state_dir: [not, a, path]}\n")
    proc.kill(signal.SIGHUP)
    ns.wait_for("RELOADING", "1")
    refused = ns.wait_for("READY", "1")
    assert refused["STATUS"].startswith("reload refused")

    proc.kill(signal.SIGTERM)
    stopping = ns.wait_for("STOPPING", "1")
    assert stopping["STATUS"].startswith("stopping")
    assert proc.wait(10) == 0
