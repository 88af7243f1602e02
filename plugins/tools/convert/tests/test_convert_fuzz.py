"""Whatever the input, ``halo convert`` gives a result (valid halo YAML) or a ConvertError
with ``file:line: message`` lines - never another exception."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from halo_core import plugins as plugin_loader
from halo_core.config import load_text
from halo_tool_convert import ConvertError, convert_text

PLUGINS = plugin_loader.load()
LINE = re.compile(r"^k\.conf:\d+: \S")

# Pieces of keepalived.conf, so that generated inputs get past the first error now and then.
VOCAB = [
    "global_defs", "vrrp_instance", "VI_1", "vrrp_script", "chk", "vrrp_sync_group", "group",
    "virtual_server", "real_server", "TCP_CHECK", "HTTP_GET", "MISC_CHECK", "url", "path", "/",
    "state", "MASTER", "BACKUP", "interface", "eth0", "virtual_router_id", "priority",
    "advert_int", "nopreempt", "authentication", "auth_type", "PASS", "auth_pass",
    "virtual_ipaddress", "192.0.2.1", "192.0.2.1/24", "2001:db8::1", "dev", "label",
    "track_script", "track_interface", "weight", "-10", "reverse", "script", '"/bin/true"',
    "notify_master", "smtp_alert", "use_vmac", "lb_algo", "rr", "delay_loop", "1", "51",
    "100", "255", "0", "3", "0.5", "{", "}", "{", "}", "#", "!", '"', "'", "\\", "@x", "@^x",
    "$A=", "$A", "${A}", "~SEQ(N,1,3)", "~LST(N,a,b)", "$N", "${_HASH}", "\n", "\n", "\n",
]  # fmt: skip


def check(text: str) -> None:
    try:
        result = convert_text(
            text, "k.conf", config_id="x", plugins=PLUGINS, directory="/nonexistent"
        )
    except ConvertError as exc:
        assert exc.lines, "an error without a message"
        for line in exc.lines:
            assert LINE.match(line), line
        return
    load_text(result.yaml, "out.yaml", PLUGINS)  # the output is always valid


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    check(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(VOCAB), max_size=80), st.randoms(use_true_random=False))
def test_keepalived_like_text(pieces: list[str], rnd: object) -> None:
    seps = [" ", "\n", "\t", "  "]
    text = ""
    for i, p in enumerate(pieces):
        text += p + seps[(i * 7 + len(p)) % len(seps)]
    check(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\x00",
        "{",
        "}",
        '"',
        "@",
        "$",
        "~SEQ(",
        "~LST({",
        "vrrp_instance",
        "vrrp_instance {",
        "virtual_server\n{\n}",
        "$A=$A\n$A",
        "$A= \\\n$A\n\n$A",
        "include",
        "global_defs { notification_email { a } smtp_alert }",
        "vrrp_instance VI { interface eth0\nvirtual_router_id 1\nvirtual_ipaddress { 192.0.2.1 }"
        " track_script { x weight } }",
        "\ufeffglobal_defs {\n}\n",
    ],
)
def test_edge_cases(text: str) -> None:
    check(text)
