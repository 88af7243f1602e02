"""The ``file`` checker at run time: read the file on every check (a few hundred octets at
most are read, so a huge or endless file cannot stall the worker)."""

from __future__ import annotations

import re

from halo_checker_file.plugin import FileCheck
from halo_core.plugin_api import CheckResult, CheckTarget

NUMBER = re.compile(rb"\s*([+-]?\d+)")


def read_value(path: str) -> int:
    """The number at the start of the file; 0 when there is none (keepalived's strtol)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return 0
    m = NUMBER.match(head)
    return int(m.group(1)) if m else 0


# keepalived's IPVS_WEIGHT_FAULT: a product at or below it puts the server down.
WEIGHT_FAULT = -(2**31)


class FileChecker:
    def __init__(self, config: FileCheck, target: CheckTarget) -> None:
        self.path = config.file
        self.reverse = config.reverse
        self.factor = config.weight_factor
        self.base = target.weight  # the real server's configured weight

    async def check(self) -> CheckResult:
        value = read_value(self.path)
        what = f"{self.path} holds {value}"
        if not self.factor:
            return CheckResult((value == 0) != self.reverse, what)
        # keepalived's track_file.c: value x weight (x -1 with reverse) added to the real
        # server's weight; the IPVS weight is never below 0.
        change = value * self.factor * (-1 if self.reverse else 1)
        if change <= WEIGHT_FAULT:
            return CheckResult(False, f"{what}: weight change {change}")
        if self.base is None:  # a named check: there is no real server's weight to move
            return CheckResult(True, what)
        weight = max(0, self.base + change)
        return CheckResult(True, f"{what}: weight {self.base}{change:+d} = {weight}", weight)

    async def close(self) -> None:
        return None
