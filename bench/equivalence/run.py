"""keepalived's samples (and the seeds) run by keepalived and by halo side by side: the
equivalence table of docs/keepalived-equivalence.md.

Each case runs in labs of its own through ``tests/interop/equivalence.py`` (what is rewritten
for the lab, what is compared: see that module). The load-balancer samples need IPVS: where
this kernel has none, ``--vm`` runs them inside the QEMU VM of ``scripts/ipvs-vm`` (one VM
for all of them), else they are reported as not runnable here.

Run as root from the repository root::

    uv run python bench/equivalence/run.py [--jobs 3] [--vm] [--write-doc] [CASE ...]

It prints the table (markdown) and the differences, and writes every verdict to
``bench/results/equivalence-<time>.json``; ``--write-doc`` rewrites
docs/keepalived-equivalence.md from the template below.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "interop"))

from equivalence import Case, Verdict, all_cases, ipvs_here, run_cases  # noqa: E402

from halo_tool_lab.keepalived import keepalived_version  # noqa: E402
from halo_tool_lab.netns import lab_unavailable_reason  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "keepalived-equivalence.md"
RUNNER = ROOT / "scripts" / "ipvs-vm"
PYCACHE = Path(os.environ.get("HALO_IPVS_VM_PYCACHE", "/var/tmp/halo-ipvs-vm-pycache"))
VM_TIMEOUT = 3000  # seconds for the whole VM: Python runs ~15x slower under emulation


def _verdict(d: dict[str, object]) -> Verdict:
    details = [(str(c), str(t)) for c, t in d.get("details", [])]  # type: ignore[attr-defined]
    return Verdict(
        case=str(d["case"]),
        kind=str(d["kind"]),
        details=details,
        pending=[str(p) for p in d.get("pending", [])],  # type: ignore[attr-defined]
        note=str(d.get("note", "")),
        seconds=float(d.get("seconds", 0.0)),  # type: ignore[arg-type]
    )


def run_in_vm(cases: list[Case], jobs: int) -> list[Verdict]:
    """The IPVS cases inside one VM; a one-line reason per case when the VM cannot run."""
    check = subprocess.run(
        [sys.executable, RUNNER, "--check"], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        reason = (check.stdout.strip() or check.stderr.strip()).splitlines()[0]
        return [Verdict(c.name, "not runnable", note=f"IPVS VM: {reason}") for c in cases]
    out_dir = Path(tempfile.mkdtemp(prefix="halo-equiv-vm-", dir="/var/tmp"))
    out = out_dir / "verdicts.json"
    names = " ".join(f"'{c.name}'" for c in cases)
    inner = (
        f"{sys.executable} {Path(__file__).resolve()} --inside-vm --jobs {jobs}"
        f" --json {out} --workdir {out_dir / 'work'} {names}"
    )
    # a bytecode cache kept between runs and warmed here: imports under emulation are slow
    PYCACHE.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    warm = "import equivalence, scapy.all, halo_core.cli, halo_core.daemon, halo_core.worker"
    subprocess.run(
        [sys.executable, "-c", warm],
        env=env | {"PYTHONPATH": str(ROOT / "tests" / "interop")},
        cwd=ROOT,
        check=False,
        timeout=300,
    )
    env |= {"IPVS_VM_RW": f"{out_dir}:{PYCACHE}", "IPVS_VM_TIMEOUT": str(VM_TIMEOUT)}
    env |= {"PYTHONUNBUFFERED": "1", "HALO_EQUIV_SLOW": "6"}
    t0 = time.monotonic()
    cp = subprocess.run(
        [sys.executable, RUNNER, inner],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=VM_TIMEOUT + 120,
    )
    (out_dir / "output.txt").write_text(cp.stdout + cp.stderr)
    print(f"IPVS VM: exit {cp.returncode} after {time.monotonic() - t0:.0f} s; output in {out_dir}")
    if not out.exists():
        tail = (cp.stdout + cp.stderr).strip().splitlines()[-1:] or ["no output"]
        return [Verdict(c.name, "not runnable", note=f"IPVS VM failed: {tail[0]}") for c in cases]
    return [_verdict(d) for d in json.loads(out.read_text())]


DOC_HEAD = """# keepalived and halo on the same configurations

