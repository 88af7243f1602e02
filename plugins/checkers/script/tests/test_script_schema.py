"""The script checker's schema, through the real config loader: keepalived's names and
aliases, and located errors."""

from __future__ import annotations

from halo_checker_script.plugin import ScriptCheck
from halo_tool_lab.testing import config_errors as errors
from halo_tool_lab.testing import load_config as load


def test_vrrp_script_style() -> None:
    cfg = load(
        "checks:\n"
        "  chk_nginx:\n"
        "    type: script\n"
        "    script: /etc/keepalived/check_ng.sh\n"
        "    interval: 2\n"
        "    weight: -20\n"
        "    fall: 3\n"
    )
    c = cfg.model.checks["chk_nginx"].config
    assert isinstance(c, ScriptCheck)
    assert (c.argv, c.interval, c.weight, c.fall) == (["/etc/keepalived/check_ng.sh"], 2, -20, 3)
    assert (c.user, c.misc_dynamic, c.env, c.timeout) == (None, False, {}, None)


def test_misc_check_names_and_the_list_form() -> None:
    cfg = load(
        "checks:\n"
        "  rs:\n"
        "    type: script\n"
        "    misc_path: \"/usr/local/bin/probe --url 'http://x/a b'\"\n"
        "    misc_timeout: 3s\n"
        "    misc_dynamic: true\n"
        "    user: nobody:nogroup\n"
        "    env: {MODE: strict, N: 3}\n"
        "  listed:\n"
        "    type: script\n"
        "    script: [/usr/local/bin/probe, --url, 'http://x/a b']\n"
    )
    rs = cfg.model.checks["rs"].config
    assert rs.argv == ["/usr/local/bin/probe", "--url", "http://x/a b"]
    assert (rs.timeout, rs.misc_dynamic, rs.user) == (3.0, True, "nobody:nogroup")
    assert rs.env == {"MODE": "strict", "N": "3"}
    assert cfg.model.checks["listed"].config.argv == rs.argv


def test_errors_are_located() -> None:
    lines = errors(
        "checks:\n"
        "  a:\n"
        "    type: script\n"
        '    script: "/bin/check \'unclosed"\n'
        "  b:\n"
        "    type: script\n"
        "    script: bin/check.sh\n"
        "  c:\n"
        "    type: script\n"
        "    script: /bin/true\n"
        "    user: 'a:b:c'\n"
        "    misc_dynamic: maybe\n"
        "  d:\n"
        "    type: script\n"
        "    scirpt: /bin/true\n"
        "  e:\n"
        "    type: script\n"
        "    script: ''\n"
    )
    assert lines == [
        "f.yaml:4:13: checks.a.script: cannot be split into arguments: No closing quotation",
        "f.yaml:7:13: checks.b.script: 'bin/check.sh': give an absolute path",
        "f.yaml:11:11: checks.c.user: must be 'user' or 'user:group'",
        "f.yaml:12:19: checks.c.misc_dynamic: must be a boolean (true/false), not a string "
        "('maybe')",
        "f.yaml:14:5: checks.d: missing required key 'script'",
        "f.yaml:15:5: checks.d.scirpt: unknown key (did you mean 'script'?)",
        "f.yaml:18:13: checks.e.script: must have at least 1 characters",
    ]
    lines = errors(
        "checks:\n"
        "  c:\n"
        "    type: script\n"
        "    script: /bin/true\n"
        "    env: {HALO_CHECK: x, 'BAD-NAME': y}\n"
    )
    assert lines == [
        "f.yaml:5:23: checks.c.env.HALO_CHECK: is set by halo and cannot be overridden",
        "f.yaml:5:38: checks.c.env.BAD-NAME: is not a valid environment variable name",
    ]
