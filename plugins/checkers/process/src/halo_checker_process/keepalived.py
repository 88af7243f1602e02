"""keepalived's ``vrrp_track_process`` blocks and the ``track_process`` of instances and sync
groups, for ``halo convert`` (imported only by the ``halo_convert_keepalived`` hook): each
block becomes a ``process`` check of the same name, each tracked one a ``track`` entry
``{check: NAME, weight: W}`` (the weight defaults to the block's, as in keepalived)."""

from __future__ import annotations

import dataclasses
import weakref

from halo_tool_convert.api import (
    Converter,
    GroupState,
    InstanceState,
    Keyword,
    Node,
    TrackRef,
    YMap,
    YSeq,
    track_seq,
    weight_words,
)

# Each conversion's block weights: name -> (weight, reverse).
WEIGHTS: weakref.WeakKeyDictionary[Converter, dict[str, tuple[int, bool]]] = (
    weakref.WeakKeyDictionary()
)


def tracked(conv: Converter) -> set[str]:
    """The names a ``track_process`` of an instance or sync group refers to."""
    names: set[str] = set()
    for node in conv.parsed.nodes:
        if node.keyword in ("vrrp_instance", "vrrp_sync_group"):
            for child in node.children:
                if child.keyword == "track_process":
                    names.update(c.keyword for c in child.children)
    return names


def track_process_block(conv: Converter, node: Node, _: object) -> None:
    if not node.args:
        conv.error(node.loc, "vrrp_track_process needs a name")
        return
    if not conv.need_block(node):
        return
    name = node.args[0]
    m = YMap()
    m.set("type", "process", loc=node.loc)
    weight, reverse = 0, False
    ok = True
    for child in node.children:
        kw = child.keyword
        if kw == "process":
            args = child.quoted_args()
            if not args:
                conv.error(child.loc, "process needs a name")
                ok = False
                continue
            m.set("process", args[0], loc=child.loc, trailing=conv.at(child.loc))
            if len(args) > 1:
                params = YSeq(flow=True)
                for a in args[1:]:
                    params.append(a)
                m.set("arguments", params, loc=child.loc)
        elif kw == "param_match":
            how = child.args[0] if child.args else "exact"
            if how not in ("exact", "initial", "partial"):
                conv.error(child.loc, f"param_match: {how!r} is not initial or partial")
                continue
            m.set("param_match", how, loc=child.loc)
        elif kw == "full_command":
            m.set("full_command", True, loc=child.loc)
        elif kw in ("quorum", "quorum_max"):
            v = conv.integer(child, 1 if kw == "quorum" else 0, 65535)
            if v is not None:
                m.set(kw, v, loc=child.loc)
        elif kw in ("fork_delay", "terminate_delay", "delay"):
            s = conv.number(child, 0.000001, 3600)
            if s is not None:
                for key in ("fork_delay", "terminate_delay") if kw == "delay" else (kw,):
                    m.set(key, s, loc=child.loc)
        elif kw == "weight":
            # the block's "weight W [reverse]" read as a track's words
            words = dataclasses.replace(child, args=["weight", *child.args])
            w, rev, good = weight_words(conv, words, -254, 254)
            if good and w is not None:
                weight, reverse = w, bool(rev)
        else:
            conv.error(child.loc, f"unknown keyword {kw!r} in vrrp_track_process")
    if "process" not in m:
        conv.error(node.loc, f"vrrp_track_process {name} has no process")
        return
    if not ok:
        return
    if weight:
        m.set("weight", weight, loc=node.loc)
    WEIGHTS.setdefault(conv, {})[name] = (weight, reverse)
    checks = conv.section_map("checks")
    if name not in tracked(conv):
        conv.note(node, f"{name} is tracked by no instance or sync group: left out")
        checks.comment(
            *conv.said(node),
            f"vrrp_track_process {name} ({conv.at(node.loc)}) is left out: nothing tracks it",
        )
        return
    checks.set(
        name,
        m,
        loc=node.loc,
        comments=[*node.comments, f"vrrp_track_process {name} ({conv.at(node.loc)})"],
        trailing=node.trailing,
    )


def track_process(conv: Converter, node: Node, st: InstanceState | GroupState) -> None:
    if not conv.need_block(node):
        return
    seq = track_seq(conv, st, node)
    for child in node.children:
        if child.has_block:
            conv.error(child.loc, "a tracked process takes no { } block")
            continue
        name = child.keyword
        weight, reverse, ok = weight_words(conv, child, -254, 254)
        if not ok:
            continue
        if name not in conv.track_processes:
            conv.note(child, f"no vrrp_track_process {name}: left out (keepalived ignores it too)")
            seq.comment(f"no vrrp_track_process {name} ({conv.at(child.loc)}): left out")
            continue
        block_weight, block_reverse = WEIGHTS.get(conv, {}).get(name, (0, False))
        w = block_weight if weight is None else weight
        t = YMap()
        t.set("check", name, loc=child.loc)
        if weight is not None:
            t.set("weight", weight, loc=child.loc)
        if block_reverse if reverse is None else reverse:
            t.set("reverse", True, loc=child.loc)
        item = seq.append(
            t,
            loc=child.loc,
            comments=child.comments,
            trailing=child.trailing or f"track_process {name}",
        )
        if isinstance(st, InstanceState):
            st.tracks.append(TrackRef("check", name, t, item, w, child.loc))


def keywords() -> list[Keyword]:
    return [
        Keyword("top", "vrrp_track_process", track_process_block),
        Keyword("vrrp_instance", "track_process", track_process),
        Keyword("vrrp_sync_group", "track_process", track_process),
    ]
