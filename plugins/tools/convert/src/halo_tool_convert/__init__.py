"""``halo convert``: a keepalived.conf (keepalived 2.2.7's whole language) → halo's YAML.

    halo convert /etc/keepalived/keepalived.conf > /etc/halo/halo.yaml

The layers: :mod:`.lexer` reads files the way keepalived does (comments, includes,
conditional lines, parameters, sequences) into tokens, :mod:`.parser` builds the block
tree, :mod:`.mapping` and its one module per block turn keepalived's keywords into halo's
sections and the plugins' settings, :mod:`.emit` writes the YAML with the source's order and
comments. The result is validated with halo's own loader before it is printed.

What halo does not support is reported on stderr as ``unsupported: FILE:LINE: KEYWORD:
reason`` and written as a comment where it would have gone; ``--strict`` makes it an
error. A malformed keepalived.conf gives ``FILE:LINE: message`` and exit status 1. Nothing
here imports a network library.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from halo_core.plugins import Plugins
    from halo_tool_convert.lexer import ConvertError, Loc
    from halo_tool_convert.mapping import Report
    from halo_tool_convert.parser import Parsed


def __getattr__(name: str) -> Any:
    # `halo` builds every sub-command's parser at start-up: the converter itself is only
    # imported when something uses it.
    if name == "ConvertError":
        from halo_tool_convert.lexer import ConvertError

        return ConvertError
    if name == "Report":
        from halo_tool_convert.mapping import Report

        return Report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ConvertError", "Report", "Result", "add_command", "convert_file", "convert_text"]


@dataclass
class Result:
    """The YAML text and what the user should be told about it."""

    yaml: str
    reports: list[Report] = field(default_factory=list)

    @property
    def unsupported(self) -> list[Report]:
        return [r for r in self.reports if r.kind == "unsupported"]

    @property
    def notes(self) -> list[Report]:
        return [r for r in self.reports if r.kind == "note"]


def default_config_id() -> str:
    """keepalived's default config-id: the host name up to its first dot."""
    return os.uname().nodename.split(".")[0]


def convert_file(
    path: str, *, config_id: str | None = None, plugins: Plugins | None = None
) -> Result:
    """Convert ``path`` (and what it includes). Raises :class:`ConvertError`."""
    from halo_tool_convert.parser import parse_file

    cid = config_id if config_id is not None else default_config_id()
    return _convert(parse_file(path, cid), path, cid, config_id, plugins)


def convert_text(
    text: str,
    name: str = "keepalived.conf",
    *,
    config_id: str | None = None,
    plugins: Plugins | None = None,
    directory: str = ".",
) -> Result:
    """Convert a keepalived.conf given as text; ``name`` is used in messages and
    ``directory`` for relative includes. Raises :class:`ConvertError`."""
    from halo_tool_convert.parser import parse_text

    cid = config_id if config_id is not None else default_config_id()
    return _convert(parse_text(text, name, cid, directory), name, cid, config_id, plugins)


def _convert(
    parsed: Parsed,
    name: str,
    cid: str,
    explicit_id: str | None,
    plugins: Plugins | None,
) -> Result:
    from halo_core import version
    from halo_core.plugin_api import KINDS
    from halo_tool_convert.emit import dump, to_data
    from halo_tool_convert.lexer import Loc
    from halo_tool_convert.mapping import Converter, Report, plugin_contributions

    if plugins is None:
        from halo_core import plugins as plugin_loader

        plugins = plugin_loader.load()
    available: set[tuple[str, str]] = {(k, n) for k in KINDS for n in plugins.names(k)}
    conv = Converter(parsed, available, main_file=name, contributions=plugin_contributions(plugins))
    doc = conv.run()
    header = [
        f"halo configuration converted from {os.path.basename(name)} by `halo convert`"
        f" (halo {version()}).",
        "Check it with `halo check -c FILE`; comments marked 'unsupported' or 'ignored' show",
        "what halo does not do.",
    ]
    text = dump(doc, header)
    locs: dict[Any, Loc] = {}
    to_data(doc, (), locs)
    _validate(text, locs, plugins)
    reports = [Report("note", loc, kw, msg) for loc, kw, msg in parsed.notes]
    if parsed.used_conditionals and explicit_id is None:
        first = parsed.nodes[0].loc if parsed.nodes else Loc(name, 1)
        reports.append(
            Report(
                "note",
                first,
                "@",
                f"conditional lines were read for config-id {cid!r} (this host's name, as"
                " keepalived does); give --config-id to convert for another node",
            )
        )
    reports += conv.reports
    reports.sort(key=lambda r: (r.loc, r.kind, r.keyword))
    return Result(text, reports)


def _validate(text: str, locs: dict[Any, Loc], plugins: Plugins) -> None:
    """Load the YAML with halo's own loader; report problems at the keepalived line they
    come from."""
    from halo_core.config import ConfigError, load_text
    from halo_tool_convert.lexer import ConvertError

    try:
        load_text(text, "<converted>", plugins)
    except ConfigError as exc:
        problems: list[tuple[Loc | None, str]] = []
        for p in exc.problems:
            path = tuple(p.path or ())
            loc = None
            while path and loc is None:
                loc = locs.get(path)
                path = path[:-1]
            if loc is None and locs:
                loc = min(locs.values())
            where = ".".join(str(x) for x in (p.path or ())) or "(file)"
            problems.append((loc, f"in halo's terms, {where}: {p.message}"))
        raise ConvertError(problems) from None


# ---------------------------------------------------------------------------------- command


def add_command(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a keepalived.conf to halo's YAML",
        description=(
            "Convert a keepalived.conf (and the files it includes) to halo's YAML, printed on"
            " standard output. Keywords halo does not support are reported on standard error"
            " as 'unsupported: FILE:LINE: KEYWORD: reason' and left as comments in the output."
        ),
    )
    p.add_argument("file", metavar="FILE", help="the keepalived.conf to convert")
    p.add_argument(
        "-o", "--output", metavar="OUT", help="write the YAML to OUT (default: standard output)"
    )
    p.add_argument(
        "-i",
        "--config-id",
        metavar="ID",
        help="the config-id @ID lines are read for (keepalived's -i; default: the host name)",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 if any keyword is unsupported")
    p.add_argument(
        "-q", "--quiet", action="store_true", help="print only the unsupported keywords, no notes"
    )
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    from halo_tool_convert.lexer import ConvertError

    try:
        result = convert_file(args.file, config_id=args.config_id)
    except ConvertError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 1
    for r in result.reports:
        if r.kind == "unsupported" or not args.quiet:
            print(str(r), file=sys.stderr)
    if args.strict and result.unsupported:
        n = len(result.unsupported)
        print(
            f"halo convert: {n} unsupported keyword{'s' if n > 1 else ''} (--strict)",
            file=sys.stderr,
        )
        return 1
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(result.yaml)
        except OSError as exc:
            print(f"halo convert: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(result.yaml)
    return 0
