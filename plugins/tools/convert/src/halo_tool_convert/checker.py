"""What every checker block shares: the frame that applies keepalived's defaults, and
the connection keywords (connect_ip, connect_port, bindto, timeouts, retries)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from halo_tool_convert.emit import YMap
from halo_tool_convert.parser import Node
from halo_tool_convert.state import CheckCtx, CheckDefaults, RsCtx
from halo_tool_convert.values import Handler, I, Table, U

if TYPE_CHECKING:
    from halo_tool_convert.mapping import Converter


def default(conv: Converter, node: Node, d: CheckDefaults) -> None:
    kw = "retry" if node.keyword == "nb_get_retry" else node.keyword
    if kw == "virtualhost":
        d.virtualhost = conv.one(node)
    elif kw == "retry":
        d.retry = conv.integer(node, 0, 100)
    else:
        setattr(d, kw, conv.number(node, 0, 86400))


def connect_timeout(m: YMap, eff: CheckDefaults, ctx: RsCtx) -> float | None:
    """keepalived's connect_timeout, 5 s unless given, is the check's timeout."""
    return eff.connect_timeout if eff.connect_timeout is not None else 5


@dataclass(frozen=True)
class CheckerSpec:
    """How one keepalived checker block (``TCP_CHECK``, ``HTTP_GET``...) becomes a halo
    check: the checker type, the table of its keywords, and keepalived's defaults where
    they differ from halo's."""

    keyword: str
    halo_type: str
    table: Table
    retry: int = 1  # keepalived's retry when none is given
    delay_before_retry: float | None = None  # keepalived's, when it is not halo's 1 s
    # the timeout to write, from the check so far, the effective defaults and the real server
    timeout: Callable[[YMap, CheckDefaults, RsCtx], float | None] = connect_timeout
    # the last word on the check; False leaves it out (after reporting why)
    finish: Callable[[Converter, Node, CheckCtx, CheckDefaults], bool] | None = None
    # the checks the block becomes when it is more than one (SMTP_CHECK's host blocks,
    # each a checker of its own in keepalived), from the check converted so far
    variants: Callable[[Converter, Node, CheckCtx], list[YMap]] | None = None


def block(spec: CheckerSpec) -> Handler:
    """The ``real_server`` keyword handler for the checker block ``spec`` describes."""

    def convert(conv: Converter, node: Node, ctx: RsCtx) -> None:
        check(conv, node, ctx, spec)

    return convert


def missing(halo_type: str) -> Handler:
    """The ``real_server`` keyword handler for a checker block whose plugin (the one that
    provides ``halo_type`` and converts the block) is not installed."""

    def convert(conv: Converter, node: Node, ctx: RsCtx) -> None:
        if conv.need_block(node):
            conv.unsupported(
                node, f"needs the {halo_type} checker plugin, which is not installed", ctx.m
            )

    return convert


def check(conv: Converter, node: Node, ctx: RsCtx, spec: CheckerSpec) -> None:
    if not conv.need_block(node):
        return
    kind, halo_type = node.keyword, spec.halo_type
    if halo_type not in conv.available_names("checker"):
        conv.unsupported(
            node, f"needs the {halo_type} checker plugin, which is not installed", ctx.m
        )
        return
    m = YMap()
    m.set("type", halo_type, loc=node.loc)
    defaults = ctx.defaults.over(ctx.vs.defaults)
    c = CheckCtx(m, kind, defaults)
    conv.walk(node, spec.table, c, m, kind)
    eff = c.own.over(defaults)
    # keepalived's defaults, where halo's differ
    if eff.delay_loop is not None and (
        c.own.delay_loop is not None or ctx.defaults.delay_loop is not None
    ):
        m.set("interval", eff.delay_loop)
    timeout = spec.timeout(m, eff, ctx)
    if timeout is not None:
        m.set("timeout", timeout)
    retry = eff.retry if eff.retry is not None else spec.retry
    if retry:
        m.set("retry", retry)
    dbr = eff.delay_before_retry
    if dbr is None:
        dbr = spec.delay_before_retry
    if dbr is not None and dbr != 1:
        m.set("delay_before_retry", dbr)
    if eff.warmup is not None and eff.warmup:
        m.set("warmup", eff.warmup)
    if spec.finish is not None and not spec.finish(conv, node, c, eff):
        return
    checks = ctx.m.child_seq("checks", loc=node.loc)
    for each in spec.variants(conv, node, c) if spec.variants is not None else [m]:
        checks.append(each, loc=node.loc, comments=node.comments, trailing=node.trailing)


def c_address(conv: Converter, node: Node, c: CheckCtx) -> None:
    v = conv.one(node)
    if v is not None and conv.address(node, v) is not None:
        key = "bind_to" if node.keyword == "bindto" else "connect_ip"
        conv.put(c.m, node, key, v)


def c_port(conv: Converter, node: Node, c: CheckCtx) -> None:
    v = conv.integer(node, 1, 65535)
    if v is None:
        return
    if node.keyword == "bind_port" and c.kind != "TCP_CHECK":
        conv.unsupported(node, "halo's HTTP checks cannot choose their source port", c.m)
        return
    conv.put(c.m, node, node.keyword, v)


def c_default(conv: Converter, node: Node, c: CheckCtx) -> None:
    if node.keyword == "nb_get_retry":
        if c.kind in ("HTTP_GET", "SSL_GET"):
            conv.note(node, "deprecated synonym of retry")
        else:
            conv.note(
                node,
                f"keepalived 2.2.7 does not know nb_get_retry in {c.kind} (older"
                " versions did): read as retry",
            )
    default(conv, node, c.own)
    conv.carry(node, c.m)


COMMON: Table = {
    "connect_ip": c_address,
    "bindto": c_address,
    "connect_port": c_port,
    "bind_port": c_port,
    "connect_timeout": c_default,
    "retry": c_default,
    "nb_get_retry": c_default,
    "delay_before_retry": c_default,
    "warmup": c_default,
    "delay_loop": c_default,
    "bind_if": U("halo's checkers cannot bind to an interface"),
    "fwmark": U("halo's checkers cannot mark their packets"),
    "alpha": U("halo's alpha is per virtual server; set it there"),
    "log_all_failures": I("halo logs every check result at debug level"),
}
