"""keepalived's load-balancer keywords through ``halo convert``: virtual_server_group,
lvs_method TUN with its tunnel options, scheduler flags, lvs_timeouts and lvs_sync_daemon
(global and the obsolete instance keyword). Every converted file passes halo's validation."""

from __future__ import annotations

from typing import Any

import pytest

from halo_core import plugins as plugin_loader
from halo_core.config import load_text
from halo_core.plugins import Plugins
from halo_tool_convert import Result, convert_text

INSTANCE = """
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.1
    }
}
"""


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return plugin_loader.load()


def convert(text: str, plugins: Plugins) -> tuple[Result, Any, list[str]]:
    result = convert_text(text, "keepalived.conf", config_id="test", plugins=plugins)
    model = load_text(result.yaml, "out.yaml", plugins).model
    return result, model, [str(r) for r in result.reports]


def test_group_with_ranges_fwmarks_tunnel_and_flags(plugins: Plugins) -> None:
    _, model, reports = convert(
        """
virtual_server_group FARM {
    203.0.113.1 80
    203.0.113.10-12 8080
    2001:db8::a-c 443
    203.0.113.64/30 81
    fwmark 7 inet
    nohost 80
}
virtual_server group FARM {
    lvs_sched mh
    mh-port
    mh-fallback
    lvs_method TUN type gue port 6080 remcsum
    quorum_up "/bin/true up"
    alpha
    inhibit_on_failure
    virtualhost www.example.com
    real_server 192.0.2.13 {
        weight 2
    }
}
""",
        plugins,
    )
    vs = model.virtual_servers[0]
    assert vs.label == "FARM"
    assert [str(e) for e in vs.group] == [
        "203.0.113.1 80",
        "203.0.113.10-203.0.113.12 8080",
        "2001:db8::a-2001:db8::c 443",
        "203.0.113.64-203.0.113.67 81",
        "fwmark 7",
    ]
    assert (vs.lb_algo, vs.lb_flags, vs.lb_kind) == ("mh", ["mh-port", "mh-fallback"], "TUN")
    assert (vs.tun_type, vs.tun_port, vs.tun_checksum) == ("gue", 6080, "remcsum")
    assert vs.alpha and vs.inhibit_on_failure and vs.quorum_up == "/bin/true up"
    assert any("fwmark: the family (inet)" in r for r in reports), reports
    assert any("'nohost' is not an IP address" in r for r in reports), reports
    assert not [r for r in reports if r.startswith("unsupported")], reports
    assert model.backends["ipvs"].type == "ipvs"


@pytest.mark.parametrize(
    ("method", "tunnel"),
    [
        ("TUN", ("ipip", None, "nocsum")),
        ("TUN type ipip", ("ipip", None, "nocsum")),
        ("TUN type gre csum", ("gre", None, "csum")),
        ("TUN type gue port 5555", ("gue", 5555, "nocsum")),
    ],
)
def test_tunnel_options(plugins: Plugins, method: str, tunnel: tuple[Any, ...]) -> None:
    _, model, _ = convert(
        f"virtual_server 203.0.113.1 80 {{\n lvs_method {method}\n"
        " real_server 192.0.2.13 80 {\n }\n}\n",
        plugins,
    )
    vs = model.virtual_servers[0]
    assert (vs.tun_type, vs.tun_port, vs.tun_checksum) == tunnel


@pytest.mark.parametrize(
    ("method", "error"),
    [
        ("TUN type gue", "type gue needs port NUM"),
        ("TUN type gre remcsum", "unexpected 'remcsum' after gre"),
        ("TUN type vxlan", "tunnel type must be ipip, gue or gre"),
        ("NAT type gre", "unexpected 'type gre'"),
    ],
)
def test_bad_tunnel_options_are_reported_and_left_out(
    plugins: Plugins, method: str, error: str
) -> None:
    _, model, reports = convert(
        f"virtual_server 203.0.113.1 80 {{\n lvs_method {method}\n}}\n", plugins
    )
    assert model.virtual_servers[0].lb_kind == "NAT"
    assert any(error in r for r in reports), reports


def test_timeouts_and_sync_daemon(plugins: Plugins) -> None:
    result, model, reports = convert(
        """
global_defs {
    lvs_timeouts tcp 900 tcpfin 60 udp 200
    lvs_sync_daemon eth1 inst VI_1 id 5 maxlen 1400 port 8849 ttl 2 group 239.0.0.5
}
"""
        + INSTANCE
        + "virtual_server 203.0.113.1 80 {\n real_server 192.0.2.13 80 {\n }\n}\n",
        plugins,
    )
    ipvs = model.backends["ipvs"].config
    assert ipvs.connection_timeouts.tcp == 900 and ipvs.connection_timeouts.tcp_fin == 60
    sync = ipvs.sync_daemon
    assert (sync.interface, sync.vrrp_instance, sync.syncid, sync.maxlen) == (
        "eth1",
        "VI_1",
        5,
        1400,
    )
    assert (str(sync.mcast_group), sync.mcast_port, sync.mcast_ttl) == ("239.0.0.5", 8849, 2)
    assert not [r for r in reports if not r.startswith("note")], reports
    assert "lvs_timeouts tcp 900 tcpfin 60 udp 200 (line 3)" in result.yaml


def test_settings_without_virtual_servers_still_make_the_backend(plugins: Plugins) -> None:
    """The instance's obsolete lvs_sync_daemon_interface, and no virtual server at all: the
    ipvs backend is written for the sync daemon alone."""
    _, model, reports = convert(
        INSTANCE.replace("interface eth0", "interface eth0\n    lvs_sync_daemon_interface eth1")
        + "global_defs {\n lvs_sync_daemon eth2 NOSUCH\n}\n",
        plugins,
    )
    sync = model.backends["ipvs"].config.sync_daemon
    assert (sync.interface, sync.vrrp_instance) == ("eth1", "VI_1")
    assert any("obsolete; read as global_defs' lvs_sync_daemon eth1 VI_1" in r for r in reports)
    assert any("no vrrp_instance 'NOSUCH'" in r for r in reports), reports


def test_unknown_group_is_reported(plugins: Plugins) -> None:
    result = convert_text(
        "virtual_server group NOPE {\n real_server 192.0.2.13 80 {\n }\n}\n",
        "keepalived.conf",
        config_id="test",
        plugins=plugins,
    )
    assert any("no virtual_server_group ['NOPE']" in str(r) for r in result.reports)
