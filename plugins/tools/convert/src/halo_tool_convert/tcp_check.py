"""``TCP_CHECK`` (to the tcp checker): the connection keywords every checker shares."""

from __future__ import annotations

from halo_tool_convert import checker

SPEC = checker.CheckerSpec("TCP_CHECK", "tcp", checker.COMMON)
