"""``virtual_server``: address and port, fwmark or a ``virtual_server_group``, scheduler
and its flags, forwarding method (with TUN's tunnel options), persistence, quorum, sorry
server; the ipvs backend that runs them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from halo_core.config.model import GroupEntry
from halo_tool_convert import checker, real_server
from halo_tool_convert.emit import Entry, YMap, YSeq
from halo_tool_convert.parser import Node
from halo_tool_convert.state import VsState
from halo_tool_convert.values import LB_ALGOS, NO_LB_OPTION, SNMP, Table, U

if TYPE_CHECKING:
    from halo_tool_convert.mapping import Converter


def g_lvs_flush_on_stop(conv: Converter, node: Node, g: YMap) -> None:
    if not conv.plain(node):
        return
    if node.args[:1] not in ([], ["VS"]):
        conv.error(node.loc, f"{node.keyword}: unexpected {' '.join(node.args)!r}")
        return
    conv.ipvs_flush = node
    if node.args:
        conv.note(node, "halo removes its services (VS) and the kernel their real servers")
    g.comment(*conv.said(node), f"{node.line} ({conv.at(node.loc)}): see backends.ipvs")


def group_entries(conv: Converter, node: Node) -> list[str]:
    """A ``virtual_server_group`` block's entries as halo's group strings; a bad one is
    reported and left out, as keepalived does."""
    out: list[str] = []
    for child in node.children:
        words = [child.keyword, *child.args]
        if child.keyword == "fwmark" and len(words) == 3 and words[2] in ("inet", "inet6"):
            conv.note(
                child,
                f"the family ({words[2]}) is taken from the real servers' addresses",
            )
            words = words[:2]
        try:
            entry = GroupEntry.parse(" ".join(words))
        except ValueError as exc:
            conv.error(child.loc, f"virtual_server_group {node.args[0]}: {exc}")
            continue
        out.append(str(entry))
    return out


def virtual_server_group(conv: Converter, node: Node, _: Any) -> None:
    """The group's entries are written where a ``virtual_server group NAME`` uses it."""
    if not conv.need_block(node):
        return
    if not node.args:
        conv.error(node.loc, "virtual_server_group needs a name")
        return
    if node.args[0] not in conv.used_vs_groups:
        conv.note(node, "no virtual_server uses this group: nothing to convert")
        return
    conv.doc.comment(
        *conv.said(node),
        f"virtual_server_group {node.args[0]} ({conv.at(node.loc)}): see its virtual server",
    )


def virtual_server(conv: Converter, node: Node, _: Any) -> None:
    if not conv.need_block(node):
        return
    args = node.args
    m = YMap()
    if not args:
        conv.error(node.loc, "virtual_server needs an address and port, fwmark N or group NAME")
        return
    if args[0] == "group":
        group = conv.vs_groups.get(args[1]) if len(args) > 1 else None
        if group is None:
            conv.error(node.loc, f"virtual_server group: no virtual_server_group {args[1:2]}")
            return
        entries = group_entries(conv, group)
        if not entries:
            conv.error(node.loc, f"virtual_server group {args[1]}: the group has no entry")
            return
        m.set("name", args[1], loc=node.loc)
        seq = m.child_seq("group", loc=group.loc, flow=len(entries) <= 4)
        for entry in entries:
            seq.append(entry)
        label = args[1]
    elif args[0] == "fwmark":
        if len(args) < 2:
            conv.error(node.loc, "virtual_server fwmark needs a number")
            return
        mark = conv.integer(node, 1, 2**32 - 1, args[1])
        if mark is None:
            return
        m.set("fwmark", mark, loc=node.loc)
        label = f"fwmark:{mark}"
    else:
        addr = conv.address(node, args[0])
        if addr is None:
            return
        m.set("address", args[0], loc=node.loc)
        port = 0
        if len(args) > 1:
            p = conv.integer(node, 0, 65535, args[1])
            if p is None:
                return
            port = p
            m.set("port", p, loc=node.loc)
        label = f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"
    vs = VsState(m, node.loc, label)
    conv.walk(node, conv.tables["virtual_server"], vs, m, f"virtual_server {' '.join(args)}")
    if "delay_loop" in m:
        pass
    for method, rs_node in vs.rs_methods:
        if method != vs.lb_kind:
            conv.unsupported(
                rs_node,
                f"a real server's own forwarding method ({method}, the virtual"
                f" server's is {vs.lb_kind}) is not supported",
                None,
            )
    conv.vs_states.append(vs)
    rs = m.get("real_servers")
    if isinstance(rs, YSeq):
        m.entries.remove(m.entry("real_servers"))  # type: ignore[arg-type]
        m.entries.append(Entry("real_servers", rs, node.loc))
    if "ipvs" not in conv.available_names("backend"):
        conv.unsupported(
            node,
            "needs the ipvs backend plugin, which is not installed: the virtual server is"
            " written, but nothing will put it in the kernel",
            None,
        )
    conv.finish("virtual_server", node, vs)
    conv.doc.child_seq("virtual_servers").append(
        m, loc=node.loc, comments=node.comments, trailing=node.trailing
    )


