"""The ``halo`` command line.

Sub-commands import what they need when they run, so ``halo --version`` and ``halo check``
stay fast and never load network libraries. Nothing but ``os`` and ``sys`` is imported
before ``halo run`` begins to listen for VRRP (:mod:`halo_core.vrrp.prelisten`).
"""

from __future__ import annotations

import os
import sys

from halo_core import version

TYPE_CHECKING = False  # typing's own costs `halo run` 20 ms before it listens, when loaded
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

    from halo_core.config import Config
    from halo_core.plugins import Plugins
    from halo_core.vrrp.prelisten import Prelistening


def _load_plugins(config_path: str | None = None) -> Plugins:
    from halo_core.config import plugins_for

    return plugins_for(config_path)


def _print_error(line: str) -> None:
    print(line, file=sys.stderr)


def load_or_report(
    path: str, report: Callable[[str], object] = _print_error
) -> tuple[Config, Plugins] | None:
    """:func:`halo_core.config.load_or_report`, imported when a command runs (``halo
    --version`` stays light)."""
    from halo_core.config import load_or_report as load

    return load(path, report)


def cmd_check(args: argparse.Namespace) -> int:
    loaded = load_or_report(args.config)
    if loaded is None:
        return 2 if args.run else 1
    cfg = loaded[0]
    if args.run:
        from halo_core import log as halo_log
        from halo_core.once import run_check

        halo_log.setup("warning", "text")  # the checker's own warnings, formatted as halo's
        return run_check(cfg, loaded[1], args.run)
    from halo_core.config import runtime_problems

    broken = runtime_problems(cfg, loaded[1])
    for line in broken:
        _print_error(line)
    if broken:
        return 1
    from halo_core.config import disabled_checks

    for line in disabled_checks(cfg):
        _print_error(f"warning: {line}")
    if not args.quiet:
        m = cfg.model
        print(
            f"{args.config}: ok ({len(m.vrrp_instances)} VRRP instances, "
            f"{len(m.vrrp_sync_groups)} sync groups, {len(m.checks)} checks, "
            f"{len(m.notifiers)} notifiers, {len(m.backends)} backends)"
        )
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    import json

    from halo_core.text_table import table

    p = _load_plugins()
    build_parser(p)  # which plugin adds which command (a failing one is a load error)
    if args.json:
        out = {
            "plugins": [
                {
                    "name": i.name,
                    "module": i.module,
                    "distribution": i.distribution,
                    "version": i.version,
                    "types": [{"kind": k, "name": n} for k, n in i.types],
                    "options": list(i.options),
                    "commands": p.commands.get(i.name, []),
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
        return 1 if p.errors else 0
    rows = []
    for i in sorted(p.infos, key=lambda i: i.name):
        provided = [f"{k} {n}" for k, n in i.types] + [f"option {o}" for o in i.options]
        provided += [f"command {c}" for c in p.commands.get(i.name, [])]
        rows.append((i.name, i.distribution, i.version, ", ".join(provided) or None))
    print("\n".join(table(("PLUGIN", "DISTRIBUTION", "VERSION", "PROVIDES"), rows)))
    for name in p.blocked:
        print(f"{name}: blocked")
    for err in p.errors:
        print(f"{err.name}: not loaded: {err.message}")
    return 1 if p.errors else 0


def cmd_schema(args: argparse.Namespace) -> int:
    import json

    from halo_core.config import schema_document

    doc = schema_document(_load_plugins())
    print(json.dumps(doc, indent=2 if not args.compact else None))
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """Validate the configuration here (so mistakes show in this terminal), then ask the
    running daemon to reload it (SIGHUP) and wait for its answer: 0 when both processes
    applied the file, 1 (with the daemon's reasons) when it kept its running configuration."""
    import signal
    import time

    from halo_core.daemon import pid_file, reload_file

    loaded = load_or_report(args.config)
    if loaded is None:
        print("halo reload: not sent: the configuration is invalid", file=sys.stderr)
        return 1
    cfg = loaded[0]
    path = pid_file(cfg)
    sent = time.time()
    try:
        with open(path) as fh:
            pid = int(fh.read().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        print(f"halo reload: no running halo found via {path}: {exc}", file=sys.stderr)
        return 1
    if args.wait <= 0:
        print(f"halo reload: sent to pid {pid}")
        return 0
    outcome = _reload_outcome(reload_file(cfg), pid, sent, args.wait)
    if outcome is None:
        print(
            f"halo reload: sent to pid {pid}; no answer within {args.wait:g}s (see its log)",
            file=sys.stderr,
        )
        return 1
    for line in outcome.get("warnings") or []:
        print(f"halo reload: warning: {line}", file=sys.stderr)
    errors = outcome.get("errors") or []
    if outcome.get("ok") is True:
        print(f"halo reload: applied by pid {pid}")
        return 0
    for line in errors:
        print(line, file=sys.stderr)
    why = errors[-1] if errors else "see its log"
    print(f"halo reload: refused by pid {pid}: {why}", file=sys.stderr)
    return 1


def _reload_outcome(path: str, pid: int, sent: float, wait: float) -> dict[str, Any] | None:
    """The outcome the daemon ``pid`` wrote for a reload that began after ``sent``."""
    import json
    import time

    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            with open(path) as fh:
                found = json.load(fh)
        except (OSError, ValueError):
            found = None
        if isinstance(found, dict) and found.get("pid") == pid:
            covers = found.get("covers")
            if isinstance(covers, int | float) and covers >= sent:
                return found
        time.sleep(0.05)
    return None


KEEP_TLS = "HALO_VRRP_TLS"
"""Set when the VRRP process started again with OpenSSL for a third-party address backend."""


def cmd_run(args: argparse.Namespace) -> int:
    return run(args.config, args.log_level, args.log_format)


def run(
    config: str,
    log_level: str | None,
    log_format: str | None,
    *,
    opened: Prelistening | str | None = None,
) -> int:
    """The VRRP process (docs/processes.md): a child validates the configuration with every
    plugin (:mod:`halo_core.handover`) while this process imports what it runs; this one
    never loads YAML, plugins or their schemas itself. ``opened``: the early sockets
    :func:`main` opened (:mod:`halo_core.vrrp.prelisten`), or why it could not; None: they
    are opened here."""
    import logging

    from halo_core import handover
    from halo_core import log as halo_log

    # asyncio imports OpenSSL (5 MB) for TLS connections and does without when it is
    # missing: halo's own address backends make none. Another's may (below).
    keep_tls = os.environ.get(KEEP_TLS) == "1"
    if not keep_tls:
        from halo_core import tls

        tls.absent()
    child = handover.begin(config)
    from halo_core.vrrp import prelisten

    if opened is None:
        # Listen for VRRP now, while the child validates: the engine's instances then count
        # their Master_Down_Interval from here, not from when the engine exists.
        opened = prelisten.start()
    # Logging first, so that a configuration that cannot be loaded is reported as errors
    # (priority 3 in the journal); the daemon sets it again with the configuration's settings.
    halo_log.setup(log_level or "info", log_format or "text")
    log = logging.getLogger("halo")
    early = opened if isinstance(opened, prelisten.Prelistening) else None
    if early is None:
        log.debug("pre-listening off: %s", opened)
    import halo_core.daemon
    import halo_core.processes
    import halo_core.vrrp.engine  # noqa: F401 - imported while the child validates

    found = handover.finish(child)
    for problem in found.problems:
        log.error("%s", problem)
    if found.failure is not None or found.problems:
        log.error("not started: the configuration %s is invalid", config)
        if found.failure is not None:
            log.error("not started: %s", found.failure)
        return 1
    if not found.first_party and not keep_tls:
        # a third-party address backend may connect with TLS: start again (same pid) with it
        if early is not None:
            early.close()
        os.execve(sys.executable, sys.orig_argv, {**os.environ, KEEP_TLS: "1"})
    from halo_core.daemon import run_vrrp

    return run_vrrp(found, log_level=log_level, log_format=log_format, prelistening=early)


def build_parser(plugins: Plugins | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``plugins``, their commands too (each plugin isolated:
    one that fails to add its commands is reported on stderr and left out)."""
    import argparse

    from halo_core.log import FORMATS, LEVELS
    from halo_core.plugin_api import add_config_option

    class _PrintVersion(argparse.Action):
        """argparse's "version" action, looking the version up only when asked: the lookup
        imports importlib.metadata, which the VRRP process (``halo run``) does without."""

        def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
            print(f"halo {version()}")
            parser.exit()

    parser = argparse.ArgumentParser(
        prog="halo",
        description="halo: VRRP failover, health checks and load balancing for Linux.",
    )
    parser.add_argument("--version", action=_PrintVersion, nargs=0, help="print the version")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_run = sub.add_parser(
        "run",
        help="run the daemon",
        description="Run the daemon in the foreground: VRRP instances, checks, virtual"
        " servers, backends and notifiers from the configuration, until SIGTERM or Ctrl-C."
        " SIGHUP (or halo reload) re-reads the configuration. Logs go to stderr.",
    )
    add_config_option(p_run)
    p_run.add_argument(
        "--log-level",
        choices=LEVELS,
        default=None,
        help="least severe level logged (default: global.log_level, itself info)",
    )
    p_run.add_argument(
        "--log-format",
        choices=FORMATS,
        default=None,
        help="text lines, or one JSON object per line with structured fields"
        " (default: global.log_format, itself text)",
    )
    p_run.set_defaults(func=cmd_run)

    p_check = sub.add_parser(
        "check",
        help="validate a configuration and exit",
        description="Read the configuration (and the files it includes), check it against"
        " the schema of halo and of the installed plugins, import the runtime of every"
        " configured type, print every problem as FILE:LINE:COLUMN: message, and exit 1 if"
        " there is any. Nothing is started.",
    )
    add_config_option(p_check)
    p_check.add_argument("-q", "--quiet", action="store_true", help="print nothing when valid")
    p_check.add_argument(
        "--run",
        metavar="CHECK",
        default=None,
        help="then run the configured check CHECK once (with its timeout and retries), print"
        " the result, the time it took and why it failed; exit 0 passed, 1 failed, 2 unknown"
        " check or invalid configuration (default: run nothing)",
    )
    p_check.set_defaults(func=cmd_check)

    p_reload = sub.add_parser(
        "reload",
        help="validate the configuration and reload the daemon",
        description="Check the configuration here (errors show in this terminal), then send"
        " SIGHUP to the running halo named by the pid file in global.state_dir. The daemon"
        " checks it again and keeps its running configuration if it is invalid or cannot be"
        " applied in full by both of its processes; this waits for that answer and exits 0"
        " when the file was applied, 1 when it was not (with the daemon's reasons).",
    )
    add_config_option(p_reload)
    p_reload.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the daemon's answer; 0: send and return (default: %(default)s)",
    )
    p_reload.set_defaults(func=cmd_reload)

    p_plugins = sub.add_parser(
        "plugins",
        help="list installed plugins and load errors",
        description="List the plugins found through the halo.plugins entry points: their"
        " distribution, version and the checker, notifier and backend types they provide;"
        " then blocked plugins and the ones that failed to load, with the reason. Exits 1"
        " when a plugin failed to load.",
    )
    p_plugins.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p_plugins.set_defaults(func=cmd_plugins)

    p_schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of the configuration",
        description="Print the JSON Schema of the configuration file, including the"
        " options of every installed plugin's types (for editors and CI validation).",
    )
    p_schema.add_argument(
        "--compact", action="store_true", help="one line instead of indented JSON"
    )
    p_schema.set_defaults(func=cmd_schema)

    if plugins is not None:
        _add_plugin_commands(plugins, sub)
    return parser


def _add_plugin_commands(plugins: Plugins, sub: Any) -> None:
    """Each plugin adds its commands on its own (:meth:`Plugins.add_commands`); one that
    cannot is a load error, shown here, and the others' commands and the core's stay."""
    before = len(plugins.errors)
    plugins.add_commands(sub)
    for err in plugins.errors[before:]:
        print(f"halo: plugin {err.name}: {err.message}", file=sys.stderr)


def _plain_run(argv: Sequence[str]) -> tuple[str, str | None, str | None] | None:
    """``halo run`` with nothing but its own options, each given once with a valid value:
    (config, log level, log format). None for anything else (help, an abbreviation, a
    mistake), which argparse reads and answers. The VRRP process so starts without argparse
    (and the shutil, gettext and locale it brings: 0.8 MB, kept for the process's life) and
    without building every command's parser."""
    from halo_core.log import FORMATS, LEVELS
    from halo_core.plugin_api import DEFAULT_CONFIG

    if not argv or argv[0] != "run":
        return None
    given: dict[str, str] = {}
    names = {"-c": "config", "--config": "config", "--log-level": "level"}
    names["--log-format"] = "format"
    rest = list(argv[1:])
    while rest:
        option, value = rest.pop(0), None
        if option.startswith("--") and "=" in option:
            option, value = option.split("=", 1)
        elif rest:
            value = rest.pop(0)
        name = names.get(option)
        if name is None or value is None or name in given or value.startswith("-"):
            return None
        given[name] = value
    level, log_format = given.get("level"), given.get("format")
    if (level is not None and level not in LEVELS) or (
        log_format is not None and log_format not in FORMATS
    ):
        return None
    config = given.get("config", os.environ.get("HALO_CONFIG", DEFAULT_CONFIG))
    return config, level, log_format


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    early: Prelistening | str | None = None
    if args_list[:1] == ["run"]:
        # Before anything else is imported: from here on the VRRP process hears adverts.
        from halo_core.vrrp import prelisten

        early = prelisten.start()
    plain = _plain_run(args_list)
    if plain is not None:
        return _guarded(lambda: run(*plain, opened=early))
    if early is not None and not isinstance(early, str):
        early.close()  # help, or a mistake; argparse's `halo run` listens in run()
    plugins = None
    # Plugins may add commands. They are loaded for those commands and for the overview
    # (`halo`, `halo -h`), not for the core commands: those stay light, and a broken plugin
    # cannot break `halo check` or `halo --version`.
    core = {"run", "check", "reload", "plugins", "schema"}
    first = args_list[0] if args_list else None
    if (
        first is None
        or first in ("-h", "--help")
        or (first not in core and not first.startswith("-"))
    ):
        plugins = _load_plugins_safely()
    parser = build_parser(plugins)
    args = parser.parse_args(args_list)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    del parser, plugins  # `halo run` lives long: the parser's objects need not
    return _guarded(lambda: int(args.func(args)))


def _guarded(command: Callable[[], int]) -> int:
    """A command's exit status; Ctrl-C is 130, a closed pipe (``| head``) 0."""
    try:
        return command()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _load_plugins_safely() -> Plugins | None:
    """Plugins for their commands; None (and a line on stderr) if even loading failed."""
    try:
        return _load_plugins()
    except Exception as exc:  # plugins.load isolates each plugin; this is the last resort
        print(f"halo: plugins not loaded: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


if __name__ == "__main__":
    raise SystemExit(main())
