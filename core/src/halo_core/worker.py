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

import asyncio  # noqa: E402 - after asyncio without ssl
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


OPTIONS = {"--fd": "fd", "--input-fd": "input_fd", "--log-level": "log_level"}
OPTIONS["--log-format"] = "log_format"
USAGE = "usage: python -m halo_core.worker --fd N --input-fd N [--log-level L] [--log-format F]"


def options(argv: Sequence[str]) -> dict[str, str]:
    """The command line the VRRP process gives (argparse is 0.3 MB this process need not
    hold: the VRRP process reads its own few options so too). ValueError if it is not."""
    found: dict[str, str] = {}
    args = list(argv)
    while args:
        option = args.pop(0)
        name, eq, value = option.partition("=")
        if name not in OPTIONS:
            raise ValueError(f"unknown option {option!r}")
        if not eq:
            if not args:
                raise ValueError(f"{name} needs a value")
            value = args.pop(0)
        found[OPTIONS[name]] = value
    for required in ("--fd", "--input-fd"):
        if not found.get(OPTIONS[required], "").isdigit():
            raise ValueError(f"{required} needs a descriptor number")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    from halo_core import handover
    from halo_core import log as halo_log
    from halo_core.config import ConfigError

    try:
        opts = options(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"halo-worker: {exc}\n{USAGE}\n(`halo run` starts it)", file=sys.stderr)
        return 2
    fd, input_fd = int(opts["fd"]), int(opts["input_fd"])
    log_level, log_format = opts.get("log_level", "info"), opts.get("log_format")
    halo_log.setup(log_level, "text")
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        log.error("worker: not started: descriptor %d is not the VRRP process's link: %s", fd, exc)
        return 1
    try:
        given = handover.read_input(input_fd)
    except (OSError, ValueError) as exc:
        log.error("worker: not started: %s", exc)
        return 1
    finally:
        handover.close_input(input_fd)
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
    halo_log.setup(log_level, log_format or g.log_format)
    return asyncio.run(serve_worker(config, plugins, sock))


if __name__ == "__main__":
    sys.exit(main())
