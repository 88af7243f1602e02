"""``halo convert``: a keepalived.conf (keepalived 2.2.7's whole language) → halo's YAML.

    halo convert /etc/keepalived/keepalived.conf > /etc/halo/halo.yaml

The layers: :mod:`.lexer` reads files the way keepalived does (comments, includes,
conditional lines, parameters, sequences) into tokens, :mod:`.parser` builds the block
tree, :mod:`.mapping` and its one module per block turn keepalived's keywords into halo's
sections and the plugins' settings, :mod:`.emit` writes the YAML with the source's order and
comments. The result is validated with halo's own loader before it is printed.

Like keepalived, the converter maps what it understands and reports every line it leaves
out, on stderr: ``note:`` (converted, with a remark; or ignored by keepalived too),
``warning:`` (a line keepalived would refuse or ignore with a message: an unknown keyword,
a bad value, a block keepalived cannot run) and ``unsupported:`` (keepalived does it, halo
does not yet), each with ``FILE:LINE``, then a one-line summary. The YAML is written with
exit status 0; ``--strict`` makes any warning or unsupported line exit 1. A file that
cannot be read or parsed gives ``FILE:LINE: message`` and exit status 1. Nothing here
imports a network library.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from halo_core.plugins import Plugins
    from halo_tool_convert.emit import YMap
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
    blocks: int = 0  # top-level keepalived blocks converted

    @property
    def unsupported(self) -> list[Report]:
        return [r for r in self.reports if r.kind == "unsupported"]

    @property
    def warnings(self) -> list[Report]:
        return [r for r in self.reports if r.kind == "warning"]

    @property
    def notes(self) -> list[Report]:
        return [r for r in self.reports if r.kind == "note"]

    def summary(self) -> str:
        """One line: how much was converted and what was said about it."""

        def n(count: int, what: str) -> str:
            return f"{count} {what}{'' if count == 1 else 's'}"

        return (
            f"halo convert: {n(self.blocks, 'block')} converted,"
            f" {n(len(self.notes), 'note')}, {n(len(self.warnings), 'warning')},"
            f" {len(self.unsupported)} unsupported"
        )


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
        "Check it with `halo check -c FILE`; comments marked 'unsupported', 'ignored' or",
        "'left out' show what halo does not do.",
    ]
    text = _loadable(doc, header, plugins, conv.reports)
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
    return Result(text, reports, conv.blocks)


def _loadable(doc: YMap, header: list[str], plugins: Plugins, reports: list[Report]) -> str:
    """The YAML of ``doc``, loaded with halo's own loader. What halo cannot load as
    converted (an instance keepalived itself would refuse, say) is left out with a warning
    at the keepalived line it came from - a whole named block (an instance, a check, a
    group) at a time, as keepalived leaves out a block it cannot use - and the rest loaded
    again. Raises :class:`ConvertError` when that does not settle (a converter bug)."""
    from halo_core.config import ConfigError, load_text
    from halo_tool_convert.emit import YMap, dump, to_data
    from halo_tool_convert.lexer import ConvertError
    from halo_tool_convert.mapping import Report

    for _ in range(10):
        text = dump(doc, header)
        locs: dict[Any, Loc] = {}
        to_data(doc, (), locs)
        try:
            load_text(text, "<converted>", plugins)
        except ConfigError as exc:
            problems = exc.problems
        else:
            return text
        left_out = False
        unplaced: list[tuple[Loc | None, str]] = []
        for p in problems:
            path = tuple(p.path or ())
            loc = None
            for n in range(len(path), 0, -1):
                loc = locs.get(path[:n])
                if loc is not None:
                    break
            if loc is None and locs:
                loc = min(locs.values())
            where = ".".join(str(x) for x in path) or "(file)"
            section = doc.get(str(path[0])) if path else None
            if len(path) >= 2 and isinstance(section, YMap) and str(path[1]) in section:
                block = f"{path[0]}.{path[1]}"
                assert loc is not None
                section.remove(
                    str(path[1]),
                    why=f"{block} left out: halo cannot load it as converted: {p.message}",
                )
                reports.append(
                    Report("warning", loc, "", f"in halo's terms, {where}: {p.message}; left out")
                )
                left_out = True
            else:
                unplaced.append((loc, f"in halo's terms, {where}: {p.message}"))
        if not left_out:
            raise ConvertError(unplaced)
    raise ConvertError([(None, "the converted configuration does not settle")])


# ---------------------------------------------------------------------------------- command


def add_command(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a keepalived.conf to halo's YAML",
        description=(
            "Convert a keepalived.conf (and the files it includes) to halo's YAML, printed on"
            " standard output. Lines left out are reported on standard error ('warning:' for"
            " what keepalived would refuse or ignore, 'unsupported:' for what halo does not"
            " do yet, 'note:' for remarks) and left as comments in the output; a summary"
            " line ends the report."
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
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 (and write nothing) if any line gave a warning or is unsupported",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="print only warnings and unsupported lines"
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
        if r.kind != "note" or not args.quiet:
            print(str(r), file=sys.stderr)
    print(result.summary(), file=sys.stderr)
    if args.strict and (result.unsupported or result.warnings):
        print("halo convert: not written (--strict)", file=sys.stderr)
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
