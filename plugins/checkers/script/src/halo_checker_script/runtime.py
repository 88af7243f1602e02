"""The ``script`` checker at run time: one run of the script per check.

Everything about running the process safely — no shell, its own process group killed on
time-out, the unprivileged script user, refusing scripts others could modify — is
:func:`halo_core.script_runner.run_script`; this module maps exit statuses to results the way
keepalived does.
"""

from __future__ import annotations

import asyncio
import signal

from halo_checker_script.plugin import ScriptCheck
from halo_core.plugin_api import CheckResult, CheckTarget
from halo_core.script_runner import RunAs, run_script

_NO_LIMIT = 24 * 3600.0  # run_script needs a number; the runner's deadline comes first


class ScriptChecker:
    def __init__(self, config: ScriptCheck, target: CheckTarget) -> None:
        self.config = config
        self.target = target
        self.argv = config.argv
        g = target.global_config
        # The check's own user wins over the daemon-wide default, as in keepalived where
        # vrrp_script/MISC_CHECK `user` overrides global_defs `script_user`.
        self.user_spec = config.user
        if self.user_spec is None and g is not None:
            self.user_spec = g.script_user
        self.secure = g.enable_script_security if g is not None else True
        self.run_as: RunAs | None = None
        self.env = {**config.env, "HALO_CHECK": target.name}
        if target.address is not None:
            self.env["HALO_TARGET_IP"] = str(target.address)
        if target.port is not None:
            self.env["HALO_TARGET_PORT"] = str(target.port)
        # Finish just before the runner's deadline (timeout, else the interval), so that a
        # hung script is reported by us ("process group killed") rather than as a bare
        # time-out. When neither is set here the interval comes from the daemon (1 s, or a
        # virtual server's delay_loop) and the runner's cancellation, which kills the group
        # too, is the limit.
        limit = config.timeout if config.timeout is not None else config.interval
        self.limit = float(limit) if limit is not None else _NO_LIMIT  # as configured
        self.timeout = max(self.limit - min(0.2, self.limit * 0.1), 0.001)

    async def _run_as(self) -> RunAs:
        if self.run_as is None:
            # User lookups may go through NSS (LDAP, sssd): keep them off the event loop.
            # Resolved at the first check rather than in the factory, so that a missing
            # user makes the check fail visibly (and recover once the user exists).
            self.run_as = await asyncio.to_thread(RunAs.resolve, self.user_spec)
        return self.run_as

    async def check(self) -> CheckResult:
        try:
            run_as = await self._run_as()
        except ValueError as exc:
            return CheckResult(False, str(exc))
        res = await run_script(
            self.argv,
            timeout=self.timeout,
            run_as=run_as,
            env=self.env,
            secure=self.secure,
        )
        if res.error is not None:
            return CheckResult(False, res.error)
        if res.timed_out or res.returncode is None:
            return CheckResult(False, f"timed out after {self.limit:g}s, process group killed")
        code = res.returncode
        if code < 0:
            return CheckResult(False, f"killed by signal {_signame(-code)}")
        if code == 0:
            return CheckResult(True, "exit status 0")
        if self.config.misc_dynamic and code >= 2:
            return CheckResult(True, f"exit status {code}: weight {code - 2}", weight=code - 2)
        return CheckResult(False, res.describe())

    async def close(self) -> None:
        # Nothing outlives a check: run_script kills the process group when the runner
        # cancels a check in progress.
        return None


def _signame(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)
