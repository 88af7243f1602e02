"""keepalived's ``SMTP_CHECK`` checker block, for ``halo convert`` (imported only by the
``halo_convert_keepalived`` hook). Its ``host { }`` sub-blocks (several servers in one
check, deprecated but still read by keepalived 2.2.7) become one smtp check each, as
keepalived runs one checker per host: the real server is up while all of them are."""

from __future__ import annotations

import dataclasses

from halo_tool_convert.api import (
    CHECKER_KEYWORDS,
    CheckCtx,
    CheckerSpec,
    Converter,
    Keyword,
    Node,
    YMap,
    YSeq,
    checker,
)

# What a host block may set: where the check connects, and its time-out.
CONNECTION = ("connect_ip", "connect_port", "bind_to", "bind_port")
HOSTS = "_hosts"  # where the host blocks wait for variants(), removed there


def c_helo(conv: Converter, node: Node, c: CheckCtx) -> None:
    v = conv.one(node)
    if v is not None:
        conv.put(c.m, node, "helo_name", v.strip('"'))


def c_host(conv: Converter, node: Node, c: CheckCtx) -> None:
    """``host { connect_ip ... connect_port ... }``: read with the checker's own
    connection keywords into a mapping of its own."""
    if not conv.need_block(node):
        return
    host = CheckCtx(YMap(), c.kind, c.defaults)
    host.m.comment(*conv.said(node), f"host {{ … }} ({conv.at(node.loc)}): a check of its own")
    conv.walk(node, CHECKER_KEYWORDS, host, host.m, "host")
    if host.own.connect_timeout is not None:
        host.m.set("timeout", host.own.connect_timeout, loc=node.loc)
    hosts = c.m.child_seq(HOSTS, loc=node.loc)
    hosts.append(host.m, loc=node.loc)
    conv.note(node, "one smtp check per host block, as keepalived runs one checker per host")


def variants(conv: Converter, node: Node, c: CheckCtx) -> list[YMap]:
    """keepalived's ``smtp_check_end_handler``: the check itself when it has connection
    settings of its own (else the first host takes its place), then one per host, each
    with the check's other settings."""
    m = c.m
    hosts = m.get(HOSTS)
    m.remove(HOSTS)
    if not isinstance(hosts, YSeq) or not hosts.items:
        return [m]
    own = any(k in m for k in CONNECTION) or c.own.connect_timeout is not None
    out = [m] if own else []
    for item in hosts.items:
        host = item.value
        if not isinstance(host, YMap):
            continue
        each = YMap()
        each.entries = [
            dataclasses.replace(e)
            for e in m.entries
            if e.comment_only or e.key not in (*CONNECTION, *(host.keys()))
        ]
        for e in host.entries:
            each.entries.append(dataclasses.replace(e))
        out.append(each)
    return out


SMTP_CHECK = CheckerSpec(
    "SMTP_CHECK",
    "smtp",
    {**CHECKER_KEYWORDS, "helo_name": c_helo, "host": c_host},
    variants=variants,
)


def keywords() -> list[Keyword]:
    return [checker(SMTP_CHECK)]
