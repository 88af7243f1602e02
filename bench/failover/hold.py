"""10 ms adverts held under load (#16 §7): a halo pair and a keepalived pair, VRRPv3 at
``advert_int 0.01`` on one segment for ``--seconds`` (10 minutes by default), each halo node
running the load of ``bench/checks`` §6 (TCP and HTTP checks, a blocking and a spinning
third-party checker). Prints false takeovers (adverts from a backup while its master runs),
the masters' advert jitter and missed adverts, then kill -9 of each master ``--trials``
times: its last advert to the backup's first, against Master_Down_Interval (36.5 ms).
``--explain`` says what surrounded each false takeover: when the master's adverts reached
the backup's own interface, the halo processes' loop stalls, the other pair's master at that
moment (``--workdir`` keeps the captures and logs). Scenario: tests/interop/hold.py.

    sudo uv run python bench/failover/hold.py [--seconds 600] [--trials 3]
        [--tcp 500] [--http 50] [--blocking 1] [--spinning 1] [--keepalived-rt 1]
        [--explain] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "interop"))

from hold import Load, run_hold  # noqa: E402

from halo_tool_lab.netns import lab_unavailable_reason  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=600.0, help="how long to hold (default 600)")
    p.add_argument("--trials", type=int, default=3, help="kill -9 trials per pair (default 3)")
    p.add_argument("--warmup", type=float, default=15.0, help="seconds before the hold")
    p.add_argument("--tcp", type=int, default=500, help="TCP checks per halo node")
    p.add_argument("--http", type=int, default=50, help="HTTP checks per halo node")
    p.add_argument("--interval", type=float, default=0.1, help="check interval (default 0.1)")
    p.add_argument("--blocking", type=int, default=1, help="checkers blocking 2 s per node")
    p.add_argument("--spinning", type=int, default=1, help="checkers spinning 2 s per node")
    p.add_argument(
        "--keepalived-rt",
        type=int,
        default=1,
        help="keepalived's vrrp_rt_priority (default 1, halo's default; 0: unset)",
    )
    p.add_argument("--workdir", type=Path, help="keep the captures and logs here")
    p.add_argument(
        "--explain", action="store_true", help="explain each false takeover (more captures)"
    )
    p.add_argument("--out", type=Path, help="JSON results (default bench/results/hold-<time>.json)")
    args = p.parse_args()
    reason = lab_unavailable_reason()
    if reason:
        print(f"bench/failover/hold: {reason}", file=sys.stderr)
        return 2
    load = Load(args.tcp, args.http, args.interval, args.blocking, args.spinning)
    with tempfile.TemporaryDirectory(prefix="halo-bench-hold-") as tmp:
        report = run_hold(
            args.seconds,
            args.workdir or Path(tmp),
            load=load,
            trials=args.trials,
            warmup=args.warmup,
            keepalived_rt=args.keepalived_rt,
            progress=lambda msg: print(msg, flush=True),
            explain=args.explain,
        )
    print(report.text())
    out = args.out or ROOT / "bench" / "results" / time.strftime("hold-%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.json() + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