def v_delay_loop(conv: Converter, node: Node, vs: VsState) -> None:
    v = conv.number(node, 0.001, 86400)
    if v is not None:
        vs.defaults.delay_loop = v
        conv.put(vs.m, node, "delay_loop", v)


def v_lb_algo(conv: Converter, node: Node, vs: VsState) -> None:
    v = conv.one(node)
    if v is None:
        return
    if v not in LB_ALGOS:
        conv.unsupported(node, f"scheduler {v!r} is not supported by halo", vs.m)
        return
    if node.keyword == "lb_algo":
        conv.note(node, "deprecated synonym of lvs_sched")
    conv.put(vs.m, node, "lb_algo", v)


def v_lb_kind(conv: Converter, node: Node, vs: VsState) -> None:
    if not conv.plain(node) or not node.args:
        conv.error(node.loc, f"{node.keyword} needs NAT, DR or TUN")
        return
    v = node.args[0].upper()
    if v not in ("NAT", "DR", "TUN"):
        conv.error(node.loc, f"{node.keyword} must be NAT, DR or TUN, not {node.args[0]!r}")
        return
    if len(node.args) > 1 and not tunnel_options(conv, node, vs):
        return
    if node.keyword == "lb_kind":
        conv.note(node, "deprecated synonym of lvs_method")
    vs.lb_kind = v
    conv.put(vs.m, node, "lb_kind", v)


def tunnel_options(conv: Converter, node: Node, vs: VsState) -> bool:
    """``TUN [type {ipip|gue port NUM|gre} [nocsum|csum|remcsum]]``."""
    words = node.args[1:]
    if node.args[0].upper() != "TUN" or words[:1] != ["type"] or len(words) < 2:
        conv.error(node.loc, f"{node.keyword}: unexpected {' '.join(words)!r}")
        return False
    tun_type, rest = words[1], words[2:]
    if tun_type not in ("ipip", "gue", "gre"):
        conv.error(node.loc, f"{node.keyword}: tunnel type must be ipip, gue or gre")
        return False
    port = None
    if tun_type == "gue":
        if rest[:1] != ["port"] or len(rest) < 2:
            conv.error(node.loc, f"{node.keyword}: type gue needs port NUM")
            return False
        port = conv.integer(node, 1, 65535, rest[1])
        if port is None:
            return False
        rest = rest[2:]
    checksum = rest[0] if rest else "nocsum"
    allowed = {"ipip": ("nocsum",), "gre": ("nocsum", "csum")}.get(
        tun_type, ("nocsum", "csum", "remcsum")
    )
    if len(rest) > 1 or checksum not in allowed:
        conv.error(node.loc, f"{node.keyword}: unexpected {' '.join(rest)!r} after {tun_type}")
        return False
    conv.put(vs.m, node, "tun_type", tun_type)
    if port is not None:
        conv.put(vs.m, node, "tun_port", port)
    if checksum != "nocsum":
        conv.put(vs.m, node, "tun_checksum", checksum)
    return True


def v_lb_flag(conv: Converter, node: Node, vs: VsState) -> None:
    """``mh-port``, ``sh-fallback``, ``flag-1``...: scheduler flags."""
    if not conv.plain(node):
        return
    flags = vs.m.get("lb_flags")
    if not isinstance(flags, YSeq):
        flags = vs.m.child_seq("lb_flags", loc=node.loc, flow=True)
    if node.keyword not in flags.values():
        flags.append(node.keyword, loc=node.loc, comments=node.comments, trailing=node.trailing)


