"""Reload without flapping, on real kernels with traffic running.

Two halo nodes (master 150, backup 100) on a lab segment, the wire captured on the bridge
and a client asking the VIP throughout. Each step rewrites the master's file and sends
SIGHUP, then checks the wire and the kernel:

- unchanged file: not one gratuitous ARP, no priority change in the adverts, no address
  removed, the client never misses an answer;
- priority changed: the adverts carry the new priority at once, no state change;
- an address added / removed: only that address appears / goes, and only it is announced;
- an instance added / removed: the new one starts, the removed one steps down with
  priority 0, the other instance is not disturbed;
- an invalid file: errors logged, the running configuration stays;
- a file that validates but cannot be applied in full (a new instance on an interface this
  host lacks, beside changes that could be applied): refused as a whole, each error
  logged, nothing of it applied, in the VRRP process or in the worker.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from halo_tool_lab import capture as cap
from halo_tool_lab.halo import Halo
from halo_tool_lab.netns import Host, Lab, wait_until

VIP = "192.0.2.100"


def config(state_dir: Path, priority: int, vips: list[str], extra: str = "") -> str:
    vip_list = ", ".join(f"{v}/24" for v in vips)
    return f"""global:
  state_dir: {state_dir}
  log_format: json
vrrp_instances:
  VI_1:
    interface: eth0
    virtual_router_id: 51
    priority: {priority}
    version: 3
    advert_int: 0.1
    garp_master_delay: 0   # no second burst 5 s later: the windows must show reloads only
    virtual_ipaddress: [{vip_list}]
{extra}"""


ELSEWHERE = """  VI_3:
    interface: nosuch0
    virtual_router_id: 53
    priority: 150
    version: 3
    advert_int: 0.1
    virtual_ipaddress: [192.0.2.120/24]
"""

SECOND = """  VI_2:
    interface: eth0
    virtual_router_id: 52
    priority: 150
    version: 3
    advert_int: 0.1
    virtual_ipaddress: [192.0.2.110/24]
