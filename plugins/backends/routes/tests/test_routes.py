"""The routes backend: its route and rule lines, their conversion from keepalived.conf, and
on real kernels (lab namespaces) the routes and rules following mastership between two
halo nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from halo_backend_routes.hooks import wanted_sets
from halo_backend_routes.plugin import (
    RoutesGlobalOptions,
    RoutesInstanceOptions,
    VirtualRoute,
    VirtualRule,
)
from halo_tool_lab.halo import Halo
from halo_tool_lab.netns import Host, wait_until
from halo_tool_lab.pytest_plugin import HaloFactory, LabFactory
from halo_tool_lab.testing import config_errors, load_config


@pytest.mark.parametrize(
    ("line", "again"),
    [
        ("198.51.100.0/24 via 192.0.2.254", "198.51.100.0/24 via 192.0.2.254"),
        ("to 198.51.100.0/24 dev eth0 scope link", "198.51.100.0/24 dev eth0 scope link"),
        (
            "src 192.0.2.1 203.0.113.0/24 gw 192.0.2.254 dev eth1 table 100 metric 5",
            "src 192.0.2.1 203.0.113.0/24 via 192.0.2.254 dev eth1 table 100 metric 5",
        ),
        ("blackhole 198.51.100.128/25", "blackhole 198.51.100.128/25"),
        ("2001:db8:1::/48 via 2001:db8::1", "2001:db8:1::/48 via 2001:db8::1"),
        # keepalived's older multipath form: via moves to the first nexthop, 'or' the second
        (
            "203.0.113.0/24 via 192.0.2.1 or 192.0.2.2",
            "203.0.113.0/24 nexthop via 192.0.2.1 nexthop via 192.0.2.2",
        ),
        (
            "203.0.113.0/24 via 192.0.2.1 dev eth0 or 192.0.2.2 metric 5",
            "203.0.113.0/24 metric 5 nexthop via 192.0.2.1 dev eth0 nexthop via 192.0.2.2 dev eth0",
        ),
        (
            "203.0.113.0/24 table 7 nexthop via 192.0.2.1 dev eth0 onlink weight 1"
            " nexthop via 192.0.2.2 dev eth1 weight 256",
            "203.0.113.0/24 table 7 nexthop via 192.0.2.1 dev eth0 weight 1 onlink"
            " nexthop via 192.0.2.2 dev eth1 weight 256",
        ),
        (
            "2001:db8:1::/48 nexthop via inet6 2001:db8::1 nexthop dev eth1",
            "2001:db8:1::/48 nexthop via 2001:db8::1 nexthop dev eth1",
        ),
    ],
)
def test_route_lines(line: str, again: str) -> None:
    assert str(VirtualRoute.parse(line)) == again
    assert VirtualRoute.parse(again) == VirtualRoute.parse(line)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("198.51.100.0/24", "needs via ADDRESS or dev INTERFACE"),
        ("198.51.100.0/24 via 2001:db8::1", "2001:db8::1 is not of the family of"),
        ("198.51.100.0/24 or 192.0.2.2", "'or' needs via ADDRESS before it"),
        ("198.51.100.0/24 via 192.0.2.1 or", "'or' needs a gateway address after it"),
        ("198.51.100.0/24 via 192.0.2.1 or 192.0.2.2 or 192.0.2.3", "only one 'or'"),
        ("198.51.100.0/24 via 192.0.2.1 or 192.0.2.2 nexthop dev eth0", "'or' and nexthop"),
        ("198.51.100.0/24 via 192.0.2.1 or 2001:db8::1", "not of the family"),
        ("198.51.100.0/24 nexthop", "a nexthop needs via ADDRESS or dev INTERFACE"),
        ("198.51.100.0/24 nexthop via", "nexthop via needs a value"),
        ("198.51.100.0/24 nexthop via 192.0.2.1 weight 0", "weight '0' must be a number from 1"),
        ("198.51.100.0/24 nexthop via 192.0.2.1 metric 3", "unknown nexthop option 'metric'"),
        ("198.51.100.0/24 nexthop via 192.0.2.1 via 192.0.2.2", "nexthop via is given twice"),
        ("198.51.100.0/24 via 192.0.2.9 nexthop via 192.0.2.1", "via and dev in each nexthop"),
        ("blackhole 198.51.100.0/24 nexthop via 192.0.2.1", "has no via, dev or nexthop"),
        ("blackhole 198.51.100.0/24 dev eth0", "a blackhole route has no via, dev or nexthop"),
        ("198.51.100./24 dev eth0", "'198.51.100./24' is not an address or prefix"),
        ("198.51.100.0/24 dev eth0 metric x", "metric 'x' must be a number"),
        ("198.51.100.0/24 dev eth0 mtu 1400", "unknown option 'mtu'"),
    ],
)
def test_bad_route_lines(line: str, why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("(", r"\(")):
        VirtualRoute.parse(line)


def test_rule_lines() -> None:
    rule = VirtualRule.parse("from 192.0.2.100 to 203.0.113.0/24 fwmark 7 pref 100 table 100")
    assert str(rule) == "from 192.0.2.100/32 to 203.0.113.0/24 fwmark 7 priority 100 table 100"
    assert VirtualRule.parse("from 2001:db8::/64 lookup 5").family == 6
    with pytest.raises(ValueError, match="needs table N"):
        VirtualRule.parse("from 192.0.2.0/24")


def test_protocol_by_name_or_number() -> None:
    route = VirtualRoute.parse("198.51.100.0/24 dev eth0 protocol static")
    assert (route.proto, str(route)) == (4, "198.51.100.0/24 dev eth0 proto 4")
    rule = VirtualRule.parse("from 192.0.2.0/24 protocol 99 table 2")
    assert (rule.protocol, str(rule)) == (99, "from 192.0.2.0/24 protocol 99 table 2")
    with pytest.raises(ValueError, match="protocol 'x' must be a number"):
        VirtualRule.parse("from 192.0.2.0/24 protocol x table 2")


def test_rules_without_priority_numbered_as_keepalived_does() -> None:
    # keepalived (vrrp_iprule.c): 16384 for the first rule of a family without a priority,
    # one less for each next one, in the order of the file; static rules come first here
    model = load_config(
        "global:\n"
        "  static_rules:\n"
        "    - from 192.0.2.0/24 table 1\n"
        "    - from 2001:db8::/64 table 1\n"
        "    - from 198.51.100.0/24 priority 100 table 1\n"
        "vrrp_instances:\n"
        "  VI_1:\n"
        "    interface: eth0\n"
        "    virtual_router_id: 51\n"
        "    virtual_rules: [to 203.0.113.0/24 table 2, to 2001:db8:1::/48 table 2]\n"
    ).model
    static, instances = wanted_sets(model)
    assert [r.priority for r in static.virtual_rules] == [16384, 16384, 100]
    assert [r.priority for r in instances["VI_1"].virtual_rules] == [16383, 16383]
    assert model.global_.extensions[RoutesGlobalOptions].static_rules[0].priority is None


def test_config_errors_point_at_the_line(tmp_path: Path) -> None:
    text = (
        "vrrp_instances:\n"
        "  VI_1:\n"
        "    interface: eth0\n"
        "    virtual_router_id: 51\n"
        "    virtual_routes:\n"
        "      - 198.51.100.0/24 via 192.0.2.254\n"
        "      - 198.51.100.0/24\n"
        "    virtual_rules: [from 192.0.2.0/24]\n"
    )
    assert config_errors(text) == [
        "f.yaml:7:9: vrrp_instances.VI_1.virtual_routes[1]: needs via ADDRESS or dev INTERFACE",
        "f.yaml:8:21: vrrp_instances.VI_1.virtual_rules[0]: needs table N",
    ]
    good = text.replace("      - 198.51.100.0/24\n", "").replace(
        "[from 192.0.2.0/24]", "[from 192.0.2.0/24 table 7]"
    )
    model = load_config(good).model
    opts = model.vrrp_instances["VI_1"].extensions[RoutesInstanceOptions]
    assert [str(r) for r in opts.virtual_routes] == ["198.51.100.0/24 via 192.0.2.254"]
    assert [str(r) for r in opts.virtual_rules] == ["from 192.0.2.0/24 table 7"]


def test_keepalived_blocks_convert() -> None:
    from halo_tool_convert import convert_text

    result = convert_text(
        "vrrp_instance VI_1 {\n"
        "  interface eth0\n"
        "  virtual_router_id 51\n"
        "  virtual_ipaddress {\n    192.0.2.100\n  }\n"
        "  virtual_routes {\n"
        "    src 192.0.2.100 198.51.100.0/24 via 192.0.2.254 dev eth0\n"
        "    203.0.113.0/24 via 192.0.2.1 or 192.0.2.2\n"
        "    203.0.113.0/24 via 192.0.2.1 or\n"
        "    blackhole 198.51.100.128/25\n"
        "  }\n"
        "  virtual_rules {\n    from 192.0.2.100 table 100\n    to 192.0.2./24 table 2\n  }\n"
        "}\n"
        "static_routes {\n  198.51.100.0/24 via 192.0.2.254 dev eth0\n}\n"
        "static_rules {\n  from 192.0.2.0/24 table 1\n  to 192.0.2./24 table 1\n}\n",
        config_id="x",
    )
    assert [str(r) for r in result.reports if r.kind != "note"] == [
        "warning: keepalived.conf:10: virtual_routes: '203.0.113.0/24 via 192.0.2.1 or':"
        " 'or' needs a gateway address after it; ignored",
        "warning: keepalived.conf:15: virtual_rules: 'to 192.0.2./24 table 2':"
        " '192.0.2./24' is not an address or prefix; ignored",
        "warning: keepalived.conf:23: static_rules: 'to 192.0.2./24 table 1':"
        " '192.0.2./24' is not an address or prefix; ignored",
    ]
    # keepalived's static blocks go to global:
    assert "  static_routes:\n    - 198.51.100.0/24 via 192.0.2.254 dev eth0\n" in result.yaml
    assert "  static_rules:\n    - from 192.0.2.0/24 table 1\n" in result.yaml
    model = load_config(result.yaml).model
    assert len(model.global_.extensions[RoutesGlobalOptions].static_routes) == 1
    assert (
        "    virtual_routes:\n      - src 192.0.2.100 198.51.100.0/24 via 192.0.2.254 dev eth0\n"
    ) in result.yaml
    assert "      - blackhole 198.51.100.128/25\n" in result.yaml
    # the multipath route, written the way keepalived now documents it
    assert "      - 203.0.113.0/24 nexthop via 192.0.2.1 nexthop via 192.0.2.2\n" in result.yaml
    assert "    virtual_rules:\n      - from 192.0.2.100/32 table 100\n" in result.yaml


# ---------------------------------------------------------------------------------- on a lab


def config(router: str, priority: int, routes_and_rules: str | None = None) -> str:
    if routes_and_rules is None:
        routes_and_rules = (
            "    virtual_routes:\n"
            "      - 198.51.100.0/24 dev eth0 scope link\n"
            "      - blackhole 203.0.113.0/24 table 100\n"
            "    virtual_rules:\n"
            "      - from 192.0.2.100 priority 1000 table 100\n"
        )
    return (
        f"global:\n  router_id: {router}\n  log_format: json\n"
        "vrrp_instances:\n"
        "  VI_1:\n"
        "    interface: eth0\n"
        "    virtual_router_id: 51\n"
        f"    priority: {priority}\n"
        "    version: 3\n"
        "    advert_int: 0.1\n"
        "    virtual_ipaddress: [192.0.2.100/24]\n" + routes_and_rules
    )


def routes(host: Host) -> set[str]:
    main = json.loads(host.run("ip", "-j", "route", "show", "198.51.100.0/24").stdout or "[]")
    shown = host.run("ip", "-j", "route", "show", "table", "100", check=False)
    # the table exists only while a route is in it
    t100 = json.loads(shown.stdout or "[]") if shown.returncode == 0 else []
    rules = json.loads(host.run("ip", "-j", "rule", "show").stdout or "[]")
    out = {f"main {r['dst']} {r.get('dev', '')}" for r in main}
    out |= {f"t100 {r.get('type', 'unicast')} {r['dst']}" for r in t100}
    out |= {f"rule {r['priority']} {r.get('src')} {r.get('table')}" for r in rules}
    return {x for x in out if not x.startswith("rule") or x.startswith("rule 1000")}


HELD = {
    "main 198.51.100.0/24 eth0",
    "t100 blackhole 203.0.113.0/24",
    "rule 1000 192.0.2.100 100",
}


def master_and_backup(
    lab: LabFactory, start_halo: HaloFactory, routes_and_rules: str | None = None
) -> tuple[Host, Host, Halo, Halo]:
    """h1 MASTER (150) and h2 BACKUP (100) of VI_1, both with *routes_and_rules*."""
    h1, h2 = lab(2).hosts
    a = start_halo(h1, config("h1", 150, routes_and_rules), state={"VI_1": "MASTER"})
    b = start_halo(h2, config("h2", 100, routes_and_rules), state={"VI_1": "BACKUP"})
    return h1, h2, a, b


@pytest.mark.lab
def test_routes_follow_mastership(lab: LabFactory, start_halo: HaloFactory) -> None:
    h1, h2, a, b = master_and_backup(lab, start_halo)
    assert wait_until(lambda: routes(h1) == HELD, 5.0, 0.05), (routes(h1), a.log)
    assert routes(h2) == set()

    a.kill9()  # a dead master cannot remove anything; the backup takes over and adds them
    assert b.wait_state("VI_1", "MASTER"), b.log
    assert wait_until(lambda: routes(h2) == HELD, 5.0, 0.05), (routes(h2), b.log)

    b.stop()  # a graceful stop removes them
    assert routes(h2) == set(), b.log


MULTIPATH_ROUTES = (
    "    virtual_routes:\n"
    "      - 198.51.100.0/24 via 192.0.2.253 or 192.0.2.254\n"
    "      - 203.0.113.0/24 table 100 nexthop via 192.0.2.253 dev eth0 weight 3"
    " nexthop via 192.0.2.254 dev eth0\n"
    "      - 2001:db8:1::/64 nexthop via 2001:db8::253 dev eth0 nexthop via 2001:db8::254"
    " dev eth0 weight 2\n"
)


def multipath_routes(host: Host) -> set[str]:
    """The lab's routes as ``ip route`` shows them: each with its nexthops and weights."""
    out = set()
    for family, table in (("-4", "main"), ("-4", "100"), ("-6", "main")):
        shown = host.run("ip", family, "-j", "route", "show", "table", table, check=False)
        for r in json.loads(shown.stdout or "[]") if shown.returncode == 0 else []:
            if r["dst"].startswith(("198.51.100.", "203.0.113.", "2001:db8:1:")):
                hops = " ".join(
                    f"{h['gateway']}@{h['dev']}*{h.get('weight', 1)}" for h in r.get("nexthops", [])
                )
                out.add(f"{table} {r['dst']} proto {r.get('protocol')} {hops}")
    return out


