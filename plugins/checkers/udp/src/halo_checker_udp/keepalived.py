"""keepalived's ``UDP_CHECK`` checker block, for ``halo convert`` (imported only by the
``halo_convert_keepalived`` hook)."""

from __future__ import annotations

import re

from halo_tool_convert.api import (
    CHECKER_KEYWORDS,
    CheckCtx,
    CheckerSpec,
    Converter,
    Keyword,
    Node,
    checker,
)


def c_payload(conv: Converter, node: Node, c: CheckCtx) -> None:
    v = conv.one(node)
    if v is None:
        return
    if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", v):
        conv.error(node.loc, f"{node.keyword}: {v!r} is not hexadecimal octets")
        return
    conv.put(c.m, node, "payload", v.lower())


def c_require_reply(conv: Converter, node: Node, c: CheckCtx) -> None:
    if not node.args:
        conv.put(c.m, node, "require_reply", True)
        return
    v = node.args[0]
    if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", v):
        conv.error(node.loc, f"{node.keyword}: {v!r} is not hexadecimal octets")
        return
    conv.put(c.m, node, "reply", v.lower())


def c_length(conv: Converter, node: Node, c: CheckCtx) -> None:
    v = conv.integer(node, 0, 65535)
    if v is not None:
        conv.put(c.m, node, node.keyword, v)


UDP_CHECK = CheckerSpec(
    "UDP_CHECK",
    "udp",
    {
        **CHECKER_KEYWORDS,
        "payload": c_payload,
        "require_reply": c_require_reply,
        "min_reply_length": c_length,
        "max_reply_length": c_length,
    },
)


def keywords() -> list[Keyword]:
    return [checker(UDP_CHECK)]
