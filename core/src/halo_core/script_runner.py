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
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

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


# Symbolic links followed on one path before giving up, as the kernel's ELOOP limit.
MAX_SYMLINKS = 40
_OPEN_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(Exception):
    """A path that a non-root user could change (or that cannot be walked safely)."""


def _writable_by_others(shown: str, st: os.stat_result) -> str | None:
    """keepalived's rule for one path component: owned by root, not writable by group or
    others (a sticky directory such as /tmp excepted: others cannot replace what root owns
    in it)."""
    if st.st_uid != 0:
        return f"{shown} is owned by uid {st.st_uid}, not root (enable_script_security)"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (
        stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
    ):
        return f"{shown} is writable by non-root users (enable_script_security)"
    return None


def open_vetted(path: str) -> tuple[int, os.stat_result]:
    """Open ``path`` as an ``O_PATH`` descriptor without ever letting the kernel follow a
    symbolic link, vetting every component on the descriptor just opened: each directory
    from ``/`` down, and each symbolic link met (it must be root's, in a vetted directory; its
    target is then walked the same way, so Debian's ``/bin -> usr/bin`` is fine and a link an
    unprivileged user controls is not). The final component is returned unvetted with its
    ``fstat``; the caller decides what it must be. Relative paths start at ``/``, where
    scripts run. Raises :class:`UnsafePath` or OSError (a missing component)."""
    pending = [c for c in path.split("/") if c not in ("", ".")]
    dirs: list[tuple[int, str]] = []  # the vetted directories walked, "/" first
    try:
        root = os.open("/", _OPEN_PATH | os.O_DIRECTORY)
        dirs.append((root, "/"))
        problem = _writable_by_others("/", os.fstat(root))
        if problem:
            raise UnsafePath(problem)
        links = 0
        while pending:
            name = pending.pop(0)
            if name == "..":
                # The parent of a vetted directory was vetted on the way down.
                if len(dirs) > 1:
                    os.close(dirs.pop()[0])
                continue
            parent_fd, parent = dirs[-1]
            shown = os.path.join(parent, name)
            try:
                fd = os.open(name, _OPEN_PATH, dir_fd=parent_fd)
            except FileNotFoundError:
                if os.fstat(parent_fd).st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                    # A sticky directory protects what root has in it, not a free name.
                    raise UnsafePath(
                        f"{shown} does not exist and others may create it in {parent}"
                        " (enable_script_security)"
                    ) from None
                raise
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                try:
                    if st.st_uid != 0:
                        raise UnsafePath(
                            f"{shown} is a symbolic link owned by uid {st.st_uid}, not root"
                            " (enable_script_security)"
                        )
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise UnsafePath(f"{path}: too many levels of symbolic links")
                    target = os.readlink("", dir_fd=fd)  # the link this descriptor holds
                finally:
                    os.close(fd)
                if target.startswith("/"):
                    while len(dirs) > 1:
                        os.close(dirs.pop()[0])
                pending[:0] = [c for c in target.split("/") if c not in ("", ".")]
                continue
            if not pending:
                return fd, st
            if not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise UnsafePath(f"{shown} is not a directory")
            dirs.append((fd, shown))
            problem = _writable_by_others(shown, st)
            if problem:
                raise UnsafePath(problem)
        # The path named "/" itself (or only "." and ".." components).
        fd, _ = dirs.pop()
        return fd, os.fstat(fd)
    finally:
        for fd, _ in dirs:
            os.close(fd)


def open_script(path: str) -> int:
    """An ``O_PATH`` descriptor of the script at ``path``, vetted (see :func:`open_vetted`):
    a regular, executable file owned by root, writable by nobody else, in directories and
    through links only root can change. Executing this descriptor runs the file that was
    vetted, whatever happens to the path meanwhile. Raises :class:`UnsafePath`."""
    try:
        fd, st = open_vetted(path)
    except OSError as exc:
        raise UnsafePath(f"{path}: {exc.strerror or exc}") from None
    problem = None
    if not stat.S_ISREG(st.st_mode):
        problem = f"{path} is not a regular file"
    elif not st.st_mode & 0o111:
        problem = f"{path} is not executable"
    else:
        problem = _writable_by_others(path, st)
    if problem:
        os.close(fd)
        raise UnsafePath(problem)
    return fd


