"""The worker process's entry point: ``python -m halo_core.worker --fd N --input-fd M``,
started by the VRRP process (:class:`halo_core.processes.WorkerSupervisor`), never by hand.

It reads no file and discovers no plugin: ``--input-fd`` is a memory file holding the
document the VRRP process's validating child read and the plugins it found
(:class:`halo_core.handover.WorkerInput`); the worker imports those plugins and validates
that document with them. asyncio is imported without OpenSSL, which loads when a plugin
imports ``ssl`` (:func:`halo_core.tls.deferred`)."""

from __future__ import annotations

from halo_core import tls

tls.deferred()  # before anything imports asyncio

import argparse  # noqa: E402 - after asyncio without ssl
import asyncio  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from halo_core.daemon import Daemon  # noqa: E402
from halo_core.processes import VrrpPeer  # noqa: E402

if TYPE_CHECKING:
    from halo_core.config import Config
    from halo_core.plugins import Plugins

log = logging.getLogger("halo")

MODULES_ENV = "HALO_WORKER_MODULES"
"""A file the worker writes the names of its imported modules to when it stops (tests and
the memory bench check what a running worker holds)."""


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
    _write_modules()
    return 0


def _write_modules() -> None:
    path = os.environ.get(MODULES_ENV)
    if not path:
        return
    try:
        with open(path, "w") as out:
            out.write("".join(f"{m}\n" for m, mod in sorted(sys.modules.items()) if mod))
    except OSError as exc:
        log.warning("worker: cannot write %s: %s", path, exc.strerror)


def main(argv: Sequence[str] | None = None) -> int:
    from halo_core import handover
    from halo_core import log as halo_log
    from halo_core.config import ConfigError

    parser = argparse.ArgumentParser(prog="halo-worker", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="the inherited socket")
    parser.add_argument(
        "--input-fd", type=int, required=True, help="the configuration (a memory file)"
    )
    parser.add_argument("--log-level", default="info", help="log level (default: %(default)s)")
    parser.add_argument("--log-format", help="text or json (default: the configuration's)")
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    halo_log.setup(args.log_level, "text")
    try:
        given = handover.read_input(args.input_fd)
    except (OSError, ValueError) as exc:
        log.error("worker: not started: %s", exc)
        return 1
    finally:
        handover.close_input(args.input_fd)
    plugins = handover.worker_plugins(given)
    try:
        config = handover.worker_config(given, plugins)
    except ConfigError as exc:
        for line in exc.lines:
            log.error("%s", line)
        log.error("worker: not started: the configuration %s is invalid", given.path)
        return 1
    del given  # the document is the configuration's (config.raw) from here
    g = config.model.global_
    halo_log.setup(args.log_level, args.log_format or g.log_format)
    return asyncio.run(serve_worker(config, plugins, sock))


if __name__ == "__main__":
    sys.exit(main())
