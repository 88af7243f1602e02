"""``real_server``: address, port, weight, notify scripts and its checkers (each in its
own module)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from halo_tool_convert import checker, notifiers, virtual_server
from halo_tool_convert.emit import YMap, YSeq
from halo_tool_convert.parser import Node
from halo_tool_convert.state import CheckDefaults, RsCtx, VsState
from halo_tool_convert.values import BFD, NO_LB_OPTION, SNMP, Table, U

if TYPE_CHECKING:
    from halo_tool_convert.mapping import Converter


def real_server(conv: Converter, node: Node, vs: VsState) -> None:
    if not conv.need_block(node):
        return
    if not node.args:
        conv.error(node.loc, "real_server needs an address")
        return
    if conv.address(node, node.args[0]) is None:
        return
    m = YMap()
    m.set("address", node.args[0], loc=node.loc)
    if len(node.args) > 1:
        port = conv.integer(node, 1, 65535, node.args[1])
        if port is None:
            return
        m.set("port", port, loc=node.loc)
    ctx = RsCtx(m, vs, CheckDefaults(), node)
    vs.rs_alerts.append(None)
    ctx.index = len(vs.rs_alerts) - 1
    conv.walk(node, conv.tables["real_server"], ctx, m, f"real_server {' '.join(node.args)}")
    checks = m.get("checks")
    if isinstance(checks, YSeq):
        e = m.entry("checks")
        assert e is not None
        m.entries.remove(e)
        m.entries.append(e)
    vs.m.child_seq("real_servers", loc=node.loc).append(
        m, loc=node.loc, comments=node.comments, trailing=node.trailing
    )


def r_weight(conv: Converter, node: Node, ctx: RsCtx) -> None:
    v = conv.integer(node, 0, 65535)
    if v is not None:
        conv.put(ctx.m, node, "weight", v)


def r_inhibit(conv: Converter, node: Node, ctx: RsCtx) -> None:
    v = conv.flag(node)
    if v is not None:
        conv.put(ctx.m, node, "inhibit_on_failure", v)


def r_notify(conv: Converter, node: Node, ctx: RsCtx) -> None:
    virtual_server.script_setting(conv, node, ctx.m)


def r_lvs_method(conv: Converter, node: Node, ctx: RsCtx) -> None:
    if not conv.plain(node) or not node.args:
        conv.error(node.loc, "lvs_method needs NAT, DR or TUN")
        return
    ctx.vs.rs_methods.append((node.args[0].upper(), node))
    conv.carry(node, ctx.m)


def r_default(conv: Converter, node: Node, ctx: RsCtx) -> None:
    checker.default(conv, node, ctx.defaults)
    conv.carry(node, ctx.m)


TABLE: Table = {
    "weight": r_weight,
    "inhibit_on_failure": r_inhibit,
    "notify_up": r_notify,
    "notify_down": r_notify,
    "lvs_method": r_lvs_method,
    "virtualhost": r_default,
    "connect_timeout": r_default,
    "retry": r_default,
    "delay_before_retry": r_default,
    "warmup": r_default,
    "delay_loop": r_default,
    "smtp_alert": notifiers.r_smtp_alert,
    "TCP_CHECK": checker.missing("tcp"),
    "HTTP_GET": checker.missing("http"),
    "SSL_GET": checker.missing("ssl"),
    "MISC_CHECK": checker.missing("script"),
    "SMTP_CHECK": checker.missing("smtp"),
    "DNS_CHECK": checker.missing("dns"),
    "UDP_CHECK": checker.missing("udp"),
    "PING_CHECK": checker.missing("ping"),
    "FILE_CHECK": checker.missing("file"),
    "BFD_CHECK": BFD,
    "uthreshold": NO_LB_OPTION,
    "lthreshold": NO_LB_OPTION,
    "alpha": U("halo's alpha is per virtual server; set it there"),
    "snmp_name": SNMP,
}
