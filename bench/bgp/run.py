"""What a client asking every 10 ms sees when the node serving it dies: VRRP on one segment
against BGP through a router, with the hold timer at its minimum and with BFD, in one run.

- vrrp: bench/outage's halo pair (VRRPv3, adverts every 0.1 s, same client, same kill);
- bgp-hold-ROUTER: two anycast nodes announcing 203.0.113.10/32 through ExaBGP with
  ``hold_time: 3``, node n2 a standby by AS-path prepending; the client sits behind the
  router (FRR or BIRD). The router moves traffic when n1's session times out;
- bgp-bfd-ROUTER: the same with ``speaker: frr`` on the nodes, bfdd on both sides (100 ms
  x 3); the router moves traffic when BFD declares n1 down.

A node dies the way a machine dies: its switch port goes down and every process in it is
killed with SIGKILL at once, so nothing says goodbye. Outage: the last answer from n1 before
the kill to the first answer from n2 after it.

    sudo uv run python bench/bgp/run.py --trials 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins" / "backends" / "bgp" / "tests"))

import bgplab  # noqa: E402 - the BGP tests' lab, shared with this benchmark
from bgplab import (  # noqa: E402
    NODE_AS,
    PORT,
    ROUTER_AS,
    VIP,
    BirdRouter,
    FrrRouter,
    Router,
    Topology,
    build,
    remove_frr_dirs,
    start_node_frr,
)

HOLD = 3


def outage_bench() -> Any:
    """bench/outage/run.py as a module: its VRRP trial is this run's baseline."""
    spec = importlib.util.spec_from_file_location("bench_outage", ROOT / "bench/outage/run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def node_config(topo: Topology, node: Any, standby: bool, speaker: str, vtysh: list[str]) -> str:
    text = (
        "backends:\n  bgp:\n    type: bgp\n    mode: anycast\n"
        f"    local_as: {NODE_AS}\n    prefixes: [{VIP}/32]\n"
        f"    as_path_prepend: {2 if standby else 0}\n"
    )
    if speaker == "frr":
        return text + f"    speaker: frr\n    vtysh: {json.dumps(vtysh)}\n    check_interval: 1\n"
    return text + (
        f"    hold_time: {HOLD}\n    peers:\n"
        f"      - {{address: {topo.router.ipv4}, peer_as: {ROUTER_AS},"
        f" local_address: {node.ipv4}}}\n"
    )


def bgp_trial(router_class: type[Router], bfd: bool, work: Path) -> dict[str, float]:
    from halo_tool_lab.netns import Lab, wait_until

    work.mkdir(parents=True, exist_ok=True)
    with Lab(["n1", "n2", "r", "c"]) as lab:
        try:
            topo = build(lab, work)
            router = router_class(topo, hold=HOLD, bfd=bfd)
            for n in topo.nodes:
                n.ip("addr", "add", f"{VIP}/32", "dev", "lo")
                n.spawn(sys.executable, "-m", "halo_tool_lab.demo", "serve", n.name,
                        "--port", str(PORT))  # fmt: skip
            # the standby first, so that the router holds both paths before the kill
            for node, standby in ((topo.n2, True), (topo.n1, False)):
                vtysh: list[str] = []
                if bfd:
                    vtysh = start_node_frr(topo, node, HOLD, bfd=True).vtysh
                cfg = work / f"{node.name}.yaml"
                state = work / f"{node.name}.state"
                cfg.write_text(
                    node_config(topo, node, standby, "frr" if bfd else "exabgp", vtysh)
                    + f"global: {{state_dir: {state}}}\n"
                )
                node.spawn(sys.executable, "-m", "halo_core.cli", "run", "-c", str(cfg),
                           log=work / f"{node.name}.log")  # fmt: skip
                if not router.wait_routes([str(node.ipv4)], timeout=30):
                    raise RuntimeError(f"the router never preferred {node.name}")
            time.sleep(1.0)
            log = work / "client.jsonl"
            log.unlink(missing_ok=True)
            client = topo.client.spawn(
                sys.executable, "-m", "halo_tool_lab.demo", "client", VIP, "--port", str(PORT),
                "--interval", "0.01", "--duration", str(HOLD + 5), "--out", str(log),
            )  # fmt: skip
            time.sleep(1.5)
            killed = time.time()
            lab.unplug(topo.n1)
            for pid in topo.n1.pids():  # every process of the dead machine, at once
                os.kill(pid, signal.SIGKILL)
            moved = wait_until(lambda: router.routes() == [str(topo.n2.ipv4)], HOLD + 5, 0.005)
            route_moved = time.time() - killed
            if not moved:
                raise RuntimeError("the router never moved to n2")
            client.wait(HOLD + 15)
            answers = [json.loads(line) for line in log.read_text().splitlines()]
        finally:
            lab.close()
            remove_frr_dirs()
    before = sorted(
        r["done"] for r in answers if r["ok"] and r["from"] == "n1" and r["done"] <= killed + 0.05
    )
    after = sorted(
        r["done"] for r in answers if r["ok"] and r["from"] == "n2" and r["done"] > killed
    )
    if not before or not after:
        raise RuntimeError(f"incomplete trial: answers {len(before)}/{len(after)}")
    return {"outage": after[0] - before[-1], "kill_to_route": route_moved}


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--trials", type=int, default=3)
    p.add_argument(
        "--scenarios",
        default="vrrp,bgp-hold-frr,bgp-hold-bird,bgp-bfd-frr,bgp-bfd-bird",
        help="comma-separated (default: %(default)s)",
    )
    p.add_argument("--workdir", default="bench/results/bgp")
    args = p.parse_args()
    from halo_tool_lab.netns import lab_unavailable_reason

    reason = lab_unavailable_reason()
    if reason:
        raise SystemExit(f"bench/bgp: {reason}")
    scenarios = [s for s in args.scenarios.split(",") if s]
    if any("frr" in s or "bfd" in s for s in scenarios) and (why := bgplab.frr_available()):
        raise SystemExit(f"bench/bgp: {why}")
    work = Path(args.workdir)
    outage = outage_bench()
    results: dict[str, list[dict[str, float]]] = {}
    for trial_no in range(args.trials):  # interleaved, so all see the same machine load
        for name in scenarios:
            where = work / name / str(trial_no)
            if name == "vrrp":
                r = outage.trial("halo", 3, 0.1, where)
            else:
                _, kind, router = name.split("-")
                router_class = FrrRouter if router == "frr" else BirdRouter
                r = bgp_trial(router_class, kind == "bfd", where)
            results.setdefault(name, []).append(r)
            print(f"  {name:14} trial {trial_no + 1}: outage {r['outage'] * 1000:8.1f} ms",
                  flush=True)  # fmt: skip
    print(
        f"\nclient every 10 ms, {args.trials} trials; node death = port down + SIGKILL;"
        f" VRRPv3 adverts 0.1 s; BGP hold {HOLD} s; BFD 100 ms x 3"
    )
    print(f"{'':16}{'outage median (ms)':>20}{'outage max (ms)':>18}{'kill->route (ms)':>18}")
    for name in scenarios:
        rows = results[name]
        med = statistics.median(r["outage"] for r in rows) * 1000
        worst = max(r["outage"] for r in rows) * 1000
        moved = [r["kill_to_route"] for r in rows if "kill_to_route" in r]
        moved_text = f"{statistics.median(moved) * 1000:18.1f}" if moved else f"{'-':>18}"
        print(f"{name:16}{med:20.1f}{worst:18.1f}{moved_text}")
    out = work / "bgp.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
