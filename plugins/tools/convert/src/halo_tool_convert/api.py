"""What a plugin uses to teach ``halo convert`` its keepalived.conf keywords, through the
``halo_convert_keepalived`` hook (see docs/hooks.md).

A keyword's conversion is a function ``(converter, node, context) -> None``: ``converter``
is the running :class:`Converter` (its value parsers - ``one``, ``integer``, ``number``,
``flag``, ``address``, ``command``, ``user`` - report a bad value as a one-line error at the
keyword's file and line and return None; ``put`` writes a value with the keyword's comments;
``note`` and ``unsupported`` report), ``node`` the keyword with its arguments and block, and
``context`` what the enclosing block is building (for a checker's keywords a
:class:`CheckCtx`, whose ``m`` is the check's YAML mapping).
"""

from __future__ import annotations

from halo_tool_convert.checker import COMMON as CHECKER_KEYWORDS
from halo_tool_convert.checker import CheckerSpec, block
from halo_tool_convert.checker import c_default as checker_setting
from halo_tool_convert.emit import YMap, YSeq
from halo_tool_convert.global_defs import global_section
from halo_tool_convert.mapping import FINISH_BLOCKS, TABLES, Converter
from halo_tool_convert.notifiers import NOTIFY_KEYWORDS, block_map, notify_command
from halo_tool_convert.parser import Node
from halo_tool_convert.state import (
    CheckCtx,
    CheckDefaults,
    Email,
    GroupState,
    InstanceState,
    Notify,
    RsCtx,
    ScriptDef,
    TrackRef,
    VsState,
)
from halo_tool_convert.values import Finish, Handler, I, Keyword, Report, Skip, Table, U
from halo_tool_convert.vrrp_instance import virtual_address
from halo_tool_convert.vrrp_script import add_check as add_script_check
from halo_tool_convert.vrrp_script import script_def, track_seq, weight_words

__all__ = [
    "BLOCKS",
    "CHECKER_KEYWORDS",
    "FINISH_BLOCKS",
    "NOTIFY_KEYWORDS",
    "CheckCtx",
    "CheckDefaults",
    "CheckerSpec",
    "Converter",
    "Email",
    "Finish",
    "GroupState",
    "Handler",
    "I",
    "InstanceState",
    "Keyword",
    "Node",
    "Notify",
    "Report",
    "RsCtx",
    "ScriptDef",
    "Skip",
    "Table",
    "TrackRef",
    "U",
    "VsState",
    "YMap",
    "YSeq",
    "add_script_check",
    "block_map",
    "checker",
    "checker_setting",
    "global_section",
    "notify_command",
    "script_def",
    "track_seq",
    "virtual_address",
    "weight_words",
]

# The blocks a plugin can add keywords to.
BLOCKS = tuple(TABLES)


def checker(spec: CheckerSpec) -> Keyword:
    """The ``real_server`` keyword for the checker block ``spec`` describes."""
    return Keyword("real_server", spec.keyword, block(spec))
