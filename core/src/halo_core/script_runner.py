"""Running operators' scripts safely: health-check scripts and notify hooks.

keepalived's rules, kept: a script runs as an unprivileged user unless configured otherwise
(``script_user``; default ``keepalived_script`` if that user exists, else ``nobody``), and
with ``enable_script_security`` a script that a non-root user could modify — the file or
any directory above it — is refused, since it would run with our privileges. Every script
runs in its own process group, so a time-out kills the script *and* whatever it started.
Nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import pwd
import shlex
import shutil
import signal
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

OUTPUT_LIMIT = 64 * 1024
log = logging.getLogger("halo.scripts")


@dataclass(frozen=True)
class ScriptResult:
    """How a script ended. ``returncode`` is None when it was killed for running too long."""

    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    error: str | None = None  # could not be started at all (not found, refused, …)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        if self.error:
            return self.error
        if self.timed_out:
            return "timed out (process group killed)"
        tail = (self.stderr or self.stdout).strip().splitlines()
        detail = f": {tail[-1][:200]}" if tail else ""
        return f"exit status {self.returncode}{detail}"


@dataclass(frozen=True)
class RunAs:
    """The user and group scripts run as (None: as ourselves)."""

    uid: int | None
    gid: int | None
    name: str

    @classmethod
    def resolve(cls, spec: str | None) -> RunAs:
        """``"user"`` or ``"user:group"``; None picks keepalived's default when we are root."""
        if os.geteuid() != 0:
            return cls(None, None, pwd.getpwuid(os.geteuid()).pw_name)
        if spec is None:
            for candidate in ("keepalived_script", "nobody"):
                with contextlib.suppress(KeyError):
                    pwd.getpwnam(candidate)
                    spec = candidate
                    break
        if spec is None:
            raise ValueError("no script user: create 'keepalived_script' or set global.script_user")
        user, _, group = spec.partition(":")
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise ValueError(f"script user {user!r} does not exist") from None
        gid = pw.pw_gid
        if group:
            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise ValueError(f"script group {group!r} does not exist") from None
        return cls(pw.pw_uid, gid, spec)


def split_command(command: str | Sequence[str]) -> list[str]:
    """keepalived takes a script as one string with shell-like quoting (no shell)."""
    return shlex.split(command) if isinstance(command, str) else list(command)


