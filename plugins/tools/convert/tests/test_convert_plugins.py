"""A plugin teaches `halo convert` its keepalived keywords through halo_convert_keepalived:
a third-party checker converts its DNS_CHECK block, another a made-up top-level block; a
missing plugin leaves its keywords unsupported; a broken or clashing one is a clear error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import pytest

from halo_core import plugins as plugin_loader
from halo_core.config import load_text
from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import CheckerConfig, PluginType
from halo_core.plugins import Plugins
from halo_core.schema import Doc
from halo_tool_convert import ConvertError, convert_text
from halo_tool_convert.api import (
    CHECKER_KEYWORDS,
    CheckCtx,
    CheckerSpec,
    Converter,
    Finish,
    Keyword,
    Node,
    checker,
)

VS = """
virtual_server 192.0.2.100 53 {
    protocol UDP
    real_server 192.0.2.40 53 {
        DNS_CHECK {
            connect_timeout 3
            name www.example.com
        }
    }
}
"""


@dataclass(frozen=True, kw_only=True)
class DnsCheck(CheckerConfig):
    name: Annotated[str, Doc("name to resolve")]


def dns_name(conv: Converter, node: Node, check: CheckCtx) -> None:
    value = conv.one(node)
    if value is not None:
        conv.put(check.m, node, "name", value)


def site_note(conv: Converter, node: Node, _: Any) -> None:
    conv.note(node, "read by the site plugin")
    conv.doc.comment(f"site block with {len(node.children)} settings")


class DnsPlugin:
    @hookimpl
    def halo_plugin_types(self) -> list[PluginType]:
        return [PluginType("checker", "dns", DnsCheck, "nowhere:Nothing", "DNS query")]

    @hookimpl
    def halo_convert_keepalived(self) -> list[Any]:
        return [
            checker(CheckerSpec("DNS_CHECK", "dns", {**CHECKER_KEYWORDS, "name": dns_name})),
            Keyword("top", "site_settings", site_note),
            Finish("top", lambda conv, node, state: conv.doc.comment("the end, by the plugin")),
        ]


class OtherDnsPlugin:
    """Converts DNS_CHECK too, to another plugin's type."""

    @hookimpl
    def halo_convert_keepalived(self) -> list[Any]:
        return [checker(CheckerSpec("DNS_CHECK", "dns", CHECKER_KEYWORDS))]


class BrokenPlugin:
    @hookimpl
    def halo_convert_keepalived(self) -> list[Any]:
        raise RuntimeError("no table\nhere")


class WrongBlockPlugin:
    @hookimpl
    def halo_convert_keepalived(self) -> list[Any]:
        return [Keyword("vrrp_instanse", "x", site_note)]


def with_plugins(*extra: tuple[str, object]) -> Plugins:
    # the made-up DNS checker stands in for the first-party one
    p = plugin_loader.load(modules=extra, block=["checker-dns"])
    assert not p.errors, p.errors
    return p


def test_a_third_party_checker_converts_its_block() -> None:
    plugins = with_plugins(("example-dns", DnsPlugin()))
    text = VS + "site_settings {\n    colour blue\n}\n"
    result = convert_text(text, "keepalived.conf", config_id="x", plugins=plugins)
    assert not result.unsupported
    assert [str(r) for r in result.notes] == [
        "note: keepalived.conf:11: site_settings: read by the site plugin"
    ]
    assert "# site block with 1 settings" in result.yaml
    assert result.yaml.endswith("# the end, by the plugin\n")
    model = load_text(result.yaml, "out.yaml", plugins).model
    check = model.virtual_servers[0].real_servers[0].checks[0].config
    # the plugin's keyword, and keepalived's checker defaults applied by the converter
    assert isinstance(check, DnsCheck)
    assert (check.name, check.timeout, check.retry) == ("www.example.com", 3, 1)


def test_without_the_plugin_the_block_is_unsupported() -> None:
    result = convert_text(VS, "keepalived.conf", config_id="x", plugins=with_plugins())
    assert [str(r) for r in result.unsupported] == [
        "unsupported: keepalived.conf:5: DNS_CHECK: needs the dns checker plugin, which is not"
        " installed"
    ]


def test_a_first_party_checker_block_needs_its_plugin() -> None:
    everything = plugin_loader.load()
    blocked = [i.name for i in everything.infos if ("checker", "tcp") in i.types]
    assert blocked == ["checker-tcp"]
    text = VS.replace("DNS_CHECK", "TCP_CHECK").replace("name www.example.com", "")
    result = convert_text(
        text, "keepalived.conf", config_id="x", plugins=plugin_loader.load(block=blocked)
    )
    assert [str(r) for r in result.unsupported] == [
        "unsupported: keepalived.conf:5: TCP_CHECK: needs the tcp checker plugin, which is not"
        " installed"
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            [("example-dns", DnsPlugin()), ("example-dns2", OtherDnsPlugin())],
            "halo convert: plugins example-dns and example-dns2 both convert DNS_CHECK in"
            " real_server",
        ),
        (
            [("broken", BrokenPlugin())],
            "halo convert: plugin broken: its keepalived keywords: RuntimeError: no table here",
        ),
        (
            [("wrong", WrongBlockPlugin())],
            "halo convert: plugin wrong: its keepalived keywords: ValueError: x: no keepalived"
            " block 'vrrp_instanse' to put it in",
        ),
    ],
)
def test_a_broken_or_clashing_plugin_is_a_one_line_error(
    extra: list[tuple[str, object]], message: str
) -> None:
    plugins = with_plugins(*extra)
    with pytest.raises(ConvertError) as exc:
        convert_text(VS, "keepalived.conf", config_id="x", plugins=plugins)
    assert exc.value.lines == [message]


INSTANCE = """
vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {{
        192.0.2.1
    }}
{body}
}}
"""
RS = "virtual_server 192.0.2.100 80 {{\n real_server 192.0.2.40 80 {{\n{body}\n }}\n}}\n"


@pytest.mark.parametrize(
    ("plugin", "text", "keyword"),
    [
        ("checker-http", RS.format(body="HTTP_GET {\nurl {\npath /\n}\n}"), "HTTP_GET"),
        ("checker-ssl", RS.format(body="SSL_GET {\nurl {\npath /\n}\n}"), "SSL_GET"),
        ("checker-script", RS.format(body="MISC_CHECK {\nmisc_path /bin/true\n}"), "MISC_CHECK"),
        (
            "checker-script",
            "vrrp_script chk {\nscript /bin/true\n}\n"
            + INSTANCE.format(body="track_script {\nchk\n}"),
            "vrrp_script",
        ),
        ("notifier-script", INSTANCE.format(body="notify_master /bin/true"), "notify_master"),
        ("backend-vip", "global_defs {\nvrrp_garp_master_delay 2\n}\n", "vrrp_garp_master_delay"),
        ("backend-ipvs", RS.format(body=""), "virtual_server"),
    ],
)
def test_each_first_party_plugin_converts_its_keywords(
    plugin: str, text: str, keyword: str
) -> None:
    with_it = convert_text(text, "keepalived.conf", config_id="x", plugins=with_plugins())
    assert keyword not in [r.keyword for r in with_it.unsupported]
    without = plugin_loader.load(block=[plugin])
    result = convert_text(text, "keepalived.conf", config_id="x", plugins=without)
    assert keyword in [r.keyword for r in result.unsupported]
    assert any("plugin, which is not installed" in r.message for r in result.unsupported)
