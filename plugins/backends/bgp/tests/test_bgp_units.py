"""The bgp backend without a lab: its schema, the ExaBGP and FRR text it generates, and its
runtime with a real ExaBGP whose only peer is an unused loopback address (no session comes
up; ExaBGP still acknowledges what it is told to announce)."""

from __future__ import annotations

import asyncio
import os
import signal
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest

from halo_backend_bgp.plugin import BgpBackendConfig
from halo_backend_bgp.runtime import BgpBackend
from halo_backend_bgp.speakers import (
    exabgp_config,
    exabgp_environment,
    exabgp_route,
    frr_network,
    frr_route_map,
)
from halo_core.bus import EventBus
from halo_core.events import (
    BackendApplied,
    BackendFailed,
    CheckResultEvent,
    CheckStateChanged,
    PoolChanged,
)
from halo_core.plugin_api import PluginContext
from halo_core.scheduler import LoopClock, Scheduler
from halo_tool_lab.testing import config_errors, eventually, load_config, vrrp

FOLLOW = """
vrrp_instances:
  VI_1:
    interface: eth0
    virtual_router_id: 51
    virtual_ipaddress: [203.0.113.10/32, 203.0.113.11/24]
backends:
  bgp:
    type: bgp
    local_as: 65001
    peers:
      - {address: 127.0.0.9, peer_as: 65000, local_address: 127.0.0.1}
"""


def backend_config(text: str, name: str = "bgp") -> tuple[Any, BgpBackendConfig]:
    model = load_config(text).model
    cfg = model.backends[name].config
    assert isinstance(cfg, BgpBackendConfig)
    return model, cfg


def make_backend(
    text: str, state_dir: Path | None = None, **options: Any
) -> tuple[BgpBackend, list[Any]]:
    """The backend of *text*; give *state_dir* (a test's tmp_path) when it will start
    ExaBGP, which keeps its configuration there."""
    if state_dir is not None:
        text += f"global: {{state_dir: {state_dir}}}\n"
    model, cfg = backend_config(text)
    if options:
        cfg = BgpBackendConfig(**{**cfg.__dict__, **options})
    clock = LoopClock()
    ctx = PluginContext("bgp", model, EventBus(), clock, Scheduler(clock))
    events: list[Any] = []
    ctx.bus.subscribe(events.append, name="test")
    return BgpBackend(cfg, ctx), events


# ------------------------------------------------------------------------------ schema


def test_bad_options_get_one_line_each() -> None:
    errors = config_errors(
        """
backends:
  bgp:
    type: bgp
    mode: anycast
    local_as: 65001
    communities: ["65001:70000", "bogus"]
    next_hop: [192.0.2.1, 192.0.2.2]
    peers:
      - {address: 192.0.2.1, peer_as: 65000, local_address: "2001:db8::1"}
"""
    )
    text = "\n".join(errors)
    assert "backends.bgp.prefixes: anycast mode needs the prefixes to announce" in text
    assert "backends.bgp.communities[0]: '65001:70000' is not ASN:VALUE" in text
    assert "backends.bgp.communities[1]: 'bogus'" in text
    assert "backends.bgp.next_hop: at most one address per family" in text
    assert "backends.bgp.peers[0].local_address: address family differs from address" in text
    assert all(line.count("\n") == 0 for line in errors)
    hold = config_errors(
        FOLLOW.replace("    local_as: 65001", "    local_as: 65001\n    hold_time: 2")
    )
    assert hold == ["f.yaml:11:16: backends.bgp.hold_time: must be between 3 and 65535, not 2"]


def test_follow_options_are_refused_in_anycast_and_back() -> None:
    text = "\n".join(
        config_errors(
            FOLLOW.replace("    local_as: 65001", "    local_as: 65001\n    prefixes: [192.0.2.1]")
        )
    )
    assert "backends.bgp.prefixes: only for mode: follow" not in text
    assert "backends.bgp.prefixes: only for mode: anycast" in text


def test_exabgp_needs_peers_and_a_router_id() -> None:
    text = "\n".join(
        config_errors(
            "backends:\n  bgp:\n    type: bgp\n    local_as: 1\n    peers:\n"
            '      - {address: "2001:db8::1", peer_as: 2, local_address: "2001:db8::2"}\n'
        )
    )
    assert "backends.bgp.router_id: needed when no peer has an IPv4 local_address" in text
    text = "\n".join(config_errors("backends:\n  bgp: {type: bgp, local_as: 1}\n"))
    assert "backends.bgp.peers: the exabgp speaker needs at least one peer" in text
    # FRR keeps its own neighbours
    load_config("backends:\n  bgp: {type: bgp, speaker: frr, local_as: 1}\n")


