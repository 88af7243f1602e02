"""A plugin that goes wrong is loud: ``halo plugins`` exits non-zero, ``halo check`` reports
a runtime that cannot be imported at its ``type:``, and an unknown type says that its plugin
is blocked, failed to load, or which distribution to install.

The broken plugins are real distributions (a ``.dist-info`` with an entry point in the
``halo.plugins`` group) in a directory put on ``PYTHONPATH``, driven through the real
``halo`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from halo_tool_lab.pytest_plugin import HaloFactory, LabFactory
from halo_tool_lab.testing import run_halo

PLUGIN = """
from dataclasses import dataclass
from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import CheckerConfig, PluginType


@dataclass(frozen=True, kw_only=True)
class BrokenCheck(CheckerConfig):
    pass


@hookimpl
def halo_plugin_types():
    return [PluginType("checker", "broken", BrokenCheck, "halo_test_broken_runtime:make")]
"""
# A runtime whose import fails the way a missing dependency does.
RUNTIME_IMPORT_FAILS = "import halo_test_no_such_dependency\n"
# A runtime that imports (so `halo check` passes) but whose checker cannot be built.
RUNTIME_START_FAILS = (
    "def make(config, target):\n    raise RuntimeError('the device is not there')\n"
)


def broken_site(root: Path, runtime: str, plugin: str = PLUGIN) -> Path:
    """A directory holding the distribution halo-test-broken (entry point checker-broken);
    put it on PYTHONPATH to install it."""
    site = root / "site"
    info = site / "halo_test_broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: halo-test-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[halo.plugins]\nchecker-broken = halo_test_broken\n")
    (site / "halo_test_broken.py").write_text(plugin)
    (site / "halo_test_broken_runtime.py").write_text(runtime)
    return site


CONFIG = """vrrp_instances:
  VI_1:
    interface: eth0
    virtual_router_id: 51
    virtual_ipaddress: [192.0.2.16]
    track:
      - check: dev
checks:
  dev:
    type: {type}
