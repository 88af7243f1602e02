"""A small YAML document model and its writer.

``halo convert`` writes YAML by hand rather than with a YAML library's dumper so that the
output keeps the order of the keepalived.conf it comes from, carries its comments, and says
in place what was left out. Mappings (:class:`YMap`) and sequences (:class:`YSeq`) hold
entries that remember the keepalived line they came from (for error messages), the comment
lines written before them and a trailing comment; an entry may also be a comment alone.

Strings are written plain when that reads back as the same string, else double-quoted with
YAML escapes; the writer never produces anything PyYAML would read differently.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import yaml

from halo_tool_convert.lexer import Loc

__all__ = ["Entry", "Scalar", "Value", "YMap", "YSeq", "dump", "scalar", "to_data"]

Scalar: TypeAlias = str | int | float | bool | None
Value: TypeAlias = "Scalar | YMap | YSeq"


@dataclass
class Entry:
    """A key and value (in a :class:`YMap`), an item (in a :class:`YSeq`), or comment lines
    only (``comment_only``)."""

    key: str | None
    value: Value
    loc: Loc | None = None
    comments: list[str] = field(default_factory=list)
    trailing: str | None = None
    comment_only: bool = False


class YMap:
    """An ordered mapping whose entries keep their comments and origin."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def __repr__(self) -> str:
        return f"YMap({[e.key for e in self.entries if not e.comment_only]})"

    def _find(self, key: str) -> Entry | None:
        for e in self.entries:
            if not e.comment_only and e.key == key:
                return e
        return None

    def __contains__(self, key: str) -> bool:
        return self._find(key) is not None

    def keys(self) -> list[str]:
        return [e.key for e in self.entries if not e.comment_only and e.key is not None]

    def get(self, key: str) -> Value:
        e = self._find(key)
        return None if e is None else e.value

    def entry(self, key: str) -> Entry | None:
        return self._find(key)

    def set(
        self,
        key: str,
        value: Value,
        *,
        loc: Loc | None = None,
        comments: list[str] | None = None,
        trailing: str | None = None,
    ) -> Entry:
        """Set ``key``; a key already there keeps its place (keepalived: the last value
        given wins) and gathers the comments."""
        e = self._find(key)
        if e is None:
            e = Entry(key, value, loc, list(comments or []), trailing)
            self.entries.append(e)
            return e
        e.value = value
        e.loc = loc or e.loc
        e.comments += comments or []
        if trailing is not None:
            e.trailing = trailing
        return e

    def child_map(self, key: str, *, loc: Loc | None = None) -> YMap:
        v = self.get(key)
        if isinstance(v, YMap):
            return v
        m = YMap()
        self.set(key, m, loc=loc)
        return m

    def child_seq(self, key: str, *, loc: Loc | None = None, flow: bool = False) -> YSeq:
        v = self.get(key)
        if isinstance(v, YSeq):
            return v
        s = YSeq(flow=flow)
        self.set(key, s, loc=loc)
        return s

    def remove(self, key: str, *, why: str | None = None) -> Entry | None:
        """Take ``key`` out; its comments, and ``why`` if given, stay where it was."""
        e = self._find(key)
        if e is None:
            return None
        i = self.entries.index(e)
        self.entries.pop(i)
        lines = list(e.comments) + ([e.trailing] if e.trailing else [])
        if why:
            lines.append(why)
        if lines:
            self.entries.insert(i, Entry(None, None, comments=lines, comment_only=True))
        return e

    def comment(self, *lines: str) -> Entry | None:
        if not lines:
            return None
        e = Entry(None, None, comments=list(lines), comment_only=True)
        self.entries.append(e)
        return e

    def move_to_front(self, key: str) -> None:
        e = self._find(key)
        if e is not None:
            self.entries.remove(e)
            self.entries.insert(0, e)

    def is_empty(self) -> bool:
        return not any(not e.comment_only for e in self.entries)


class YSeq:
    """An ordered sequence whose items keep their comments and origin. ``flow`` writes a
    sequence of scalars on one line, ``[a, b]``."""

    def __init__(self, *, flow: bool = False) -> None:
        self.items: list[Entry] = []
        self.flow = flow

    def __repr__(self) -> str:
        return f"YSeq({self.values()})"

    def append(
        self,
        value: Value,
        *,
        loc: Loc | None = None,
        comments: list[str] | None = None,
        trailing: str | None = None,
    ) -> Entry:
        e = Entry(None, value, loc, list(comments or []), trailing)
        self.items.append(e)
        return e

    def comment(self, *lines: str) -> None:
        if lines:
            self.items.append(Entry(None, None, comments=list(lines), comment_only=True))

    def values(self) -> list[Value]:
        return [e.value for e in self.items if not e.comment_only]

    def entries(self) -> list[Entry]:
        return [e for e in self.items if not e.comment_only]

    def is_empty(self) -> bool:
        return not self.entries()


# ------------------------------------------------------------------------------ scalars

_PLAIN = re.compile(r"[A-Za-z0-9_./$+(][A-Za-z0-9_./$+()@:=<>~^!?%&*'\" -]*")
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def _plain_ok(s: str) -> bool:
    if not _PLAIN.fullmatch(s) or s != s.strip(" ") or s.endswith(":"):
        return False
    if ": " in s or " #" in s:
        return False
    try:
        back = yaml.safe_load(s)
    except yaml.YAMLError:
        return False
    return isinstance(back, str) and back == s


