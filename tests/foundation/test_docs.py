"""Every hook in halo_core.hookspecs has its own section in docs/hooks.md."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from halo_core import hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"


def hook_names() -> list[str]:
    return [
        n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("halo_")
    ]


def test_every_hook_has_a_docs_section() -> None:
    text = DOCS.read_text()
    sections = set(re.findall(r"^## `?(halo_[a-z_]+)", text, re.M))
    missing = sorted(set(hook_names()) - sections)
    assert not missing, f"hooks without a section in docs/hooks.md: {missing}"
    stale = sorted(sections - set(hook_names()))
    assert not stale, f"docs/hooks.md documents hooks that do not exist: {stale}"


def test_every_hook_has_a_docstring() -> None:
    for name in hook_names():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Called" in doc, f"{name}: the docstring must say when it is called"


def hook_signatures() -> dict[str, str]:
    """Each hook's signature as written in hookspecs.py: ``def name(args) -> returns: ...``."""
    tree = ast.parse(Path(hookspecs.__file__).read_text())
    return {
        f.name: f"def {f.name}({ast.unparse(f.args)}) -> {ast.unparse(f.returns)}: ..."
        for f in tree.body
        if isinstance(f, ast.FunctionDef) and f.name.startswith("halo_") and f.returns
    }


def test_every_hook_section_shows_the_exact_signature() -> None:
    """As datasette's docs test does: the signature a plugin author copies from the docs is
    the one pluggy checks against."""
    text = DOCS.read_text()
    sections = dict(re.findall(r"^## `(halo_[a-z_]+)`\n(.*?)(?=^## |\Z)", text, re.M | re.S))
    signatures = hook_signatures()
    assert set(signatures) == set(hook_names())
    for name, signature in signatures.items():
        block = re.search(r"```python\n(.*?)```", sections[name], re.S)
        assert block, f"docs/hooks.md: {name} has no python block"
        assert f"@hookimpl\n{signature}\n" == block.group(1), (
            f"docs/hooks.md: {name} must show\n@hookimpl\n{signature}\nnot\n{block.group(1)}"
        )
