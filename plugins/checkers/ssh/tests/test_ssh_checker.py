"""The ssh checker (OpenSSH's client) against a real asyncssh server on 127.0.0.1: password
and key logins, host-key policies, commands with their exit status and output, the failures
an operator must be able to tell apart, and what a child process must never leave behind."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from halo_checker_ssh.plugin import SshCheck
from halo_checker_ssh.runtime import SshChecker
from halo_core import plugins
from halo_core.bus import EventBus
from halo_core.checks import CheckRunner
from halo_core.plugin_api import CheckTarget
from halo_core.scheduler import Scheduler
from halo_core.schema import Seconds
from halo_tool_lab.clock import FakeClock
from halo_tool_lab.tools import needs_tools

pytestmark = needs_tools("ssh")  # every check runs OpenSSH's client

LOCALHOST = ipaddress.ip_address("127.0.0.1")
PASSWORD = "s3cret-Pa55"


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True  # authentication required for everyone

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == "alice" and password == PASSWORD


def _handle(process: asyncssh.SSHServerProcess[str]) -> None:
    """A tiny remote shell: enough commands to exercise the checker."""
    cmd = process.command or ""
    word, _, rest = cmd.partition(" ")
    if word == "exit":
        process.stderr.write(f"exiting {rest}\n")
        process.exit(int(rest))
    elif word == "echo":
        process.stdout.write(rest + "\n")
        process.exit(0)
    elif word == "flood":  # far more output than the checker keeps
        process.stdout.write("status: healthy\n" + "x" * 1023 + "\n" * 1024)
        process.exit(0)
    elif word == "signal":
        process.exit_with_signal("TERM")
    else:
        process.stderr.write(f"{word}: command not found\n")
        process.exit(127)


@dataclass
class SshServer:
    port: int
    host_key: asyncssh.SSHKey
    client_key: Path
    known_hosts: Path  # an entry for this server's key
    dir: Path
    acceptor: asyncssh.SSHAcceptor

    def config(self, **opts: Any) -> SshCheck:
        opts.setdefault("connect_ip", LOCALHOST)
        opts.setdefault("connect_port", self.port)
        opts.setdefault("username", "alice")
        if "client_keys" not in opts and "password_file" not in opts:
            opts.setdefault("password", PASSWORD)
        opts.setdefault("known_hosts", str(self.known_hosts))
        return SshCheck(**opts)

    def checker(self, **opts: Any) -> SshChecker:
        return SshChecker(self.config(**opts), CheckTarget("ssh_chk"))


def known_hosts_line(port: int, key: asyncssh.SSHKey) -> str:
    return f"[127.0.0.1]:{port} {key.export_public_key().decode().strip()}\n"


async def start_server(
    tmp: Path, host_key: asyncssh.SSHKey, client_pub: asyncssh.SSHKey, port: int = 0
) -> asyncssh.SSHAcceptor:
    return await asyncssh.listen(
        "127.0.0.1",
        port,
        server_host_keys=[host_key],
        server_factory=_Server,
        process_factory=_handle,
        authorized_client_keys=asyncssh.import_authorized_keys(
            client_pub.export_public_key().decode()
        ),
    )


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SshServer]:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = tmp_path / "id_ed25519"
    client_key.write_private_key(str(key_path))
    key_path.chmod(0o600)
    acceptor = await start_server(tmp_path, host_key, client_key)
    port = acceptor.get_port()
    kh = tmp_path / "known_hosts"
    kh.write_text(known_hosts_line(port, host_key))
    yield SshServer(port, host_key, key_path, kh, tmp_path, acceptor)
    acceptor.close()
    await acceptor.wait_closed()


@pytest.fixture
def quiet_asyncssh() -> Iterator[None]:
    yield
    logging.getLogger("asyncssh").setLevel(logging.WARNING)


# --------------------------------------------------------------------------- logging in


async def test_password_login_with_known_host(server: SshServer) -> None:
    res = await server.checker().check()
    assert res.ok, res.message
    assert res.message == f"logged in to 127.0.0.1:{server.port} as alice"


async def test_key_login(server: SshServer) -> None:
    res = await server.checker(client_keys=[str(server.client_key)]).check()
    assert res.ok, res.message
    # a key the server does not know
    other = server.dir / "other_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(other))
    other.chmod(0o600)
    res = await server.checker(client_keys=[str(other)]).check()
    assert not res.ok
    assert res.message == f"ssh 127.0.0.1:{server.port}: authentication failed for 'alice'"
    # OpenSSH ignores a key others may read: said as such, not as a failed login
    server.client_key.chmod(0o644)
    res = await server.checker(client_keys=[str(server.client_key)]).check()
    assert not res.ok
    assert res.message == (
        f"client key: {server.client_key}: mode 0644 lets others read it and OpenSSH refuses"
        " such a key: chmod 600"
    )


async def test_wrong_password_fails_without_revealing_it(
    server: SshServer, caplog: pytest.LogCaptureFixture, quiet_asyncssh: None
) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("asyncssh").setLevel(logging.DEBUG)
    checker = server.checker(password="not-the-Pa55word")
    res = await checker.check()
    assert not res.ok
    assert res.message == f"ssh 127.0.0.1:{server.port}: authentication failed for 'alice'"
    assert "not-the-Pa55word" not in caplog.text + res.message
    assert "not-the-Pa55word" not in repr(checker.config) + repr(checker.__dict__)


async def test_password_file(server: SshServer) -> None:
    pw = server.dir / "pw"
    pw.write_text(PASSWORD + "\nignored second line\n")
    assert (await server.checker(password_file=str(pw)).check()).ok
    missing = server.checker(password_file=str(server.dir / "nope"))
    res = await missing.check()
    assert not res.ok
    assert res.message == f"password_file {server.dir}/nope: No such file or directory"


async def test_unreadable_client_key_fails_the_check(server: SshServer) -> None:
    res = await server.checker(client_keys=[str(server.dir / "missing")]).check()
    assert not res.ok and res.message.startswith("client key")
    assert "No such file or directory" in res.message
    garbage = server.dir / "garbage"
    garbage.write_text("not a key\n")
    res = await server.checker(client_keys=[str(garbage)]).check()
    assert not res.ok and res.message.startswith("client key: ")


async def test_connection_refused(server: SshServer) -> None:
    server.acceptor.close()
    await server.acceptor.wait_closed()
    res = await server.checker().check()
    assert not res.ok
    assert res.message == f"connect to 127.0.0.1:{server.port}: Connection refused"


# --------------------------------------------------------------------------- host keys


async def test_strict_refuses_a_changed_host_key(server: SshServer) -> None:
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    server.known_hosts.write_text(known_hosts_line(server.port, impostor))
    res = await server.checker().check()
    assert not res.ok
    assert res.message.startswith(f"host key mismatch for 127.0.0.1:{server.port}: ")
    assert f"the server offered ssh-ed25519 {server.host_key.get_fingerprint()}" in res.message
    assert f"known_hosts has ssh-ed25519 {impostor.get_fingerprint()}" in res.message
    assert "man-in-the-middle" in res.message


async def test_strict_refuses_an_unknown_host(server: SshServer) -> None:
    server.known_hosts.write_text("[192.0.2.1]:22 " + _pub(server.host_key))
    res = await server.checker().check()
    assert not res.ok
    assert f"host key of 127.0.0.1:{server.port} (ssh-ed25519 SHA256:" in res.message
    assert f"is not in known_hosts ({server.known_hosts})" in res.message
    # a known_hosts file the operator named must exist
    res = await server.checker(known_hosts=str(server.dir / "absent")).check()
    assert not res.ok and res.message == f"known_hosts {server.dir}/absent: no such file"


async def test_known_hosts_entry_without_port_matches_too(server: SshServer) -> None:
    """OpenSSH's rule, kept by asyncssh: a bare-address entry also covers other ports."""
    server.known_hosts.write_text("127.0.0.1 " + _pub(server.host_key))
    assert (await server.checker().check()).ok


