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
docs/keepalived-equivalence.md from the template below. The document is made from the
verdict files kept in ``bench/equivalence/verdicts/`` (a later file's verdict for a case
replaces an earlier one's; re-run a case, add its file, then)::

    uv run python bench/equivalence/run.py --merge bench/equivalence/verdicts/*.json --write-doc
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "interop"))

from equivalence import Case, Verdict, all_cases, ipvs_here, run_case, run_cases  # noqa: E402

from halo_tool_lab.keepalived import keepalived_version  # noqa: E402
from halo_tool_lab.netns import lab_unavailable_reason  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "keepalived-equivalence.md"
RUNNER = ROOT / "scripts" / "ipvs-vm"
PYCACHE = Path(os.environ.get("HALO_IPVS_VM_PYCACHE", "/var/tmp/halo-ipvs-vm-pycache"))
# seconds for the whole VM: Python runs ~15x slower under emulation
VM_TIMEOUT = int(os.environ.get("HALO_EQUIV_VM_TIMEOUT", "3000"))


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
    env |= {"PYTHONUNBUFFERED": "1", "HALO_EQUIV_SLOW": os.environ.get("HALO_EQUIV_SLOW", "6")}
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
    seconds = time.monotonic() - t0
    print(f"IPVS VM: exit {cp.returncode} after {seconds:.0f} s; output in {out_dir}")
    done = {v.case: v for v in map(_verdict, json.loads(out.read_text()))} if out.exists() else {}
    if cp.returncode == 124:
        why = f"IPVS VM: not reached before its {VM_TIMEOUT} s timeout (HALO_EQUIV_VM_TIMEOUT)"
    else:
        tail = (cp.stdout + cp.stderr).strip().splitlines()[-1:] or ["no output"]
        why = f"IPVS VM failed: {tail[0]}"
    return [done.get(c.name) or Verdict(c.name, "not runnable", note=why) for c in cases]


def run_writing(cases: list[Case], work: Path, jobs: int, target: Path) -> list[Verdict]:
    """The cases, *jobs* at a time, each verdict written to *target* as soon as it is known:
    a VM that times out still leaves the verdicts of the cases it finished."""
    done: dict[str, Verdict] = {}
    lock = threading.Lock()

    def one(case: Case) -> Verdict:
        verdict = run_case(case, work / case.name)
        with lock:
            done[case.name] = verdict
            data = [dataclasses.asdict(done[c.name]) for c in cases if c.name in done]
            target.write_text(json.dumps(data, indent=1) + "\n")
            print(f"equivalence: {case.name}: {verdict.kind} ({verdict.seconds:.0f} s)", flush=True)
        return verdict

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, cases))


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
- the notify script calls (name and arguments; a MISC_CHECK script, run every `delay_loop`,
  by which calls were made, not how many: that depends on when each daemon started);
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

- **adverts** in `vrrp`: the sample lists 192.168.200.18 twice (once with a label);
  keepalived configures it once but sends it twice in every advert, halo once. keepalived
  2.2.7 drops an advert whose address count differs from its own ("received an unexpected
  ip number count 3, expected 4!"), so a keepalived node and a halo node on this file both
  stay master, whichever has the higher priority (measured); `halo convert` warns so.
- **use_vmac** (conditional_conf): both now send from 00:00:5e:00:01:01 through a macvlan
  `vrrp.1` with the VIP on it. keepalived also adds an nftables table (`vmac_map`) that sends
  the IGMP reports its macvlan makes from the base interface; halo's macvlan never joins the
  VRRP group (halo receives on the base interface), so there is nothing to move
  (`halo_core/vrrp/vmac.py`).

- **nftables** are compared by effect (`tests/interop/nft_effect.py`): which addresses each
  table drops on input (to them) and on output (from them), per family, with the ICMPv6
  types let through. keepalived's `table ip keepalived` and halo's `inet halo_no_accept`
  compare same when they drop the same packets; anything else in a ruleset is compared as
  text.
- **seed-001-lvs-dr** has `vrrp_strict`. `halo convert` used to report it unsupported, so
  halo sent adverts with the password (auth 1) while keepalived sent auth 0 and had a
  no-accept table that halo lacked. It is now written out as the settings strict mode
  amounts to ([migrating](migrating.md#strict-mode)), and halo's table drops to and from
  the VIP as keepalived's does. Run again in the IPVS VM (run 9b): **same**.

Found by this harness and fixed: a sync group's notify scripts never ran in halo (the group's
state change did not cross to the worker process, where notifiers run); `halo convert` left
out a whole instance that lists an address twice (keepalived's `vrrp` sample; run by hand as
a pair of keepalived and halo, the same sample showed that keepalived drops halo's adverts,
see **adverts** above, and `halo convert` now says so in its warning);
`static_ipaddress`, `static_routes` and `static_rules` (now `global.static_*`, in place
from start to stop whatever the VRRP state), routes and rules of `proto keepalived` (18)
and a rule without a priority numbered as keepalived does (16384 down, static rules first),
halo's adverts leaving from a static address of scope link, and a tracked check script
that does not exist, which keepalived disables ("Disabling track script ... since not
found/accessible") and halo counted failed, keeping the instance in FAULT: it is disabled
now too (vrrp.routes, vrrp.rules, vrrp.static_ipaddress, track_interface, seed-003).
Then (run 9): the multipath route of `vrrp.routes` (`via A or B`, one route with two
nexthops, now in halo's routes backend), and which address of a subnet is the primary (the
source the kernel's routes for that subnet take) in `vrrp.scripts` and `vrrp.sync`. That
follows which instance became master first: keepalived 2.2.7 takes a sync group MASTER only
when every member wants it (`vrrp_sync_can_goto_master`, vrrp_sync.c): a member whose
Master_Down_Timer expires before the others' stays BACKUP, its timer started again, and the
member whose timer expires last becomes MASTER first, then the others in the group's order
(`vrrp_sync_master`). Timers that expire together expire in the order they were started,
the file's. halo took the group MASTER with its first member; it now holds members the same
way (`VrrpEngine._group_holds`).

IPVS: this machine's kernel has none, so the 17 load-balancer cases (16 samples, IPv6 and
PING_CHECK among them, and seed-001-lvs-dr) run only inside the QEMU VM of `scripts/ipvs-vm`
(`--vm`: software emulation, 2 vCPUs, one boot for all the cases given). The real servers of
every sample are addresses no host answers in the lab, so both daemons' checks fail and the
comparison is of the service each builds and what each does when its real servers go down.
On 2026-12-03 the host was shared with other work (load average 25 at first, 200 to 250 for
a while) and the VM got a fifth of a core to a core:

- Three cases at a time (load 25): halo's worker needed 5 to 7 minutes to become ready, and
  the harness's settle clock, which started with the processes, ran out first. IPv6 and
  PING_CHECK were compared after halo's last change all the same (its log): **same** as
  keepalived, the service built and the unreachable real server removed by both.
  HTTP_GET.port was compared a second before halo programmed its service (not kept); the
  next three workers were killed by the supervisor's 180 s start limit.
- The harness was fixed for this: the settle clock starts once halo and its worker are
  ready, it polls less often under emulation, a worker killed at start that then starts is
  compared (the kills are in the note), `nft` and `ipvsadm` get longer under emulation, and
  a verdict is written as soon as its case ends.
- One case at a time (load 40 to 250): fwmark's lab could not start its packet capture
  within 60 s; virtual_server_group ran to the end (halo's worker ready 97 s after start;
  its log shows the group's 13 services built, 2 addresses, a range of 8 and 2 firewall
  marks, and both unreachable real servers removed from each, as keepalived's log shows
  keepalived doing) but `nft list ruleset` took over 30 s and the case was lost.
- With those fixes too (`HALO_EQUIV_SLOW=8`), at load 180 to 250: the VM could not create
  the lab's bridge within the harness's 10 s probe (the whole run: 159 s).
- Once the load fell (8 to 20), one case at a time: virtual_server_group **same** in
  357 s: the group's 13 services (2 addresses, a range of 8, 2 firewall marks) in both
  `ipvsadm -Ln`, `halo ipvs` printing the same, both unreachable real servers removed by
  both. fwmark **same** in 219 s: `FWM 1` with its persistence in both tables, both
  unreachable real servers removed. sample **same** in 200 s: its VRRP instance and VIPs,
  the NAT service with its sorry server once the real server failed its check.

On a quiet host (load 1 to 10, one case at a time, `HALO_EQUIV_SLOW=8 bench/equivalence/run.py
--vm --vm-jobs 1 ...`, 2 to 10 minutes a case) the other twelve ran (runs 8, 9b, 9c):
HTTP_GET.port, SMTP_CHECK, UDP_CHECK, quorum, inhibit, status_code, virtualhost,
vrrp.lvs_syncd, misc_check, misc_check_arg and seed-001-lvs-dr **same**; SSL_GET differs
only in its adverts (`auth_type AH`, which halo does not build; keepalived's AH adverts are
captured as IP protocol 51). misc_check and misc_check_arg first differed in how many
times each daemon had run the MISC_CHECK script: the harness now compares which calls a
periodic check script got, not how many. Their first run also found a fault of halo's:
in the emulated VM the script checker's start of a script held the worker's loop over
0.1 s, so the checker moved to a process of its own, and that process's start counted
against the next check's timeout: the real server went DOWN for one run (fixed: a checker's
new process starts at once and its start is not the check's time).

"""


# Why a case differs, for each difference understood: case -> category -> why. A category
# not listed here shows as "not explained yet" (a new difference to look at).
WHY: dict[str, dict[str, str]] = {
    "SSL_GET": {
        "adverts": "the sample's instance uses auth_type AH (each VRRPv2 advert inside IPsec"
        " AH, removed from VRRP by RFC 3768), which halo does not build: halo convert says"
        " so and sends adverts without authentication, so a mixed pair on this file would"
        " not agree",
    },
    "conditional_conf": {
        "nftables": "keepalived adds a table that sends the IGMP reports of its use_vmac macvlan"
        " from the base interface; halo's macvlan never joins the VRRP group (halo receives"
        " on the base interface), so it has no reports to move",
    },
    "vrrp": {
        "adverts": "the sample lists 192.168.200.18 twice: keepalived configures it once but"
        " sends it twice in every advert, halo once; keepalived drops adverts with another"
        " count, so keepalived and halo on this file would both be master (halo convert"
        " warns)",
    },
}


def why(v: Verdict) -> str:
    """Why *v* differs: the reasons of its categories, in order, each once."""
    known = WHY.get(v.case, {})
    reasons: list[str] = []
    for cat in sorted(v.categories):
        reason = known.get(cat, f"{cat}: not explained yet")
        if reason not in reasons:
            reasons.append(reason)
    return "; ".join(reasons)


def markdown(verdicts: list[Verdict]) -> str:
    lines = ["| case | verdict | what differs | why |", "| --- | --- | --- | --- |"]
    for v in verdicts:
        reason = ""
        if v.kind == "same":
            verdict, what = "same", ""
        elif v.kind == "not runnable":
            verdict, what, reason = "not runnable here", "", v.note
        else:
            verdict = "differs"
            if v.pending:
                verdict += f": feature pending ({', '.join(v.pending)})"
            what, reason = ", ".join(sorted(v.categories)), why(v)
        if v.note and v.kind != "not runnable":
            what = f"{what} ({v.note})".strip()
        cells = (v.case, verdict, what, reason)
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
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
    ap.add_argument("--vm-jobs", type=int, default=2, help="cases at a time in the VM (default 2)")
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
        return report(verdicts, args, "from " + ", ".join(str(p) for p in args.merge))
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
        named = {c.name: c for c in cases}
        cases = [named[n] for n in dict.fromkeys(args.cases)]  # in the order given
    work = args.workdir or Path(tempfile.mkdtemp(prefix="halo-equiv-", dir="/var/tmp"))
    t0 = time.monotonic()
    target = args.json or RESULTS / f"equivalence-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    if args.inside_vm:
        run_writing(cases, work, args.jobs, target)
        return 0
    if ipvs_here() or not args.vm:
        verdicts = run_cases(cases, work, jobs=args.jobs)
    else:
        here = [c for c in cases if not c.uses_ipvs]
        vm = [c for c in cases if c.uses_ipvs]
        by_name = {v.case: v for v in run_cases(here, work, jobs=args.jobs)}
        if vm:
            by_name |= {v.case: v for v in run_in_vm(vm, jobs=args.vm_jobs)}
        verdicts = [by_name[c.name] for c in cases]
    seconds = time.monotonic() - t0
    data = [dataclasses.asdict(v) for v in verdicts]
    target.write_text(json.dumps(data, indent=1) + "\n")
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
            command += " --merge " + " ".join(str(p) for p in args.merge)
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
