"""keepalived's strict mode (``vrrp_strict`` in ``global_defs``, ``strict_mode`` in an
instance), written out as the halo settings it amounts to.

keepalived 2.2.7's ``vrrp_complete_instance`` (vrrp.c) does, for a strict instance:

- refuses it without a virtual address, or with unicast peers on a multicast interface;
- resets ``state`` to MASTER exactly when the priority is 255 ("State MASTER must match
  being address owner");
- ignores ``authentication`` ("Strict mode does not support authentication"): adverts
  carry auth type 0, and adverts with another auth type are dropped on receive;
- defaults ``accept`` to false below priority 255 and true at 255, and resets an explicit
  ``accept`` to false for VRRPv2 below 255 (RFC 3768 has no Accept_Mode);
- resets ``preempt_delay``, ``vmac_xmit_base`` and ``down_timer_adverts``;
- sets ``lower_prio_no_advert`` (a MASTER hearing a lower priority only discards it) and
  ``garp_lower_prio_repeat``/``garp_lower_prio_delay`` 0 (no announcements then), and
  clears ``higher_prio_send_advert`` (halo never sends one then anyway).

``vrrp_check_packet`` has no check of its own in strict mode: with the settings above,
halo receives as keepalived does (it drops adverts whose auth type is not its own).  The
no-accept firewall is halo's ``inet halo_no_accept`` table (vip backend).

Each change is a ``note:`` line of the report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from halo_tool_convert.emit import YSeq
from halo_tool_convert.lexer import Loc
from halo_tool_convert.parser import Node
from halo_tool_convert.state import InstanceState
from halo_tool_convert.values import Report

if TYPE_CHECKING:
    from halo_tool_convert.mapping import Converter


def strict_source(conv: Converter, st: InstanceState) -> tuple[Loc, str] | None:
    """Where strict mode is turned on for ``st`` (its strict_mode, else vrrp_strict), or
    None when it is off."""
    if st.strict is not None:
        return (st.strict_loc or st.loc, "strict_mode") if st.strict else None
    if conv.vrrp_strict is not None:
        return conv.vrrp_strict, "vrrp_strict"
    return None


def apply_strict(conv: Converter, st: InstanceState, node: Node, version: int) -> bool:
    """Make ``st`` what keepalived's strict mode makes of it; False when keepalived
    refuses the instance (it is then left out)."""
    source = strict_source(conv, st)
    if source is None:
        return True
    st.strict_on = True
    loc, keyword = source
    st.strict_loc = loc
    said = f"strict mode ({keyword}, {conv.at(loc)})"
    m = st.m

    def note(key: str, message: str) -> None:
        e = m.entry(key)
        where = e.loc if e is not None and e.loc is not None else loc
        conv.reports.append(Report("note", where, key, f"{said}: {message}"))

    vips = m.get("virtual_ipaddress")
    if not isinstance(vips, YSeq) or vips.is_empty():
        conv.error(
            node.loc,
            f"vrrp_instance {st.name}: {said} needs a virtual_ipaddress (keepalived refuses"
            " the instance)",
        )
        return False
    if "unicast_peer" in m:
        conv.error(
            node.loc,
            f"vrrp_instance {st.name}: unicast peers are not supported in {said} (keepalived"
            " refuses the instance)",
        )
        return False
    owner = st.priority == 255
    wanted = "MASTER" if owner else "BACKUP"
    if st.state != wanted:
        note("state", f"state must match being the address owner (priority 255): {wanted}")
        st.state = wanted
        m.set("state", wanted, loc=st.loc, trailing=said)
    if "authentication" in m:
        note(
            "authentication",
            "keepalived ignores authentication: left out (adverts carry auth type 0, and"
            " adverts with a password are dropped)",
        )
        e = m.entry("authentication")
        m.remove(
            "authentication",
            why=f"authentication ({conv.at(e.loc if e else st.loc)}) left out: {said}",
        )
    accept = m.get("accept")
    if accept is None:
        note(
            "accept",
            "accept: true (the address owner accepts)"
            if owner
            else "accept: false below priority 255 (packets to the addresses are dropped)",
        )
        m.set("accept", owner, loc=loc, trailing=said)
    elif accept is True and not owner and version == 2:
        note("accept", "accept: false (VRRPv2 has no Accept_Mode; keepalived resets it)")
        m.set("accept", False, trailing=said)
    for key in ("preempt_delay", "vmac_xmit_base"):
        e = m.entry(key)
        if e is not None:
            note(key, f"keepalived resets {key}: left out")
            m.remove(key, why=f"{key} ({conv.at(e.loc)}) left out: {said}")
    if m.get("lower_prio_no_advert") is not True:
        note(
            "lower_prio_no_advert",
            "lower_prio_no_advert: true (a MASTER hearing a lower priority sends no advert)",
        )
        m.set("lower_prio_no_advert", True, loc=loc, trailing=said)
    return True
