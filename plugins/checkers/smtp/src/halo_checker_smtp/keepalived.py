"""keepalived's ``SMTP_CHECK`` checker block, for ``halo convert`` (imported only by the
``halo_convert_keepalived`` hook). keepalived's old ``host { }`` sub-blocks (several
servers in one check, deprecated since 2.0) are reported as unsupported: write one check
per server."""

from __future__ import annotations

from halo_tool_convert.api import (
    CHECKER_KEYWORDS,
    CheckCtx,
    CheckerSpec,
    Converter,
    Keyword,
    Node,
    U,
    checker,
)


def c_helo(conv: Converter, node: Node, c: CheckCtx) -> None:
    v = conv.one(node)
    if v is not None:
        conv.put(c.m, node, "helo_name", v.strip('"'))


SMTP_CHECK = CheckerSpec(
    "SMTP_CHECK",
    "smtp",
    {
        **CHECKER_KEYWORDS,
        "helo_name": c_helo,
        "host": U("the host { } blocks of old keepalived versions: write one check per server"),
    },
)


def keywords() -> list[Keyword]:
    return [checker(SMTP_CHECK)]
