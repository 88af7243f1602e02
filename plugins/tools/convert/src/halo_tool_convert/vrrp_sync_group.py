"""``vrrp_sync_group``: its members (known once every instance is read), tracking and
notify scripts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from halo_tool_convert import notifiers, vrrp_script
from halo_tool_convert.parser import Node
from halo_tool_convert.state import GroupState
from halo_tool_convert.values import BFD, NAME_RE, NOTIFY_OTHER, PROCESS, Table

if TYPE_CHECKING:
    from halo_tool_convert.mapping import Converter


def prescan_group(conv: Converter, node: Node) -> None:
    name = node.args[0]
    if name in conv.groups:
        conv.error(node.loc, f"vrrp_sync_group {name} is defined twice")
        return
    g = GroupState(name, node.loc)
    conv.groups[name] = g
    for child in node.children:
        if child.keyword in ("sync_group_tracking_weight", "global_tracking"):
            g.tracking_weight = True
        elif child.keyword == "group" or old_member(conv, child):
            old = child.keyword != "group"
            for member in [child] if old else child.children:
                iname = member.keyword
                if old:
                    conv.note(member, "the old sync-group syntax (no group { }): read as a member")
                if iname not in conv.instance_names:
                    conv.note(
                        member,
                        f"no vrrp_instance {iname}: left out of sync group {name}"
                        " (keepalived ignores it too)",
                    )
                elif iname in conv.group_of:
                    conv.note(
                        member,
                        f"{iname} is already in sync group {conv.group_of[iname]}:"
                        f" left out of {name} (keepalived ignores it too)",
                    )
                else:
                    conv.group_of[iname] = name
                    g.members.append((iname, member.loc))


def old_member(conv: Converter, node: Node) -> bool:
    """keepalived's old sync-group syntax: an instance name right in the block."""
    return (
        node.keyword not in TABLE
        and node.keyword in conv.instance_names
        and not node.args
        and not node.has_block
    )


def vrrp_sync_group(conv: Converter, node: Node, _: Any) -> None:
    if not node.args:
        conv.error(node.loc, "vrrp_sync_group needs a name")
        return
    if not conv.need_block(node):
        return
    name = node.args[0]
    g = conv.groups.get(name)
    if g is None or g.loc != node.loc:
        return  # a duplicate: reported by the prescan
    if not NAME_RE.fullmatch(name):
        conv.error(
            node.loc,
            f"vrrp_sync_group name {name!r}: halo names are letters, digits and _ . : @ -",
        )
        return
    m = conv.group_map(g)
    table = conv.tables["vrrp_sync_group"]
    members = [c for c in node.children if old_member(conv, c)]
    if members:  # the old syntax: the listed instances, as if written in group { }
        table = {**table, **{c.keyword: old_members for c in members}}
    conv.walk(node, table, g, m, f"vrrp_sync_group {name}")
    if not g.members:
        conv.note(node, f"sync group {name} has no instances: left out")
        conv.doc.comment(
            *conv.said(node),
            f"vrrp_sync_group {name} ({conv.at(node.loc)}) has no instances: left out",
        )
        return
    m.move_to_front("group")
    conv.section_map("vrrp_sync_groups").set(
        name, m, loc=node.loc, comments=node.comments, trailing=node.trailing
    )
    conv.finish("vrrp_sync_group", node, g)


def sg_group(conv: Converter, node: Node, g: GroupState) -> None:
    if not conv.need_block(node):
        return
    m = conv.group_map(g)
    seq = m.child_seq("group", loc=node.loc)
    seq.comment(*conv.said(node))
    members = {n for n, _ in g.members}
    for child in node.children:
        if child.keyword in members:
            seq.append(
                child.keyword, loc=child.loc, comments=child.comments, trailing=child.trailing
            )
        else:
            seq.comment(*conv.said(child), f"{child.keyword} ({conv.at(child.loc)}) left out")


def old_members(conv: Converter, node: Node, g: GroupState) -> None:
    """An instance listed right in the block (the old syntax): written to ``group``."""
    if node.keyword in {n for n, _ in g.members}:
        conv.group_map(g).child_seq("group", loc=node.loc).append(
            node.keyword, loc=node.loc, comments=node.comments, trailing=node.trailing
        )


def sg_tracking_weight(conv: Converter, node: Node, g: GroupState) -> None:
    if conv.plain(node):
        if node.keyword == "global_tracking":
            conv.note(node, "deprecated; read as sync_group_tracking_weight")
        conv.group_map(g).comment(
            *conv.said(node),
            f"{node.keyword} ({conv.at(node.loc)}): the members' tracking weights are kept",
        )


TABLE: Table = {
    "group": sg_group,
    **vrrp_script.TRACKING,
    **notifiers.NOTIFY,
    "smtp_alert": notifiers.sg_smtp_alert,
    "global_tracking": sg_tracking_weight,
    "sync_group_tracking_weight": sg_tracking_weight,
    "track_process": PROCESS,
    "track_bfd": BFD,
    "notify_priority_changes": NOTIFY_OTHER,
}