def argument_problem(arg: str) -> str | None:
    """Why a script argument that names a file must not be given to it: ``/bin/sh FILE``
    runs FILE, so an argument naming a regular file or a directory gets the script's own
    checks (bar the execute bit), and so does one naming nothing yet in a directory others
    could write to (they could create it). Arguments without a ``/`` and paths to devices,
    FIFOs and sockets are left alone."""
    if os.sep not in arg:
        return None
    try:
        fd, st = open_vetted(arg)
    except UnsafePath as exc:
        return str(exc)
    except OSError:
        return None  # missing below vetted directories: nobody else can create it
    os.close(fd)
    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        return _writable_by_others(arg, st)
    return None


def security_problem(path: str) -> str | None:
    """Why the script at ``path`` must not be run, or None if it is safe: see
    :func:`open_script`."""
    try:
        os.close(open_script(path))
    except UnsafePath as exc:
        return str(exc)
    return None


async def run_script(
    command: str | Sequence[str],
    *,
    timeout: float,
    run_as: RunAs | None = None,
    env: Mapping[str, str] | None = None,
    secure: bool = True,
    stdin: bytes | None = None,
    started: Callable[[int], None] | None = None,
) -> ScriptResult:
    """Run ``command`` without a shell, in a new process group, and wait for it at most
    ``timeout`` seconds; on time-out the whole group is killed. ``started`` is told the
    process id (also its process group's), for a caller that ends a long-running one
    itself."""
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
    full_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    # Under enable_script_security an interpreted script sees /proc/self/fd/N as its $0
    # (see below): its path is here, whichever way it runs.
    full_env["HALO_SCRIPT"] = exe
    full_env.update(env or {})
    kwargs: dict[str, object] = {}
    if run_as is not None and run_as.uid is not None and not _already(run_as.uid, run_as.gid):
        kwargs["user"] = run_as.uid
        kwargs["group"] = run_as.gid
        kwargs["extra_groups"] = []
    script_fd: int | None = None
    if secure:
        # keepalived's enable_script_security: a script (or a file given to it, as in
        # "/bin/sh FILE") that a non-root user could change must not run with our
        # privileges, whichever user it runs as. The file vetted is the file executed: its
        # descriptor, through /proc/self/fd, so swapping the path afterwards changes nothing.
        try:
            script_fd = open_script(exe)
            for arg in argv[1:]:
                problem = argument_problem(arg)
                if problem:
                    raise UnsafePath(problem)
        except UnsafePath as exc:
            if script_fd is not None:
                os.close(script_fd)
            return ScriptResult(None, error=f"refused: {exc}")
        kwargs["executable"] = f"/proc/self/fd/{script_fd}"
        kwargs["pass_fds"] = (script_fd,)
    try:
        proc = subprocess.Popen(
            [exe, *argv[1:]],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            start_new_session=True,
            cwd="/",
            **kwargs,  # type: ignore[call-overload]
        )
    except OSError as exc:
        return ScriptResult(None, error=f"{exe}: {exc.strerror or exc}")
    finally:
        if script_fd is not None:
            os.close(script_fd)
    if started is not None:
        started(proc.pid)
    return await _wait_for(proc, stdin, timeout)


def _already(uid: int, gid: int | None) -> bool:
    """Whether this process already has exactly the credentials a script is to run with
    (user, group, no other groups), as a daemon run as root with script_user root has.
    Asking Popen to set them anyway makes it fork instead of vfork: it copies the whole
    worker's page tables, 0.1 s per script on a slow machine, with the event loop held."""
    return (
        os.getuid() == os.geteuid() == uid
        and os.getgid() == os.getegid() == (gid if gid is not None else os.getgid())
        and set(os.getgroups()) <= {os.getgid()}
    )


