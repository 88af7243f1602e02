"""keepalived's ``MISC_CHECK`` checker block, for ``halo convert`` (imported only by the
``halo_convert_keepalived`` hook)."""

from __future__ import annotations

from halo_tool_convert.api import (
    CheckCtx,
    CheckDefaults,
    CheckerSpec,
    Converter,
    I,
    Keyword,
    Node,
    RsCtx,
    Table,
    U,
    YMap,
    checker,
    checker_setting,
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


def keywords() -> list[Keyword]:
    return [checker(SPEC)]
