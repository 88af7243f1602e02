"""The misbehaving checker plugin (``site/``) importable in this process too, as a module
only: ``site`` is not put on sys.path, so the entry point stays invisible to other tests
that list the installed plugins (halo's processes get it through PYTHONPATH)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SITE = Path(__file__).parent / "site"
NAME = "halo_checker_misbehave"

if NAME not in sys.modules:
    spec = importlib.util.spec_from_file_location(NAME, SITE / NAME / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module
    spec.loader.exec_module(module)
