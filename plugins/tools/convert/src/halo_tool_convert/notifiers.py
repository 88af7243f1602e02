"""Notifications: ``notify_*`` scripts (to script notifiers), and
``notification_email``, ``smtp_*`` and ``smtp_alert`` wherever they are (to one email
notifier, written once the whole file is read)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from halo_tool_convert.emit import YMap
from halo_tool_convert.parser import Node
from halo_tool_convert.state import GroupState, InstanceState, Notify, RsCtx
from halo_tool_convert.values import Report, Table

if TYPE_CHECKING:
    from halo_tool_convert.mapping import Converter


def g_email_to(conv: Converter, node: Node, g: YMap) -> None:
    if not conv.need_block(node):
        return
    for child in node.children:
        conv.email.recipients.append((" ".join([child.keyword, *child.args]), child.loc))
    email_comment(conv, node, g)


def email_comment(conv: Converter, node: Node, g: YMap) -> None:
    """An e-mail setting: its comment says where it went once that is known."""
    conv.email.nodes.append(node)
    what = f"{node.line}{' { … }' if node.has_block else ''} ({conv.at(node.loc)})"
    e = g.comment(*conv.said(node), what)
    if e is not None:
        conv.email_comments.append((e, what))


def g_email_from(conv: Converter, node: Node, g: YMap) -> None:
    v = conv.one(node)
    if v is not None:
        conv.email.sender = v
    email_comment(conv, node, g)


def g_smtp_server(conv: Converter, node: Node, g: YMap) -> None:
    if not conv.plain(node) or not node.args:
        conv.error(node.loc, "smtp_server needs an address or host name")
        return
    conv.email.server = node.args[0]
    if len(node.args) > 1:
        conv.email.port = conv.integer(node, 1, 65535, node.args[1])
    email_comment(conv, node, g)


def g_smtp_helo(conv: Converter, node: Node, g: YMap) -> None:
    conv.email.helo = conv.one(node)
    email_comment(conv, node, g)


def g_smtp_timeout(conv: Converter, node: Node, g: YMap) -> None:
    conv.email.timeout = conv.number(node, 0.1, 3600)
    email_comment(conv, node, g)


def g_smtp_alert(conv: Converter, node: Node, g: YMap) -> None:
    v = conv.flag(node)
    if node.keyword == "no_email_faults":
        conv.email.no_email_faults = bool(v)
    else:
        setattr(conv.email, node.keyword, v)
    email_comment(conv, node, g)


def notify_command(conv: Converter, node: Node) -> Notify | None:
    """A ``notify_*`` keyword's script in keepalived's syntax, or None after an error."""
    cmd, user, extra = conv.command(node, "script")
    if cmd is None:
        return None
    if extra:
        conv.note(node, f"extra words ignored (as keepalived does): {' '.join(extra)}")
    return Notify(node.keyword, cmd, user, node.loc)


def block_map(conv: Converter, st: InstanceState | GroupState) -> YMap:
    """The YAML mapping an instance or sync group is written to."""
    return st.m if isinstance(st, InstanceState) else conv.group_map(st)


def notify_missing(conv: Converter, node: Node, st: InstanceState | GroupState) -> None:
    """A ``notify_*`` script without the script notifier plugin, which converts them."""
    if notify_command(conv, node) is not None:
        m = block_map(conv, st)
        conv.unsupported(node, "needs the script notifier plugin, which is not installed", m)


def i_smtp_alert(conv: Converter, node: Node, st: InstanceState) -> None:
    st.smtp_alert = conv.flag(node)
    email_comment(conv, node, st.m)


def sg_smtp_alert(conv: Converter, node: Node, g: GroupState) -> None:
    g.smtp_alert = conv.flag(node)
    email_comment(conv, node, conv.group_map(g))


def r_smtp_alert(conv: Converter, node: Node, ctx: RsCtx) -> None:
    ctx.vs.rs_alerts[ctx.index] = conv.flag(node)
    email_comment(conv, node, ctx.m)


def email_missing(conv: Converter) -> None:
    """Without the email notifier plugin, which writes the e-mail alerts, every e-mail
    setting is unsupported."""
    e = conv.email
    if not e.nodes:
        return
    if "email" not in conv.available_names("notifier"):
        for entry, what in conv.email_comments:
            entry.comments[-1] = f"unsupported: {what} - needs the email notifier plugin"
        for n in e.nodes:
            conv.reports.append(
                Report(
                    "unsupported",
                    n.loc,
                    n.keyword,
                    "needs the email notifier plugin, which is not installed",
                )
            )


# The notify scripts of vrrp_instance and vrrp_sync_group (the script notifier converts them).
NOTIFY_KEYWORDS = ("notify_master", "notify_backup", "notify_fault", "notify_stop", "notify")
NOTIFY: Table = dict.fromkeys(NOTIFY_KEYWORDS, notify_missing)
