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
import stat
import types
from dataclasses import dataclass, field
from typing import Any

import yaml

from halo_core.config.document import (
    Mark,
    PosDict,
    PosList,
    collector_paused,
    locate,
    path_of,
)
from halo_core.schema import Path

__all__ = ["Mark", "PosDict", "PosList", "collector_paused", "load_file", "locate", "path_of"]


@dataclass(frozen=True)
class LoadProblem:
    """A problem found while reading files (before schema validation)."""

    mark: Mark
    path: Path | None
    message: str
    container: Any = None  # for a duplicate key: the mapping it was in, to find its path
    key: str | None = None
    fatal: bool = False  # the file could not be parsed: validating the rest would mislead


# Limits that keep a hostile or broken configuration from costing much: a real one (3,000 VRRP
# instances) is about 0.5 MB, 50,000 values, 6 levels deep and uses a few hundred aliases.
# The time to read a file grows with its values (MAX_NODES bounds it) and its bytes.
MAX_FILE_BYTES = 4 * 1024 * 1024
"""Largest file read (bytes); a device like /dev/zero would otherwise fill the memory."""
MAX_TOTAL_BYTES = 16 * 1024 * 1024
"""Largest total of all files read for one configuration."""
MAX_FILES = 10_000
"""Most files one configuration may read, itself and every include."""
MAX_NODES = 200_000
"""Most values (scalars, lists, mappings) written in all files of a configuration: about 4
times a 3,000-instance one. Composing costs about 15 µs a value, so this bounds a large
file that is broken at its end to about 3 s."""
MAX_DEPTH = 50
"""Deepest nesting of mappings and lists, aliases expanded."""
MAX_ALIAS_NODES = 100_000
"""Most values that aliases may add to a document (a billion-laughs guard)."""
MAX_INT_DIGITS = 100
"""Longest integer literal; no option needs more, and Python refuses over 4,300 digits."""


def _mark(filename: str, node: yaml.Node) -> Mark:
    return (filename, node.start_mark.line + 1, node.start_mark.column + 1)


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _Base(  # type: ignore[misc]
        yaml.composer.Composer, yaml.constructor.SafeConstructor, yaml.resolver.Resolver
    ):
        """PyYAML's composer, whose depth is checked below (libyaml's own composer recurses
        in C, where no limit applies), over libyaml's events (its scanner and parser are 4
        times faster than PyYAML's on a large config, 30 times on long comments or strings)
        read ahead into a list by :func:`_read_events`."""

        def __init__(self, events: list[Any]) -> None:
            self.events = events
            self.next_event = 0
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

        def check_event(self, *choices: type) -> bool:
            if self.next_event >= len(self.events):
                return False
            return not choices or isinstance(self.events[self.next_event], choices)

        def peek_event(self) -> Any:
            return self.events[self.next_event] if self.next_event < len(self.events) else None

        def get_event(self) -> Any:
            event = self.peek_event()
            self.next_event += 1
            return event

        def dispose(self) -> None:
            self.events = []

else:  # pragma: no cover - PyYAML built without libyaml
    _Base = yaml.SafeLoader  # type: ignore[misc,assignment]


class _Loader(_Base):  # type: ignore[misc]
    """A YAML loader whose containers carry marks, that reports duplicate keys, and that
    refuses documents nested deeper than :data:`MAX_DEPTH` while composing (the composer is
    recursive: a flow list 250 deep ends in RecursionError)."""

    filename: str
    problems: list[LoadProblem]
    depth: int = 0
    nodes: int = 0  # composed so far
    max_nodes: int = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:  # type: ignore[override]
        self.depth += 1
        self.nodes += 1
        try:
            if self.depth > MAX_DEPTH or self.nodes > self.max_nodes:
                event: Any = self.peek_event()
                message = (
                    f"nested deeper than {MAX_DEPTH} levels"
                    if self.depth > MAX_DEPTH
                    else f"more than {MAX_NODES:,} values in the configuration"
                )
                raise yaml.composer.ComposerError(None, None, message, event.start_mark)
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self.depth -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:  # type: ignore[override]
        digits = sum(c.isalnum() for c in str(node.value))  # hex digits count too
        if digits > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"integer of {digits} digits (at most {MAX_INT_DIGITS})",
                node.start_mark,
            )
        return super().construct_yaml_int(node)  # type: ignore[no-any-return]

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
    _Loader.construct_mapping,  # type: ignore[arg-type,type-var]
)
_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
    _Loader.construct_sequence,  # type: ignore[arg-type,type-var]
)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)  # type: ignore[arg-type,type-var]


