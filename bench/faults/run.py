"""The fault matrix (#15 §4): every fault × pair × VRRP version in the namespace lab,
printed as one table. While the fault lasts: the longest gap a client asking the VIP every
20 ms saw and its bound, how many times a router took mastership on the wire and how many
the fault should cause, the longest time both routers sent adverts at once and its bound.
After it: the settle time (fault's end → one master), the final master, whether the last
gratuitous ARP for the VIP came from it. A cell passes when everything is within bounds,
one master within one advert interval of the fault's end holds the VIP alone, nothing is
left after a graceful stop and no halo log has a traceback; a failing cell says why. The
bounds come from the protocol's timing (interval, Skew_Time, Master_Down_Interval) plus a
margin (``--margin``); each fault's reasoning: tests/interop/fault_matrix.py.

    sudo uv run python bench/faults/run.py                         # everything, ~25 min
    sudo uv run python bench/faults/run.py --faults kill9,partition --versions v3 --loss-seconds 20

VRRPv2 runs at 1 s with PASS authentication, VRRPv3 at 0.1 s. Cells that need halo where
keepalived is (a tracked check or a reload storm on the master, a VIP on a missing
interface on the backup) are skipped for those pairs; the missing-interface VIP is VRRPv3
only (the address lists differ, which VRRPv2 refuses).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "interop"))  # the scenarios and the nodes

from fault_matrix import (  # noqa: E402
    FAULTS,
    HALO_A_ONLY,
    HALO_B_ONLY,
    HEADER,
    PAIRS,
    PROTOS,
    V3_ONLY,
    Timing,
    run_trial,
)

from halo_tool_lab.keepalived import keepalived_available  # noqa: E402
from halo_tool_lab.netns import lab_unavailable_reason  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--faults", default=",".join(FAULTS), help="comma-separated")
    p.add_argument("--pairs", default=",".join(PAIRS[:2]), help=f"of {', '.join(PAIRS)}")
    p.add_argument("--versions", default="v2,v3", help="v2 and/or v3")
    p.add_argument("--loss-seconds", type=float, default=300.0, help="30 %% loss duration")
    p.add_argument("--reloads", type=int, default=100, help="SIGHUPs in the storm")
    p.add_argument("--storm-seconds", type=float, default=10.0, help="the storm's length")
    p.add_argument("--margin", type=float, default=0.15, help="seconds added to each gap bound")
    p.add_argument("--workdir", type=Path, default=ROOT / "bench" / "results" / "faults")
    args = p.parse_args()
    if not args.margin >= 0:
        raise SystemExit(f"bench/faults: --margin must be 0 or more seconds, not {args.margin}")
    reason = lab_unavailable_reason()
    if reason:
        raise SystemExit(f"bench/faults: {reason}")
    timing = Timing(args.loss_seconds, args.reloads, args.storm_seconds, margin=args.margin)
    pairs = [x for x in args.pairs.split(",") if "keepalived" not in x or keepalived_available()]
    results = []
    print(HEADER, flush=True)
    started = time.monotonic()
    for version in args.versions.split(","):
        if version not in PROTOS:
            raise SystemExit(f"bench/faults: unknown version {version!r} (v2 or v3)")
        for fault in args.faults.split(","):
            if fault not in FAULTS:
                raise SystemExit(f"bench/faults: unknown fault {fault!r}: {', '.join(FAULTS)}")
            for pair in pairs:
                a, b = pair.split("-")
                if (fault in HALO_A_ONLY and a != "halo") or (fault in HALO_B_ONLY and b != "halo"):
                    continue
                if fault in V3_ONLY and version != "v3":
                    continue
                r = run_trial(
                    fault, pair, version, args.workdir / f"{fault}-{pair}-{version}", timing
                )
                results.append(r)
                print(r.row(), flush=True)
    passed = sum(r.passed for r in results)
    print(f"{passed} of {len(results)} cells pass, {time.monotonic() - started:.0f} s")
    out = args.workdir / "faults.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([asdict(r) | {"passed": r.passed} for r in results], indent=2))
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
