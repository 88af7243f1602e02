"""The worker reads no file and discovers no plugin (issue #16 §5, docs/processes.md): the
VRRP process hands it the document its validating child read and the entry points it found
(a memory file), and it imports asyncio without OpenSSL. With real daemons in a lab
namespace:

- the seed as written, its worker started by ``halo status`` and asked again: the worker
  never imported PyYAML, the loader, ``importlib.metadata`` or ``ssl`` (it writes its
  modules when it stops, ``$HALO_WORKER_MODULES``);
- third-party plugins installed as distributions (an entry point ``module:attr``, one that
  fails to import, one the file blocks, one ``$HALO_BLOCK_PLUGINS`` blocks): the worker's
  plugins are those ``halo plugins`` lists, with their distributions and versions, the same
  load error and the same blocked ones; a reload with an invalid file is refused with its
  place in the file, and the worker keeps its configuration; a valid one reaches it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from halo_tool_lab.halo import Halo
from halo_tool_lab.netns import Lab, lab_unavailable_reason, wait_until

pytestmark = pytest.mark.lab

SEED = Path(__file__).resolve().parents[2] / "examples" / "master-backup" / "master.yaml"
ROUTER = "  router_id: LVS_DEVEL\n"
JSON_LOG = "  log_format: json\n"
NEVER_IN_THE_WORKER = ("yaml", "_yaml", "halo_core.config.loader", "importlib.metadata", "email")
NEVER_IN_THE_WORKER += ("ssl", "_ssl", "_hashlib")

PROBE = '''"""A third-party plugin, registered as ``halo_test_probe:Hooks``: at start and at each
reload it writes what the worker's daemon holds to $PROBE_OUT."""

import json
import os
import sys

from halo_core.hookspecs import hookimpl


def _write(daemon, what):
    p = daemon.plugins
    out = {
        "what": what,
        "router_id": daemon.config.model.global_.router_id,
        "infos": [[i.name, i.module, i.distribution, i.version, [list(t) for t in i.types]]
                  for i in p.infos],
        "errors": [[e.name, e.distribution, e.message] for e in p.errors],
        "blocked": sorted(p.blocked),
        "heavy": sorted(m for m in ("yaml", "importlib.metadata", "ssl") if m in sys.modules),
    }
    with open(os.environ["PROBE_OUT"], "a") as fh:
        fh.write(json.dumps(out) + "\\n")


class Hooks:
    @staticmethod
    @hookimpl
    def halo_startup(daemon):
        _write(daemon, "startup")

    @staticmethod
    @hookimpl
    def halo_reload(daemon, old, new):
        _write(daemon, "reload")
'''


def distribution(site: Path, name: str, version: str, entry: str, code: str) -> None:
    """Install distribution ``name`` into ``site``: its metadata, its entry point line in
    the ``halo.plugins`` group and its module (``code``)."""
    module = name.replace("-", "_")
    info = site / f"{module}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[halo.plugins]\n{entry}\n")
    (site / f"{module}.py").write_text(code)


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(f"lab unavailable: {reason}")
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "HALO_BLOCK_PLUGINS"):  # as by hand
        monkeypatch.delenv(name, raising=False)
    with Lab(1) as lab:
        yield lab


def halo_cli(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "halo_core.cli", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_the_seeds_worker_imports_no_yaml_no_plugin_discovery_and_no_ssl(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modules = tmp_path / "worker-modules"
    monkeypatch.setenv("HALO_WORKER_MODULES", str(modules))
    halo = Halo(lab.hosts[0], SEED.read_text().replace(ROUTER, ROUTER + JSON_LOG), tmp_path)
    assert halo.wait_state("VI_1", "MASTER", 30), halo.log
    for _ in range(2):  # the first starts the worker, the second is its own
        status = halo_cli("status", "-c", str(halo.config_path))
        assert status.returncode == 0 and "MASTER" in status.stdout, status.stderr + halo.log
    assert halo.wait_log(r"(?m)^worker process \d+ ready", 30), halo.log
    assert halo.stop() == 0, halo.log
    names = set(modules.read_text().split())
    assert "halo_tool_status.server" in names  # it served the API
    assert sorted(m for m in names if m in NEVER_IN_THE_WORKER or m.startswith("yaml.")) == []


def probe_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_third_party_plugins_reach_the_worker_as_discovered(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    distribution(site, "halo-test-probe", "1.2", "probe = halo_test_probe:Hooks", PROBE)
    failing = "raise ImportError('no such device driver')\n"
    distribution(site, "halo-test-broken", "0.3", "broken = halo_test_broken", failing)
    distribution(site, "halo-test-blocked", "0.4", "blocked = halo_test_blocked", "")
    distribution(site, "halo-test-envblocked", "0.5", "envblocked = halo_test_envblocked", "")
    out = tmp_path / "probe.jsonl"
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("PROBE_OUT", str(out))
    monkeypatch.setenv("HALO_BLOCK_PLUGINS", "envblocked")
    text = SEED.read_text().replace(ROUTER, ROUTER + JSON_LOG + "  plugins: {block: [blocked]}\n")
    halo = Halo(lab.hosts[0], text, tmp_path)
    assert halo.wait_log(r"(?m)^worker process \d+ ready", 30), halo.log
    (started,) = probe_records(out)
    assert started["heavy"] == []
    listed = json.loads(halo_cli("plugins", "--json").stdout)
    expected = [
        [i["name"], i["module"], i["distribution"], i["version"], i["types"]]
        for i in listed["plugins"]
        if i["name"] != "blocked"  # the file blocks it; `halo plugins` reads no file
    ]
    # `halo plugins --json` gives types as objects
    for row in expected:
        row[4] = [[t["kind"], t["name"]] for t in row[4]]
    assert started["infos"] == expected
    assert ["probe", "Hooks", "halo-test-probe", "1.2", []] in started["infos"]
    assert started["errors"] == [
        [e["name"], e["distribution"], e["message"]] for e in listed["errors"]
    ]
    assert started["errors"] == [
        ["broken", "halo-test-broken", "import failed: ImportError: no such device driver"]
    ]
    assert started["blocked"] == ["blocked", "envblocked"]
    assert "plugin broken not loaded: import failed" in halo.log

    # an invalid file: refused where it is wrong, the worker keeps what it runs
    halo.reload(text + "bogus_section: 1\n")
    assert halo.wait_log(r"(?m)^reload: refused by the VRRP process", 30), halo.log
    line = len(halo.config_path.read_text().splitlines())
    assert f"{halo.config_path}:{line}:1: bogus_section: " in halo.log, halo.log
    assert [r["what"] for r in probe_records(out)] == ["startup"]

    # a valid one reaches the worker: the document the child read, with the same plugins
    halo.reload(text.replace("LVS_DEVEL", "RELOADED"))
    assert wait_until(lambda: len(probe_records(out)) == 2, 30), halo.log
    reloaded = probe_records(out)[1]
    assert reloaded["what"] == "reload" and reloaded["router_id"] == "RELOADED"
    assert reloaded["infos"] == started["infos"] and reloaded["heavy"] == []
    assert halo.stop() == 0, halo.log
    assert os.path.exists(out)
