"""Helpers for a plugin's unit tests, no lab needed: a :class:`PluginContext` to build a
notifier or backend with, a VRRP state-change event, scripts, a free loopback port, waiting
(real time) for something to happen, the installed `halo` command, and a small HTTP server
(a target for checkers, a receiver for webhooks)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from halo_core import plugins
from halo_core.bus import EventBus
from halo_core.config import Config, ConfigError, load_text
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


def load_config(text: str, path: str = "f.yaml") -> Config:
    """Validate a configuration as ``halo check`` does, with every installed plugin."""
    return load_text(text, path, plugins.load())


def config_errors(text: str, path: str = "f.yaml") -> list[str]:
    """The ``file:line:col: path: message`` lines ``halo check`` prints for ``text``; fails
    when the configuration is valid."""
    try:
        load_config(text, path)
    except ConfigError as exc:
        return exc.lines
    raise AssertionError("the configuration is valid")


def many_instances_config(
    instances: int, interval: float, priority: int, *, state_dir: Path | None = None
) -> str:
    """halo's YAML for ``instances`` VRRPv3 instances on eth0 (VRIDs 1..N, one lab address
    each), JSON logs: one side of a loaded pair, for tests and benchmarks."""
    lines = ["global:", "  log_format: json"]
    if state_dir is not None:
        lines.append(f'  state_dir: "{state_dir}"')
    lines.append("vrrp_instances:")
    for i in range(1, instances + 1):
        vip = f"198.51.100.{i}" if i < 256 else f"203.0.113.{i - 255}"
        lines += [
            f"  VI_{i}:",
            "    interface: eth0",
            f"    virtual_router_id: {i}",
            f"    priority: {priority}",
            "    version: 3",
            f"    advert_int: {interval:g}",
            f'    virtual_ipaddress: ["{vip}/32"]',
        ]
    return "\n".join(lines) + "\n"


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


HALO = str(Path(sys.executable).parent / "halo")  # this environment's console script


def run_halo(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run this environment's ``halo`` command with ``args``; its output as text."""
    return subprocess.run([HALO, *args], capture_output=True, text=True, timeout=timeout)


class HttpServer:
    """An aiohttp server on loopback, in a thread of its own (the `halo` under test is
    another process): answers /health with 200 and /broken with 503, records POSTs."""

    def __init__(self) -> None:
        self.posts: list[dict[str, object]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: Any = None  # aiohttp's AppRunner, once started
        self.port = 0

    async def _start(self) -> None:
        from aiohttp import web  # a test dependency, not one of halo-tool-lab's

        async def health(request: Any) -> Any:
            return web.Response(text="ok")

        async def broken(request: Any) -> Any:
            return web.Response(status=503, text="down for maintenance")

        async def hook(request: Any) -> Any:
            self.posts.append(await request.json())
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/health", health)
        app.router.add_get("/broken", broken)
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def __enter__(self) -> HttpServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
