"""The worker process's entry point: ``python -m halo_core.worker --fd N --config PATH``,
started by the VRRP process (:class:`halo_core.processes.WorkerSupervisor`), never by hand."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from halo_core.daemon import Daemon
from halo_core.processes import VrrpPeer

if TYPE_CHECKING:
    from halo_core.config import Config
    from halo_core.plugins import Plugins

log = logging.getLogger("halo")


async def serve_worker(config: Config, plugins: Plugins, sock: socket.socket) -> int:
    """The worker's life: wait for the VRRP process's hello, start everything but VRRP,
    run until told to stop (or the VRRP process is gone), stop."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        # The VRRP process tells this one what to do, in order: its STOP transitions
        # first, then "stop" (systemd signals every process of the service at once).
        loop.add_signal_handler(sig, lambda: None)
    from halo_core.realtime import apply_worker

    apply_worker(config.model.global_)
    daemon = Daemon(config, plugins, role="worker")
    peer = daemon.peer = VrrpPeer(daemon, sock)
    await peer.hello
    if peer.stop_requested.is_set():
        return 1
    await daemon.start()
    from halo_core import listen

    for endpoint in listen.close_unclaimed():
        # handed over for a file that changed before this worker read it
        log.warning("worker: no plugin serves on %s any more: closed", endpoint)
    peer.started()
    log.debug("worker process started")
    await peer.stop_requested.wait()
    await daemon._tell_state("stopping")
    await daemon.stop()
    peer.link.send({"t": "stopped"})
    await peer.link.flush(1.0)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from halo_core import log as halo_log
    from halo_core.config import load_or_report

    parser = argparse.ArgumentParser(prog="halo-worker", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="the inherited socket")
    parser.add_argument("--config", required=True, help="the configuration file")
    parser.add_argument("--log-level", default="info", help="log level (default: %(default)s)")
    parser.add_argument("--log-format", help="text or json (default: the configuration's)")
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    halo_log.setup(args.log_level, "text")
    loaded = load_or_report(args.config, log.error)
    if loaded is None:
        log.error("worker: not started: the configuration %s is invalid", args.config)
        return 1
    config, plugins = loaded
    g = config.model.global_
    halo_log.setup(args.log_level, args.log_format or g.log_format)
    return asyncio.run(serve_worker(config, plugins, sock))


if __name__ == "__main__":
    sys.exit(main())
