"""Run halo itself (``halo run``) in a lab host, and follow it through its log.

The one way the tests start a daemon in a namespace and wait for what it logs (a state, a
message). Give the configuration ``global: {log_format: json}`` so each log line is a record
with fields; text logs work too for :meth:`Halo.wait_log` and :meth:`Halo.states`.

Namespaces share the file system, so a configuration without ``global.state_dir`` gets one of
its own (``WORKDIR/NAME.state``) instead of the shared default ``/run/halo``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from halo_tool_lab.netns import Host, Proc, wait_until


class Halo:
    """One halo daemon in *host*, reading *config* (YAML text) from ``WORKDIR/NAME.yaml`` and
    logging to ``WORKDIR/NAME.log``. *name* defaults to the host's name."""

    def __init__(
        self,
        host: Host,
        config: str,
        workdir: Path,
        *,
        name: str | None = None,
        log_level: str | None = None,
    ) -> None:
        self.host = host
        self.name = name or host.name
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / f"{self.name}.yaml"
        self.log_path = workdir / f"{self.name}.log"
        self.state_dir = workdir / f"{self.name}.state"
        self._write(config)
        self.log_path.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "halo_core.cli", "run", "-c", str(self.config_path)]
        if log_level is not None:
            argv += ["--log-level", log_level]
        self.proc: Proc = host.spawn(*argv, log=self.log_path)

    def _write(self, config: str) -> None:
        try:
            data = yaml.safe_load(config)
        except yaml.YAMLError:
            data = None  # written as it is: halo reports what is wrong with it
        if isinstance(data, dict) and "state_dir" not in (data.get("global") or {}):
            data["global"] = {**(data.get("global") or {}), "state_dir": str(self.state_dir)}
            config = yaml.safe_dump(data, sort_keys=False)
        self.config_path.write_text(config)

    def __repr__(self) -> str:
        return f"<Halo {self.name} in {self.host.name} pid={self.proc.pid}>"

    @property
    def running(self) -> bool:
        return self.proc.running

    def records(self) -> list[dict[str, Any]]:
        """The log, one record per line; a line that is not a JSON object (a text log line,
        a traceback) is ``{"level": "raw", "message": LINE}``."""
        out: list[dict[str, Any]] = []
        for line in self.proc.log_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                rec = None
            out.append(rec if isinstance(rec, dict) else {"level": "raw", "message": line})
        return out

    def messages(self) -> list[str]:
        return [str(rec.get("message", "")) for rec in self.records()]

    @property
    def log(self) -> str:
        """The log's messages, one a line (for searching and for assertion messages)."""
        return "\n".join(self.messages())

    def wait_log(self, pattern: str, timeout: float = 10.0, interval: float = 0.02) -> bool:
        """Wait until a message matches the regular expression *pattern*."""
        return wait_until(lambda: re.search(pattern, self.log) is not None, timeout, interval)

    def states(self, instance: str) -> list[str]:
        """The states *instance* logged entering, in order (MASTER, BACKUP, FAULT, ...)."""
        entering = re.compile(rf"(?<![\w-]){re.escape(instance)}: entering (\w+) state")
        return [m.group(1) for msg in self.messages() if (m := entering.search(msg))]

    def wait_state(self, instance: str, state: str, timeout: float = 10.0, count: int = 1) -> bool:
        """Wait until *instance* has entered *state* at least *count* times and is in it."""

        def reached() -> bool:
            s = self.states(instance)
            return s.count(state) >= count and s[-1] == state

        return wait_until(reached, timeout, 0.02)

    def reload(self, config: str | None = None) -> None:
        """Write *config* (if given) and send SIGHUP, as ``halo reload`` does."""
        if config is not None:
            self._write(config)
        os.kill(self.proc.pid, signal.SIGHUP)

    def kill9(self) -> None:
        """A dead machine: SIGKILL to the daemon and its children, no goodbye."""
        self.proc.kill_group(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int:
        """A graceful stop (SIGTERM; SIGKILL after *timeout*); the exit status."""
        return self.proc.terminate_and_wait(timeout)


def write_bytecode() -> None:
    """Write the bytecode of halo and its dependencies once, as an installation has it: with
    PYTHONDONTWRITEBYTECODE set (as in some CI shells) and none written, every daemon start
    compiles its modules from source, which costs start time and leaves memory behind that
    an installed halo does not use. For the benches that measure those."""
    import compileall
    import sysconfig

    import halo_core

    root = Path(halo_core.__file__).resolve().parents[3]  # a checkout: core/src/halo_core
    dirs = [
        root / "core" / "src",
        *root.glob("plugins/*/*/src"),
        Path(sysconfig.get_paths()["purelib"]),
    ]
    for d in dirs:
        if d.is_dir():
            compileall.compile_dir(str(d), quiet=2, workers=1)