MULTIPATH = {
    "main 198.51.100.0/24 proto keepalived 192.0.2.253@eth0*1 192.0.2.254@eth0*1",
    "100 203.0.113.0/24 proto keepalived 192.0.2.253@eth0*3 192.0.2.254@eth0*1",
    "main 2001:db8:1::/64 proto keepalived 2001:db8::253@eth0*1 2001:db8::254@eth0*2",
}


@pytest.mark.lab
def test_multipath_routes_follow_mastership(lab: LabFactory, start_halo: HaloFactory) -> None:
    h1, h2, a, b = master_and_backup(lab, start_halo, MULTIPATH_ROUTES)
    assert wait_until(lambda: multipath_routes(h1) == MULTIPATH, 5.0, 0.05), (
        multipath_routes(h1),
        a.log[-800:],
    )
    assert multipath_routes(h2) == set()

    # h1 drops below h2: h2 preempts, h1 becomes BACKUP and removes its multipath routes
    a.reload(config("h1", 50, MULTIPATH_ROUTES))
    assert b.wait_state("VI_1", "MASTER"), b.log[-800:]
    assert a.wait_state("VI_1", "BACKUP"), a.log[-800:]
    assert wait_until(lambda: multipath_routes(h1) == set(), 5.0, 0.05), multipath_routes(h1)
    assert wait_until(lambda: multipath_routes(h2) == MULTIPATH, 5.0, 0.05), (
        multipath_routes(h2),
        b.log[-800:],
    )
    b.stop()
    assert multipath_routes(h2) == set(), b.log[-800:]


