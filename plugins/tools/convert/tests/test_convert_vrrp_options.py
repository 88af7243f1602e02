"""keepalived's VRRP options halo runs (use_vmac, accept/no_accept, dont_track_primary,
unicast_ttl, check_unicast_src, default_interface, dynamic_interfaces, the instance-level
garp_* settings, vrrp_script init_fail): converted to halo's keys, and the result loads."""

from __future__ import annotations

from typing import Any

import pytest

from halo_backend_vip.plugin import VipInstanceOptions
from halo_core import plugins as plugin_loader
from halo_core.config import load_text
from halo_core.config.model import HaloConfig
from halo_core.plugins import Plugins
from halo_tool_convert import Result, convert_text


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return plugin_loader.load()


def convert(text: str, plugins: Plugins) -> tuple[Result, HaloConfig]:
    result = convert_text(text, "keepalived.conf", config_id="test", plugins=plugins)
    return result, load_text(result.yaml, "out.yaml", plugins).model


def instance(body: str, plugins: Plugins, head: str = "") -> tuple[Result, Any]:
    text = (
        f"{head}vrrp_instance VI_1 {{\n    interface eth0\n    virtual_router_id 51\n"
        f"{body}\n    virtual_ipaddress {{\n        192.0.2.1\n    }}\n}}\n"
    )
    result, model = convert(text, plugins)
    return result, model.vrrp_instances["VI_1"]


def reports(result: Result) -> list[str]:
    return [str(r) for r in result.reports]


def test_vmac_and_flags(plugins: Plugins) -> None:
    result, vi = instance(
        "use_vmac\nvmac_xmit_base\ndont_track_primary\nno_accept\nunicast_ttl 64\n"
        "check_unicast_src\nunicast_peer {\n192.0.2.9\n}",
        plugins,
    )
    assert reports(result) == []
    assert (vi.use_vmac, vi.vmac_name, vi.vmac_xmit_base) == (True, "vrrp.51", True)
    assert (vi.dont_track_primary, vi.accept, vi.unicast_ttl, vi.check_unicast_src) == (
        True,
        False,
        64,
        True,
    )


def test_use_vmac_with_a_name_and_a_mac(plugins: Plugins) -> None:
    result, vi = instance("use_vmac vip51 02:00:00:00:00:51", plugins)
    assert vi.use_vmac == "vip51" and vi.accept is True
    assert reports(result) == [
        "unsupported: keepalived.conf:4: use_vmac: a MAC of one's own (02:00:00:00:00:51):"
        " halo uses 00:00:5e:00:01:VRID"
    ]


def test_accept_and_instance_garp_settings(plugins: Plugins) -> None:
    result, vi = instance(
        "accept\ngarp_master_repeat 2\ngarp_master_refresh 60\ngarp_master_refresh_repeat 3\n"
        "garp_lower_prio_delay 7\ngarp_lower_prio_repeat 1",
        plugins,
    )
    assert reports(result) == [] and vi.accept is True
    own = vi.extensions[VipInstanceOptions]
    assert (own.garp_master_repeat, own.garp_master_refresh, own.garp_master_refresh_repeat) == (
        2,
        60,
        3,
    )
    assert (own.garp_lower_prio_delay, own.garp_lower_prio_repeat) == (7, 1)


def test_global_options(plugins: Plugins) -> None:
    text = (
        "global_defs {\n    default_interface eth1\n    dynamic_interfaces allow_if_changes\n"
        "    vrrp_check_unicast_src\n    vrrp_garp_lower_prio_delay 3\n}\n"
        "vrrp_instance VI_1 {\n    virtual_router_id 51\n"
        "    virtual_ipaddress {\n        192.0.2.1\n    }\n}\n"
        "vrrp_script chk {\n    script /bin/true\n    init_fail\n}\n"
        "vrrp_instance VI_2 {\n    interface eth0\n    virtual_router_id 52\n"
        "    track_script {\n        chk\n    }\n"
        "    virtual_ipaddress {\n        192.0.2.2\n    }\n}\n"
    )
    result, model = convert(text, plugins)
    g = model.global_
    assert (g.default_interface, g.dynamic_interfaces, g.check_unicast_src) == ("eth1", True, True)
    assert model.vrrp_instances["VI_1"].interface == "eth1"  # default_interface
    assert model.checks["chk"].config.init_fail is True
    assert model.backends["vip"].config.garp_lower_prio_delay == 3
    assert [r.kind for r in result.reports] == ["note"] * 4, reports(result)
