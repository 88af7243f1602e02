"""Notifications: ``notify_*`` scripts (to script notifiers), and
``notification_email``, ``smtp_*`` and ``smtp_alert`` wherever they are (to one email
notifier, written once the whole file is read)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from halo_tool_convert.emit import YMap, YSeq
from halo_tool_convert.parser import Node
from halo_tool_convert.state import GroupState, InstanceState, Notify, RsCtx
from halo_tool_convert.values import Report

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


def i_notify(conv: Converter, node: Node, st: InstanceState | GroupState) -> None:
    cmd, user, extra = conv.command(node, "script")
    if cmd is None:
        return
    if extra:
        conv.note(node, f"extra words ignored (as keepalived does): {' '.join(extra)}")
    st.notify.append(Notify(node.keyword, cmd, user, node.loc))
    m = st.m if isinstance(st, InstanceState) else conv.group_map(st)
    if "script" in conv.available_names("notifier"):
        m.comment(*conv.said(node), f"{node.keyword} ({conv.at(node.loc)}): see notifiers")
    else:
        conv.unsupported(node, "needs the script notifier plugin, which is not installed", m)


def i_smtp_alert(conv: Converter, node: Node, st: InstanceState) -> None:
    st.smtp_alert = conv.flag(node)
    email_comment(conv, node, st.m)


def sg_smtp_alert(conv: Converter, node: Node, g: GroupState) -> None:
    g.smtp_alert = conv.flag(node)
    email_comment(conv, node, conv.group_map(g))


def notifier(conv: Converter, subject: str, notify: list[Notify], event: str, node: Node) -> None:
    if not notify or "script" not in conv.available_names("notifier"):
        return
    by_user: dict[str | None, list[Notify]] = {}
    for n in notify:
        by_user.setdefault(n.user, []).append(n)
    section = conv.section_map("notifiers")
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
            m.set(n.key, n.command, loc=n.loc, trailing=conv.at(n.loc))
        if user is not None:
            m.set("script_user", user, loc=items[0].loc)
        conv.script_seen(node.loc)
        section.set(
            name,
            m,
            loc=node.loc,
            comments=[f"the notify scripts of {subject} ({conv.at(node.loc)})"],
        )


def finish_email(conv: Converter) -> None:
    e = conv.email
    if not e.nodes:
        return
    first = e.nodes[0]
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
        return
    vrrp_default = e.smtp_alert_vrrp if e.smtp_alert_vrrp is not None else bool(e.smtp_alert)
    checker_set = e.smtp_alert_checker if e.smtp_alert_checker is not None else e.smtp_alert
    names: list[str] = []
    everything = True
    events: list[str] = []
    for st in conv.instances.values():
        on = st.smtp_alert if st.smtp_alert is not None else vrrp_default
        if on:
            names.append(st.name)
            if "vrrp_state" not in events:
                events.append("vrrp_state")
        else:
            everything = False
    for g in conv.groups.values():
        if not g.members:
            continue
        on = g.smtp_alert if g.smtp_alert is not None else vrrp_default
        if on:
            names.append(g.name)
            if "vrrp_group_state" not in events:
                events.append("vrrp_group_state")
        else:
            everything = False
    for vs in conv.vs_states:
        rs_on = [
            a if a is not None else (checker_set if checker_set is not None else True)
            for a in vs.rs_alerts
        ]
        if any(rs_on):
            names.append(vs.label)
            if "real_server" not in events:
                events.append("real_server")
            if not all(rs_on):
                conv.reports.append(
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
    for entry, what in conv.email_comments:
        entry.comments[-1] = f"{what}: " + (
            "see notifiers.email" if written else "no e-mail is sent (see the notes)"
        )
    if not names:
        conv.reports.append(
            Report(
                "note",
                first.loc,
                first.keyword,
                "no smtp_alert is on: keepalived sends no e-mail, so no email notifier is written",
            )
        )
        return
    if not e.server or not e.recipients:
        conv.reports.append(
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
    conv.section_map("notifiers").set(
        "email",
        m,
        loc=first.loc,
        comments=["global_defs notification_email and smtp_* settings, smtp_alert"],
    )


def r_smtp_alert(conv: Converter, node: Node, ctx: RsCtx) -> None:
    ctx.vs.rs_alerts[ctx.index] = conv.flag(node)
    email_comment(conv, node, ctx.m)
