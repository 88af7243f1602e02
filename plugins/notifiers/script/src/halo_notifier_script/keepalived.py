"""keepalived's notifications the script notifier stands for, for ``halo convert``
(imported only by the ``halo_convert_keepalived`` hook):

* the ``notify_*`` scripts of instances and sync groups (also ``notify_deleted`` and
  ``notify_master_rx_lower_pri``): collected per block, and after the block written as one
  script notifier per script user;
* the notify FIFOs of ``global_defs`` (``notify_fifo``, ``vrrp_notify_fifo``,
  ``lvs_notify_fifo`` and their ``_script``): one script notifier each, written after the
  file, with ``notify_priority_changes`` and ``notify_deleted`` for the instances that ask
  for them (globally, per sync group or per instance, keepalived's order)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from halo_tool_convert.api import (
    NOTIFY_KEYWORDS,
    Converter,
    Finish,
    GroupState,
    InstanceState,
    Keyword,
    Node,
    Notify,
    U,
    YMap,
    YSeq,
    block_map,
    notify_command,
)

# Where each FIFO's lines come from (keepalived: notify_fifo gets both).
FIFO_EVENTS = {
    "notify_fifo": None,
    "vrrp_notify_fifo": ["vrrp_state", "vrrp_group_state", "vrrp_priority", "vrrp_announce"],
    "lvs_notify_fifo": ["real_server", "pool"],
}


@dataclass
class Fifo:
    path: str
    user: str | None
    node: Node
    script: tuple[str, str | None, Node] | None = None


@dataclass
class Notifications:
    """What the whole file says about FIFOs and the options instances inherit."""

    fifos: dict[str, Fifo] = field(default_factory=dict)
    scripts: dict[str, tuple[str, str | None, Node]] = field(default_factory=dict)
    priority_changes: bool = False  # global vrrp_notify_priority_changes
    group_priority_changes: dict[str, bool] = field(default_factory=dict)
    instance_priority_changes: dict[str, bool] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)  # instances with notify_deleted
    deleted_flag: dict[str, Node] = field(default_factory=dict)  # ... without a script


STATE: weakref.WeakKeyDictionary[Converter, Notifications] = weakref.WeakKeyDictionary()


def state_of(conv: Converter) -> Notifications:
    return STATE.setdefault(conv, Notifications())


# ---------------------------------------------------------------- instances, sync groups


def notifier(
    conv: Converter,
    subject: str,
    notify: list[Notify],
    event: str,
    node: Node,
    deleted_flag: bool = False,
) -> None:
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
        if any(n.key == "notify_master_rx_lower_pri" for n in items):
            ev.append("vrrp_announce")  # a MASTER hearing a lower priority
        m.set("events", ev, loc=node.loc)
        for n in items:
            m.set(n.key, n.command, loc=n.loc, trailing=conv.at(n.loc))
        if deleted_flag and not any(n.key == "notify_deleted" for n in items):
            m.set("notify_deleted", True, loc=node.loc)
        if user is not None:
            m.set("script_user", user, loc=items[0].loc)
        conv.script_seen(node.loc)
        section.set(
            name,
            m,
            loc=node.loc,
            comments=[f"the notify scripts of {subject} ({conv.at(node.loc)})"],
        )


def after_instance(conv: Converter, node: Node | None, st: InstanceState) -> None:
    assert node is not None
    flag = st.name in state_of(conv).deleted_flag
    notifier(conv, st.name, st.notify, "vrrp_state", node, deleted_flag=flag)


def after_group(conv: Converter, node: Node | None, g: GroupState) -> None:
    assert node is not None
    notifier(conv, g.name, g.notify, "vrrp_group_state", node)


def notify(conv: Converter, node: Node, st: InstanceState | GroupState) -> None:
    """``notify_master`` & co: the script goes to the block's script notifier."""
    n = notify_command(conv, node)
    if n is None:
        return
    st.notify.append(n)
    m = block_map(conv, st)
    m.comment(*conv.said(node), f"{node.keyword} ({conv.at(node.loc)}): see notifiers")


def notify_deleted(conv: Converter, node: Node, st: InstanceState) -> None:
    """``notify_deleted [SCRIPT]``: DELETED rather than FAULT for an instance a reload
    removes; a script also runs then."""
    s = state_of(conv)
    s.deleted.add(st.name)
    if node.args:
        notify(conv, node, st)
        return
    s.deleted_flag[st.name] = node
    st.m.comment(
        *conv.said(node),
        f"notify_deleted ({conv.at(node.loc)}): see notifiers (DELETED rather than FAULT)",
    )


def priority_changes(conv: Converter, node: Node, st: InstanceState | GroupState) -> None:
    v = conv.flag(node)
    if v is None:
        return
    s = state_of(conv)
    table = (
        s.instance_priority_changes if isinstance(st, InstanceState) else s.group_priority_changes
    )
    table[st.name] = v
    block_map(conv, st).comment(
        *conv.said(node), f"{node.line} ({conv.at(node.loc)}): see the notify FIFO's notifier"
    )


# ---------------------------------------------------------------- global_defs


