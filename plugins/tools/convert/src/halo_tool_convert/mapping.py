"""keepalived.conf keywords → halo's YAML (the core's sections and the first-party plugins').

Every keyword of keepalived 2.2.7 is known here, in the block it belongs to; each one is
either *mapped* (to a halo key, or to nothing when halo's behaviour is keepalived's default),
*ignored* (it tunes keepalived's processes and has no effect in halo: reported as a note),
or *unsupported* (halo has no such behaviour yet: reported with its file and line, and
written as a comment where it would have gone). A keyword keepalived does not know, a block
where none belongs, a bad number or address is an error.

Where keepalived's defaults or rules differ from halo's, the mapping writes what keepalived
would do, so that the converted configuration behaves the same: keepalived's checker
defaults (connect_timeout 5 s, retry 1...), ``enable_script_security`` off, ``nopreempt``
dropped with ``state MASTER``, weighted tracking dropped in sync groups, VRRPv3 for IPv6...
each with a note saying so.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from halo_tool_convert.emit import Entry, Value, YMap, YSeq
from halo_tool_convert.lexer import ConvertError, Loc, quoted_words
from halo_tool_convert.parser import Node, Parsed

__all__ = ["Converter", "Report", "Skip"]

NAME_RE = re.compile(r"[A-Za-z0-9_.:@-]+")
IFNAME_RE = re.compile(r"[^\s/]{1,15}")
SCOPES = {"global", "site", "link", "host", "nowhere"}
LB_ALGOS = {
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf",
}  # fmt: skip
BOOL_WORDS = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}

IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Report:
    """Something the user should know: ``unsupported`` (left out; an error with
    ``--strict``) or ``note`` (converted, with a remark)."""

    kind: Literal["unsupported", "note"]
    loc: Loc
    keyword: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.loc}: {self.keyword}: {self.message}"


@dataclass(frozen=True)
class Skip:
    """How a keyword without a halo equivalent is reported."""

    kind: Literal["unsupported", "ignored"]
    reason: str


def U(reason: str) -> Skip:
    return Skip("unsupported", reason)


def I(reason: str) -> Skip:  # noqa: E743 - reads well in the tables
    return Skip("ignored", reason)


TUNING = I("tunes keepalived's processes; halo runs as one process and has no such setting")
BUFFERS = I("netlink buffer sizes are keepalived's; halo sizes its own sockets")
RELOAD = I("keepalived's reload machinery; halo reloads on SIGHUP after validating")
SNMP = U("halo has no SNMP agent")
DBUS = U("halo has no D-Bus interface")
FIFO = U("notify FIFOs are not converted (the script notifier has notify_fifo; set it by hand)")
IPVS_GLOBAL = U("IPVS-wide settings are not supported by halo")
FIREWALL = U("halo does not manage firewall rules for no_accept mode")
VMAC = U("halo has no virtual MAC (macvlan/ipvlan) interfaces")
NAMESPACE = U("run halo itself in the network namespace instead")
BFD = U("halo has no BFD")
PROCESS = U("halo cannot track processes yet; use a script check (e.g. pidof NAME)")
ROUTES = U("halo does not manage routes or rules")
STATIC = U("halo does not manage static addresses, routes or rules")
NOTIFY_OTHER = U("halo has no such notification")
GARP_LOWER = U("halo has no separate gratuitous ARP settings for lower-priority adverts")
LINKBEAT = I("halo follows links through netlink")
VRRP_EXT = U("this VRRP extension is not supported by halo")


@dataclass
class ScriptDef:
    name: str
    loc: Loc
    check: YMap
    weight: int = 0
    reverse: bool = False
    has_script: bool = False


@dataclass
class TrackFileDef:
    name: str
    loc: Loc
    file: str | None = None
    weight: int = 1
    reverse: bool = False


@dataclass
class TrackRef:
    kind: Literal["check", "interface", "file"]
    name: str
    entry: YMap
    item: Entry
    weight: int
    loc: Loc


@dataclass
class Notify:
    key: str
    command: str
    user: str | None
    loc: Loc


@dataclass
class InstanceState:
    name: str
    loc: Loc
    m: YMap
    state: str = "BACKUP"
    priority: int = 100
    version: int | None = None
    advert_int: float | None = None
    tracks: list[TrackRef] = field(default_factory=list)
    notify: list[Notify] = field(default_factory=list)
    smtp_alert: bool | None = None
    vip_locs: list[Loc] = field(default_factory=list)


@dataclass
class GroupState:
    name: str
    loc: Loc
    members: list[tuple[str, Loc]] = field(default_factory=list)
    tracking_weight: bool = False
    smtp_alert: bool | None = None
    notify: list[Notify] = field(default_factory=list)


@dataclass
class Email:
    recipients: list[tuple[str, Loc]] = field(default_factory=list)
    sender: str | None = None
    server: str | None = None
    port: int | None = None
    helo: str | None = None
    timeout: float | None = None
    smtp_alert: bool | None = None
    smtp_alert_vrrp: bool | None = None
    smtp_alert_checker: bool | None = None
    no_email_faults: bool = False
    nodes: list[Node] = field(default_factory=list)


@dataclass
class CheckDefaults:
    """Checker settings a virtual or real server passes down to its checkers."""

    connect_timeout: float | None = None
    retry: int | None = None
    delay_before_retry: float | None = None
    warmup: float | None = None
    delay_loop: float | None = None
    virtualhost: str | None = None

    def over(self, other: CheckDefaults) -> CheckDefaults:
        """These settings, falling back to ``other``'s."""
        return CheckDefaults(
            **{
                k: getattr(self, k) if getattr(self, k) is not None else getattr(other, k)
                for k in self.__dataclass_fields__
            }
        )


@dataclass
class VsState:
    m: YMap
    loc: Loc
    label: str
    lb_kind: str = "NAT"
    defaults: CheckDefaults = field(default_factory=CheckDefaults)
    smtp_alert: bool | None = None
    rs_alerts: list[bool | None] = field(default_factory=list)
    rs_methods: list[tuple[str, Node]] = field(default_factory=list)


@dataclass
class CheckCtx:
    m: YMap
    kind: str  # keepalived's checker keyword
    defaults: CheckDefaults
    own: CheckDefaults = field(default_factory=CheckDefaults)


Handler = Callable[[Node, Any], None]
Table = dict[str, "Handler | Skip"]


