"""How fast ``halo check`` answers malformed configurations, and keepalived's ``-t`` beside it.

halo: every case of the generated corpus (``halo_tool_lab.hostile``, about 1,400) is checked
in-process, as the tests do, and the slowest cases and the total are printed; ``--cli N``
also runs the N slowest through the real command (a new Python process each: what an
operator waits for).

keepalived: ``keepalived -t -f FILE`` (its config test) on keepalived.conf files malformed
the same ways where keepalived's language has the same thing: control characters, NUL
bytes, bad encodings, deep nesting, huge numbers, a large file, include loops and diamonds,
devices, a directory and a FIFO as includes. keepalived has no aliases and no typed fields
in YAML's sense, so those categories have no counterpart. Each keepalived run gets 10 s.
Both columns are whole processes for the paired cases (halo through its CLI).

    uv run python bench/configs/run.py [--cli 10] [--no-keepalived]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from halo_core import cli, plugins
from halo_tool_lab.hostile import HostileConfig, corpus, materialise, schemas_of

TIMEOUT = 10.0
LIMIT = 1.0
"""Seconds within which every malformed configuration must be answered (#15)."""


def halo_in_process(cases: list[HostileConfig]) -> list[tuple[float, str, int]]:
    results = []
    for case in cases:
        with tempfile.TemporaryDirectory() as tmp:
            main = materialise(case, Path(tmp))
            err = io.StringIO()
            started = time.perf_counter()
            with contextlib.redirect_stderr(err):
                status = cli.main(["check", "-c", str(main)])
            results.append((time.perf_counter() - started, case.name, status))
    return results


def run_process(argv: list[str], cwd: Path) -> tuple[float, int | None, str]:
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return time.perf_counter() - started, None, "(killed after 10 s)"
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return time.perf_counter() - started, proc.returncode, lines[0] if lines else ""


def halo_cli(case: HostileConfig) -> tuple[float, int | None, str]:
    with tempfile.TemporaryDirectory() as tmp:
        materialise(case, Path(tmp))
        return run_process(
            [sys.executable, "-m", "halo_core.cli", "check", "-c", "halo.yaml"], Path(tmp)
        )


# --------------------------------------------------------------------------- keepalived

VALID = """global_defs {
  router_id bench
}
vrrp_instance VI_1 {
  interface eth0
  state BACKUP
  virtual_router_id 51
  priority 100
  advert_int 1
  virtual_ipaddress {
    192.0.2.51
  }
}
"""


def _write(directory: Path, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_bytes(content)


def keepalived_cases() -> dict[str, tuple[str, Callable[[Path], None]]]:
    """name → (the halo corpus case it matches, a function writing keepalived.conf)."""
    valid = VALID.encode()

    def text(content: bytes, **more: bytes) -> Callable[[Path], None]:
        return lambda d: _write(d, {"keepalived.conf": content, **more})

    def diamond(d: Path) -> None:
        files = {"keepalived.conf": b"include l0/*.conf\n" + valid}
        for lvl in range(8):
            for j in range(4):
                nxt = b"include ../l%d/*.conf\n" % (lvl + 1) if lvl < 7 else b""
                files[f"l{lvl}/{j}.conf"] = nxt + b"global_defs {\n}\n"
        _write(d, files)

    def fifo(d: Path) -> None:
        _write(d, {"keepalived.conf": b"include pipe.conf\n" + valid})
        os.mkfifo(d / "pipe.conf")

    def subdir(d: Path) -> None:
        _write(d, {"keepalived.conf": b"include sub.conf\n" + valid})
        (d / "sub.conf").mkdir()

    deep = b"vrrp_instance VI_1 {\n" + b"a {\n" * 100_000 + b"}\n" * 100_000 + b"}\n"
    comments = b"# padding\n" * (5 * 1024 * 1024 // 10)
    return {
        "control-character": ("control-0007-value", text(valid.replace(b"bench", b"a\x07b"))),
        "nul-byte": ("encoding-nul-bytes", text(valid.replace(b"bench", b"a\x00b"))),
        "latin-1": ("encoding-latin1", text(valid.replace(b"bench", b"\xe9"))),
        "utf-16": ("encoding-utf16le-bom", text(VALID.encode("utf-16"))),
        "nesting-100000": ("depth-flow-list-100000", text(deep)),
        "vrid-400-digits": (
            "number-virtual_router_id-digits-400",
            text(valid.replace(b"virtual_router_id 51", b"virtual_router_id " + b"9" * 400)),
        ),
        "advert-int-nan": (
            "number-advert_int-nan",
            text(valid.replace(b"advert_int 1", b"advert_int nan")),
        ),
        "advert-int-1e400": (
            "number-advert_int-float-1e400",
            text(valid.replace(b"advert_int 1", b"advert_int 1e400")),
        ),
        "file-5-mib": ("size-file-over-limit", text(comments + valid)),
        "include-self": ("include-self", text(b"include keepalived.conf\n" + valid)),
        "include-diamond-4x8": ("include-diamond-4x8", diamond),
        "include-dev-zero": ("include-device-zero", text(b"include /dev/zero\n" + valid)),
        "include-dev-urandom": ("include-device-urandom", text(b"include /dev/urandom\n" + valid)),
        "include-directory": ("include-subdir", subdir),
        "include-fifo": ("include-fifo", fifo),
        "vip-multicast": (
            "conflict-vip-multicast",
            text(valid.replace(b"192.0.2.51", b"224.0.0.18")),
        ),
        "vip-twice": (
            "conflict-same-vip-twice",
            text(valid.replace(b"192.0.2.51\n", b"192.0.2.51\n    192.0.2.51\n")),
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cli", type=int, default=10, help="slowest cases rerun via the CLI")
    parser.add_argument("--no-keepalived", action="store_true", help="skip keepalived -t")
    args = parser.parse_args()

    cases = corpus(schemas_of(plugins.load()))
    by_name = {c.name: c for c in cases}
    results = halo_in_process(cases)
    results.sort(reverse=True)
    total = sum(r[0] for r in results)
    wrong = [r for r in results if r[2] != 1]
    print(
        f"halo check, in-process: {len(results)} malformed configs, total {total:.2f} s,"
        f" mean {total / len(results) * 1000:.1f} ms, slowest {results[0][0] * 1000:.0f} ms"
        f" ({results[0][1]}); exit status other than 1: {len(wrong)}"
    )
    for seconds, name, _status in results[:10]:
        print(f"  {seconds * 1000:8.1f} ms  {name}")
    if args.cli:
        print(f"\nhalo check through the CLI (a new process each), the {args.cli} slowest:")
        for _seconds, name, _status in results[: args.cli]:
            took, status, first = halo_cli(by_name[name])
            print(f"  {took * 1000:8.1f} ms  exit {status}  {name}")

    # The worst a file within the limits can cost: dense YAML just under the value limit,
    # broken at its end (a corpus case, so the test suite bounds it too).
    worst = by_name["size-near-value-limit-broken-at-end"]
    took = next(r[0] for r in results if r[1] == worst.name)
    size = len(worst.files["halo.yaml"]) >> 10
    verdict = "ok" if took < LIMIT else f"OVER the {LIMIT:g} s limit"
    print(f"\nat the value limit ({size} KiB of dense YAML broken at its end):", end=" ")
    print(f"{took:.2f} s, {verdict}")
    # The largest real configurations (3,000 instances) with one semantic error at their
    # end: read and validated in full before it is found. In-process and as a command.
    for name in (
        "size-3000-instances-unknown-track-late",
        "size-3000-instances-duplicate-vrid-late",
    ):
        took = next(r[0] for r in results if r[1] == name)
        cli_took, _status, _first = halo_cli(by_name[name])
        verdict = "ok" if max(took, cli_took) < LIMIT else f"OVER the {LIMIT:g} s limit"
        print(f"{name}: {took:.2f} s in-process, {cli_took:.2f} s as a command, {verdict}")
    slow = [r for r in results if r[0] >= LIMIT]
    if slow:
        print(f"{len(slow)} cases took {LIMIT:g} s or more")

    outcome = 1 if slow or wrong else 0
    if args.no_keepalived:
        return outcome
    keepalived = shutil.which("keepalived")
    if keepalived is None:
        print("\nkeepalived not installed: no comparison")
        return outcome
    print("\nSame faults, keepalived -t -f (config test) beside halo check (both as processes):")
    print(f"  {'case':22} {'keepalived':>10} {'exit':>5} {'halo':>9} {'exit':>5}  keepalived says")
    for name, (halo_case, write) in keepalived_cases().items():
        with tempfile.TemporaryDirectory() as tmp:
            write(Path(tmp))
            took, status, first = run_process(
                [keepalived, "-t", "-f", "keepalived.conf", "-l"], Path(tmp)
            )
        h_took, h_status, _ = halo_cli(by_name[halo_case])
        print(
            f"  {name:22} {took * 1000:8.1f}ms {status!s:>5} {h_took * 1000:7.1f}ms"
            f" {h_status!s:>5}  {first[:70]}"
        )
    return outcome


if __name__ == "__main__":
    sys.exit(main())
