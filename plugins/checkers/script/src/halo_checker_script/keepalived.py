"""keepalived's ``MISC_CHECK`` checker block and ``vrrp_script`` blocks, for ``halo convert``
(imported only by the ``halo_convert_keepalived`` hook). Which scripts are tracked, and so
written, is the converter's business (``add_script_check``)."""

from __future__ import annotations

from typing import Any

from halo_tool_convert.api import (
    CheckCtx,
    CheckDefaults,
    CheckerSpec,
    Converter,
    I,
    Keyword,
    Node,
    RsCtx,
    ScriptDef,
    Table,
    U,
    YMap,
    add_script_check,
    checker,
    checker_setting,
    script_def,
)


def c_misc_path(conv: Converter, node: Node, c: CheckCtx) -> None:
    cmd, _, _ = conv.command(node, "program")
    if cmd is not None:
        conv.put(c.m, node, "script", cmd)


def c_misc_timeout(conv: Converter, node: Node, c: CheckCtx) -> None:
    v = conv.number(node, 0.001, 86400)
    if v is not None:
        conv.put(c.m, node, "timeout", v)


def c_misc_dynamic(conv: Converter, node: Node, c: CheckCtx) -> None:
    if conv.plain(node):
        conv.put(c.m, node, "misc_dynamic", True)


def c_misc_user(conv: Converter, node: Node, c: CheckCtx) -> None:
    v = conv.user(node)
    if v is not None:
        conv.put(c.m, node, "user", v)


TABLE: Table = {
    "misc_path": c_misc_path,
    "misc_timeout": c_misc_timeout,
    "misc_dynamic": c_misc_dynamic,
    "user": c_misc_user,
    "retry": checker_setting,
    "delay_before_retry": checker_setting,
    "warmup": checker_setting,
    "delay_loop": checker_setting,
    "alpha": U("halo's alpha is per virtual server; set it there"),
    "log_all_failures": I("halo logs every check result at debug level"),
}


def timeout(m: YMap, eff: CheckDefaults, ctx: RsCtx) -> float | None:
    """keepalived: misc_timeout defaults to the virtual server's delay_loop."""
    if "timeout" not in m and "interval" in m:
        vs_loop = ctx.vs.defaults.delay_loop
        return vs_loop if vs_loop is not None else 60
    return None


def finish(conv: Converter, node: Node, c: CheckCtx, eff: CheckDefaults) -> bool:
    if "script" not in c.m:
        conv.error(node.loc, "MISC_CHECK has no misc_path")
        return False
    conv.script_seen(node.loc)
    return True


SPEC = CheckerSpec("MISC_CHECK", "script", TABLE, retry=0, timeout=timeout, finish=finish)


def vrrp_script(conv: Converter, node: Node, _: Any) -> None:
    sd = script_def(conv, node)
    if sd is None:
        return
    sd.check.set("type", "script", loc=node.loc)
    conv.walk(node, VRRP_SCRIPT, sd, sd.check, f"vrrp_script {sd.name}")
    add_script_check(conv, node, sd)


def vs_script(conv: Converter, node: Node, sd: ScriptDef) -> None:
    cmd, _, _ = conv.command(node, "script")
    if cmd is None:
        return
    args = node.quoted_args() or []
    if len(args) > 1:
        conv.note(
            node,
            f"keepalived runs only {args[0]!r} and ignores {' '.join(args[1:])!r}:"
            " quote the command with its arguments",
        )
    sd.has_script = True
    sd.check.set("script", cmd, loc=node.loc, comments=node.comments, trailing=node.trailing)


def vs_interval(conv: Converter, node: Node, sd: ScriptDef) -> None:
    v = conv.integer(node, 0, 86400)  # whole seconds in keepalived
    if v is not None:
        if v == 0:
            conv.note(node, "keepalived reads 0 as 1")
        sd.check.set(
            node.keyword,
            max(v, 1),
            loc=node.loc,
            comments=node.comments,
            trailing=node.trailing,
        )


def vs_weight(conv: Converter, node: Node, sd: ScriptDef) -> None:
    if not conv.plain(node) or not node.args:
        conv.error(node.loc, "weight needs a value")
        return
    w = conv.integer(node, -253, 253, node.args[0])
    if w is None:
        return
    sd.weight = w
    rest = node.args[1:]
    if rest and rest[0] == "reverse":
        sd.reverse = True
    elif rest:
        conv.error(node.loc, f"weight: unexpected {' '.join(rest)!r}")
    sd.check.set("weight", w, loc=node.loc, comments=node.comments, trailing=node.trailing)
    if sd.reverse:
        sd.check.comment("reverse: written on each track of this check")


def vs_rise_fall(conv: Converter, node: Node, sd: ScriptDef) -> None:
    v = conv.integer(node, 1, 1000)
    if v is not None:
        sd.check.set(node.keyword, v, loc=node.loc, comments=node.comments, trailing=node.trailing)


def vs_user(conv: Converter, node: Node, sd: ScriptDef) -> None:
    v = conv.user(node)
    if v is not None:
        sd.check.set("user", v, loc=node.loc, comments=node.comments, trailing=node.trailing)


def vs_init_fail(conv: Converter, node: Node, sd: ScriptDef) -> None:
    if conv.plain(node):
        sd.check.set(
            "init_fail", True, loc=node.loc, comments=node.comments, trailing=node.trailing
        )


VRRP_SCRIPT: Table = {
    "script": vs_script,
    "interval": vs_interval,
    "timeout": vs_interval,
    "weight": vs_weight,
    "rise": vs_rise_fall,
    "fall": vs_rise_fall,
    "user": vs_user,
    "init_fail": vs_init_fail,
}


def keywords() -> list[Keyword]:
    return [checker(SPEC), Keyword("top", "vrrp_script", vrrp_script)]
