"""A sync group's state change reaches the worker's notifiers: it crosses the process link
(encode, decode) and comes back equal. It carries its members as a tuple, which the link
once refused, so a group's notify scripts never ran (found by the keepalived equivalence
harness on the sample keepalived.conf.vrrp.scripts)."""

from __future__ import annotations

from halo_core import events
from halo_core.ipc import decode_event, encode_event


def test_a_sync_group_change_crosses_with_its_members() -> None:
    event = events.SyncGroupStateChanged(
        group="G1", old="BACKUP", new="MASTER", members=("VI_2", "VI_3"), reason="test"
    )
    msg = encode_event(event)
    assert msg is not None and msg["members"] == ["VI_2", "VI_3"]
    assert decode_event(msg) == event
