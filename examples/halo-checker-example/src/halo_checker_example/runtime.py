"""The runtime: one ``stat`` per check, off the event loop's critical path (it is cheap)."""

from __future__ import annotations

import os
import time

from halo_checker_example.plugin import FileAgeCheck
from halo_core.plugin_api import CheckResult, CheckTarget


class FileAgeChecker:
    def __init__(self, config: FileAgeCheck, target: CheckTarget) -> None:
        self.config = config

    async def check(self) -> CheckResult:
        try:
            age = time.time() - os.stat(self.config.path).st_mtime
        except OSError as exc:
            return CheckResult(False, f"{self.config.path}: {exc.strerror}")
        if age > self.config.max_age:
            return CheckResult(False, f"{self.config.path} is {age:.1f}s old")
        return CheckResult(True, f"{self.config.path} is {age:.1f}s old")

    async def close(self) -> None:
        return None
