"""A plugin project as a third party has it, from a blank directory to a working install:
build its wheel, install it into a fresh virtual environment holding only the built
halo-core, halo-tool-lab (the helpers for plugin authors) and halo-tool-notify wheels, and
check what ``halo`` says about it and that its own tests pass. One implementation for the
tests of ``halo new`` and of the executed authoring guides."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging_helpers import ROOT, run_uv

# halo-core and the distributions a plugin author's environment has besides their plugin
KIT = {
    "halo-core": ROOT / "core",
    "halo-tool-lab": ROOT / "plugins" / "tools" / "lab",
    "halo-tool-notify": ROOT / "plugins" / "tools" / "notify",
}
# a fenced block of a page: its language, the rest of its info string, its text
FENCE = re.compile(r"^```(\S*)([^\n]*)\n(.*?)^```\n", re.S | re.M)
# what a plugin project's tests need besides the kit
TEST_REQUIREMENTS = ("pytest>=8",)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}


def build_wheel(project: Path, out: Path) -> Path:
    """The wheel of ``project`` (an isolated build: hatchling from uv's cache if it has it)."""
    before = set(out.glob("*.whl"))
    _uv_offline_first(["build", "--wheel", "-q", "-o", str(out), str(project)], "uv build")
    (made,) = set(out.glob("*.whl")) - before
    return made


def build_kit(out: Path) -> list[Path]:
    """The kit's wheels (halo-core, halo-tool-lab, halo-tool-notify), built into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    return [build_wheel(source, out) for source in KIT.values()]


def _uv_offline_first(args: list[str], what: str) -> subprocess.CompletedProcess[str]:
    """Run uv without the network, from its cache (what `uv sync` left there); only when
    something is not in the cache, with the package registry."""
    uv = shutil.which("uv")
    if uv is not None:
        offline = subprocess.run(
            [uv, *args],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env=_env() | {"UV_OFFLINE": "1"},
        )
        if offline.returncode == 0:
            return offline
    return run_uv(args, what, env=_env())


@dataclass(frozen=True)
class PluginVenv:
    """A fresh virtual environment with the kit and one plugin project installed."""

    root: Path

    def run(self, *argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run one of this environment's commands (``halo``, ``python``)."""
        command = [str(self.root / "bin" / str(argv[0])), *map(str, argv[1:])]
        return subprocess.run(
            command, capture_output=True, text=True, env=_env(), cwd=cwd, timeout=300, check=False
        )


def install(kit: list[Path], project: Path, where: Path, *, editable: bool = False) -> PluginVenv:
    """Build ``project``'s wheel and install it, with the kit and pytest, into a new
    virtual environment under ``where``: nothing of the workspace is in it. With
    ``editable``, as its author does in the project instead: ``pip install -e '.[test]'``
    (the test extra resolved against the kit's wheels)."""
    if editable:
        requirements = ["-e", f"{project}[test]"]
    else:
        dist = where / "dist"
        dist.mkdir(parents=True)
        requirements = [str(build_wheel(project, dist)), *TEST_REQUIREMENTS]
    venv = PluginVenv(where / "venv")
    run_uv(["venv", "-q", "--python", sys.executable, str(venv.root)], "uv venv", env=_env())
    _uv_offline_first(
        [
            "pip",
            "install",
            "-q",
            "--python",
            str(venv.root / "bin" / "python"),
            *map(str, kit),
            *requirements,
        ],
        "uv pip install",
    )
    return venv


def assert_listed(venv: PluginVenv, kind: str, name: str, distribution: str) -> None:
    """``halo plugins`` lists the plugin ``KIND-NAME`` of ``distribution`` with its type."""
    res = venv.run("halo", "plugins")
    assert res.returncode == 0, res.stdout + res.stderr
    rows = {ln.split()[0]: ln for ln in res.stdout.splitlines()[1:] if ln.strip()}
    row = rows.get(f"{kind}-{name}")
    assert row is not None, res.stdout
    assert row.split()[1] == distribution, row
    assert f"{kind} {name}" in row, row
    assert "not loaded" not in res.stdout, res.stdout


def assert_check(venv: PluginVenv, good: Path, bad: Path, expected_errors: str) -> None:
    """``halo check`` accepts ``good`` and rejects ``bad`` with exactly ``expected_errors``
    on stderr (run in their directory, so the paths printed are as given)."""
    ok = venv.run("halo", "check", "-c", good.name, cwd=good.parent)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith(f"{good.name}: ok"), ok.stdout
    rejected = venv.run("halo", "check", "-c", bad.name, cwd=bad.parent)
    assert rejected.returncode == 1, rejected.stdout + rejected.stderr
    assert rejected.stderr == expected_errors, rejected.stderr


def assert_own_tests_pass(venv: PluginVenv, project: Path) -> None:
    """The project's tests pass, run with the environment's pytest in the project."""
    res = venv.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project)
    assert res.returncode == 0, res.stdout + res.stderr
    assert " passed" in res.stdout and "skipped" not in res.stdout, res.stdout


def assert_ruff_and_mypy_pass(project: Path, cache: Path) -> None:
    """ruff and mypy (this workspace's) pass on ``project`` with the settings it ships."""
    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        capture_output=True,
        text=True,
        cwd=project,
        check=False,
    )
    assert ruff.returncode == 0, ruff.stdout
    mypy = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache), "src", "tests"],
        capture_output=True,
        text=True,
        cwd=project,
        check=False,
    )
    assert mypy.returncode == 0, mypy.stdout


def tagged_files(page: str) -> dict[str, str]:
    """The page's files: path -> content, from blocks whose info string has ``file=PATH``."""
    out = {}
    for _lang, info, body in FENCE.findall(page):
        tag = re.search(r"\bfile=(\S+)", info)
        if tag:
            assert tag.group(1) not in out, f"{tag.group(1)} twice"
            out[tag.group(1)] = body
    return out
