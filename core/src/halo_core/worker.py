"""The worker process's entry point: ``python -m halo_core.worker --fd N --config PATH``,
started by the VRRP process (:class:`halo_core.processes.WorkerSupervisor`), never by hand."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from halo_core import log as halo_log
    from halo_core.config import load_or_report
    from halo_core.processes import serve_worker

    parser = argparse.ArgumentParser(prog="halo-worker", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="the inherited socket")
    parser.add_argument("--config", required=True, help="the configuration file")
    parser.add_argument("--log-level", default="info", help="log level (default: %(default)s)")
    parser.add_argument("--log-format", help="text or json (default: the configuration's)")
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    halo_log.setup(args.log_level, "text")
    log = logging.getLogger("halo")
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
