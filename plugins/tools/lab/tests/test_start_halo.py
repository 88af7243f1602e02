"""The README's example of the start_halo fixture, and what Halo reads from the log."""

from __future__ import annotations

from halo_tool_lab.pytest_plugin import HaloFactory, LabFactory

HALO_YAML = """
vrrp_instances:
  VI_1:
    interface: eth0
    virtual_router_id: 51
    priority: 100
    version: 3
    advert_int: 0.1
    virtual_ipaddress: [192.0.2.100/24]
"""


def test_halo_takes_the_vip(lab: LabFactory, start_halo: HaloFactory) -> None:
    host = lab(1).hosts[0]
    start_halo(host, HALO_YAML, state={"VI_1": "MASTER"})
    assert host.wait_address("192.0.2.100", timeout=5)


def test_states_reload_and_stop(lab: LabFactory, start_halo: HaloFactory) -> None:
    host = lab(1, ipv6=False).hosts[0]
    halo = start_halo(host, "global: {log_format: json}\n" + HALO_YAML, state={"VI_1": "MASTER"})
    assert halo.states("VI_1")[-1] == "MASTER"
    assert all(rec["level"] != "raw" for rec in halo.records()), halo.log  # all JSON
    assert (halo.state_dir / "halo.pid").exists()  # its own, not the shared /run/halo
    halo.reload("global: {log_format: json}\n" + HALO_YAML.replace("100/24", "101/24"))
    assert host.wait_address("192.0.2.101", timeout=5), halo.log
    assert halo.stop() == 0 and not halo.running
