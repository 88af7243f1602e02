"""Every hook in halo_core.hookspecs has its own section in docs/hooks.md."""

from __future__ import annotations

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
