"""Helpers for a plugin's unit tests, no lab needed: a :class:`PluginContext` to build a
notifier or backend with, a VRRP state-change event, scripts, a free loopback port, and
waiting (real time) for something to happen."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from halo_core.bus import EventBus
from halo_core.config.model import GlobalConfig, HaloConfig
from halo_core.events import VrrpStateChanged
from halo_core.plugin_api import PluginContext
from halo_core.scheduler import Clock, LoopClock, Scheduler


def make_context(
    name: str = "n1", *, clock: Clock | None = None, **global_options: Any
) -> PluginContext:
    global_options.setdefault("router_id", "lb1")
    config = HaloConfig(global_=GlobalConfig(**global_options))
    clock = clock or LoopClock()
    return PluginContext(name, config, EventBus(), clock, Scheduler(clock))


def vrrp(
    new: str, *, instance: str = "VI_1", old: str = "BACKUP", priority: int = 100, **kw: Any
) -> VrrpStateChanged:
    return VrrpStateChanged(
        instance=instance,
        old=old,
        new=new,
        priority=priority,
        reason=kw.pop("reason", "test"),
        interface=kw.pop("interface", "eth0"),
        vrid=kw.pop("vrid", 51),
        **kw,
    )


def write_script(path: Path, body: str, mode: int = 0o755) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def eventually(
    predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.01
) -> None:
    """Wait (real time) until ``predicate()`` is true; fail with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {predicate}")
        await asyncio.sleep(interval)
