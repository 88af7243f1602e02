"""keepalived's virtual servers and IPVS-wide settings, for ``halo convert`` (imported only
by the ``halo_convert_keepalived`` hook): the converter writes each virtual server into
``virtual_servers``; this plugin adds the ipvs backend that puts them in the kernel, with
global_defs' ``lvs_timeouts`` and ``lvs_sync_daemon`` (and an instance's obsolete
``lvs_sync_daemon_interface``) as its ``connection_timeouts`` and ``sync_daemon``."""

from __future__ import annotations

from typing import Any

from halo_tool_convert.api import Converter, Finish, InstanceState, Keyword, Node, YMap

TIMEOUT_WORDS = {"tcp": "tcp", "tcpfin": "tcp_fin", "udp": "udp"}
SYNC_WORDS = {"id": "syncid", "maxlen": "maxlen", "port": "mcast_port", "ttl": "mcast_ttl"}
SYNC_RANGES = {"id": (0, 255), "maxlen": (1, 65507), "port": (1, 65535), "ttl": (1, 255)}


def backend(conv: Converter, node: Node | None, _: Any = None) -> None:
    """The ipvs backend, made at the first virtual server (with global_defs'
    lvs_flush_on_stop, which the converter has read), or at the end for IPVS-wide settings
    without virtual servers; then the settings go in."""
    if conv.ipvs_backend is None and (node is not None or conv.ipvs_settings):
        loc = node.loc if node is not None else next(iter(conv.ipvs_settings.values()))[0].loc
        conv.ipvs_backend = YMap()
        conv.ipvs_backend.set("type", "ipvs", loc=loc)
        if conv.ipvs_flush is not None:
            n = conv.ipvs_flush
            conv.ipvs_backend.set(
                "flush_on_stop", True, loc=n.loc, trailing=f"{n.line} ({conv.at(n.loc)})"
            )
        conv.section_map("backends").set(
            "ipvs", conv.ipvs_backend, loc=loc, comments=["keepalived's virtual servers"]
        )
    if conv.ipvs_backend is None:
        return
    for key, (n, value) in conv.ipvs_settings.items():
        if key not in conv.ipvs_backend:
            conv.ipvs_backend.set(key, value, loc=n.loc, trailing=f"{n.line} ({conv.at(n.loc)})")


def lvs_timeouts(conv: Converter, node: Node, _: Any) -> None:
    """``lvs_timeouts [tcp SECS] [tcpfin SECS] [udp SECS]``."""
    if not conv.plain(node):
        return
    words, m = node.args, YMap()
    if not words or len(words) % 2:
        conv.error(node.loc, "lvs_timeouts needs tcp, tcpfin or udp with a number of seconds")
        return
    for name, value in zip(words[::2], words[1::2], strict=True):
        key = TIMEOUT_WORDS.get(name)
        if key is None:
            conv.error(node.loc, f"lvs_timeouts: {name!r} is not tcp, tcpfin or udp")
            return
        seconds = conv.integer(node, 1, 2**31 - 1, value)
        if seconds is None:
            return
        m.set(key, seconds, loc=node.loc)
    conv.ipvs_settings["connection_timeouts"] = (node, m)


def lvs_sync_daemon(conv: Converter, node: Node, _: Any) -> None:
    """``lvs_sync_daemon IFACE [[inst] VRRP_INSTANCE] [id N] [maxlen N] [port N] [ttl N]
    [group ADDRESS]``."""
    if not conv.plain(node):
        return
    if not node.args:
        conv.error(node.loc, "lvs_sync_daemon needs an interface")
        return
    m = YMap()
    m.set("interface", node.args[0], loc=node.loc)
    words = node.args[1:]
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else None
        if word in SYNC_WORDS or word in ("group", "inst"):
            if value is None:
                conv.error(node.loc, f"lvs_sync_daemon: {word} needs a value")
                return
            if word == "group":
                if conv.address(node, value, "lvs_sync_daemon group") is None:
                    return
                m.set("mcast_group", value, loc=node.loc)
            elif word == "inst":
                m.set("vrrp_instance", value, loc=node.loc)
            else:
                n = conv.integer(node, *SYNC_RANGES[word], value)
                if n is None:
                    return
                m.set(SYNC_WORDS[word], n, loc=node.loc)
            i += 2
        elif i == 0:
            m.set("vrrp_instance", word, loc=node.loc)
            i += 1
        else:
            conv.error(node.loc, f"lvs_sync_daemon: unexpected {word!r}")
            return
    instance = m.get("vrrp_instance")
    if isinstance(instance, str) and instance not in conv.instance_names:
        conv.error(node.loc, f"lvs_sync_daemon: no vrrp_instance {instance!r}")
        return
    conv.ipvs_settings.setdefault("sync_daemon", (node, m))


def lvs_sync_daemon_interface(conv: Converter, node: Node, st: InstanceState) -> None:
    """The obsolete instance keyword: the sync daemon on that interface, following this
    instance (keepalived reads it so)."""
    iface = conv.one(node)
    if iface is None:
        return
    conv.note(node, f"obsolete; read as global_defs' lvs_sync_daemon {iface} {st.name}")
    m = YMap()
    m.set("interface", iface, loc=node.loc)
    m.set("vrrp_instance", st.name, loc=node.loc)
    conv.ipvs_settings.setdefault("sync_daemon", (node, m))


def keywords() -> list[Keyword | Finish]:
    return [
        Finish("virtual_server", backend),
        Finish("top", backend),
        Keyword("global_defs", "lvs_timeouts", lvs_timeouts),
        Keyword("global_defs", "lvs_sync_daemon", lvs_sync_daemon),
        Keyword("vrrp_instance", "lvs_sync_daemon_interface", lvs_sync_daemon_interface),
    ]
