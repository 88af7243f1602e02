"""The repository's lab fixtures (``lab_root``, ``lab``) for the equivalence test here.

They live in ``tests/conftest.py``, which pytest applies only under ``tests/``; this borrows
them until the lab distribution offers them itself.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SHARED = Path(__file__).resolve().parents[4] / "tests" / "conftest.py"
_spec = importlib.util.spec_from_file_location("halo_tests_shared_conftest", _SHARED)
assert _spec is not None and _spec.loader is not None
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)

lab_root = _shared.lab_root
lab = _shared.lab