def _expansion_problem(root: yaml.Node) -> tuple[yaml.Node, str] | None:
    """What is wrong with the document once its aliases are expanded: too deep, too many
    values added by aliases, or an alias inside its own anchor. The walk visits each node
    once (sizes are remembered), so a billion-laughs document costs its written size."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_: set[int] = set()
    unique = 0

    def walk(node: yaml.Node) -> tuple[yaml.Node, str] | None:
        nonlocal unique
        key = id(node)
        if key in size:
            return None
        if key in open_:
            return node, "an alias refers to its own anchor (recursive structure)"
        open_.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        total, deepest = 1, 0
        for child in children:
            found = walk(child)
            if found:
                return found
            total += size[id(child)]
            deepest = max(deepest, depth[id(child)])
        open_.discard(key)
        unique += 1
        size[key], depth[key] = total, deepest + 1
        if depth[key] > MAX_DEPTH:
            return node, f"nested deeper than {MAX_DEPTH} levels once aliases are expanded"
        if total - unique > MAX_ALIAS_NODES:
            return node, f"aliases expand to more than {MAX_ALIAS_NODES:,} values"
        return None

    return walk(root)


# The characters YAML 1.1 allows in a stream (PyYAML's reader rule), checked before parsing so
# the position is one of characters, whichever parser runs.
_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE


def parse_text(text: str, filename: str) -> tuple[Any, list[LoadProblem]]:
    """Parse one YAML document. Syntax errors and documents over the limits above come back
    as problems, never exceptions."""
    data, problems, _ = _parse(text, filename, MAX_NODES)
    return data, problems


def _parse(text: str, filename: str, max_nodes: int) -> tuple[Any, list[LoadProblem], int]:
    """:func:`parse_text` with at most ``max_nodes`` values; also gives how many it read."""
    bad_char = _NON_PRINTABLE.search(text)
    if bad_char:
        at = bad_char.start()
        line = text.count("\n", 0, at) + 1
        col = at - (text.rfind("\n", 0, at) + 1) + 1
        message = (
            f"YAML syntax: control character #x{ord(bad_char.group()):04x} is not allowed"
            " (write it escaped in double quotes)"
        )
        return None, [LoadProblem((filename, line, col), None, message, fatal=True)], 0
    with collector_paused():
        return _parse_text(text, filename, max_nodes)


def _parse_text(text: str, filename: str, max_nodes: int) -> tuple[Any, list[LoadProblem], int]:
    events: list[Any] | None = None
    try:
        if yaml.__with_libyaml__:
            read = _read_events(text, filename, max_nodes)
            if isinstance(read, LoadProblem):
                return None, [read], 0
            events = read
            loader = _Loader(events)
        else:  # pragma: no cover - PyYAML built without libyaml
            loader = _Loader(text)  # type: ignore[arg-type]
    except ValueError:  # a lone surrogate in a string given to load_text
        return None, [LoadProblem((filename, 1, 1), None, "not valid text", fatal=True)], 0
    loader.filename = filename
    loader.problems = []
    loader.max_nodes = max_nodes
    try:
        if events is not None:
            built = _build(loader, events)
            if built is not None:
                return built[0], loader.problems, built[1]
            loader.problems = []
        data, problems = _compose(loader, text, filename)
    finally:
        loader.dispose()
    return data, problems, loader.nodes


_STR_TAG = "tag:yaml.org,2002:str"
_KEY_TAGS = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})
_IMMUTABLE_TAGS = frozenset(
    {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool"}
    | {"tag:yaml.org,2002:null"}
)


class _Unusual(Exception):
    """The document needs PyYAML's composer and constructor (see :func:`_build`)."""


