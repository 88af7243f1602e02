"""Stale-ARP benchmark: who has the last word on the segment after a split brain heals.

For each pair (master->backup: halo->halo, halo->keepalived, keepalived->keepalived, and on
request keepalived->halo) on a fresh three-host lab, N heal trials of
``tests/interop/stale_arp.py``: VRRPv3 at 0.1 s, VRRP dropped at the master's switch port
until the backup has taken over and announced the VIP, then healed at a random point. A trial
is *stale* when the last gratuitous ARP for the VIP on the bridge is not from the master's
MAC; *silent* when the backup stepped down without sending an advert (the race: the master
heard nothing). keepalived 2.2.7 has the race; halo's vip backend answers claims.

Run as root from the repository root::

    uv run python bench/stale_arp/run.py [--trials 50] [--pairs hh,hk,kk] [--fault freeze]

It prints one line per trial and a table, and writes every trial to
``bench/results/stale-arp-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "interop"))

from stale_arp import FAULTS, Outcome, StaleArpLab, TrialError  # noqa: E402

from halo_tool_lab.netns import Lab, lab_unavailable_reason  # noqa: E402

PAIRS = {
    "hh": ("halo", "halo"),
    "hk": ("halo", "keepalived"),
    "kk": ("keepalived", "keepalived"),
    "kh": ("keepalived", "halo"),
}


def run_pair(master: str, backup: str, trials: int, workdir: Path, fault: str) -> list[Outcome]:
    out: list[Outcome] = []
    with Lab(3, ipv6=False) as lab:
        bench = StaleArpLab(lab, master, backup, workdir)
        try:
            for _ in range(trials):
                o = bench.trial(fault)
                out.append(o)
                delay = "-" if o.answer_delay is None else f"{o.answer_delay * 1000:.1f} ms"
                print(
                    f"  {o.pair:24} #{o.trial:<3} last GARP from {o.last_garp_from:7}"
                    f" {'STALE' if o.stale else 'ok   '} silent={o.silent!s:5}"
                    f" answer={delay}",
                    flush=True,
                )
        finally:
            bench.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50, help="heal trials per pair")
    parser.add_argument(
        "--pairs", default="hh,hk,kk", help=f"comma-separated, of {', '.join(PAIRS)}"
    )
    parser.add_argument(
        "--fault",
        choices=FAULTS,
        default="partition",
        help="VRRP dropped at the master's port, or the master stopped (SIGSTOP/SIGCONT)",
    )
    args = parser.parse_args()
    reason = lab_unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    pairs = [p.strip() for p in args.pairs.split(",") if p.strip()]
    unknown = [p for p in pairs if p not in PAIRS]
    if unknown or args.trials < 1:
        print(f"bad --pairs {unknown} or --trials {args.trials}", file=sys.stderr)
        return 2
    results: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="halo-stale-arp-") as tmp:
        for p in pairs:
            try:
                results += run_pair(*PAIRS[p], args.trials, Path(tmp), args.fault)
            except TrialError as exc:
                print(f"{p}: {exc}", file=sys.stderr)
                return 1
    print(f"\nfault: {args.fault}")
    print(f"{'pair':24} {'trials':>6} {'stale':>6} {'rate':>6} {'silent':>7} {'max answer':>11}")
    for p in pairs:
        name = "->".join(PAIRS[p])
        mine = [o for o in results if o.pair == name]
        stale = sum(o.stale for o in mine)
        delays = [o.answer_delay for o in mine if o.answer_delay is not None]
        worst = f"{max(delays) * 1000:.1f} ms" if delays else "-"
        print(
            f"{name:24} {len(mine):6} {stale:6} {stale / len(mine):6.0%}"
            f" {sum(o.silent for o in mine):7} {worst:>11}"
        )
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"stale-arp-{args.fault}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps([asdict(o) for o in results], indent=1) + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
