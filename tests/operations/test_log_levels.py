"""Log levels an operator can filter on, and the fields of `--log-format json`.

Each test drives the real code path (a tcp check against a closed port on loopback, two VRRP
engines on the loopback interface of a private network namespace, a daemon whose backend
raises) and reads the level and the structured fields of the record it logged.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import fcntl
import json
import logging
import os
import socket
import struct
import threading
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from halo_core import plugins
from halo_core.bus import EventBus
from halo_core.checks import CheckRunner
from halo_core.config import load_text
from halo_core.daemon import Daemon
from halo_core.events import BackendFailed
from halo_core.hookspecs import hookimpl
from halo_core.log import JsonFormatter
from halo_core.plugin_api import Backend, BackendConfig, CheckTarget, PluginType
from halo_core.scheduler import LoopClock, Scheduler
from halo_core.vrrp import fsm
from halo_core.vrrp.engine import VrrpEngine


def records(caplog: pytest.LogCaptureFixture, needle: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if needle in r.getMessage()]


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------- checks


async def test_check_down_is_a_warning_and_up_is_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = closed_port()
    p = plugins.load()
    cfg = load_text(
        f"checks:\n  web: {{type: tcp, connect_ip: 127.0.0.1, connect_port: {port},"
        " fall: 1, rise: 1, timeout: 2}\n",
        "t.yaml",
        p,
    )
    runner = CheckRunner(
        "web",
        p.type("checker", "tcp"),
        cfg.model.checks["web"].config,
        target=CheckTarget("web"),
        scheduler=Scheduler(),
        bus=EventBus(),
    )
    runner.checker = runner.ptype.load_factory()(runner.config, runner.target)
    await runner.run_once()  # nothing listens: refused
    (down,) = records(caplog, "check web: down")
    assert down.levelno == logging.WARNING
    assert (down.check, down.from_state, down.to_state) == ("web", "UP", "DOWN")  # type: ignore[attr-defined]
    assert "refused" in down.reason  # type: ignore[attr-defined]

    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        await runner.run_once()
    finally:
        server.close()
        await server.wait_closed()
        await runner.checker.close()
    (up,) = records(caplog, "check web: up")
    assert up.levelno == logging.INFO

    line = json.loads(JsonFormatter().format(down))
    assert line["level"] == "warning" and line["logger"] == "halo.checks"
    assert (line["check"], line["from_state"], line["to_state"]) == ("web", "UP", "DOWN")
    assert datetime.fromisoformat(line["time"]).utcoffset() is not None  # has a timezone


# ------------------------------------------------------------------------------- VRRP

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP, IFF_MULTICAST = 0x1, 0x1000


def _loopback_up() -> None:
    """lo up (with multicast) in this thread's fresh namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0))
        flags = struct.unpack("16sH14x", ifreq)[1] | IFF_UP | IFF_MULTICAST
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags))


def in_private_netns(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run ``scenario`` on an event loop in a thread of its own that has a network namespace
    of its own (only ``lo``). The namespace disappears with the thread: nothing to clean."""
    failure: list[BaseException] = []

    def body() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            failure.append(OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)"))
            return
        try:
            _loopback_up()
            asyncio.run(asyncio.wait_for(scenario(), 30))
        except BaseException as exc:  # handed to the test's thread
            failure.append(exc)

    thread = threading.Thread(target=body, name="private-netns")
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the scenario did not end"
    if failure and isinstance(failure[0], OSError) and failure[0].errno == errno.EPERM:
        pytest.skip("needs CAP_SYS_ADMIN for a network namespace")
    if failure:
        raise failure[0]


INSTANCE = """\
vrrp_instances:
  VI_1:
    state: {state}
    interface: lo
    virtual_router_id: 51
    priority: {priority}
    version: 3
    advert_int: 0.1
{extra}    virtual_ipaddress: [192.0.2.100/24]
"""


async def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@pytest.mark.skipif(os.geteuid() != 0, reason="raw VRRP sockets need root")
def test_vrrp_losing_master_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """node1 becomes MASTER (INFO); node2, priority 200, takes over: node1's MASTER -> BACKUP
    is a WARNING. Then a backend failure puts node2 in FAULT: an ERROR and a WARNING."""
    caplog.set_level(logging.INFO)
    p = plugins.load()
    node1 = load_text(INSTANCE.format(state="MASTER", priority=100, extra=""), "n1.yaml", p)
    # Another source address, or node2 would take node1's adverts for its own.
    extra = "    unicast_src_ip: 127.0.0.2\n"
    node2 = load_text(INSTANCE.format(state="BACKUP", priority=200, extra=extra), "n2.yaml", p)

    async def scenario() -> None:
        engines = [VrrpEngine(node1.model, EventBus(), LoopClock())]
        try:
            engines[0].start()
            first = engines[0].instances["VI_1"]
            assert await wait_for(lambda: first.state is fsm.State.MASTER, 5)
            engines.append(VrrpEngine(node2.model, EventBus(), LoopClock()))
            engines[1].start()
            second = engines[1].instances["VI_1"]
            assert await wait_for(lambda: first.state is fsm.State.BACKUP, 5), first.state
            assert await wait_for(lambda: second.state is fsm.State.MASTER, 5)
            engines[1].on_backend_failed(
                BackendFailed(backend="vip", error="cannot add 192.0.2.100", instance="VI_1")
            )
            assert second.state is fsm.State.FAULT
        finally:
            for engine in engines:
                engine.stop()

    in_private_netns(scenario)

    entered = [
        (r.levelno, r.from_state, r.to_state)  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "instance", None) == "VI_1" and hasattr(r, "to_state")
    ]
    assert (logging.INFO, "INITIALIZE", "BACKUP") in entered  # BACKUP at start
    assert (logging.INFO, "BACKUP", "MASTER") in entered
    assert (logging.WARNING, "MASTER", "BACKUP") in entered
    assert (logging.WARNING, "MASTER", "FAULT") in entered
    for level, old, new in entered:
        loud = new == "FAULT" or (old == "MASTER" and new != "MASTER")
        assert level == (logging.WARNING if loud else logging.INFO), (old, new)
    (failed,) = records(caplog, "VI_1: backend vip: cannot add")
    assert failed.levelno == logging.ERROR
    assert (failed.instance, failed.backend) == ("VI_1", "vip")  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------- backends


@dataclass(frozen=True, kw_only=True)
class BrokenBackendConfig(BackendConfig):
    """A backend that cannot start."""


class BrokenBackend(Backend):
    def __init__(self, config: BrokenBackendConfig, context: object) -> None:
        pass

    async def start(self) -> None:
        raise OSError(errno.EPROTONOSUPPORT, "no such kernel feature")

    async def handle(self, event: object) -> None:
        pass

    async def stop(self) -> None:
        pass


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [PluginType("backend", "broken", BrokenBackendConfig, BrokenBackend)]


async def test_backend_that_raises_is_an_error(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO)
    plugin = types.SimpleNamespace(halo_plugin_types=halo_plugin_types, __name__="test_broken")
    p = plugins.load(modules=[("backend-broken", plugin)])
    cfg = load_text(
        f"global: {{state_dir: {tmp_path}, status_api: {{enabled: false}}}}\n"
        "backends:\n  lb: {type: broken}\n",
        "t.yaml",
        p,
    )
    daemon = Daemon(cfg, p)
    await daemon.start()
    await daemon.stop()
    (rec,) = records(caplog, "backend lb (broken) cannot start")
    assert rec.levelno == logging.ERROR
    assert rec.backend == "lb"  # type: ignore[attr-defined]
    assert "no such kernel feature" in rec.reason  # type: ignore[attr-defined]
