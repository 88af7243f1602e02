"""The VRRP path stays lean: loading the configuration and running the engine imports no
checker, notifier or tool runtime and none of the core's check machinery.

What a process imports it keeps in memory for good (the VRRP process's RSS) and pays for at
every start (start to first advert); the daemon's split gives VRRP a process of its own, so
what that process needs must not drag the rest in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from halo_tool_lab.netns import Lab
from halo_tool_lab.pytest_plugin import LabFactory

CONFIG = """\
global:
  router_id: lean
vrrp_instances:
  VI_1:
    interface: eth0
    virtual_router_id: 51
    priority: 90
    version: 3
    advert_int: 0.1
    virtual_ipaddress: [192.0.2.16]
"""

PROBE = """\
import asyncio, json, sys
from halo_core.bus import EventBus
from halo_core.config import load, plugins_for
from halo_core.scheduler import LoopClock, new_event_loop
from halo_core.vrrp.engine import VrrpEngine

async def main() -> None:
    path = sys.argv[1]
    config = load(path, plugins_for(path))
    engine = VrrpEngine(config.model, EventBus(), LoopClock())
    engine.start()
    await asyncio.sleep(0.5)  # past Master_Down_Interval: the instance is MASTER
    states = [i.state.value for i in engine.instances.values()]
    engine.stop()
    print(json.dumps({"states": states, "modules": sorted(sys.modules)}))

with asyncio.Runner(loop_factory=new_event_loop) as runner:
    runner.run(main())
"""

# Modules the VRRP path must not need (each was, or would be, a few hundred kB and a few
# milliseconds of start-up).
NOT_NEEDED = (
    "halo_core.checks",
    "halo_core.script_runner",
    "halo_core.once",
    "difflib",
)


def test_config_and_engine_import_no_runtime_of_other_parts(
    lab: LabFactory, tmp_path: Path
) -> None:
    net: Lab = lab(1, ipv6=False)
    (tmp_path / "halo.yaml").write_text(CONFIG)
    (tmp_path / "probe.py").write_text(PROBE)
    out = tmp_path / "probe.out"
    proc = net.hosts[0].spawn(
        sys.executable, str(tmp_path / "probe.py"), str(tmp_path / "halo.yaml"), log=out
    )
    assert proc.wait(30) == 0, out.read_text()
    result = json.loads(out.read_text().splitlines()[-1])
    assert result["states"] == ["MASTER"]
    modules: list[str] = result["modules"]
    assert [m for m in NOT_NEEDED if m in modules] == []
    # Plugin discovery imports each plugin's declaration module (its schemas and hooks, the
    # schemas possibly in a module of their own, .options), never its runtime: that comes
    # when a configured part starts.
    plugin_runtimes = [
        m
        for m in modules
        if m.startswith("halo_")
        and not m.startswith("halo_core")
        and m.count(".") == 1
        and not m.endswith((".plugin", ".options"))
    ]
    assert plugin_runtimes == []