def security_problem(path: str) -> str | None:
    """Why ``path`` must not be run as another user, or None if it is safe: it and every
    directory above it must be owned by root and not writable by group or others."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    if not st.st_mode & 0o111:
        return f"{path} is not executable"
    current = os.path.realpath(path)
    while True:
        st = os.stat(current)
        if st.st_uid != 0:
            return f"{current} is owned by uid {st.st_uid}, not root (enable_script_security)"
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (
            stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        ):
            return f"{current} is writable by non-root users (enable_script_security)"
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


async def run_script(
    command: str | Sequence[str],
    *,
    timeout: float,
    run_as: RunAs | None = None,
    env: Mapping[str, str] | None = None,
    secure: bool = True,
    stdin: bytes | None = None,
) -> ScriptResult:
    """Run ``command`` without a shell, in a new process group, and wait for it at most
    ``timeout`` seconds; on time-out the whole group is killed."""
    try:
        argv = split_command(command)
    except ValueError as exc:  # an unclosed quote: a result like any other failure
        return ScriptResult(None, error=f"cannot split the command into words: {exc}")
    if not argv:
        return ScriptResult(None, error="empty command")
    if any("\0" in arg for arg in argv):
        return ScriptResult(None, error="the command contains a NUL character")
    exe = argv[0] if os.sep in argv[0] else shutil.which(argv[0])
    if exe is None:
        return ScriptResult(None, error=f"{argv[0]}: not found")
    if secure:
        # keepalived's enable_script_security: a script whose path a non-root user could
        # change must not run with our privileges — whichever user it runs as.
        problem = security_problem(exe)
        if problem:
            return ScriptResult(None, error=f"refused: {problem}")
    full_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    full_env.update(env or {})
    kwargs: dict[str, object] = {}
    if run_as is not None and run_as.uid is not None:
        kwargs["user"] = run_as.uid
        kwargs["group"] = run_as.gid
        kwargs["extra_groups"] = []
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.subprocess_exec(
            lambda: _ExitProtocol(loop),
            exe,
            *argv[1:],
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=full_env,
            start_new_session=True,
            cwd="/",
            **kwargs,  # type: ignore[arg-type]
        )
    except OSError as exc:
        return ScriptResult(None, error=f"{exe}: {exc.strerror or exc}")
    proc = asyncio.subprocess.Process(transport, protocol, loop)
    if stdin is not None and proc.stdin is not None:
        proc.stdin.write(stdin)
        proc.stdin.close()
    assert proc.stdout is not None and proc.stderr is not None
    readers = [asyncio.ensure_future(_read_capped(s)) for s in (proc.stdout, proc.stderr)]
    try:
        # Not proc.wait(): before Python 3.12 it also waits for the pipes to close, which a
        # service started in the background keeps open.
        await asyncio.wait_for(asyncio.shield(protocol.exited), timeout)
    except TimeoutError:
        _kill_group(proc.pid)
        for r in readers:
            r.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 5)
        return ScriptResult(None, timed_out=True)
    except asyncio.CancelledError:
        _kill_group(proc.pid)
        for r in readers:
            r.cancel()
        raise
    # The script has ended. It may have started a service in the background that still
    # holds our pipes (the seeds' check_ng.sh restarts nginx): take what output is there and
    # leave the service alone, as keepalived does, rather than wait for its pipes to close.
    done, pending = await asyncio.wait(readers, timeout=0.2)
    for r in pending:
        r.cancel()
    out, err = (r.result() if r in done and not r.cancelled() else b"" for r in readers)
    return ScriptResult(
        proc.returncode,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
    )


class ScriptRunner:
    """Runs operators' scripts with one owner's settings: the daemon's checks' notify_up and
    notify_down, a virtual server's quorum and real-server commands, a notifier's hooks.

    ``run_as`` is the resolved user, or None to resolve ``user`` (keepalived's
    ``script_user``) at each run, so that a missing user is an error of that run, logged,
    not of the owner's start. With ``what`` a failure is logged as ``what: command: why``;
    without it the caller reports the :class:`ScriptResult` itself.
    """

    def __init__(
        self,
        *,
        user: str | None = None,
        run_as: RunAs | None = None,
        secure: bool = True,
        timeout: float = 30.0,
        logger: logging.Logger = log,
    ) -> None:
        self.user = user
        self.run_as = run_as
        self.secure = secure
        self.timeout = timeout
        self.log = logger
        self.tasks: set[asyncio.Task[ScriptResult]] = set()

    async def run(
        self,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        what: str | None = None,
    ) -> ScriptResult:
        """Run ``command`` and wait for it; never raises."""
        try:
            run_as = self.run_as or RunAs.resolve(self.user)
        except ValueError as exc:
            if what is not None:
                self.log.error("%s: %s", what, exc)
            return ScriptResult(None, error=str(exc))
        res = await run_script(
            command, timeout=self.timeout, run_as=run_as, env=env, secure=self.secure
        )
        if not res.ok and what is not None:
            shown = command if isinstance(command, str) else shlex.join(command)
            self.log.warning("%s: %s: %s", what, shown, res.describe())
        return res

    def spawn(
        self, command: str | Sequence[str], *, env: Mapping[str, str] | None = None, what: str
    ) -> None:
        """Run ``command`` in the background (the caller must not wait for an operator's
        script); :meth:`cancel` kills what is still running."""
        task = asyncio.get_running_loop().create_task(self.run(command, env=env, what=what))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def cancel(self) -> None:
        for task in list(self.tasks):
            task.cancel()


class _ExitProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Knows when the process itself has exited, whatever its pipes are doing."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=OUTPUT_LIMIT, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


async def _read_capped(stream: asyncio.StreamReader) -> bytes:
    data = b""
    while len(data) < OUTPUT_LIMIT:
        chunk = await stream.read(OUTPUT_LIMIT - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