def g_fifo(conv: Converter, node: Node, g: YMap) -> None:
    """``notify_fifo FIFO [user [group]]`` and its vrrp_/lvs_ kinds."""
    if not conv.plain(node) or not node.args:
        conv.error(node.loc, f"{node.keyword} needs a FIFO name")
        return
    if len(node.args) > 3:
        conv.error(node.loc, f"{node.keyword}: unexpected {' '.join(node.args[3:])!r}")
        return
    user = ":".join(node.args[1:3]) or None
    state_of(conv).fifos[node.keyword] = Fifo(node.args[0], user, node)
    g.comment(*conv.said(node), f"{node.line} ({conv.at(node.loc)}): see notifiers")


def g_fifo_script(conv: Converter, node: Node, g: YMap) -> None:
    cmd, user, extra = conv.command(node, "script")
    if cmd is None:
        return
    if extra:
        conv.note(node, f"extra words ignored (as keepalived does): {' '.join(extra)}")
    state_of(conv).scripts[node.keyword.removesuffix("_script")] = (cmd, user, node)
    g.comment(*conv.said(node), f"{node.line} ({conv.at(node.loc)}): see notifiers")


def g_priority_changes(conv: Converter, node: Node, g: YMap) -> None:
    v = conv.flag(node)
    if v is None:
        return
    state_of(conv).priority_changes = v
    g.comment(*conv.said(node), f"{node.line} ({conv.at(node.loc)}): see notifiers")


def instances_asking(conv: Converter, s: Notifications) -> bool | list[str]:
    """keepalived's rule: an instance's own setting, else its sync group's, else global."""
    asking: list[str] = []
    for name in conv.instances:
        own = s.instance_priority_changes.get(name)
        group = conv.group_of.get(name)
        if own is None and group is not None:
            own = s.group_priority_changes.get(group)
        if own if own is not None else s.priority_changes:
            asking.append(name)
    if asking and len(asking) == len(conv.instances):
        return True
    return asking


def after_file(conv: Converter, node: Node | None, _: object) -> None:
    s = state_of(conv)
    for kind, (_cmd, _user, script_node) in s.scripts.items():
        if kind not in s.fifos:
            conv.error(script_node.loc, f"{script_node.keyword} without {kind}")
    if not s.fifos:
        return
    section = conv.section_map("notifiers")
    for kind, fifo in s.fifos.items():
        loc = fifo.node.loc
        m = YMap()
        m.set("type", "script", loc=loc)
        events = FIFO_EVENTS[kind]
        if events is not None:
            ev = YSeq(flow=True)
            for e in events:
                ev.append(e)
            m.set("events", ev, loc=loc)
        m.set("notify_fifo", fifo.path, loc=loc, trailing=conv.at(loc))
        user = fifo.user
        script = s.scripts.get(kind)
        if script is not None:
            cmd, script_user, script_node = script
            m.set("notify_fifo_script", cmd, loc=script_node.loc, trailing=conv.at(script_node.loc))
            conv.script_seen(script_node.loc)
            user = user or script_user
        if kind != "lvs_notify_fifo":
            asking = instances_asking(conv, s)
            if asking:
                value: bool | YSeq = True
                if isinstance(asking, list):
                    value = YSeq(flow=True)
                    for name in asking:
                        value.append(name)
                m.set("notify_priority_changes", value, loc=loc)
            deleted = [n for n in conv.instances if n in s.deleted]
            if deleted:
                if len(deleted) == len(conv.instances):
                    m.set("notify_deleted", True, loc=loc)
                else:
                    seq = YSeq(flow=True)
                    for name in deleted:
                        seq.append(name)
                    m.set("notify_deleted", seq, loc=loc)
        if user is not None:
            m.set("script_user", user, loc=loc)
        section.set(
            kind.replace("_", "-"),
            m,
            loc=loc,
            comments=[f"keepalived's {kind} ({conv.at(loc)}): its lines, keepalived's format"],
        )


def keywords() -> list[Keyword | Finish]:
    return [
        *(
            Keyword(block, kw, notify)
            for block in ("vrrp_instance", "vrrp_sync_group")
            for kw in NOTIFY_KEYWORDS
        ),
        Keyword("vrrp_instance", "notify_master_rx_lower_pri", notify),
        Keyword("vrrp_instance", "notify_deleted", notify_deleted),
        Keyword("vrrp_instance", "notify_priority_changes", priority_changes),
        Keyword("vrrp_sync_group", "notify_priority_changes", priority_changes),
        *(Keyword("global_defs", kind, g_fifo) for kind in FIFO_EVENTS),
        *(Keyword("global_defs", f"{kind}_script", g_fifo_script) for kind in FIFO_EVENTS),
        Keyword("global_defs", "vrrp_notify_priority_changes", g_priority_changes),
        Keyword(
            "global_defs",
            "fifo_write_vrrp_states_on_reload",
            U("halo writes no states to the FIFO on a reload, only changes"),
        ),
        Finish("vrrp_instance", after_instance),
        Finish("vrrp_sync_group", after_group),
        Finish("top", after_file),
    ]