# ------------------------------------------------------------------------------ generated text


def test_exabgp_configuration_and_commands() -> None:
    _, cfg = backend_config(
        FOLLOW.replace(
            "    peers:\n",
            "    hold_time: 3\n    med: 10\n    as_path_prepend: 2\n"
            "    communities: ['65001:1', no-export]\n    next_hop: ['2001:db8::99']\n"
            "    peers:\n"
            '      - {address: "2001:db8::1", peer_as: 65000, local_address: "2001:db8::2",'
            " passive: true}\n",
        )
    )
    text = exabgp_config(cfg, "@halo-bgp-1", "/usr/bin/python3")
    assert 'run "/usr/bin/python3" -m halo_backend_bgp.relay "@halo-bgp-1";' in text
    assert "neighbor 2001:db8::1 {" in text and "neighbor 127.0.0.9 {" in text
    assert text.count("router-id 127.0.0.1;") == 2  # the IPv4 local address, for both
    assert "hold-time 3;" in text and "passive true;" in text
    assert "        ipv6 unicast;" in text and "        ipv4 unicast;" in text
    env = exabgp_environment(cfg)
    assert env["exabgp.api.terminate"] == "true" and env["exabgp.daemon.daemonize"] == "false"
    assert env["exabgp.tcp.bind"] == "2001:db8::2"
    v4, v6 = ip_network("203.0.113.10/32"), ip_network("2001:db8:ff::10/128")
    assert exabgp_route(cfg, v4) == (
        "announce route 203.0.113.10/32 next-hop self med 10"
        " community [ 65001:1 no-export ] as-path [ 65001 65001 ]"
    )
    assert exabgp_route(cfg, v6).startswith(
        "announce route 2001:db8:ff::10/128 next-hop 2001:db8::99"
    )
    assert exabgp_route(cfg, v4, withdraw=True) == "withdraw route 203.0.113.10/32 next-hop self"
    assert frr_route_map(cfg, "halo-bgp") == [
        "route-map halo-bgp permit 10",
        "set community 65001:1 no-export additive",
        "set metric 10",
        "set as-path prepend 65001 65001",
        "set ipv6 next-hop global 2001:db8::99",
        "exit",
    ]
    assert frr_network(cfg, v6, "halo-bgp", withdraw=False)[1:3] == [
        "address-family ipv6 unicast",
        "network 2001:db8:ff::10/128 route-map halo-bgp",
    ]
    assert frr_network(cfg, v4, "halo-bgp", withdraw=True)[2] == "no network 203.0.113.10/32"


# ------------------------------------------------------------------------------ runtime


def test_follow_wants_host_routes_of_a_master_only() -> None:
    backend, _ = make_backend(FOLLOW)
    assert backend.wanted() == set()
    backend.states["VI_1"] = "MASTER"
    assert backend.wanted() == {ip_network("203.0.113.10/32"), ip_network("203.0.113.11/32")}
    assert backend.kinds == ("vrrp_state",)


async def test_anycast_waits_for_each_checks_first_result() -> None:
    text = (
        "checks:\n  a: {type: tcp, connect_ip: 127.0.0.1, connect_port: 1}\n"
        "  b: {type: tcp, connect_ip: 127.0.0.1, connect_port: 1}\n"
        "backends:\n  bgp:\n    type: bgp\n    mode: anycast\n    local_as: 1\n"
        "    prefixes: [203.0.113.10]\n    checks: [a, b]\n"
        "    peers: [{address: 127.0.0.9, peer_as: 2, local_address: 127.0.0.1}]\n"
    )
    backend, _ = make_backend(text)
    assert "check_result" in backend.kinds
    await backend.handle(CheckResultEvent(check="a", ok=True, up=True))
    assert backend.wanted() == set()  # b has not reported yet
    await backend.handle(CheckResultEvent(check="b", ok=True, up=True))
    assert backend.wanted() == {ip_network("203.0.113.10/32")}
    await backend.handle(CheckStateChanged(check="b", up=False))
    assert backend.wanted() == set()


def test_unknown_references_are_refused_at_start() -> None:
    model, cfg = backend_config(
        FOLLOW.replace("    local_as", "    instances: [VI_9]\n    local_as")
    )
    clock = LoopClock()
    with pytest.raises(ValueError, match="instances: no VRRP instance named VI_9"):
        BgpBackend(cfg, PluginContext("bgp", model, EventBus(), clock, Scheduler(clock)))