def static_config(router: str, priority: int, routes: str, rules: str) -> str:
    return (
        f"global:\n  router_id: {router}\n  log_format: json\n"
        f"  static_routes: [{routes}]\n"
        f"  static_rules: [{rules}]\n"
        "vrrp_instances:\n"
        "  VI_1:\n"
        "    interface: eth0\n"
        "    virtual_router_id: 51\n"
        f"    priority: {priority}\n"
        "    version: 3\n"
        "    advert_int: 0.1\n"
        "    virtual_ipaddress: [192.0.2.100/24]\n"
        "    virtual_rules: [from 192.0.2.100 table 100]\n"
    )


def _prefix(rule: dict[str, object], key: str) -> str | None:
    if rule.get(key, "all") == "all":
        return None
    return f"{rule[key]}/{rule.get(key + 'len', 32)}"


def kernel_view(host: Host) -> set[str]:
    """The lab routes (198.51.100.0/24, 203.0.113.0/24, any table) and every rule that is
    not the kernel's own, with their protocols and priorities."""
    shown = json.loads(host.run("ip", "-j", "route", "show", "table", "all").stdout or "[]")
    rules = json.loads(host.run("ip", "-j", "rule", "show").stdout or "[]")
    out = {
        f"route {r['dst']} {r.get('dev', r.get('type'))} proto {r.get('protocol')}"
        for r in shown
        if r["dst"].startswith(("198.51.100.", "203.0.113."))
    }
    out |= {
        f"rule {r['priority']} {_prefix(r, 'src') or _prefix(r, 'dst')} {r['table']}"
        f" proto {r.get('protocol', '?')}"
        for r in rules
        if r["priority"] not in (0, 32766, 32767)
    }
    return out


