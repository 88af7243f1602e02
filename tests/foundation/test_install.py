"""The README's install command, as an operator runs it: `uv tool install 'halo-core[vrrp]'`
from the built wheels (dependencies from PyPI) into a tool directory of its own; then that
installation's halo answers --version, lists its plugins, validates the README's example and
prints a systemd unit that runs it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging_helpers import ROOT, Built, run_uv

from halo_tool_lab.tools import uses_tools

VRRP_PLUGINS = {
    "backend-vip": "halo-backend-vip",
    "checker-http": "halo-checker-http",
    "checker-script": "halo-checker-script",
    "checker-tcp": "halo-checker-tcp",
    "notifier-script": "halo-notifier-script",
    "tool-notify": "halo-tool-notify",
    "tool-status": "halo-tool-status",
    "tool-systemd": "halo-tool-systemd",
}


def readme_example() -> str:
    """The configuration the README shows (its YAML block with VRRP instances)."""
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    example = [b for b in blocks if "vrrp_instances:" in b]
    assert len(example) == 1, "README.md should show one example configuration"
    return str(example[0])


def wheel_record(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))).decode()


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@uses_tools("systemd-analyze")
def test_uv_tool_install_vrrp(built: Built, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["UV_TOOL_DIR"] = str(tmp_path / "tools")
    env["UV_TOOL_BIN_DIR"] = str(tmp_path / "bin")
    run_uv(
        [
            "tool",
            "install",
            "--python",
            sys.executable,
            "--find-links",
            str(built.directory),
            "halo-core[vrrp]",
        ],
        "uv tool install",
        cwd=tmp_path,
        env=env,
    )
    halo = tmp_path / "bin" / "halo"

    # What got installed is what was built here, not a namesake from the registry.
    records = {
        p.parent.name.split("-")[0].replace("_", "-"): p.read_text()
        for p in (tmp_path / "tools" / "halo-core").glob("lib/python*/site-packages/*/RECORD")
        if p.parent.name.startswith("halo_")
    }
    # and the library the http checker requires
    assert set(records) == {"halo-core", "halo-lib-http", *VRRP_PLUGINS.values()}
    for name, record in records.items():
        files = [
            ln for ln in wheel_record(built.wheels[name]).splitlines() if ".dist-info/" not in ln
        ]
        assert files and set(files) <= set(record.splitlines()), name

    version = run(halo, "--version")
    assert version.returncode == 0 and version.stdout.strip() == "halo 0.1.0", version

    plugins = run(halo, "plugins")
    assert plugins.returncode == 0, plugins.stderr
    listed = {ln.split()[0]: ln.split()[1] for ln in plugins.stdout.splitlines()[1:] if ln}
    assert listed == VRRP_PLUGINS, plugins.stdout

    config = tmp_path / "halo.yaml"
    config.write_text(readme_example())
    check = run(halo, "check", "-c", config)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith(f"{config}: ok (1 VRRP instances"), check.stdout

    unit = run(halo, "systemd-unit", "-c", config)
    assert unit.returncode == 0, unit.stderr
    assert f"\nExecStart={halo} run -c {config}\n" in unit.stdout
    assert "\nExecStartPre=" not in unit.stdout  # no ipvs backend in [vrrp]
    analyze = shutil.which("systemd-analyze")
    if analyze:
        (tmp_path / "halo.service").write_text(unit.stdout)
        verify = run(analyze, "verify", tmp_path / "halo.service")
        assert verify.returncode == 0, verify.stderr
