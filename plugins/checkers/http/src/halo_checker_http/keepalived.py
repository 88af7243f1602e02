"""keepalived's ``HTTP_GET`` checker block and its ``url`` blocks, for ``halo convert``
(imported only by the ``halo_convert_keepalived`` hook)."""

from __future__ import annotations

import re

from halo_tool_convert.api import (
    CHECKER_KEYWORDS,
    CheckCtx,
    CheckDefaults,
    CheckerSpec,
    Converter,
    I,
    Keyword,
    Node,
    Table,
    U,
    YMap,
    checker,
)


def c_virtualhost(conv: Converter, node: Node, c: CheckCtx) -> None:
    v = conv.one(node)
    if v is not None:
        conv.put(c.m, node, "virtualhost", v)


def c_enable_sni(conv: Converter, node: Node, c: CheckCtx) -> None:
    if c.kind != "SSL_GET":
        conv.note(node, "enable_sni has no effect in HTTP_GET")
    conv.carry(node, c.m)  # halo's ssl check sends the virtualhost as SNI


def c_url(conv: Converter, node: Node, c: CheckCtx) -> None:
    if not conv.need_block(node):
        return
    u = YMap()
    conv.walk(node, URL_TABLE, u, u, "url")
    if u.get("regex_no_match") and "regex" not in u:
        conv.error(node.loc, "regex_no_match needs a regex")
        return
    c.m.child_seq("url", loc=node.loc).append(
        u, loc=node.loc, comments=node.comments, trailing=node.trailing
    )


def u_path(conv: Converter, node: Node, u: YMap) -> None:
    v = conv.one(node)
    if v is not None:
        if not v.startswith("/") or any(ch.isspace() for ch in v):
            conv.error(node.loc, f"path {v!r} must start with / and contain no spaces")
            return
        conv.put(u, node, "path", v)


def u_digest(conv: Converter, node: Node, u: YMap) -> None:
    v = conv.one(node)
    if v is not None:
        if not re.fullmatch(r"[0-9a-fA-F]{32}", v):
            conv.error(node.loc, f"digest {v!r} is not an MD5 digest (32 hexadecimal digits)")
            return
        conv.put(u, node, "digest", v.lower())


def u_status(conv: Converter, node: Node, u: YMap) -> None:
    if not conv.plain(node) or not node.args:
        conv.error(node.loc, "status_code needs codes or ranges")
        return
    for w in node.args:
        m = re.fullmatch(r"(\d{3})(?:-(\d{3}))?", w)
        if m is None or not 100 <= int(m.group(1)) <= int(m.group(2) or m.group(1)) <= 599:
            conv.error(node.loc, f"status_code {w!r} is not a code or range from 100 to 599")
            return
    text = " ".join(node.args)
    conv.put(u, node, "status_code", int(text) if text.isdigit() else text)


def u_virtualhost(conv: Converter, node: Node, u: YMap) -> None:
    v = conv.one(node)
    if v is not None:
        conv.put(u, node, "virtualhost", v)


def u_regex(conv: Converter, node: Node, u: YMap) -> None:
    if not conv.plain(node) or not node.args:
        conv.error(node.loc, "regex needs a regular expression")
        return
    v = " ".join(node.args)
    try:
        re.compile(v)
    except re.error as exc:
        conv.unsupported(node, f"not a valid Python regular expression ({exc})", u)
        return
    conv.put(u, node, "regex", v)


def u_regex_no_match(conv: Converter, node: Node, u: YMap) -> None:
    if conv.plain(node):
        conv.put(u, node, "regex_no_match", True)


def u_regex_options(conv: Converter, node: Node, u: YMap) -> None:
    flags = {"caseless": "i", "multiline": "m", "dotall": "s", "extended": "x"}
    got = ""
    for w in node.args:
        if w in flags:
            got += flags[w]
        else:
            conv.unsupported(node, f"regex option {w!r} has no Python equivalent", u)
    if got:
        regex = u.get("regex")
        if isinstance(regex, str):
            u.set("regex", f"(?{got}){regex}")
        else:
            conv.error(node.loc, "regex_options must follow the regex")


TABLE: Table = {
    **CHECKER_KEYWORDS,
    "virtualhost": c_virtualhost,
    "url": c_url,
    "http_protocol": U("halo's HTTP checks choose their own HTTP version"),
    "fast_recovery": U("halo's HTTP checks check all URLs every time"),
    "enable_sni": c_enable_sni,
}


URL_TABLE: Table = {
    "path": u_path,
    "digest": u_digest,
    "status_code": u_status,
    "virtualhost": u_virtualhost,
    "regex": u_regex,
    "regex_no_match": u_regex_no_match,
    "regex_options": u_regex_options,
    "regex_min_offset": U("halo searches the whole body"),
    "regex_max_offset": U("halo searches the whole body"),
    "regex_stack": I("a PCRE JIT stack size; halo uses Python's re"),
}


def finish(conv: Converter, node: Node, c: CheckCtx, eff: CheckDefaults) -> bool:
    if "virtualhost" not in c.m and eff.virtualhost is not None:
        c.m.set("virtualhost", eff.virtualhost)
    return True


# keepalived waits 3 s before an HTTP retry, 1 s elsewhere
HTTP_GET = CheckerSpec("HTTP_GET", "http", TABLE, delay_before_retry=3, finish=finish)


def keywords() -> list[Keyword]:
    return [checker(HTTP_GET)]
