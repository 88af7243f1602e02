"""The ``ssh`` checker at run time: each check runs OpenSSH's client, ``ssh``, as a child
process — a fresh connection per check, nothing kept in between.

Why OpenSSH's client and not a Python SSH library: the worker runs for months and an SSH
library (asyncssh with the parts of cryptography it loads) would stay resident for ever,
about 15 MB, for one login every few seconds. A child process costs nothing between
checks, and it verifies host keys and reads private keys exactly as the operator's own
``ssh`` does (every key type, known_hosts syntax, hashed entries, markers). keepalived has
no SSH check; its operators write a MISC_CHECK running ``ssh``: this is that, done once.

Why a fresh connection: the check must prove that a *new* login works. An open session
survives most of what breaks sshd for everyone else (the listener dead or restarted with a
broken config, MaxStartups exhausted, PAM or LDAP hanging), so a kept connection would
report success exactly when the check should fail.

The command line comes from the configuration only: ``-F /dev/null`` (no ~/.ssh/config),
no agent, no default keys, no connection sharing, the known_hosts files the config names.
ssh's own log (``LogLevel DEBUG1``) goes to a FIFO in the checker's private directory
(``-E``; ssh closes every inherited descriptor, so a pipe cannot be passed), read as it
comes: "Authenticated to HOST ([ADDR]:PORT) using ..." proves a login, and the lines before
a failure say which one it is. The remote command's stdout and stderr stay ssh's own.

A login-only check runs ``ssh -N`` (no session, no command: an account whose shell is
``nologin`` still passes) and ends the child as soon as the log says it authenticated.
The alternative, ``PermitLocalCommand`` with a ``LocalCommand`` that signals us, would
start a shell per check and depends on $SHELL; the log line has been ssh's since 5.x.

Passwords reach ssh through ``SSH_ASKPASS`` with ``SSH_ASKPASS_REQUIRE=force`` (OpenSSH
8.4 or later): a two-line shell script, written once into the private directory (mode
0700), prints the password from its environment, which is the child's only (never argv,
never a file; /proc/PID/environ is readable by the same user only, who can read halo's
memory anyway). It answers ssh's password prompt only, never a key passphrase.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import binascii
import contextlib
import itertools
import logging
import math
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
from collections.abc import Awaitable
from dataclasses import dataclass, field

from halo_checker_ssh.plugin import SshCheck
from halo_core.plugin_api import CheckResult, CheckTarget

OUTPUT_LIMIT = 64 * 1024  # of the command's stdout and stderr each; the rest is discarded
LOG_LIMIT = 256 * 1024  # of ssh's own log per check (DEBUG1 is a few kB)
KEY_FILE_LIMIT = 1024 * 1024  # a private key file is a few kB
TERM_GRACE = 2.0  # seconds ssh gets to close its connection after SIGTERM

MIN_OPENSSH = (7, 6)  # StrictHostKeyChecking accept-new, IdentityAgent none
MIN_OPENSSH_PASSWORD = (8, 4)  # SSH_ASKPASS_REQUIRE

PASSWORD_VAR = "HALO_SSH_PASSWORD"  # the variable's name, not a password
ASKPASS = """#!/bin/sh
# halo's ssh checker: answers OpenSSH's password prompt (only) from the environment.
case $1 in
*"'s password: ") printf '%s\\n' "$HALO_SSH_PASSWORD" ;;
*) exit 1 ;;
esac
"""

log = logging.getLogger("halo.checks.ssh")

_AUTHENTICATED = re.compile(r"Authenticated to .*\(\[.*\]:\d+\)")
_SERVER_KEY = re.compile(r"Server host key: (\S+) (SHA256:\S+)")
_OFFENDING = re.compile(r"Offending (?:\S+ )?key (?:for IP )?in (.+):(\d+)\s*$")
_CONNECT = re.compile(r"connect to host \S+ port \d+: (.+)$")
_EXIT_STATUS = re.compile(r"Exit status (-?\d+)")
_CHANNEL_OPEN = re.compile(r"channel \d+: open failed: (.+)$")
_LOAD_KEY = re.compile(r'Load key "(.+)": (.+)$')
_ASKPASS_EXEC = re.compile(r"ssh_askpass: exec\((.+)\): (.+)$")
_VERSION = re.compile(r"OpenSSH_(\d+)\.(\d+)")
# ssh's log lines that never explain a failure
_NOT_A_REASON = ("debug", "Transferred:", "Bytes per second:", "Authenticated to", "Warning: ")


class CheckFailed(Exception):
    """A problem that is the check's result (bad file, no ssh), not a checker bug."""