keepalived 2.2.7's own sample configurations (`/usr/share/doc/keepalived/samples`, 25 files)
and the seeds halo convert's corpus carries, each run by keepalived and, converted by
`halo convert`, by halo, side by side in two identical network-namespace labs. After both
settle (no change in states, addresses, adverts, notify calls for a while), the harness
compares what each did:

- the addresses on every interface (`ip -j addr`), and which is the primary one of a subnet;
- the routes of every table (`ip -j route show table all`) and their protocol, the rules
  (`ip -j rule`);
- the VRRP adverts on every segment, decoded by scapy: source MAC, version, VRID, priority,
  interval, addresses, authentication type;
- the notify script calls (name and arguments);
- the nftables ruleset, and the IPVS table (`ipvsadm -Ln`; halo's `halo ipvs` must print
  the same) where the kernel has IPVS;
- the final state of each instance.

How a file is made fit for the lab (`tests/interop/equivalence.py`, `rewrite`): addresses
outside 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32 are mapped
consistently into them (each /24 keeps its host numbers, in blocks as large as the number of
/24s allows); interface names stay, each one a veth in the node's namespace on a segment of
its own, with an address in each subnet the file puts on it (its VIPs, its gateways);
notify scripts become a recorder script of the same name; a check script the machine lacks
becomes one that succeeds (the case "(check script missing)" keeps it missing);
`net_namespace` is dropped (the harness runs each daemon in a namespace); `script_user root`
is set (the lab has no `keepalived_script` user). A sample is one node alone on its
segments; a seed is its pair of nodes on one segment. The config id (`-i`) is the first
`@id` a file uses (`conditional_conf`: `high`).

Generated by {command} ({date}, keepalived {ka_version}). The VRRP-only samples run in
the test suite (`tests/interop/test_equivalence_samples.py`), which fails on any new
difference.

## Reading the table

What the differences are, and why:

- **routes** in `vrrp.routes`: the multipath route (`via A or B`), which halo does not
  support (`halo convert` reports it unsupported).
- **primary**: which of an interface's addresses in one subnet is the primary (the source
  the kernel's routes for that subnet take) follows which instance became master first.
  With instances whose timers expire together, keepalived took the last one of the file
  first, halo the first: the same addresses, in another order.
- **adverts** in `vrrp`: the sample lists 192.168.200.18 twice (once with a label);
  keepalived configures it once but sends it twice in every advert, halo once.
- **use_vmac** (conditional_conf): keepalived sends from 00:00:5e:00:01:01 through a macvlan
  `vrrp.1` with the VIP on it; halo does not do use_vmac yet (being built).

