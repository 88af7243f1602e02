"""``global_defs``: router_id, script security and user, the VRRP version, the
gratuitous ARP settings (to the vip backend), the VRRP process's scheduling (real-time
priority, rttime limit, nice, no swap) and the checker's nice value (halo's worker); its
e-mail keywords are in :mod:`.notifiers`, lvs_flush_on_stop in :mod:`.virtual_server`, and
other process tuning is noted as ignored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from halo_tool_convert import notifiers, virtual_server
from halo_tool_convert.emit import YMap
from halo_tool_convert.lexer import Loc
from halo_tool_convert.parser import Node
from halo_tool_convert.values import (
    BOOL_WORDS,
    BUFFERS,
    DBUS,
    FIFO,
    FIREWALL,
    IFNAME_RE,
    IPVS_GLOBAL,
    LINKBEAT,
    NAMESPACE,
    NOTIFY_OTHER,
    RELOAD,
    SNMP,
    TUNING,
    VMAC,
    VRRP_EXT,
    I,
    Report,
    Table,
    U,
)

if TYPE_CHECKING:
    from halo_tool_convert.mapping import Converter


def prescan_global(conv: Converter, node: Node) -> None:
    for child in node.children:
        if child.keyword == "vrrp_version" and child.args[:1] in (["2"], ["3"]):
            conv.default_version = int(child.args[0])
            conv.default_version_loc = child.loc
        elif child.keyword == "default_interface" and child.args:
            conv.default_interface = child.args[0]
        elif child.keyword in ("vrrp_strict", "vrrp_lower_prio_no_advert"):
            # read before the instances, which keepalived completes after the whole file
            # (keepalived 2.2.7 reads no value after vrrp_strict: it is always on)
            if child.keyword == "vrrp_strict":
                conv.vrrp_strict = child.loc
            elif not child.args or BOOL_WORDS.get(child.args[0].lower()) is not None:
                on = not child.args or BOOL_WORDS[child.args[0].lower()]
                conv.lower_prio_no_advert = child.loc if on else None


def global_section(conv: Converter, loc: Loc | None = None) -> YMap:
    if conv.global_map is None:
        conv.global_map = conv.doc.child_map("global", loc=loc)
        conv.global_loc = loc
    return conv.global_map


def global_defs(conv: Converter, node: Node, _: Any) -> None:
    if not conv.need_block(node):
        return
    first = conv.global_map is None
    g = global_section(conv, node.loc)
    e = conv.doc.entry("global")
    if first and e is not None:
        e.comments += node.comments
        e.trailing = node.trailing
    else:
        g.comment(*conv.said(node))
    conv.walk(node, conv.tables["global_defs"], g, g, "global_defs")


def g_router_id(conv: Converter, node: Node, g: YMap) -> None:
    v = conv.one(node)
    if v is not None:
        g.set("router_id", v, loc=node.loc, comments=node.comments, trailing=node.trailing)


def g_script_user(conv: Converter, node: Node, g: YMap) -> None:
    v = conv.user(node)
    if v is not None:
        conv.script_user = v
        g.set("script_user", v, loc=node.loc, comments=node.comments, trailing=node.trailing)


def g_script_security(conv: Converter, node: Node, g: YMap) -> None:
    if conv.plain(node):
        conv.script_security = True
        g.set(
            "enable_script_security",
            True,
            loc=node.loc,
            comments=node.comments,
            trailing=node.trailing,
        )


def g_vrrp_version(conv: Converter, node: Node, g: YMap) -> None:
    v = conv.integer(node, 2, 3)
    if v is not None:
        g.comment(
            *conv.said(node),
            f"{node.line} ({conv.at(node.loc)}): becomes each instance's version",
        )


def g_check_unicast_src(conv: Converter, node: Node, g: YMap) -> None:
    if conv.plain(node):
        conv.put(g, node, "check_unicast_src", True)


def g_default_interface(conv: Converter, node: Node, g: YMap) -> None:
    v = conv.one(node)
    if v is None:
        return
    if not IFNAME_RE.fullmatch(v):
        conv.error(node.loc, f"default_interface {v!r} is not an interface name")
        return
    conv.put(g, node, "default_interface", v)
    conv.note(
        node,
        "halo uses it for VRRP instances without an interface; static addresses, routes"
        " and rules are not halo's",
    )


def g_dynamic_interfaces(conv: Converter, node: Node, g: YMap) -> None:
    if not conv.plain(node):
        return
    if node.args:
        conv.note(
            node,
            f"{' '.join(node.args)} ignored: halo restarts an instance whose"
            " interface is recreated either way",
        )
    conv.put(g, node, "dynamic_interfaces", True)


def scheduling(key: str, low: int, high: int) -> Any:
    """A process-scheduling keyword halo has under its own ``key`` (global)."""

    def convert(conv: Converter, node: Node, g: YMap) -> None:
        v = conv.integer(node, low, high)
        if v is not None:
            g.set(key, v, loc=node.loc, comments=node.comments, trailing=node.trailing)

    return convert


def g_vrrp_no_swap(conv: Converter, node: Node, g: YMap) -> None:
    if conv.plain(node):
        g.set("vrrp_no_swap", True, loc=node.loc, comments=node.comments, trailing=node.trailing)


def g_strict(conv: Converter, node: Node, g: YMap) -> None:
    """Strict mode is written into each instance (see :mod:`.strict`); the instances have
    a note for each setting it changes.  keepalived 2.2.7 reads no value: it is always on."""
    if node.args:
        conv.note(node, f"keepalived reads no value here: {' '.join(node.args)} ignored")
    if conv.plain(node):
        g.comment(
            *conv.said(node),
            f"{node.line} ({conv.at(node.loc)}): written out in each vrrp instance as the"
            " settings marked 'strict mode'",
        )
        conv.note(
            node,
            "strict mode is written out in each instance as the settings it amounts to (no"
            " authentication, accept: false below priority 255, lower_prio_no_advert, no"
            " lower-priority announcements, state from the priority)",
        )


def g_lower_prio_no_advert(conv: Converter, node: Node, g: YMap) -> None:
    if conv.flag(node):
        g.comment(*conv.said(node), f"{node.line} ({conv.at(node.loc)}): see each vrrp instance")
    else:
        conv.carry(node, g)


def garp_missing(conv: Converter, node: Node, g: YMap) -> None:
    """The global gratuitous ARP settings without the vip backend plugin, which takes them."""
    conv.unsupported(node, "needs the vip backend plugin, which is not installed", g)


def finish_global(conv: Converter) -> None:
    if conv.has_scripts and conv.script_security is None:
        assert conv.first_script is not None
        conv.reports.append(
            Report(
                "note",
                conv.first_script,
                "enable_script_security",
                "not set, so keepalived runs scripts even where non-root users could change"
                " them; written as enable_script_security: false (halo's default is true)",
            )
        )
        g = global_section(conv)
        g.set(
            "enable_script_security",
            False,
            comments=[
                "keepalived's default; halo's is true: turn it on once every script and"
                " its directories are writable by root only"
            ],
        )
        if conv.script_user is None:
            g.comment(
                "keepalived runs scripts as root when there is no keepalived_script user;"
                " halo runs them as nobody then: set script_user if they need more"
            )
    if conv.global_map is not None:
        conv.doc.move_to_front("global")


TABLE: Table = {
    "router_id": g_router_id,
    "script_user": g_script_user,
    "enable_script_security": g_script_security,
    "vrrp_version": g_vrrp_version,
    "notification_email": notifiers.g_email_to,
    "notification_email_from": notifiers.g_email_from,
    "smtp_server": notifiers.g_smtp_server,
    "smtp_helo_name": notifiers.g_smtp_helo,
    "smtp_connect_timeout": notifiers.g_smtp_timeout,
    "smtp_alert": notifiers.g_smtp_alert,
    "smtp_alert_vrrp": notifiers.g_smtp_alert,
    "smtp_alert_checker": notifiers.g_smtp_alert,
    "no_email_faults": notifiers.g_smtp_alert,
    "vrrp_garp_master_delay": garp_missing,
    "vrrp_garp_master_repeat": garp_missing,
    "vrrp_garp_master_refresh": garp_missing,
    "vrrp_garp_master_refresh_repeat": garp_missing,
    "vrrp_garp_interval": garp_missing,
    "vrrp_gna_interval": garp_missing,
    "vrrp_min_garp": garp_missing,
    "vrrp_garp_lower_prio_delay": garp_missing,
    "vrrp_garp_lower_prio_repeat": garp_missing,
    "vrrp_garp_extra_if": VMAC,
    "vrrp_vmac_garp_intvl": VMAC,
    "vmac_prefix": VMAC,
    "vmac_addr_prefix": VMAC,
    "vrrp_skip_check_adv_addr": I(
        "a speed-up of keepalived's advert address check; halo's check is the same for every advert"
    ),
    "vrrp_strict": g_strict,
    "vrrp_check_unicast_src": g_check_unicast_src,
    "vrrp_lower_prio_no_advert": g_lower_prio_no_advert,
    "vrrp_higher_prio_send_advert": VRRP_EXT,
    "vrrp_down_timer_adverts": VRRP_EXT,
    "vrrp_startup_delay": U("halo has no start-up delay"),
    "vrrp_mcast_group4": U("halo sends VRRP to the standard multicast group only"),
    "vrrp_mcast_group6": U("halo sends VRRP to the standard multicast group only"),
    "vrrp_iptables": FIREWALL,
    "vrrp_ipsets": FIREWALL,
    "nftables": FIREWALL,
    "nftables_priority": FIREWALL,
    "nftables_counters": FIREWALL,
    "nftables_ifindex": FIREWALL,
    "nftables_ipvs": IPVS_GLOBAL,
    "nftables_ipvs_priority": IPVS_GLOBAL,
    "nftables_ipvs_start_fwmark": IPVS_GLOBAL,
    "disable_local_igmp": VMAC,
    "vrrp_notify_priority_changes": NOTIFY_OTHER,
    "notify_fifo": FIFO,
    "notify_fifo_script": FIFO,
    "vrrp_notify_fifo": FIFO,
    "vrrp_notify_fifo_script": FIFO,
    "lvs_notify_fifo": FIFO,
    "lvs_notify_fifo_script": FIFO,
    "fifo_write_vrrp_states_on_reload": FIFO,
    "startup_script": U("halo runs no start-up or shut-down scripts"),
    "startup_script_timeout": U("halo runs no start-up or shut-down scripts"),
    "shutdown_script": U("halo runs no start-up or shut-down scripts"),
    "shutdown_script_timeout": U("halo runs no start-up or shut-down scripts"),
    "default_interface": g_default_interface,
    "lvs_sync_daemon": IPVS_GLOBAL,
    "lvs_timeouts": IPVS_GLOBAL,
    "lvs_flush": IPVS_GLOBAL,
    "lvs_flush_on_stop": virtual_server.g_lvs_flush_on_stop,
    "lvs_flush_onstop": virtual_server.g_lvs_flush_on_stop,
    "rs_init_notifies": NOTIFY_OTHER,
    "no_checker_emails": NOTIFY_OTHER,
    "checker_log_all_failures": I("halo logs every check result at debug level"),
    "dynamic_interfaces": g_dynamic_interfaces,
    "log_unknown_vrids": I("halo counts adverts for unknown VRIDs; see its debug log"),
    "snmp_socket": SNMP,
    "enable_snmp_vrrp": SNMP,
    "enable_snmp_keepalived": SNMP,
    "enable_snmp_checker": SNMP,
    "enable_snmp_rfc": SNMP,
    "enable_snmp_rfcv2": SNMP,
    "enable_snmp_rfcv3": SNMP,
    "enable_traps": SNMP,
    "enable_dbus": DBUS,
    "dbus_service_name": DBUS,
    "umask": U("halo keeps the umask it is started with"),
    "random_seed": I("halo convert replaces ${_RANDOM} with fixed pseudo-random numbers"),
    "include_check": I("halo convert reports every include that matches nothing"),
    "tmp_config_directory": RELOAD,
    "config_save_dir": RELOAD,
    "reload_check_config": RELOAD,
    "reload_time_file": U("halo has no scheduled reloads"),
    "reload_repeat": U("halo has no scheduled reloads"),
    "reload_file": RELOAD,
    "data_use_instance": I("keepalived's SIGUSR1 dumps; halo has none"),
    "instance": I("names keepalived's pid files; halo's state_dir is global.state_dir"),
    "use_pid_dir": I("keepalived's pid files; halo's pid file is in global.state_dir"),
    "linkbeat_use_polling": LINKBEAT,
    "child_wait_time": TUNING,
    "net_namespace": NAMESPACE,
    "net_namespace_ipvs": NAMESPACE,
    "namespace_with_ipsets": NAMESPACE,
}
TABLE |= {
    "vrrp_rt_priority": scheduling("vrrp_rt_priority", 1, 99),
    "vrrp_rlimit_rttime": scheduling("vrrp_rlimit_rttime", 1000, 10_000_000),
    "vrrp_rlimit_rtime": scheduling("vrrp_rlimit_rttime", 1000, 10_000_000),
    "vrrp_priority": scheduling("vrrp_priority", -20, 19),
    "vrrp_no_swap": g_vrrp_no_swap,
    "checker_priority": scheduling("worker_priority", -20, 19),
}
for prefix in ("vrrp", "checker", "bfd", "lvs"):
    for suffix in ("process_name", "priority", "no_swap", "rt_priority", "cpu_affinity"):
        TABLE.setdefault(f"{prefix}_{suffix}", TUNING)
    for suffix in ("rlimit_rttime", "rlimit_rtime"):
        TABLE.setdefault(f"{prefix}_{suffix}", TUNING)
for k in ("process_names", "process_name", "max_auto_priority", "min_auto_priority_delay"):
    TABLE[k] = TUNING
for k in (
    "vrrp_netlink_cmd_rcv_bufs",
    "vrrp_netlink_monitor_rcv_bufs",
    "lvs_netlink_cmd_rcv_bufs",
    "lvs_netlink_monitor_rcv_bufs",
    "process_monitor_rcv_bufs",
):
    TABLE[k] = BUFFERS
    TABLE[k + "_force"] = BUFFERS
TABLE["vrrp_rx_bufs_policy"] = BUFFERS
TABLE["vrrp_rx_bufs_multiplier"] = BUFFERS
