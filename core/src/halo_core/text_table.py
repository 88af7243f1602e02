"""Aligned text columns, for the tables commands print (``halo status``, ``halo watch``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Aligned columns, two spaces apart; the last column is not padded. None shows as -."""
    cells = [[str(c) for c in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = []
    for r in cells:
        line = "  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:-1]))
        out.append((line + "  " + r[-1]).rstrip() if len(r) > 1 else r[0])
    return out
