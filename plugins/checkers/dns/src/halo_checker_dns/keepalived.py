"""keepalived's ``DNS_CHECK`` checker block, for ``halo convert`` (imported only by the
``halo_convert_keepalived`` hook)."""

from __future__ import annotations

from halo_checker_dns.plugin import QTYPES
from halo_tool_convert.api import (
    CHECKER_KEYWORDS,
    CheckCtx,
    CheckerSpec,
    Converter,
    Keyword,
    Node,
    checker,
)


def c_type(conv: Converter, node: Node, c: CheckCtx) -> None:
    v = conv.one(node)
    if v is None:
        return
    if v.upper() not in QTYPES:
        conv.error(node.loc, f"type must be one of {', '.join(QTYPES)}, not {v!r}")
        return
    conv.put(c.m, node, "query_type", v.upper())


def c_name(conv: Converter, node: Node, c: CheckCtx) -> None:
    v = conv.one(node)
    if v is not None:
        conv.put(c.m, node, "query_name", v)


DNS_CHECK = CheckerSpec(
    "DNS_CHECK", "dns", {**CHECKER_KEYWORDS, "type": c_type, "name": c_name}, retry=3
)


def keywords() -> list[Keyword]:
    return [checker(DNS_CHECK)]