async def test_a_speaker_that_cannot_start_sends_followed_instances_to_fault(
    tmp_path: Path,
) -> None:
    backend, events = make_backend(
        FOLLOW, tmp_path, exabgp="/nonexistent/exabgp", restart_delay=0.1, restart_limit=2
    )
    await backend.start()
    try:
        await eventually(lambda: any(getattr(e, "instance", None) == "VI_1" for e in events), 10)
    finally:
        await backend.stop()
    failed = [e for e in events if isinstance(e, BackendFailed)]
    assert "did not start" in failed[0].error and failed[0].instance is None
    assert failed[-1].instance == "VI_1" and "cannot be started" in failed[-1].error
    assert failed[-1].until_cleared  # FAULT until the speaker runs again, not 10 s


async def test_exabgp_is_driven_restarted_and_stopped(tmp_path: Path) -> None:
    backend, events = make_backend(FOLLOW, tmp_path, restart_delay=0.1)
    await backend.start()
    try:
        await backend.handle(vrrp("MASTER"))
        await eventually(lambda: len(backend.announced) == 2, 30)
        pid = backend.speaker.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await eventually(lambda: backend.restarts == 1 and len(backend.announced) == 2, 30)
        assert backend.speaker.pid != pid
        await backend.handle(vrrp("BACKUP", old="MASTER"))
        await eventually(lambda: not backend.announced, 10)
        assert (tmp_path / "bgp-bgp" / "exabgp.conf").exists()
    finally:
        await backend.stop()
    assert not (tmp_path / "bgp-bgp").exists()
    details = [e.detail for e in events if isinstance(e, BackendApplied)]
    assert "withdrew 203.0.113.10/32" in details
    assert any(d.startswith("exabgp restarted") for d in details)
    assert any(
        "exabgp exited (signal 9)" in e.error for e in events if isinstance(e, BackendFailed)
    )
    assert backend.speaker.proc is not None and backend.speaker.proc.returncode is not None
    await asyncio.sleep(0)


async def test_reload_applies_addresses_and_attributes_and_restarts_for_the_rest(
    tmp_path: Path,
) -> None:
    base = FOLLOW.replace("local_as: 65001", "local_as: 65001\n    restart_delay: 0.1")
    backend, events = make_backend(base, tmp_path)
    await backend.start()
    try:
        await backend.handle(vrrp("MASTER"))
        await eventually(lambda: len(backend.announced) == 2, 30)
        pid = backend.speaker.pid
        more = base.replace("203.0.113.11/24]", "203.0.113.11/24, 203.0.113.12]")
        await backend.reload(load_config(more).model)
        assert ip_network("203.0.113.12/32") in backend.announced
        before = len([e for e in events if isinstance(e, BackendApplied)])
        await backend.reload(
            load_config(more.replace("local_as: 65001", "local_as: 65001\n    med: 5")).model
        )
        assert backend.speaker.pid == pid and backend.config.med == 5
        applied = [e.detail for e in events if isinstance(e, BackendApplied)][before:]
        assert applied.count("announced 203.0.113.10/32") == 1  # again, with the MED
        await backend.reload(
            load_config(more.replace("local_as: 65001", "local_as: 65001\n    hold_time: 4")).model
        )
        await eventually(lambda: backend.restarts == 1 and len(backend.announced) == 3, 30)
        assert backend.speaker.pid != pid
        with pytest.raises(ValueError, match="speaker cannot change on reload"):
            await backend.reload(
                load_config(
                    more.replace("local_as: 65001", "local_as: 65001\n    speaker: frr")
                ).model
            )
    finally:
        await backend.stop()


async def test_anycast_follows_the_quorum_of_its_virtual_servers() -> None:
    text = (
        "virtual_servers:\n  - name: web\n    address: 203.0.113.10\n    port: 80\n"
        "    real_servers: [{address: 192.0.2.21, port: 8080}]\n"
        "backends:\n  bgp:\n    type: bgp\n    mode: anycast\n    local_as: 1\n"
        "    prefixes: [203.0.113.10]\n    virtual_servers: [web]\n"
        "    peers: [{address: 127.0.0.9, peer_as: 2, local_address: 127.0.0.1}]\n"
    )
    backend, _ = make_backend(text)
    assert backend.kinds == ("check_state", "pool")
    assert backend.wanted() == set()

    def pool(quorum: bool) -> PoolChanged:
        return PoolChanged(
            virtual_server="web", service=None, members=(), quorum=quorum, reason="t"
        )

    await backend.handle(pool(True))
    assert backend.wanted() == {ip_network("203.0.113.10/32")}
    await backend.handle(pool(False))
    assert backend.wanted() == set()
