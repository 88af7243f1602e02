"""Schema and hooks of the ``ssh`` checker. The runtime, which runs OpenSSH's client, lives in
:mod:`.runtime`, imported only when a configuration uses the type."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

from halo_core.hookspecs import hookimpl
from halo_core.log import add_secret
from halo_core.plugin_api import CheckerConfig, PluginType
from halo_core.schema import Alias, Doc, IPAddress, Length, Range

HostKeyPolicy = Literal["strict", "accept-new", "ignore"]

# Looked up when `known_hosts` is not given, like OpenSSH's UserKnownHostsFile and
# GlobalKnownHostsFile (the user is the one halo runs as).
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")


def _is_absolute(path: str) -> bool:
    return path.startswith(("/", "~"))


@dataclass(frozen=True, kw_only=True)
class SshCheck(CheckerConfig):
    """Log in over SSH (a fresh connection per check, OpenSSH's ssh run as a child process)
    and, if a command is given, run it and check its exit status and output. The server's
    host key is verified against known_hosts (host_key_policy strict by default)."""

    connect_ip: Annotated[
        IPAddress | None, Doc("address of the SSH server (default: the real server's)")
    ] = None
    connect_port: Annotated[
        int, Range(1, 65535), Alias(("port",)), Doc("port of the SSH server")
    ] = 22
    username: Annotated[str, Length(min=1), Doc("login name")]
    # Secrets: kept out of repr() so that a logged or printed config never shows them.
    password: Annotated[str | None, Doc("password (prefer password_file)")] = field(
        default=None, repr=False
    )
    password_file: Annotated[
        str | None, Doc("file whose first line is the password (read at each check)")
    ] = None
    client_keys: Annotated[
        list[str], Doc("private key files for public-key authentication (unencrypted)")
    ] = field(default_factory=list)
    known_hosts: Annotated[
        str | list[str] | None,
        Doc(
            "known_hosts file(s) in OpenSSH format (default: ~/.ssh/known_hosts and"
            " /etc/ssh/ssh_known_hosts, those that exist)"
        ),
    ] = None
    host_key_policy: Annotated[
        HostKeyPolicy,
        Doc(
            "strict: the host key must be in known_hosts; accept-new: a host not yet in"
            " known_hosts is trusted and added to the first known_hosts file, a changed key"
            " still fails; ignore: no verification"
        ),
    ] = "strict"
    command: Annotated[
        str | None, Doc("command to run after logging in (default: logging in is the check)")
    ] = None
    expect_exit: Annotated[int, Range(0, 255), Doc("exit status the command must return")] = 0
    expect_output: Annotated[
        str | None, Doc("regular expression searched for in the command's standard output")
    ] = None
    ssh_binary: Annotated[str | None, Doc("OpenSSH client to run (default: ssh found on PATH)")] = (
        None
    )

    @property
    def known_hosts_files(self) -> list[str]:
        if self.known_hosts is None:
            return list(DEFAULT_KNOWN_HOSTS)
        return [self.known_hosts] if isinstance(self.known_hosts, str) else list(self.known_hosts)

    def __post_init__(self) -> None:
        add_secret(self.password)  # never in a log line or a status field

    def __check__(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.password is not None and self.password_file is not None:
            problems.append((("password_file",), "give password or password_file, not both"))
        if self.password is None and self.password_file is None and not self.client_keys:
            # No fallback to ssh-agent or ~/.ssh/id_*: what a check authenticates with must
            # not depend on the environment the daemon happens to start in.
            problems.append(((), "needs password, password_file or client_keys"))
        if self.password_file is not None and not _is_absolute(self.password_file):
            problems.append((("password_file",), "give an absolute path"))
        if self.ssh_binary is not None and not _is_absolute(self.ssh_binary):
            problems.append((("ssh_binary",), "give an absolute path"))
        for i, key in enumerate(self.client_keys):
            if not _is_absolute(key):
                problems.append((("client_keys", i), "give an absolute path"))
        if isinstance(self.known_hosts, str) and self.known_hosts.lower() == "none":
            problems.append(
                (("known_hosts",), "to skip host key checks, write host_key_policy: ignore")
            )
        elif self.known_hosts is not None:
            if self.host_key_policy == "ignore":
                problems.append((("known_hosts",), "is not read with host_key_policy: ignore"))
            for path in self.known_hosts_files:
                if not _is_absolute(path):
                    problems.append((("known_hosts",), f"{path!r}: give an absolute path"))
        if self.expect_output is not None:
            try:
                re.compile(self.expect_output)
            except re.error as exc:
                problems.append((("expect_output",), f"is not a valid regular expression: {exc}"))
        if self.command is None:
            if self.expect_output is not None:
                problems.append((("expect_output",), "needs a command"))
            if self.expect_exit != 0:
                problems.append((("expect_exit",), "needs a command"))
        return problems


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="checker",
            name="ssh",
            schema=SshCheck,
            factory="halo_checker_ssh.runtime:SshChecker",
            summary="SSH login, optionally running a command",
        )
    ]