# --------------------------------------------------------------------------- process-wide

_private: str | None = None
_private_lock = threading.Lock()
_versions: dict[tuple[str, int, int], tuple[int, int] | str] = {}
_fifos = itertools.count()


def _private_dir() -> str:
    """This process's directory (0700) for the askpass script, ssh's log FIFOs and the
    host keys accept-new pins; removed at exit, made again if a /tmp cleaner took it."""
    global _private
    with _private_lock:  # the checks' files are read in threads
        if _private is None or not os.path.exists(os.path.join(_private, "askpass")):
            path = tempfile.mkdtemp(prefix="halo-ssh-")  # mode 0700
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
            with os.fdopen(os.open(os.path.join(path, "askpass"), flags, 0o700), "w") as fh:
                fh.write(ASKPASS)
            atexit.register(shutil.rmtree, path, True)
            _private = path
        return _private


def _find_ssh(configured: str | None) -> str:
    if configured is not None:
        path = os.path.expanduser(configured)
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            raise CheckFailed(f"ssh_binary {path}: not an executable file")
        return path
    found = shutil.which("ssh")
    if found is None:
        raise CheckFailed("ssh: not found on PATH; install openssh-client")
    return found


def _version(binary: str) -> tuple[int, int]:
    """OpenSSH's version of ``binary`` (``ssh -V``), asked once per installed file."""
    st = os.stat(binary)
    key = (binary, st.st_ino, st.st_mtime_ns)
    if key not in _versions:
        try:
            out = subprocess.run(
                [binary, "-V"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=10,
                check=False,
                env={"PATH": os.defpath, "LC_ALL": "C"},
            )
            text = (out.stderr or out.stdout).strip()
        except (OSError, subprocess.SubprocessError) as exc:
            text = str(exc)
        m = _VERSION.search(text)
        first = (text.splitlines() or ["no output"])[0][:120]
        _versions[key] = (int(m[1]), int(m[2])) if m else f"{binary} is not OpenSSH ({first})"
    found = _versions[key]
    if isinstance(found, str):
        raise CheckFailed(f"ssh: {found}")
    if found < MIN_OPENSSH:
        raise CheckFailed(
            f"ssh: {binary} is OpenSSH {found[0]}.{found[1]}; the check needs"
            f" {MIN_OPENSSH[0]}.{MIN_OPENSSH[1]} or later"
        )
    return found


def _ssh_path(path: str) -> str:
    """A path as OpenSSH reads it in a file list option: %-tokens escaped, quoted."""
    escaped = path.replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def fingerprint(line: str) -> str | None:
    """``ALGORITHM SHA256:...`` of a known_hosts line, as ssh-keygen -l prints it."""
    fields = line.split()
    if fields and fields[0].startswith("@"):
        fields = fields[1:]  # @cert-authority, @revoked
    if len(fields) < 3:
        return None
    try:
        blob = base64.b64decode(fields[2], validate=True)
    except (binascii.Error, ValueError):
        return None
    # here, not at the top: hashlib loads OpenSSL's libcrypto, 3.5 MB of a worker's memory
    # for a fingerprint that is only shown when a host key does not match
    import hashlib

    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"{fields[1]} SHA256:{digest}"


# --------------------------------------------------------------------------- one check


@dataclass
class _Material:
    """What a check needs from the disk, read in a thread at each check."""

    binary: str
    password: str | None
    keys: list[str]
    known_hosts: list[str]  # expanded
    private: str


@dataclass
class _Outcome:
    """What one ssh run left: its status, its log, the command's output."""

    status: int | None
    log: list[str] = field(default_factory=list)
    out: str = ""
    err: str = ""
    authenticated: bool = False


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
        # accept-new: ssh appends a new host key to the first UserKnownHostsFile, which is
        # this file in the private directory; the checker then moves it to the configured
        # known_hosts. A key that cannot be moved stays here until halo restarts, trusted as
        # if it were in known_hosts, so that it cannot change behind our back; once moved,
        # the configured file alone decides (an operator may edit it).
        self.pin_file: str | None = None
        self.pinned: list[str] = []

    # ------------------------------------------------------------------ files, in a thread

    def _load(self) -> _Material:
        cfg = self.config
        binary = _find_ssh(cfg.ssh_binary)
        version = _version(binary)
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
        if password is not None and version < MIN_OPENSSH_PASSWORD:
            raise CheckFailed(
                f"ssh: {binary} is OpenSSH {version[0]}.{version[1]}: password authentication"
                " needs 8.4 or later (SSH_ASKPASS_REQUIRE); use client_keys"
            )
        keys = [self._key(os.path.expanduser(p)) for p in cfg.client_keys]
        known: list[str] = []
        if self.policy != "ignore":
            for path in cfg.known_hosts_files:
                full = os.path.expanduser(path)
                known.append(full)
                if cfg.known_hosts is not None and self.policy == "strict":
                    # The defaults are optional and accept-new creates the file; a file the
                    # operator named for a strict check must exist.
                    try:
                        os.stat(full)
                    except (FileNotFoundError, NotADirectoryError):
                        raise CheckFailed(f"known_hosts {full}: no such file") from None
                    except OSError as exc:
                        raise CheckFailed(f"known_hosts {full}: {exc.strerror or exc}") from None
        private = _private_dir()
        if self.policy == "accept-new":
            with contextlib.suppress(OSError):  # if it fails, the key is pinned
                os.makedirs(os.path.dirname(known[0]) or ".", mode=0o700, exist_ok=True)
            if self.pin_file is None or not os.path.exists(self.pin_file):
                fd, self.pin_file = tempfile.mkstemp(prefix="pinned-", dir=private)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.writelines(line + "\n" for line in self.pinned)
        return _Material(binary, password, keys, known, private)

    @staticmethod
    def _key(path: str) -> str:
        """Checks what ssh would only warn about (and then fail authentication for)."""
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                head = fh.read(KEY_FILE_LIMIT)
        except OSError as exc:
            raise CheckFailed(f"client key {path}: {exc.strerror or exc}") from None
        if b"PRIVATE KEY-----" not in head:
            raise CheckFailed(f"client key: {path}: not a private key file")
        if st.st_uid == os.geteuid() and st.st_mode & 0o077:
            mode = stat.S_IMODE(st.st_mode)
            raise CheckFailed(
                f"client key: {path}: mode {mode:04o} lets others read it and OpenSSH"
                " refuses such a key: chmod 600"
            )
        return path

    def _learnt(self, material: _Material) -> None:
        """accept-new: move what ssh appended to the pin file into the known_hosts file."""
        assert self.pin_file is not None
        with open(self.pin_file, encoding="utf-8", errors="replace") as fh:
            lines = [line.strip() for line in fh if line.strip()]
        new = [line for line in lines if line not in self.pinned]
        if not new:
            return
        target = material.known_hosts[0]
        for line in new:
            what = fingerprint(line) or "?"
            try:
                with open(target, "a", encoding="utf-8") as out:
                    out.write(line + "\n")
            except OSError as exc:
                self.pinned.append(line)
                log.warning(
                    "ssh %s: could not add the new host key %s to %s: %s (kept in memory"
                    " until halo restarts)",
                    self.where,
                    what,
                    target,
                    exc.strerror or exc,
                )
            else:
                log.warning("ssh %s: new host key %s added to %s", self.where, what, target)
        with open(self.pin_file, "w", encoding="utf-8") as fh:
            fh.writelines(line + "\n" for line in self.pinned)

    # ------------------------------------------------------------------ the command line

    def _argv(self, m: _Material, log_fifo: str) -> list[str]:
        cfg = self.config
        argv = [
            m.binary,
            "-F",
            "/dev/null",  # nothing from ~/.ssh/config or /etc/ssh/ssh_config
            "-E",
            log_fifo,
            "-o",
            "LogLevel=DEBUG1",  # "Server host key:" for the unknown-host message
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "-o",
            "UpdateHostKeys=no",
            "-o",
            "CheckHostIP=no",
            "-o",
            "HashKnownHosts=no",
            "-o",
            "GlobalKnownHostsFile=/dev/null",  # every file the config names is a user one
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
            "KbdInteractiveAuthentication=no",
            "-o",
            "HostbasedAuthentication=no",
            "-o",
            "GSSAPIAuthentication=no",
        ]
        if self.policy == "ignore":
            known = ["/dev/null"]
            strict = "no"
        else:
            known = [self.pin_file] if self.policy == "accept-new" and self.pin_file else []
            known += m.known_hosts
            strict = "yes" if self.policy == "strict" else "accept-new"
        argv += ["-o", "UserKnownHostsFile=" + " ".join(_ssh_path(p) for p in known)]
        argv += ["-o", f"StrictHostKeyChecking={strict}"]
        if cfg.timeout is not None:
            argv += ["-o", f"ConnectTimeout={max(1, math.ceil(float(cfg.timeout)))}"]
        methods = ["publickey"] if m.keys else []
        methods += ["password"] if m.password is not None else []
        argv += [
            "-o",
            "PreferredAuthentications=" + ",".join(methods),
            "-o",
            "PasswordAuthentication=" + ("yes" if m.password is not None else "no"),
            "-o",
            "PubkeyAuthentication=" + ("yes" if m.keys else "no"),
            "-o",
            "BatchMode=" + ("no" if m.password is not None else "yes"),
        ]
        for key in m.keys:
            argv += ["-i", key.replace("%", "%%")]
        argv += ["-p", str(self.port), "-l", cfg.username, "-T"]
        if cfg.command is None:
            argv.append("-N")
        argv += ["--", self.host]
        if cfg.command is not None:
            argv.append(cfg.command)
        return argv

    def _env(self, m: _Material) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH") or os.defpath, "LC_ALL": "C"}
        if m.password is not None:
            env["SSH_ASKPASS"] = os.path.join(m.private, "askpass")
            env["SSH_ASKPASS_REQUIRE"] = "force"
            env[PASSWORD_VAR] = m.password
        else:
            env["SSH_ASKPASS_REQUIRE"] = "never"
        return env

    # ------------------------------------------------------------------ the check

    async def check(self) -> CheckResult:
        try:
            material = await asyncio.to_thread(self._load)
        except CheckFailed as exc:
            return CheckResult(False, str(exc))
        fifo = os.path.join(material.private, f"log-{os.getpid()}-{next(_fifos)}")
        try:
            outcome = await self._ssh(material, fifo)
        except CheckFailed as exc:
            return CheckResult(False, str(exc))
        finally:
            with contextlib.suppress(OSError):
                os.unlink(fifo)
        if self.policy == "accept-new" and outcome.authenticated:
            try:
                await asyncio.to_thread(self._learnt, material)
            except OSError as exc:
                log.warning("ssh %s: pinned host keys: %s", self.where, exc.strerror or exc)
        return await self._result(outcome)

    async def _ssh(self, m: _Material, fifo: str) -> _Outcome:
        """Runs ssh once; on any exit, cancellation included, its process group is killed
        and ssh reaped."""
        os.mkfifo(fifo, 0o600)
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        # Our own writer keeps the FIFO from reading as ended before ssh has opened it.
        wfd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        try:
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(rfd, "rb", buffering=0)
            )
        except BaseException:
            os.close(rfd)
            os.close(wfd)
            raise
        outcome = _Outcome(None)
        authenticated = asyncio.Event()
        proc: asyncio.subprocess.Process | None = None
        tasks: list[asyncio.Task[object]] = []
        try:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self._argv(m, fifo),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=self._env(m),
                    start_new_session=True,  # ssh and its askpass: one group to kill
                )
            except OSError as exc:
                raise CheckFailed(f"ssh: cannot run {m.binary}: {exc.strerror or exc}") from None
            assert proc.stdout is not None and proc.stderr is not None
            out, err = bytearray(), bytearray()
            tasks = [
                _task(_read_log(reader, outcome, authenticated)),
                _task(_drain(proc.stdout, out)),
                _task(_drain(proc.stderr, err)),
            ]
            waiting = _task(proc.wait())
            tasks.append(waiting)
            if self.config.command is None:
                signalled = _task(authenticated.wait())
                await asyncio.wait({waiting, signalled}, return_when=asyncio.FIRST_COMPLETED)
                signalled.cancel()
                if proc.returncode is None:
                    # Logged in: that was the check. ssh closes the connection on SIGTERM.
                    _kill(proc, signal.SIGTERM)
                    try:
                        await asyncio.wait_for(asyncio.shield(waiting), TERM_GRACE)
                    except TimeoutError:
                        _kill(proc, signal.SIGKILL)
            await waiting
            outcome.status = proc.returncode
            os.close(wfd)
            wfd = -1
            # ssh gone, its log and output end with it (bounded: whatever else might hold
            # them open, ssh has exited and what it said is read by now)
            await asyncio.wait(tasks[:3], timeout=TERM_GRACE)
            outcome.out = out.decode("utf-8", "replace")
            outcome.err = err.decode("utf-8", "replace")
            outcome.authenticated = authenticated.is_set()
            return outcome
        finally:
            if proc is not None and proc.returncode is None:
                _kill(proc, signal.SIGKILL)
                # Reaped even when the check was cancelled: no zombie, no stray ssh.
                with contextlib.suppress(BaseException):
                    await asyncio.shield(proc.wait())
            for task in tasks:
                task.cancel()
            if wfd >= 0:
                os.close(wfd)
            transport.close()

    # ------------------------------------------------------------------ what it means

    async def _result(self, o: _Outcome) -> CheckResult:
        cfg = self.config
        if cfg.command is None:
            if o.authenticated:
                return CheckResult(True, f"logged in to {self.where} as {cfg.username}")
            return CheckResult(False, await self._failure(o))
        status = None
        for line in reversed(o.log):
            if m := _EXIT_STATUS.search(line):
                status = int(m[1])
                break
        if o.authenticated:
            for line in o.log:
                if m := _CHANNEL_OPEN.search(line):
                    return CheckResult(False, f"ssh {self.where}: cannot open a session: {m[1]}")
            if any("rtype exit-signal" in line for line in o.log):
                # OpenSSH's client does not say which signal.
                return CheckResult(False, "command killed by a signal")
        if not o.authenticated or status is None or status < 0:
            return CheckResult(False, await self._failure(o))
        if status != cfg.expect_exit:
            tail = _last_line(o.err) or _last_line(o.out)
            return CheckResult(
                False,
                f"command exited {status}, expected {cfg.expect_exit}"
                + (f": {tail}" if tail else ""),
            )
        if self.pattern is not None:
            if not self.pattern.search(o.out):
                got = _last_line(o.out)
                return CheckResult(
                    False,
                    f"command output does not match {self.pattern.pattern!r}"
                    + (f" (last line: {got})" if got else " (no output)"),
                )
            return CheckResult(True, f"command exited {status}, output matched")
        return CheckResult(True, f"command exited {status}")

    async def _failure(self, o: _Outcome) -> str:
        """Why ssh did not log in, from its log, in the words the check always used."""
        lines = o.log
        text = "\n".join(lines)
        offered = next((f"{m[1]} {m[2]}" for ln in lines if (m := _SERVER_KEY.search(ln))), "?")
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or re.search(
            r"Host key for .* has changed", text
        ):
            have: list[str] = []
            for line in lines:
                if m := _OFFENDING.search(line):
                    found = await asyncio.to_thread(_line_fingerprint, m[1], int(m[2]))
                    if found and found not in have:
                        have.append(found)
            return (
                f"host key mismatch for {self.where}: the server offered {offered}"
                + (f", known_hosts has {', '.join(have)}" if have else "")
                + f" (host_key_policy {self.policy}): reinstalled server or man-in-the-middle;"
                " update known_hosts if expected"
            )
        if re.search(r"host key is known for .* you have requested strict checking", text):
            return (
                f"host key of {self.where} ({offered}) is not in known_hosts"
                f" ({', '.join(self.config.known_hosts_files)}); add it (ssh-keyscan)"
                " or use host_key_policy: accept-new"
            )
        for line in lines:
            if m := _ASKPASS_EXEC.search(line):
                return (
                    f"ssh: cannot run the password helper {m[1]}: {m[2]} (is"
                    f" {os.path.dirname(m[1])} on a noexec mount? set TMPDIR)"
                )
        if "Permission denied (" in text:
            for line in lines:
                if m := _LOAD_KEY.search(line):
                    return f"client key: {m[1]}: {m[2]}"
            return f"ssh {self.where}: authentication failed for {self.config.username!r}"
        for line in lines:
            if m := _CONNECT.search(line):
                return f"connect to {self.where}: {m[1]}"
        if "Host key verification failed" in text:
            return f"ssh {self.where}: host key verification failed"
        # The first of ssh's own lines names the cause; the last one, "Connection closed
        # by ..." or "Connection to ... timed out", only its consequence.
        first = next((ln for ln in lines if ln and not ln.startswith(_NOT_A_REASON)), None)
        if first is not None:
            return f"ssh {self.where}: {first[:200]}"
        tail = _last_line(o.err)
        return f"ssh {self.where}: ssh exited {o.status}" + (f": {tail}" if tail else "")

    async def close(self) -> None:
        # Nothing is kept between checks but the keys accept-new pinned.
        if self.pin_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.pin_file)
            self.pin_file = None


