"""The ssh checker's schema, through the real config loader, and the promise that validating
a config with an ssh check, or running one, never imports asyncssh or cryptography: the
runtime runs OpenSSH's client instead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from halo_checker_ssh.plugin import SshCheck
from halo_tool_lab.testing import config_errors as errors
from halo_tool_lab.testing import load_config as load


def test_defaults_and_full_config() -> None:
    cfg = load(
        "checks:\n"
        "  a: {type: ssh, connect_ip: 192.0.2.30, username: monitor, password: 1234}\n"
        "  b:\n"
        "    type: ssh\n"
        "    connect_ip: 2001:db8::30\n"
        "    port: 2222\n"
        "    username: monitor\n"
        "    client_keys: [/etc/halo/id_ed25519, ~/.ssh/id_rsa]\n"
        "    known_hosts: [/etc/halo/known_hosts, /etc/ssh/ssh_known_hosts]\n"
        "    host_key_policy: accept-new\n"
        "    command: systemctl is-active nginx\n"
        "    expect_exit: 3\n"
        "    expect_output: (?m)^inactive$\n"
    )
    a = cfg.model.checks["a"].config
    assert isinstance(a, SshCheck)
    assert (a.connect_port, a.password, a.host_key_policy, a.command) == (
        22,
        "1234",
        "strict",
        None,
    )
    assert a.known_hosts_files == ["~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts"]
    b = cfg.model.checks["b"].config
    assert (b.connect_port, b.expect_exit, b.host_key_policy) == (2222, 3, "accept-new")
    assert b.client_keys == ["/etc/halo/id_ed25519", "~/.ssh/id_rsa"]
    assert b.known_hosts_files == ["/etc/halo/known_hosts", "/etc/ssh/ssh_known_hosts"]


def test_password_is_kept_out_of_repr() -> None:
    cfg = load(
        "checks:\n  a: {type: ssh, connect_ip: 192.0.2.30, username: m, password: hunter2}\n"
    )
    assert "hunter2" not in repr(cfg.model.checks["a"]) + repr(cfg.model)


def test_errors_are_located() -> None:
    lines = errors(
        "checks:\n"
        "  a: {type: ssh, connect_ip: 192.0.2.30}\n"
        "  b: {type: ssh, connect_ip: 192.0.2.30, username: m, password: x, password_file: /p}\n"
        "  c: {type: ssh, connect_ip: 192.0.2.30, username: m}\n"
        "  d:\n"
        "    type: ssh\n"
        "    connect_ip: 192.0.2.30\n"
        "    username: m\n"
        "    client_keys: [/ok, id_rsa]\n"
        "    known_hosts: none\n"
        "  e:\n"
        "    type: ssh\n"
        "    connect_ip: 192.0.2.30\n"
        "    username: m\n"
        "    password: x\n"
        "    expect_output: '[unclosed'\n"
        "    command: uptime\n"
        "  f:\n"
        "    type: ssh\n"
        "    username: m\n"
        "    password: x\n"
        "    expect_output: up\n"
        "    expect_exit: 1\n"
        "  g:\n"
        "    type: ssh\n"
        "    username: m\n"
        "    password: x\n"
        "    host_key_policy: trust-me\n"
        "    connect_port: 70000\n"
        "  h:\n"
        "    type: ssh\n"
        "    username: m\n"
        "    password: x\n"
        "    host_key_policy: ignore\n"
        "    known_hosts: /etc/halo/known_hosts\n"
        "  i: {type: ssh, connect_ip: 192.0.2.30, username: m, password: x, ssh_binary: ssh}\n"
    )
    assert lines == [
        "f.yaml:2:6: checks.a: missing required key 'username'",
        "f.yaml:3:83: checks.b.password_file: give password or password_file, not both",
        "f.yaml:4:6: checks.c: needs password, password_file or client_keys",
        "f.yaml:9:24: checks.d.client_keys[1]: give an absolute path",
        "f.yaml:10:18: checks.d.known_hosts: to skip host key checks, write host_key_policy: "
        "ignore",
        "f.yaml:16:20: checks.e.expect_output: is not a valid regular expression: unterminated "
        "character set at position 0",
        "f.yaml:22:20: checks.f.expect_output: needs a command",
        "f.yaml:23:18: checks.f.expect_exit: needs a command",
        "f.yaml:28:22: checks.g.host_key_policy: must be one of 'strict', 'accept-new', "
        "'ignore', not 'trust-me'",
        "f.yaml:29:19: checks.g.connect_port: must be between 1 and 65535, not 70000",
        "f.yaml:35:18: checks.h.known_hosts: is not read with host_key_policy: ignore",
        "f.yaml:36:80: checks.i.ssh_binary: give an absolute path",
    ]


PROBE = """
import sys
from halo_core import cli
try:
    status = cli.main(sys.argv[1:])
except SystemExit as exc:
    status = exc.code
checked = 'asyncssh' in sys.modules or 'cryptography' in sys.modules
import halo_checker_ssh.runtime  # what the worker imports to run the check
ran = 'asyncssh' in sys.modules or 'cryptography' in sys.modules
print('STATUS=%s ASYNCSSH=%s RUNTIME=%s' % (status, checked, ran), file=sys.stderr)
"""


def test_halo_check_does_not_import_asyncssh(tmp_path: Path) -> None:
    conf = tmp_path / "halo.yaml"
    conf.write_text(
        "checks:\n  s: {type: ssh, connect_ip: 192.0.2.30, username: m, password_file: /p}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "check", "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "STATUS=0 ASYNCSSH=False RUNTIME=False" in proc.stderr, proc.stderr
