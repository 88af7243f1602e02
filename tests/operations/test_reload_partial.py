"""A reload whose file validates but fails while being applied is all or nothing: a backend
refusing its part has every part applied before it put back, each error is logged, and the
running configuration stays (#15). The lab side (an instance on a missing interface, the
worker told) is step 8 of tests/operations/test_reload.py."""

from __future__ import annotations

import logging
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from halo_core import plugins
from halo_core.config import load
from halo_core.config.model import HaloConfig
from halo_core.daemon import Daemon
from halo_core.events import Event
from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import Backend, BackendConfig, PluginContext, PluginType


class RecordingBackend(Backend):
    """Remembers the router_id of every configuration it is given; refuses (raises) one
    whose router_id is its ``refuse`` option."""

    def __init__(self, config: RecordingConfig, context: PluginContext) -> None:
        self.refuse = config.refuse
        self.seen: list[str] = []

    async def start(self) -> None:
        pass

    async def reload(self, config: HaloConfig) -> None:
        router_id = str(config.global_.router_id)
        self.seen.append(router_id)
        if router_id == self.refuse:
            raise RuntimeError(f"refusing router_id {router_id}")

    async def handle(self, event: Event) -> None:
        pass

    async def stop(self) -> None:
        pass


@dataclass(frozen=True, kw_only=True)
class RecordingConfig(BackendConfig):
    refuse: str = ""


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [PluginType("backend", "recording", RecordingConfig, RecordingBackend)]


def config(router_id: str) -> str:
    return f"""global:
  router_id: {router_id}
backends:
  first: {{type: recording}}
  second: {{type: recording, refuse: b}}
  third: {{type: recording}}
"""


async def test_a_backend_refusing_its_reload_has_the_applied_parts_put_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = plugins.load(
        entry_points=False,
        modules=[("recording", types.SimpleNamespace(halo_plugin_types=halo_plugin_types))],
    )
    path = tmp_path / "halo.yaml"
    path.write_text(config("a"))
    d = Daemon(load(str(path), p), p)
    await d._start_backends()
    before = d.config
    reloaded: list[Event] = []
    d.bus.subscribe(reloaded.append, kinds=["config_reloaded"])

    path.write_text(config("b"))
    with caplog.at_level(logging.ERROR):
        assert await d.reload() is False
    assert d.config is before
    first, second, third = (d.backends[n] for n in ("first", "second", "third"))
    assert isinstance(first, RecordingBackend) and isinstance(second, RecordingBackend)
    assert isinstance(third, RecordingBackend)
    assert first.seen == ["b", "a"]  # applied, then put back
    assert second.seen == ["b", "a"]  # refused part-way, put back too
    assert third.seen == []  # never reached
    messages = [r.getMessage() for r in caplog.records]
    assert "backend second reload failed: RuntimeError: refusing router_id b" in messages
    assert (
        "reload: applying failed: backend:second: RuntimeError: refusing router_id b;"
        " putting the running configuration back" in messages
    )
    assert "reload: the running configuration stays in force" in messages

    # a file every part accepts is applied in full
    path.write_text(config("c"))
    assert await d.reload() is True
    assert d.config.model.global_.router_id == "c"
    assert [b.seen[-1] for b in (first, second, third)] == ["c", "c", "c"]
    await d.bus.drain(timeout=1.0)
    assert [getattr(e, "summary", None) for e in reloaded] == ["no runtime change"]
    await d.bus.close()
