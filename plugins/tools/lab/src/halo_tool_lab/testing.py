"""Helpers for a plugin's unit tests, no lab needed: a configuration validated as ``halo
check`` does (and its exact ``file:line:col`` errors), a configured check run once, a
configured notifier or backend driven with events, a :class:`PluginContext` to build one
by hand, a VRRP state-change event, scripts, a free loopback port, waiting (real time) for
something to happen, the installed `halo` command, and a small HTTP server (a target for
checkers, a receiver for webhooks). See docs/testing-plugins.md."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from halo_core import plugins
from halo_core.bus import EventBus
from halo_core.checks import CheckRunner
from halo_core.config import Config, ConfigError, load_text
from halo_core.config.model import GlobalConfig, HaloConfig
from halo_core.events import Event, VrrpStateChanged
from halo_core.plugin_api import (
    Backend,
    CheckResult,
    CheckTarget,
    Notifier,
    PluginContext,
    event_filter,
    pick,
)
from halo_core.scheduler import Clock, LoopClock, Scheduler
from halo_core.schema import Configured

RuntimeT = TypeVar("RuntimeT", Notifier, Backend)


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


def _configured(section: Mapping[str, Configured], what: str, name: str | None) -> str:
    """``name``, checked against the section; by default the section's only entry."""
    if name is None:
        if len(section) != 1:
            raise AssertionError(f"name the {what} to use: configured are {', '.join(section)}")
        return next(iter(section))
    return pick(what, name, list(section))


def run_check(
    text: str,
    name: str | None = None,
    *,
    address: str | None = None,
    port: int | None = None,
    path: str = "f.yaml",
) -> CheckResult:
    """Validate ``text`` and run its check ``name`` (default: the only one) once, as
    ``halo check --run`` does: the plugin's factory, the configured ``timeout``, ``retry``
    and ``delay_before_retry``. With ``address``/``port`` the check probes that real
    server, as a check inside a virtual server does. For synchronous tests (it runs its
    own event loop); :func:`probe_check` is the same for a test that has a loop running
    (a server it started on it, say)."""
    return asyncio.run(probe_check(text, name, address=address, port=port, path=path))


async def probe_check(
    text: str,
    name: str | None = None,
    *,
    address: str | None = None,
    port: int | None = None,
    path: str = "f.yaml",
) -> CheckResult:
    """:func:`run_check` on the running event loop."""
    installed = plugins.load()
    config = load_text(text, path, installed)
    name = _configured(config.model.checks, "check", name)
    configured = config.model.checks[name]
    target = CheckTarget(
        name,
        ipaddress.ip_address(address) if address is not None else None,
        port,
        config.model.global_,
    )
    runner = CheckRunner(
        name,
        installed.type("checker", configured.type),
        configured.config,
        target=target,
        scheduler=Scheduler(),
        bus=EventBus(),
    )
    result, _took = await runner.run_alone()
    return result


class Driven(Generic[RuntimeT]):
    """A configured notifier or backend built as the daemon builds it, on an event loop of
    its own, for synchronous tests: ``send(*events)`` delivers events the way the daemon's
    bus would (a notifier only gets those its ``events``/``instances``/``states`` filters
    let through, a backend only the kinds it asks for) and gives the ones delivered; on
    leaving the ``with`` block a backend is stopped and a notifier closed. ``runtime`` is
    the object the plugin's factory built, ``context`` what it was given."""

    def __init__(
        self, runtime: RuntimeT, context: PluginContext, wanted: Callable[[Event], bool]
    ) -> None:
        self.runtime: RuntimeT = runtime
        self.context = context
        self.wanted = wanted
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run one coroutine of the plugin (e.g. ``backend.reload(...)``) to its end."""
        return self.loop.run_until_complete(coro)

    def send(self, *events: Event) -> list[Event]:
        delivered = [e for e in events if self.wanted(e)]
        for event in delivered:
            if isinstance(self.runtime, Backend):
                self.run(self.runtime.handle(event))
            else:
                self.run(self.runtime.notify(event))
        return delivered

    def status(self) -> dict[str, Any]:
        return dict(self.runtime.status())

    def __enter__(self) -> Driven[RuntimeT]:
        if isinstance(self.runtime, Backend):
            self.run(self.runtime.start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if isinstance(self.runtime, Backend):
                self.run(self.runtime.stop())
            else:
                self.run(self.runtime.close())
        finally:
            self.loop.close()


def _build(kind: str, text: str, name: str | None, path: str) -> tuple[Any, PluginContext, Any]:
    installed = plugins.load()
    config = load_text(text, path, installed)
    section = config.model.notifiers if kind == "notifier" else config.model.backends
    name = _configured(section, kind, name)
    configured = section[name]
    clock = LoopClock()
    context = PluginContext(name, config.model, EventBus(), clock, Scheduler(clock))
    runtime = installed.type(kind, configured.type).load_factory()(configured.config, context)
    return runtime, context, configured.config


def drive_notifier(text: str, name: str | None = None, *, path: str = "f.yaml") -> Driven[Notifier]:
    """Validate ``text`` and build its notifier ``name`` (default: the only one)::

    with drive_notifier(CONFIG) as notifier:
        assert notifier.send(vrrp("MASTER"), vrrp("BACKUP")) == [...]
    # closed here: what it sent is in notifier.status(), or wherever it sends
    """
    runtime, context, config = _build("notifier", text, name, path)
    assert isinstance(runtime, Notifier), f"the factory built a {type(runtime).__name__}"
    return Driven(runtime, context, event_filter(config))


def drive_backend(text: str, name: str | None = None, *, path: str = "f.yaml") -> Driven[Backend]:
    """Validate ``text`` and build its backend ``name`` (default: the only one); entering
    the ``with`` block starts it, leaving it stops it."""
    runtime, context, _config = _build("backend", text, name, path)
    assert isinstance(runtime, Backend), f"the factory built a {type(runtime).__name__}"
    kinds = runtime.kinds
    return Driven(runtime, context, lambda e: kinds is None or e.kind in kinds)


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
