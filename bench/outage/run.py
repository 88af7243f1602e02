"""What a client sees when the master dies, keepalived pair vs halo pair, in one run.

Each trial builds a lab (two nodes sharing 192.0.2.100, a web server on each, a client
asking the VIP every 10 ms), lets the priority-100 node become master, then kills it the
way a machine dies: every VRRP process killed with SIGKILL and its cable unplugged at
once (kill -9 alone leaves the VIP configured and the dead node's web server answering).
From the client's log and a capture on the bridge (kernel timestamps):

- outage: the last answer before the kill to the first answer after it;
- kill → first GARP: the kill to the new master's first gratuitous ARP for the VIP.
- first advert → GARP: the new master's first advert to its first gratuitous ARP.

Memory: resident set of a node running the seeds' master config (one instance, three
VIPs), halo's daemon next to keepalived's processes together.

    sudo uv run python bench/outage/run.py --trials 10 [--version 2|3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

VIP = "192.0.2.100"
PORT = 8080


def halo_config(priority: int, version: int, interval: float, state_dir: Path) -> str:
    auth = "    authentication: {auth_type: PASS, auth_pass: bench}\n" if version == 2 else ""
    return (
        f"global: {{state_dir: {state_dir}}}\n"
        "vrrp_instances:\n  VI_1:\n    interface: eth0\n    virtual_router_id: 51\n"
        f"    priority: {priority}\n    version: {version}\n    advert_int: {interval:g}\n"
        f"{auth}    virtual_ipaddress: [{VIP}/24]\n"
    )


def keepalived_config(priority: int, version: int, interval: float) -> str:
    auth = (
        "  authentication {\n    auth_type PASS\n    auth_pass bench\n  }\n" if version == 2 else ""
    )
    return (
        f"global_defs {{\n  vrrp_version {version}\n}}\n"
        "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n"
        f"  priority {priority}\n  advert_int {interval:g}\n{auth}"
        f"  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )


class Node:
    def __init__(
        self, kind: str, host: Any, work: Path, priority: int, version: int, interval: float
    ) -> None:
        self.kind = kind
        self.host = host
        self.ka: Any = None
        self.proc: Any = None
        host.spawn(
            sys.executable, "-m", "halo_tool_lab.demo", "serve", host.name, "--port", str(PORT)
        )
        if kind == "keepalived":
            from halo_tool_lab.keepalived import Keepalived

            self.ka = Keepalived(host, keepalived_config(priority, version, interval), work)
        else:
            cfg = work / f"{host.name}.yaml"
            cfg.write_text(halo_config(priority, version, interval, work / f"{host.name}-state"))
            self.proc = host.spawn(
                sys.executable,
                "-m",
                "halo_core.cli",
                "run",
                "-c",
                str(cfg),
                log=work / f"{host.name}.log",
            )

    def kill9(self) -> None:
        if self.ka is not None:
            self.ka.kill9()
        else:
            self.proc.kill_group(9)


def trial(kind: str, version: int, interval: float, work: Path) -> dict[str, float]:
    from halo_tool_lab import capture as cap
    from halo_tool_lab.netns import Lab, wait_until

    work.mkdir(parents=True, exist_ok=True)
    with Lab(["a", "b", "client"]) as lab:
        a, b, client = (lab.host(n) for n in ("a", "b", "client"))
        master = Node(kind, a, work, 100, version, interval)
        if not wait_until(lambda: a.has_address(VIP), 15):
            raise RuntimeError(f"{kind}: node a never became master")
        Node(kind, b, work, 90, version, interval)
        time.sleep(3 * interval + 0.5)  # the backup has heard the master
        log = work / "client.jsonl"
        log.unlink(missing_ok=True)
        client.spawn(
            sys.executable, "-m", "halo_tool_lab.demo", "client", VIP, "--port", str(PORT),
            "--interval", "0.01", "--duration", str(8 * interval + 6), "--out", str(log),
        )  # fmt: skip
        capture = lab.capture(work / "wire.pcap", filter="arp,vrrp")
        time.sleep(1.0)
        # The cable first: that is the instant the machine is gone for everyone. Killing
        # keepalived takes a few milliseconds (SIGSTOP, then SIGKILL to every process),
        # during which its node would otherwise go on answering and shorten its outage.
        killed = time.time()
        lab.unplug(a)
        master.kill9()
        if not wait_until(lambda: b.has_address(VIP), 10 * interval + 5, 0.005):
            raise RuntimeError(f"{kind}: node b never took over")
        time.sleep(1.0)
        frames = capture.stop()
        answers = [json.loads(line) for line in log.read_text().splitlines()]
    # The outage ends with the first answer from the new master: answers from the dead node
    # that complete just after the kill were in flight before it.
    before = sorted(
        r["done"] for r in answers if r["ok"] and r["from"] == "a" and r["done"] <= killed + 0.05
    )
    after = sorted(
        r["done"] for r in answers if r["ok"] and r["from"] == "b" and r["done"] > killed
    )
    garps = [
        p.time
        for p in cap.arp_packets(frames)
        if p.gratuitous and p.src_mac == b.mac and p.time > killed
    ]
    adverts = [
        ad.time
        for ad in cap.vrrp_adverts(frames, vrid=51)
        if ad.src_mac == a.mac and ad.time <= killed
    ]
    new_adverts = [
        ad.time
        for ad in cap.vrrp_adverts(frames, vrid=51)
        if ad.src_mac == b.mac and ad.time > killed
    ]
    if not before or not after or not garps or not adverts or not new_adverts:
        counts = f"answers {len(before)}/{len(after)}, garps {len(garps)}, adverts {len(adverts)}"
        raise RuntimeError(f"{kind}: incomplete trial ({counts})")
    # The kill falls at a random point of the master's advert cycle, which moves the
    # takeover by up to one interval; measured from the dead master's last advert, the
    # figures no longer depend on that phase.
    return {
        "outage": after[0] - before[-1],
        "kill_to_garp": garps[0] - killed,
        "last_advert_to_answer": after[0] - adverts[-1],
        "last_advert_to_garp": garps[0] - adverts[-1],
        "first_advert_to_garp": garps[0] - new_adverts[0],
    }


def memory(kind: str, work: Path) -> float:
    """RSS in MB of a node running the seeds' master config, after it became master."""
    from halo_tool_lab.netns import Lab, wait_until

    seed_vips = ["192.0.2.16", "192.0.2.17", "192.0.2.18"]
    work.mkdir(parents=True, exist_ok=True)
    with Lab(1) as lab:
        host = lab.hosts[0]
        if kind == "keepalived":
            from halo_tool_lab.keepalived import Keepalived

            conf = keepalived_config(100, 2, 1).replace(
                f"    {VIP}/24\n", "".join(f"    {v}\n" for v in seed_vips)
            )
            ka = Keepalived(
                host,
                conf.replace("vrrp_instance VI_1 {", "vrrp_instance VI_1 {\n  state MASTER"),
                work,
            )
            wait_until(lambda: host.has_address(seed_vips[0]), 15)
            time.sleep(1)
            pids = ka.pids()
        else:
            cfg = work / "seed.yaml"
            text = halo_config(100, 2, 1, work / "state").replace(
                f"[{VIP}/24]", "[" + ", ".join(seed_vips) + "]"
            )
            cfg.write_text(text.replace("  VI_1:\n", "  VI_1:\n    state: MASTER\n"))
            proc = host.spawn(sys.executable, "-m", "halo_core.cli", "run", "-c", str(cfg))
            wait_until(lambda: host.has_address(seed_vips[0]), 15)
            time.sleep(1)
            pids = [proc.pid]
        total = 0
        for pid in pids:
            with open(f"/proc/{pid}/status") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
        return total / 1024


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--version", type=int, choices=[2, 3], default=3)
    p.add_argument("--advert-int", type=float, default=None, help="default 1 (v2) or 0.1 (v3)")
    p.add_argument("--pairs", default="keepalived,halo")
    p.add_argument("--workdir", default="bench/results/outage")
    args = p.parse_args()
    from halo_tool_lab.keepalived import keepalived_available
    from halo_tool_lab.netns import lab_unavailable_reason

    reason = lab_unavailable_reason()
    if reason:
        raise SystemExit(f"bench/outage: {reason}")
    interval = args.advert_int or (1.0 if args.version == 2 else 0.1)
    pairs = [k for k in args.pairs.split(",") if k != "keepalived" or keepalived_available()]
    work = Path(args.workdir)
    results: dict[str, Any] = {"version": args.version, "advert_int": interval, "pairs": {}}
    for trial_no in range(args.trials):  # interleaved, so both see the same machine load
        for kind in pairs:
            r = trial(kind, args.version, interval, work / kind / str(trial_no))
            results["pairs"].setdefault(kind, []).append(r)
            print(f"  {kind:10} trial {trial_no + 1}: outage {r['outage'] * 1000:8.1f} ms, "
                  f"kill -> first GARP {r['kill_to_garp'] * 1000:8.1f} ms", flush=True)  # fmt: skip
    results["rss_mb"] = {kind: round(memory(kind, work / f"mem-{kind}"), 1) for kind in pairs}
    print(
        f"\nVRRPv{args.version}, adverts every {interval:g} s, {args.trials} trials,"
        " client every 10 ms"
    )
    print(f"{'':24}" + "".join(f"{k:>22}" for k in pairs))
    for key, label in (
        ("outage", "outage (ms)"),
        ("kill_to_garp", "kill -> GARP (ms)"),
        ("last_advert_to_answer", "last advert->answer"),
        ("last_advert_to_garp", "last advert->GARP"),
        ("first_advert_to_garp", "first advert->GARP"),
    ):
        for stat, fn in (("median", statistics.median), ("max", max)):
            row = [fn([r[key] for r in results["pairs"][k]]) * 1000 for k in pairs]
            print(f"{label + ' ' + stat:24}" + "".join(f"{v:>22.2f}" for v in row))
    print(
        f"{'RSS, seed config (MB)':24}" + "".join(f"{results['rss_mb'][k]:>22.1f}" for k in pairs)
    )
    out = work / f"outage-v{args.version}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