def _build(loader: _Loader, events: list[Any]) -> tuple[Any, int] | None:
    """The document of ``events`` and its count of values, built straight from the events
    as composing and constructing would build it (the same values, marks and duplicate-key
    problems), or None for a document that needs PyYAML's composer: an anchor, an alias,
    an explicit tag on a collection, a merge key, a mapping as a key, a second document,
    or a value a constructor refuses (the composer then words the error). Composing every
    value into a node and constructing the nodes took most of the time of reading a large
    file (0.4 of 0.6 s for 3,000 instances); configurations are plain documents."""
    try:
        return _build_plain(loader, events)
    except _Unusual:
        return None
    except Exception:  # a constructor's refusal: the composer's path reports it
        return None


def _build_plain(loader: _Loader, events: list[Any]) -> tuple[Any, int]:
    if len(events) == 2 and type(events[1]) is yaml.StreamEndEvent:
        return None, 0
    if (
        len(events) < 5
        or type(events[1]) is not yaml.DocumentStartEvent
        or type(events[-2]) is not yaml.DocumentEndEvent
        or type(events[-1]) is not yaml.StreamEndEvent
    ):
        raise _Unusual
    filename, resolve, constructors = loader.filename, loader.resolve, loader.yaml_constructors
    scalar_node = yaml.ScalarNode
    # The same few keys and values come back thousands of times in a large file: each is
    # resolved to its tag once, and an immutable scalar (a number, a boolean, null)
    # constructed once.
    tags: dict[tuple[str, Any], str] = {}
    scalars: dict[tuple[str, str], Any] = {}
    root: Any = None
    stack: list[Any] = []  # the open containers
    keys: list[Any] = []  # for each: the key waiting for its value (a mapping's), or _NONE
    skip = 0  # open collections inside the value of a duplicate key (read, not kept)
    nodes = 0
    for event in events[2:-2]:
        kind = type(event)
        if kind is yaml.ScalarEvent:
            nodes += 1
            if event.anchor is not None:
                raise _Unusual
            if skip:
                continue
            tag = event.tag
            if tag is None or tag == "!":
                seen = (event.value, event.implicit)
                tag = tags.get(seen)
                if tag is None:
                    tag = tags[seen] = resolve(scalar_node, *seen)  # type: ignore[no-untyped-call]
            if tag == _STR_TAG:
                value: Any = event.value
            elif (tag, event.value) in scalars:
                value = scalars[tag, event.value]
            else:
                construct = constructors.get(tag)
                if construct is None or tag in _KEY_TAGS:
                    raise _Unusual
                node = scalar_node(tag, event.value, event.start_mark, event.end_mark, event.style)
                value = construct(loader, node)
                if isinstance(value, types.GeneratorType):
                    raise _Unusual
                if tag in _IMMUTABLE_TAGS:
                    scalars[tag, event.value] = value
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            nodes += 1
            if event.anchor is not None or event.tag not in (None, "!"):
                raise _Unusual
            if skip:
                skip += 1
                continue
            value = PosDict() if kind is yaml.MappingStartEvent else PosList()
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            if skip:
                skip -= 1
                continue
            stack.pop()
            keys.pop()
            continue
        else:  # an alias, or what the composer alone knows how to refuse
            raise _Unusual
        mark = (filename, event.start_mark.line + 1, event.start_mark.column + 1)
        if isinstance(value, PosDict):
            value.mark, value.key_marks, value.value_marks = mark, {}, {}
        elif isinstance(value, PosList):
            value.mark, value.item_marks = mark, []
        if not stack:
            root = value
        else:
            top = stack[-1]
            if isinstance(top, PosList):
                top.append(value)
                top.item_marks.append(mark)
            elif keys[-1] is _NONE:
                if isinstance(value, PosDict | PosList):
                    raise _Unusual  # a mapping or a list as a key
                if not isinstance(value, str):
                    # YAML allows `1: x` or `on: x` (a boolean!); halo's keys are always names.
                    value = str(value).lower() if isinstance(value, bool) else str(value)
                keys[-1] = (value, mark)
                continue
            else:
                key, key_mark = keys[-1]
                keys[-1] = _NONE
                if key in top:
                    first = top.key_marks[key]
                    message = f"duplicate key (first defined at line {first[1]})"
                    loader.problems.append(LoadProblem(key_mark, None, message, top, key))
                    if isinstance(value, PosDict | PosList):
                        skip = 1  # its contents up to its end are read, not kept
                    continue
                top[key] = value
                top.key_marks[key] = key_mark
                top.value_marks[key] = mark
        if isinstance(value, PosDict | PosList):
            stack.append(value)
            keys.append(_NONE)
    return root, nodes


