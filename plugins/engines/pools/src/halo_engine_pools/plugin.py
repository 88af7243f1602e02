"""The daemon's hooks that run the pools: started once every backend listens, replaced on
reload when their virtual server changed, stopped on shutdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from halo_core.hookspecs import hookimpl
from halo_engine_pools import _running

if TYPE_CHECKING:
    from halo_core.config import Config
    from halo_core.config.model import VirtualServer
    from halo_core.daemon import Daemon
    from halo_core.hookspecs import DaemonState
    from halo_engine_pools.pool import Pool


def _start(daemon: Daemon, vs: VirtualServer) -> Pool:
    from halo_engine_pools.pool import Pool

    pool = Pool(
        vs,
        plugins=daemon.plugins,
        scheduler=daemon.scheduler,
        bus=daemon.bus,
        global_config=daemon.config.model.global_,
    )
    pool.start()
    return pool


@hookimpl
def halo_has_work(config: Config) -> bool:
    """Work only with virtual servers (which need a worker anyway)."""
    return bool(config.model.virtual_servers)


@hookimpl
def halo_daemon_state(daemon: Daemon, state: DaemonState, reason: str) -> None:
    """On "started": the backends have subscribed, so they see each pool's first state."""
    if state == "started":
        _running[daemon] = [_start(daemon, vs) for vs in daemon.config.model.virtual_servers]


@hookimpl
async def halo_reload(daemon: Daemon, old: Config, new: Config) -> list[str]:
    """Replace the pools whose virtual server changed; unchanged ones keep running
    untouched (their checks' state, their members in the kernel)."""
    done = []
    keep: list[Pool] = []
    wanted = {vs.label: vs for vs in new.model.virtual_servers}
    for pool in _running.get(daemon, []):
        if wanted.get(pool.label) == pool.vs:
            keep.append(pool)
            del wanted[pool.label]
        else:
            await pool.stop()
            what = "changed" if pool.label in wanted else "removed"
            done.append(f"virtual server {pool.label} {what}")
    _running[daemon] = keep
    for label, vs in wanted.items():
        keep.append(_start(daemon, vs))
        if not any(label in d for d in done):
            done.append(f"virtual server {label} added")
    return done


@hookimpl
async def halo_shutdown(daemon: Daemon) -> None:
    for pool in _running.pop(daemon, []):
        await pool.stop()
