"""``vrrp_script`` and ``track_file`` blocks, and what tracks them: ``track_script``,
``track_interface`` and ``track_file`` in instances and sync groups, with keepalived's rule
for weights in sync groups and address owners."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from halo_tool_convert.emit import Entry, YMap, YSeq
from halo_tool_convert.parser import Node
from halo_tool_convert.state import GroupState, InstanceState, ScriptDef, TrackFileDef, TrackRef
from halo_tool_convert.values import IFNAME_RE, NAME_RE, Report, Table

if TYPE_CHECKING:
    from halo_tool_convert.mapping import Converter


def script_def(conv: Converter, node: Node) -> ScriptDef | None:
    """The definition a ``vrrp_script`` block fills in (made when the file was first read,
    so that tracks can refer to it), or None after saying why the block cannot be
    converted: no name, no block, a second definition, a name halo cannot use."""
    if not node.args:
        conv.error(node.loc, "vrrp_script needs a name")
        return None
    name = node.args[0]
    if not conv.need_block(node):
        return None
    sd = conv.scripts[name]
    if sd.loc != node.loc:
        conv.error(node.loc, f"vrrp_script {name} is defined twice (first at {sd.loc})")
        return None
    if not NAME_RE.fullmatch(name):
        conv.error(
            node.loc, f"vrrp_script name {name!r}: halo names are letters, digits and _ . : @ -"
        )
        return None
    return sd


def missing(conv: Converter, node: Node, _: Any) -> None:
    """``vrrp_script`` without the script checker plugin, which converts its keywords."""
    if script_def(conv, node) is not None:
        conv.unsupported(node, "needs the script checker plugin, which is not installed", conv.doc)


def add_check(conv: Converter, node: Node, sd: ScriptDef) -> None:
    """Write the check a ``vrrp_script`` became into ``checks``, if an instance or sync group
    tracks it: keepalived runs no other."""
    name = sd.name
    if not sd.has_script:
        conv.error(node.loc, f"vrrp_script {name} has no script")
        return
    checks = conv.section_map("checks")
    if name not in conv.used_scripts:
        conv.note(
            node,
            f"{name} is tracked by no instance or sync group: keepalived never runs it,"
            " so it is left out",
        )
        checks.comment(
            *conv.said(node),
            f"vrrp_script {name} ({conv.at(node.loc)}) is left out: nothing tracks it, so"
            " keepalived never runs it",
        )
        return
    conv.script_seen(node.loc)
    checks.set(name, sd.check, loc=node.loc, comments=node.comments, trailing=node.trailing)


def track_file(conv: Converter, node: Node) -> None:
    name = node.args[0]
    if name in conv.track_files:
        return
    tf = TrackFileDef(name, node.loc)
    conv.track_files[name] = tf
    for child in node.children:
        if child.keyword == "file" and child.args:
            tf.file = child.args[0]
        elif child.keyword == "weight" and child.args:
            with contextlib.suppress(ValueError):
                tf.weight = int(child.args[0])
            tf.reverse = child.args[1:2] == ["reverse"]


def track_file_root(conv: Converter, node: Node, _: Any) -> None:
    if not node.args:
        conv.error(node.loc, f"{node.keyword} needs a name")
        return
    if not conv.need_block(node):
        return
    tf = conv.track_files[node.args[0]]
    if tf.loc != node.loc:
        conv.error(node.loc, f"track_file {tf.name} is defined twice (first at {tf.loc})")
        return
    for child in node.children:
        if child.keyword == "file":
            conv.one(child)
        elif child.keyword == "weight":
            if child.args:
                conv.integer(child, -254, 254, child.args[0])
            if child.args[1:] not in ([], ["reverse"]):
                conv.error(child.loc, f"weight: unexpected {' '.join(child.args[1:])!r}")
        elif child.keyword == "init_file":
            conv.unsupported(child, "halo does not create track files", None)
        else:
            conv.error(child.loc, f"unknown keyword {child.keyword!r} in track_file")
    if tf.file is None:
        conv.error(node.loc, f"track_file {tf.name} has no file")
    if node.keyword == "vrrp_track_file":
        conv.note(node, "deprecated synonym of track_file")
    conv.doc.comment(
        *conv.said(node),
        f"{node.keyword} {tf.name} ({conv.at(node.loc)}): file {tf.file}, weight {tf.weight}"
        f"{' reverse' if tf.reverse else ''} - written on the tracks that use it",
    )


def track_seq(conv: Converter, st: InstanceState | GroupState, node: Node) -> YSeq:
    seq = (
        st.m.child_seq("track", loc=node.loc)
        if isinstance(st, InstanceState)
        else conv.group_map(st).child_seq("track", loc=node.loc)
    )
    seq.comment(*conv.said(node))
    return seq


def weight_words(
    conv: Converter, node: Node, low: int, high: int
) -> tuple[int | None, bool | None, bool]:
    """``[weight W] [reverse|noreverse|no_reverse]`` → (weight, reverse, ok)."""
    words = node.args
    weight: int | None = None
    reverse: bool | None = None
    i = 0
    while i < len(words):
        if words[i] == "weight" and i + 1 < len(words):
            weight = conv.integer(node, low, high, words[i + 1])
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
            conv.error(
                node.loc, f"unexpected {words[i]!r} (expected weight N, reverse or noreverse)"
            )
            return None, None, False
    return weight, reverse, True


def i_track_interface(conv: Converter, node: Node, st: InstanceState | GroupState) -> None:
    if not conv.need_block(node):
        return
    seq = track_seq(conv, st, node)
    for child in node.children:
        if child.has_block:
            conv.error(child.loc, "a tracked interface takes no { } block")
            continue
        if not IFNAME_RE.fullmatch(child.keyword):
            conv.error(child.loc, f"{child.keyword!r} is not an interface name")
            continue
        weight, reverse, ok = weight_words(conv, child, -253, 253)
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
            st.tracks.append(TrackRef("interface", child.keyword, t, item, weight or 0, child.loc))


def i_track_script(conv: Converter, node: Node, st: InstanceState | GroupState) -> None:
    if not conv.need_block(node):
        return
    seq = track_seq(conv, st, node)
    for child in node.children:
        if child.has_block:
            conv.error(child.loc, "a tracked script takes no { } block")
            continue
        name = child.keyword
        weight, reverse, ok = weight_words(conv, child, -253, 253)
        if not ok:
            continue
        if name in conv.track_processes:
            conv.unsupported(
                child,
                "a vrrp_track_process belongs in track_process, not track_script",
                seq,
            )
            continue
        sd = conv.scripts.get(name)
        if sd is None:
            conv.note(child, f"no vrrp_script {name}: left out (keepalived ignores it too)")
            seq.comment(f"no vrrp_script {name} ({conv.at(child.loc)}): left out")
            continue
        if sd.check.is_empty() or not sd.has_script or name not in conv.section_map("checks"):
            conv.unsupported(child, f"vrrp_script {name} could not be converted", seq)
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
                TrackRef("check", name, t, item, sd.weight if weight is None else weight, child.loc)
            )


def i_track_file(conv: Converter, node: Node, st: InstanceState | GroupState) -> None:
    if not conv.need_block(node):
        return
    seq = track_seq(conv, st, node)
    for child in node.children:
        if child.has_block:
            conv.error(child.loc, "a tracked file takes no { } block")
            continue
        name = child.keyword
        weight, reverse, ok = weight_words(conv, child, -254, 254)
        if not ok:
            continue
        tf = conv.track_files.get(name)
        if tf is None:
            conv.note(child, f"no track_file {name}: left out (keepalived ignores it too)")
            seq.comment(f"no track_file {name} ({conv.at(child.loc)}): left out")
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


def adjust_tracks(conv: Converter, st: InstanceState) -> None:
    """keepalived's rule for sync-group members (without sync_group_tracking_weight) and
    address owners: weighted interfaces become unweighted (dropped for an owner),
    weighted scripts are dropped, files of the default weight 1 become weight 0 and
    other weighted files are dropped."""
    group = conv.group_of.get(st.name)
    in_group = group is not None and not conv.groups[group].tracking_weight
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
        conv.reports.append(
            Report("note", t.loc, f"track_{t.kind if t.kind != 'check' else 'script'}", text)
        )
        if drop:
            i = seq.items.index(t.item)
            seq.items[i] = Entry(
                None,
                None,
                comments=[*t.item.comments, f"{text} ({conv.at(t.loc)})"],
                comment_only=True,
            )
        else:
            t.item.comments.append(text)
    if seq.is_empty():
        st.m.remove("track")


# The tracking keywords of vrrp_instance and vrrp_sync_group.
TRACKING: Table = {
    "track_interface": i_track_interface,
    "track_script": i_track_script,
    "track_file": i_track_file,
}
