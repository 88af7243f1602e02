"""The http and ssl checkers' YAML, through the real plugins and the core's loader."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from halo_checker_http.plugin import HttpCheck, StatusCodes, Url
from halo_checker_ssl.plugin import SslCheck
from halo_core.config import ConfigError, load_text
from halo_core.config.model import HaloConfig
from halo_core.plugins import Plugins
from halo_core.validation import json_schema

EXAMPLE = """\
checks:
  web:
    type: http
    connect_ip: 192.0.2.20
    connect_port: 80
    virtualhost: www.example.com
    url:
      - path: /health
        status_code: [200, "300-399"]   # codes and ranges
        digest: 9b3a0c85a887a256d6939da88aabd8cd
      - path: /ready
        regex: "ok|healthy"
    method: GET
    max_body: 1048576
    follow_redirects: false
    keepalive: false
    interval: 2s
    timeout: 1s
    fall: 3
    rise: 2
  tls:
    type: ssl
    connect_ip: 192.0.2.20
    sni: www.example.com
    ca_file: /etc/halo/ca.pem
    cert_file: /etc/halo/client.pem
    key_file: /etc/halo/client.key
    expiry_warning: 336h
"""


def config(p: Plugins, text: str) -> dict[str, Any]:
    return {name: c.config for name, c in load_text(text, "t.yaml", p).model.checks.items()}


def errors(p: Plugins, text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_text(text, "t.yaml", p)
    return exc.value.lines


def test_example(halo_plugins: Plugins) -> None:
    checks = config(halo_plugins, EXAMPLE)
    web, tls = checks["web"], checks["tls"]
    assert isinstance(web, HttpCheck) and not isinstance(web, SslCheck)
    assert str(web.connect_ip) == "192.0.2.20" and web.connect_port == 80
    assert web.virtualhost == "www.example.com"
    health, ready = web.url
    assert 302 in health.statuses and 200 in health.statuses and 201 not in health.statuses
    assert health.digest == "9b3a0c85a887a256d6939da88aabd8cd"
    assert ready.regex == "ok|healthy" and 204 in ready.statuses
    assert (web.fall, web.rise, web.interval, web.timeout) == (3, 2, 2.0, 1.0)
    assert isinstance(tls, SslCheck)
    assert (tls.sni, tls.ca_file, tls.cert_file, tls.key_file) == (
        "www.example.com",
        "/etc/halo/ca.pem",
        "/etc/halo/client.pem",
        "/etc/halo/client.key",
    )
    assert tls.verifying and float(tls.expiry_warning) == 14 * 86400.0


def test_defaults(halo_plugins: Plugins) -> None:
    checks = config(halo_plugins, "checks:\n  w: {type: http}\n  s: {type: ssl}\n")
    web, tls = checks["w"], checks["s"]
    assert web.url == [Url()] and web.url[0].path == "/"
    assert str(web.url[0].statuses) == "200-299"  # keepalived's default
    assert (web.method, web.max_body, web.follow_redirects, web.keepalive) == (
        "GET",
        1 << 20,
        False,
        False,
    )
    assert web.connect_ip is None and web.headers == {} and web.connect_timeout is None
    assert tls.verify is None and not tls.verifying  # keepalived's SSL_GET does not verify
    assert tls.expiry_warning == 14 * 86400


def test_keepalived_spellings(halo_plugins: Plugins) -> None:
    text = """\
checks:
  w:
    type: ssl
    port: 8443
    bindto: 192.0.2.1
    sni_name: www.example.com
    ca: /ca.pem
    certificate: /c.pem
    key: /k.pem
    password: secret
    method: head
    urls:
      - path: /
        status_code: 200-299 400-499 503
"""
    check = config(halo_plugins, text)["w"]
    assert (check.connect_port, str(check.bind_to), check.sni) == (
        8443,
        "192.0.2.1",
        "www.example.com",
    )
    assert (check.ca_file, check.cert_file, check.key_file, check.key_password) == (
        "/ca.pem",
        "/c.pem",
        "/k.pem",
        "secret",
    )
    assert check.method == "HEAD"
    assert str(check.url[0].statuses) == "200-299 400-499 503"


@pytest.mark.parametrize(
    ("value", "ranges"),
    [
        (200, ((200, 200),)),
        ("200-299", ((200, 299),)),
        ("200, 301-302", ((200, 200), (301, 302))),
        ([204, "400-404 500"], ((204, 204), (400, 404), (500, 500))),
    ],
)
def test_status_code_forms(halo_plugins: Plugins, value: object, ranges: object) -> None:
    text = yaml.safe_dump({"checks": {"w": {"type": "http", "url": [{"status_code": value}]}}})
    assert config(halo_plugins, text)["w"].url[0].statuses == StatusCodes(ranges)  # type: ignore[arg-type]


def test_field_errors_are_located(halo_plugins: Plugins) -> None:
    text = """\
