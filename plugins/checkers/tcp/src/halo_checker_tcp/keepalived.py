"""keepalived's ``TCP_CHECK`` checker block, for ``halo convert`` (imported only by the
``halo_convert_keepalived`` hook): the connection keywords every keepalived checker has."""

from __future__ import annotations

from halo_tool_convert.api import CHECKER_KEYWORDS, CheckerSpec, Keyword, checker

TCP_CHECK = CheckerSpec("TCP_CHECK", "tcp", CHECKER_KEYWORDS)


def keywords() -> list[Keyword]:
    return [checker(TCP_CHECK)]
