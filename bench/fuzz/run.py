"""The long fuzzing run (#15 §6): the CI tests' generators (``halo_tool_lab.fuzz``) with
bigger counts. Prints, per surface, the inputs, crashes, must-drop accepts (VRRP), false
drops, hangs (an input over 1 s) and the time per input; exits 1 when anything was found.

    uv run python bench/fuzz/run.py                      # 1 M packets, 100 k HTTP, 10 k configs
    uv run python bench/fuzz/run.py --packets 100000 --http 10000 --configs 1000 --seed 7

No root needed: the packets go through the receive path without a kernel socket, the HTTP
requests to a `halo run` on a loopback port.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))  # the real VRRP receivers

from vrrp_targets import vrrp_targets  # noqa: E402

from halo_tool_lab import fuzz  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=15, help="seed of every generator")
    parser.add_argument("--packets", type=int, default=1_000_000, help="VRRP packets")
    parser.add_argument("--http", type=int, default=100_000, help="HTTP requests")
    parser.add_argument("--configs", type=int, default=10_000, help="mutated halo configs")
    parser.add_argument(
        "--keepalived", type=int, default=10_000, help="mutated keepalived.conf texts"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    started = time.monotonic()
    runs = [
        ("vrrp", lambda: fuzz.fuzz_vrrp(args.seed, args.packets, vrrp_targets())),
        ("http", lambda: fuzz.fuzz_http(args.seed, args.http)),
        ("config", lambda: fuzz.fuzz_config(args.seed, args.configs)),
        ("keepalived", lambda: fuzz.fuzz_keepalived(args.seed, args.keepalived)),
    ]
    reports = []
    for _, run in runs:
        report = run()
        reports.append(report)
        print(report.line(), flush=True)
        if report.crash_kinds:
            print(
                "           crash kinds: "
                + ", ".join(f"{k} ×{n}" for k, n in report.crash_kinds.items())
            )
        for example in report.examples[:3]:
            print("           " + example[:300].replace("\n", "\\n"))
    print(f"total {time.monotonic() - started:.0f} s, seed {args.seed}")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "surface": r.surface,
                        "inputs": r.inputs,
                        "crashes": r.crashes,
                        "crash_kinds": dict(r.crash_kinds),
                        "must_drop_accepts": r.must_drop_accepts,
                        "false_drops": r.false_drops,
                        "hangs": r.hangs,
                        "accepted": r.accepted,
                        "us_per_input": r.per_input_us,
                        "slowest_s": r.slowest,
                    }
                    for r in reports
                ],
                indent=2,
            )
        )
    return 0 if all(r.clean for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
