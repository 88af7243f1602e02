"""``halo new checker|notifier|backend NAME``: a complete plugin distribution to start from.

It is written from the templates beside this module, with one name throughout: the
distribution ``halo-KIND-NAME``, the import package ``halo_KIND_NAME``, the entry point
``KIND-NAME`` and the type ``NAME``. The project builds, installs next to halo-core, and its
tests (which use :mod:`halo_tool_lab.testing`) pass as generated.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import halo_core

KINDS = ("checker", "notifier", "backend")
NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
SUMMARIES = {
    "checker": "a TCP port accepts connections",
    "notifier": "appends each event to a file as a JSON line",
    "backend": "keeps each VRRP instance's state in a JSON file",
}
# template (under templates/) -> path in the project; {package} and {name} are filled in
LAYOUT = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "__init__.py.tmpl": "src/{package}/__init__.py",
    "{kind}/README.md.tmpl": "README.md",
    "{kind}/plugin.py.tmpl": "src/{package}/plugin.py",
    "{kind}/runtime.py.tmpl": "src/{package}/runtime.py",
    "{kind}/test.py.tmpl": "tests/test_{name}.py",
}


def compatible_range(distribution: str, version: str) -> str:
    """``halo-core>=0.1,<0.2``: the releases whose API matches ``version`` (for 0.x a minor
    release may break, from 1.0 on only a major one)."""
    major, minor = (int(n) for n in version.split(".")[:2])
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"{distribution}>={major}.{minor},<{upper}"


def generate(kind: str, name: str, parent: Path) -> Path:
    """Write the project ``halo-KIND-NAME`` into ``parent`` and give its directory. Raises
    ValueError (a one-line message) for a bad kind or name or an existing directory."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (one of {', '.join(KINDS)})")
    if not NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid name {name!r}: lower-case letters, digits and _, starting with a letter"
        )
    dist = f"halo-{kind}-{name}"
    target = parent / dist
    if target.exists():
        raise ValueError(f"{target} already exists")
    values = {
        "kind": kind,
        "name": name,
        "Name": "".join(part.capitalize() for part in name.split("_")),
        "dist": dist,
        "package": f"halo_{kind}_{name}",
        "summary": SUMMARIES[kind],
        "halo_core": compatible_range("halo-core", halo_core.version()),
        "halo_lab": compatible_range("halo-tool-lab", importlib.metadata.version("halo-tool-lab")),
    }
    templates = files("halo_tool_lab") / "templates"
    for template, path in LAYOUT.items():
        text = (templates / template.format(**values)).read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        out = target / path.format(**values)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    (target / "src" / values["package"] / "py.typed").touch()
    return target


def add_command(subparsers: argparse._SubParsersAction[Any]) -> None:
    p_new = subparsers.add_parser(
        "new",
        help="create a plugin distribution to start from",
        description="Create the directory halo-KIND-NAME: a complete distribution of a"
        " KIND plugin providing the type NAME (pyproject.toml, plugin.py with the schema and"
        " the hook, runtime.py, a README with an example, tests using halo_tool_lab.testing,"
        " ruff and mypy settings). It installs as it is, and its tests pass.",
    )
    p_new.add_argument("kind", choices=KINDS, help="what the plugin provides")
    p_new.add_argument(
        "name", help="the type's name (lower-case letters, digits and _), used throughout"
    )
    p_new.add_argument(
        "-d",
        "--directory",
        default=".",
        help="where to create halo-KIND-NAME (default: %(default)s)",
    )
    p_new.set_defaults(func=_cmd_new)


def _cmd_new(args: argparse.Namespace) -> int:
    try:
        made = generate(args.kind, args.name, Path(args.directory))
    except (ValueError, OSError) as exc:
        print(f"halo new: {exc}", file=sys.stderr)
        return 2
    print(f"created {made}: the {args.kind} type {args.name!r}")
    print(f"  cd {made} && pip install -e '.[test]' && pytest")
    print("  halo plugins   # lists it")
    return 0