checks:
  web:
    type: http
    url:
      - path: health
        status_code: [200, "300-399", 600, "abc", true]
        digest: 9b3a0c85
    method: FETCH
    max_body: -1
    connect_timeout: 0
  tls:
    type: ssl
    expiry_warning: 14d
    virtual_host: x
"""
    assert errors(halo_plugins, text) == [
        "t.yaml:5:15: checks.web.url[0].path: "
        "must be a path starting with / (no spaces), e.g. /health?full=1",
        "t.yaml:6:39: checks.web.url[0].status_code[2]: '600' must be codes from 100 to 599, "
        "low to high",
        "t.yaml:6:44: checks.web.url[0].status_code[3]: "
        "'abc' is not a status code or range like 200 or '200-299'",
        "t.yaml:6:51: checks.web.url[0].status_code[4]: must be a status code or range, not True",
        "t.yaml:7:17: checks.web.url[0].digest: must be 32 hexadecimal digits (an MD5 digest)",
        "t.yaml:8:13: checks.web.method: must be one of 'GET', 'HEAD', 'POST', 'PUT', 'DELETE',"
        " 'OPTIONS', 'PATCH', not 'FETCH'",
        "t.yaml:9:15: checks.web.max_body: must be at least 0, not -1",
        "t.yaml:10:22: checks.web.connect_timeout: must be between 0.001 and 3600, not 0",
        "t.yaml:13:21: checks.tls.expiry_warning: "
        "must be a duration (seconds, or e.g. '100ms', '2s'), not '14d'",
        "t.yaml:14:5: checks.tls.virtual_host: unknown key (did you mean 'virtualhost'?)",
    ]


def test_cross_field_errors_are_located(halo_plugins: Plugins) -> None:
    text = """\
checks:
  web:
    type: http
    connect_ip: 192.0.2.20
    bind_to: "2001:db8::1"
    headers: {Host: x}
    max_body: 2000000000
  urls:
    type: http
    url:
      - {path: /, regex: "ok("}
      - {path: /, regex_no_match: true}
      - {path: /, status_code: []}
  tls:
    type: ssl
    verify: false
    ca_file: /ca.pem
    key_file: /k.pem
"""
    assert errors(halo_plugins, text) == [
        "t.yaml:5:14: checks.web.bind_to: must be an IPv4 address",
        "t.yaml:6:21: checks.web.headers.Host: set the Host header with virtualhost",
        "t.yaml:7:15: checks.web.max_body: must be at most 1073741824 (1 GiB)",
        "t.yaml:11:26: checks.urls.url[0].regex: "
        "not a valid regular expression: missing ), unterminated subpattern at position 2",
        "t.yaml:12:35: checks.urls.url[1].regex_no_match: needs a regex",
        "t.yaml:13:32: checks.urls.url[2].status_code: must list at least one status code",
        "t.yaml:17:14: checks.tls.ca_file: is not used with verify: false",
        "t.yaml:18:15: checks.tls.key_file: needs cert_file",
    ]


def test_json_schema_accepts_the_example(halo_plugins: Plugins) -> None:
    schema = json_schema(HaloConfig, plugins=halo_plugins.schemas)
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(yaml.safe_load(EXAMPLE))
    bad = yaml.safe_load(EXAMPLE)
    bad["checks"]["web"]["url"][0]["status_code"] = ["2xx"]
    assert not validator.is_valid(bad)


def test_checking_a_config_does_not_import_aiohttp(tmp_path: Path) -> None:
    """``halo check`` validates http and ssl checks from their schemas alone."""
    path = tmp_path / "halo.yaml"
    path.write_text(EXAMPLE)
    probe = (
        "import sys\nfrom halo_core import cli\nstatus = cli.main(['check', '-c', sys.argv[1]])\n"
        "print(status, sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'aiohttp', 'halo_checker_http', 'halo_checker_ssl'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[-1]
    assert (
        out == "0 ['halo_checker_http', 'halo_checker_http.plugin', 'halo_checker_ssl', "
        "'halo_checker_ssl.plugin']"
    )


def test_headers_and_virtualhost_must_be_one_line(halo_plugins: Plugins) -> None:
    """A CR or LF would end the header early and smuggle in others (or a second request)."""
    text = """\
checks:
  web:
    type: http
    virtualhost: "www.example.com\\r\\nX-Injected: 1"
    headers: {"X-Ok": "fine", "Bad Name": "1", "X-Two": "a\\nb"}
    url:
      - {path: /, virtualhost: "a b"}
"""
    assert errors(halo_plugins, text) == [
        "t.yaml:4:18: checks.web.virtualhost: must be a host name, with a port if need be",
        "t.yaml:5:43: checks.web.headers.Bad Name: is not a header name (letters, digits, -)",
        "t.yaml:5:57: checks.web.headers.X-Two: must be one line (no CR, LF or NUL)",
        "t.yaml:7:32: checks.web.url[0].virtualhost: must be a host name, with a port if need be",
    ]
