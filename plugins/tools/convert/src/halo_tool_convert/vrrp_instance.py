"""``vrrp_instance``: state, interface, VRID, priority, advert_int, version, preemption,
authentication, addresses, unicast peers; then keepalived's rules applied to the whole
instance (address families, version, advert_int rounding, nopreempt with MASTER)."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import TYPE_CHECKING, Any

from halo_tool_convert import notifiers, strict, vrrp_script
from halo_tool_convert.emit import Entry, YMap, YSeq
from halo_tool_convert.parser import Node
from halo_tool_convert.state import InstanceState
from halo_tool_convert.values import (
    BFD,
    BUFFERS,
    IFNAME_RE,
    IPVS_GLOBAL,
    LINKBEAT,
    NAME_RE,
    NOTIFY_OTHER,
    PROCESS,
    ROUTES,
    SCOPES,
    VMAC,
    VRRP_EXT,
    I,
    Report,
    Table,
    U,
)

if TYPE_CHECKING:
    from halo_tool_convert.mapping import Converter


def vrrp_instance(conv: Converter, node: Node, _: Any) -> None:
    if not node.args:
        conv.error(node.loc, "vrrp_instance needs a name")
        return
    name = node.args[0]
    if not conv.need_block(node):
        return
    if name in conv.instances:
        conv.error(
            node.loc,
            f"vrrp_instance {name} is defined twice (first at {conv.instances[name].loc})",
        )
        return
    if not NAME_RE.fullmatch(name):
        conv.error(
            node.loc,
            f"vrrp_instance name {name!r}: halo names are letters, digits and _ . : @ -",
        )
        return
    m = YMap()
    st = InstanceState(name, node.loc, m)
    conv.instances[name] = st
    conv.walk(node, conv.tables["vrrp_instance"], st, m, f"vrrp_instance {name}")
    if not finish_instance(conv, st, node):
        conv.doc.comment(*conv.said(node), f"vrrp_instance {name} ({conv.at(node.loc)}) left out")
        return
    conv.section_map("vrrp_instances").set(
        name, m, loc=node.loc, comments=node.comments, trailing=node.trailing
    )
    conv.finish("vrrp_instance", node, st)


def i_state(conv: Converter, node: Node, st: InstanceState) -> None:
    v = conv.one(node)
    if v is None:
        return
    if v.upper() not in ("MASTER", "BACKUP"):
        conv.error(node.loc, f"state must be MASTER or BACKUP, not {v!r}")
        return
    st.state = v.upper()
    conv.put(st, node, "state", st.state)


def i_interface(conv: Converter, node: Node, st: InstanceState) -> None:
    v = conv.one(node)
    if v is None:
        return
    if not IFNAME_RE.fullmatch(v):
        conv.error(node.loc, f"interface {v!r} is not an interface name")
        return
    conv.put(st, node, "interface", v)


def i_vrid(conv: Converter, node: Node, st: InstanceState) -> None:
    v = conv.integer(node, 1, 255)
    if v is not None:
        conv.put(st, node, "virtual_router_id", v)


def i_priority(conv: Converter, node: Node, st: InstanceState) -> None:
    v = conv.integer(node, 1, 255)
    if v is not None:
        st.priority = v
        conv.put(st, node, "priority", v)


def i_advert_int(conv: Converter, node: Node, st: InstanceState) -> None:
    v = conv.number(node, 0.001, 255)
    if v is not None:
        st.advert_int = v
        conv.put(st, node, "advert_int", v)


def i_version(conv: Converter, node: Node, st: InstanceState) -> None:
    v = conv.integer(node, 2, 3)
    if v is not None:
        st.version = v
        conv.put(st, node, "version", v)


def i_nopreempt(conv: Converter, node: Node, st: InstanceState) -> None:
    if conv.plain(node):
        conv.put(st, node, "nopreempt", True)


def i_preempt(conv: Converter, node: Node, st: InstanceState) -> None:
    if conv.plain(node):
        if st.m.remove("nopreempt", why=f"nopreempt turned off by preempt ({conv.at(node.loc)})"):
            conv.note(node, "turns the earlier nopreempt off (as in keepalived)")
        conv.carry(node, st.m)


def i_preempt_delay(conv: Converter, node: Node, st: InstanceState) -> None:
    v = conv.number(node, 0, 1000)
    if v is not None:
        conv.put(st, node, "preempt_delay", v)


def i_authentication(conv: Converter, node: Node, st: InstanceState) -> None:
    if not conv.need_block(node):
        return
    auth_type, auth_pass = "PASS", None
    said: dict[str, Node] = {}
    for child in node.children:
        said[child.keyword] = child
        if child.keyword == "auth_type":
            auth_type = (conv.one(child) or "PASS").upper()
            if auth_type not in ("PASS", "AH"):
                conv.error(child.loc, f"auth_type must be PASS or AH, not {auth_type!r}")
        elif child.keyword == "auth_pass":
            auth_pass = conv.one(child, extra_ok=True)
            if auth_pass is not None and len(auth_pass) > 8:
                conv.note(child, "keepalived uses only the first 8 characters")
                auth_pass = auth_pass[:8]
        else:
            conv.error(child.loc, f"unknown keyword {child.keyword!r} in authentication")
    if auth_type == "AH":
        conv.unsupported(
            node,
            "IPsec AH authentication is not supported by halo (RFC 3768 removed it): a halo"
            " node and a keepalived node with AH will not accept each other's adverts and"
            " both become master; use auth_type PASS, or none, on every node",
            st.m,
        )
        return
    if auth_pass is None:
        conv.error(node.loc, "authentication needs an auth_pass")
        return
    a = YMap()
    for key, value in (("auth_type", "PASS"), ("auth_pass", auth_pass)):
        src = said.get(key)
        if src is None:
            a.set(key, value, loc=node.loc)
        else:
            a.set(key, value, loc=src.loc, comments=src.comments, trailing=src.trailing)
    if node.end_comments:
        a.comment(*node.end_comments)
    conv.put(st, node, "authentication", a)


def i_vips(conv: Converter, node: Node, st: InstanceState) -> None:
    if not conv.need_block(node):
        return
    seq = st.m.child_seq(node.keyword, loc=node.loc)
    e = st.m.entry(node.keyword)
    if e is not None:
        e.comments += node.comments
        e.trailing = e.trailing or node.trailing
    for child in node.children:
        vip = virtual_address(conv, child)
        if vip is not None:
            seq.append(vip, loc=child.loc, comments=child.comments, trailing=child.trailing)
            if node.keyword == "virtual_ipaddress":
                st.vip_locs.append(child.loc)
    if node.end_comments:
        seq.comment(*node.end_comments)


def virtual_address(conv: Converter, node: Node) -> str | None:
    words = [node.keyword, *node.args]
    try:
        addr = ipaddress.ip_interface(words[0])
    except ValueError:
        conv.error(node.loc, f"bad address {words[0]!r}")
        return None
    if node.has_block:
        conv.error(node.loc, "an address takes no { } block")
        return None
    parts = [words[0]]
    i = 1
    dropped: list[str] = []
    while i < len(words):
        w = words[i]
        val = words[i + 1] if i + 1 < len(words) else None
        if w in (
            "dev",
            "label",
            "scope",
            "brd",
            "broadcast",
            "peer",
            "preferred_lft",
            "track_group",
        ):
            if val is None:
                conv.error(node.loc, f"{w} needs a value")
                return None
            if w == "scope" and val not in SCOPES:
                conv.error(node.loc, f"scope must be one of {', '.join(sorted(SCOPES))}")
                return None
            if w == "dev" and not IFNAME_RE.fullmatch(val):
                conv.error(node.loc, f"dev {val!r} is not an interface name")
                return None
            if w in ("brd", "broadcast"):
                if addr.version != 4:
                    conv.error(node.loc, "brd applies to IPv4 addresses only")
                    return None
                if val in ("+", "-"):
                    dropped.append(f"{w} {val}")
                elif conv.address(node, val) is not None:
                    parts += ["brd", val]
            elif w in ("dev", "label", "scope"):
                parts += [w, val]
            else:
                dropped.append(f"{w} {val}")
            i += 2
        elif w in (
            "home",
            "-nodad",
            "nodad",
            "mngtmpaddr",
            "noprefixroute",
            "autojoin",
            "no_track",
            "use_vmac",
        ):
            dropped.append(w)
            i += 1
        else:
            conv.error(node.loc, f"unknown option {w!r} of virtual address {words[0]}")
            return None
    for d in dropped:
        conv.reports.append(
            Report(
                "unsupported",
                node.loc,
                d.split()[0],
                f"address option {d!r} of {words[0]} is not supported by halo"
                " (the address is kept without it)",
            )
        )
    return " ".join(parts)


def unicast_address(conv: Converter, node: Node, text: str, what: str) -> str | None:
    """A unicast address as keepalived reads it: a ``/prefix`` is dropped, with a note."""
    if "/" in text:
        text, _, prefix = text.partition("/")
        if conv.address(node, text, what) is None:
            return None
        conv.note(node, f"the /{prefix} is dropped (keepalived ignores it too)")
        return text
    return text if conv.address(node, text, what) is not None else None


def i_src_ip(conv: Converter, node: Node, st: InstanceState) -> None:
    v = conv.one(node)
    if v is not None:
        v = unicast_address(conv, node, v, node.keyword)
    if v is not None:
        conv.put(st, node, "unicast_src_ip", v)


def i_unicast_peer(conv: Converter, node: Node, st: InstanceState) -> None:
    if not conv.need_block(node):
        return
    seq = st.m.child_seq("unicast_peer", loc=node.loc)
    e = st.m.entry("unicast_peer")
    if e is not None:
        e.comments += node.comments
    for child in node.children:
        peer = unicast_address(conv, child, child.keyword, "unicast_peer")
        if peer is None:
            continue
        if child.args:
            conv.unsupported(
                child,
                f"peer options {' '.join(child.args)!r} (TTL checks) are not supported",
                seq,
            )
        seq.append(peer, loc=child.loc, comments=child.comments, trailing=child.trailing)


def i_garp_master_delay(conv: Converter, node: Node, st: InstanceState) -> None:
    v = conv.number(node, 0, 3600)
    if v is not None:
        conv.put(st, node, "garp_master_delay", v)


def i_accept(conv: Converter, node: Node, st: InstanceState) -> None:
    if conv.plain(node):
        conv.put(st, node, "accept", node.keyword == "accept")


def i_flag(conv: Converter, node: Node, st: InstanceState) -> None:
    """A keyword of keepalived's that is a flag, under the same name in halo."""
    if conv.plain(node):
        conv.put(st, node, node.keyword, True)


