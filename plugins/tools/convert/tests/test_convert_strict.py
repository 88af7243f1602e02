"""keepalived's strict mode (``vrrp_strict``, ``strict_mode``) written out as the halo
settings it amounts to (keepalived 2.2.7's vrrp_complete_instance), each with a note; and
the instances keepalived refuses in strict mode left out with a warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from halo_backend_vip.options import VipInstanceOptions
from halo_core import cli
from halo_core import plugins as plugin_loader
from halo_core.config import load_text
from halo_core.plugins import Plugins
from halo_tool_convert import Result, convert_text

CORPUS = Path(__file__).resolve().parent / "corpus"
AUTH = "authentication {\nauth_type PASS\nauth_pass secret\n}"


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return plugin_loader.load()


def convert(
    body: str, plugins: Plugins, *, strict: bool = True, vips: str = "192.0.2.1"
) -> tuple[Result, Any]:
    head = "global_defs {\n    vrrp_strict\n}\n" if strict else ""
    text = (
        f"{head}vrrp_instance VI_1 {{\n    interface eth0\n    virtual_router_id 51\n"
        f"{body}\n    virtual_ipaddress {{\n{vips}\n    }}\n}}\n"
    )
    result = convert_text(text, "keepalived.conf", config_id="test", plugins=plugins)
    model = load_text(result.yaml, "out.yaml", plugins).model
    return result, model.vrrp_instances.get("VI_1")


def notes(result: Result) -> dict[str, str]:
    return {r.keyword: r.message for r in result.reports if r.kind == "note"}


def test_below_255_no_auth_no_accept_backup(plugins: Plugins) -> None:
    result, vi = convert(f"state MASTER\npriority 120\n{AUTH}\npreempt_delay 5", plugins)
    assert (vi.state, vi.authentication, vi.accept) == ("BACKUP", None, False)
    assert vi.lower_prio_no_advert is True and vi.preempt_delay == 0
    assert vi.extensions[VipInstanceOptions].garp_lower_prio_repeat == 0
    said = notes(result)
    for key in (
        "vrrp_strict",
        "state",
        "authentication",
        "accept",
        "preempt_delay",
        "lower_prio_no_advert",
        "garp_lower_prio_repeat",
    ):
        assert key in said, key
    assert said["authentication"].startswith("strict mode (vrrp_strict, line 2): ")
    assert not [r for r in result.reports if r.kind != "note"]


def test_address_owner_is_master_and_accepts(plugins: Plugins) -> None:
    result, vi = convert("state BACKUP\npriority 255", plugins)
    assert (vi.state, vi.accept) == ("MASTER", True)
    assert "accept: true" in notes(result)["accept"]


def test_accept_in_v2_is_reset_but_kept_in_v3(plugins: Plugins) -> None:
    _, v2 = convert("priority 100\naccept", plugins)
    _, v3 = convert("priority 100\nversion 3\naccept", plugins)
    assert (v2.accept, v3.accept) == (False, True)


def test_instance_strict_mode_overrides_global(plugins: Plugins) -> None:
    _, on = convert(f"strict_mode\n{AUTH}", plugins, strict=False)
    _, off = convert(f"strict_mode off\n{AUTH}", plugins)
    assert (on.authentication, on.accept, on.lower_prio_no_advert) == (None, False, True)
    assert off.authentication is not None and off.accept is True
    assert off.lower_prio_no_advert is False


def test_refused_instances(plugins: Plugins) -> None:
    result, vi = convert("unicast_peer {\n192.0.2.9\n}", plugins)
    assert vi is None
    assert any("unicast peers are not supported in strict mode" in str(r) for r in result.reports)
    result, vi = convert("priority 100", plugins, vips="")
    assert vi is None
    assert any("needs a virtual_ipaddress" in str(r) for r in result.reports)


def test_lower_prio_no_advert_without_strict(plugins: Plugins) -> None:
    _, vi = convert("lower_prio_no_advert", plugins, strict=False)
    assert vi.lower_prio_no_advert is True and vi.accept is True


def test_seed_001_converted_passes_halo_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seed 001 (vrrp_strict in global_defs): converted with no strict-mode line
    unsupported, and ``halo check`` accepts the result."""
    out = tmp_path / "seed-001.yaml"
    assert cli.main(["convert", str(CORPUS / "seed-001-lvs-dr.conf"), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    unsupported = [line for line in err.splitlines() if line.startswith("unsupported:")]
    assert len(unsupported) == 1 and ": vrrp_iptables: " in unsupported[0], err
    assert "vrrp_strict: strict mode is written out in each instance" in err
    assert cli.main(["check", "-q", "-c", str(out)]) == 0
    vi = yaml.safe_load(out.read_text())["vrrp_instances"]["VI_1"]
    assert "authentication" not in vi
    assert (vi["state"], vi["accept"], vi["lower_prio_no_advert"]) == ("BACKUP", False, True)