def _quote(s: str) -> str:
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif 0x20 <= o < 0x7F:
            out.append(c)
        elif c == "\t":
            out.append("\\t")
        elif c == "\n":
            out.append("\\n")
        elif o < 0x100 and (o < 0xA0 or o == 0xAD):
            out.append(f"\\x{o:02x}")
        elif _NON_PRINTABLE.match(c) is None and not 0x2028 <= o <= 0x2029 and o != 0xFEFF:
            out.append(c)
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def _float(x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        return _quote(str(x))
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    s = repr(x)
    if "e" in s or "E" in s:
        s = f"{x:.12f}".rstrip("0").rstrip(".")
    return s


def scalar(v: Scalar) -> str:
    """One scalar as YAML text."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _float(v)
    return v if _plain_ok(v) else _quote(v)


WIDTH = 99


def _comment_lines(comments: list[str], indent: int) -> Iterator[str]:
    """``# text`` lines, wrapped to stay within :data:`WIDTH` columns where words allow."""
    pad = " " * indent
    width = max(WIDTH - indent - 2, 40)
    for c in comments:
        for ln in str(c).splitlines() or [""]:
            clean = _NON_PRINTABLE.sub("?", ln).rstrip()
            if not clean:
                yield f"{pad}#"
                continue
            lead = clean[: len(clean) - len(clean.lstrip())]
            parts = (
                textwrap.wrap(
                    clean,
                    width,
                    initial_indent="",
                    subsequent_indent=lead + "  ",
                    break_long_words=False,
                    break_on_hyphens=False,
                    drop_whitespace=True,
                )
                if len(clean) > width
                else [clean]
            )
            for part in parts or [clean]:
                yield f"{pad}# {part}".rstrip()


def _trail(t: str | None) -> str:
    if not t:
        return ""
    clean = _NON_PRINTABLE.sub("?", " ".join(t.splitlines())).strip()
    return f"  # {clean}" if clean else ""


def _is_scalar(v: Value) -> bool:
    return not isinstance(v, YMap | YSeq)


# ------------------------------------------------------------------------------ writer


def dump(doc: YMap, header: list[str] | None = None) -> str:
    out: list[str] = list(_comment_lines(header or [], 0))
    if out:
        out.append("")
    _map(doc, 0, out)
    return "\n".join(out) + "\n"


def _map(m: YMap, indent: int, out: list[str]) -> None:
    for e in m.entries:
        out.extend(_comment_lines(e.comments, indent))
        if e.comment_only:
            continue
        head = " " * indent + scalar(e.key) + ":"
        _value(head, e.value, indent, out, e.trailing)


def _value(head: str, v: Value, indent: int, out: list[str], trailing: str | None) -> None:
    if isinstance(v, YMap):
        if v.is_empty():
            out.append(head + " {}" + _trail(trailing))
            out.extend(ln for e in v.entries for ln in _comment_lines(e.comments, indent + 2))
        else:
            out.append(head + _trail(trailing))
            _map(v, indent + 2, out)
    elif isinstance(v, YSeq):
        vals = v.values()
        if not vals:
            out.append(head + " []" + _trail(trailing))
            out.extend(ln for e in v.items for ln in _comment_lines(e.comments, indent + 2))
        elif (
            v.flow
            and all(_is_scalar(x) for x in vals)
            and not any(e.comments or e.trailing for e in v.items)
        ):
            text = ", ".join(scalar(x) for x in vals)  # type: ignore[arg-type]
            out.append(f"{head} [{text}]" + _trail(trailing))
        else:
            out.append(head + _trail(trailing))
            _seq(v, indent + 2, out)
    else:
        out.append(f"{head} {scalar(v)}" + _trail(trailing))


def _seq(s: YSeq, indent: int, out: list[str]) -> None:
    pad = " " * indent
    for e in s.items:
        out.extend(_comment_lines(e.comments, indent))
        if e.comment_only:
            continue
        v = e.value
        if isinstance(v, YMap) and not v.is_empty():
            sub: list[str] = []
            _map(v, indent + 2, sub)
            first = next(i for i, ln in enumerate(sub) if not ln.lstrip().startswith("#"))
            out.extend(sub[:first])
            out.append(pad + "- " + sub[first][indent + 2 :] + _trail(e.trailing))
            out.extend(sub[first + 1 :])
        elif isinstance(v, YSeq):
            inner: list[str] = []
            _value(pad + "-", v, indent, inner, e.trailing)
            out.extend(inner)
        elif isinstance(v, YMap):
            out.append(pad + "- {}" + _trail(e.trailing))
        else:
            out.append(f"{pad}- {scalar(v)}" + _trail(e.trailing))


# ------------------------------------------------------------------------------ data


def to_data(v: Value, path: tuple[str | int, ...] = (), locs: dict[Any, Loc] | None = None) -> Any:
    """The plain Python value (dicts, lists, scalars); ``locs`` gets each path's origin."""
    if isinstance(v, YMap):
        out: dict[str, Any] = {}
        for e in v.entries:
            if e.comment_only or e.key is None:
                continue
            sub = (*path, e.key)
            if locs is not None and e.loc is not None:
                locs[sub] = e.loc
            out[e.key] = to_data(e.value, sub, locs)
        return out
    if isinstance(v, YSeq):
        items: list[Any] = []
        for e in v.entries():
            sub2 = (*path, len(items))
            if locs is not None and e.loc is not None:
                locs[sub2] = e.loc
            items.append(to_data(e.value, sub2, locs))
        return items
    return v