def i_use_vmac(conv: Converter, node: Node, st: InstanceState) -> None:
    """``use_vmac [NAME] [MAC]``: the name is kept; halo always uses RFC 5798's MAC."""
    if not conv.plain(node):
        return
    args = list(node.args)
    if args and re.fullmatch(r"[0-9A-Fa-f]{1,2}(:[0-9A-Fa-f]{1,2}){4,5}", args[-1]):
        conv.unsupported(node, f"a MAC of one's own ({args.pop()}): halo uses 00:00:5e:00:01:VRID")
    if len(args) > 1:
        conv.note(node, f"extra words ignored: {' '.join(args[1:])}")
    if args and not IFNAME_RE.fullmatch(args[0]):
        conv.error(node.loc, f"use_vmac {args[0]!r} is not an interface name")
        return
    conv.put(st, node, "use_vmac", args[0] if args else True)


def i_unicast_ttl(conv: Converter, node: Node, st: InstanceState) -> None:
    v = conv.integer(node, 1, 255)
    if v is not None:
        conv.put(st, node, "unicast_ttl", v)


def i_strict_mode(conv: Converter, node: Node, st: InstanceState) -> None:
    """keepalived's strict mode for this instance: applied by :func:`strict.apply_strict`
    once the instance is read, as the settings it amounts to."""
    v = conv.flag(node)
    if v is not None:
        st.strict, st.strict_loc = v, node.loc
        conv.carry(node, st.m)
        if v:
            st.m.comment(
                f"{node.line} ({conv.at(node.loc)}): written out as the settings marked"
                " 'strict mode'"
            )


