"""``halo convert`` of keepalived's notify FIFOs, notify_priority_changes, notify_deleted and
notify_master_rx_lower_pri (converted by this plugin), checked by loading the result."""

from __future__ import annotations

from typing import Any

from halo_tool_convert import convert_text
from halo_tool_lab.testing import load_config

KEEPALIVED = """
global_defs {
    notify_fifo /run/keepalived.fifo
    notify_fifo_script /usr/local/bin/fifo-reader.sh
    vrrp_notify_fifo /run/vrrp.fifo root
    lvs_notify_fifo /run/lvs.fifo
    vrrp_notify_priority_changes true
}
vrrp_sync_group G1 {
    group { VI_2 }
    notify_priority_changes false
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress { 192.0.2.16 }
    notify_master /usr/local/bin/master.sh
    notify_deleted
    notify_master_rx_lower_pri "/usr/local/bin/reassign.sh VI_1"
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 52
    virtual_ipaddress { 192.0.2.17 }
}
vrrp_instance VI_3 {
    interface eth0
    virtual_router_id 53
    virtual_ipaddress { 192.0.2.18 }
    notify_priority_changes
    notify_deleted /usr/local/bin/deleted.sh
}
"""


def notifiers(text: str) -> tuple[dict[str, Any], Any]:
    result = convert_text(text, config_id="x")
    model = load_config(result.yaml).model
    return {name: c.config for name, c in model.notifiers.items()}, result


def test_fifos_and_their_options_convert() -> None:
    found, result = notifiers(KEEPALIVED)
    assert result.unsupported == [] and result.warnings == []
    fifo = found["notify-fifo"]
    assert (fifo.notify_fifo, fifo.notify_fifo_script, fifo.events) == (
        "/run/keepalived.fifo",
        "/usr/local/bin/fifo-reader.sh",
        None,  # notify_fifo gets everything
    )
    # global true, the sync group's false for VI_2, VI_3's own true
    assert fifo.notify_priority_changes == ["VI_1", "VI_3"]
    assert fifo.notify_deleted == ["VI_1", "VI_3"]
    vrrp = found["vrrp-notify-fifo"]
    assert (vrrp.notify_fifo, vrrp.script_user) == ("/run/vrrp.fifo", "root")
    assert vrrp.events == ["vrrp_state", "vrrp_group_state", "vrrp_priority", "vrrp_announce"]
    lvs = found["lvs-notify-fifo"]
    assert (lvs.events, lvs.notify_priority_changes) == (["real_server", "pool"], False)
    vi1 = found["VI_1-notify"]
    assert vi1.notify_master_rx_lower_pri == "/usr/local/bin/reassign.sh VI_1"
    assert vi1.notify_deleted is True
    assert vi1.events == ["vrrp_state", "vrrp_announce"]
    assert found["VI_3-notify"].notify_deleted == "/usr/local/bin/deleted.sh"


def test_a_fifo_script_without_its_fifo_is_a_warning() -> None:
    _, result = notifiers("global_defs {\n  vrrp_notify_fifo_script /bin/cat\n}\n")
    assert [w.message for w in result.warnings] == [
        "vrrp_notify_fifo_script without vrrp_notify_fifo; ignored"
    ]


def test_reload_states_stay_unsupported() -> None:
    _, result = notifiers(
        "global_defs {\n  notify_fifo /run/k.fifo\n  fifo_write_vrrp_states_on_reload\n}\n"
    )
    assert [r.keyword for r in result.unsupported] == ["fifo_write_vrrp_states_on_reload"]
