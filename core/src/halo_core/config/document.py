"""A loaded configuration document without the YAML that was read: mappings and lists that
know where each key and value was written (``file:line:col``), and the look-ups over them.

The loader (:mod:`halo_core.config.loader`, which needs PyYAML) builds these; validation and
its error messages need only this module, so a process that is handed a document read
elsewhere (the worker, docs/processes.md) never imports YAML.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

from halo_core.schema import Path

Mark = tuple[str, int, int]
"""(file, line, column), both 1-based."""


class PosDict(dict[str, Any]):
    """A mapping that knows where it and each of its keys and values were written."""

    mark: Mark
    key_marks: dict[str, Mark]
    value_marks: dict[str, Mark]


class PosList(list[Any]):
    """A sequence that knows where it and each item were written."""

    mark: Mark
    item_marks: list[Mark]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a document is read (or validated): every
    event and node read, and every object validated, is kept until the end, so each
    collection walks them all again for nothing (it was half the time of reading 200,000
    values, an eighth of validating 3,000 instances). Any cycle left is collected once it
    is back on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def locate(root: Any, path: Path, *, at_key: bool = False) -> Mark | None:
    """Where the value (or, with ``at_key``, the key) at ``path`` was written.

    Walks as deep as the path exists; a missing key is reported at its parent mapping.
    """
    node = root
    mark: Mark | None = getattr(root, "mark", None)
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, PosDict) and isinstance(part, str) and part in node:
            mark = node.key_marks[part] if (last and at_key) else node.value_marks[part]
            node = node[part]
        elif isinstance(node, PosList) and isinstance(part, int) and 0 <= part < len(node):
            mark = node.item_marks[part]
            node = node[part]
        else:
            break
    return mark


def path_of(root: Any, target: Any) -> Path | None:
    """The path of container ``target`` inside ``root`` (by identity), or None.

    Each container is looked into once: an alias makes one object appear at many places,
    and walking every place of a billion-laughs document would never end."""
    seen: set[int] = set()

    def walk(node: Any) -> Path | None:
        if node is target:
            return ()
        if id(node) in seen:
            return None
        seen.add(id(node))
        items: Any = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else ()
        )
        for k, v in items:
            if isinstance(v, dict | list):
                sub = walk(v)
                if sub is not None:
                    return (k, *sub)
        return None

    return walk(root)