async def test_accept_new_learns_an_unknown_host_then_pins_it(
    server: SshServer, caplog: pytest.LogCaptureFixture
) -> None:
    kh = server.dir / "learnt" / "known_hosts"  # created, with its directory
    checker = server.checker(known_hosts=str(kh), host_key_policy="accept-new")
    caplog.set_level(logging.WARNING, "halo.checks.ssh")
    res = await checker.check()
    assert res.ok, res.message
    assert (
        f"ssh 127.0.0.1:{server.port}: new host key ssh-ed25519"
        f" {server.host_key.get_fingerprint()} added to {kh}"
    ) in caplog.text
    assert kh.read_text() == known_hosts_line(server.port, server.host_key).replace(
        _comment(server.host_key), ""
    )
    assert (await checker.check()).ok  # now known: no second entry
    assert len(kh.read_text().splitlines()) == 1
    # a different key for a known host is refused, even with accept-new
    kh.write_text(known_hosts_line(server.port, asyncssh.generate_private_key("ssh-ed25519")))
    res = await checker.check()
    assert not res.ok and res.message.startswith("host key mismatch")


async def test_accept_new_pins_in_memory_when_known_hosts_is_not_writable(
    server: SshServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checker = server.checker(known_hosts="/dev/null/known_hosts", host_key_policy="accept-new")
    caplog.set_level(logging.WARNING, "halo.checks.ssh")
    assert (await checker.check()).ok
    assert "could not add the new host key" in caplog.text
    assert "kept in memory until halo restarts" in caplog.text
    assert (await checker.check()).ok  # pinned: known, not learnt again
    assert caplog.text.count("could not add") == 1
    # the server's key changes behind the same address: the pinned key still protects us
    server.acceptor.close()
    await server.acceptor.wait_closed()
    client_pub = asyncssh.read_private_key(str(server.client_key))
    other = await start_server(
        tmp_path, asyncssh.generate_private_key("ssh-ed25519"), client_pub, server.port
    )
    try:
        res = await checker.check()
        assert not res.ok and res.message.startswith("host key mismatch"), res.message
    finally:
        other.close()
        await other.wait_closed()


async def test_ignore_policy_skips_verification(server: SshServer) -> None:
    checker = server.checker(known_hosts=None, host_key_policy="ignore")
    assert (await checker.check()).ok


# --------------------------------------------------------------------------- commands


async def test_command_exit_status(server: SshServer) -> None:
    res = await server.checker(command="exit 0").check()
    assert res.ok and res.message == "command exited 0"
    res = await server.checker(command="exit 1").check()
    assert not res.ok and res.message == "command exited 1, expected 0: exiting 1"
    res = await server.checker(command="exit 3", expect_exit=3).check()
    assert res.ok
    res = await server.checker(command="systemctl is-active sshd").check()
    assert not res.ok
    assert res.message == "command exited 127, expected 0: systemctl: command not found"
    res = await server.checker(command="signal").check()
    # OpenSSH's client does not say which signal
    assert not res.ok and res.message == "command killed by a signal"


async def test_command_output_regex(server: SshServer) -> None:
    res = await server.checker(command="echo status=active", expect_output=r"=act").check()
    assert res.ok and res.message == "command exited 0, output matched"
    miss = server.checker(command="echo status=failed", expect_output=r"^status=active$")
    res = await miss.check()
    assert not res.ok
    assert res.message == (
        "command output does not match '^status=active$' (last line: status=failed)"
    )
    # the output kept is bounded; the match is on what was kept
    flood = server.checker(command="flood", expect_output=r"status: healthy")
    assert (await flood.check()).ok


# --------------------------------------------------------------------------- time-out


@contextlib.asynccontextmanager
async def silent_listener() -> AsyncIterator[tuple[int, asyncio.Event, asyncio.Event]]:
    """A listener that accepts and never speaks: its port, and events set when a client
    connected and when it went away."""
    accepted, closed = asyncio.Event(), asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # returns at EOF: the client went away
        closed.set()
        writer.close()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        yield listener.sockets[0].getsockname()[1], accepted, closed
    finally:
        listener.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(listener.wait_closed(), 2)


def unverified(port: int, **opts: Any) -> SshCheck:
    return SshCheck(
        connect_ip=LOCALHOST,
        connect_port=port,
        username="alice",
        password=PASSWORD,
        host_key_policy="ignore",
        **opts,
    )


async def test_silent_server_times_out_through_the_runner() -> None:
    """A listener that accepts and never speaks: the runner's time-out fails the check, and
    the connection is closed (nothing is left behind)."""
    async with silent_listener() as (port, accepted, closed):
        ptype = plugins.load().type("checker", "ssh")
        cfg = unverified(port, timeout=Seconds(0.5))
        runner = CheckRunner(
            "ssh_chk", ptype, cfg, scheduler=Scheduler(FakeClock(), seed=1), bus=EventBus()
        )
        runner.checker = ptype.load_factory()(cfg, runner.target)
        result, latency = await runner.probe()
        assert not result.ok and result.message == "timed out after 0.5s"
        assert accepted.is_set() and latency < 2
        await asyncio.wait_for(closed.wait(), 2)


# --------------------------------------------------------------------------- the child


def _children() -> list[tuple[int, str, str]]:
    """(pid, command name, state) of this process's children that the checker started
    (ssh, never anything else): other tests of the same session may have left a server of
    their own running, which is not this checker's."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == os.getpid() and int(entry.name) not in _OTHERS:
            found.append((int(entry.name), name, state))
    return found


_OTHERS: set[int] = set()


@pytest.fixture(autouse=True)
def _others_before() -> Iterator[None]:
    """The session's children before each test: not the checker's."""
    _OTHERS.clear()
    _OTHERS.update(pid for pid, _, _ in _children())
    yield
    _OTHERS.clear()


class _SlowServer(_Server):
    """Takes its time over the password: the checker's ssh is alive meanwhile."""

    def validate_password(self, username: str, password: str) -> Any:
        async def slow() -> bool:
            await asyncio.sleep(0.5)
            return username == "alice" and password == PASSWORD

        return slow()


async def test_a_server_that_is_not_ssh() -> None:
    """ssh's first words on what went wrong, not its closing line."""

    async def closer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    listener = await asyncio.start_server(closer, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        res = await SshChecker(unverified(port), CheckTarget("c")).check()
        assert not res.ok
        # "Connection closed by remote host", or "read: Connection reset by peer" when ssh's
        # own banner was on its way
        assert res.message.startswith(f"ssh 127.0.0.1:{port}: kex_exchange_identification: ")
    finally:
        listener.close()
    # silent: ssh's own ConnectTimeout (the check's timeout) ends it
    async with silent_listener() as (port, _, _):
        res = await SshChecker(unverified(port, timeout=Seconds(1)), CheckTarget("c")).check()
        assert not res.ok
        assert res.message == f"ssh 127.0.0.1:{port}: Connection timed out during banner exchange"


async def test_a_cancelled_check_leaves_no_process() -> None:
    """The runner enforces a check's timeout by cancelling it: ssh (and its askpass) are
    killed and reaped, neither a stray ssh nor a zombie is left."""
    async with silent_listener() as (port, accepted, closed):
        task = asyncio.ensure_future(SshChecker(unverified(port), CheckTarget("c")).check())
        await asyncio.wait_for(accepted.wait(), 10)
        assert [name for _, name, _ in _children()] == ["ssh"]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _children() == []  # killed and reaped before check() returned
        await asyncio.wait_for(closed.wait(), 2)


async def test_the_password_is_never_in_argv_or_the_logs(
    server: SshServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slow = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[server.host_key],
        server_factory=_SlowServer,
        process_factory=_handle,
    )
    kh = tmp_path / "slow_known_hosts"
    kh.write_text(known_hosts_line(slow.get_port(), server.host_key))
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []  # command lines of the children, sampled while the check runs
    try:
        for opts in ({"password": PASSWORD}, {"password": "wrong-" + PASSWORD}):
            checker = server.checker(connect_port=slow.get_port(), known_hosts=str(kh), **opts)
            task = asyncio.ensure_future(checker.check())
            while not task.done():
                for pid, _, _ in _children():
                    with contextlib.suppress(OSError):
                        seen.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode())
                await asyncio.sleep(0.005)
            res = task.result()
            assert res.ok is (opts["password"] == PASSWORD), res.message
            assert PASSWORD not in res.message
    finally:
        slow.close()
        await slow.wait_closed()
    assert any("\0-l\0alice\0" in line for line in seen), seen  # the sampling saw ssh
    assert not [line for line in seen if PASSWORD in line]
    assert PASSWORD not in caplog.text


async def test_a_nologin_account_passes_a_login_only_check(server: SshServer) -> None:
    """An account that may not run anything (nologin shell, no sessions): logging in is
    the check, so it passes; a command cannot run."""
    client_pub = asyncssh.read_private_key(str(server.client_key))
    nologin = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[server.host_key],
        server_factory=_Server,  # no process factory: every session is refused
        authorized_client_keys=asyncssh.import_authorized_keys(_pub(client_pub)),
    )
    port = nologin.get_port()
    kh = server.dir / "nologin_known_hosts"
    kh.write_text(known_hosts_line(port, server.host_key))
    try:
        for opts in ({}, {"client_keys": [str(server.client_key)]}):
            res = await server.checker(connect_port=port, known_hosts=str(kh), **opts).check()
            assert res.ok and res.message == f"logged in to 127.0.0.1:{port} as alice"
        res = await server.checker(connect_port=port, known_hosts=str(kh), command="true").check()
        assert not res.ok
        assert res.message.startswith(f"ssh 127.0.0.1:{port}: cannot open a session: ")
    finally:
        nologin.close()
        await nologin.wait_closed()