def i_lower_prio_no_advert(conv: Converter, node: Node, st: InstanceState) -> None:
    v = conv.flag(node)
    if v is not None:
        conv.put(st, node, "lower_prio_no_advert", v)


def i_native_ipv6(conv: Converter, node: Node, st: InstanceState) -> None:
    if conv.plain(node):
        conv.note(node, "deprecated in keepalived: the addresses decide the family")
        conv.carry(node, st.m)


def _drop_repeated_addresses(conv: Converter, st: InstanceState) -> None:
    """An address listed again (keepalived's own sample keepalived.conf.vrrp repeats one
    with a label): keepalived configures it once, as first written, and still runs the
    instance; halo leaves the repeat out instead of refusing the instance.

    keepalived's adverts list every entry of virtual_ipaddress, the repeat too, and
    keepalived 2.2.7 drops an advert whose address count differs from its own ("received an
    unexpected ip number count 3, expected 4!", measured): a keepalived node on the same
    file and a halo node would both be master, so the warning says so."""
    seen: set[object] = set()
    for key in ("virtual_ipaddress", "virtual_ipaddress_excluded"):
        seq = st.m.get(key)
        if not isinstance(seq, YSeq):
            continue
        for e in list(seq.entries()):
            ip = ipaddress.ip_interface(str(e.value).split()[0]).ip
            if ip in seen:
                why = "keepalived configures it once, as first listed"
                if key == "virtual_ipaddress":
                    why += (
                        ", but repeats it in its adverts and drops adverts that list it once:"
                        " a keepalived peer on this file and halo would both be master, so"
                        " list it once there too"
                    )
                _leave_out(
                    conv, st, seq, e, f"{key} {e.value}: {ip} is listed twice; left out ({why})"
                )
            seen.add(ip)