class Converter:
    """One conversion. ``available`` is the set of (kind, type) plugin types installed,
    e.g. ``("checker", "http")``; keywords that need a missing plugin are unsupported."""

    def __init__(
        self, parsed: Parsed, available: set[tuple[str, str]], main_file: str = ""
    ) -> None:
        self.parsed = parsed
        self.main_file = main_file
        self.email_comments: list[tuple[Entry, str]] = []
        self.available = available
        self.reports: list[Report] = []
        self.errors: list[tuple[Loc | None, str]] = []
        self.doc = YMap()
        self.email = Email()
        self.global_map: YMap | None = None
        self.global_loc: Loc | None = None
        self.vip_backend: YMap | None = None
        self.ipvs_backend: YMap | None = None
        self.ipvs_flush: Node | None = None
        self.default_version: int | None = None
        self.default_version_loc: Loc | None = None
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
        self.has_scripts = False
        self.first_script: Loc | None = None
        self._gmaps: dict[str, YMap] = {}
        self._ca_noted = False
        self._build_tables()

    # ============================================================================ reports

    def error(self, loc: Loc | None, message: str) -> None:
        self.errors.append((loc, message))

    def note(self, node: Node, message: str, loc: Loc | None = None) -> None:
        self.reports.append(Report("note", loc or node.loc, node.keyword, message))

    def unsupported(self, node: Node, reason: str, target: YMap | YSeq | None = None) -> None:
        self.reports.append(Report("unsupported", node.loc, node.keyword, reason))
        if target is not None:
            what = node.line + (" { … }" if node.has_block else "")
            target.comment(
                *self.said(node), f"unsupported ({self.at(node.loc)}): {what} - {reason}"
            )

    def skip(self, node: Node, how: Skip, target: YMap | YSeq | None) -> None:
        if how.kind == "unsupported":
            self.unsupported(node, how.reason, target)
            return
        self.reports.append(Report("note", node.loc, node.keyword, f"ignored: {how.reason}"))
        if target is not None:
            what = node.line + (" { … }" if node.has_block else "")
            target.comment(
                *self.said(node), f"ignored ({self.at(node.loc)}): {what} - {how.reason}"
            )

    @staticmethod
    def said(node: Node) -> list[str]:
        """A statement's own comments, its trailing one last."""
        return [*node.comments, *([node.trailing] if node.trailing else [])]

    @staticmethod
    def what(node: Node) -> str:
        return "block" if node.has_block else "keyword"

    def carry(self, node: Node, target: YMap | YSeq) -> None:
        """Keep the comments of a statement that becomes nothing in halo."""
        lines = list(node.comments) + ([node.trailing] if node.trailing else [])
        target.comment(*lines)

    def walk(self, node: Node, table: Table, ctx: Any, target: YMap | YSeq, where: str) -> None:
        for child in node.children:
            h = table.get(child.keyword)
            if h is None:
                self.error(child.loc, f"unknown {self.what(child)} {child.keyword!r} in {where}")
            elif isinstance(h, Skip):
                self.skip(child, h, target)
            else:
                h(child, ctx)
        if node.end_comments:
            target.comment(*node.end_comments)

    def at(self, loc: Loc | None) -> str:
        """A place for a YAML comment: "line N" in the main file, else FILE:N."""
        if loc is None:
            return "?"
        return f"line {loc.line}" if loc.file == self.main_file else str(loc)

    # ============================================================================ values

    def plain(self, node: Node) -> bool:
        if node.has_block:
            self.error(node.loc, f"{node.keyword} takes no {{ }} block")
            return False
        return True

    def need_block(self, node: Node) -> bool:
        if not node.has_block:
            self.error(node.loc, f"{node.line} needs a {{ … }} block")
            return False
        return True

    def one(self, node: Node, *, extra_ok: bool = False) -> str | None:
        if not self.plain(node):
            return None
        if not node.args:
            self.error(node.loc, f"{node.keyword} needs a value")
            return None
        if len(node.args) > 1 and not extra_ok:
            self.note(node, f"extra words ignored (as keepalived does): {' '.join(node.args[1:])}")
        return node.args[0]

    def integer(self, node: Node, low: int, high: int, text: str | None = None) -> int | None:
        value = self.one(node) if text is None else text
        if value is None:
            return None
        try:
            n = int(value, 10)
        except ValueError:
            self.error(node.loc, f"{node.keyword}: {value!r} is not a whole number")
            return None
        if not low <= n <= high:
            self.error(node.loc, f"{node.keyword}: {n} is out of range ({low} to {high})")
            return None
        return n

    def number(self, node: Node, low: float, high: float, text: str | None = None) -> float | None:
        value = self.one(node) if text is None else text
        if value is None:
            return None
        try:
            if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", value):
                raise ValueError(value)
            x = float(value)
        except ValueError:
            self.error(node.loc, f"{node.keyword}: {value!r} is not a number")
            return None
        if not low <= x <= high:
            self.error(node.loc, f"{node.keyword}: {value} is out of range ({low:g} to {high:g})")
            return None
        return int(x) if x == int(x) else x

    def flag(self, node: Node) -> bool | None:
        """keepalived's optional <BOOL>: nothing means true."""
        if not self.plain(node):
            return None
        if not node.args:
            return True
        value = BOOL_WORDS.get(node.args[0].lower())
        if value is None:
            self.error(
                node.loc, f"{node.keyword}: {node.args[0]!r} is not on/off/true/false/yes/no"
            )
        return value

    def address(self, node: Node, text: str, what: str | None = None) -> IPAddr | None:
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            self.error(node.loc, f"{what or node.keyword}: bad address {text!r}")
            return None

    def command(self, node: Node, what: str) -> tuple[str | None, str | None, list[str]]:
        """keepalived's script syntax: the first argument (quote it to give arguments) is the
        command, split again like a shell; the next two are the user and group. Returns
        (command for halo, "user[:group]" or None, any further words)."""
        if not self.plain(node):
            return None, None, []
        args = node.quoted_args()
        if args is None:
            self.error(node.loc, f"{node.keyword}: unterminated quote or trailing backslash")
            return None, None, []
        if not args or not args[0].strip():
            self.error(node.loc, f"{node.keyword} needs a {what}")
            return None, None, []
        argv = quoted_words(args[0])
        if not argv:
            self.error(node.loc, f"{node.keyword}: cannot split {args[0]!r} into arguments")
            return None, None, []
        try:
            same = shlex.split(args[0]) == argv
        except ValueError:
            same = False
        cmd = args[0] if same else shlex.join(argv)
        user = None
        if len(args) > 1:
            user = args[1] + (f":{args[2]}" if len(args) > 2 else "")
        return cmd, user, args[3:]

    def user(self, node: Node) -> str | None:
        if not self.plain(node):
            return None
        if not node.args or len(node.args) > 2:
            self.error(node.loc, f"{node.keyword} takes a user name and optionally a group")
            return None
        return ":".join(node.args)

    # ============================================================================ driver

    def run(self) -> YMap:
        roots = self.parsed.nodes
        self._prescan(roots)
        for node in roots:
            h = self.root_table.get(node.keyword)
            if h is None:
                self.error(node.loc, f"unknown {self.what(node)} {node.keyword!r}")
            elif isinstance(h, Skip):
                self.skip(node, h, self.doc)
            else:
                h(node, None)
        if self.parsed.end_comments:
            self.doc.comment(*self.parsed.end_comments)
        self._finish_email()
        self._finish_global()
        if self.errors:
            raise ConvertError(self.errors)
        return self.doc

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
                self._track_file(node)
            elif node.keyword == "vrrp_track_process" and name:
                self.track_processes.add(name)
            elif node.keyword == "vrrp_instance" and name:
                self.instance_names.setdefault(name, node.loc)
            elif node.keyword == "global_defs":
                self._prescan_global(node)
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
                self._prescan_group(node)

    def _prescan_global(self, node: Node) -> None:
        for child in node.children:
            if child.keyword == "vrrp_version" and child.args[:1] in (["2"], ["3"]):
                self.default_version = int(child.args[0])
                self.default_version_loc = child.loc

    def _prescan_group(self, node: Node) -> None:
        name = node.args[0]
        if name in self.groups:
            self.error(node.loc, f"vrrp_sync_group {name} is defined twice")
            return
        g = GroupState(name, node.loc)
        self.groups[name] = g
        for child in node.children:
            if child.keyword in ("sync_group_tracking_weight", "global_tracking"):
                g.tracking_weight = True
            elif child.keyword == "group":
                for member in child.children:
                    iname = member.keyword
                    if iname not in self.instance_names:
                        self.note(
                            member,
                            f"no vrrp_instance {iname}: left out of sync group {name}"
                            " (keepalived ignores it too)",
                        )
                    elif iname in self.group_of:
                        self.note(
                            member,
                            f"{iname} is already in sync group {self.group_of[iname]}:"
                            f" left out of {name} (keepalived ignores it too)",
                        )
                    else:
                        self.group_of[iname] = name
                        g.members.append((iname, member.loc))

    # ============================================================================ tables

    def _build_tables(self) -> None:
        self.root_table: Table = {
            "global_defs": self._global_defs,
            "vrrp_script": self._vrrp_script,
            "vrrp_instance": self._vrrp_instance,
            "vrrp_sync_group": self._vrrp_sync_group,
            "virtual_server": self._virtual_server,
            "track_file": self._track_file_root,
            "vrrp_track_file": self._track_file_root,
            "SSL": self._ssl_root,
            "vrrp_track_process": U("halo cannot track processes yet (track_process)"),
            "virtual_server_group": U("virtual server groups are not supported by halo"),
            "bfd_instance": BFD,
            "garp_group": U("halo has no per-interface gratuitous ARP groups"),
            "static_ipaddress": STATIC,
            "static_routes": STATIC,
            "static_rules": STATIC,
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
        g: Table = {
            "router_id": self._g_router_id,
            "script_user": self._g_script_user,
            "enable_script_security": self._g_script_security,
            "vrrp_version": self._g_vrrp_version,
            "notification_email": self._g_email_to,
            "notification_email_from": self._g_email_from,
            "smtp_server": self._g_smtp_server,
            "smtp_helo_name": self._g_smtp_helo,
            "smtp_connect_timeout": self._g_smtp_timeout,
            "smtp_alert": self._g_smtp_alert,
            "smtp_alert_vrrp": self._g_smtp_alert,
            "smtp_alert_checker": self._g_smtp_alert,
            "no_email_faults": self._g_smtp_alert,
            "vrrp_garp_master_delay": self._g_garp,
            "vrrp_garp_master_repeat": self._g_garp,
            "vrrp_garp_master_refresh": self._g_garp,
            "vrrp_garp_master_refresh_repeat": self._g_garp,
            "vrrp_garp_interval": self._g_garp,
            "vrrp_gna_interval": self._g_garp,
            "vrrp_min_garp": self._g_garp,
            "vrrp_garp_lower_prio_delay": GARP_LOWER,
            "vrrp_garp_lower_prio_repeat": GARP_LOWER,
            "vrrp_garp_extra_if": VMAC,
            "vrrp_vmac_garp_intvl": VMAC,
            "vmac_prefix": VMAC,
            "vmac_addr_prefix": VMAC,
            "vrrp_skip_check_adv_addr": I(
                "a speed-up of keepalived's advert address check; halo's check is the same"
                " for every advert"
            ),
            "vrrp_strict": U("strict mode (no_accept, no authentication, ...) is not supported"),
            "vrrp_check_unicast_src": VRRP_EXT,
            "vrrp_lower_prio_no_advert": VRRP_EXT,
            "vrrp_higher_prio_send_advert": VRRP_EXT,
            "vrrp_down_timer_adverts": VRRP_EXT,
            "vrrp_startup_delay": U("halo has no start-up delay"),
            "vrrp_mcast_group4": U("halo sends VRRP to the standard multicast group only"),
            "vrrp_mcast_group6": U("halo sends VRRP to the standard multicast group only"),
            "vrrp_iptables": FIREWALL,
            "vrrp_ipsets": FIREWALL,
            "nftables": FIREWALL,
            "nftables_priority": FIREWALL,
            "nftables_counters": FIREWALL,
            "nftables_ifindex": FIREWALL,
            "nftables_ipvs": IPVS_GLOBAL,
            "nftables_ipvs_priority": IPVS_GLOBAL,
            "nftables_ipvs_start_fwmark": IPVS_GLOBAL,
            "disable_local_igmp": VMAC,
            "vrrp_notify_priority_changes": NOTIFY_OTHER,
            "notify_fifo": FIFO,
            "notify_fifo_script": FIFO,
            "vrrp_notify_fifo": FIFO,
            "vrrp_notify_fifo_script": FIFO,
            "lvs_notify_fifo": FIFO,
            "lvs_notify_fifo_script": FIFO,
            "fifo_write_vrrp_states_on_reload": FIFO,
            "startup_script": U("halo runs no start-up or shut-down scripts"),
            "startup_script_timeout": U("halo runs no start-up or shut-down scripts"),
            "shutdown_script": U("halo runs no start-up or shut-down scripts"),
            "shutdown_script_timeout": U("halo runs no start-up or shut-down scripts"),
            "default_interface": STATIC,
            "lvs_sync_daemon": IPVS_GLOBAL,
            "lvs_timeouts": IPVS_GLOBAL,
            "lvs_flush": IPVS_GLOBAL,
            "lvs_flush_on_stop": self._g_lvs_flush_on_stop,
            "lvs_flush_onstop": self._g_lvs_flush_on_stop,
            "rs_init_notifies": NOTIFY_OTHER,
            "no_checker_emails": NOTIFY_OTHER,
            "checker_log_all_failures": I("halo logs every check result at debug level"),
            "dynamic_interfaces": U("halo needs the instances' interfaces at start-up"),
            "log_unknown_vrids": I("halo counts adverts for unknown VRIDs; see its debug log"),
            "snmp_socket": SNMP,
            "enable_snmp_vrrp": SNMP,
            "enable_snmp_keepalived": SNMP,
            "enable_snmp_checker": SNMP,
            "enable_snmp_rfc": SNMP,
            "enable_snmp_rfcv2": SNMP,
            "enable_snmp_rfcv3": SNMP,
            "enable_traps": SNMP,
            "enable_dbus": DBUS,
            "dbus_service_name": DBUS,
            "umask": U("halo keeps the umask it is started with"),
            "random_seed": I("halo convert replaces ${_RANDOM} with fixed pseudo-random numbers"),
            "include_check": I("halo convert reports every include that matches nothing"),
            "tmp_config_directory": RELOAD,
            "config_save_dir": RELOAD,
            "reload_check_config": RELOAD,
            "reload_time_file": U("halo has no scheduled reloads"),
            "reload_repeat": U("halo has no scheduled reloads"),
            "reload_file": RELOAD,
            "data_use_instance": I("keepalived's SIGUSR1 dumps; halo has none"),
            "instance": I("names keepalived's pid files; halo's state_dir is global.state_dir"),
            "use_pid_dir": I("keepalived's pid files; halo's pid file is in global.state_dir"),
            "linkbeat_use_polling": LINKBEAT,
            "child_wait_time": TUNING,
            "net_namespace": NAMESPACE,
            "net_namespace_ipvs": NAMESPACE,
            "namespace_with_ipsets": NAMESPACE,
        }
        for prefix in ("vrrp", "checker", "bfd", "lvs"):
            for suffix in ("process_name", "priority", "no_swap", "rt_priority", "cpu_affinity"):
                g.setdefault(f"{prefix}_{suffix}", TUNING)
            for suffix in ("rlimit_rttime", "rlimit_rtime"):
                g.setdefault(f"{prefix}_{suffix}", TUNING)
        for k in ("process_names", "process_name", "max_auto_priority", "min_auto_priority_delay"):
            g[k] = TUNING
        for k in (
            "vrrp_netlink_cmd_rcv_bufs",
            "vrrp_netlink_monitor_rcv_bufs",
            "lvs_netlink_cmd_rcv_bufs",
            "lvs_netlink_monitor_rcv_bufs",
            "process_monitor_rcv_bufs",
        ):
            g[k] = BUFFERS
            g[k + "_force"] = BUFFERS
        g["vrrp_rx_bufs_policy"] = BUFFERS
        g["vrrp_rx_bufs_multiplier"] = BUFFERS
        self.global_table = g

        self.instance_table: Table = {
            "state": self._i_state,
            "interface": self._i_interface,
            "virtual_router_id": self._i_vrid,
            "priority": self._i_priority,
            "advert_int": self._i_advert_int,
            "version": self._i_version,
            "nopreempt": self._i_nopreempt,
            "preempt": self._i_preempt,
            "preempt_delay": self._i_preempt_delay,
            "authentication": self._i_authentication,
            "virtual_ipaddress": self._i_vips,
            "virtual_ipaddress_excluded": self._i_vips,
            "unicast_src_ip": self._i_src_ip,
            "mcast_src_ip": self._i_src_ip,
            "unicast_peer": self._i_unicast_peer,
            "track_interface": self._i_track_interface,
            "track_script": self._i_track_script,
            "track_file": self._i_track_file,
            "notify_master": self._i_notify,
            "notify_backup": self._i_notify,
            "notify_fault": self._i_notify,
            "notify_stop": self._i_notify,
            "notify": self._i_notify,
            "smtp_alert": self._i_smtp_alert,
            "garp_master_delay": self._i_garp_master_delay,
            "accept": self._i_accept,
            "no_accept": FIREWALL,
            "strict_mode": self._i_strict_mode,
            "native_ipv6": self._i_native_ipv6,
            "track_process": PROCESS,
            "track_bfd": BFD,
            "use_vmac": VMAC,
            "use_vmac_addr": VMAC,
            "vmac_xmit_base": VMAC,
            "use_ipvlan": VMAC,
            "garp_extra_if": VMAC,
            "vmac_garp_intvl": VMAC,
            "vrf": U("halo has no VRF support"),
            "dont_track_primary": U("halo always tracks the instance's interface"),
            "track_src_ip": VRRP_EXT,
            "mcast_dst_ip": U("halo sends VRRP to the standard multicast group only"),
            "unicast_fault_no_peer": VRRP_EXT,
            "check_unicast_src": VRRP_EXT,
            "unicast_ttl": VRRP_EXT,
            "old_unicast_checksum": VRRP_EXT,
            "lower_prio_no_advert": VRRP_EXT,
            "higher_prio_send_advert": VRRP_EXT,
            "down_timer_adverts": VRRP_EXT,
            "virtual_routes": ROUTES,
            "virtual_rules": ROUTES,
            "garp_master_repeat": U("set garp_master_repeat on the vip backend (all instances)"),
            "garp_master_refresh": U("set garp_master_refresh on the vip backend (all instances)"),
            "garp_master_refresh_repeat": U(
                "set garp_master_refresh_repeat on the vip backend (all instances)"
            ),
            "garp_lower_prio_delay": GARP_LOWER,
            "garp_lower_prio_repeat": GARP_LOWER,
            "promote_secondaries": I("halo's vip backend sets promote_secondaries by default"),
            "notify_deleted": NOTIFY_OTHER,
            "notify_master_rx_lower_pri": NOTIFY_OTHER,
            "notify_priority_changes": NOTIFY_OTHER,
            "skip_check_adv_addr": I(
                "a speed-up of keepalived's advert address check; halo's check is the same"
                " for every advert"
            ),
            "debug": I("halo's log level is global.log_level"),
            "kernel_rx_buf_size": BUFFERS,
            "linkbeat_use_polling": LINKBEAT,
            "lvs_sync_daemon_interface": IPVS_GLOBAL,
        }
        self.group_table: Table = {
            "group": self._sg_group,
            "track_interface": self._i_track_interface,
            "track_script": self._i_track_script,
            "track_file": self._i_track_file,
            "notify_master": self._i_notify,
            "notify_backup": self._i_notify,
            "notify_fault": self._i_notify,
            "notify_stop": self._i_notify,
            "notify": self._i_notify,
            "smtp_alert": self._sg_smtp_alert,
            "global_tracking": self._sg_tracking_weight,
            "sync_group_tracking_weight": self._sg_tracking_weight,
            "track_process": PROCESS,
            "track_bfd": BFD,
            "notify_priority_changes": NOTIFY_OTHER,
        }
        self.script_table: Table = {
            "script": self._vs_script,
            "interval": self._vs_interval,
            "timeout": self._vs_interval,
            "weight": self._vs_weight,
            "rise": self._vs_rise_fall,
            "fall": self._vs_rise_fall,
            "user": self._vs_user,
            "init_fail": U("halo starts every check up (keepalived's default)"),
        }
        tun = U("halo's load-balancer settings have no such option")
        self.vs_table: Table = {
            "delay_loop": self._v_delay_loop,
            "lb_algo": self._v_lb_algo,
            "lvs_sched": self._v_lb_algo,
            "lb_kind": self._v_lb_kind,
            "lvs_method": self._v_lb_kind,
            "persistence_timeout": self._v_persistence_timeout,
            "persistence_granularity": self._v_persistence_granularity,
            "protocol": self._v_protocol,
            "quorum": self._v_int,
            "hysteresis": self._v_int,
            "quorum_up": self._v_quorum_cmd,
            "quorum_down": self._v_quorum_cmd,
            "sorry_server": self._v_sorry_server,
            "sorry_server_inhibit": self._v_bool,
            "inhibit_on_failure": self._v_bool,
            "alpha": self._v_bool,
            "omega": self._v_bool,
            "virtualhost": self._v_default,
            "connect_timeout": self._v_default,
            "retry": self._v_default,
            "delay_before_retry": self._v_default,
            "warmup": self._v_default,
            "real_server": self._real_server,
            "smtp_alert": self._v_smtp_alert,
            "snmp_name": SNMP,
            "ha_suspend": U("halo has no ha_suspend"),
            "ops": tun,
            "hashed": tun,
            "flag-1": tun,
            "flag-2": tun,
            "flag-3": tun,
            "sh-port": tun,
            "sh-fallback": tun,
            "mh-port": tun,
            "mh-fallback": tun,
            "persistence_engine": tun,
            "ip_family": tun,
            "sorry_server_lvs_method": tun,
            "weight": tun,
        }
        self.rs_table: Table = {
            "weight": self._r_weight,
            "inhibit_on_failure": self._r_inhibit,
            "notify_up": self._r_notify,
            "notify_down": self._r_notify,
            "lvs_method": self._r_lvs_method,
            "virtualhost": self._r_default,
            "connect_timeout": self._r_default,
            "retry": self._r_default,
            "delay_before_retry": self._r_default,
            "warmup": self._r_default,
            "delay_loop": self._r_default,
            "smtp_alert": self._r_smtp_alert,
            "TCP_CHECK": self._checker,
            "HTTP_GET": self._checker,
            "SSL_GET": self._checker,
            "MISC_CHECK": self._checker,
            "SMTP_CHECK": U("halo has no SMTP checker"),
            "DNS_CHECK": U("halo has no DNS checker"),
            "UDP_CHECK": U("halo has no UDP checker"),
            "PING_CHECK": U("halo has no ICMP checker"),
            "FILE_CHECK": U("halo has no file checker for real servers"),
            "BFD_CHECK": BFD,
            "uthreshold": tun,
            "lthreshold": tun,
            "alpha": U("halo's alpha is per virtual server; set it there"),
            "snmp_name": SNMP,
        }
        self.checker_common: Table = {
            "connect_ip": self._c_address,
            "bindto": self._c_address,
            "connect_port": self._c_port,
            "bind_port": self._c_port,
            "connect_timeout": self._c_default,
            "retry": self._c_default,
            "nb_get_retry": self._c_default,
            "delay_before_retry": self._c_default,
            "warmup": self._c_default,
            "delay_loop": self._c_default,
            "bind_if": U("halo's checkers cannot bind to an interface"),
            "fwmark": U("halo's checkers cannot mark their packets"),
            "alpha": U("halo's alpha is per virtual server; set it there"),
            "log_all_failures": I("halo logs every check result at debug level"),
        }
        self.http_table: Table = {
            **self.checker_common,
            "virtualhost": self._c_virtualhost,
            "url": self._c_url,
            "http_protocol": U("halo's HTTP checks choose their own HTTP version"),
            "fast_recovery": U("halo's HTTP checks check all URLs every time"),
            "enable_sni": self._c_enable_sni,
        }
        self.misc_table: Table = {
            "misc_path": self._c_misc_path,
            "misc_timeout": self._c_misc_timeout,
            "misc_dynamic": self._c_misc_dynamic,
            "user": self._c_misc_user,
            "retry": self._c_default,
            "delay_before_retry": self._c_default,
            "warmup": self._c_default,
            "delay_loop": self._c_default,
            "alpha": U("halo's alpha is per virtual server; set it there"),
            "log_all_failures": I("halo logs every check result at debug level"),
        }
        self.url_table: Table = {
            "path": self._u_path,
            "digest": self._u_digest,
            "status_code": self._u_status,
            "virtualhost": self._u_virtualhost,
            "regex": self._u_regex,
            "regex_no_match": self._u_regex_no_match,
            "regex_options": self._u_regex_options,
            "regex_min_offset": U("halo searches the whole body"),
            "regex_max_offset": U("halo searches the whole body"),
            "regex_stack": I("a PCRE JIT stack size; halo uses Python's re"),
        }

    # ============================================================================ global

    def _global(self, loc: Loc | None = None) -> YMap:
        if self.global_map is None:
            self.global_map = self.doc.child_map("global", loc=loc)
            self.global_loc = loc
        return self.global_map

    def _global_defs(self, node: Node, _: Any) -> None:
        if not self.need_block(node):
            return
        first = self.global_map is None
        g = self._global(node.loc)
        e = self.doc.entry("global")
        if first and e is not None:
            e.comments += node.comments
            e.trailing = node.trailing
        else:
            g.comment(*self.said(node))
        self.walk(node, self.global_table, g, g, "global_defs")

    def _g_router_id(self, node: Node, g: YMap) -> None:
        v = self.one(node)
        if v is not None:
            g.set("router_id", v, loc=node.loc, comments=node.comments, trailing=node.trailing)

    def _g_script_user(self, node: Node, g: YMap) -> None:
        v = self.user(node)
        if v is not None:
            self.script_user = v
            g.set("script_user", v, loc=node.loc, comments=node.comments, trailing=node.trailing)

    def _g_script_security(self, node: Node, g: YMap) -> None:
        if self.plain(node):
            self.script_security = True
            g.set(
                "enable_script_security",
                True,
                loc=node.loc,
                comments=node.comments,
                trailing=node.trailing,
            )

    def _g_vrrp_version(self, node: Node, g: YMap) -> None:
        v = self.integer(node, 2, 3)
        if v is not None:
            g.comment(
                *self.said(node),
                f"{node.line} ({self.at(node.loc)}): becomes each instance's version",
            )

    def _g_email_to(self, node: Node, g: YMap) -> None:
        if not self.need_block(node):
            return
        for child in node.children:
            self.email.recipients.append((" ".join([child.keyword, *child.args]), child.loc))
        self._email_comment(node, g)

    def _email_comment(self, node: Node, g: YMap) -> None:
        """An e-mail setting: its comment says where it went once that is known."""
        self.email.nodes.append(node)
        what = f"{node.line}{' { … }' if node.has_block else ''} ({self.at(node.loc)})"
        e = g.comment(*self.said(node), what)
        if e is not None:
            self.email_comments.append((e, what))

    def _g_email_from(self, node: Node, g: YMap) -> None:
        v = self.one(node)
        if v is not None:
            self.email.sender = v
        self._email_comment(node, g)

    def _g_smtp_server(self, node: Node, g: YMap) -> None:
        if not self.plain(node) or not node.args:
            self.error(node.loc, "smtp_server needs an address or host name")
            return
        self.email.server = node.args[0]
        if len(node.args) > 1:
            self.email.port = self.integer(node, 1, 65535, node.args[1])
        self._email_comment(node, g)

    def _g_smtp_helo(self, node: Node, g: YMap) -> None:
        self.email.helo = self.one(node)
        self._email_comment(node, g)

    def _g_smtp_timeout(self, node: Node, g: YMap) -> None:
        self.email.timeout = self.number(node, 0.1, 3600)
        self._email_comment(node, g)

    def _g_smtp_alert(self, node: Node, g: YMap) -> None:
        v = self.flag(node)
        if node.keyword == "no_email_faults":
            self.email.no_email_faults = bool(v)
        else:
            setattr(self.email, node.keyword, v)
        self._email_comment(node, g)

    def _g_garp(self, node: Node, g: YMap) -> None:
        if "vip" not in self.available_names("backend"):
            self.unsupported(node, "needs the vip backend plugin, which is not installed", g)
            return
        if self.vip_backend is None:
            backends = self.section_map("backends")
            self.vip_backend = YMap()
            backends.set(
                "vip",
                self.vip_backend,
                loc=node.loc,
                comments=["the global_defs vrrp_garp_* settings"],
            )
            self.vip_backend.set("type", "vip", loc=node.loc)
        b = self.vip_backend
        kw = node.keyword
        if kw == "vrrp_min_garp":
            # one announcement, no second burst - where not set already (as keepalived)
            if self.flag(node):
                for name, n in (("garp_master_repeat", 1), ("garp_master_delay", 0)):
                    if name not in b:
                        b.set(name, n, loc=node.loc, trailing=f"{node.line} ({self.at(node.loc)})")
            g.comment(f"{node.line} ({self.at(node.loc)}): see backends.vip")
            return
        key = kw.removeprefix("vrrp_")
        if kw.endswith(("_repeat",)):
            value: float | None = self.integer(node, 0 if "refresh" not in kw else 1, 255)
        else:
            value = self.number(node, 0, 86400)
        if value is not None:
            b.set(key, value, loc=node.loc, comments=node.comments, trailing=node.trailing)
        g.comment(f"{node.line} ({self.at(node.loc)}): see backends.vip")

    def script_seen(self, loc: Loc) -> None:
        self.has_scripts = True
        if self.first_script is None or loc < self.first_script:
            self.first_script = loc

    def _finish_global(self) -> None:
        if self.has_scripts and self.script_security is None:
            assert self.first_script is not None
            self.reports.append(
                Report(
                    "note",
                    self.first_script,
                    "enable_script_security",
                    "not set, so keepalived runs scripts even where non-root users could change"
                    " them; written as enable_script_security: false (halo's default is true)",
                )
            )
            g = self._global()
            g.set(
                "enable_script_security",
                False,
                comments=[
                    "keepalived's default; halo's is true: turn it on once every script and"
                    " its directories are writable by root only"
                ],
            )
            if self.script_user is None:
                g.comment(
                    "keepalived runs scripts as root when there is no keepalived_script user;"
                    " halo runs them as nobody then: set script_user if they need more"
                )
        if self.global_map is not None:
            self.doc.move_to_front("global")

    # ============================================================================ vrrp_script

    def _vrrp_script(self, node: Node, _: Any) -> None:
        if not node.args:
            self.error(node.loc, "vrrp_script needs a name")
            return
        name = node.args[0]
        if not self.need_block(node):
            return
        sd = self.scripts[name]
        if sd.loc != node.loc:
            self.error(node.loc, f"vrrp_script {name} is defined twice (first at {sd.loc})")
            return
        if not NAME_RE.fullmatch(name):
            self.error(
                node.loc, f"vrrp_script name {name!r}: halo names are letters, digits and _ . : @ -"
            )
            return
        if "script" not in self.available_names("checker"):
            self.unsupported(
                node, "needs the script checker plugin, which is not installed", self.doc
            )
            sd.has_script = False
            return
        m = sd.check
        m.set("type", "script", loc=node.loc)
        self.walk(node, self.script_table, sd, m, f"vrrp_script {name}")
        if not sd.has_script:
            self.error(node.loc, f"vrrp_script {name} has no script")
            return
        checks = self.section_map("checks")
        if name not in self.used_scripts:
            self.note(
                node,
                f"{name} is tracked by no instance or sync group: keepalived never runs it,"
                " so it is left out",
            )
            checks.comment(
                *self.said(node),
                f"vrrp_script {name} ({self.at(node.loc)}) is left out: nothing tracks it, so"
                " keepalived never runs it",
            )
            return
        self.script_seen(node.loc)
        checks.set(name, m, loc=node.loc, comments=node.comments, trailing=node.trailing)

    def _vs_script(self, node: Node, sd: ScriptDef) -> None:
        cmd, _, _ = self.command(node, "script")
        if cmd is None:
            return
        args = node.quoted_args() or []
        if len(args) > 1:
            self.note(
                node,
                f"keepalived runs only {args[0]!r} and ignores {' '.join(args[1:])!r}:"
                " quote the command with its arguments",
            )
        sd.has_script = True
        sd.check.set("script", cmd, loc=node.loc, comments=node.comments, trailing=node.trailing)

    def _vs_interval(self, node: Node, sd: ScriptDef) -> None:
        v = self.integer(node, 0, 86400)  # whole seconds in keepalived
        if v is not None:
            if v == 0:
                self.note(node, "keepalived reads 0 as 1")
            sd.check.set(
                node.keyword,
                max(v, 1),
                loc=node.loc,
                comments=node.comments,
                trailing=node.trailing,
            )

    def _vs_weight(self, node: Node, sd: ScriptDef) -> None:
        if not self.plain(node) or not node.args:
            self.error(node.loc, "weight needs a value")
            return
        w = self.integer(node, -253, 253, node.args[0])
        if w is None:
            return
        sd.weight = w
        rest = node.args[1:]
        if rest and rest[0] == "reverse":
            sd.reverse = True
        elif rest:
            self.error(node.loc, f"weight: unexpected {' '.join(rest)!r}")
        sd.check.set("weight", w, loc=node.loc, comments=node.comments, trailing=node.trailing)
        if sd.reverse:
            sd.check.comment("reverse: written on each track of this check")

    def _vs_rise_fall(self, node: Node, sd: ScriptDef) -> None:
        v = self.integer(node, 1, 1000)
        if v is not None:
            sd.check.set(
                node.keyword, v, loc=node.loc, comments=node.comments, trailing=node.trailing
            )

    def _vs_user(self, node: Node, sd: ScriptDef) -> None:
        v = self.user(node)
        if v is not None:
            sd.check.set("user", v, loc=node.loc, comments=node.comments, trailing=node.trailing)

    # ============================================================================ track_file

    def _track_file(self, node: Node) -> None:
        name = node.args[0]
        if name in self.track_files:
            return
        tf = TrackFileDef(name, node.loc)
        self.track_files[name] = tf
        for child in node.children:
            if child.keyword == "file" and child.args:
                tf.file = child.args[0]
            elif child.keyword == "weight" and child.args:
                with contextlib.suppress(ValueError):
                    tf.weight = int(child.args[0])
                tf.reverse = child.args[1:2] == ["reverse"]

    def _track_file_root(self, node: Node, _: Any) -> None:
        if not node.args:
            self.error(node.loc, f"{node.keyword} needs a name")
            return
        if not self.need_block(node):
            return
        tf = self.track_files[node.args[0]]
        if tf.loc != node.loc:
            self.error(node.loc, f"track_file {tf.name} is defined twice (first at {tf.loc})")
            return
        for child in node.children:
            if child.keyword == "file":
                self.one(child)
            elif child.keyword == "weight":
                if child.args:
                    self.integer(child, -254, 254, child.args[0])
                if child.args[1:] not in ([], ["reverse"]):
                    self.error(child.loc, f"weight: unexpected {' '.join(child.args[1:])!r}")
            elif child.keyword == "init_file":
                self.unsupported(child, "halo does not create track files", None)
            else:
                self.error(child.loc, f"unknown keyword {child.keyword!r} in track_file")
        if tf.file is None:
            self.error(node.loc, f"track_file {tf.name} has no file")
        if node.keyword == "vrrp_track_file":
            self.note(node, "deprecated synonym of track_file")
        self.doc.comment(
            *self.said(node),
            f"{node.keyword} {tf.name} ({self.at(node.loc)}): file {tf.file}, weight {tf.weight}"
            f"{' reverse' if tf.reverse else ''} - written on the tracks that use it",
        )

    def _ssl_root(self, node: Node, _: Any) -> None:
        if not self.need_block(node):
            return
        for child in node.children:
            if child.keyword not in ("password", "ca", "certificate", "key"):
                self.error(child.loc, f"unknown keyword {child.keyword!r} in SSL")
            else:
                self.one(child)
        self.doc.comment(
            *self.said(node), f"SSL ({self.at(node.loc)}): written on each SSL_GET check"
        )

    # ============================================================================ instances

    def _vrrp_instance(self, node: Node, _: Any) -> None:
        if not node.args:
            self.error(node.loc, "vrrp_instance needs a name")
            return
        name = node.args[0]
        if not self.need_block(node):
            return
        if name in self.instances:
            self.error(
                node.loc,
                f"vrrp_instance {name} is defined twice (first at {self.instances[name].loc})",
            )
            return
        if not NAME_RE.fullmatch(name):
            self.error(
                node.loc,
                f"vrrp_instance name {name!r}: halo names are letters, digits and _ . : @ -",
            )
            return
        m = YMap()
        st = InstanceState(name, node.loc, m)
        self.instances[name] = st
        self.walk(node, self.instance_table, st, m, f"vrrp_instance {name}")
        self._finish_instance(st, node)
        self.section_map("vrrp_instances").set(
            name, m, loc=node.loc, comments=node.comments, trailing=node.trailing
        )
        self._notifier(name, st.notify, "vrrp_state", node)

    def _set(self, st: InstanceState | YMap, node: Node, key: str, value: Value) -> None:
        m = st if isinstance(st, YMap) else st.m
        m.set(key, value, loc=node.loc, comments=node.comments, trailing=node.trailing)

    def _i_state(self, node: Node, st: InstanceState) -> None:
        v = self.one(node)
        if v is None:
            return
        if v.upper() not in ("MASTER", "BACKUP"):
            self.error(node.loc, f"state must be MASTER or BACKUP, not {v!r}")
            return
        st.state = v.upper()
        self._set(st, node, "state", st.state)

    def _i_interface(self, node: Node, st: InstanceState) -> None:
        v = self.one(node)
        if v is None:
            return
        if not IFNAME_RE.fullmatch(v):
            self.error(node.loc, f"interface {v!r} is not an interface name")
            return
        self._set(st, node, "interface", v)

    def _i_vrid(self, node: Node, st: InstanceState) -> None:
        v = self.integer(node, 1, 255)
        if v is not None:
            self._set(st, node, "virtual_router_id", v)

    def _i_priority(self, node: Node, st: InstanceState) -> None:
        v = self.integer(node, 1, 255)
        if v is not None:
            st.priority = v
            self._set(st, node, "priority", v)

    def _i_advert_int(self, node: Node, st: InstanceState) -> None:
        v = self.number(node, 0.001, 255)
        if v is not None:
            st.advert_int = v
            self._set(st, node, "advert_int", v)

    def _i_version(self, node: Node, st: InstanceState) -> None:
        v = self.integer(node, 2, 3)
        if v is not None:
            st.version = v
            self._set(st, node, "version", v)

    def _i_nopreempt(self, node: Node, st: InstanceState) -> None:
        if self.plain(node):
            self._set(st, node, "nopreempt", True)

    def _i_preempt(self, node: Node, st: InstanceState) -> None:
        if self.plain(node):
            if st.m.remove(
                "nopreempt", why=f"nopreempt turned off by preempt ({self.at(node.loc)})"
            ):
                self.note(node, "turns the earlier nopreempt off (as in keepalived)")
            self.carry(node, st.m)

    def _i_preempt_delay(self, node: Node, st: InstanceState) -> None:
        v = self.number(node, 0, 1000)
        if v is not None:
            self._set(st, node, "preempt_delay", v)

    def _i_authentication(self, node: Node, st: InstanceState) -> None:
        if not self.need_block(node):
            return
        auth_type, auth_pass = "PASS", None
        said: dict[str, Node] = {}
        for child in node.children:
            said[child.keyword] = child
            if child.keyword == "auth_type":
                auth_type = (self.one(child) or "PASS").upper()
                if auth_type not in ("PASS", "AH"):
                    self.error(child.loc, f"auth_type must be PASS or AH, not {auth_type!r}")
            elif child.keyword == "auth_pass":
                auth_pass = self.one(child, extra_ok=True)
                if auth_pass is not None and len(auth_pass) > 8:
                    self.note(child, "keepalived uses only the first 8 characters")
                    auth_pass = auth_pass[:8]
            else:
                self.error(child.loc, f"unknown keyword {child.keyword!r} in authentication")
        if auth_type == "AH":
            self.unsupported(node, "IPsec AH authentication is not supported by halo", st.m)
            return
        if auth_pass is None:
            self.error(node.loc, "authentication needs an auth_pass")
            return
        a = YMap()
        for key, value in (("auth_type", "PASS"), ("auth_pass", auth_pass)):
            src = said.get(key)
            if src is None:
                a.set(key, value, loc=node.loc)
            else:
                a.set(key, value, loc=src.loc, comments=src.comments, trailing=src.trailing)
        if node.end_comments:
            a.comment(*node.end_comments)
        self._set(st, node, "authentication", a)

    def _i_vips(self, node: Node, st: InstanceState) -> None:
        if not self.need_block(node):
            return
        seq = st.m.child_seq(node.keyword, loc=node.loc)
        e = st.m.entry(node.keyword)
        if e is not None:
            e.comments += node.comments
            e.trailing = e.trailing or node.trailing
        for child in node.children:
            vip = self._vip(child)
            if vip is not None:
                seq.append(vip, loc=child.loc, comments=child.comments, trailing=child.trailing)
                if node.keyword == "virtual_ipaddress":
                    st.vip_locs.append(child.loc)
        if node.end_comments:
            seq.comment(*node.end_comments)

    def _vip(self, node: Node) -> str | None:
        words = [node.keyword, *node.args]
        try:
            addr = ipaddress.ip_interface(words[0])
        except ValueError:
            self.error(node.loc, f"bad address {words[0]!r}")
            return None
        if node.has_block:
            self.error(node.loc, "an address takes no { } block")
            return None
        parts = [words[0]]
        i = 1
        dropped: list[str] = []
        while i < len(words):
            w = words[i]
            val = words[i + 1] if i + 1 < len(words) else None
            if w in (
                "dev",
                "label",
                "scope",
                "brd",
                "broadcast",
                "peer",
                "preferred_lft",
                "track_group",
            ):
                if val is None:
                    self.error(node.loc, f"{w} needs a value")
                    return None
                if w == "scope" and val not in SCOPES:
                    self.error(node.loc, f"scope must be one of {', '.join(sorted(SCOPES))}")
                    return None
                if w == "dev" and not IFNAME_RE.fullmatch(val):
                    self.error(node.loc, f"dev {val!r} is not an interface name")
                    return None
                if w in ("brd", "broadcast"):
                    if addr.version != 4:
                        self.error(node.loc, "brd applies to IPv4 addresses only")
                        return None
                    if val in ("+", "-"):
                        dropped.append(f"{w} {val}")
                    elif self.address(node, val) is not None:
                        parts += ["brd", val]
                elif w in ("dev", "label", "scope"):
                    parts += [w, val]
                else:
                    dropped.append(f"{w} {val}")
                i += 2
            elif w in (
                "home",
                "-nodad",
                "nodad",
                "mngtmpaddr",
                "noprefixroute",
                "autojoin",
                "no_track",
                "use_vmac",
            ):
                dropped.append(w)
                i += 1
            else:
                self.error(node.loc, f"unknown option {w!r} of virtual address {words[0]}")
                return None
        for d in dropped:
            self.reports.append(
                Report(
                    "unsupported",
                    node.loc,
                    d.split()[0],
                    f"address option {d!r} of {words[0]} is not supported by halo"
                    " (the address is kept without it)",
                )
            )
        return " ".join(parts)

    def _i_src_ip(self, node: Node, st: InstanceState) -> None:
        v = self.one(node)
        if v is not None and self.address(node, v) is not None:
            self._set(st, node, "unicast_src_ip", v)

    def _i_unicast_peer(self, node: Node, st: InstanceState) -> None:
        if not self.need_block(node):
            return
        seq = st.m.child_seq("unicast_peer", loc=node.loc)
        e = st.m.entry("unicast_peer")
        if e is not None:
            e.comments += node.comments
        for child in node.children:
            if self.address(child, child.keyword, "unicast_peer") is None:
                continue
            if child.args:
                self.unsupported(
                    child,
                    f"peer options {' '.join(child.args)!r} (TTL checks) are not supported",
                    seq,
                )
            seq.append(
                child.keyword, loc=child.loc, comments=child.comments, trailing=child.trailing
            )

    def _track_seq(self, st: InstanceState | GroupState, node: Node) -> YSeq:
        seq = (
            st.m.child_seq("track", loc=node.loc)
            if isinstance(st, InstanceState)
            else self._group_map(st).child_seq("track", loc=node.loc)
        )
        seq.comment(*self.said(node))
        return seq

    def _weight_words(
        self, node: Node, low: int, high: int
    ) -> tuple[int | None, bool | None, bool]:
        """``[weight W] [reverse|noreverse|no_reverse]`` → (weight, reverse, ok)."""
        words = node.args
        weight: int | None = None
        reverse: bool | None = None
        i = 0
        while i < len(words):
            if words[i] == "weight" and i + 1 < len(words):
                weight = self.integer(node, low, high, words[i + 1])
                if weight is None:
                    return None, None, False
                i += 2
            elif words[i] == "reverse":
                reverse = True
                i += 1
            elif words[i] in ("noreverse", "no_reverse"):
                reverse = False
                i += 1
            else:
                self.error(
                    node.loc, f"unexpected {words[i]!r} (expected weight N, reverse or noreverse)"
                )
                return None, None, False
        return weight, reverse, True

    def _i_track_interface(self, node: Node, st: InstanceState | GroupState) -> None:
        if not self.need_block(node):
            return
        seq = self._track_seq(st, node)
        for child in node.children:
            if child.has_block:
                self.error(child.loc, "a tracked interface takes no { } block")
                continue
            if not IFNAME_RE.fullmatch(child.keyword):
                self.error(child.loc, f"{child.keyword!r} is not an interface name")
                continue
            weight, reverse, ok = self._weight_words(child, -253, 253)
            if not ok:
                continue
            t = YMap()
            t.set("interface", child.keyword, loc=child.loc)
            if weight is not None:
                t.set("weight", weight, loc=child.loc)
            if reverse:
                t.set("reverse", True, loc=child.loc)
            item = seq.append(t, loc=child.loc, comments=child.comments, trailing=child.trailing)
            if isinstance(st, InstanceState):
                st.tracks.append(
                    TrackRef("interface", child.keyword, t, item, weight or 0, child.loc)
                )

    def _i_track_script(self, node: Node, st: InstanceState | GroupState) -> None:
        if not self.need_block(node):
            return
        seq = self._track_seq(st, node)
        for child in node.children:
            if child.has_block:
                self.error(child.loc, "a tracked script takes no { } block")
                continue
            name = child.keyword
            weight, reverse, ok = self._weight_words(child, -253, 253)
            if not ok:
                continue
            if name in self.track_processes:
                self.unsupported(
                    child,
                    "a vrrp_track_process in track_script: halo cannot track processes yet",
                    seq,
                )
                continue
            sd = self.scripts.get(name)
            if sd is None:
                self.note(child, f"no vrrp_script {name}: left out (keepalived ignores it too)")
                seq.comment(f"no vrrp_script {name} ({self.at(child.loc)}): left out")
                continue
            if sd.check.is_empty() or not sd.has_script or name not in self.section_map("checks"):
                self.unsupported(child, f"vrrp_script {name} could not be converted", seq)
                continue
            t = YMap()
            t.set("check", name, loc=child.loc)
            if weight is not None:
                t.set("weight", weight, loc=child.loc)
            rev = sd.reverse if reverse is None else reverse
            if rev:
                t.set("reverse", True, loc=child.loc)
            item = seq.append(t, loc=child.loc, comments=child.comments, trailing=child.trailing)
            if isinstance(st, InstanceState):
                st.tracks.append(
                    TrackRef(
                        "check", name, t, item, sd.weight if weight is None else weight, child.loc
                    )
                )

    def _i_track_file(self, node: Node, st: InstanceState | GroupState) -> None:
        if not self.need_block(node):
            return
        seq = self._track_seq(st, node)
        for child in node.children:
            if child.has_block:
                self.error(child.loc, "a tracked file takes no { } block")
                continue
            name = child.keyword
            weight, reverse, ok = self._weight_words(child, -254, 254)
            if not ok:
                continue
            tf = self.track_files.get(name)
            if tf is None:
                self.note(child, f"no track_file {name}: left out (keepalived ignores it too)")
                seq.comment(f"no track_file {name} ({self.at(child.loc)}): left out")
                continue
            if tf.file is None:
                continue
            w = tf.weight if weight is None else weight
            rev = tf.reverse if reverse is None else reverse
            t = YMap()
            t.set("file", tf.file, loc=child.loc)
            t.set("weight", w, loc=child.loc)
            if rev:
                t.set("reverse", True, loc=child.loc)
            item = seq.append(
                t,
                loc=child.loc,
                comments=child.comments,
                trailing=child.trailing or f"track_file {name}",
            )
            if isinstance(st, InstanceState):
                st.tracks.append(TrackRef("file", name, t, item, w, child.loc))

    def _i_notify(self, node: Node, st: InstanceState | GroupState) -> None:
        cmd, user, extra = self.command(node, "script")
        if cmd is None:
            return
        if extra:
            self.note(node, f"extra words ignored (as keepalived does): {' '.join(extra)}")
        st.notify.append(Notify(node.keyword, cmd, user, node.loc))
        m = st.m if isinstance(st, InstanceState) else self._group_map(st)
        if "script" in self.available_names("notifier"):
            m.comment(*self.said(node), f"{node.keyword} ({self.at(node.loc)}): see notifiers")
        else:
            self.unsupported(node, "needs the script notifier plugin, which is not installed", m)

    def _i_smtp_alert(self, node: Node, st: InstanceState) -> None:
        st.smtp_alert = self.flag(node)
        self._email_comment(node, st.m)

    def _i_garp_master_delay(self, node: Node, st: InstanceState) -> None:
        v = self.number(node, 0, 3600)
        if v is not None:
            self._set(st, node, "garp_master_delay", v)

    def _i_accept(self, node: Node, st: InstanceState) -> None:
        if self.plain(node):
            self.carry(node, st.m)  # halo's VIPs always accept traffic: keepalived's default

    def _i_strict_mode(self, node: Node, st: InstanceState) -> None:
        v = self.flag(node)
        if v:
            self.unsupported(
                node, "strict mode (no_accept, no authentication, ...) is not supported", st.m
            )
        else:
            self.carry(node, st.m)

    def _i_native_ipv6(self, node: Node, st: InstanceState) -> None:
        if self.plain(node):
            self.note(node, "deprecated in keepalived: the addresses decide the family")
            self.carry(node, st.m)

    def _finish_instance(self, st: InstanceState, node: Node) -> None:
        m, name = st.m, st.name
        for key, what in (
            ("interface", "an interface"),
            ("virtual_router_id", "a virtual_router_id"),
        ):
            if key not in m:
                self.error(node.loc, f"vrrp_instance {name} has no {key} (halo needs {what})")
        vips = m.get("virtual_ipaddress")
        if not isinstance(vips, YSeq) or vips.is_empty():
            self.error(
                node.loc, f"vrrp_instance {name} has no virtual_ipaddress (halo needs at least one)"
            )
            return
        # keepalived moves VIPs of the other family than the first one to the excluded list
        first = vips.entries()[0]
        family = ipaddress.ip_interface(str(first.value).split()[0]).version
        for e in list(vips.entries()):
            if ipaddress.ip_interface(str(e.value).split()[0]).version != family:
                vips.items.remove(e)
                excl = m.child_seq("virtual_ipaddress_excluded", loc=e.loc)
                excl.append(e.value, loc=e.loc, comments=e.comments, trailing=e.trailing)
                self.reports.append(
                    Report(
                        "note",
                        e.loc or st.loc,
                        "virtual_ipaddress",
                        f"{e.value}: not the family of the first address: moved to"
                        " virtual_ipaddress_excluded (as keepalived does)",
                    )
                )
        # version: the instance's, else global_defs vrrp_version, else 2; IPv6 means 3
        version = st.version or self.default_version or 2
        if family == 6 and version == 2:
            if st.version == 2 or self.default_version == 2:
                self.reports.append(
                    Report(
                        "note",
                        st.loc,
                        "version",
                        "keepalived runs IPv6 instances with VRRP version 3",
                    )
                )
            version = 3
        if version != (st.version or 2):
            if "version" in m:
                m.set("version", version)
            else:
                origin = (
                    "IPv6 needs VRRP version 3"
                    if family == 6
                    else f"global_defs vrrp_version ({self.at(self.default_version_loc)})"
                )
                m.set("version", version, loc=st.loc, trailing=origin)
        # advert_int as keepalived rounds it
        adv = st.advert_int
        if adv is not None:
            fixed: float = adv
            # keepalived rounds half up: to whole seconds (v2) or centiseconds (v3)
            if version == 2:
                fixed = float(min(max(math.floor(adv + 0.5), 1), 255))
            else:
                fixed = min(max(math.floor(adv * 100 + 0.5) / 100, 0.01), 40.95)
            if fixed != adv:
                e2 = m.entry("advert_int")
                self.reports.append(
                    Report(
                        "note",
                        e2.loc if e2 and e2.loc else st.loc,
                        "advert_int",
                        f"keepalived rounds {adv:g} to {fixed:g} for VRRPv{version}",
                    )
                )
                m.set("advert_int", int(fixed) if fixed == int(fixed) else fixed)
        if version == 3 and "authentication" in m:
            e3 = m.entry("authentication")
            where = self.at(e3.loc if e3 else st.loc)
            m.remove(
                "authentication",
                why=f"authentication ({where}) left out: VRRPv3 has none (keepalived ignores it)",
            )
            self.reports.append(
                Report(
                    "note",
                    e3.loc if e3 and e3.loc else st.loc,
                    "authentication",
                    "VRRPv3 has no authentication: left out (keepalived ignores it)",
                )
            )
        # keepalived clears nopreempt and preempt_delay with state MASTER, and nopreempt
        # for the address owner
        for key in ("nopreempt", "preempt_delay"):
            e4 = m.entry(key)
            if e4 is None:
                continue
            why: str | None = None
            if st.state == "MASTER":
                why = "keepalived ignores it with state MASTER"
            elif key == "nopreempt" and st.priority == 255:
                why = "keepalived ignores it with priority 255 (the address owner always preempts)"
            if why:
                m.remove(key, why=f"{key} ({self.at(e4.loc)}) left out: {why}")
                self.reports.append(
                    Report(
                        "note",
                        e4.loc or st.loc,
                        key,
                        f"{why}: left out (use state BACKUP to keep it)"
                        if st.state == "MASTER"
                        else f"{why}: left out",
                    )
                )
        self._adjust_tracks(st)

    def _adjust_tracks(self, st: InstanceState) -> None:
        """keepalived's rule for sync-group members (without sync_group_tracking_weight) and
        address owners: weighted interfaces become unweighted (dropped for an owner),
        weighted scripts are dropped, files of the default weight 1 become weight 0 and
        other weighted files are dropped."""
        group = self.group_of.get(st.name)
        in_group = group is not None and not self.groups[group].tracking_weight
        owner = st.priority == 255
        if not (in_group or owner):
            return
        why = f"sync group {group}" if in_group else "the address owner (priority 255)"
        seq = st.m.get("track")
        if not isinstance(seq, YSeq):
            return
        for t in st.tracks:
            if t.weight == 0:
                continue
            drop = False
            if t.kind == "interface":
                if in_group:
                    t.entry.set("weight", 0)
                    msg = "weight set to 0"
                else:
                    drop, msg = True, "left out"
            elif t.kind == "check":
                drop, msg = True, "left out"
            elif t.weight == 1:
                t.entry.set("weight", 0)
                msg = "weight set to 0"
            else:
                drop, msg = True, "left out"
            text = f"{t.kind} {t.name} with weight {t.weight}: {msg}, as keepalived does for {why}"
            self.reports.append(
                Report("note", t.loc, f"track_{t.kind if t.kind != 'check' else 'script'}", text)
            )
            if drop:
                i = seq.items.index(t.item)
                seq.items[i] = Entry(
                    None,
                    None,
                    comments=[*t.item.comments, f"{text} ({self.at(t.loc)})"],
                    comment_only=True,
                )
            else:
                t.item.comments.append(text)
        if seq.is_empty():
            st.m.remove("track")

    # ============================================================================ sync groups

    def _group_map(self, g: GroupState) -> YMap:
        return self._gmaps.setdefault(g.name, YMap())

    def _vrrp_sync_group(self, node: Node, _: Any) -> None:
        if not node.args:
            self.error(node.loc, "vrrp_sync_group needs a name")
            return
        if not self.need_block(node):
            return
        name = node.args[0]
        g = self.groups.get(name)
        if g is None or g.loc != node.loc:
            return  # a duplicate: reported by the prescan
        if not NAME_RE.fullmatch(name):
            self.error(
                node.loc,
                f"vrrp_sync_group name {name!r}: halo names are letters, digits and _ . : @ -",
            )
            return
        m = self._group_map(g)
        self.walk(node, self.group_table, g, m, f"vrrp_sync_group {name}")
        if not g.members:
            self.note(node, f"sync group {name} has no instances: left out")
            self.doc.comment(
                *self.said(node),
                f"vrrp_sync_group {name} ({self.at(node.loc)}) has no instances: left out",
            )
            return
        m.move_to_front("group")
        self.section_map("vrrp_sync_groups").set(
            name, m, loc=node.loc, comments=node.comments, trailing=node.trailing
        )
        self._notifier(name, g.notify, "vrrp_group_state", node)

    def _sg_group(self, node: Node, g: GroupState) -> None:
        if not self.need_block(node):
            return
        m = self._group_map(g)
        seq = m.child_seq("group", loc=node.loc)
        seq.comment(*self.said(node))
        members = {n for n, _ in g.members}
        for child in node.children:
            if child.keyword in members:
                seq.append(
                    child.keyword, loc=child.loc, comments=child.comments, trailing=child.trailing
                )
            else:
                seq.comment(*self.said(child), f"{child.keyword} ({self.at(child.loc)}) left out")

    def _sg_smtp_alert(self, node: Node, g: GroupState) -> None:
        g.smtp_alert = self.flag(node)
        self._email_comment(node, self._group_map(g))

    def _sg_tracking_weight(self, node: Node, g: GroupState) -> None:
        if self.plain(node):
            if node.keyword == "global_tracking":
                self.note(node, "deprecated; read as sync_group_tracking_weight")
            self._group_map(g).comment(
                *self.said(node),
                f"{node.keyword} ({self.at(node.loc)}): the members' tracking weights are kept",
            )

    # ============================================================================ notifiers

    def available_names(self, kind: str) -> set[str]:
        return {n for k, n in self.available if k == kind}

    def _notifier(self, subject: str, notify: list[Notify], event: str, node: Node) -> None:
        if not notify or "script" not in self.available_names("notifier"):
            return
        by_user: dict[str | None, list[Notify]] = {}
        for n in notify:
            by_user.setdefault(n.user, []).append(n)
        section = self.section_map("notifiers")
        for i, (user, items) in enumerate(by_user.items()):
            name = f"{subject}-notify" + (f"-{i + 1}" if i else "")
            m = YMap()
            m.set("type", "script", loc=node.loc)
            inst = YSeq(flow=False)
            inst.append(subject, loc=node.loc)
            m.set("instances", inst, loc=node.loc)
            ev = YSeq(flow=True)
            ev.append(event)
            m.set("events", ev, loc=node.loc)
            for n in items:
                m.set(n.key, n.command, loc=n.loc, trailing=self.at(n.loc))
            if user is not None:
                m.set("script_user", user, loc=items[0].loc)
            self.script_seen(node.loc)
            section.set(
                name,
                m,
                loc=node.loc,
                comments=[f"the notify scripts of {subject} ({self.at(node.loc)})"],
            )

    def _finish_email(self) -> None:
        e = self.email
        if not e.nodes:
            return
        first = e.nodes[0]
        if "email" not in self.available_names("notifier"):
            for entry, what in self.email_comments:
                entry.comments[-1] = f"unsupported: {what} - needs the email notifier plugin"
            for n in e.nodes:
                self.reports.append(
                    Report(
                        "unsupported",
                        n.loc,
                        n.keyword,
                        "needs the email notifier plugin, which is not installed",
                    )
                )
            return
        vrrp_default = e.smtp_alert_vrrp if e.smtp_alert_vrrp is not None else bool(e.smtp_alert)
        checker_set = e.smtp_alert_checker if e.smtp_alert_checker is not None else e.smtp_alert
        names: list[str] = []
        everything = True
        events: list[str] = []
        for st in self.instances.values():
            on = st.smtp_alert if st.smtp_alert is not None else vrrp_default
            if on:
                names.append(st.name)
                if "vrrp_state" not in events:
                    events.append("vrrp_state")
            else:
                everything = False
        for g in self.groups.values():
            if not g.members:
                continue
            on = g.smtp_alert if g.smtp_alert is not None else vrrp_default
            if on:
                names.append(g.name)
                if "vrrp_group_state" not in events:
                    events.append("vrrp_group_state")
            else:
                everything = False
        for vs in self.vs_states:
            rs_on = [
                a if a is not None else (checker_set if checker_set is not None else True)
                for a in vs.rs_alerts
            ]
            if any(rs_on):
                names.append(vs.label)
                if "real_server" not in events:
                    events.append("real_server")
                if not all(rs_on):
                    self.reports.append(
                        Report(
                            "note",
                            vs.loc,
                            "smtp_alert",
                            f"halo mails the changes of every real server of {vs.label},"
                            " keepalived only those with smtp_alert",
                        )
                    )
            elif vs.rs_alerts:
                everything = False
        written = bool(e.server and e.recipients and names)
        for entry, what in self.email_comments:
            entry.comments[-1] = f"{what}: " + (
                "see notifiers.email" if written else "no e-mail is sent (see the notes)"
            )
        if not names:
            self.reports.append(
                Report(
                    "note",
                    first.loc,
                    first.keyword,
                    "no smtp_alert is on: keepalived sends no e-mail, so no email notifier"
                    " is written",
                )
            )
            return
        if not e.server or not e.recipients:
            self.reports.append(
                Report(
                    "note",
                    first.loc,
                    first.keyword,
                    "e-mail alerts need smtp_server and recipients in notification_email:"
                    " keepalived sends none, so no email notifier is written",
                )
            )
            return
        m = YMap()
        m.set("type", "email", loc=first.loc)
        m.set("smtp_server", e.server, loc=first.loc)
        if e.port is not None:
            m.set("smtp_port", e.port)
        if e.helo is not None:
            m.set("smtp_helo_name", e.helo)
        if e.timeout is not None:
            m.set("smtp_connect_timeout", e.timeout)
        to = YSeq()
        for addr, loc in e.recipients:
            to.append(addr, loc=loc)
        m.set("notification_email", to, loc=first.loc)
        if e.sender is not None:
            m.set("notification_email_from", e.sender)
        ev = YSeq(flow=True)
        for x in events:
            ev.append(x)
        m.set("events", ev)
        if not everything:
            inst = YSeq()
            for subject in names:
                inst.append(subject)
            m.set("instances", inst, comments=["those with smtp_alert on"])
        if e.no_email_faults:
            st_seq = YSeq(flow=True)
            for s in ("MASTER", "BACKUP", "STOP", "UP", "DOWN"):
                st_seq.append(s)
            m.set("states", st_seq, comments=["no_email_faults"])
        self.section_map("notifiers").set(
            "email",
            m,
            loc=first.loc,
            comments=["global_defs notification_email and smtp_* settings, smtp_alert"],
        )

    # ============================================================================ virtual servers

    def _ipvs(self, node: Node) -> bool:
        """The ipvs backend that runs keepalived's virtual servers, made at the first one."""
        if self.ipvs_backend is not None:
            return True
        if "ipvs" not in self.available_names("backend"):
            self.unsupported(
                node,
                "needs the ipvs backend plugin, which is not installed: the virtual server is"
                " written, but nothing will put it in the kernel",
                None,
            )
            return False
        self.ipvs_backend = YMap()
        self.ipvs_backend.set("type", "ipvs", loc=node.loc)
        if self.ipvs_flush is not None:
            n = self.ipvs_flush
            self.ipvs_backend.set(
                "flush_on_stop", True, loc=n.loc, trailing=f"{n.line} ({self.at(n.loc)})"
            )
        self.section_map("backends").set(
            "ipvs", self.ipvs_backend, loc=node.loc, comments=["keepalived's virtual servers"]
        )
        return True

    def _g_lvs_flush_on_stop(self, node: Node, g: YMap) -> None:
        if not self.plain(node):
            return
        if node.args[:1] not in ([], ["VS"]):
            self.error(node.loc, f"{node.keyword}: unexpected {' '.join(node.args)!r}")
            return
        self.ipvs_flush = node
        if node.args:
            self.note(node, "halo removes its services (VS) and the kernel their real servers")
        g.comment(*self.said(node), f"{node.line} ({self.at(node.loc)}): see backends.ipvs")

    def _virtual_server(self, node: Node, _: Any) -> None:
        if not self.need_block(node):
            return
        args = node.args
        m = YMap()
        if not args:
            self.error(node.loc, "virtual_server needs an address and port, fwmark N or group NAME")
            return
        if args[0] == "group":
            self.unsupported(node, "virtual server groups are not supported by halo", self.doc)
            return
        if args[0] == "fwmark":
            if len(args) < 2:
                self.error(node.loc, "virtual_server fwmark needs a number")
                return
            mark = self.integer(node, 1, 2**32 - 1, args[1])
            if mark is None:
                return
            m.set("fwmark", mark, loc=node.loc)
            label = f"fwmark:{mark}"
        else:
            addr = self.address(node, args[0])
            if addr is None:
                return
            m.set("address", args[0], loc=node.loc)
            port = 0
            if len(args) > 1:
                p = self.integer(node, 0, 65535, args[1])
                if p is None:
                    return
                port = p
                m.set("port", p, loc=node.loc)
            label = f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"
        vs = VsState(m, node.loc, label)
        self.walk(node, self.vs_table, vs, m, f"virtual_server {' '.join(args)}")
        if "delay_loop" in m:
            pass
        for method, rs_node in vs.rs_methods:
            if method != vs.lb_kind:
                self.unsupported(
                    rs_node,
                    f"a real server's own forwarding method ({method}, the virtual"
                    f" server's is {vs.lb_kind}) is not supported",
                    None,
                )
        self.vs_states.append(vs)
        rs = m.get("real_servers")
        if isinstance(rs, YSeq):
            m.entries.remove(m.entry("real_servers"))  # type: ignore[arg-type]
            m.entries.append(Entry("real_servers", rs, node.loc))
        self._ipvs(node)
        self.doc.child_seq("virtual_servers").append(
            m, loc=node.loc, comments=node.comments, trailing=node.trailing
        )

    def _v_delay_loop(self, node: Node, vs: VsState) -> None:
        v = self.number(node, 0.001, 86400)
        if v is not None:
            vs.defaults.delay_loop = v
            self._set(vs.m, node, "delay_loop", v)

    def _v_lb_algo(self, node: Node, vs: VsState) -> None:
        v = self.one(node)
        if v is None:
            return
        if v not in LB_ALGOS:
            self.unsupported(node, f"scheduler {v!r} is not supported by halo", vs.m)
            return
        if node.keyword == "lb_algo":
            self.note(node, "deprecated synonym of lvs_sched")
        self._set(vs.m, node, "lb_algo", v)

    def _v_lb_kind(self, node: Node, vs: VsState) -> None:
        if not self.plain(node) or not node.args:
            self.error(node.loc, f"{node.keyword} needs NAT, DR or TUN")
            return
        v = node.args[0].upper()
        if v not in ("NAT", "DR", "TUN"):
            self.error(node.loc, f"{node.keyword} must be NAT, DR or TUN, not {node.args[0]!r}")
            return
        if len(node.args) > 1:
            self.unsupported(
                node,
                f"tunnel options {' '.join(node.args[1:])!r} are not supported"
                " (plain ipip is kept)",
                vs.m,
            )
        if node.keyword == "lb_kind":
            self.note(node, "deprecated synonym of lvs_method")
        vs.lb_kind = v
        self._set(vs.m, node, "lb_kind", v)

    def _v_persistence_timeout(self, node: Node, vs: VsState) -> None:
        if not self.plain(node):
            return
        v = self.number(node, 1, 2**31, node.args[0]) if node.args else 360
        if v is not None:
            self._set(vs.m, node, "persistence_timeout", v)

    def _v_persistence_granularity(self, node: Node, vs: VsState) -> None:
        v = self.one(node)
        if v is not None and self.address(node, v) is not None:
            self._set(vs.m, node, "persistence_granularity", v)

    def _v_protocol(self, node: Node, vs: VsState) -> None:
        v = self.one(node)
        if v is None:
            return
        if v.upper() not in ("TCP", "UDP", "SCTP"):
            self.error(node.loc, f"protocol must be TCP, UDP or SCTP, not {v!r}")
            return
        self._set(vs.m, node, "protocol", v.upper())

    def _v_int(self, node: Node, vs: VsState) -> None:
        v = self.integer(node, 0 if node.keyword == "hysteresis" else 1, 2**31 - 1)
        if v is not None:
            self._set(vs.m, node, node.keyword, v)

    def _v_quorum_cmd(self, node: Node, vs: VsState) -> None:
        self._script_setting(node, vs.m)

    def _script_setting(self, node: Node, m: Any) -> None:
        """A command keyword whose script runs as global.script_user (no per-script user)."""
        cmd, user, _ = self.command(node, "script")
        if cmd is None:
            return
        if user is not None:
            self.unsupported(
                node,
                f"a user for this script ({user}) is not supported; global.script_user applies",
                m,
            )
        self.script_seen(node.loc)
        self._set(m, node, node.keyword, cmd)

    def _v_sorry_server(self, node: Node, vs: VsState) -> None:
        if not self.plain(node) or not node.args:
            self.error(node.loc, "sorry_server needs an address")
            return
        if self.address(node, node.args[0]) is None:
            return
        text = node.args[0]
        if len(node.args) > 1:
            port = self.integer(node, 1, 65535, node.args[1])
            if port is None:
                return
            text += f" {port}"
        self._set(vs.m, node, "sorry_server", text)

    def _v_bool(self, node: Node, vs: VsState) -> None:
        v = self.flag(node)
        if v is not None:
            self._set(vs.m, node, node.keyword, v)

    def _v_default(self, node: Node, vs: VsState) -> None:
        self._default(node, vs.defaults)
        self.carry(node, vs.m)

    def _default(self, node: Node, d: CheckDefaults) -> None:
        kw = "retry" if node.keyword == "nb_get_retry" else node.keyword
        if kw == "virtualhost":
            d.virtualhost = self.one(node)
        elif kw == "retry":
            d.retry = self.integer(node, 0, 100)
        else:
            setattr(d, kw, self.number(node, 0, 86400))

    def _v_smtp_alert(self, node: Node, vs: VsState) -> None:
        vs.smtp_alert = self.flag(node)
        self.unsupported(
            node, "e-mails on quorum changes are not supported (real server changes are)", vs.m
        )

    # -- real servers -------------------------------------------------------------------

    def _real_server(self, node: Node, vs: VsState) -> None:
        if not self.need_block(node):
            return
        if not node.args:
            self.error(node.loc, "real_server needs an address")
            return
        if self.address(node, node.args[0]) is None:
            return
        m = YMap()
        m.set("address", node.args[0], loc=node.loc)
        if len(node.args) > 1:
            port = self.integer(node, 1, 65535, node.args[1])
            if port is None:
                return
            m.set("port", port, loc=node.loc)
        ctx = _RsCtx(m, vs, CheckDefaults(), node)
        vs.rs_alerts.append(None)
        ctx.index = len(vs.rs_alerts) - 1
        self.walk(node, self.rs_table, ctx, m, f"real_server {' '.join(node.args)}")
        checks = m.get("checks")
        if isinstance(checks, YSeq):
            e = m.entry("checks")
            assert e is not None
            m.entries.remove(e)
            m.entries.append(e)
        vs.m.child_seq("real_servers", loc=node.loc).append(
            m, loc=node.loc, comments=node.comments, trailing=node.trailing
        )

    def _r_weight(self, node: Node, ctx: _RsCtx) -> None:
        v = self.integer(node, 0, 65535)
        if v is not None:
            self._set(ctx.m, node, "weight", v)

    def _r_inhibit(self, node: Node, ctx: _RsCtx) -> None:
        v = self.flag(node)
        if v is not None:
            self._set(ctx.m, node, "inhibit_on_failure", v)

    def _r_notify(self, node: Node, ctx: _RsCtx) -> None:
        self._script_setting(node, ctx.m)

    def _r_lvs_method(self, node: Node, ctx: _RsCtx) -> None:
        if not self.plain(node) or not node.args:
            self.error(node.loc, "lvs_method needs NAT, DR or TUN")
            return
        ctx.vs.rs_methods.append((node.args[0].upper(), node))
        self.carry(node, ctx.m)

    def _r_default(self, node: Node, ctx: _RsCtx) -> None:
        self._default(node, ctx.defaults)
        self.carry(node, ctx.m)

    def _r_smtp_alert(self, node: Node, ctx: _RsCtx) -> None:
        ctx.vs.rs_alerts[ctx.index] = self.flag(node)
        self._email_comment(node, ctx.m)

    # -- checkers -----------------------------------------------------------------------

    def _checker(self, node: Node, ctx: _RsCtx) -> None:
        if not self.need_block(node):
            return
        kind = node.keyword
        halo_type = {
            "TCP_CHECK": "tcp",
            "HTTP_GET": "http",
            "SSL_GET": "ssl",
            "MISC_CHECK": "script",
        }[kind]
        if halo_type not in self.available_names("checker"):
            self.unsupported(
                node, f"needs the {halo_type} checker plugin, which is not installed", ctx.m
            )
            return
        m = YMap()
        m.set("type", halo_type, loc=node.loc)
        defaults = ctx.defaults.over(ctx.vs.defaults)
        c = CheckCtx(m, kind, defaults)
        table = {
            "TCP_CHECK": self.checker_common,
            "HTTP_GET": self.http_table,
            "SSL_GET": self.http_table,
            "MISC_CHECK": self.misc_table,
        }[kind]
        self.walk(node, table, c, m, kind)
        eff = c.own.over(defaults)
        # keepalived's defaults, where halo's differ
        if eff.delay_loop is not None and (
            c.own.delay_loop is not None or ctx.defaults.delay_loop is not None
        ):
            m.set("interval", eff.delay_loop)
        if kind != "MISC_CHECK":
            m.set("timeout", eff.connect_timeout if eff.connect_timeout is not None else 5)
        elif "timeout" not in m and "interval" in m:
            # keepalived: misc_timeout defaults to the virtual server's delay_loop
            vs_loop = ctx.vs.defaults.delay_loop
            m.set("timeout", vs_loop if vs_loop is not None else 60)
        retry = eff.retry if eff.retry is not None else (0 if kind == "MISC_CHECK" else 1)
        if retry:
            m.set("retry", retry)
        dbr = eff.delay_before_retry
        if dbr is None and kind in ("HTTP_GET", "SSL_GET"):
            dbr = 3
        if dbr is not None and dbr != 1:
            m.set("delay_before_retry", dbr)
        if eff.warmup is not None and eff.warmup:
            m.set("warmup", eff.warmup)
        if kind in ("HTTP_GET", "SSL_GET"):
            if "virtualhost" not in m and eff.virtualhost is not None:
                m.set("virtualhost", eff.virtualhost)
            if kind == "SSL_GET":
                self._ssl_settings(m)
        if kind == "MISC_CHECK":
            if "script" not in m:
                self.error(node.loc, "MISC_CHECK has no misc_path")
                return
            self.script_seen(node.loc)
        ctx.m.child_seq("checks", loc=node.loc).append(
            m, loc=node.loc, comments=node.comments, trailing=node.trailing
        )

    def _ssl_settings(self, m: YMap) -> None:
        for kw, key in (
            ("certificate", "cert_file"),
            ("key", "key_file"),
            ("password", "key_password"),
        ):
            if kw in self.ssl:
                value, node = self.ssl[kw]
                m.set(key, value, loc=node.loc)
        if "ca" in self.ssl:
            _, node = self.ssl["ca"]
            m.comment(
                f"SSL ca ({self.at(node.loc)}) left out: keepalived loads it but verifies"
                " no certificate"
            )
            if not self._ca_noted:
                self._ca_noted = True
                self.note(
                    node,
                    "keepalived's SSL_GET verifies no certificate even with a ca: left out"
                    " (halo would verify)",
                )

    def _c_address(self, node: Node, c: CheckCtx) -> None:
        v = self.one(node)
        if v is not None and self.address(node, v) is not None:
            key = "bind_to" if node.keyword == "bindto" else "connect_ip"
            self._set(c.m, node, key, v)

    def _c_port(self, node: Node, c: CheckCtx) -> None:
        v = self.integer(node, 1, 65535)
        if v is None:
            return
        if node.keyword == "bind_port" and c.kind != "TCP_CHECK":
            self.unsupported(node, "halo's HTTP checks cannot choose their source port", c.m)
            return
        self._set(c.m, node, node.keyword, v)

    def _c_default(self, node: Node, c: CheckCtx) -> None:
        if node.keyword == "nb_get_retry":
            if c.kind in ("HTTP_GET", "SSL_GET"):
                self.note(node, "deprecated synonym of retry")
            else:
                self.note(
                    node,
                    f"keepalived 2.2.7 does not know nb_get_retry in {c.kind} (older"
                    " versions did): read as retry",
                )
        self._default(node, c.own)
        self.carry(node, c.m)

    def _c_virtualhost(self, node: Node, c: CheckCtx) -> None:
        v = self.one(node)
        if v is not None:
            self._set(c.m, node, "virtualhost", v)

    def _c_enable_sni(self, node: Node, c: CheckCtx) -> None:
        if c.kind != "SSL_GET":
            self.note(node, "enable_sni has no effect in HTTP_GET")
        self.carry(node, c.m)  # halo's ssl check sends the virtualhost as SNI

    def _c_url(self, node: Node, c: CheckCtx) -> None:
        if not self.need_block(node):
            return
        u = YMap()
        self.walk(node, self.url_table, u, u, "url")
        if u.get("regex_no_match") and "regex" not in u:
            self.error(node.loc, "regex_no_match needs a regex")
            return
        c.m.child_seq("url", loc=node.loc).append(
            u, loc=node.loc, comments=node.comments, trailing=node.trailing
        )

    def _u_path(self, node: Node, u: YMap) -> None:
        v = self.one(node)
        if v is not None:
            if not v.startswith("/") or any(ch.isspace() for ch in v):
                self.error(node.loc, f"path {v!r} must start with / and contain no spaces")
                return
            self._set(u, node, "path", v)

    def _u_digest(self, node: Node, u: YMap) -> None:
        v = self.one(node)
        if v is not None:
            if not re.fullmatch(r"[0-9a-fA-F]{32}", v):
                self.error(node.loc, f"digest {v!r} is not an MD5 digest (32 hexadecimal digits)")
                return
            self._set(u, node, "digest", v.lower())

    def _u_status(self, node: Node, u: YMap) -> None:
        if not self.plain(node) or not node.args:
            self.error(node.loc, "status_code needs codes or ranges")
            return
        for w in node.args:
            m = re.fullmatch(r"(\d{3})(?:-(\d{3}))?", w)
            if m is None or not 100 <= int(m.group(1)) <= int(m.group(2) or m.group(1)) <= 599:
                self.error(node.loc, f"status_code {w!r} is not a code or range from 100 to 599")
                return
        text = " ".join(node.args)
        self._set(u, node, "status_code", int(text) if text.isdigit() else text)

    def _u_virtualhost(self, node: Node, u: YMap) -> None:
        v = self.one(node)
        if v is not None:
            self._set(u, node, "virtualhost", v)

    def _u_regex(self, node: Node, u: YMap) -> None:
        if not self.plain(node) or not node.args:
            self.error(node.loc, "regex needs a regular expression")
            return
        v = " ".join(node.args)
        try:
            re.compile(v)
        except re.error as exc:
            self.unsupported(node, f"not a valid Python regular expression ({exc})", u)
            return
        self._set(u, node, "regex", v)

    def _u_regex_no_match(self, node: Node, u: YMap) -> None:
        if self.plain(node):
            self._set(u, node, "regex_no_match", True)

    def _u_regex_options(self, node: Node, u: YMap) -> None:
        flags = {"caseless": "i", "multiline": "m", "dotall": "s", "extended": "x"}
        got = ""
        for w in node.args:
            if w in flags:
                got += flags[w]
            else:
                self.unsupported(node, f"regex option {w!r} has no Python equivalent", u)
        if got:
            regex = u.get("regex")
            if isinstance(regex, str):
                u.set("regex", f"(?{got}){regex}")
            else:
                self.error(node.loc, "regex_options must follow the regex")

    def _c_misc_path(self, node: Node, c: CheckCtx) -> None:
        cmd, _, _ = self.command(node, "program")
        if cmd is not None:
            self._set(c.m, node, "script", cmd)

    def _c_misc_timeout(self, node: Node, c: CheckCtx) -> None:
        v = self.number(node, 0.001, 86400)
        if v is not None:
            self._set(c.m, node, "timeout", v)

    def _c_misc_dynamic(self, node: Node, c: CheckCtx) -> None:
        if self.plain(node):
            self._set(c.m, node, "misc_dynamic", True)

    def _c_misc_user(self, node: Node, c: CheckCtx) -> None:
        v = self.user(node)
        if v is not None:
            self._set(c.m, node, "user", v)


@dataclass
class _RsCtx:
    m: YMap
    vs: VsState
    defaults: CheckDefaults
    node: Node
    index: int = 0
