"""Sync groups as keepalived 2.2.7 runs them (vrrp_sync.c, ``vrrp_sync_can_goto_master``):
a member whose Master_Down_Timer expires while another member does not want MASTER stays
BACKUP, wanting MASTER, its timer started again; an advert it accepts ends the wanting.
The order this gives on real kernels, against keepalived itself, is checked by
``tests/interop/test_equivalence_samples.py`` (vrrp.scripts, vrrp.sync)."""

from __future__ import annotations

import sys
from ipaddress import IPv4Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))

import pytest
from vrrp_targets import vrrp_targets

from halo_core.vrrp import fsm, packet
from halo_core.vrrp.engine import InstanceRuntime

PEER = IPv4Address("192.0.2.12")
GROUP = IPv4Address("224.0.0.18")


def test_a_held_member_wants_master_until_it_hears_one(monkeypatch: pytest.MonkeyPatch) -> None:
    (target,) = [t for t in vrrp_targets() if t.name == "v3/ipv4/backup"]
    runtime = target.runtime
    monkeypatch.setattr(runtime.sock, "drain", lambda: None)  # no kernel socket to read
    asked: list[str] = []

    def holds(inst: InstanceRuntime) -> bool:
        asked.append(inst.name)
        return True

    runtime.group = "G1"
    runtime.group_holds = holds
    due = runtime.machine.master_down_timer
    assert due is not None and runtime.wants_master is False

    runtime.clock.t = due + 0.0001
    runtime._wake()
    assert asked == ["VI_1"]
    assert runtime.state is fsm.State.BACKUP
    assert runtime.held_until == due + 0.0001 + runtime.machine.master_down_interval
    assert runtime.wants_master is True

    exp = target.exp
    adv = packet.Advertisement(
        version=3, vrid=51, priority=200, interval_cs=exp.interval_cs, addresses=exp.addresses
    )
    runtime.on_advert(adv, PEER, GROUP, due + 0.5)
    assert runtime.wants_master is False  # keepalived: wantstate BACKUP again

    # the group lets it go: the next expiry is a takeover
    runtime.group_holds = lambda inst: False
    runtime.clock.t = runtime.machine.master_down_timer
    runtime._wake()
    assert runtime.state is fsm.State.MASTER
    assert runtime.wants_master is True
