"""The engine in a daemon: pools start with it (halo_daemon_state "started"), are replaced on
reload when their virtual server changed (named in the reload's summary), stop with it, and do not
exist when the plugin is blocked."""

from __future__ import annotations

from pathlib import Path

from halo_core import plugins as plugin_loader
from halo_core.config import load
from halo_core.daemon import Daemon
from halo_core.events import ConfigReloaded, Event, PoolChanged
from halo_engine_pools import pools

CONFIG = """
global:
  state_dir: {state}
virtual_servers:
  - address: 192.0.2.100
    port: 80
    real_servers:
      - address: 192.0.2.21
        weight: {weight}
        checks: [{{type: tcp}}]
"""


def write(path: Path, weight: int) -> None:
    path.write_text(CONFIG.format(state=path.parent / "state", weight=weight))


async def test_pools_follow_the_daemon(tmp_path: Path) -> None:
    path = tmp_path / "halo.yaml"
    write(path, weight=1)
    loaded = plugin_loader.load()
    daemon = Daemon(load(str(path), loaded), loaded)
    seen: list[Event] = []
    daemon.bus.subscribe(seen.append, name="recorder")
    await daemon.start()
    try:
        (pool,) = pools(daemon)
        assert pool.vs == daemon.config.model.virtual_servers[0]
        await daemon.bus.drain()
        assert [e.reason for e in seen if isinstance(e, PoolChanged)] == ["start"]

        write(path, weight=2)
        assert await daemon.reload()
        (replaced,) = pools(daemon)
        assert replaced is not pool and replaced.servers[0].weight == 2
        await daemon.bus.drain()
        (reloaded,) = [e for e in seen if isinstance(e, ConfigReloaded)]
        assert reloaded.summary == f"virtual server {pool.label} changed"

        assert await daemon.reload()  # unchanged: the same pool keeps running
        assert pools(daemon) == (replaced,)
    finally:
        await daemon.stop()
    assert pools(daemon) == ()


async def test_blocked_engine_runs_no_pools(tmp_path: Path) -> None:
    path = tmp_path / "halo.yaml"
    write(path, weight=1)
    loaded = plugin_loader.load(block=["engine-pools"])
    daemon = Daemon(load(str(path), loaded), loaded)
    seen: list[Event] = []
    daemon.bus.subscribe(seen.append, name="recorder")
    await daemon.start()
    try:
        await daemon.bus.drain()
        assert pools(daemon) == ()
        assert not [e for e in seen if isinstance(e, PoolChanged)]
    finally:
        await daemon.stop()
