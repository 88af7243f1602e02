"""keepalived's e-mail alerts, for ``halo convert`` (imported only by the
``halo_convert_keepalived`` hook): once the whole file is read, one email notifier from
global_defs' ``notification_email`` and ``smtp_*`` settings, for the instances, sync groups
and virtual servers whose ``smtp_alert`` is on (the converter reads those keywords into
``converter.email`` and the blocks' states)."""

from __future__ import annotations

from typing import Any

from halo_tool_convert.api import Converter, Finish, Node, Report, YMap, YSeq


def write(conv: Converter, node: Node | None, state: Any) -> None:
    e = conv.email
    if not e.nodes:
        return
    first = e.nodes[0]
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


def keywords() -> list[Finish]:
    return [Finish("top", write)]
