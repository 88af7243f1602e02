"""keepalived's ``notify_*`` scripts of instances and sync groups, for ``halo convert``
(imported only by the ``halo_convert_keepalived`` hook): the scripts of a block are
collected, and after the block written as one script notifier per script user."""

from __future__ import annotations

from halo_tool_convert.api import (
    NOTIFY_KEYWORDS,
    Converter,
    Finish,
    GroupState,
    InstanceState,
    Keyword,
    Node,
    Notify,
    YMap,
    YSeq,
    block_map,
    notify_command,
)


def notifier(conv: Converter, subject: str, notify: list[Notify], event: str, node: Node) -> None:
    if not notify:
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


def after_instance(conv: Converter, node: Node, st: InstanceState) -> None:
    notifier(conv, st.name, st.notify, "vrrp_state", node)


def after_group(conv: Converter, node: Node, g: GroupState) -> None:
    notifier(conv, g.name, g.notify, "vrrp_group_state", node)


def notify(conv: Converter, node: Node, st: InstanceState | GroupState) -> None:
    """``notify_master`` & co: the script goes to the block's script notifier."""
    n = notify_command(conv, node)
    if n is None:
        return
    st.notify.append(n)
    m = block_map(conv, st)
    m.comment(*conv.said(node), f"{node.keyword} ({conv.at(node.loc)}): see notifiers")


def keywords() -> list[Keyword | Finish]:
    return [
        *(
            Keyword(block, kw, notify)
            for block in ("vrrp_instance", "vrrp_sync_group")
            for kw in NOTIFY_KEYWORDS
        ),
        Finish("vrrp_instance", after_instance),
        Finish("vrrp_sync_group", after_group),
    ]