async def _wait_for(
    proc: subprocess.Popen[bytes], stdin: bytes | None, timeout: float
) -> ScriptResult:
    """Wait for ``proc``'s exit through a pidfd on the running loop, reading its output.

    Not asyncio's subprocess transport: on Python 3.11, a task cancelled while that
    transport connects its pipes waits for the process's exit *and* for pipes that are
    never connected, forever (a daemon stopping at that moment never ends), and its exit
    notification costs a thread per script. Here every await can be cancelled, and a
    cancelled or timed-out run kills the script's process group."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError as exc:  # a kernel before 5.3
        _kill_group(proc.pid)
        proc.wait()
        return ScriptResult(None, error=f"cannot wait for the script: {exc.strerror or exc}")
    exited: asyncio.Future[None] = loop.create_future()
    outputs = [_Output(loop, proc.stdout), _Output(loop, proc.stderr)]

    loop.add_reader(pidfd, _wake, exited)
    try:
        if stdin is not None and proc.stdin is not None:
            await _feed(loop, proc.stdin, stdin)
        try:
            await asyncio.wait_for(asyncio.shield(exited), timeout)
        except TimeoutError:
            _kill_group(proc.pid)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited), 5)
            return ScriptResult(None, timed_out=True)
        # The script has ended. It may have started a service in the background that still
        # holds our pipes (the seeds' check_ng.sh restarts nginx): take what output is there
        # and leave the service alone, as keepalived does, rather than wait for its pipes.
        await asyncio.wait([o.eof for o in outputs], timeout=0.2)
        out, err = (o.text() for o in outputs)
        return ScriptResult(proc.wait(), out, err)
    except BaseException:
        _kill_group(proc.pid)
        raise
    finally:
        loop.remove_reader(pidfd)
        for o in outputs:
            o.close()
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.poll() is None:  # killed, still dying: reaped when it is gone
            loop.add_reader(pidfd, _reap, loop, proc, pidfd)
        else:
            os.close(pidfd)


def _reap(loop: asyncio.AbstractEventLoop, proc: subprocess.Popen[bytes], pidfd: int) -> None:
    loop.remove_reader(pidfd)
    os.close(pidfd)
    proc.poll()


class _Output:
    """A child's stdout or stderr, read without blocking up to OUTPUT_LIMIT bytes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pipe: IO[bytes] | None) -> None:
        assert pipe is not None
        self.loop = loop
        self.pipe = pipe
        self.fd = pipe.fileno()
        self.data = bytearray()
        self.eof: asyncio.Future[None] = loop.create_future()
        os.set_blocking(self.fd, False)
        loop.add_reader(self.fd, self._read)

    def _read(self) -> None:
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk and len(self.data) < OUTPUT_LIMIT:
            self.data += chunk[: OUTPUT_LIMIT - len(self.data)]
        if not chunk:
            self.loop.remove_reader(self.fd)
            if not self.eof.done():
                self.eof.set_result(None)

    def text(self) -> str:
        return self.data.decode(errors="replace")

    def close(self) -> None:
        self.loop.remove_reader(self.fd)
        if not self.eof.done():
            self.eof.cancel()
        self.pipe.close()


async def _feed(loop: asyncio.AbstractEventLoop, pipe: IO[bytes], data: bytes) -> None:
    """Write ``data`` to the child's stdin without blocking, then close it."""
    fd = pipe.fileno()
    os.set_blocking(fd, False)
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_writer(fd, _wake, ready)
            try:
                await ready
            finally:
                loop.remove_writer(fd)
        except BrokenPipeError:
            break
    pipe.close()


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


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
        started: Callable[[int], None] | None = None,
    ) -> ScriptResult:
        """Run ``command`` and wait for it; never raises. ``started``: see
        :func:`run_script`."""
        try:
            run_as = self.run_as or RunAs.resolve(self.user)
        except ValueError as exc:
            if what is not None:
                self.log.error("%s: %s", what, exc)
            return ScriptResult(None, error=str(exc))
        res = await run_script(
            command,
            timeout=self.timeout,
            run_as=run_as,
            env=env,
            secure=self.secure,
            started=started,
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
