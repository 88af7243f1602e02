"""The script checker runs real scripts: exit statuses, misc_dynamic weights, time-outs that
kill the whole process group, the script user, script security, the environment, and the
nginx tutorial's check_ng.sh restarting a dead server."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import ipaddress
import os
import pwd
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from halo_checker_script.plugin import ScriptCheck
from halo_checker_script.runtime import ScriptChecker
from halo_core import plugins
from halo_core.bus import EventBus
from halo_core.checks import CheckRunner
from halo_core.config.model import GlobalConfig
from halo_core.plugin_api import CheckTarget
from halo_core.scheduler import Scheduler
from halo_core.schema import Seconds
from halo_tool_lab.clock import FakeClock

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root to change user and own files")
# What run_script puts in a script's PATH.
SCRIPT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOBODY = pwd.getpwnam("nobody")


def script(path: Path, body: str, mode: int = 0o755, shell: str = "/bin/sh") -> Path:
    path.write_text(f"#!{shell}\n{body}")
    path.chmod(mode)
    return path


def checker(
    command: str | list[str],
    *,
    target: CheckTarget | None = None,
    global_config: GlobalConfig | None = None,
    **opts: Any,
) -> ScriptChecker:
    target = target or CheckTarget("chk")
    if global_config is not None:
        target = CheckTarget(target.name, target.address, target.port, global_config)
    opts.setdefault("timeout", Seconds(10))
    return ScriptChecker(ScriptCheck(script=command, **opts), target)


def wait_dead(pid: int, seconds: float = 5, *, reaped: bool = False) -> bool:
    """Whether ``pid`` dies within ``seconds``; with ``reaped``, whether it is gone from
    /proc altogether (``ps`` still lists a zombie, and check_ng.sh counts with ``ps``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if not reaped and fh.read().rsplit(")", 1)[-1].split()[0] in "ZX":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


# --------------------------------------------------------------------------- exit statuses


async def test_exit_zero_is_success_anything_else_failure(public_dir: Path) -> None:
    ok = script(public_dir / "ok.sh", "exit 0\n")
    bad = script(public_dir / "bad.sh", "echo 'nginx is down' >&2\nexit 1\n")
    res = await checker(str(ok)).check()
    assert res.ok and res.weight is None and res.message == "exit status 0"
    res = await checker(str(bad)).check()
    assert not res.ok and res.message == "exit status 1: nginx is down"
    # without misc_dynamic, 2–255 are plain failures (vrrp_script)
    two = script(public_dir / "two.sh", "exit 2\n")
    res = await checker(str(two)).check()
    assert not res.ok and res.weight is None


@pytest.mark.parametrize(
    ("code", "ok", "weight"), [(0, True, None), (1, False, None), (2, True, 0), (255, True, 253)]
)
async def test_misc_dynamic_weights(public_dir: Path, code: int, ok: bool, weight: int) -> None:
    s = script(public_dir / "dyn.sh", f"exit {code}\n")
    res = await checker(str(s), misc_dynamic=True).check()
    assert (res.ok, res.weight) == (ok, weight)
    if weight is not None:
        assert res.message == f"exit status {code}: weight {weight}"


async def test_killed_by_a_signal_fails(public_dir: Path) -> None:
    s = script(public_dir / "sig.sh", "kill -TERM $$\n")
    res = await checker(str(s)).check()
    assert not res.ok and res.message == "killed by signal SIGTERM"


async def test_missing_script_fails() -> None:
    res = await checker("/nonexistent/check.sh").check()
    # (core words it "refused: …: No such file or directory" when it vets the path first)
    assert not res.ok and res.message.startswith(("/nonexistent/check.sh", "refused: /nonex"))


# --------------------------------------------------------------------------- time-outs


def _grandchild_script(public_dir: Path) -> tuple[Path, Path]:
    pidfile = public_dir / "out" / "child.pid"
    s = script(public_dir / "hang.sh", f"sleep 300 &\necho $! > {pidfile}\nwait\n")
    return s, pidfile


async def test_timeout_kills_the_process_group(public_dir: Path) -> None:
    s, pidfile = _grandchild_script(public_dir)
    start = time.monotonic()
    res = await checker(str(s), timeout=Seconds(0.5)).check()
    assert time.monotonic() - start < 3
    assert not res.ok
    assert res.message == "timed out after 0.5s, process group killed"
    assert wait_dead(int(pidfile.read_text())), "the script's child survived the time-out"


async def test_runner_deadline_kills_the_group_when_the_interval_comes_from_the_daemon(
    public_dir: Path,
) -> None:
    """No timeout or interval in the check's config (a real server's check gets delay_loop
    from the daemon): the runner's cancellation is the limit, and still kills the group."""
    s, pidfile = _grandchild_script(public_dir)
    ptype = plugins.load().type("checker", "script")
    cfg = ScriptCheck(script=str(s))
    runner = CheckRunner(
        "chk",
        ptype,
        cfg,
        scheduler=Scheduler(FakeClock(), seed=1),
        bus=EventBus(),
        default_interval=0.5,
    )
    runner.checker = ptype.load_factory()(cfg, runner.target)
    result, latency = await runner.probe()
    assert not result.ok and result.message == "timed out after 0.5s"
    assert latency < 3
    assert wait_dead(int(pidfile.read_text())), "the script's child survived the cancellation"


async def test_a_script_may_leave_a_non_daemon_child_behind(public_dir: Path) -> None:
    pidfile = public_dir / "out" / "bg.pid"
    s = script(public_dir / "bg.sh", f"sleep 30 &\necho $! > {pidfile}\nexit 0\n")
    try:
        res = await checker(str(s), timeout=Seconds(1)).check()
        assert res.ok, res.message
    finally:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


# --------------------------------------------------------------------------- user, security


@needs_root
async def test_runs_as_nobody_by_default(public_dir: Path) -> None:
    out = public_dir / "out" / "id"
    s = script(public_dir / "id.sh", f"id -u > {out}\nid -g >> {out}\n")
    assert (await checker(str(s)).check()).ok
    if _user_exists("keepalived_script"):
        pytest.skip("keepalived_script exists here and is the default")
    assert out.read_text().split() == [str(NOBODY.pw_uid), str(NOBODY.pw_gid)]


@needs_root
async def test_user_from_the_check_overrides_global_script_user(public_dir: Path) -> None:
    out = public_dir / "out"
    s = script(public_dir / "id.sh", f'id -u > {out}/"$1"\nid -g >> {out}/"$1"\n')
    group = grp.getgrgid(NOBODY.pw_gid).gr_name
    # the global setting applies when the check names no user
    g = GlobalConfig(script_user="root")
    assert (await checker(f"{s} global", global_config=g).check()).ok
    assert (out / "global").read_text().split() == ["0", "0"]
    assert (await checker(f"{s} own", user=f"nobody:{group}", global_config=g).check()).ok
    assert (out / "own").read_text().split() == [str(NOBODY.pw_uid), str(NOBODY.pw_gid)]


async def test_unknown_user_fails_every_check(public_dir: Path) -> None:
    s = script(public_dir / "ok.sh", "exit 0\n")
    res = await checker(str(s), user="no-such-user-halo").check()
    if not ROOT:  # as non-root, scripts always run as ourselves (keepalived does the same)
        assert res.ok
        return
    assert not res.ok and res.message == "script user 'no-such-user-halo' does not exist"


@needs_root
async def test_script_writable_by_others_is_refused(public_dir: Path) -> None:
    bad = script(public_dir / "bad.sh", "exit 0\n", mode=0o777)
    res = await checker(str(bad)).check()
    assert not res.ok
    assert res.message == f"refused: {bad} is writable by non-root users (enable_script_security)"
    # keepalived's rule is about scripts run as root above all: refused there too
    res = await checker(str(bad), user="root").check()
    assert not res.ok and res.message.startswith("refused:")
    # a script owned by another user could be rewritten by that user
    good = script(public_dir / "good.sh", "exit 0\n")
    os.chown(good, NOBODY.pw_uid, NOBODY.pw_gid)
    res = await checker(str(good)).check()
    assert not res.ok and "is owned by uid" in res.message
    # enable_script_security: false runs it anyway
    relaxed = GlobalConfig(enable_script_security=False)
    assert (await checker(str(bad), global_config=relaxed).check()).ok


# --------------------------------------------------------------------------- environment, args


async def test_environment_names_the_check_and_target(public_dir: Path) -> None:
    out = public_dir / "out" / "env"
    s = script(
        public_dir / "env.sh",
        f'echo "$HALO_CHECK|$HALO_TARGET_IP|$HALO_TARGET_PORT|$EXTRA|$PATH" > {out}\n',
    )
    target = CheckTarget("web_rs", address=ipaddress.ip_address("192.0.2.10"), port=8080)
    res = await checker(str(s), target=target, env={"EXTRA": "x y"}).check()
    assert res.ok
    assert out.read_text().strip() == f"web_rs|192.0.2.10|8080|x y|{SCRIPT_PATH}"
    # a named check (vrrp_script) has no target address: the variables are absent
    s2 = script(
        public_dir / "env2.sh",
        f'echo "$HALO_CHECK|${{HALO_TARGET_IP-unset}}|${{HALO_TARGET_PORT-unset}}" > {out}\n',
    )
    assert (await checker(str(s2), target=CheckTarget("chk_nginx")).check()).ok
    assert out.read_text().strip() == "chk_nginx|unset|unset"


async def test_arguments_with_keepalived_quoting(public_dir: Path) -> None:
    out = public_dir / "out" / "args"
    s = script(public_dir / "args.sh", f'printf "%s|" "$@" > {out}\n')
    res = await checker(f"{s} 'a b' \"c 'd'\" e\\ f plain").check()
    assert res.ok
    assert out.read_text() == "a b|c 'd'|e f|plain|"
    # the list form takes arguments as they are
    assert (await checker([str(s), "$HOME", "*", "x y"]).check()).ok
    assert out.read_text() == "$HOME|*|x y|"


# --------------------------------------------------------------------------- check_ng.sh

# The nginx HA tutorial's check script, verbatim (the seed scenario uses it as written).
CHECK_NG = """#!/bin/bash
counter=$(ps -C nginx --no-heading|wc -l)
if [ "${counter}" = "0" ]; then
    /usr/local/bin/nginx
    sleep 2
    counter=$(ps -C nginx --no-heading|wc -l)
    if [ "${counter}" = "0" ]; then
        /etc/init.d/keepalived stop
    fi
fi
"""

# A stand-in for nginx: detaches like nginx does (fork, new session, stdio on /dev/null),
# so the check script can end while it keeps serving, and answers HTTP on one port.
FAKE_NGINX = """#!{python}
import http.server, os, sys
if os.fork():
    sys.exit(0)
os.setsid()
if os.fork():
    os._exit(0)
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"fake nginx\\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.HTTPServer.allow_reuse_address = True
http.server.HTTPServer(("127.0.0.1", {port}), Handler).serve_forever()
"""


def _adapted_check_ng(name: str, binary: Path) -> str:
    # Only names change: a unique process name instead of "nginx" (a real nginx on this
    # machine must not count), our fake's path, and "exit 1" where the tutorial stops
    # keepalived — with halo, a failing check is how the node gives up its addresses.
    return (
        CHECK_NG.replace("/usr/local/bin/nginx", str(binary))
        .replace("/etc/init.d/keepalived stop", "exit 1")
        .replace("ps -C nginx", f"ps -C {name}")
    )


def _pids(name: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/comm").read_text().strip() == name:
                    with open(f"/proc/{entry}/stat") as fh:
                        if fh.read().rsplit(")", 1)[-1].split()[0] not in "ZX":
                            out.append(int(entry))
    return sorted(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _get(port: int) -> str:
    for _ in range(50):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        data = await reader.read()
        writer.close()
        return data.decode()
    raise AssertionError(f"nothing serves 127.0.0.1:{port}")


@pytest.fixture
def fake_nginx(public_dir: Path) -> Iterator[tuple[str, Path, int]]:
    python = shutil.which("python3", path=SCRIPT_PATH)
    if python is None:
        pytest.skip("no python3 on the scripts' PATH for the fake nginx")
    name = f"ngx{secrets.token_hex(4)}"  # a process name (comm) no one else has
    port = _free_port()
    binary = public_dir / name
    binary.write_text(FAKE_NGINX.format(python=python, port=port))
    binary.chmod(0o755)
    yield name, binary, port
    for pid in _pids(name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def test_check_ng_restarts_a_dead_server(
    public_dir: Path, fake_nginx: tuple[str, Path, int]
) -> None:
    name, binary, port = fake_nginx
    check_ng = script(public_dir / "check_ng.sh", "")
    check_ng.write_text(_adapted_check_ng(name, binary))
    # the script sleeps 2 s after a restart: the default 10 s time-out of these tests
    chk = checker(str(check_ng), target=CheckTarget("chk_nginx"))

    assert _pids(name) == []
    res = await chk.check()  # dead: the script starts it, finds it running, exits 0
    assert res.ok, res.message
    first = _pids(name)
    assert len(first) == 1
    assert "fake nginx" in await _get(port)
    if ROOT:  # started by the script, so as the script user
        assert os.stat(f"/proc/{first[0]}").st_uid == NOBODY.pw_uid

    start = time.monotonic()
    res = await chk.check()  # running: nothing to do
    assert res.ok and _pids(name) == first
    assert time.monotonic() - start < 1.5

    os.kill(first[0], signal.SIGKILL)
    assert wait_dead(first[0], reaped=True)
    res = await chk.check()  # dead again: restarted
    assert res.ok, res.message
    second = _pids(name)
    assert len(second) == 1 and second != first
    assert "fake nginx" in await _get(port)


async def test_check_ng_fails_when_the_server_will_not_start(public_dir: Path) -> None:
    name = f"ngx{secrets.token_hex(4)}"
    broken = script(public_dir / name, "exit 1\n")
    check_ng = script(public_dir / "check_ng.sh", "")
    check_ng.write_text(_adapted_check_ng(name, broken))
    res = await checker(str(check_ng), timeout=Seconds(10)).check()
    assert not res.ok and res.message == "exit status 1"


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
