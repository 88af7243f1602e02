"""The ``process`` checker at run time: count the matching processes in /proc on every
check.

keepalived learns of forks, execs and exits from the kernel's process-events connector
(netlink); this checker polls /proc at the check's interval instead. The connector needs
CAP_NET_ADMIN in the initial network and PID namespaces (it is not available in most
containers) and a reader that keeps up with every fork of the machine; a poll costs one
directory listing and one small read per process (30 ms for 136 processes measured on a
loaded 2-core machine, see the README), and reacts within one interval, which for VRRP
tracking is set like a vrrp_script's. The
``fork_delay`` and ``terminate_delay`` hold a change of the quorum for that long, as in
keepalived.
"""

from __future__ import annotations

import os
import time

from halo_checker_process.plugin import ProcessCheck
from halo_core.plugin_api import CheckResult, CheckTarget


def stat_name(pid: str) -> str | None:
    """The process's name from /proc/PID/stat, None for a zombie or a process gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read(512)
    except OSError:
        return None
    start, end = raw.find(b"("), raw.rfind(b")")
    if start < 0 or end < 0 or raw[end + 2 : end + 3] in (b"Z", b"X"):
        return None
    return raw[start + 1 : end].decode(errors="replace")


def command_line(pid: str) -> list[str] | None:
    """argv of the process; None for a zombie (empty cmdline), a kernel thread or one gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read(65536)
    except OSError:
        return None
    if not raw:
        return None
    return [w.decode(errors="replace") for w in raw.rstrip(b"\0").split(b"\0")]


def params_match(config: ProcessCheck, args: list[str]) -> bool:
    """keepalived's ``check_params``."""
    want = config.arguments or []
    how = config.param_match or ("exact" if config.arguments is not None else None)
    if how is None:
        return True  # full_command alone: argv[0] only
    if how == "exact":
        return args == want
    if len(args) < len(want):
        return False
    if how == "partial":
        return args[: len(want)] == want
    # initial: the last configured parameter may be the start of the process's
    return args[: len(want) - 1] == want[:-1] and (
        not want or args[len(want) - 1].startswith(want[-1])
    )


def count(config: ProcessCheck) -> int:
    found = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        if config.by_command_line:
            argv = command_line(pid)
            if argv and argv[0] == config.process and params_match(config, argv[1:]):
                found += 1
        elif stat_name(pid) == config.process:
            found += 1
    return found


class ProcessChecker:
    def __init__(self, config: ProcessCheck, target: CheckTarget) -> None:
        self.config = config
        self.high = config.quorum_max
        self.low = config.low
        self.reported: bool | None = None  # what the check says (after the delays)
        self.pending: tuple[bool, float] | None = None  # a change waiting for its delay

    def quorum(self, n: int) -> bool:
        return n >= self.low and (self.high is None or n <= self.high)

    async def check(self) -> CheckResult:
        n = count(self.config)
        now_ok = self.quorum(n)
        now = time.monotonic()
        if self.reported is None:
            self.reported = now_ok  # keepalived's state at start-up: no delay
        elif now_ok != self.reported:
            delay = float(self.config.fork_delay if now_ok else self.config.terminate_delay)
            if self.pending is None or self.pending[0] != now_ok:
                self.pending = (now_ok, now)
            if now - self.pending[1] >= delay:
                self.reported, self.pending = now_ok, None
        else:
            self.pending = None
        limits = f"{self.low}..{self.high if self.high is not None else 'any'}"
        what = f"{n} {self.config.process} running (quorum {limits})"
        if self.pending is not None:
            what += f"; {'up' if now_ok else 'down'} once that has lasted its delay"
        return CheckResult(self.reported, what)

    async def close(self) -> None:
        return None
