"""Distributions: one wheel per directory, and a third-party plugin installed next to halo-core
in a fresh virtual environment is found and validated like a first-party one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging_helpers import ROOT, Built, source_distributions

UV = shutil.which("uv")
pytestmark = pytest.mark.skipif(UV is None, reason="uv is not installed")


def test_layout_and_names() -> None:
    """plugins/<kind>/<name>/ is halo-<kind>-<name>, importing halo_<kind>_<name>; every one
    is a plugin except the libraries (plugins/libs/), which plugins depend on."""
    for name, path in source_distributions().items():
        if path.name == "core":
            assert name == "halo-core"
            continue
        kind = path.parent.name.rstrip("s")
        assert name == f"halo-{kind}-{path.name}"
        assert (path / "src" / f"halo_{kind}_{path.name}" / "__init__.py").exists()
        assert (path / "README.md").exists()
        project = tomllib.loads((path / "pyproject.toml").read_text())["project"]
        eps = project.get("entry-points", {})
        if kind == "lib":
            assert not eps, f"{name}: a library is not a plugin"
            continue
        assert "halo.plugins" in eps
        assert set(eps) <= {"halo.plugins", "pytest11"}  # pytest11: halo-tool-lab's fixtures


def test_plain_uv_sync_installs_every_first_party_plugin() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = set(root["project"]["dependencies"])
    sources = set(root["tool"]["uv"]["sources"])
    assert set(source_distributions()) <= deps
    assert set(source_distributions()) <= sources


def test_build_all_packages(built: Built) -> None:
    """One wheel and one sdist per directory (built once, shared with the install tests)."""
    assert sorted(built.wheels) == sorted(built.sdists) == sorted(source_distributions())


BROKEN_PYPROJECT = """
[project]
name = "halo-checker-broken"
version = "0.0.1"
[project.entry-points."halo.plugins"]
checker-broken = "halo_checker_broken"
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
[tool.hatch.build.targets.wheel]
packages = ["halo_checker_broken"]
"""


def test_a_broken_plugin_in_a_fresh_venv(tmp_path: Path) -> None:
    """halo-core alone in a fresh venv with a plugin that cannot be imported: named, with
    the reason, and the exit status says so. (A working out-of-tree plugin in a fresh venv:
    the guides' projects, tests/foundation/test_guides.py.)"""
    assert UV
    dist = tmp_path / "dist"
    subprocess.run([UV, "build", "--wheel", "-q", "-o", str(dist), str(ROOT / "core")], check=True)
    broken = tmp_path / "broken"
    (broken / "halo_checker_broken").mkdir(parents=True)
    (broken / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    (broken / "halo_checker_broken" / "__init__.py").write_text("import no_such_module_anywhere\n")
    subprocess.run([UV, "build", "--wheel", "-q", "-o", str(dist), str(broken)], check=True)

    venv = tmp_path / "venv"
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [UV, "pip", "install", "-q", "--python", str(py), *map(str, dist.glob("*.whl"))], check=True
    )
    halo = venv / "bin" / "halo"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}

    listed = subprocess.run([halo, "plugins"], capture_output=True, text=True, env=env)
    assert listed.returncode == 1  # the broken plugin did not load
    out = listed.stdout
    assert "checker-broken: not loaded: import failed: ModuleNotFoundError" in out
    # only what was installed: the workspace's own plugins are not in this venv
    assert "checker-tcp" not in out
    good = tmp_path / "good.yaml"
    good.write_text("global:\n  router_id: lb1\n")
    res = subprocess.run(
        [halo, "check", "-c", str(good)], capture_output=True, text=True, env=env, check=False
    )
    assert res.returncode == 0, res.stderr
