"""keepalived keywords → halo's YAML: what is mapped, how keepalived's rules are kept, what
is reported, and what is an error."""

from __future__ import annotations

from typing import Any

import pytest

from halo_backend_vip.plugin import VipInstanceOptions
from halo_core import plugins as plugin_loader
from halo_core.config import load_text
from halo_core.config.model import HaloConfig
from halo_core.plugins import Plugins
from halo_tool_convert import ConvertError, Result, convert_text

VI = """
vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 51
{body}
    virtual_ipaddress {{
        {vip}
    }}
}}
"""


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return plugin_loader.load()


def convert(text: str, plugins: Plugins) -> tuple[Result, HaloConfig]:
    result = convert_text(text, "keepalived.conf", config_id="test", plugins=plugins)
    return result, load_text(result.yaml, "out.yaml", plugins).model


def instance(body: str, plugins: Plugins, vip: str = "192.0.2.1") -> tuple[Result, Any]:
    result, model = convert(VI.format(body=body, vip=vip), plugins)
    return result, model.vrrp_instances["VI_1"]


def errors(text: str, plugins: Plugins) -> list[str]:
    with pytest.raises(ConvertError) as exc:
        convert_text(text, "keepalived.conf", config_id="test", plugins=plugins)
    return exc.value.lines


def reports(result: Result) -> list[str]:
    return [str(r) for r in result.reports]


# ------------------------------------------------------------------------------ instances


def test_instance_basics(plugins: Plugins) -> None:
    _, vi = instance(
        "state MASTER\npriority 150\nadvert_int 2\nauthentication {\nauth_type PASS\n"
        "auth_pass 1111\n}\ngarp_master_delay 1",
        plugins,
        "192.0.2.1/24 dev eth0 label eth0:1 scope global",
    )
    assert (vi.state, vi.priority, vi.advert_int, vi.version) == ("MASTER", 150, 2, 2)
    assert vi.authentication.auth_pass == "1111"
    assert str(vi.virtual_ipaddress[0]) == "192.0.2.1/24 dev eth0 label eth0:1 scope global"
    assert vi.extensions[VipInstanceOptions].garp_master_delay == 1


def test_state_master_without_priority_is_the_address_owner(plugins: Plugins) -> None:
    # keepalived's vrrp_complete_instance: no priority, state MASTER -> priority 255
    result, vi = instance("state MASTER", plugins)
    assert vi.priority == 255
    assert any("keepalived makes the instance the address owner" in r for r in reports(result))
    _, vi = instance("state BACKUP", plugins)
    assert vi.priority == 100
    _, vi = instance("state MASTER\npriority 150", plugins)
    assert vi.priority == 150


def test_nopreempt_is_kept_with_backup_and_dropped_with_master(plugins: Plugins) -> None:
    _, vi = instance("state BACKUP\nnopreempt\npreempt_delay 5", plugins)
    assert vi.nopreempt and vi.preempt_delay == 5
    result, vi = instance("state MASTER\npriority 150\nnopreempt\npreempt_delay 5", plugins)
    assert not vi.nopreempt and vi.preempt_delay == 0
    assert (
        "note: keepalived.conf:7: nopreempt: keepalived ignores it with state MASTER"
        in (reports(result)[0])
    )
    assert "# nopreempt (line 7) left out: keepalived ignores it with state MASTER" in result.yaml
    _, vi = instance("nopreempt\npreempt", plugins)
    assert not vi.nopreempt


def test_ipv6_instances_use_vrrp3_and_no_authentication(plugins: Plugins) -> None:
    result, vi = instance(
        "authentication {\nauth_pass x\n}\nadvert_int 0.333", plugins, "2001:db8::1/64"
    )
    assert vi.version == 3 and vi.authentication is None
    assert vi.advert_int == pytest.approx(0.33)  # keepalived rounds to centiseconds
    assert any("VRRPv3 has no authentication" in r for r in reports(result))


def test_global_vrrp_version(plugins: Plugins) -> None:
    _, model = convert(
        "global_defs {\nvrrp_version 3\n}\n" + VI.format(body="", vip="192.0.2.1"), plugins
    )
    assert model.vrrp_instances["VI_1"].version == 3