@pytest.mark.lab
def test_static_routes_and_rules_whatever_the_state(
    lab: LabFactory, start_halo: HaloFactory
) -> None:
    lb = lab(2)
    h1, h2 = lb.hosts
    routes = "198.51.100.0/24 dev eth0 scope link, blackhole 203.0.113.0/24 table 7"
    rules = "from 198.51.100.0/24 table 7, to 203.0.113.0/24 priority 50 table 7"
    start_halo(h1, config("h1", 150), state={"VI_1": "MASTER"})
    b = start_halo(h2, static_config("h2", 100, routes, rules), state={"VI_1": "BACKUP"})
    static = {
        "route 198.51.100.0/24 eth0 proto keepalived",
        "route 203.0.113.0/24 blackhole proto keepalived",
        # keepalived's numbering: the static rule first (16384), then the instance's
        "rule 16384 198.51.100.0/24 7 proto keepalived",
        "rule 50 203.0.113.0/24 7 proto keepalived",
    }
    # a BACKUP has them: they do not follow the VRRP state
    assert wait_until(lambda: kernel_view(h2) == static, 5.0, 0.05), (kernel_view(h2), b.log[-800:])

    # a reload removes what is no longer configured and adds the new; the rest stays
    b.reload(static_config("h2", 100, "198.51.100.0/24 dev eth0 scope link proto 77", rules))
    changed = (static - {"route 203.0.113.0/24 blackhole proto keepalived"}) | {
        "route 198.51.100.0/24 eth0 proto 77"
    }
    changed.discard("route 198.51.100.0/24 eth0 proto keepalived")
    assert wait_until(lambda: kernel_view(h2) == changed, 5.0, 0.05), (
        kernel_view(h2),
        b.log[-800:],
    )

    b.stop()  # keepalived removes them on stop, and so does halo
    assert kernel_view(h2) == set(), b.log
