"""The ssh checker against a real asyncssh server on 127.0.0.1: password and key logins,
host-key policies, commands with their exit status and output, and the failures an operator
must be able to tell apart."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
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
    res = await server.checker(client_keys=[str(other)]).check()
    assert not res.ok
    assert res.message == f"ssh 127.0.0.1:{server.port}: authentication failed for 'alice'"


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


async def test_accept_new_learns_an_unknown_host_then_pins_it(server: SshServer) -> None:
    kh = server.dir / "learnt" / "known_hosts"  # created, with its directory
    checker = server.checker(known_hosts=str(kh), host_key_policy="accept-new")
    res = await checker.check()
    assert res.ok, res.message
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
    server: SshServer, tmp_path: Path
) -> None:
    checker = server.checker(known_hosts="/dev/null/known_hosts", host_key_policy="accept-new")
    assert (await checker.check()).ok
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
    assert not res.ok and res.message == "command killed by signal TERM"


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


async def test_silent_server_times_out_through_the_runner() -> None:
    """A listener that accepts and never speaks: the runner's time-out fails the check, and
    the connection is closed (nothing is left behind)."""
    closed = asyncio.Event()
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # returns at EOF: the client went away
        closed.set()
        writer.close()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        ptype = plugins.load().type("checker", "ssh")
        cfg = SshCheck(
            connect_ip=LOCALHOST,
            connect_port=port,
            username="alice",
            password=PASSWORD,
            host_key_policy="ignore",
            timeout=Seconds(0.5),
        )
        runner = CheckRunner(
            "ssh_chk", ptype, cfg, scheduler=Scheduler(FakeClock(), seed=1), bus=EventBus()
        )
        runner.checker = ptype.load_factory()(cfg, runner.target)
        result, latency = await runner.probe()
        assert not result.ok and result.message == "timed out after 0.5s"
        assert accepted.is_set() and latency < 2
        await asyncio.wait_for(closed.wait(), 2)
    finally:
        listener.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(listener.wait_closed(), 2)


def _pub(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode()


def _comment(key: asyncssh.SSHKey) -> str:
    parts = _pub(key).split()
    return " " + " ".join(parts[2:]) if len(parts) > 2 else ""
