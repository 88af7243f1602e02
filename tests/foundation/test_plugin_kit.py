"""The plugin author's kit from a blank directory: ``halo new`` generates a project of each
kind that builds, installs into a fresh virtual environment next to the built halo-core,
is listed by ``halo plugins``, is validated by ``halo check`` (a bad configuration with
the exact ``file:line:col``), and whose own generated tests pass there. And a plugin built
for another plugin API is a load error that says so."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from plugin_kit import (
    PluginVenv,
    assert_check,
    assert_listed,
    assert_own_tests_pass,
    assert_ruff_and_mypy_pass,
    install,
)

from halo_tool_lab.new import LAYOUT, generate

pytestmark = pytest.mark.timeout(600)

# kind -> (a valid configuration, an invalid one, what `halo check` says about it)
CONFIGS = {
    "checker": (
        "checks:\n  app: {type: kit_demo, port: 8080}\n",
        "checks:\n  app:\n    type: kit_demo\n    port: 0\n",
        "bad.yaml:4:11: checks.app.port: must be between 1 and 65535, not 0\n",
    ),
    "notifier": (
        "notifiers:\n  log: {type: kit_demo, path: /tmp/events.jsonl, states: [MASTER]}\n",
        "notifiers:\n  log:\n    type: kit_demo\n    pth: /tmp/events.jsonl\n",
        "bad.yaml:3:5: notifiers.log: missing required key 'path'\n"
        "bad.yaml:4:5: notifiers.log.pth: unknown key (did you mean 'path'?)\n",
    ),
    "backend": (
        "backends:\n  states: {type: kit_demo, path: /run/states.json}\n",
        "backends:\n  states:\n    type: kit_demo\n",
        "bad.yaml:3:5: backends.states: missing required key 'path'\n",
    ),
}


def halo_new(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """This workspace's ``halo new``, as an author runs it."""
    halo = Path(sys.executable).parent / "halo"
    return subprocess.run(
        [str(halo), "new", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_generated_project_works_in_a_fresh_venv(
    kind: str, kit: list[Path], tmp_path: Path
) -> None:
    made = halo_new(kind, "kit_demo", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / f"halo-{kind}-kit_demo"
    assert made.stdout.startswith(f"created {project.name}: the {kind} type 'kit_demo'")

    texts = {p: p.read_text() for p in project.rglob("*") if p.is_file()}
    assert not [p for p, text in texts.items() if "{{" in text], "a placeholder is left"

    venv = install(kit, project, tmp_path / "env")
    assert_listed(venv, kind, "kit_demo", f"halo-{kind}-kit_demo")
    good, bad, errors = CONFIGS[kind]
    (tmp_path / "good.yaml").write_text(good)
    (tmp_path / "bad.yaml").write_text(bad)
    assert_check(venv, tmp_path / "good.yaml", tmp_path / "bad.yaml", errors)
    # the README's example is a configuration halo check accepts
    (example,) = re.findall(r"```yaml\n(.*?)```", texts[project / "README.md"], re.S)
    (tmp_path / "readme.yaml").write_text(example)
    readme = venv.run("halo", "check", "-c", "readme.yaml", cwd=tmp_path)
    assert readme.returncode == 0, readme.stderr
    assert_own_tests_pass(venv, project)


def test_an_editable_install_as_the_generated_readme_says(kit: list[Path], tmp_path: Path) -> None:
    """`pip install -e '.[test]'` then `pytest`, in the project: its source is what runs."""
    project = generate("checker", "kit_demo", tmp_path)
    assert "pip install -e '.[test]'\npytest\n" in (project / "README.md").read_text()
    venv = install(kit, project, tmp_path / "env", editable=True)
    assert_listed(venv, "checker", "kit_demo", "halo-checker-kit_demo")
    where = venv.run("python", "-c", "import halo_checker_kit_demo as m; print(m.__file__)")
    assert where.stdout.strip() == str(project / "src" / "halo_checker_kit_demo" / "__init__.py")
    assert_own_tests_pass(venv, project)


def test_the_kit_wheel_ships_the_templates(kit: list[Path]) -> None:
    (lab,) = [w for w in kit if w.name.startswith("halo_tool_lab-")]
    with zipfile.ZipFile(lab) as wheel:
        names = set(wheel.namelist())
    for kind in CONFIGS:
        for template in LAYOUT:
            path = "halo_tool_lab/templates/" + template.format(kind=kind)
            assert path in names, path


def test_generated_code_passes_ruff_and_mypy_strict(mypy_cache: Path, tmp_path: Path) -> None:
    """With the settings the project ships, as its author will run them."""
    for kind in CONFIGS:
        assert_ruff_and_mypy_pass(generate(kind, "kit_demo", tmp_path), mypy_cache)


def test_bad_names_are_one_line_errors(tmp_path: Path) -> None:
    res = halo_new("checker", "Redis-2", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr == (
        "halo new: invalid name 'Redis-2': lower-case letters, digits and _, starting with a"
        " letter\n"
    )
    assert halo_new("checker", "redis", cwd=tmp_path).returncode == 0
    again = halo_new("checker", "redis", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr == "halo new: halo-checker-redis already exists\n"
    assert list(tmp_path.iterdir()) == [tmp_path / "halo-checker-redis"]


FUTURE_PLUGIN = """
from halo_core.hookspecs import hookimpl

HALO_PLUGIN_API = (2, 0)


@hookimpl
def halo_plugin_types():
    raise AssertionError("never called: the plugin API does not match")
"""


def test_a_plugin_for_another_api_is_a_load_error(kit: list[Path], tmp_path: Path) -> None:
    """An out-of-tree plugin built for plugin API 2.0: `halo plugins` names it and both
    versions; the others load; a configuration using its type is not a traceback."""
    project = generate("checker", "future", tmp_path)
    (project / "src" / "halo_checker_future" / "plugin.py").write_text(FUTURE_PLUGIN)
    (project / "tests" / "test_future.py").unlink()
    venv: PluginVenv = install(kit, project, tmp_path / "env")
    res = venv.run("halo", "plugins")
    assert (
        "checker-future: not loaded: built for plugin API 2.0, but halo-core 0.1.0 provides"
        " plugin API 1.0 (it loads plugins built for 1.0)\n"
    ) in res.stdout, res.stdout
    assert "tool-lab" in res.stdout  # the other plugins loaded
    assert "AttributeError" not in res.stdout + res.stderr
