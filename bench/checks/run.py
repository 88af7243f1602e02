"""Health-check throughput, CPU per check, and VRRP advert jitter under check load.

One halo daemon runs in a lab namespace with N TCP (and/or HTTP) checks at a short interval
against servers in the same namespace (a separate process, so its CPU is not counted), plus
a VRRPv3 instance advertising every 0.1 s on the lab segment. The bench reads the daemon's
CPU time from /proc before and after a measuring window, counts the checks the servers
answered, and takes the advert intervals from a capture on the bridge (kernel timestamps).

    sudo uv run python bench/checks/run.py --tcp 500 --interval 0.1 --seconds 10

keepalived's checker, measured on this machine (shared/notes/keepalived-lab.md): 200 TCP
checks/s cost 3.4 % of a core, i.e. 0.17 ms of CPU per check.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from pathlib import Path

KEEPALIVED_CPU_PER_CHECK_MS = 3.4 / 100 / 200 * 1000  # 0.17 ms


# --------------------------------------------------------------------------- the servers


async def serve(tcp: int, http: int, base: int, count_file: Path) -> None:
    counts = {"tcp": 0, "http": 0}
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"

    async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts["tcp"] += 1
        writer.close()

    async def on_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply)
            await writer.drain()
            counts["http"] += 1
        except (OSError, asyncio.IncompleteReadError):
            pass
        writer.close()

    servers = [
        await asyncio.start_server(on_tcp, "127.0.0.1", base + i, backlog=1024) for i in range(tcp)
    ]
    servers += [
        await asyncio.start_server(on_http, "127.0.0.1", base + 20000 + i, backlog=1024)
        for i in range(http)
    ]
    while True:  # the bench kills us; until then publish the counters every 100 ms
        count_file.write_text(json.dumps({**counts, "t": time.time()}))
        await asyncio.sleep(0.1)


# --------------------------------------------------------------------------- the bench


def config(tcp: int, http: int, base: int, interval: float, state_dir: Path) -> str:
    lines = [
        "global:",
        f"  state_dir: {state_dir}",
        "vrrp_instances:",
        "  VI_1:",
        "    interface: eth0",
        "    virtual_router_id: 51",
        "    priority: 100",
        "    version: 3",
        "    advert_int: 0.1",
        "    virtual_ipaddress: [192.0.2.100/24]",
        "checks:",
    ]
    for i in range(tcp):
        lines.append(
            f"  t{i}: {{type: tcp, connect_ip: 127.0.0.1, connect_port: {base + i},"
            f" interval: {interval}, timeout: 1}}"
        )
    for i in range(http):
        lines.append(
            f"  h{i}: {{type: http, connect_ip: 127.0.0.1, connect_port: {base + 20000 + i},"
            f" interval: {interval}, timeout: 1}}"
        )
    return "\n".join(lines) + "\n"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def bench(args: argparse.Namespace) -> dict[str, object]:
    from halo_tool_lab import capture as cap
    from halo_tool_lab.netns import Lab, lab_unavailable_reason

    reason = lab_unavailable_reason()
    if reason:
        raise SystemExit(f"bench/checks: {reason}")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    with Lab(1) as lab:
        host = lab.hosts[0]
        counts = work / "counts.json"
        counts.unlink(missing_ok=True)
        host.spawn(
            sys.executable,
            __file__,
            "serve",
            "--tcp",
            str(args.tcp),
            "--http",
            str(args.http),
            "--base",
            str(args.base),
            "--counts",
            str(counts),
        )
        deadline = time.time() + 30
        while not counts.exists() and time.time() < deadline:
            time.sleep(0.05)
        cfg = work / "halo.yaml"
        cfg.write_text(config(args.tcp, args.http, args.base, args.interval, work / "state"))
        log = work / "halo.log"
        log.unlink(missing_ok=True)
        daemon = host.spawn(
            sys.executable,
            "-m",
            "halo_core.cli",
            "run",
            "-c",
            str(cfg),
            "--log-level",
            "warning",
            log=log,
        )
        time.sleep(args.warmup)
        if not daemon.running:
            raise SystemExit(f"halo exited: {log.read_text()[-2000:]}")
        capture = lab.capture(work / "adverts.pcap", filter="vrrp")
        c0 = json.loads(counts.read_text())
        cpu0, t0 = cpu_seconds(daemon.pid), time.time()
        time.sleep(args.seconds)
        cpu1, t1 = cpu_seconds(daemon.pid), time.time()
        c1 = json.loads(counts.read_text())
        rss = rss_mb(daemon.pid)
        frames = capture.stop()
        daemon.terminate_and_wait()
    elapsed = t1 - t0
    checks = (c1["tcp"] - c0["tcp"]) + (c1["http"] - c0["http"])
    rate = checks / (c1["t"] - c0["t"])
    cpu = (cpu1 - cpu0) / elapsed
    adverts = [a.time for a in cap.vrrp_adverts(frames, vrid=51)]
    gaps = [b - a for a, b in itertools.pairwise(adverts)]
    jitter = [abs(g - 0.1) * 1000 for g in gaps]
    configured = (args.tcp + args.http) / args.interval
    return {
        "tcp_checks": args.tcp,
        "http_checks": args.http,
        "interval": args.interval,
        "configured_checks_per_s": round(configured),
        "answered_checks_per_s": round(rate),
        "cpu_core_fraction": round(cpu, 3),
        "cpu_ms_per_check": round(cpu * 1000 / rate, 4) if rate else None,
        "cpu_per_1000_checks_s": round(cpu * 1000 / rate, 3) if rate else None,
        "checks_per_s_per_core": round(rate / cpu) if cpu else None,
        "adverts": len(adverts),
        "advert_jitter_ms_p50": round(percentile(jitter, 50), 3) if jitter else None,
        "advert_jitter_ms_p99": round(percentile(jitter, 99), 3) if jitter else None,
        "advert_jitter_ms_max": round(max(jitter), 3) if jitter else None,
        "rss_mb": round(rss, 1),
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        p = argparse.ArgumentParser()
        p.add_argument("serve")
        p.add_argument("--tcp", type=int, default=0)
        p.add_argument("--http", type=int, default=0)
        p.add_argument("--base", type=int, default=20000)
        p.add_argument("--counts", type=Path, required=True)
        a = p.parse_args()
        asyncio.run(serve(a.tcp, a.http, a.base, a.counts))
        return 0
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tcp", type=int, default=500, help="TCP checks (default 500)")
    p.add_argument("--http", type=int, default=0, help="HTTP checks (default 0)")
    p.add_argument("--interval", type=float, default=0.1, help="check interval in seconds")
    p.add_argument("--seconds", type=float, default=10.0, help="measuring window")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    p.add_argument("--base", type=int, default=20000, help="first server port")
    p.add_argument("--workdir", default="bench/results/checks")
    p.add_argument("--json", action="store_true", help="print JSON only")
    args = p.parse_args()
    result = bench(args)
    out = Path(args.workdir) / "result.json"
    out.write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"checks configured: {args.tcp} tcp + {args.http} http every {args.interval:g}s "
        f"= {result['configured_checks_per_s']}/s"
    )
    print(f"{'':28}{'halo':>12}{'keepalived':>14}")
    print(f"{'checks answered per second':28}{result['answered_checks_per_s']:>12}{'':>14}")
    print(f"{'CPU (fraction of a core)':28}{result['cpu_core_fraction']:>12}{'':>14}")
    ka_ms = KEEPALIVED_CPU_PER_CHECK_MS
    print(f"{'CPU per check (ms)':28}{result['cpu_ms_per_check']:>12}{ka_ms:>14.3f}")
    print(f"{'checks/s per core':28}{result['checks_per_s_per_core']:>12}{round(1000 / ka_ms):>14}")
    print(f"{'advert jitter p50 (ms)':28}{result['advert_jitter_ms_p50']:>12}")
    print(f"{'advert jitter p99 (ms)':28}{result['advert_jitter_ms_p99']:>12}")
    print(f"{'advert jitter max (ms)':28}{result['advert_jitter_ms_max']:>12}")
    print(f"{'daemon RSS (MB)':28}{result['rss_mb']:>12}")
    print("(keepalived: shared/notes/keepalived-lab.md, 200 TCP checks/s = 3.4% of a core)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
