"""Schema and hooks of the ``script`` checker. The runtime lives in :mod:`.runtime`."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Annotated, Any

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import CheckerConfig, PluginType
from halo_core.schema import Alias, Doc, Length, Pattern, Seconds

# Set by the checker itself; a config must not be able to make one check pose as another.
RESERVED_ENV = frozenset({"HALO_CHECK", "HALO_TARGET_IP", "HALO_TARGET_PORT"})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, kw_only=True)
class ScriptCheck(CheckerConfig):
    """Run an executable; exit status 0 is success, anything else failure (keepalived's
    vrrp_script and MISC_CHECK). With misc_dynamic, exit 2–255 is success with weight
    status − 2. The script runs without a shell, in its own process group (killed on
    time-out), as the script user."""

    script: Annotated[
        str | list[str],
        Alias(("misc_path",)),
        Length(min=1),
        Doc(
            "the program and its arguments: one string with shell-like quoting, as keepalived"
            " takes it (no shell is involved), or a list; the program is an absolute path or a"
            " name looked up in PATH"
        ),
    ]
    # Redeclared only to accept keepalived's MISC_CHECK spelling, misc_timeout.
    timeout: Annotated[
        Seconds | None,
        Alias(("misc_timeout",)),
        Doc("how long one check may take before it counts as failed (default: the interval)"),
    ] = None
    user: Annotated[
        str | None,
        Pattern(r"[^:\s]+(:[^:\s]+)?", "must be 'user' or 'user:group'"),
        Doc("user[:group] to run as (default: global.script_user)"),
    ] = None
    misc_dynamic: Annotated[
        bool,
        Doc(
            "exit status sets the weight: 0 ok with the configured weight, 1 failed,"
            " 2–255 ok with weight status − 2 (keepalived's misc_dynamic)"
        ),
    ] = False
    env: Annotated[
        dict[str, str],
        Doc("extra environment variables; HALO_CHECK, HALO_TARGET_IP and _PORT are set by halo"),
    ] = field(default_factory=dict)

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.script) if isinstance(self.script, str) else list(self.script)

    def disabled(self) -> str | None:
        """keepalived 2.2.7 disables a script that is not found or not executable when it
        reads its configuration ("Disabling track script ... since not found/accessible"):
        the instances tracking it ignore it rather than go to FAULT."""
        try:
            program = self.argv[0]
        except (ValueError, IndexError):
            return None  # __check__ refuses the configuration
        if "/" not in program:
            # here: shutil brings bz2, lzma and zlib, 0.6 MB in every worker that loads
            # this schema, and only a program without a path needs it
            import shutil

            if shutil.which(program) is None:
                return f"script {program!r} is not found in PATH"
            return None
        if not os.path.isfile(program):
            return f"script {program} is not found"
        if not os.access(program, os.X_OK):
            return f"script {program} is not executable"
        return None

    def __check__(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        try:
            argv = self.argv
        except ValueError as exc:  # shlex: "No closing quotation", "No escaped character"
            return [(("script",), f"cannot be split into arguments: {exc}")]
        if not argv or not argv[0]:
            problems.append((("script",), "names no program"))
        elif "/" in argv[0] and not argv[0].startswith("/"):
            # Scripts run with cwd "/" while halo's own cwd is arbitrary: a relative path
            # would name a different file for the security check than for the execution.
            problems.append((("script",), f"{argv[0]!r}: give an absolute path"))
        for name in self.env:
            if not _ENV_NAME.fullmatch(name):
                problems.append((("env", name), "is not a valid environment variable name"))
            elif name in RESERVED_ENV:
                problems.append((("env", name), "is set by halo and cannot be overridden"))
        for name, value in self.env.items():
            if "\0" in value:
                problems.append((("env", name), "must not contain a NUL character"))
        return problems


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="checker",
            name="script",
            schema=ScriptCheck,
            factory="halo_checker_script.runtime:ScriptChecker",
            summary="run a script (vrrp_script, MISC_CHECK)",
        )
    ]


@hookimpl
def halo_convert_keepalived() -> list[Any]:
    from halo_checker_script.keepalived import keywords

    return keywords()
