"""The misbehaving checker plugin (``site/``) importable in this process too."""

from __future__ import annotations

import sys
from pathlib import Path

SITE = Path(__file__).parent / "site"
if str(SITE) not in sys.path:
    sys.path.insert(0, str(SITE))