_NONE = object()


def _compose(loader: _Loader, text: str, filename: str) -> tuple[Any, list[LoadProblem]]:
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        expansion = _expansion_problem(node)
        if expansion:
            bad, message = expansion
            return None, [LoadProblem(_mark(filename, bad), None, f"YAML: {message}", fatal=True)]
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        return None, [_syntax_error(exc, text, filename)]
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError, MemoryError) as exc:
        # PyYAML's constructors may still raise plain Python errors on values that pass
        # its grammar; the exception's text may quote the file, so it is not shown.
        message = f"YAML: cannot read this document ({type(exc).__name__})"
        return None, [LoadProblem((filename, 1, 1), None, message, fatal=True)]
    return data, loader.problems


def _read_events(text: str, filename: str, max_nodes: int) -> list[Any] | LoadProblem:
    """libyaml's events of the first document, read before anything is composed; or the
    first syntax error, or the first value over the depth or count limits, as the composer
    would report it, at the same place. A large file broken at its end is so answered at
    about 1 µs an event, not after composing every value before the error in Python (about
    8 µs each: 1.7 s at the value limit). Reading stops at the limits: libyaml's parser
    slows down with every open flow level (``raw_parse`` of a flow list 100,000 deep takes
    35 s), so a hostile nesting costs no more than :data:`MAX_DEPTH` levels."""
    get_event = CParser(text).get_event
    events: list[Any] = []
    depth = nodes = 0
    try:
        while (event := get_event()) is not None:
            events.append(event)
            kind = type(event)
            if kind is yaml.ScalarEvent or kind is yaml.AliasEvent or kind in _STARTS:
                nodes += 1
                if depth >= MAX_DEPTH or nodes > max_nodes:
                    message = (
                        f"nested deeper than {MAX_DEPTH} levels"
                        if depth >= MAX_DEPTH
                        else f"more than {MAX_NODES:,} values in the configuration"
                    )
                    mark = event.start_mark  # a yaml._yaml.Mark: the same fields
                    error = yaml.composer.ComposerError(None, None, message, mark)  # type: ignore[arg-type]
                    return _syntax_error(error, text, filename)
                if kind in _STARTS:
                    depth += 1
            elif kind in _ENDS:
                depth -= 1
            elif kind is yaml.DocumentEndEvent:
                # and what follows: the end of the stream, or a second document, which the
                # composer refuses
                event = get_event()
                if event is not None:
                    events.append(event)
                break
    except yaml.MarkedYAMLError as exc:
        return _syntax_error(exc, text, filename)
    except yaml.YAMLError as exc:  # the composer's answer to the same (see _compose)
        message = f"YAML: cannot read this document ({type(exc).__name__})"
        return LoadProblem((filename, 1, 1), None, message, fatal=True)
    return events


_STARTS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_ENDS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _syntax_error(exc: yaml.MarkedYAMLError, text: str, filename: str) -> LoadProblem:
    mark = exc.problem_mark or exc.context_mark
    where: Mark = (filename, mark.line + 1, mark.column + 1) if mark else (filename, 1, 1)
    message = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
    lines = text.split("\n")
    if mark and mark.line < len(lines) and lines[mark.line][mark.column : mark.column + 1] == "\t":
        message += " (a tab: indent with spaces)"
    return LoadProblem(where, None, f"YAML syntax: {message}", fatal=True)


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


# Every top-level key a configuration may have (sections and their aliases, and include).
_SECTIONS = _MERGED_SECTIONS | _LISTED_SECTIONS | {"global_defs", "virtual_server", "include"}


@dataclass
class _Reading:
    """What one load has read so far, for the limits and for includes read twice."""

    problems: list[LoadProblem]
    seen: dict[str, Mark | None] = field(default_factory=dict)  # real path -> included at
    total_bytes: int = 0
    nodes: int = 0  # values composed in all files so far


def load_file(path: str) -> tuple[Any, list[LoadProblem]]:
    """Read ``path`` and everything it includes, merged into one document.

    ``include:`` takes a glob or a list of globs relative to the including file, matched
    files read in sorted order (the conf.d convention). A pattern that matches nothing is an
    error unless it contains a wildcard (an empty conf.d is normal). Only regular files are
    read, each once (an include loop or a file included twice is an error), within
    :data:`MAX_FILES` files and :data:`MAX_TOTAL_BYTES` bytes.
    """
    reading = _Reading([])
    root = _load_one(os.path.abspath(path), path, reading, stack=())
    return root, reading.problems


