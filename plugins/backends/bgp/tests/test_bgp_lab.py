"""The bgp backend against real routers: FRR and BIRD, each in its own namespace, with real
TCP traffic from a client that reaches the service address only through the router.

Each test runs once per router implementation. The nodes' speaker is ExaBGP (the plugin's
dependency); what the router forwards with is read from its kernel table.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bgplab import (
    NODE_AS,
    PORT,
    ROUTER_AS,
    VIP,
    VIP6,
    BirdRouter,
    FrrRouter,
    Router,
    Topology,
    ask,
    build,
    frr_available,
    remove_frr_dirs,
    serve,
    start_frr_daemon,
    start_node_frr,
    wait_answers,
)

from halo_tool_lab.halo import Halo
from halo_tool_lab.netns import Host, wait_until
from halo_tool_lab.pytest_plugin import HaloFactory, LabFactory
from halo_tool_lab.tools import needs_tools

ROUTERS = [
    pytest.param(FrrRouter, marks=needs_tools("vtysh"), id="frr"),
    pytest.param(BirdRouter, marks=needs_tools("bird", "birdc"), id="bird"),
]


EACH_ROUTER = pytest.mark.parametrize("router_class", ROUTERS)


@pytest.fixture
def topo(router_class: type[Router], lab: LabFactory, tmp_path: Path) -> Iterator[Topology]:
    if router_class is FrrRouter and (why := frr_available()):
        pytest.skip(why)
    t = build(lab(["n1", "n2", "r", "c"]), tmp_path)
    t.router_class = router_class
    try:
        yield t
    finally:
        t.lab.close()
        remove_frr_dirs()


def start_router(topo: Topology) -> Router:
    router: Router = topo.router_class(topo)
    return router


def peers_yaml(topo: Topology, node: Host) -> str:
    r = topo.router
    return (
        "    peers:\n"
        f"      - {{address: {r.ipv4}, peer_as: {ROUTER_AS}, local_address: {node.ipv4}}}\n"
        f'      - {{address: "{r.ipv6}", peer_as: {ROUTER_AS}, local_address: "{node.ipv6}"}}\n'
    )


def follow_config(topo: Topology, node: Host, priority: int) -> str:
    return (
        "vrrp_instances:\n"
        "  VI_4:\n    interface: eth0\n    virtual_router_id: 51\n"
        f"    priority: {priority}\n    version: 3\n    advert_int: 0.1\n"
        f"    virtual_ipaddress: [{VIP}/32]\n"
        "  VI_6:\n    interface: eth0\n    virtual_router_id: 52\n"
        f"    priority: {priority}\n    version: 3\n    advert_int: 0.1\n"
        f'    virtual_ipaddress: ["{VIP6}/128"]\n'
        "backends:\n  bgp:\n    type: bgp\n    mode: follow\n"
        f"    local_as: {NODE_AS}\n    hold_time: 3\n" + peers_yaml(topo, node)
    )


def anycast_config(topo: Topology, node: Host, ctl: Path) -> str:
    return (
        "checks:\n  web:\n"
        f"    type: tcp\n    connect_ip: 127.0.0.1\n    connect_port: {PORT}\n"
        "    interval: 0.2\n    timeout: 0.5\n"
        "backends:\n  bgp:\n    type: bgp\n    mode: anycast\n"
        f"    local_as: {NODE_AS}\n    hold_time: 3\n"
        f'    prefixes: [{VIP}/32, "{VIP6}/128"]\n    checks: [web]\n'
        "    communities: ['65001:100']\n" + peers_yaml(topo, node)
    )


def exabgp_pid(halo: Halo) -> int:
    """The pid of the ExaBGP a halo daemon runs: a child of its worker process (backends
    other than the address one run there), so searched among all its descendants."""

    def children(pid: str) -> list[str]:
        try:
            return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []

    todo, seen = children(str(halo.proc.pid)), []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"exabgp" in arg for arg in cmdline):
            return int(pid)
        todo += children(pid)
    raise AssertionError(f"no exabgp process under halo {halo.proc.pid}: {seen}")


def eventually(predicate: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    assert wait_until(predicate, timeout, 0.1), what


@EACH_ROUTER
def test_follow_mode_moves_the_route_with_the_master(
    topo: Topology, start_halo: HaloFactory
) -> None:
    router = start_router(topo)
    serve(topo)
    n1, n2 = topo.nodes
    h1 = start_halo(n1, follow_config(topo, n1, 100), state={"VI_4": "MASTER", "VI_6": "MASTER"})
    start_halo(n2, follow_config(topo, n2, 90), state={"VI_4": "BACKUP", "VI_6": "BACKUP"})
    assert router.wait_routes([str(n1.ipv4)]), router.routes()
    assert router.wait_routes([str(n1.ipv6)], VIP6), router.routes(VIP6)
    assert wait_answers(topo, {"n1"}), ask(topo)
    assert wait_answers(topo, {"n1"}, target=VIP6), ask(topo, target=VIP6)

    h1.kill9()  # n1's ExaBGP goes with it (it dies with its parent)
    assert router.wait_routes([str(n2.ipv4)]), router.routes()
    assert router.wait_routes([str(n2.ipv6)], VIP6), router.routes(VIP6)
    assert wait_answers(topo, {"n2"}), ask(topo)
    assert wait_answers(topo, {"n2"}, target=VIP6), ask(topo, target=VIP6)


@EACH_ROUTER
def test_anycast_spreads_over_healthy_nodes_and_withdraws_a_failing_one(
    topo: Topology, start_halo: HaloFactory
) -> None:
    router = start_router(topo)
    ctl = {n.name: topo.workdir / f"ctl-{n.name}" for n in topo.nodes}
    for n in topo.nodes:
        n.ip("addr", "add", f"{VIP}/32", "dev", "lo")
        n.ip("addr", "add", f"{VIP6}/128", "dev", "lo")
        ctl[n.name].mkdir()
        n.spawn(
            sys.executable,
            str(Path(__file__).resolve().parents[2] / "nftables" / "tests" / "farm.py"),
            "serve",
            n.name,
            "--port",
            str(PORT),
            "--ctl",
            str(ctl[n.name]),
            log=topo.workdir / f"farm-{n.name}.log",
        )
    n1, n2 = topo.nodes
    for n in topo.nodes:
        start_halo(n, anycast_config(topo, n, ctl[n.name]))
    both = sorted([str(n1.ipv4), str(n2.ipv4)])
    assert router.wait_routes(both), router.routes()
    assert router.wait_routes(sorted([str(n1.ipv6), str(n2.ipv6)]), VIP6), router.routes(VIP6)
    assert wait_answers(topo, {"n1", "n2"}), ask(topo)
    assert "65001:100" in router.communities(), router.communities()
    assert "65001:100" in router.communities(VIP6), router.communities(VIP6)

    (ctl["n1"] / f"down-{PORT}").write_text("")  # n1's web server stops: its check fails
    assert router.wait_routes([str(n2.ipv4)]), router.routes()
    assert router.wait_routes([str(n2.ipv6)], VIP6), router.routes(VIP6)
    assert wait_answers(topo, {"n2"}), ask(topo)
    assert set(ask(topo, 40)) == {"n2"}

    (ctl["n1"] / f"down-{PORT}").unlink()  # recovery
    assert router.wait_routes(both), router.routes()
    assert wait_answers(topo, {"n1", "n2"}), ask(topo)


@EACH_ROUTER
def test_a_killed_speaker_is_restarted_and_sigterm_withdraws_first(
    topo: Topology, start_halo: HaloFactory
) -> None:
    router = start_router(topo)
    serve(topo)
    n1 = topo.n1
    config = follow_config(topo, n1, 100) + "    withdraw_grace: 3\n"
    h1 = start_halo(n1, config, state={"VI_4": "MASTER"})
    assert router.wait_routes([str(n1.ipv4)]), router.routes()
    first = exabgp_pid(h1)

    os.kill(first, signal.SIGKILL)
    assert h1.wait_log(r"bgp: exabgp exited \(signal 9\)", 10), h1.log
    assert h1.wait_log(r"bgp: exabgp restarted", 20), h1.log
    assert exabgp_pid(h1) != first
    assert router.wait_routes([str(n1.ipv4)]), router.routes()
    assert wait_answers(topo, {"n1"}), ask(topo)

    # SIGTERM: the router loses the route while halo still runs (withdraw_grace: 3 s), i.e.
    # through a withdrawal, before the speaker closes its sessions and halo exits.
    os.kill(h1.proc.pid, signal.SIGTERM)
    assert router.wait_routes([], timeout=2.5), router.routes()
    assert h1.running, h1.log
    assert h1.proc.wait(15) == 0, h1.log
    assert h1.wait_log(r"bgp: withdrew 203\.0\.113\.10/32", 1), h1.log


@pytest.mark.parametrize(
    "router_class",
    [pytest.param(BirdRouter, marks=needs_tools("vtysh", "bird", "birdc"), id="bird")],
)
def test_frr_on_the_node_gets_its_networks_back_after_a_restart(
    topo: Topology, start_halo: HaloFactory
) -> None:
    router = start_router(topo)
    n1 = topo.n1
    n1.ip("addr", "add", f"{VIP}/32", "dev", "lo")
    frr = start_node_frr(topo, n1)
    config = (
        "backends:\n  bgp:\n    type: bgp\n    speaker: frr\n    mode: anycast\n"
        f"    local_as: {NODE_AS}\n    prefixes: [{VIP}/32]\n    check_interval: 0.5\n"
        f"    med: 20\n    vtysh: {frr.vtysh}\n"
    )
    h1 = start_halo(n1, config)
    assert router.wait_routes([str(n1.ipv4)]), (router.routes(), h1.log)
    bgpd = frr.procs[1]
    bgpd.kill()
    bgpd.wait(5)
    assert h1.wait_log(r"bgp: FRR (does not answer|lost halo's networks)", 10), h1.log
    frr.procs[1] = start_frr_daemon(n1, frr.dir, "bgpd")  # its saved config: no networks
    assert h1.wait_log(r"bgp: frr restarted", 20), h1.log
    assert router.wait_routes([str(n1.ipv4)]), (router.routes(), h1.log)
    h1.stop()
    assert router.wait_routes([], timeout=5), router.routes()
    running = n1.run(*frr.vtysh, "-c", "show running-config").stdout
    assert "halo-bgp" not in running and f"network {VIP}/32" not in running


@pytest.mark.parametrize(
    "router_class", [pytest.param(BirdRouter, marks=needs_tools("bird", "birdc"), id="bird")]
)
def test_a_speaker_that_cannot_start_sends_the_master_to_fault(
    topo: Topology, start_halo: HaloFactory
) -> None:
    router = start_router(topo)
    serve(topo)
    n1, n2 = topo.nodes
    broken = follow_config(topo, n1, 100) + "    exabgp: /bin/false\n    restart_delay: 0.2\n"
    h1 = start_halo(n1, broken, state={"VI_4": "MASTER"})
    h2 = start_halo(n2, follow_config(topo, n2, 90))
    assert h1.wait_state("VI_4", "FAULT", timeout=15), h1.log
    assert h2.wait_state("VI_4", "MASTER", timeout=5), h2.log
    assert router.wait_routes([str(n2.ipv4)]), router.routes()
    assert wait_answers(topo, {"n2"}), ask(topo)
    assert "bgp: exabgp did not start: exabgp exited with 1" in h1.log
    # held in FAULT while the speaker cannot run: no preemption when the engine's usual
    # 10 s retry of a failed backend comes round
    time.sleep(11)
    assert not h1.wait_state("VI_4", "MASTER", timeout=0.1, count=2), h1.log
    assert h2.wait_state("VI_4", "MASTER", timeout=0.1), h2.log
