"""keepalived's ``virtual_routes`` and ``virtual_rules`` blocks of a ``vrrp_instance`` and
its top-level ``static_routes`` and ``static_rules`` (to ``global:``), for ``halo convert``
(imported only by the ``halo_convert_keepalived`` hook): each line is read with this
plugin's own parser, so the converter accepts exactly what the daemon will."""

from __future__ import annotations

from typing import Any

from halo_backend_routes.plugin import VirtualRoute, VirtualRule
from halo_tool_convert.api import Converter, InstanceState, Keyword, Node, YSeq, global_section


def lines(conv: Converter, node: Node) -> YSeq:
    """The block's lines, each parsed; a bad one is a warning and left out."""
    parse = VirtualRoute.parse if node.keyword.endswith("_routes") else VirtualRule.parse
    seq = YSeq()
    for child in node.children:
        line = " ".join([child.keyword, *child.args])
        try:
            parsed = parse(line)
        except ValueError as exc:
            conv.error(child.loc, f"{node.keyword}: {line!r}: {exc}")
            continue
        seq.append(str(parsed), loc=child.loc, comments=child.comments, trailing=child.trailing)
    return seq


def i_routes(conv: Converter, node: Node, st: InstanceState) -> None:
    if not conv.need_block(node):
        return
    seq = lines(conv, node)
    if not seq.is_empty():
        conv.put(st, node, node.keyword, seq)


def static(conv: Converter, node: Node, _: Any) -> None:
    """``static_routes`` / ``static_rules``: in place from start to stop, as in keepalived."""
    if not conv.need_block(node):
        return
    seq = lines(conv, node)
    if not seq.is_empty():
        conv.put(global_section(conv, node.loc), node, node.keyword, seq)


def keywords() -> list[Keyword]:
    instance = [
        Keyword("vrrp_instance", kw, i_routes) for kw in ("virtual_routes", "virtual_rules")
    ]
    return [*instance, *(Keyword("top", kw, static) for kw in ("static_routes", "static_rules"))]