def _read(abspath: str, shown: str, reading: _Reading, at: Mark | None) -> str | None:
    """The file's text, or None with a problem that never quotes the file's content."""
    where = at or (shown, 1, 1)

    def refuse(reason: str) -> None:
        reading.problems.append(LoadProblem(where, None, f"cannot read {shown}: {reason}"))

    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
        fd = os.open(abspath, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        refuse(exc.strerror or type(exc).__name__)
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            refuse("is a directory")
            return None
        if not stat.S_ISREG(st.st_mode):
            refuse("not a regular file")
            return None
        limit = min(MAX_FILE_BYTES, MAX_TOTAL_BYTES - reading.total_bytes)
        chunks: list[bytes] = []
        # too big as stat says: refused unread; else read and counted, as st_size may lie
        # (files in /proc say 0)
        size = st.st_size if st.st_size > limit else 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            if limit == MAX_FILE_BYTES:
                refuse(f"larger than the limit of {MAX_FILE_BYTES >> 20} MiB for a file")
            else:
                refuse(f"the files read reach the limit of {MAX_TOTAL_BYTES >> 20} MiB in all")
            return None
    except OSError as exc:
        refuse(exc.strerror or type(exc).__name__)
        return None
    finally:
        os.close(fd)
    reading.total_bytes += size
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        refuse(f"not UTF-8 text (byte {exc.start + 1})")
        return None


def _load_one(
    abspath: str,
    shown: str,
    reading: _Reading,
    stack: tuple[str, ...],
    at: Mark | None = None,
) -> Any:
    problems = reading.problems
    text = _read(abspath, shown, reading, at)
    if text is None:
        return None
    data, found, nodes = _parse(text, shown, MAX_NODES - reading.nodes)
    reading.nodes += nodes
    problems.extend(found)
    if data is None:
        return PosDict_empty(shown)
    if not isinstance(data, PosDict):
        if at is not None:  # an included file: said at the include, as for any other file
            message = f"{shown} is not a halo configuration (not a mapping of sections)"
            problems.append(LoadProblem(at, ("include",), message))
        else:
            message = "the configuration must be a mapping of sections"
            problems.append(LoadProblem((shown, 1, 1), None, message))
        return None
    if at is not None and data and not any(k in _SECTIONS for k in data):
        # Not a halo file (say /etc/shadow by mistake): its keys are its content, so none is
        # shown, and the file adds nothing.
        problems.append(
            LoadProblem(at, ("include",), f"{shown} is not a halo configuration (no section)")
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
    me = os.path.realpath(abspath)
    for i, pattern in enumerate(patterns):
        item_mark = includes.item_marks[i] if isinstance(includes, PosList) else inc_mark
        if not isinstance(pattern, str) or not pattern or "\0" in pattern:
            problems.append(LoadProblem(item_mark, ("include",), "must be a file name or glob"))
            continue
        full = os.path.join(base, pattern)
        matches = sorted(glob.glob(full))
        if not matches and not glob.has_magic(pattern):
            shown_pattern = pattern if len(pattern) <= 80 else f"{pattern[:79]}…"
            problems.append(LoadProblem(item_mark, ("include",), f"no such file: {shown_pattern}"))
        for match in matches:
            real = os.path.realpath(match)
            if real in stack or real == me:
                problems.append(LoadProblem(item_mark, ("include",), f"include loop via {pattern}"))
                continue
            if real in reading.seen:
                first = reading.seen[real]
                where = f" (first at {first[0]}:{first[1]})" if first else ""
                problems.append(
                    LoadProblem(item_mark, ("include",), f"{match} is already included{where}")
                )
                continue
            if len(reading.seen) >= MAX_FILES:
                problems.append(
                    LoadProblem(item_mark, ("include",), f"more than {MAX_FILES} files included")
                )
                return data
            reading.seen[real] = item_mark
            rel = os.path.relpath(match, base)
            child_shown = os.path.normpath(os.path.join(shown_base, rel))
            child = _load_one(match, child_shown, reading, (*stack, me), item_mark)
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
