"""halo-engine-pools: keepalived's ``virtual_server`` run in the daemon. Each virtual server
becomes a :class:`~halo_engine_pools.pool.Pool` whose real servers are checked; the pools
publish the desired state that the load-balancer backends apply.

Readers (the status API, systemd's status line) get the running pools from :func:`pools`.
This module stays light: it is imported by every ``halo`` command.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from halo_core.daemon import Daemon
    from halo_engine_pools.pool import Pool

# Each daemon's pools (tests run several daemons in one process).
_running: weakref.WeakKeyDictionary[Daemon, list[Pool]] = weakref.WeakKeyDictionary()


def pools(daemon: Daemon) -> tuple[Pool, ...]:
    """The pools running in ``daemon``, in configuration order; none before its start-up
    has finished and after it stopped."""
    return tuple(_running.get(daemon, ()))
