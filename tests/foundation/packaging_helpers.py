"""Building and installing halo's distributions in tests: what the packaging tests share."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What uv says when it cannot reach a package registry (the build backend, dependencies).
UNREACHABLE = (
    "Failed to fetch",
    "error sending request",
    "dns error",
    "failed to lookup address",
    "Connection refused",
    "Network is unreachable",
    "operation timed out",
)


def source_distributions() -> dict[str, Path]:
    """Distribution name -> its directory: halo-core and every first-party plugin."""
    out = {}
    for pp in [ROOT / "core" / "pyproject.toml", *sorted(ROOT.glob("plugins/*/*/pyproject.toml"))]:
        out[tomllib.loads(pp.read_text())["project"]["name"]] = pp.parent
    return out


def run_uv(
    args: list[str], what: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run uv; skip the test (one line) when uv is missing or a registry is unreachable."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    res = subprocess.run(
        [uv, *args], capture_output=True, text=True, timeout=600, check=False, cwd=cwd, env=env
    )
    if res.returncode != 0 and any(s in res.stderr for s in UNREACHABLE):
        last = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else ""
        pytest.skip(f"{what}: package registry unreachable ({last.strip()})")
    assert res.returncode == 0, f"uv {' '.join(args)}:\n{res.stderr}"
    return res


@dataclass(frozen=True)
class Built:
    directory: Path
    wheels: dict[str, Path]  # distribution name -> its wheel
    sdists: dict[str, Path]  # distribution name -> its sdist
    sources: dict[str, Path]  # distribution name -> its directory in the repository


def _name(filename: str) -> str:
    return filename.split("-")[0].replace("_", "-")


def build_all(out: Path) -> Built:
    """Every distribution's wheel and sdist, built into ``out`` (never the repository)."""
    run_uv(["build", "--all-packages", "-q", "--out-dir", str(out)], "uv build", cwd=ROOT)
    return Built(
        out,
        {_name(p.name): p for p in out.glob("*.whl")},
        {_name(p.name): p for p in out.glob("*.tar.gz")},
        source_distributions(),
    )