"""


def write_config(tmp_path: Path, type_name: str) -> Path:
    path = tmp_path / "halo.yaml"
    path.write_text(CONFIG.format(type=type_name))
    return path


def test_halo_plugins_exits_non_zero_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = broken_site(tmp_path, RUNTIME_START_FAILS, plugin="raise ImportError('built for 0.0')\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    listed = run_halo("plugins")
    assert listed.returncode == 1, listed
    assert "checker-broken: not loaded: import failed: ImportError: built for 0.0" in listed.stdout
    assert run_halo("plugins", "--json").returncode == 1
    # the type the failed plugin would provide: the error says so, with the load error
    checked = run_halo("check", "-c", str(write_config(tmp_path, "broken")))
    assert checked.returncode == 1
    assert checked.stderr.endswith(
        f"halo.yaml:10:11: checks.dev.type: unknown checker type 'broken' (installed:"
        f" {installed()}): its plugin checker-broken failed to load: import failed:"
        " ImportError: built for 0.0\n"
    ), checked.stderr
    # a type whose plugin cannot be told by its name: the plugins that did not load are
    # named, since one of them may provide it
    checked = run_halo("check", "-c", str(write_config(tmp_path, "redis")))
    assert checked.stderr.endswith(
        f"unknown checker type 'redis' (installed: {installed()}); not loaded,"
        " so maybe providing it: checker-broken failed to load\n"
    ), checked.stderr


def installed(*without: str) -> str:
    """The checker types this workspace installs, as the unknown-type message lists them."""
    from halo_core import plugins

    return ", ".join(sorted(set(plugins.load().names("checker")) - set(without)))


def test_halo_check_imports_every_configured_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(broken_site(tmp_path, RUNTIME_IMPORT_FAILS)))
    assert run_halo("plugins").returncode == 0  # the plugin loads; its runtime is lazy
    checked = run_halo("check", "-c", str(write_config(tmp_path, "broken")))
    assert checked.returncode == 1
    assert checked.stdout == ""
    assert checked.stderr == (
        f"{tmp_path}/halo.yaml:10:11: checks.dev.type: the runtime of checker type 'broken'"
        " cannot be imported: ModuleNotFoundError: No module named"
        " 'halo_test_no_such_dependency'\n"
    )


def test_a_runtime_that_fails_only_when_built_passes_halo_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(broken_site(tmp_path, RUNTIME_START_FAILS)))
    checked = run_halo("check", "-c", str(write_config(tmp_path, "broken")))
    assert checked.returncode == 0, checked.stderr


def test_unknown_type_of_a_blocked_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path, "tcp")
    monkeypatch.setenv("HALO_BLOCK_PLUGINS", "checker-tcp")
    checked = run_halo("check", "-c", str(config))
    assert checked.stderr.endswith(
        f"checks.dev.type: unknown checker type 'tcp' (installed: {installed('tcp')}):"
        " its plugin checker-tcp is blocked by HALO_BLOCK_PLUGINS\n"
    ), checked.stderr
    monkeypatch.delenv("HALO_BLOCK_PLUGINS")
    text = config.read_text()
    config.write_text("global:\n  plugins: {block: [halo-checker-tcp]}\n" + text)
    checked = run_halo("check", "-c", str(config))
    assert checked.stderr.endswith(
        ": its plugin checker-tcp is blocked by global.plugins.block\n"
    ), checked.stderr


@pytest.mark.lab
def test_a_check_that_cannot_start_is_down_and_tracked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lab: LabFactory, start_halo: HaloFactory
) -> None:
    """`halo run` with a checker whose factory raises: the check is in `halo status` as DOWN
    with the reason, the instance that tracks it with weight 0 goes to FAULT and the one that
    tracks it with a weight loses that much priority."""
    monkeypatch.setenv("PYTHONPATH", str(broken_site(tmp_path, RUNTIME_START_FAILS)))
    (host,) = lab(hosts=1).hosts
    config = (
        "global: {log_format: json}\n"
        "vrrp_instances:\n"
        "  VI_1:\n    interface: eth0\n    virtual_router_id: 51\n    priority: 150\n"
        "    version: 3\n    advert_int: 0.1\n    virtual_ipaddress: [192.0.2.16/24]\n"
        "    track: [{check: dev}]\n"
        "  VI_2:\n    interface: eth0\n    virtual_router_id: 52\n    priority: 150\n"
        "    version: 3\n    advert_int: 0.1\n    virtual_ipaddress: [192.0.2.17/24]\n"
        "    track: [{check: dev, weight: -60}]\n"
        "checks:\n  dev: {type: broken, interval: 0.2, fall: 2}\n"
    )
    daemon = start_halo(host, config, state={"VI_1": "FAULT", "VI_2": "MASTER"})
    reason = "cannot start: RuntimeError: the device is not there"
    assert any(reason in m for m in daemon.messages()), daemon.log
    status = run_halo("status", "-c", str(daemon.config_path), "--json")
    assert status.returncode == 0, status.stderr
    snap = json.loads(status.stdout)
    (dev,) = [c for c in snap["checks"] if c["name"] == "dev"]
    assert dev["state"] == "DOWN" and dev["last_message"] == reason
    assert dev["start_error"] == reason and dev["errors"] >= 2
    (vi_2,) = [i for i in snap["instances"] if i["name"] == "VI_2"]
    assert vi_2["priority"] == 90
    table = run_halo("status", "-c", str(daemon.config_path)).stdout
    assert "dev" in table and "cannot start" in table


def test_a_real_server_check_runtime_is_reported_at_its_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(broken_site(tmp_path, RUNTIME_IMPORT_FAILS)))
    path = tmp_path / "pool.yaml"
    path.write_text(
        "virtual_servers:\n"
        "  - address: 192.0.2.80\n"
        "    port: 80\n"
        "    real_servers:\n"
        "      - address: 192.0.2.90\n"
        "        checks:\n"
        "          - {type: tcp}\n"
        "          - {type: broken}\n"
    )
    checked = run_halo("check", "-c", str(path))
    assert checked.returncode == 1
    assert checked.stderr == (
        f"{path}:8:20: virtual_servers[0].real_servers[0].checks[1].type: the runtime of"
        " checker type 'broken' cannot be imported: ModuleNotFoundError: No module named"
        " 'halo_test_no_such_dependency'\n"
    )