def test_v2_advert_int_is_rounded_and_auth_pass_truncated(plugins: Plugins) -> None:
    result, vi = instance("advert_int 2.5\nauthentication {\nauth_pass 123456789\n}", plugins)
    assert vi.advert_int == 3  # keepalived rounds half up, to whole seconds
    assert vi.authentication.auth_pass == "12345678"
    assert sorted(r.keyword for r in result.notes) == ["advert_int", "auth_pass"]


def test_an_address_of_the_other_family_is_ignored_as_keepalived_ignores_it(
    plugins: Plugins,
) -> None:
    text = VI.format(body="", vip="192.0.2.1\n2001:db8::1")
    result, model = convert(text, plugins)
    vi = model.vrrp_instances["VI_1"]
    assert [str(v) for v in vi.virtual_ipaddress] == ["192.0.2.1/32"]
    assert vi.virtual_ipaddress_excluded == []
    assert [r.kind for r in result.reports if "2001:db8::1" in r.message] == ["warning"]


def test_tracking(plugins: Plugins) -> None:
    text = (
        'vrrp_script chk {\nscript "/bin/true"\nweight -10 reverse\n}\n'
        "track_file tf {\nfile /run/x\nweight 3\n}\n"
        + VI.format(
            body="track_script {\nchk\n}\ntrack_interface {\neth1 weight 5\n}\n"
            "track_file {\ntf weight -4\n}",
            vip="192.0.2.1",
        )
    )
    _, model = convert(text, plugins)
    tracks = model.vrrp_instances["VI_1"].track
    assert [(t.check, t.interface, t.file, t.weight, t.reverse) for t in tracks] == [
        ("chk", None, None, None, True),
        (None, "eth1", None, 5, False),
        (None, None, "/run/x", -4, False),
    ]
    assert model.checks["chk"].config.weight == -10


def test_sync_group_members_lose_weighted_tracking(plugins: Plugins) -> None:
    text = (
        "vrrp_script chk {\nscript /bin/true\nweight 10\n}\n"
        "vrrp_sync_group G {\ngroup {\nVI_1\n}\n}\n"
        + VI.format(
            body="track_script {\nchk\n}\ntrack_interface {\neth1 weight 5\n}", vip="192.0.2.1"
        )
    )
    result, model = convert(text, plugins)
    tracks = model.vrrp_instances["VI_1"].track
    assert [(t.interface, t.weight) for t in tracks] == [("eth1", 0)]
    assert model.vrrp_sync_groups["G"].group == ["VI_1"]
    assert len(result.notes) >= 2


def test_notify_scripts_become_a_script_notifier(plugins: Plugins) -> None:
    if "script" not in plugins.names("notifier"):
        pytest.skip("no script notifier plugin")
    _, model = convert(
        VI.format(body='notify_master "/bin/echo master"\nnotify /bin/log.sh', vip="192.0.2.1"),
        plugins,
    )
    n = model.notifiers["VI_1-notify"]
    assert n.type == "script"
    assert (n.config.notify_master, n.config.notify) == ("/bin/echo master", "/bin/log.sh")
    assert n.config.instances == ["VI_1"] and n.config.events == ["vrrp_state"]
    assert model.global_.enable_script_security is False  # keepalived's default


# ------------------------------------------------------------------------------ LVS


def test_virtual_server_and_checker_defaults(plugins: Plugins) -> None:
    text = """
virtual_server 192.0.2.100 80 {
    delay_loop 6
    lb_algo wrr
    lb_kind DR
    persistence_timeout
    real_server 192.0.2.40 8080 {
        weight 2
        TCP_CHECK {
        }
        HTTP_GET {
            url {
                path /health
            }
        }
        MISC_CHECK {
            misc_path "/bin/check x"
        }
    }
}
"""
    _, model = convert(text, plugins)
    vs = model.virtual_servers[0]
    assert (vs.lb_algo, vs.lb_kind, vs.persistence_timeout, vs.delay_loop) == ("wrr", "DR", 360, 6)
    rs = vs.real_servers[0]
    assert (str(rs.address), rs.port, rs.weight) == ("192.0.2.40", 8080, 2)
    tcp, http, misc = (c.config for c in rs.checks)
    # keepalived's defaults where halo's differ: connect_timeout 5, retry 1, HTTP 3 s retry delay
    assert (tcp.timeout, tcp.retry, tcp.delay_before_retry) == (5, 1, 1)
    assert (http.timeout, http.retry, http.delay_before_retry) == (5, 1, 3)
    assert (misc.timeout, misc.retry, misc.script) == (None, 0, "/bin/check x")


