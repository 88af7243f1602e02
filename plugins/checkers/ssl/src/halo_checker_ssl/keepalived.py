"""keepalived's ``SSL_GET`` checker block (``HTTP_GET``'s keywords over TLS) with the
settings of the top-level ``SSL`` block (``converter.ssl``), for ``halo convert`` (imported
only by the ``halo_convert_keepalived`` hook)."""

from __future__ import annotations

from halo_checker_http import keepalived as http
from halo_tool_convert.api import (
    CheckCtx,
    CheckDefaults,
    CheckerSpec,
    Converter,
    Keyword,
    Node,
    YMap,
    checker,
)


def ssl_settings(conv: Converter, m: YMap) -> None:
    for kw, key in (
        ("certificate", "cert_file"),
        ("key", "key_file"),
        ("password", "key_password"),
    ):
        if kw in conv.ssl:
            value, node = conv.ssl[kw]
            m.set(key, value, loc=node.loc)
    if "ca" in conv.ssl:
        _, node = conv.ssl["ca"]
        m.comment(
            f"SSL ca ({conv.at(node.loc)}) left out: keepalived loads it but verifies"
            " no certificate"
        )
        if not conv.ca_noted:
            conv.ca_noted = True
            conv.note(
                node,
                "keepalived's SSL_GET verifies no certificate even with a ca: left out"
                " (halo would verify)",
            )


def finish(conv: Converter, node: Node, c: CheckCtx, eff: CheckDefaults) -> bool:
    http.finish(conv, node, c, eff)
    ssl_settings(conv, c.m)
    return True


SSL_GET = CheckerSpec("SSL_GET", "ssl", http.TABLE, delay_before_retry=3, finish=finish)


def keywords() -> list[Keyword]:
    return [checker(SSL_GET)]
