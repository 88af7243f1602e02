"""keepalived.conf keywords → halo's YAML (the core's sections and the first-party plugins').

Every keyword of keepalived 2.2.7 is known, in the table of the block it belongs to (one
module per block: :mod:`.global_defs`, :mod:`.vrrp_instance`, :mod:`.vrrp_sync_group`,
:mod:`.vrrp_script` with the tracking keywords, :mod:`.virtual_server`, :mod:`.real_server`,
each checker's - :mod:`.tcp_check`, :mod:`.http_get`, :mod:`.misc_check` on the frame in
:mod:`.checker` - and :mod:`.notifiers`; the value parsers they share are in
:mod:`.values`); this module holds the top-level table and drives a conversion. Each one is
either *mapped* (to a halo key, or to nothing when halo's behaviour is keepalived's default),
*ignored* (it tunes keepalived's processes and has no effect in halo: reported as a note),
or *unsupported* (halo has no such behaviour yet: reported with its file and line, and
written as a comment where it would have gone). A keyword keepalived does not know, a block
where none belongs, a bad number or address is a *warning*: like keepalived, the converter
leaves that line out and converts the rest.

Where keepalived's defaults or rules differ from halo's, the mapping writes what keepalived
would do, so that the converted configuration behaves the same: keepalived's checker
defaults (connect_timeout 5 s, retry 1...), ``enable_script_security`` off, ``nopreempt``
dropped with ``state MASTER``, weighted tracking dropped in sync groups, VRRPv3 for IPv6...
each with a note saying so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from halo_tool_convert import (
    global_defs,
    notifiers,
    real_server,
    virtual_server,
    vrrp_instance,
    vrrp_script,
    vrrp_sync_group,
)
from halo_tool_convert.emit import Entry, YMap
from halo_tool_convert.lexer import ConvertError, Loc
from halo_tool_convert.parser import Node, Parsed
from halo_tool_convert.state import (
    Email,
    GroupState,
    InstanceState,
    ScriptDef,
    TrackFileDef,
    VsState,
)
from halo_tool_convert.values import (
    BFD,
    LINKBEAT,
    NAMESPACE,
    PROCESS,
    STATIC,
    TUNING,
    Finish,
    FinishHandler,
    I,
    Keyword,
    Report,
    Skip,
    Table,
    U,
    Values,
)

if TYPE_CHECKING:
    from halo_core.plugins import Plugins

__all__ = ["Converter", "Report", "Skip"]


def ssl_root(conv: Converter, node: Node, _: Any) -> None:
    """keepalived's top-level ``SSL`` block: its settings (read when the file was first
    read, into ``converter.ssl``) go to each SSL_GET check."""
    if not conv.need_block(node):
        return
    for child in node.children:
        if child.keyword not in ("password", "ca", "certificate", "key"):
            conv.error(child.loc, f"unknown keyword {child.keyword!r} in SSL")
        else:
            conv.one(child)
    conv.doc.comment(*conv.said(node), f"SSL ({conv.at(node.loc)}): written on each SSL_GET check")


TOP: Table = {
    "global_defs": global_defs.global_defs,
    "vrrp_script": vrrp_script.missing,
    "vrrp_instance": vrrp_instance.vrrp_instance,
    "vrrp_sync_group": vrrp_sync_group.vrrp_sync_group,
    "virtual_server": virtual_server.virtual_server,
    "track_file": vrrp_script.track_file_root,
    "vrrp_track_file": vrrp_script.track_file_root,
    "SSL": ssl_root,
    "vrrp_track_process": PROCESS,
    "virtual_server_group": virtual_server.virtual_server_group,
    "bfd_instance": BFD,
    "garp_group": U("halo has no per-interface gratuitous ARP groups"),
    # converted by the vip and routes backends (these answers apply when they are missing)
    "static_ipaddress": U("needs the vip backend (pip install halo-backend-vip)"),
    "static_routes": U("needs the routes backend (pip install halo-backend-routes)"),
    "static_rules": U("needs the routes backend (pip install halo-backend-routes)"),
    "track_group": STATIC,
    "linkbeat_interfaces": LINKBEAT,
    "interface_up_down_delays": U("halo has no interface up/down debouncing"),
    "net_namespace": NAMESPACE,
    "net_namespace_ipvs": NAMESPACE,
    "namespace_with_ipsets": NAMESPACE,
    "instance": I("names keepalived's pid files; halo's state_dir is global.state_dir"),
    "use_pid_dir": I("keepalived's pid files; halo's pid file is in global.state_dir"),
    "linkbeat_use_polling": LINKBEAT,
    "child_wait_time": TUNING,
}

# The keyword table of each block, by the block's keyword ("top" for keepalived.conf's top
# level). Checker blocks have theirs in their :class:`~halo_tool_convert.checker.CheckerSpec`.
TABLES: dict[str, Table] = {
    "top": TOP,
    "global_defs": global_defs.TABLE,
    "vrrp_instance": vrrp_instance.TABLE,
    "vrrp_sync_group": vrrp_sync_group.TABLE,
    "virtual_server": virtual_server.TABLE,
    "real_server": real_server.TABLE,
}
# The blocks after which plugins may write something (:class:`Finish`).
FINISH_BLOCKS = ("top", "vrrp_instance", "vrrp_sync_group", "virtual_server")


def plugin_contributions(plugins: Plugins) -> list[Keyword | Finish]:
    """What the plugins convert (``halo_convert_keepalived``). A hook that raises or returns
    something else, or two plugins converting one keyword, is a ConvertError."""
    found: list[Keyword | Finish] = []
    claimed: dict[tuple[str, str], str] = {}
    problems: list[tuple[Loc | None, str]] = []
    for impl in plugins.hook.halo_convert_keepalived.get_hookimpls():
        name = impl.plugin_name
        try:
            got = list(impl.function())
            for item in got:
                if not isinstance(item, Keyword | Finish):
                    raise TypeError(f"{item!r} is not a halo_tool_convert.api.Keyword or Finish")
                where = item.keyword if isinstance(item, Keyword) else "Finish"
                if item.block not in (TABLES if isinstance(item, Keyword) else FINISH_BLOCKS):
                    raise ValueError(f"{where}: no keepalived block {item.block!r} to put it in")
        except Exception as exc:  # a plugin's code: its failure is reported, not a traceback
            problems.append((None, f"plugin {name}: its keepalived keywords: {one_line(exc)}"))
            continue
        for item in got:
            if isinstance(item, Finish):
                found.append(item)
                continue
            key = (item.block, item.keyword)
            if key in claimed:
                problems.append(
                    (
                        None,
                        f"plugins {claimed[key]} and {name} both convert {item.keyword}"
                        f" in {item.block}",
                    )
                )
            else:
                claimed[key] = name
                found.append(item)
    if problems:
        raise ConvertError(problems)
    return found


def one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Converter(Values):
    """One conversion. ``available`` is the set of (kind, type) plugin types installed,
    e.g. ``("checker", "http")``; keywords that need a missing plugin are unsupported."""

    def __init__(
        self,
        parsed: Parsed,
        available: set[tuple[str, str]],
        main_file: str = "",
        contributions: Iterable[Keyword | Finish] = (),
    ) -> None:
        super().__init__(available, main_file)
        self.parsed = parsed
        self.email_comments: list[tuple[Entry, str]] = []
        self.doc = YMap()
        self.email = Email()
        self.global_map: YMap | None = None
        self.global_loc: Loc | None = None
        self.vip_backend: YMap | None = None
        self.ipvs_backend: YMap | None = None
        self.ipvs_flush: Node | None = None
        self.default_version: int | None = None
        self.default_version_loc: Loc | None = None
        self.default_interface: str | None = None  # global_defs default_interface
        self.vrrp_strict: Loc | None = None  # where global_defs turns vrrp_strict on
        self.lower_prio_no_advert: Loc | None = None  # global_defs vrrp_lower_prio_no_advert
        self.script_security: bool | None = None
        self.script_user: str | None = None
        self.scripts: dict[str, ScriptDef] = {}
        self.used_scripts: set[str] = set()
        self.track_files: dict[str, TrackFileDef] = {}
        self.track_processes: set[str] = set()
        self.instance_names: dict[str, Loc] = {}
        self.instances: dict[str, InstanceState] = {}
        self.groups: dict[str, GroupState] = {}
        self.group_of: dict[str, str] = {}
        self.ssl: dict[str, tuple[str, Node]] = {}
        self.vs_states: list[VsState] = []
        self.vs_groups: dict[str, Node] = {}  # virtual_server_group blocks by name
        self.used_vs_groups: set[str] = set()
        # IPVS-wide settings (lvs_timeouts, lvs_sync_daemon) for the ipvs backend's plugin
        self.ipvs_settings: dict[str, tuple[Node, YMap]] = {}
        self.has_scripts = False
        self.first_script: Loc | None = None
        self._gmaps: dict[str, YMap] = {}
        self.ca_noted = False
        self.blocks = 0  # top-level blocks converted, for the summary
        self.tables = dict(TABLES)
        self.finishes: dict[str, list[FinishHandler]] = {b: [] for b in FINISH_BLOCKS}
        for item in contributions:  # the plugins' keywords, over the converter's own entries
            if isinstance(item, Finish):
                self.finishes[item.block].append(item.convert)
            else:
                self.tables[item.block] = {**self.tables[item.block], item.keyword: item.convert}

    def run(self) -> YMap:
        roots = self.parsed.nodes
        self._prescan(roots)
        for node in roots:
            h = self.tables["top"].get(node.keyword)
            if h is None:
                self.unknown(node, self.tables["top"])
            elif isinstance(h, Skip):
                self.skip(node, h, self.doc)
            else:
                self.blocks += 1
                h(self, node, None)
        if self.parsed.end_comments:
            self.doc.comment(*self.parsed.end_comments)
        notifiers.email_missing(self)
        self.finish("top", None, None)
        global_defs.finish_global(self)
        return self.doc

    def known_in(self, keyword: str) -> str | None:
        blocks = [b for b, table in self.tables.items() if keyword in table]
        return None if not blocks else "the top level" if blocks[0] == "top" else blocks[0]

    def section_map(self, key: str) -> YMap:
        return self.doc.child_map(key)

    def _prescan(self, roots: list[Node]) -> None:
        """What later blocks refer to: scripts, track files and processes, instance names,
        sync-group membership, and which scripts are tracked at all."""
        for node in roots:
            name = node.args[0] if node.args else None
            if node.keyword == "vrrp_script" and name:
                self.scripts.setdefault(name, ScriptDef(name, node.loc, YMap()))
            elif node.keyword in ("track_file", "vrrp_track_file") and name:
                vrrp_script.track_file(self, node)
            elif node.keyword == "vrrp_track_process" and name:
                self.track_processes.add(name)
            elif node.keyword == "vrrp_instance" and name:
                self.instance_names.setdefault(name, node.loc)
            elif node.keyword == "virtual_server_group" and name:
                self.vs_groups.setdefault(name, node)
            elif node.keyword == "virtual_server" and node.args[:1] == ["group"]:
                self.used_vs_groups.update(node.args[1:2])
            elif node.keyword == "global_defs":
                global_defs.prescan_global(self, node)
            elif node.keyword == "SSL":
                for child in node.children:
                    if child.args:
                        self.ssl[child.keyword] = (child.args[0], child)
            if node.keyword in ("vrrp_instance", "vrrp_sync_group"):
                for child in node.children:
                    if child.keyword == "track_script":
                        self.used_scripts.update(c.keyword for c in child.children)
        for node in roots:
            if node.keyword == "vrrp_sync_group" and node.args:
                vrrp_sync_group.prescan_group(self, node)

    def finish(self, block: str, node: Node | None, state: Any) -> None:
        """Let the plugins write what they make of a converted block (or of the file)."""
        for convert in self.finishes[block]:
            convert(self, node, state)

    def script_seen(self, loc: Loc) -> None:
        self.has_scripts = True
        if self.first_script is None or loc < self.first_script:
            self.first_script = loc

    def group_map(self, g: GroupState) -> YMap:
        return self._gmaps.setdefault(g.name, YMap())