# ------------------------------------------------------------------------------ reporting


def test_unsupported_keywords_are_reported_with_file_and_line(plugins: Plugins) -> None:
    result, _ = instance("use_ipvlan", plugins)
    assert reports(result) == [
        "unsupported: keepalived.conf:5: use_ipvlan: halo's use_vmac has no such option (one"
        " macvlan per instance, RFC 5798's MAC)"
    ]
    assert "# unsupported (line 5): use_ipvlan - halo's use_vmac has no such option" in result.yaml


def test_a_missing_plugin_makes_its_keywords_unsupported(plugins: Plugins) -> None:
    blocked = [i.name for i in plugins.infos if ("backend", "vip") not in i.types]
    no_plugins = plugin_loader.load(block=blocked)
    text = "vrrp_script chk {\nscript /bin/true\n}\n" + VI.format(
        body="track_script {\nchk\n}", vip="192.0.2.1"
    )
    result = convert_text(text, "keepalived.conf", config_id="x", plugins=no_plugins)
    assert [r.keyword for r in result.unsupported] == ["vrrp_script", "chk"]


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "vrrp_instnace VI_1 {\n}\n",
            "warning: keepalived.conf:1: 'vrrp_instnace' is not a keepalived block; ignored"
            " (did you mean 'vrrp_instance'?)",
        ),
        (
            "vrrp_instnace VI_1\n",
            "warning: keepalived.conf:1: 'vrrp_instnace' is not a keepalived keyword; ignored",
        ),
        (
            VI.format(body="priorty 100", vip="192.0.2.1"),
            "warning: keepalived.conf:5: 'priorty' is not a keepalived keyword in vrrp_instance"
            " VI_1; ignored (did you mean 'priority'?)",
        ),
        (
            VI.format(body="", vip="192.0.2.300"),
            "warning: keepalived.conf:7: bad address '192.0.2.300'; ignored",
        ),
        (
            VI.format(body="priority 0", vip="192.0.2.1"),
            "warning: keepalived.conf:5: priority: 0 is out of range (1 to 255); ignored",
        ),
        (
            VI.format(body="state SLAVE", vip="192.0.2.1"),
            "warning: keepalived.conf:5: state must be MASTER or BACKUP, not 'SLAVE'; ignored",
        ),
        (
            VI.format(body="unicast_peer {\n192.0.2.x\n}", vip="192.0.2.1"),
            "warning: keepalived.conf:6: unicast_peer: bad address '192.0.2.x'; ignored",
        ),
        (
            VI.format(body="interface eth0 {\n}", vip="192.0.2.1"),
            "warning: keepalived.conf:5: interface takes no { } block; ignored",
        ),
        (
            "virtual_server 192.0.2.1 80 {\nreal_server 192.0.2.999 80 {\n}\n}\n",
            "warning: keepalived.conf:2: real_server: bad address '192.0.2.999'; ignored",
        ),
        (
            "vrrp_instance VI_1 {\nvirtual_router_id 1\n}\n",
            "warning: keepalived.conf:1: vrrp_instance VI_1 has no interface",
        ),
    ],
)
def test_what_keepalived_complains_about_is_a_warning_and_left_out(
    plugins: Plugins, text: str, message: str
) -> None:
    result, _ = convert(text, plugins)
    got = [str(r) for r in result.warnings]
    assert any(line.startswith(message) for line in got), got


def test_halo_s_own_checks_are_reported_at_the_keepalived_line(plugins: Plugins) -> None:
    text = VI.format(body="", vip="192.0.2.1") + VI.format(body="", vip="192.0.2.2").replace(
        "VI_1", "VI_2"
    )
    result, model = convert(text, plugins)
    assert [str(r) for r in result.warnings] == [
        "warning: keepalived.conf:13: in halo's terms, vrrp_instances.VI_2.virtual_router_id:"
        " VRID 51 on eth0 (IPv4) is already used by VI_1; left out"
    ]
    assert list(model.vrrp_instances) == ["VI_1"]


def test_ah_says_a_mixed_pair_will_not_agree(plugins: Plugins) -> None:
    body = "authentication {\nauth_type AH\nauth_pass secret\n}"
    result, vi = instance(body, plugins)
    (report,) = result.unsupported
    assert "will not accept each other's adverts" in report.message
    assert "auth_type PASS, or none" in report.message
    assert vi.authentication is None
