"""keepalived's ``PING_CHECK`` checker block, for ``halo convert`` (imported only by the
``halo_convert_keepalived`` hook): the connection keywords every keepalived checker has
(a port means nothing to ICMP: keepalived ignores it, and so does the conversion)."""

from __future__ import annotations

from halo_tool_convert.api import CHECKER_KEYWORDS, CheckerSpec, I, Keyword, checker

PING_CHECK = CheckerSpec(
    "PING_CHECK",
    "ping",
    {
        **CHECKER_KEYWORDS,
        "connect_port": I("ICMP has no ports"),
        "bind_port": I("ICMP has no ports"),
    },
)


def keywords() -> list[Keyword]:
    return [checker(PING_CHECK)]
