"""keepalived's global gratuitous ARP settings (``vrrp_garp_*``, ``vrrp_gna_interval``,
``vrrp_min_garp`` in ``global_defs``), for ``halo convert`` (imported only by the
``halo_convert_keepalived`` hook): they become the vip backend's settings; the same
settings in a ``vrrp_instance`` become that instance's own. keepalived's top-level
``static_ipaddress`` block becomes ``global.static_ipaddress``."""

from __future__ import annotations

from typing import Any

from halo_tool_convert.api import (
    Converter,
    Finish,
    InstanceState,
    Keyword,
    Node,
    Report,
    YMap,
    YSeq,
    global_section,
    virtual_address,
)

GARP_KEYWORDS = (
    "vrrp_garp_master_delay",
    "vrrp_garp_master_repeat",
    "vrrp_garp_master_refresh",
    "vrrp_garp_master_refresh_repeat",
    "vrrp_garp_interval",
    "vrrp_gna_interval",
    "vrrp_min_garp",
    "vrrp_garp_lower_prio_delay",
    "vrrp_garp_lower_prio_repeat",
)
INSTANCE_KEYWORDS = (
    "garp_master_repeat",
    "garp_master_refresh",
    "garp_master_refresh_repeat",
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
)


def g_garp(conv: Converter, node: Node, g: YMap) -> None:
    if conv.vip_backend is None:
        backends = conv.section_map("backends")
        conv.vip_backend = YMap()
        backends.set(
            "vip",
            conv.vip_backend,
            loc=node.loc,
            comments=["the global_defs vrrp_garp_* settings"],
        )
        conv.vip_backend.set("type", "vip", loc=node.loc)
    b = conv.vip_backend
    kw = node.keyword
    if kw == "vrrp_min_garp":
        # one announcement, no second burst - where not set already (as keepalived)
        if conv.flag(node):
            for name, n in (("garp_master_repeat", 1), ("garp_master_delay", 0)):
                if name not in b:
                    b.set(name, n, loc=node.loc, trailing=f"{node.line} ({conv.at(node.loc)})")
        g.comment(f"{node.line} ({conv.at(node.loc)}): see backends.vip")
        return
    key = kw.removeprefix("vrrp_")
    if kw.endswith(("_repeat",)):
        value: float | None = conv.integer(node, 0 if "refresh" not in kw else 1, 255)
    else:
        value = conv.number(node, 0, 86400)
    if value is not None:
        b.set(key, value, loc=node.loc, comments=node.comments, trailing=node.trailing)
    g.comment(f"{node.line} ({conv.at(node.loc)}): see backends.vip")


def i_garp(conv: Converter, node: Node, st: InstanceState) -> None:
    """An instance's own gratuitous ARP setting: overrides the backend's for it."""
    kw = node.keyword
    if kw.endswith("_repeat"):
        value: float | None = conv.integer(node, 0 if "refresh" not in kw else 1, 255)
    else:
        value = conv.number(node, 0, 86400 if "refresh" in kw else 3600)
    if value is not None:
        conv.put(st, node, kw, value)


def strict_garp(conv: Converter, node: Node, st: InstanceState) -> None:
    """keepalived's strict mode sends no announcements on hearing a lower-priority master
    (garp_lower_prio_repeat and garp_lower_prio_delay 0, set or not)."""
    if not st.strict_on:
        return
    m = st.m
    if m.get("garp_lower_prio_repeat") == 0:
        return
    e = m.entry("garp_lower_prio_repeat")
    where = e.loc if e is not None and e.loc is not None else st.strict_loc or st.loc
    conv.reports.append(
        Report(
            "note",
            where,
            "garp_lower_prio_repeat",
            f"strict mode ({conv.at(st.strict_loc)}): garp_lower_prio_repeat: 0 (no"
            " announcements on hearing a lower-priority master)",
        )
    )
    said = f"strict mode ({conv.at(st.strict_loc)})"
    m.set("garp_lower_prio_repeat", 0, loc=where, trailing=said)
    if m.get("garp_lower_prio_delay") is not None:
        m.remove("garp_lower_prio_delay", why=f"garp_lower_prio_delay left out: {said}")


def static_ipaddress(conv: Converter, node: Node, _: Any) -> None:
    """Each line read as a virtual address is; one without ``dev`` takes global_defs'
    default_interface, as in keepalived, or is left out (keepalived refuses it too)."""
    if not conv.need_block(node):
        return
    seq = YSeq()
    for child in node.children:
        line = virtual_address(conv, child)
        if line is None:
            continue
        if " dev " not in f" {line} ":
            if conv.default_interface is None:
                conv.error(
                    child.loc,
                    f"static_ipaddress {child.keyword}: no dev (and no default_interface)",
                )
                continue
            line += f" dev {conv.default_interface}"
        seq.append(line, loc=child.loc, comments=child.comments, trailing=child.trailing)
    if not seq.is_empty():
        conv.put(global_section(conv, node.loc), node, node.keyword, seq)


def keywords() -> list[Keyword | Finish]:
    return [
        *(Keyword("global_defs", kw, g_garp) for kw in GARP_KEYWORDS),
        *(Keyword("vrrp_instance", kw, i_garp) for kw in INSTANCE_KEYWORDS),
        Keyword("top", "static_ipaddress", static_ipaddress),
        Finish("vrrp_instance", strict_garp),
    ]
