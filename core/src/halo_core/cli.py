"""The ``halo`` command line.

Sub-commands import what they need when they run, so ``halo --version`` and ``halo check``
stay fast and never load network libraries.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from halo_core import version

if TYPE_CHECKING:
    from halo_core.config import Config
    from halo_core.plugins import Plugins

DEFAULT_CONFIG = "/etc/halo/halo.yaml"


def _load_plugins(config_path: str | None = None) -> Plugins:
    from halo_core import plugins

    block: list[str] = []
    if config_path:
        from halo_core.config import block_list
        from halo_core.config.loader import load_file

        raw, _ = load_file(config_path)
        block = block_list(raw)
    return plugins.load(block=block)


def _report_plugin_errors(p: Plugins) -> None:
    for err in p.errors:
        print(f"halo: plugin {err.name}: {err.message}", file=sys.stderr)


def load_or_report(path: str) -> tuple[Config, Plugins] | None:
    """Load plugins and the configuration; on errors print them (one per line) and give
    None. Shared by every command that reads a configuration."""
    from halo_core.config import ConfigError, load

    p = _load_plugins(path)
    try:
        return load(path, p), p
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return None


def cmd_check(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return 1
    cfg = loaded[0]
    if not args.quiet:
        m = cfg.model
        print(
            f"{args.config}: ok ({len(m.vrrp_instances)} VRRP instances, "
            f"{len(m.vrrp_sync_groups)} sync groups, {len(m.checks)} checks, "
            f"{len(m.notifiers)} notifiers, {len(m.backends)} backends)"
        )
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    p = _load_plugins()
    if args.json:
        out = {
            "plugins": [
                {
                    "name": i.name,
                    "module": i.module,
                    "distribution": i.distribution,
                    "version": i.version,
                    "types": [{"kind": k, "name": n} for k, n in i.types],
                }
                for i in p.infos
            ],
            "errors": [
                {"name": e.name, "distribution": e.distribution, "message": e.message}
                for e in p.errors
            ],
            "blocked": p.blocked,
        }
        print(json.dumps(out, indent=2))
        return 0
    rows = [("PLUGIN", "DISTRIBUTION", "VERSION", "PROVIDES")]
    for i in sorted(p.infos, key=lambda i: i.name):
        provides = ", ".join(f"{k} {n}" for k, n in i.types) or "-"
        rows.append((i.name, i.distribution or "-", i.version or "-", provides))
    widths = [max(len(r[c]) for r in rows) for c in range(3)]
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")
    for name in p.blocked:
        print(f"{name}: blocked")
    for err in p.errors:
        print(f"{err.name}: not loaded: {err.message}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from halo_core.config.model import HaloConfig
    from halo_core.schema import json_schema

    p = _load_plugins()
    doc = json_schema(
        HaloConfig, plugins=p.schemas, title="halo configuration", extensions=p.extensions
    )
    print(json.dumps(doc, indent=2 if not args.compact else None))
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """Validate the configuration here (so mistakes show in this terminal), then ask the
    running daemon to reload it (SIGHUP). The daemon validates again and keeps its running
    configuration if the file is invalid."""
    import signal

    from halo_core.daemon import pid_file

    loaded = load_or_report(args.config)
    if loaded is None:
        print("halo reload: not sent: the configuration is invalid", file=sys.stderr)
        return 1
    cfg = loaded[0]
    path = pid_file(cfg)
    try:
        with open(path) as fh:
            pid = int(fh.read().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        print(f"halo reload: no running halo found via {path}: {exc}", file=sys.stderr)
        return 1
    print(f"halo reload: sent to pid {pid}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from halo_core.daemon import run

    loaded = load_or_report(args.config)
    if loaded is None:
        return 1
    return run(*loaded, log_level=args.log_level)


def cmd_status(args: argparse.Namespace) -> int:
    from halo_core.status.client import cmd_status as status

    return status(args)


def cmd_watch(args: argparse.Namespace) -> int:
    from halo_core.watch import cmd_watch as watch

    return watch(args)


def _add_operations(sub: Any) -> None:
    """`halo status` and `halo watch`: their modules load only when they run."""
    p_status = sub.add_parser(
        "status",
        help="show the running daemon's instances, checks and pools",
        description="Ask the running halo, through its status API, for its state.",
    )
    p_status.add_argument("-c", "--config", default=os.environ.get("HALO_CONFIG", DEFAULT_CONFIG))
    p_status.add_argument(
        "--api",
        metavar="ENDPOINT",
        help="unix:/PATH or HOST:PORT of the status API (default: from the configuration)",
    )
    p_status.add_argument(
        "--token", default=os.environ.get("HALO_TOKEN"), help="bearer token (or $HALO_TOKEN)"
    )
    p_status.add_argument("--json", action="store_true", help="print the daemon's JSON")
    p_status.set_defaults(func=cmd_status)

    p_watch = sub.add_parser(
        "watch",
        help="show every VRRP router heard on an interface and flag conflicts",
        description="Listen to VRRP adverts on IFACE (nothing is sent) and report every "
        "router heard and any conflict between them: two masters, mismatched intervals, "
        "addresses, versions or authentication. Exit status 1 when a conflict was seen.",
    )
    p_watch.add_argument("interface", metavar="IFACE")
    p_watch.add_argument("--seconds", type=float, default=None, help="stop after N seconds")
    p_watch.add_argument("--json", action="store_true", help="JSON lines instead of text")
    p_watch.add_argument(
        "--promisc", action="store_true", help="promiscuous mode (default: all-multicast)"
    )
    p_watch.set_defaults(func=cmd_watch)


def build_parser(plugins: Plugins | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="halo",
        description="halo: VRRP failover, health checks and load balancing for Linux.",
    )
    parser.add_argument("--version", action="version", version=f"halo {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_run = sub.add_parser("run", help="run the daemon")
    p_run.add_argument("-c", "--config", default=os.environ.get("HALO_CONFIG", DEFAULT_CONFIG))
    p_run.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None)
    p_run.set_defaults(func=cmd_run)

    p_check = sub.add_parser("check", help="validate a configuration and exit")
    p_check.add_argument("-c", "--config", default=os.environ.get("HALO_CONFIG", DEFAULT_CONFIG))
    p_check.add_argument("-q", "--quiet", action="store_true", help="print nothing when valid")
    p_check.set_defaults(func=cmd_check)

    p_reload = sub.add_parser("reload", help="validate the configuration and reload the daemon")
    p_reload.add_argument("-c", "--config", default=os.environ.get("HALO_CONFIG", DEFAULT_CONFIG))
    p_reload.set_defaults(func=cmd_reload)

    p_plugins = sub.add_parser("plugins", help="list installed plugins and load errors")
    p_plugins.add_argument("--json", action="store_true")
    p_plugins.set_defaults(func=cmd_plugins)

    p_schema = sub.add_parser("schema", help="print the JSON Schema of the configuration")
    p_schema.add_argument("--compact", action="store_true")
    p_schema.set_defaults(func=cmd_schema)

    _add_operations(sub)

    from halo_core import demo

    demo.add_command(sub)
    from halo_core import convert

    convert.add_command(sub)
    if plugins is not None:
        plugins.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    plugins = None
    # Plugins may add sub-commands; only load them when the command is not a core one, so the
    # core commands stay light and a broken plugin cannot break `halo check`.
    core = {
        "run",
        "check",
        "reload",
        "plugins",
        "schema",
        "demo",
        "convert",
        "status",
        "watch",
        "-h",
        "--help",
        "--version",
    }
    if args_list and args_list[0] not in core and not args_list[0].startswith("-"):
        plugins = _load_plugins()
    parser = build_parser(plugins)
    args = parser.parse_args(args_list)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
