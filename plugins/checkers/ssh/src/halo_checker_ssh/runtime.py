"""The ``ssh`` checker at run time: one fresh SSH connection per check, closed afterwards.

Why no connection pooling: the check must prove that a *new* login works. An open session
survives most of what breaks sshd for everyone else (the listener dead or restarted with a
broken config, MaxStartups exhausted, the auth stack — PAM, LDAP — hanging), so a pooled
connection would keep reporting success exactly when the check should fail. A handshake
costs a few milliseconds of CPU, negligible at check intervals of seconds.

Host keys: asyncssh verifies the key against the known_hosts entries we hand it and asks
:meth:`_Client.validate_host_public_key` only about a key it does not trust; that is where
the policy (strict / accept-new) is applied and where the reason for a refusal — host
unknown or key changed — is recorded, so the failure message can say which.

Files (known_hosts, password_file, client_keys) are read at every check, in a worker
thread: rotating a key or a password needs no reload, and the event loop never waits on
the disk. Nothing here reads ~/.ssh/config, asks an ssh-agent or tries default keys: what a
check authenticates with is exactly what its config says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import asyncssh

from halo_checker_ssh.plugin import SshCheck
from halo_core.plugin_api import CheckResult, CheckTarget

OUTPUT_LIMIT = 64 * 1024  # of the command's stdout and stderr each; the rest is discarded

log = logging.getLogger("halo.checks.ssh")

# asyncssh logs every connection and authentication at INFO: with one connection per check
# that is several lines per interval and check. Quieten it unless the operator chose a level.
_asyncssh_log = logging.getLogger("asyncssh")
if _asyncssh_log.level == logging.NOTSET:
    _asyncssh_log.setLevel(logging.WARNING)


class CheckFailed(Exception):
    """A problem that is the check's result (bad file, unreadable key), not a checker bug."""


@dataclass
class _Material:
    known_hosts: asyncssh.SSHKnownHosts | None
    password: str | None
    client_keys: Sequence[asyncssh.SSHKeyPair] | None


class _Client(asyncssh.SSHClient):
    """Applies the host-key policy to keys that known_hosts does not already trust."""

    def __init__(self, checker: SshChecker, known: asyncssh.SSHKnownHosts | None) -> None:
        self.checker = checker
        self.known = known
        self.problem: str | None = None
        self.new_key: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        c = self.checker
        recorded: Sequence[asyncssh.SSHKey] = ()
        anchored = False
        if self.known is not None:
            keys, ca_keys, _, certs, _, subjects, _ = self.known.match(
                host, addr, None if port == 22 else port
            )
            recorded = keys
            anchored = bool(keys or ca_keys or certs or subjects)
        offered = f"{key.get_algorithm()} {key.get_fingerprint()}"
        if anchored:
            have = ", ".join(f"{k.get_algorithm()} {k.get_fingerprint()}" for k in recorded)
            self.problem = (
                f"host key mismatch for {c.where}: the server offered {offered}"
                + (f", known_hosts has {have}" if have else "")
                + " (host_key_policy "
                + c.policy
                + "): reinstalled server or man-in-the-middle; update known_hosts if expected"
            )
            return False
        if c.policy == "accept-new":
            self.new_key = key
            return True
        self.problem = (
            f"host key of {c.where} ({offered}) is not in known_hosts"
            f" ({', '.join(c.config.known_hosts_files)}); add it (ssh-keyscan)"
            " or use host_key_policy: accept-new"
        )
        return False


