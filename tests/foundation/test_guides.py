"""The authoring guides, executed: each page's files (fenced blocks tagged ``file=PATH``)
make a project in a temporary directory, which is built and installed into a fresh
virtual environment next to the built halo-core (plugin_kit, the machinery of the ``halo
new`` test); then ``halo plugins`` lists it, ``halo check`` accepts the page's halo.yaml
and rejects its bad.yaml with the errors the page shows, every ``$ halo ...`` command of
the page's console blocks prints what the page says (numbers aside: durations, free
space), and the page's own tests pass there, and ruff and mypy --strict pass on its code."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
from packaging_helpers import ROOT
from plugin_kit import (
    FENCE,
    PluginVenv,
    assert_check,
    assert_listed,
    assert_own_tests_pass,
    assert_ruff_and_mypy_pass,
    install,
    tagged_files,
)

pytestmark = pytest.mark.timeout(600)

# page -> the kind of plugin it builds, and the one-shot command it must show (if any)
GUIDES = {
    "writing-a-checker.md": ("checker", "--run"),
    "writing-a-notifier.md": ("notifier", "--test"),
    "writing-a-backend.md": ("backend", None),
}
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def console_commands(page: str) -> list[tuple[str, list[str]]]:
    """Each ``$ command`` of the page's console blocks with the output lines shown for it."""
    out: list[tuple[str, list[str]]] = []
    for lang, _info, body in FENCE.findall(page):
        if lang != "console":
            continue
        for line in body.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif line.strip():
                out[-1][1].append(line)
    return out


def same_words(line: str) -> str:
    """A line as compared: whitespace runs as one space, every number as N."""
    return NUMBER.sub("N", " ".join(line.split()))


def test_the_page_parser() -> None:
    page = "```toml file=a/b.toml\nx = 1\n```\n```console\n$ halo x\n1.5s  ok\n$ halo y\n```\n"
    assert tagged_files(page) == {"a/b.toml": "x = 1\n"}
    assert console_commands(page) == [("halo x", ["1.5s  ok"]), ("halo y", [])]
    assert same_words("took  0.003s, 40% free") == "took Ns, N% free"


@pytest.mark.parametrize("guide", sorted(GUIDES))
def test_guide_builds_installs_and_runs(
    guide: str, kit: list[Path], mypy_cache: Path, tmp_path: Path
) -> None:
    page = (ROOT / "docs" / guide).read_text()
    kind, one_shot = GUIDES[guide]
    project = tmp_path / "project"
    files = tagged_files(page)
    assert {"pyproject.toml", "halo.yaml", "bad.yaml"} <= set(files), sorted(files)
    for path, text in files.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(text)

    # one name throughout: distribution, entry point, package, and nothing else on the page
    meta = tomllib.loads(files["pyproject.toml"])["project"]
    ((entry_point, module),) = meta["entry-points"]["halo.plugins"].items()
    ep_kind, name = entry_point.split("-", 1)
    dist = f"halo-{kind}-{name}"
    assert (ep_kind, meta["name"], module) == (kind, dist, f"halo_{kind}_{name}.plugin")
    assert set(re.findall(rf"halo-{kind}-\w+", page)) == {dist}
    assert set(re.findall(rf"halo_{kind}_\w+", page)) == {f"halo_{kind}_{name}"}

    venv: PluginVenv = install(kit, project, tmp_path / "env")
    assert_listed(venv, kind, name, dist)

    commands = console_commands(page)
    shown = dict(commands)
    assert "halo plugins" in shown and "halo check -c bad.yaml" in shown, shown
    errors = "".join(f"{line}\n" for line in shown["halo check -c bad.yaml"])
    assert_check(venv, project / "halo.yaml", project / "bad.yaml", errors)
    if one_shot:
        assert any(one_shot in c.split() for c in shown), f"{guide} shows no {one_shot} run"
    for command, expected in commands:
        argv = shlex.split(command)
        assert argv[0] == "halo", command
        res = venv.run(*argv, cwd=project)
        assert res.returncode == (1 if "bad.yaml" in argv else 0), res.stdout + res.stderr
        printed = {same_words(ln) for ln in (res.stdout + res.stderr).splitlines()}
        missing = [ln for ln in expected if same_words(ln) not in printed]
        assert not missing, f"$ {command}: {missing} not in:\n{res.stdout}{res.stderr}"

    assert_own_tests_pass(venv, project)
    assert_ruff_and_mypy_pass(project, mypy_cache)
