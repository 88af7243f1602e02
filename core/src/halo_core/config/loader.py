"""YAML loading that remembers where every key and value came from.

Errors in halo's config are reported as ``file:line:col: dotted.path: message``. To do that
after validation (which only knows dotted paths), the loader builds dicts and lists that carry
the file, line and column of each key and item. It also rejects duplicate keys (PyYAML
silently keeps the last one, which hides copy-paste mistakes such as two instances with the
same name) and resolves ``include:`` directives.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Any

import yaml

from halo_core.schema import Path

Mark = tuple[str, int, int]
"""(file, line, column), both 1-based."""


@dataclass(frozen=True)
class LoadProblem:
    """A problem found while reading files (before schema validation)."""

    mark: Mark
    path: Path | None
    message: str
    container: Any = None  # for a duplicate key: the mapping it was in, to find its path
    key: str | None = None


class PosDict(dict[str, Any]):
    """A mapping that knows where it and each of its keys and values were written."""

    mark: Mark
    key_marks: dict[str, Mark]
    value_marks: dict[str, Mark]


class PosList(list[Any]):
    """A sequence that knows where it and each item were written."""

    mark: Mark
    item_marks: list[Mark]


def _mark(filename: str, node: yaml.Node) -> Mark:
    return (filename, node.start_mark.line + 1, node.start_mark.column + 1)


class _Loader(yaml.SafeLoader):
    """SafeLoader whose containers carry marks, and that reports duplicate keys."""

    filename: str
    problems: list[LoadProblem]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> PosDict:  # type: ignore[override]
        out = PosDict()
        out.mark = _mark(self.filename, node)
        out.key_marks = {}
        out.value_marks = {}
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                # YAML allows `1: x` or `on: x` (a boolean!); halo's keys are always names.
                key = str(key).lower() if isinstance(key, bool) else str(key)
            if key in out:
                first = out.key_marks[key]
                self.problems.append(
                    LoadProblem(
                        _mark(self.filename, key_node),
                        None,
                        f"duplicate key (first defined at line {first[1]})",
                        out,
                        key,
                    )
                )
                continue
            out[key] = self.construct_object(value_node, deep=True)
            out.key_marks[key] = _mark(self.filename, key_node)
            out.value_marks[key] = _mark(self.filename, value_node)
        return out

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> PosList:  # type: ignore[override]
        out = PosList(self.construct_object(child, deep=True) for child in node.value)
        out.mark = _mark(self.filename, node)
        out.item_marks = [_mark(self.filename, child) for child in node.value]
        return out


_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _Loader.construct_mapping,  # type: ignore[arg-type]
)
_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
    _Loader.construct_sequence,  # type: ignore[arg-type]
)


def parse_text(text: str, filename: str) -> tuple[Any, list[LoadProblem]]:
    """Parse one YAML document. Syntax errors come back as problems, never exceptions."""
    loader = _Loader(text)
    loader.filename = filename
    loader.problems = []
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where: Mark = (filename, mark.line + 1, mark.column + 1) if mark else (filename, 1, 1)
        message = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        return None, [LoadProblem(where, None, f"YAML syntax: {message}")]
    except yaml.YAMLError as exc:
        return None, [LoadProblem((filename, 1, 1), None, f"YAML syntax: {exc}")]
    finally:
        loader.dispose()
    return data, loader.problems


# Top-level sections whose value is a mapping of named items: included files add names, and
# a name defined twice is an error. `global` merges key by key on the same rule.
_MERGED_SECTIONS = frozenset(
    {"global", "vrrp_instances", "vrrp_sync_groups", "checks", "notifiers", "backends"}
)
_LISTED_SECTIONS = frozenset({"virtual_servers"})


INCLUDE_SCHEMA: dict[str, Any] = {
    "description": "files to read too: a glob or a list of globs, relative to this file",
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}},
    ],
}
"""The ``include:`` key in JSON Schema: read here, before validation, so not a field."""


def load_file(path: str) -> tuple[Any, list[LoadProblem]]:
    """Read ``path`` and everything it includes, merged into one document.

    ``include:`` takes a glob or a list of globs relative to the including file, matched
    files read in sorted order (the conf.d convention). A pattern that matches nothing is an
    error unless it contains a wildcard (an empty conf.d is normal).
    """
    problems: list[LoadProblem] = []
    root = _load_one(os.path.abspath(path), path, problems, stack=())
    return root, problems


def _read(abspath: str, shown: str, problems: list[LoadProblem], at: Mark | None) -> str | None:
    try:
        with open(abspath, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problems.append(LoadProblem(at or (shown, 1, 1), None, f"cannot read {shown}: {reason}"))
        return None


def _load_one(
    abspath: str,
    shown: str,
    problems: list[LoadProblem],
    stack: tuple[str, ...],
    at: Mark | None = None,
) -> Any:
    text = _read(abspath, shown, problems, at)
    if text is None:
        return None
    data, found = parse_text(text, shown)
    problems.extend(found)
    if data is None:
        return PosDict_empty(shown)
    if not isinstance(data, PosDict):
        problems.append(
            LoadProblem((shown, 1, 1), None, "the configuration must be a mapping of sections")
        )
        return None
    includes = data.pop("include", None)
    if includes is None:
        return data
    inc_mark = data.value_marks.pop("include")
    data.key_marks.pop("include")
    patterns = includes if isinstance(includes, list) else [includes]
    base = os.path.dirname(abspath)
    shown_base = os.path.dirname(shown)
    for i, pattern in enumerate(patterns):
        item_mark = includes.item_marks[i] if isinstance(includes, PosList) else inc_mark
        if not isinstance(pattern, str):
            problems.append(LoadProblem(item_mark, ("include",), "must be a file name or glob"))
            continue
        full = os.path.join(base, pattern)
        matches = sorted(glob.glob(full))
        if not matches and not glob.has_magic(pattern):
            problems.append(LoadProblem(item_mark, ("include",), f"no such file: {pattern}"))
        for match in matches:
            real = os.path.realpath(match)
            if real in stack or real == os.path.realpath(abspath):
                problems.append(LoadProblem(item_mark, ("include",), f"include loop via {pattern}"))
                continue
            rel = os.path.relpath(match, base)
            child_shown = os.path.normpath(os.path.join(shown_base, rel))
            child = _load_one(
                match, child_shown, problems, (*stack, os.path.realpath(abspath)), item_mark
            )
            if isinstance(child, PosDict):
                _merge(data, child, problems)
    return data


def PosDict_empty(filename: str) -> PosDict:
    out = PosDict()
    out.mark = (filename, 1, 1)
    out.key_marks = {}
    out.value_marks = {}
    return out


def _merge(into: PosDict, other: PosDict, problems: list[LoadProblem]) -> None:
    for key, value in other.items():
        if key not in into:
            into[key] = value
            into.key_marks[key] = other.key_marks[key]
            into.value_marks[key] = other.value_marks[key]
            continue
        mine = into[key]
        if key in _MERGED_SECTIONS and isinstance(mine, PosDict) and isinstance(value, PosDict):
            for name, item in value.items():
                if name in mine:
                    first = mine.key_marks[name]
                    problems.append(
                        LoadProblem(
                            value.key_marks[name],
                            (key, name),
                            f"defined twice (first at {first[0]}:{first[1]})",
                        )
                    )
                    continue
                mine[name] = item
                mine.key_marks[name] = value.key_marks[name]
                mine.value_marks[name] = value.value_marks[name]
        elif key in _LISTED_SECTIONS and isinstance(mine, PosList) and isinstance(value, PosList):
            mine.extend(value)
            mine.item_marks.extend(value.item_marks)
        else:
            first = into.key_marks[key]
            problems.append(
                LoadProblem(
                    other.key_marks[key], (key,), f"defined twice (first at {first[0]}:{first[1]})"
                )
            )


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
    """The path of container ``target`` inside ``root`` (by identity), or None."""
    if root is target:
        return ()
    items: Any = (
        root.items()
        if isinstance(root, dict)
        else enumerate(root)
        if isinstance(root, list)
        else ()
    )
    for k, v in items:
        if isinstance(v, dict | list):
            sub = path_of(v, target)
            if sub is not None:
                return (k, *sub)
    return None