class SshChecker:
    def __init__(self, config: SshCheck, target: CheckTarget) -> None:
        host = config.connect_ip or target.address
        if host is None:
            raise ValueError(f"check {target.name}: connect_ip is needed outside a real server")
        self.config = config
        self.host = str(host)
        self.port = config.connect_port
        self.policy = config.host_key_policy
        self.where = (
            f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        )
        self.pattern = re.compile(config.expect_output) if config.expect_output else None
        # accept-new: keys learnt during this run that could not be written to known_hosts,
        # in its format. Trusted as if they were in the file, so that a key cannot change
        # behind our back; once written, the file alone decides (an operator may edit it).
        self.pinned: list[str] = []

    # ------------------------------------------------------------------ files, in a thread

    def _load(self) -> _Material:
        cfg = self.config
        known: asyncssh.SSHKnownHosts | None = None
        if self.policy != "ignore":
            text = []
            for path in cfg.known_hosts_files:
                full = os.path.expanduser(path)
                try:
                    with open(full, encoding="utf-8", errors="replace") as fh:
                        text.append(fh.read())
                except (FileNotFoundError, NotADirectoryError):
                    # The defaults are optional, and accept-new creates the file; a file the
                    # operator named for a strict check must exist.
                    if cfg.known_hosts is not None and self.policy == "strict":
                        raise CheckFailed(f"known_hosts {full}: no such file") from None
                except OSError as exc:
                    raise CheckFailed(f"known_hosts {full}: {exc.strerror or exc}") from None
            text.extend(self.pinned)
            try:
                known = asyncssh.import_known_hosts("\n".join(text))
            except ValueError as exc:
                raise CheckFailed(f"known_hosts: {exc}") from None
        password = cfg.password
        if cfg.password_file is not None:
            full = os.path.expanduser(cfg.password_file)
            try:
                with open(full, encoding="utf-8") as fh:
                    password = fh.readline().rstrip("\r\n")
            except (OSError, UnicodeError) as exc:
                # Only the file name and the error: never anything read from the file.
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise CheckFailed(f"password_file {full}: {reason or exc}") from None
        keys: Sequence[asyncssh.SSHKeyPair] | None = None
        if cfg.client_keys:
            paths = [os.path.expanduser(p) for p in cfg.client_keys]
            try:
                keys = asyncssh.load_keypairs(paths)
            except OSError as exc:
                raise CheckFailed(
                    f"client key {exc.filename or ''}: {exc.strerror or exc}".strip()
                ) from None
            except (ValueError, asyncssh.KeyImportError) as exc:
                raise CheckFailed(f"client key: {exc}") from None
        return _Material(known, password, keys)

    def _record(self, line: str, fingerprint: str) -> None:
        """accept-new: append the key to the first known_hosts file, as OpenSSH does."""
        path = os.path.expanduser(self.config.known_hosts_files[0])
        parent = os.path.dirname(path)
        if parent and not os.path.isdir(parent):
            os.makedirs(parent, mode=0o700, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        log.warning("ssh %s: new host key %s added to %s", self.where, fingerprint, path)

    # ------------------------------------------------------------------ the check

    async def check(self) -> CheckResult:
        try:
            material = await asyncio.to_thread(self._load)
        except CheckFailed as exc:
            return CheckResult(False, str(exc))
        client = _Client(self, material.known_hosts)
        try:
            conn = await asyncssh.connect(
                self.host,
                self.port,
                username=self.config.username,
                password=material.password,
                client_keys=material.client_keys,
                known_hosts=material.known_hosts,
                client_factory=lambda: client,
                config=None,
                agent_path=None,
                x509_trusted_certs=None,
                gss_host=None,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            return CheckResult(False, client.problem or f"ssh {self.where}: {exc.reason}")
        except asyncssh.PermissionDenied:
            return CheckResult(
                False, f"ssh {self.where}: authentication failed for {self.config.username!r}"
            )
        except asyncssh.DisconnectError as exc:
            return CheckResult(False, f"ssh {self.where}: {exc.reason}")
        except OSError as exc:
            # asyncio words a refusal "Connect call failed (addr)": say what errno says.
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            return CheckResult(False, f"connect to {self.where}: {reason}")
        try:
            if client.new_key is not None:
                await self._learn(client.new_key)
            if self.config.command is None:
                return CheckResult(True, f"logged in to {self.where} as {self.config.username}")
            return await self._run(conn, self.config.command)
        finally:
            conn.close()
            # A peer that never acknowledges the close must not hold the check up.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 2)

    async def _learn(self, key: asyncssh.SSHKey) -> None:
        algorithm, data = key.export_public_key("openssh").decode().split()[:2]
        pattern = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        line = f"{pattern} {algorithm} {data}"
        try:
            await asyncio.to_thread(self._record, line, key.get_fingerprint())
        except OSError as exc:
            self.pinned.append(line)
            log.warning(
                "ssh %s: could not add the new host key to known_hosts: %s (kept in memory)",
                self.where,
                exc.strerror or exc,
            )

    async def _run(self, conn: asyncssh.SSHClientConnection, command: str) -> CheckResult:
        try:
            proc = await conn.create_process(command, encoding="utf-8", errors="replace")
        except asyncssh.ChannelOpenError as exc:
            return CheckResult(False, f"ssh {self.where}: cannot open a session: {exc.reason}")
        proc.stdin.write_eof()
        # Read both streams concurrently (a command blocked writing stderr would never end
        # stdout) and keep a bounded amount of each.
        out, err = await asyncio.gather(_drain(proc.stdout), _drain(proc.stderr))
        done = await proc.wait(check=False)
        if done.exit_signal is not None:
            return CheckResult(False, f"command killed by signal {done.exit_signal[0]}")
        status = done.exit_status
        if status != self.config.expect_exit:
            tail = _last_line(err) or _last_line(out)
            return CheckResult(
                False,
                f"command exited {status}, expected {self.config.expect_exit}"
                + (f": {tail}" if tail else ""),
            )
        if self.pattern is not None:
            if not self.pattern.search(out):
                got = _last_line(out)
                return CheckResult(
                    False,
                    f"command output does not match {self.pattern.pattern!r}"
                    + (f" (last line: {got})" if got else " (no output)"),
                )
            return CheckResult(True, f"command exited {status}, output matched")
        return CheckResult(True, f"command exited {status}")

    async def close(self) -> None:
        # Nothing is kept between checks.
        return None


async def _drain(reader: asyncssh.SSHReader[str]) -> str:
    kept: list[str] = []
    size = 0
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return "".join(kept)
        if size < OUTPUT_LIMIT:
            kept.append(chunk[: OUTPUT_LIMIT - size])
            size += len(kept[-1])


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1][:200] if lines else ""
