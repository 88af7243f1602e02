"""Run the real keepalived inside a lab host (the reference implementation halo is checked
against).

Each instance gets its own directory with the configuration, the log and *distinct* pid
files: with keepalived's default shared pid files a second instance logs "daemon is already
running" and exits 0, a silent failure. keepalived runs in the foreground, logs to stderr
(``-n -l -D -G``) and with ``-P`` (VRRP only) by default, since any virtual_server block
needs IPVS, which lab kernels may lack.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from halo_tool_lab.netns import Host, Proc

__all__ = ["Keepalived", "keepalived_available", "keepalived_version"]

DEFAULT_BINARY = "keepalived"


@cache
def keepalived_version(binary: str = DEFAULT_BINARY) -> str | None:
    """keepalived's version ("2.2.7"), or None when it is not installed or does not run."""
    path = shutil.which(binary)
    if path is None:
        return None
    try:
        cp = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"Keepalived v(\S+)", cp.stdout + cp.stderr)
    return m.group(1) if m else None


def keepalived_available(binary: str = DEFAULT_BINARY) -> bool:
    return keepalived_version(binary) is not None


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of *pid*, None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    rest = raw[raw.rfind(b")") + 2 :].split()
    return rest[0].decode(), int(rest[1]), int(rest[2])


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[1] == pid:
                out.append(int(entry))
    return out


class Keepalived:
    """A keepalived instance in *host*, started at once.

    Files live in ``workdir/keepalived-<name>/``: ``keepalived.conf``, ``keepalived.log``
    (stdout+stderr) and ``main.pid``, ``vrrp.pid``, ``checkers.pid``, ``bfd.pid``. *env*
    entries are added to keepalived's environment (e.g. ``LD_PRELOAD``).
    """

    def __init__(
        self,
        host: Host,
        config: str,
        workdir: Path,
        *,
        name: str | None = None,
        binary: str = DEFAULT_BINARY,
        vrrp_only: bool = True,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        self.name = name or host.name
        self.dir = Path(workdir) / f"keepalived-{self.name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf_path = self.dir / "keepalived.conf"
        self.log_path = self.dir / "keepalived.log"
        self.pid_files = {
            "main": self.dir / "main.pid",
            "vrrp": self.dir / "vrrp.pid",
            "checkers": self.dir / "checkers.pid",
            "bfd": self.dir / "bfd.pid",
        }
        for p in self.pid_files.values():
            p.unlink(missing_ok=True)
        self.conf_path.write_text(config)
        path = shutil.which(binary)
        if path is None:
            raise FileNotFoundError(f"{binary} not found")
        argv = [path, "-n", "-l", "-D", "-G"]
        if vrrp_only:
            argv.append("-P")
        argv += ["-f", str(self.conf_path)]
        for opt, key in (("-p", "main"), ("-r", "vrrp"), ("-c", "checkers"), ("-b", "bfd")):
            argv += [opt, str(self.pid_files[key])]
        argv += list(extra_args)
        self.argv = argv
        self.started_at = time.monotonic()
        self.proc: Proc = host.spawn(*argv, log=self.log_path, env=env)

    def __repr__(self) -> str:
        return f"<Keepalived {self.name} in {self.host.ns} pid={self.proc.pid}>"

    # -- state --------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """PID of the keepalived parent process."""
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.running

    @property
    def log(self) -> str:
        return self.proc.log_text()

    def wait_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str] | None:
        """Wait for a line matching the regex *pattern* in the log; None on timeout or exit."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log)
            if m:
                return m
            if time.monotonic() > deadline or not self.running:
                return rx.search(self.log)
            time.sleep(0.02)

    def child_pid(self, kind: str = "vrrp") -> int | None:
        """PID from the *kind* pid file if it names a live child of our keepalived."""
        try:
            pid = int(self.pid_files[kind].read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        st = _stat(pid)
        if st is None or st[0] in ("Z", "X") or (st[1] != self.pid and st[2] != self.proc.pgid):
            return None
        return pid

    def pids(self) -> list[int]:
        """Every live process of this instance: the parent and its descendants."""
        if not self.proc.running:
            roots: list[int] = []
        else:
            roots = [self.pid]
        seen: list[int] = []
        todo = list(roots)
        while todo:
            pid = todo.pop()
            if pid in seen or not _alive(pid):
                continue
            seen.append(pid)
            todo += _children(pid)
        for kind in self.pid_files:
            child = self.child_pid(kind) if kind != "main" else None
            if child is not None and child not in seen:
                seen.append(child)
        return seen

    # -- control ------------------------------------------------------------------------------

    def kill9(self, timeout: float = 5.0) -> list[int]:
        """Simulate a dead machine: SIGKILL every process of the instance at once.

        The instance is frozen first (SIGSTOP) so no process can react (a VRRP child would
        otherwise step down with a priority-0 advert when its parent dies). Returns the PIDs
        killed.
        """
        pids = self.pids()
        if not pids:
            return []
        self.proc.kill_group(signal.SIGSTOP)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        pids = sorted(set(pids) | set(self.pids()))
        self.proc.kill_group(signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        deadline = time.monotonic() + timeout
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.01)
        return pids

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the parent (a master sends one priority-0 advert) and wait; falls back to
        :meth:`kill9` after *timeout*. Returns the parent's exit code."""
        if not self.proc.running:
            return self.proc.returncode
        children = [p for p in self.pids() if p != self.pid]
        self.proc.kill(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return self.proc.returncode
        for pid in children:  # the parent waits for its children, but be sure
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return rc

    def __enter__(self) -> Keepalived:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
