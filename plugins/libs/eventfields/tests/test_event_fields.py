"""What notifications say about each kind of event (keepalived's wording), templates, JSON
payloads for every core event, and secrets."""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from halo_core.events import (
    BackendApplied,
    BackendFailed,
    CheckResultEvent,
    CheckStateChanged,
    ConfigReloaded,
    Event,
    PoolChanged,
    PoolMember,
    PriorityChanged,
    RealServerChanged,
    SyncGroupStateChanged,
    VrrpAnnounce,
)
from halo_lib_eventfields import (
    Secret,
    jsonable,
    render,
    render_json,
    summary,
    template_problem,
    values,
)
from halo_notifier_email.plugin import EmailNotifierConfig
from halo_notifier_email.runtime import EmailNotifier
from halo_notifier_webhook.runtime import payload
from halo_tool_lab.testing import make_context, vrrp

EVENTS: list[tuple[Event, str]] = [
    (vrrp("MASTER"), "VRRP Instance VI_1 - Entering MASTER state"),
    (vrrp("STOP", old="MASTER"), "VRRP Instance VI_1 - Stopping"),
    (
        SyncGroupStateChanged(
            group="VG_1", old="MASTER", new="FAULT", members=("VI_1",), reason=""
        ),
        "VRRP Group VG_1 - Entering FAULT state",
    ),
    (
        RealServerChanged(
            virtual_server="192.0.2.10:80", real_server="10.0.0.5:80", up=True, weight=1
        ),
        "Realserver 10.0.0.5:80 of virtual server 192.0.2.10:80 - UP",
    ),
    (CheckStateChanged(check="chk_web", up=False, message="refused"), "Check chk_web - DOWN"),
    (
        PriorityChanged(instance="VI_1", old=100, new=80, reason="chk_web down"),
        "VRRP Instance VI_1 - priority 100 -> 80",
    ),
    (
        BackendFailed(backend="vip", error="no such device", instance="VI_1"),
        "Backend vip failed for VI_1",
    ),
    (ConfigReloaded(path="/etc/halo/halo.yaml", summary="2 instances"), "Configuration reloaded"),
    (
        PoolChanged(
            virtual_server="192.0.2.10:80",
            service=object(),
            members=(PoolMember("10.0.0.5", 80, 1), PoolMember("10.0.0.9", 80, 0, sorry=True)),
            quorum=False,
            reason="r",
        ),
        "Virtual server 192.0.2.10:80 - 2 members, quorum lost",
    ),
    (VrrpAnnounce(instance="VI_1", reason="split brain healed"), "vrrp_announce VI_1"),
    (BackendApplied(backend="vip", detail="added 192.0.2.100"), "backend_applied vip"),
    (CheckResultEvent(check="chk_web", ok=True, up=True, latency=0.01), "check_result chk_web"),
]


@pytest.mark.parametrize(("event", "expected"), EVENTS, ids=lambda e: getattr(e, "kind", None))
def test_every_event_has_a_summary_a_payload_and_a_message(event: Event, expected: str) -> None:
    assert summary(event) == expected
    body = payload(event, router_id="lb1", notifier="n", delivery="d")
    assert json.loads(json.dumps(body)) == body  # plain JSON all the way down
    assert "service" not in body["data"]  # the whole virtual server config stays home
    mailer = EmailNotifier(
        EmailNotifierConfig(smtp_server="x", notification_email=["ops@example.com"]),
        make_context(),
    )
    msg = mailer.message([event])
    assert msg["Subject"] == f"[lb1] {expected}"


def test_pool_members_are_objects_in_json() -> None:
    event = EVENTS[8][0]
    assert payload(event, router_id="r", notifier="n", delivery="d")["data"]["members"] == [
        {"address": "10.0.0.5", "port": 80, "weight": 1, "sorry": False},
        {"address": "10.0.0.9", "port": 80, "weight": 0, "sorry": True},
    ]


def test_templates() -> None:
    fields = values(vrrp("MASTER", group="G1"), router_id="lb1", notifier="n")
    assert render("$router_id ${instance}/${group} $$5 ${virtual_server}.", fields) == (
        "lb1 VI_1/G1 $5 ."
    )
    assert render_json({"a": ["${priority}", "p=${priority}"], "b": 3}, fields) == {
        "a": [100, "p=100"],
        "b": 3,
    }
    assert template_problem("${instance") is not None
    assert template_problem("${real_servr}") == (
        "unknown field 'real_servr' in template (did you mean 'real_server'?)"
    )
    assert template_problem("${count}") is not None
    assert template_problem("${count}", ("count",)) is None


def test_addresses_become_strings() -> None:
    assert jsonable({"a": (IPv4Address("192.0.2.1"), None)}) == {"a": ["192.0.2.1", None]}


def test_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "key"
    f.write_text("line one\n")
    assert Secret.parse({"file": str(f)}).reveal() == "line one"
    monkeypatch.setenv("HALO_TEST_SECRET", "from-env")
    assert Secret.parse({"env": "HALO_TEST_SECRET"}).reveal() == "from-env"
    plain = Secret.parse(1234)
    assert plain.reveal() == "1234"
    assert "1234" not in repr(plain) and "1234" not in str(plain)
    with pytest.raises(ValueError, match="cannot read secret file"):
        Secret.parse({"file": str(tmp_path / "missing")}).reveal()
    with pytest.raises(ValueError, match="unknown key 'value'"):
        Secret.parse({"value": "x"})
