"""Scripts cannot be swapped under halo: the file vetted is the file executed, no path
component a non-root user controls is trusted (symbolic links included), and files given to
a script as arguments ("/bin/sh FILE") are vetted too. The races are run for real: a flipper
process swaps the script's path while halo runs it, 1,000 times."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from halo_core.script_runner import RunAs, argument_problem, run_script, security_problem
from halo_tool_lab.testing import write_script

ROOT = os.geteuid() == 0
NOBODY = 65534
AS_ROOT = RunAs(None, None, "root")  # script_user root: the case an attacker wants
RUNS = 1000

pytestmark = pytest.mark.skipif(not ROOT, reason="needs root to own files as root and nobody")

# Swaps LINK between TARGETS as fast as it can, atomically (a new name renamed over the old),
# for at most LIMIT seconds: bounded even if the test dies without stopping it.
FLIPPER = """
import os, sys, time
link, limit, mode, *targets = sys.argv[1:]
deadline = time.monotonic() + float(limit)
tmp = link + ".new"
i = 0
while time.monotonic() < deadline:
    target = targets[i % len(targets)]
    i += 1
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    if mode == "symlink":
        os.symlink(target, tmp)
    else:
        os.link(target, tmp)
    os.rename(tmp, link)
"""


@contextmanager
def flipper(link: Path, mode: str, *targets: Path, user: int | None = None) -> Iterator[None]:
    # The system's python: an unprivileged user may not be able to enter the project's venv.
    python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
    argv = [python, "-c", FLIPPER, str(link), "60", mode, *map(str, targets)]
    proc = subprocess.Popen(argv, user=user, cwd="/")
    try:
        deadline = time.monotonic() + 5
        while not os.path.lexists(link) and time.monotonic() < deadline:
            time.sleep(0.001)
        yield
    finally:
        proc.kill()
        proc.wait()


async def outcomes(command: str) -> Counter[str]:
    """What RUNS runs of ``command`` as root did: the script's output, or 'refused'."""
    seen: Counter[str] = Counter()
    for _ in range(RUNS):
        res = await run_script(command, timeout=5, run_as=AS_ROOT, secure=True)
        if res.error is not None:
            seen["refused" if res.error.startswith("refused:") else res.error] += 1
        else:
            seen[res.stdout.strip() or f"exit {res.returncode}"] += 1
    return seen


async def test_symlink_race_in_a_users_directory_never_runs_the_attackers_script(
    public_dir: Path,
) -> None:
    """The attack from #15: root runs /home/user/run.sh, a link the user flips between a safe
    root-owned script and their own. Before, 4 runs in 300 ran the attacker's script."""
    safe = write_script(public_dir / "safe.sh", "echo safe\n")
    home = public_dir / "home"
    home.mkdir()
    attacker = write_script(home / "attacker.sh", "echo attacker\n")
    os.chown(attacker, NOBODY, NOBODY)
    os.chown(home, NOBODY, NOBODY)
    link = home / "run.sh"
    started = time.monotonic()
    with flipper(link, "symlink", safe, attacker, user=NOBODY):
        seen = await outcomes(str(link))
    assert seen["attacker"] == 0, seen
    # The directory is the user's: whatever the link points at, it is not run.
    assert seen == Counter(refused=RUNS)
    assert time.monotonic() - started < 60


async def test_a_file_swapped_after_the_check_is_not_the_one_run(public_dir: Path) -> None:
    """Verify and execute the same file: in a root-owned directory the path flips between a
    safe script and a world-writable one (which anyone could have filled). Each run either
    runs the safe script or refuses; the writable one never runs, even when the swap falls
    between the check and the exec."""
    store = public_dir / "store"
    store.mkdir()
    safe = write_script(store / "safe.sh", "echo safe\n")
    writable = write_script(store / "writable.sh", "echo writable\n", mode=0o777)
    run = public_dir / "run.sh"
    with flipper(run, "hardlink", safe, writable):
        seen = await outcomes(str(run))
    assert seen["writable"] == 0, seen
    assert seen["safe"] > 0 and seen["refused"] > 0, seen  # the race was exercised
    assert seen["safe"] + seen["refused"] == RUNS, seen


async def test_an_interpreter_argument_that_others_can_change_is_refused(
    public_dir: Path,
) -> None:
    writable = write_script(public_dir / "writable.sh", "echo ran\n", mode=0o666)
    res = await run_script(f"/bin/sh {writable}", timeout=5, run_as=AS_ROOT)
    assert (
        res.error == f"refused: {writable} is writable by non-root users (enable_script_security)"
    )
    users = public_dir / "home"
    users.mkdir()
    os.chown(users, NOBODY, NOBODY)
    res = await run_script(f"/bin/sh {users}/later.sh", timeout=5, run_as=AS_ROOT)
    assert res.error is not None and "owned by uid 65534, not root" in res.error
    # Missing in a sticky directory: anyone could create it before the shell opens it.
    res = await run_script(f"/bin/sh /tmp/{public_dir.name}.sh", timeout=5, run_as=AS_ROOT)
    assert res.error is not None and "others may create it" in res.error
    safe = write_script(public_dir / "safe.sh", "echo ran\n", mode=0o644)
    res = await run_script(f"/bin/sh {safe}", timeout=5, run_as=AS_ROOT)
    assert res.stdout == "ran\n"


def test_arguments_that_are_not_files_are_left_alone() -> None:
    for arg in ("-c", "--file=/tmp/x", "http://example.com/x", "/dev/null", "/nonexistent/x"):
        assert argument_problem(arg) is None, arg


def test_symbolic_links_only_roots_in_roots_directories(public_dir: Path) -> None:
    # Debian's /bin -> usr/bin and /usr/bin/sh -> dash: root's links in root's directories.
    assert security_problem("/bin/sh") is None
    safe = write_script(public_dir / "safe.sh", "exit 0\n")
    (public_dir / "sub").mkdir()
    (public_dir / "sub" / "up.sh").symlink_to("../safe.sh")
    assert security_problem(str(public_dir / "sub" / "up.sh")) is None
    users_link = public_dir / "users.sh"
    users_link.symlink_to(safe)
    os.lchown(users_link, NOBODY, NOBODY)
    assert security_problem(str(users_link)) == (
        f"{users_link} is a symbolic link owned by uid 65534, not root (enable_script_security)"
    )
    loop = public_dir / "loop.sh"
    loop.symlink_to(loop)
    assert "too many levels of symbolic links" in (security_problem(str(loop)) or "")
    assert "is not a directory" in (security_problem(f"{safe}/x") or "")


async def test_the_script_gets_its_path_in_halo_script(public_dir: Path) -> None:
    s = write_script(public_dir / "me.sh", 'echo "$HALO_SCRIPT"\n')
    res = await run_script(str(s), timeout=5, run_as=RunAs.resolve("nobody"))
    assert res.stdout == f"{s}\n"
