"""What every block's conversion shares: the reports (errors, notes, unsupported
keywords), walking a block through its keyword table, and keepalived's value syntax
(numbers, on/off flags, addresses, scripts with their user), each checked with a one-line
error at the keyword's file and line.

:class:`Values` is the base of :class:`halo_tool_convert.mapping.Converter`; a block's
conversion is a function ``(converter, node, context) -> None`` listed in a :data:`Table`.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from halo_tool_convert.emit import Value, YMap, YSeq
from halo_tool_convert.lexer import Loc, quoted_words
from halo_tool_convert.parser import Node

if TYPE_CHECKING:
    from halo_tool_convert.state import InstanceState

NAME_RE = re.compile(r"[A-Za-z0-9_.:@-]+")
IFNAME_RE = re.compile(r"[^\s/]{1,15}")
SCOPES = {"global", "site", "link", "host", "nowhere"}
LB_ALGOS = {
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf",
}  # fmt: skip
BOOL_WORDS = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}

IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address

# Redirections, pipes, lists, expansions: a script line a shell must run.
SHELL_SYNTAX = re.compile(r"[<>|&;$`]")

# Keywords keepalived 2.2.7 no longer has but still reads without effect, and why.
OBSOLETE = {
    "lvs_id": "obsolete since keepalived 1.1.x; the router_id names the node",
    "nat_mask": "obsolete since keepalived 1.1.x; IPVS takes no netmask",
}


@dataclass(frozen=True)
class Report:
    """Something the user should know: ``note`` (converted, with a remark), ``warning`` (a
    line keepalived would refuse or ignore with a message - an unknown keyword, a bad
    value: left out, as keepalived leaves it out) or ``unsupported`` (keepalived does it,
    halo does not: left out). Warnings and unsupported lines fail ``--strict``."""

    kind: Literal["unsupported", "warning", "note"]
    loc: Loc
    keyword: str
    message: str

    def __str__(self) -> str:
        if not self.keyword:
            return f"{self.kind}: {self.loc}: {self.message}"
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


TUNING = I("tunes keepalived's processes; halo has no such setting for its processes")
BUFFERS = I("netlink buffer sizes are keepalived's; halo sizes its own sockets")
RELOAD = I("keepalived's reload machinery; halo reloads on SIGHUP after validating")
SNMP = U("halo has no SNMP agent")
DBUS = U("halo has no D-Bus interface")
FIFO = U("notify FIFOs are not converted (the script notifier has notify_fifo; set it by hand)")
IPVS_GLOBAL = U("IPVS-wide settings are not supported by halo")
FIREWALL = U("halo keeps its own nftables table for no_accept (accept: false)")
VMAC = U("halo's use_vmac has no such option (one macvlan per instance, RFC 5798's MAC)")
NAMESPACE = U("run halo itself in the network namespace instead")
BFD = U("halo has no BFD")
PROCESS = U("needs the process checker plugin, which is not installed")
ROUTES = U("halo does not manage routes or rules")
STATIC = U("halo's static addresses, routes and rules do not follow track groups")
NOTIFY_OTHER = U("halo has no such notification")
LINKBEAT = I("halo follows links through netlink")
VRRP_EXT = U("this VRRP extension is not supported by halo")


NO_LB_OPTION = U("halo's load-balancer settings have no such option")

# A keyword's conversion: called with the converter, the keyword's node and the context of
# the block it is in (the instance's state, the virtual server's, the checker's...).
Handler = Callable[[Any, Node, Any], None]
Table = dict[str, "Handler | Skip"]
# What a plugin writes after a block: called with the converter, the block's node and state.
FinishHandler = Callable[[Any, Any, Any], None]


@dataclass(frozen=True)
class Keyword:
    """A keepalived.conf keyword a plugin converts: the block it appears in (``"top"`` for
    the top level, else the block's keyword: ``"global_defs"``, ``"real_server"``...), the
    keyword, and its conversion (or a :class:`Skip` saying why there is none)."""

    block: str
    keyword: str
    convert: Handler | Skip


@dataclass(frozen=True)
class Finish:
    """What a plugin writes once a block has been converted: ``convert(converter, node,
    state)`` after each ``"vrrp_instance"``, ``"vrrp_sync_group"`` or ``"virtual_server"``
    (with its ``InstanceState``, ``GroupState`` or ``VsState``), or once after the whole
    file for ``"top"`` (node and state None)."""

    block: str
    convert: FinishHandler


class Values:
    """Reports and value parsing for one conversion."""

    def __init__(self, available: set[tuple[str, str]], main_file: str = "") -> None:
        self.main_file = main_file
        self.available = available
        self.reports: list[Report] = []

    def error(self, loc: Loc | None, message: str) -> None:
        """A line keepalived would complain about: reported as a warning and left out of
        the YAML, and the conversion goes on (keepalived runs the rest of the file too)."""
        where = loc or Loc(self.main_file or "keepalived.conf", 1)
        self.reports.append(Report("warning", where, "", f"{message}; ignored"))

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

    def unknown(self, node: Node, table: Table, where: str = "") -> None:
        """A keyword this block does not have: a warning with keepalived's own verdict on
        an obsolete keyword, the block it belongs to, or the keyword it was probably meant
        to be."""
        kw = node.keyword
        inside = f" in {where}" if where else ""
        if kw in OBSOLETE:
            self.reports.append(
                Report("note", node.loc, kw, f"keepalived ignores this too ({OBSOLETE[kw]})")
            )
            return
        hint = ""
        home = self.known_in(kw)
        if home:
            hint = f" (it belongs in {home})"
        else:
            close = difflib.get_close_matches(kw, list(table), n=1, cutoff=0.75)
            if close:
                hint = f" (did you mean {close[0]!r}?)"
        self.reports.append(
            Report(
                "warning",
                node.loc,
                "",
                f"{kw!r} is not a keepalived {self.what(node)}{inside}; ignored{hint}",
            )
        )

    def known_in(self, keyword: str) -> str | None:
        """The block whose table has ``keyword``, if any (set by the converter)."""
        return None

    def walk(self, node: Node, table: Table, ctx: Any, target: YMap | YSeq, where: str) -> None:
        for child in node.children:
            h = table.get(child.keyword)
            if h is None:
                self.unknown(child, table, where)
            elif isinstance(h, Skip):
                self.skip(child, h, target)
            else:
                h(self, child, ctx)
        if node.end_comments:
            target.comment(*node.end_comments)

    def at(self, loc: Loc | None) -> str:
        """A place for a YAML comment: "line N" in the main file, else FILE:N."""
        if loc is None:
            return "?"
        return f"line {loc.line}" if loc.file == self.main_file else str(loc)

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
        if SHELL_SYNTAX.search(args[0]):
            # halo runs no shell of its own: shell syntax gets an explicit one (bash for its
            # /dev/tcp and /dev/udp redirections, which dash lacks)
            shell = "/bin/bash" if re.search(r"/dev/(tcp|udp)/", args[0]) else "/bin/sh"
            cmd = shlex.join([shell, "-c", args[0]])
            self.note(node, f"shell syntax in {args[0]!r}: written as {shell} -c '…'")
        elif not argv[0].startswith("/"):
            found = shutil.which(argv[0])
            if found:
                cmd = shlex.join([found, *argv[1:]])
                self.note(
                    node, f"{argv[0]!r} resolved by path search to {found} (as keepalived does)"
                )
            else:
                cmd = shlex.join(["/bin/sh", "-c", args[0]])
                self.note(
                    node,
                    f"{argv[0]!r} is not on this host's PATH: written as /bin/sh -c '…', which"
                    " searches PATH when it runs",
                )
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

    def put(self, st: InstanceState | YMap, node: Node, key: str, value: Value) -> None:
        m = st if isinstance(st, YMap) else st.m
        m.set(key, value, loc=node.loc, comments=node.comments, trailing=node.trailing)

    def available_names(self, kind: str) -> set[str]:
        return {n for k, n in self.available if k == kind}
