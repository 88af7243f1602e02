"""Scripts run safely: time-outs kill the whole process group, insecure scripts are refused,
scripts run as the unprivileged script user."""

from __future__ import annotations

import os
import pwd
import stat
import time
from pathlib import Path

import pytest

from halo_core.script_runner import RunAs, run_script, security_problem

ROOT = os.geteuid() == 0


def script(path: Path, body: str, mode: int = 0o755) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


async def test_exit_status_output_and_env(tmp_path: Path) -> None:
    s = script(tmp_path / "s.sh", 'echo "hello $HALO_X"; exit 3\n')
    res = await run_script([str(s)], timeout=5, env={"HALO_X": "world"}, secure=False)
    assert res.returncode == 3 and res.stdout == "hello world\n"
    assert not res.ok and res.describe() == "exit status 3: hello world"


async def test_string_command_is_split_like_keepalived(tmp_path: Path) -> None:
    s = script(tmp_path / "s.sh", 'echo "$1|$2"\n')
    res = await run_script(f"{s} 'a b' c", timeout=5, secure=False)
    assert res.stdout == "a b|c\n"


async def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    s = script(tmp_path / "s.sh", f"sleep 300 & echo $! > {pidfile}; wait\n")
    start = time.monotonic()
    res = await run_script([str(s)], timeout=0.5, secure=False)
    assert res.timed_out and res.returncode is None
    assert time.monotonic() - start < 5
    child = int(pidfile.read_text())
    for _ in range(100):  # the grandchild dies with the group
        try:
            with open(f"/proc/{child}/stat") as fh:
                if fh.read().split(")")[-1].split()[0] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.02)
    else:
        raise AssertionError("the script's child survived the time-out")


async def test_missing_script() -> None:
    res = await run_script(["/nonexistent/check.sh"], timeout=1, secure=False)
    assert res.error is not None and not res.ok


@pytest.mark.skipif(not ROOT, reason="needs root to change user and own files as root")
async def test_runs_as_script_user(public_dir: Path) -> None:
    s = script(public_dir / "id.sh", "id -u\n")
    run_as = RunAs.resolve("nobody")
    res = await run_script([str(s)], timeout=5, run_as=run_as, secure=False)
    assert res.stdout.strip() == str(pwd.getpwnam("nobody").pw_uid)


@pytest.mark.skipif(not ROOT, reason="needs root-owned paths")
async def test_insecure_script_is_refused(public_dir: Path) -> None:
    d = public_dir
    good = script(d / "good.sh", "exit 0\n")
    assert security_problem(str(good)) is None  # /tmp is sticky: allowed, like keepalived
    bad = script(d / "bad.sh", "exit 0\n", mode=0o777)
    assert "writable by non-root users" in (security_problem(str(bad)) or "")
    res = await run_script([str(bad)], timeout=5, run_as=RunAs.resolve("nobody"), secure=True)
    assert res.error is not None and res.error.startswith("refused:")
    os.chown(good, 65534, 65534)
    assert "not root" in (security_problem(str(good)) or "")
    assert stat.S_IMODE(os.stat(good).st_mode) == 0o755


# ------------------------------------------------------------- ScriptRunner: one runner for all


async def test_script_runner_logs_failures_as_what_command_why(
    public_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from halo_core.script_runner import ScriptRunner

    failing = script(public_dir / "fail.sh", "echo broken >&2; exit 2\n")
    runner = ScriptRunner(secure=True, timeout=5)
    res = await runner.run(str(failing), env={"HALO_X": "1"}, what="check web: notify")
    assert res.returncode == 2
    assert f"check web: notify: {failing}: exit status 2: broken" in caplog.messages
    caplog.clear()
    res = await runner.run(str(failing))  # without `what` the caller reports
    assert res.returncode == 2 and caplog.messages == []


@pytest.mark.skipif(not ROOT, reason="script users apply to root only")
async def test_script_runner_resolves_the_user_at_each_run(
    public_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from halo_core.script_runner import ScriptRunner

    ok = script(public_dir / "ok.sh", "exit 0\n")
    runner = ScriptRunner(user="no-such-user-halo", secure=True, timeout=5)
    res = await runner.run(str(ok), what="vs: quorum lost")
    assert res.error == "script user 'no-such-user-halo' does not exist"
    assert caplog.messages == ["vs: quorum lost: script user 'no-such-user-halo' does not exist"]
    runner.user = None  # e.g. after a reload: the next run uses the new setting
    assert (await runner.run(str(ok), what="vs: quorum lost")).ok


async def test_script_runner_spawn_runs_in_the_background_and_cancel_kills(
    public_dir: Path,
) -> None:
    import asyncio

    from halo_core.script_runner import ScriptRunner

    mark = public_dir / "ran"
    slow = script(public_dir / "slow.sh", f"touch {mark}; sleep 30\n")
    public_dir.chmod(0o777)  # the script user writes the mark
    runner = ScriptRunner(secure=False, timeout=60)
    runner.spawn(str(slow), what="test")
    assert len(runner.tasks) == 1
    deadline = time.monotonic() + 5
    while not mark.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert mark.exists()
    runner.cancel()
    await asyncio.sleep(0.1)
    assert not runner.tasks


@pytest.mark.parametrize(
    ("command", "why"),
    [
        ("/bin/echo 'unclosed", "cannot split the command into words: No closing quotation"),
        ('/bin/echo "a\\', "cannot split the command into words"),
        ("/bin/echo a\0b", "the command contains a NUL character"),
        (["/bin/echo", "a\0b"], "the command contains a NUL character"),
    ],
)
async def test_unrunnable_command_is_a_result_not_an_exception(
    command: str | list[str], why: str
) -> None:
    result = await run_script(command, timeout=5, secure=False)
    assert not result.ok
    assert result.describe().startswith(why)