def _leave_out(conv: Converter, st: InstanceState, seq: YSeq, e: Entry, warning: str) -> None:
    """Remove the address entry *e* and say why."""
    seq.items.remove(e)
    conv.reports.append(Report("warning", e.loc or st.loc, "", warning))


def finish_instance(conv: Converter, st: InstanceState, node: Node) -> bool:
    """Apply keepalived's rules to a read instance; False when keepalived would not run it
    (then it is left out)."""
    m, name = st.m, st.name
    if "virtual_router_id" not in m:
        conv.error(node.loc, f"vrrp_instance {name} has no virtual_router_id")
        return False
    if "interface" not in m and "unicast_src_ip" not in m and conv.default_interface:
        conv.note(node, f"no interface: global_defs default_interface ({conv.default_interface})")
    elif "interface" not in m:
        if "unicast_src_ip" not in m:
            conv.error(
                node.loc,
                f"vrrp_instance {name} has no interface (keepalived 2.2.7 stops on it too:"
                " 'Unknown interface!')",
            )
            return False
        conv.note(node, "no interface: halo uses the one that holds unicast_src_ip")
    vips = m.get("virtual_ipaddress")
    family = 4
    if isinstance(vips, YSeq) and not vips.is_empty():
        # keepalived >= 1.3.1: the first address sets the family; others are ignored
        first = vips.entries()[0]
        family = ipaddress.ip_interface(str(first.value).split()[0]).version
        for e in list(vips.entries()):
            if ipaddress.ip_interface(str(e.value).split()[0]).version != family:
                _leave_out(
                    conv,
                    st,
                    vips,
                    e,
                    f"virtual_ipaddress {e.value}: not the instance's address family;"
                    " ignored (as keepalived >= 1.3.1 ignores it)",
                )
        _drop_repeated_addresses(conv, st)
    else:
        if vips is not None:
            m.remove("virtual_ipaddress")
        conv.note(
            node,
            "no virtual_ipaddress: VRRP elects the master and the notify scripts act (the"
            " cloud pattern); keepalived 2.2.7 runs this in VRRPv2 only",
        )
        peer = m.get("unicast_src_ip")
        if isinstance(peer, str) and ":" in peer:
            family = 6
    # version: the instance's, else global_defs vrrp_version, else 2; IPv6 means 3
    version = st.version or conv.default_version or 2
    if family == 6 and version == 2:
        if st.version == 2 or conv.default_version == 2:
            conv.reports.append(
                Report(
                    "note",
                    st.loc,
                    "version",
                    "keepalived runs IPv6 instances with VRRP version 3",
                )
            )
        version = 3
    if version != (st.version or 2):
        if "version" in m:
            m.set("version", version)
        else:
            origin = (
                "IPv6 needs VRRP version 3"
                if family == 6
                else f"global_defs vrrp_version ({conv.at(conv.default_version_loc)})"
            )
            m.set("version", version, loc=st.loc, trailing=origin)
    # advert_int as keepalived rounds it
    adv = st.advert_int
    if adv is not None:
        fixed: float = adv
        # keepalived rounds half up: to whole seconds (v2) or centiseconds (v3)
        if version == 2:
            fixed = float(min(max(math.floor(adv + 0.5), 1), 255))
        else:
            fixed = min(max(math.floor(adv * 100 + 0.5) / 100, 0.01), 40.95)
        if fixed != adv:
            e2 = m.entry("advert_int")
            conv.reports.append(
                Report(
                    "note",
                    e2.loc if e2 and e2.loc else st.loc,
                    "advert_int",
                    f"keepalived rounds {adv:g} to {fixed:g} for VRRPv{version}",
                )
            )
            m.set("advert_int", int(fixed) if fixed == int(fixed) else fixed)
    if "priority" not in m and st.state == "MASTER":
        # keepalived's vrrp_complete_instance: no priority and state MASTER is the owner
        st.priority = 255
        m.set("priority", 255, loc=st.loc, trailing="keepalived: state MASTER, no priority")
        conv.reports.append(
            Report(
                "note",
                st.loc,
                "priority",
                "no priority with state MASTER: keepalived makes the instance the address"
                " owner (priority 255)",
            )
        )
    if not strict.apply_strict(conv, st, node, version):
        return False
    if conv.lower_prio_no_advert is not None and "lower_prio_no_advert" not in m:
        m.set(
            "lower_prio_no_advert",
            True,
            loc=st.loc,
            trailing="global_defs vrrp_lower_prio_no_advert"
            f" ({conv.at(conv.lower_prio_no_advert)})",
        )
    if version == 3 and "authentication" in m:
        e3 = m.entry("authentication")
        where = conv.at(e3.loc if e3 else st.loc)
        m.remove(
            "authentication",
            why=f"authentication ({where}) left out: VRRPv3 has none (keepalived ignores it)",
        )
        conv.reports.append(
            Report(
                "note",
                e3.loc if e3 and e3.loc else st.loc,
                "authentication",
                "VRRPv3 has no authentication: left out (keepalived ignores it)",
            )
        )
    # keepalived clears nopreempt and preempt_delay with state MASTER, and nopreempt
    # for the address owner
    for key in ("nopreempt", "preempt_delay"):
        e4 = m.entry(key)
        if e4 is None:
            continue
        why: str | None = None
        if st.state == "MASTER":
            why = "keepalived ignores it with state MASTER"
        elif key == "nopreempt" and st.priority == 255:
            why = "keepalived ignores it with priority 255 (the address owner always preempts)"
        if why:
            m.remove(key, why=f"{key} ({conv.at(e4.loc)}) left out: {why}")
            conv.reports.append(
                Report(
                    "note",
                    e4.loc or st.loc,
                    key,
                    f"{why}: left out (use state BACKUP to keep it)"
                    if st.state == "MASTER"
                    else f"{why}: left out",
                )
            )
    vrrp_script.adjust_tracks(conv, st)
    return True