def _task(aw: Awaitable[object]) -> asyncio.Task[object]:
    async def run() -> object:
        return await aw

    return asyncio.ensure_future(run())


def _kill(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Signals ssh's process group (ssh and its askpass), while ssh is not yet reaped."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def _read_log(reader: asyncio.StreamReader, o: _Outcome, seen: asyncio.Event) -> None:
    size = 0
    pending = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            break
        pending += chunk
        *complete, pending = pending.split(b"\n")
        pending = pending[-4096:]  # a line without end stays bounded
        for raw in complete:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if _AUTHENTICATED.search(line):
                seen.set()
            if size < LOG_LIMIT:
                o.log.append(line)
                size += len(line)
    if pending:
        o.log.append(pending.decode("utf-8", "replace"))


async def _drain(reader: asyncio.StreamReader, kept: bytearray) -> None:
    """Reads to the end, keeping the first OUTPUT_LIMIT bytes."""
    while chunk := await reader.read(65536):
        if len(kept) < OUTPUT_LIMIT:
            kept += chunk[: OUTPUT_LIMIT - len(kept)]


def _line_fingerprint(path: str, number: int) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for i, line in enumerate(fh, 1):
                if i == number:
                    return fingerprint(line)
    except OSError:
        return None
    return None


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1][:200] if lines else ""