def v_persistence_timeout(conv: Converter, node: Node, vs: VsState) -> None:
    if not conv.plain(node):
        return
    v = conv.number(node, 1, 2**31, node.args[0]) if node.args else 360
    if v is not None:
        conv.put(vs.m, node, "persistence_timeout", v)


def v_persistence_granularity(conv: Converter, node: Node, vs: VsState) -> None:
    v = conv.one(node)
    if v is not None and conv.address(node, v) is not None:
        conv.put(vs.m, node, "persistence_granularity", v)


def v_protocol(conv: Converter, node: Node, vs: VsState) -> None:
    v = conv.one(node)
    if v is None:
        return
    if v.upper() not in ("TCP", "UDP", "SCTP"):
        conv.error(node.loc, f"protocol must be TCP, UDP or SCTP, not {v!r}")
        return
    conv.put(vs.m, node, "protocol", v.upper())


def v_int(conv: Converter, node: Node, vs: VsState) -> None:
    v = conv.integer(node, 0 if node.keyword == "hysteresis" else 1, 2**31 - 1)
    if v is not None:
        conv.put(vs.m, node, node.keyword, v)


def v_quorum_cmd(conv: Converter, node: Node, vs: VsState) -> None:
    script_setting(conv, node, vs.m)


def script_setting(conv: Converter, node: Node, m: Any) -> None:
    """A command keyword whose script runs as global.script_user (no per-script user)."""
    cmd, user, _ = conv.command(node, "script")
    if cmd is None:
        return
    if user is not None:
        conv.unsupported(
            node,
            f"a user for this script ({user}) is not supported; global.script_user applies",
            m,
        )
    conv.script_seen(node.loc)
    conv.put(m, node, node.keyword, cmd)


def v_sorry_server(conv: Converter, node: Node, vs: VsState) -> None:
    if not conv.plain(node) or not node.args:
        conv.error(node.loc, "sorry_server needs an address")
        return
    if conv.address(node, node.args[0]) is None:
        return
    text = node.args[0]
    if len(node.args) > 1:
        port = conv.integer(node, 1, 65535, node.args[1])
        if port is None:
            return
        text += f" {port}"
    conv.put(vs.m, node, "sorry_server", text)


def v_bool(conv: Converter, node: Node, vs: VsState) -> None:
    v = conv.flag(node)
    if v is not None:
        conv.put(vs.m, node, node.keyword, v)


def v_default(conv: Converter, node: Node, vs: VsState) -> None:
    checker.default(conv, node, vs.defaults)
    conv.carry(node, vs.m)


def v_smtp_alert(conv: Converter, node: Node, vs: VsState) -> None:
    vs.smtp_alert = conv.flag(node)
    conv.unsupported(
        node, "e-mails on quorum changes are not supported (real server changes are)", vs.m
    )


TABLE: Table = {
    "delay_loop": v_delay_loop,
    "lb_algo": v_lb_algo,
    "lvs_sched": v_lb_algo,
    "lb_kind": v_lb_kind,
    "lvs_method": v_lb_kind,
    "persistence_timeout": v_persistence_timeout,
    "persistence_granularity": v_persistence_granularity,
    "protocol": v_protocol,
    "quorum": v_int,
    "hysteresis": v_int,
    "quorum_up": v_quorum_cmd,
    "quorum_down": v_quorum_cmd,
    "sorry_server": v_sorry_server,
    "sorry_server_inhibit": v_bool,
    "inhibit_on_failure": v_bool,
    "alpha": v_bool,
    "omega": v_bool,
    "virtualhost": v_default,
    "connect_timeout": v_default,
    "retry": v_default,
    "delay_before_retry": v_default,
    "warmup": v_default,
    "real_server": real_server.real_server,
    "smtp_alert": v_smtp_alert,
    "snmp_name": SNMP,
    "ha_suspend": U("halo has no ha_suspend"),
    "ops": NO_LB_OPTION,
    "hashed": NO_LB_OPTION,
    "flag-1": v_lb_flag,
    "flag-2": v_lb_flag,
    "flag-3": v_lb_flag,
    "sh-port": v_lb_flag,
    "sh-fallback": v_lb_flag,
    "mh-port": v_lb_flag,
    "mh-fallback": v_lb_flag,
    "persistence_engine": NO_LB_OPTION,
    "ip_family": NO_LB_OPTION,
    "sorry_server_lvs_method": NO_LB_OPTION,
    "weight": NO_LB_OPTION,
}