TABLE: Table = {
    "state": i_state,
    "interface": i_interface,
    "virtual_router_id": i_vrid,
    "priority": i_priority,
    "advert_int": i_advert_int,
    "version": i_version,
    "nopreempt": i_nopreempt,
    "preempt": i_preempt,
    "preempt_delay": i_preempt_delay,
    "authentication": i_authentication,
    "virtual_ipaddress": i_vips,
    "virtual_ipaddress_excluded": i_vips,
    "unicast_src_ip": i_src_ip,
    "mcast_src_ip": i_src_ip,
    "unicast_peer": i_unicast_peer,
    **vrrp_script.TRACKING,
    **notifiers.NOTIFY,
    "smtp_alert": notifiers.i_smtp_alert,
    "garp_master_delay": i_garp_master_delay,
    "accept": i_accept,
    "no_accept": i_accept,
    "strict_mode": i_strict_mode,
    "native_ipv6": i_native_ipv6,
    "track_process": PROCESS,
    "track_bfd": BFD,
    "use_vmac": i_use_vmac,
    "use_vmac_addr": VMAC,
    "vmac_xmit_base": i_flag,
    "use_ipvlan": VMAC,
    "garp_extra_if": VMAC,
    "vmac_garp_intvl": VMAC,
    "vrf": U("halo has no VRF support"),
    "dont_track_primary": i_flag,
    "track_src_ip": VRRP_EXT,
    "mcast_dst_ip": U("halo sends VRRP to the standard multicast group only"),
    "unicast_fault_no_peer": VRRP_EXT,
    "check_unicast_src": i_flag,
    "unicast_ttl": i_unicast_ttl,
    "old_unicast_checksum": VRRP_EXT,
    "lower_prio_no_advert": i_lower_prio_no_advert,
    "higher_prio_send_advert": VRRP_EXT,
    "down_timer_adverts": VRRP_EXT,
    "virtual_routes": ROUTES,
    "virtual_rules": ROUTES,
    # converted by the vip backend plugin, which has these settings
    **dict.fromkeys(
        (
            "garp_master_repeat",
            "garp_master_refresh",
            "garp_master_refresh_repeat",
            "garp_lower_prio_delay",
            "garp_lower_prio_repeat",
        ),
        U("needs the vip backend plugin, which is not installed"),
    ),
    "promote_secondaries": I("halo's vip backend sets promote_secondaries by default"),
    "notify_deleted": NOTIFY_OTHER,
    "notify_master_rx_lower_pri": NOTIFY_OTHER,
    "notify_priority_changes": NOTIFY_OTHER,
    "skip_check_adv_addr": I(
        "a speed-up of keepalived's advert address check; halo's check is the same for every advert"
    ),
    "debug": I("halo's log level is global.log_level"),
    "kernel_rx_buf_size": BUFFERS,
    "linkbeat_use_polling": LINKBEAT,
    "lvs_sync_daemon_interface": IPVS_GLOBAL,
}