"""


class Node(Halo):
    """halo in *host*, its files in ``WORK/HOST``; :meth:`reload` waits until it is done."""

    def __init__(self, host: Host, work: Path, priority: int) -> None:
        self.dir = work / host.name
        super().__init__(host, config(self.dir / "state", priority, [VIP]), self.dir, name="halo")

    def reload(self, config: str | None = None) -> None:
        mark = len(self.records())
        super().reload(config)

        def done() -> bool:  # its outcome, not any line naming this test's directory
            return any(m.startswith("reload: ") for m in self.messages()[mark:])

        assert wait_until(done, 10), self.log
        time.sleep(0.5)  # let the wire show what the reload did (five advert intervals)


def test_reload_matrix(lab_root: None, tmp_path: Path) -> None:
    with Lab(["a", "b", "client"]) as lab:
        a = Node(lab.host("a"), tmp_path, 150)
        assert wait_until(lambda: a.host.has_address(VIP), 10), a.log
        # a's worker too, to see it refuse and apply reloads: the status API's first
        # connection starts it (until then the VRRP process only holds the API's socket)
        assert a.wait_log(r"(?m)^status API listening on ", 10), a.log
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(a.dir / "state" / "halo.sock"))
        assert a.wait_log(r"(?m)^worker process \d+ ready", 30), a.log
        b = Node(lab.host("b"), tmp_path, 100)
        time.sleep(1)
        client = lab.host("client")

        def window(action: object) -> list[cap.Frame]:
            capture = lab.capture(tmp_path / f"w{time.monotonic_ns()}.pcap")
            time.sleep(0.3)
            action()  # type: ignore[operator]
            return capture.stop()

        def states() -> list[str]:
            return [m for m in a.messages() if "entering" in m]

        before = states()

        # 1. Unchanged: nothing on the wire but adverts at priority 150, no address change.
        frames = window(lambda: a.reload(a.config_path.read_text()))
        assert not [p for p in cap.arp_packets(frames) if p.gratuitous]
        assert {ad.priority for ad in cap.vrrp_adverts(frames, vrid=51)} == {150}
        assert "reload: configuration unchanged" in a.messages()
        assert a.host.has_address(VIP) and states() == before
        assert client.ping(VIP, count=5, interval=0.05).ok

        # 2. Priority 150 → 160: the adverts change, the state does not, nothing announced.
        frames = window(lambda: a.reload(config(a.dir / "state", 160, [VIP])))
        prios = [ad.priority for ad in cap.vrrp_adverts(frames, vrid=51) if ad.src == a.host.ipv4]
        assert prios[0] == 150 and prios[-1] == 160 and 0 not in prios
        assert not [p for p in cap.arp_packets(frames) if p.gratuitous]
        assert states() == before

        # 3. An address added: only it appears and only it is announced; the VIP stays.
        frames = window(lambda: a.reload(config(a.dir / "state", 160, [VIP, "192.0.2.101"])))
        assert a.host.has_address("192.0.2.101") and a.host.has_address(VIP)
        garps = {str(p.target_ip) for p in cap.arp_packets(frames) if p.gratuitous}
        assert garps == {"192.0.2.101"}
        assert states() == before

        # 4. It is removed again: only it goes.
        frames = window(lambda: a.reload(config(a.dir / "state", 160, [VIP])))
        assert wait_until(lambda: not a.host.has_address("192.0.2.101"), 5)
        assert a.host.has_address(VIP)
        assert not [p for p in cap.arp_packets(frames) if p.gratuitous]

        # 5. An instance added: it starts and becomes master; VI_1 is not disturbed.
        frames = window(lambda: a.reload(config(a.dir / "state", 160, [VIP], SECOND)))
        assert wait_until(lambda: a.host.has_address("192.0.2.110"), 5), a.log
        assert {ad.priority for ad in cap.vrrp_adverts(frames, vrid=51)} == {160}
        assert [m for m in states() if m.startswith("VI_1")] == [
            m for m in before if m.startswith("VI_1")
        ]

        # 6. It is removed: one priority-0 advert for VRID 52, its address goes, VI_1 stays.
        frames = window(lambda: a.reload(config(a.dir / "state", 160, [VIP])))
        assert wait_until(lambda: not a.host.has_address("192.0.2.110"), 5)
        assert [ad.priority for ad in cap.vrrp_adverts(frames, vrid=52)][-1] == 0
        assert a.host.has_address(VIP)

        # 7. An invalid file: the errors are logged and the running configuration stays.
        a.reload("vrrp_instances:\n  VI_1: {interface: eth0, priority: 500}\n")
        msgs = a.messages()
        assert any("priority: must be between 1 and 255, not 500" in m for m in msgs)
        assert "reload: the configuration is invalid; the running one stays in force" in msgs
        frames = window(lambda: time.sleep(0.5))
        assert {ad.priority for ad in cap.vrrp_adverts(frames, vrid=51)} == {160}
        assert a.host.has_address(VIP) and not b.host.has_address(VIP)
        assert a.proc.running

        # 8. Valid, but not applicable in full: VI_1's priority and a new address could be
        # applied, VI_3's interface does not exist. Nothing is applied, anywhere.
        mark = len(a.messages())
        partial = config(a.dir / "state", 170, [VIP, "192.0.2.101"], ELSEWHERE)
        frames = window(lambda: a.reload(partial))
        msgs = a.messages()[mark:]
        assert "reload: VI_3: interface nosuch0: no interface with this name" in msgs, a.log
        assert "reload: cannot be applied; the running configuration stays in force" in msgs
        assert wait_until(
            lambda: (
                "reload: refused by the VRRP process; the running configuration stays"
                in a.messages()[mark:]
            ),
            5,
        ), a.log  # the worker was told, and applied nothing either
        assert not [m for m in a.messages()[mark:] if "reload: " in m and "VI_1" in m]
        assert {ad.priority for ad in cap.vrrp_adverts(frames, vrid=51)} == {160}
        assert not cap.vrrp_adverts(frames, vrid=53)
        assert not a.host.has_address("192.0.2.101") and a.host.has_address(VIP)
        assert "Traceback" not in a.log
        for node in (a, b):
            node.proc.terminate_and_wait()