Found by this harness and fixed: a sync group's notify scripts never ran in halo (the group's
state change did not cross to the worker process, where notifiers run); `halo convert` left
out a whole instance that lists an address twice (keepalived's `vrrp` sample);
`static_ipaddress`, `static_routes` and `static_rules` (now `global.static_*`, in place
from start to stop whatever the VRRP state), routes and rules of `proto keepalived` (18)
and a rule without a priority numbered as keepalived does (16384 down, static rules first),
halo's adverts leaving from a static address of scope link, and a tracked check script
that does not exist, which keepalived disables ("Disabling track script ... since not
found/accessible") and halo counted failed, keeping the instance in FAULT: it is disabled
now too (vrrp.routes, vrrp.rules, vrrp.static_ipaddress, track_interface, seed-003).

IPVS: this machine's kernel has none, so the load-balancer samples can run only inside the
QEMU VM of `scripts/ipvs-vm` (`--vm`, software emulation, 2 vCPUs). Measured there
(fwmark and virtual_server_group, two cases at once, on a host loaded by other work): each
took about 13 minutes, and halo's worker, which holds the IPVS backend, took minutes to
start and was then killed 20 times by its supervisor's 10 s hang limit, so halo built no
IPVS service and there was nothing to compare. keepalived built the services (fwmark:
`FWM 1`; virtual_server_group: all 13 of the group, 2 addresses, a range of 8 and 2
firewall marks, which a previous session had seen keepalived not build) and removed the
unreachable real servers after their checks failed. The other IPVS samples were not run in
the VM in this session. The harness now reports such a run as not runnable.

"""


def markdown(verdicts: list[Verdict]) -> str:
    lines = ["| case | verdict | what differs |", "| --- | --- | --- |"]
    for v in verdicts:
        if v.kind == "same":
            verdict, what = "same", ""
        elif v.kind == "not runnable":
            verdict, what = "not runnable here", v.note
        else:
            verdict = "differs"
            if v.pending:
                verdict += f": feature pending ({', '.join(v.pending)})"
            what = ", ".join(sorted(v.categories))
        if v.note and v.kind != "not runnable":
            what += f" ({v.note})"
        lines.append(f"| {v.case} | {verdict} | {what.replace('|', '/')} |")
    out = "\n".join(lines) + "\n"
    differing = [v for v in verdicts if v.details]
    if differing:
        out += "\n## What differs, case by case\n"
        for v in differing:
            out += f"\n### {v.case}\n\n"
            for cat, text in v.details:
                out += f"- **{cat}**: {text}\n"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="*", help="case names (default: all)")
    ap.add_argument("--jobs", type=int, default=3, help="cases at a time (default 3)")
    ap.add_argument("--vm", action="store_true", help="run the IPVS cases in the IPVS VM")
    ap.add_argument("--write-doc", action="store_true", help=f"rewrite {DOC.relative_to(ROOT)}")
    ap.add_argument("--json", type=Path, help="write the verdicts here (default bench/results)")
    ap.add_argument("--inside-vm", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help="logs and captures (default: /var/tmp)")
    ap.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="run nothing: the table from verdict files of earlier runs (a later file's"
        " verdict for a case replaces an earlier one's)",
    )
    args = ap.parse_args(argv)
    if args.merge:
        merged: dict[str, Verdict] = {}
        for path in args.merge:
            merged |= {v.case: v for v in map(_verdict, json.loads(path.read_text()))}
        order = [c.name for c in all_cases()]
        verdicts = sorted(merged.values(), key=lambda v: order.index(v.case))
        return report(verdicts, args, "from " + ", ".join(p.name for p in args.merge))
    reason = lab_unavailable_reason()
    if reason is not None:
        print(f"equivalence: lab unavailable: {reason}", file=sys.stderr)
        return 2
    cases = all_cases()
    if args.cases:
        unknown = set(args.cases) - {c.name for c in cases}
        if unknown:
            print(f"equivalence: unknown case(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        cases = [c for c in cases if c.name in args.cases]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="halo-equiv-", dir="/var/tmp"))
    t0 = time.monotonic()
    if args.inside_vm or ipvs_here() or not args.vm:
        verdicts = run_cases(cases, work, jobs=args.jobs)
    else:
        here = [c for c in cases if not c.uses_ipvs]
        vm = [c for c in cases if c.uses_ipvs]
        by_name = {v.case: v for v in run_cases(here, work, jobs=args.jobs)}
        if vm:
            by_name |= {v.case: v for v in run_in_vm(vm, jobs=2)}
        verdicts = [by_name[c.name] for c in cases]
    seconds = time.monotonic() - t0
    data = [dataclasses.asdict(v) for v in verdicts]
    target = args.json or RESULTS / f"equivalence-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=1) + "\n")
    if args.inside_vm:
        return 0
    return report(verdicts, args, f"in {seconds:.0f} s; logs in {work}, verdicts in {target}")


def report(verdicts: list[Verdict], args: argparse.Namespace, where: str) -> int:
    """Print the table and a summary line; with --write-doc, write the document too."""
    table = markdown(verdicts)
    print(table)
    counts = {k: sum(v.kind == k for v in verdicts) for k in ("same", "differs", "not runnable")}
    print(
        f"{len(verdicts)} cases: {counts['same']} same, {counts['differs']} differ,"
        f" {counts['not runnable']} not runnable here ({where})"
    )
    if args.write_doc:
        command = "`uv run python bench/equivalence/run.py" + (" --vm" if args.vm else "")
        if args.merge:
            command += " --merge " + " ".join(p.name for p in args.merge)
            command += "` from the verdicts of earlier runs (`--json FILE`; the IPVS ones `--vm`)"
        else:
            command += "`"
        head = DOC_HEAD.format(
            command=command,
            date=time.strftime("%Y-%m-%d"),
            ka_version=keepalived_version() or "?",
        )
        DOC.write_text(head + table)
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