async def test_without_openssh_the_check_says_what_to_install(
    server: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    res = await server.checker().check()
    assert not res.ok and res.message == "ssh: not found on PATH; install openssh-client"
    monkeypatch.undo()
    fake = tmp_path / "ssh"
    for says, message in (
        (
            "OpenSSH_8.2p1 Ubuntu-4ubuntu0.13, OpenSSL 1.1.1f",
            f"ssh: {fake} is OpenSSH 8.2: password authentication needs 8.4 or later"
            " (SSH_ASKPASS_REQUIRE); use client_keys",
        ),
        (
            "OpenSSH_7.4p1, OpenSSL 1.0.2k",
            f"ssh: {fake} is OpenSSH 7.4; the check needs 7.6 or later",
        ),
        ("Dropbear v2022.83", f"ssh: {fake} is not OpenSSH (Dropbear v2022.83)"),
    ):
        fake.unlink(missing_ok=True)  # a new file: the version is asked again
        fake.write_text(f"#!/bin/sh\necho '{says}' >&2\n")
        fake.chmod(0o755)
        res = await server.checker(ssh_binary=str(fake)).check()
        assert not res.ok and res.message == message
    res = await server.checker(ssh_binary=str(tmp_path / "absent")).check()
    assert not res.ok and res.message == f"ssh_binary {tmp_path}/absent: not an executable file"


def _pub(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode()


def _comment(key: asyncssh.SSHKey) -> str:
    parts = _pub(key).split()
    return " " + " ".join(parts[2:]) if len(parts) > 2 else ""
