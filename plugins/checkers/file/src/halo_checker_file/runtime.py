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


class FileChecker:
    def __init__(self, config: FileCheck, target: CheckTarget) -> None:
        self.path = config.file
        self.reverse = config.reverse

    async def check(self) -> CheckResult:
        value = read_value(self.path)
        return CheckResult((value == 0) != self.reverse, f"{self.path} holds {value}")

    async def close(self) -> None:
        return None
