"""keepalived.conf's language below the keyword level: files, comments, ``include``, the
"advanced syntax" of keepalived.conf(5) (``@id`` conditional lines, ``$NAME=value``
definitions and their substitution, ``~SEQ``/``~LST`` expansion), quoted strings and the
braces that delimit blocks.

The input is read the way keepalived 2.2.7 reads it, line by line:

1. ``#`` and ``!`` start a comment anywhere outside double quotes (``\\#`` and ``\\!`` are
   the characters themselves); leading and trailing blanks go;
2. ``include``/``includer``/``includem``/``includew``/``includeb``/``includea`` read the
   files matching a glob (with ``{a,b}`` alternatives), relative to the including file's
   directory, in sorted order;
3. a line starting ``@ID`` is kept (without ``@ID``) only when ID is the config-id, one
   starting ``@^ID`` only when it is not;
4. ``$NAME=value`` defines a parameter (a value ending in ``\\`` continues on the next
   lines), ``$NAME`` followed by a blank, ``,``, ``)`` or the end of the line and
   ``${NAME}`` anywhere are replaced by its value (recursively, at use time; undefined
   names stay as written);
5. ``~SEQ(var, start, step, end)``, ``~SEQx(...)`` and ``~LST(var, v1, v2...)`` repeat the
   rest of the line for each value.

Each resulting *logical line* is then cut at ``{`` and ``}`` outside double quotes: the
token stream the parser reads is statements (a keyword and its arguments) and braces,
each with the file and line it came from and the comments written around it.

Every failure is a :class:`ConvertError` with ``file:line: message`` lines; nothing else is
raised, whatever the input.
"""

from __future__ import annotations

import glob
import itertools
import os
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "MAX_LINES",
    "Close",
    "ConvertError",
    "Line",
    "Loc",
    "Open",
    "Preprocessor",
    "Statement",
    "Token",
    "quoted_words",
    "split_braces",
    "tokens",
    "words",
]

MAX_LINES = 200_000
"""Logical lines one conversion may produce (``~SEQ`` and definitions can multiply them)."""
MAX_LINE_LENGTH = 1 << 16
MAX_DEPTH = 64
"""Nested includes, nested expansions and substitutions per line are limited too."""
MAX_SUBSTITUTIONS = 10_000


@dataclass(frozen=True, order=True)
class Loc:
    """Where something was written: the file as the user named it, and a 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class ConvertError(Exception):
    """A keepalived.conf that cannot be converted; ``lines`` are ``file:line: message``."""

    def __init__(self, problems: list[tuple[Loc | None, str]]) -> None:
        self.problems = sorted(problems, key=lambda p: (p[0] or Loc("", 0), p[1]))
        super().__init__("\n".join(self.lines))

    @classmethod
    def at(cls, loc: Loc | None, message: str) -> ConvertError:
        return cls([(loc, message)])

    @property
    def lines(self) -> list[str]:
        return [
            f"{loc}: {msg}" if loc is not None else f"halo convert: {msg}"
            for loc, msg in self.problems
        ]


@dataclass
class Line:
    """One logical line after preprocessing, with the comments that belong to it."""

    text: str
    loc: Loc
    comments: list[str] = field(default_factory=list)
    trailing: str | None = None


# ------------------------------------------------------------------------------ characters


def decomment(raw: str, loc: Loc) -> tuple[str, str | None]:
    """``(code, comment)`` of one physical line (keepalived's rules, see the module doc).

    A ``\\`` ending the code is kept (it continues a definition); the comment comes back
    without its ``#``/``!`` marks.
    """
    s = raw.lstrip(" \t")
    out: list[str] = []
    quote = False
    cont = False
    comment: str | None = None
    i = 0
    while i < len(s):
        c = s[i]
        if c == '"':
            quote = not quote
        elif c == "\\":
            if i + 1 == len(s):
                cont = True
                break
            nxt = s[i + 1]
            if not quote and nxt in "#!":
                out.append(nxt)
            else:
                out += (c, nxt)
            i += 2
            continue
        elif not quote and c in "#!":
            comment = s[i:].lstrip("#!").strip()
            break
        out.append(c)
        i += 1
    if quote:
        raise ConvertError.at(loc, 'unterminated quoted string (a " without its closing ")')
    code = "".join(out).rstrip(" \t")
    if cont:
        code += "\\"
    return code, comment


def split_braces(text: str) -> list[str]:
    """Cut a logical line at ``{`` and ``}`` outside double quotes; braces are their own
    pieces, the other pieces are stripped and never empty."""
    pieces: list[str] = []
    cur: list[str] = []
    quote = False

    def flush() -> None:
        piece = "".join(cur).strip(" \t")
        if piece:
            pieces.append(piece)
        cur.clear()

    for c in text:
        if c == '"':
            quote = not quote
            cur.append(c)
        elif not quote and c in "{}":
            flush()
            pieces.append(c)
        else:
            cur.append(c)
    flush()
    return pieces


_BLANK = " \t\r\n\v\f"


def words(text: str) -> list[str]:
    """The words of a statement as keepalived splits most keywords: blanks separate, a
    double-quoted string is one word without its quotes (single quotes and backslashes
    are ordinary characters)."""
    out: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _BLANK:
            i += 1
        if i >= n:
            return out
        if text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:  # decomment() rejects these; keep going for direct callers
                end = n
            out.append(text[i + 1 : end])
            i = end + 1
        else:
            j = i
            while j < n and text[j] not in _BLANK and text[j] != '"':
                j += 1
            out.append(text[i:j])
            i = j


_ESCAPES = {"a": "\a", "b": "\b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPES["v"] = "\v"


def quoted_words(text: str) -> list[str] | None:
    """The words as keepalived splits scripts and their arguments: ``"…"`` and ``'…'``
    group (and may join a word: ``a"b c"`` is ``ab c``), backslash escapes like the
    shell's plus ``\\n``, ``\\t``, ``\\xHH``, ``\\NNN`` octal and ``\\cC``. None when a
    quote is not closed or the text ends in a lone backslash."""
    out: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _BLANK:
            i += 1
        if i >= n:
            return out
        word: list[str] = []
        quote = ""
        while i < n:
            c = text[i]
            if c == "\\":
                i += 1
                if i >= n:
                    return None
                c = text[i]
                if c == "x" and i + 1 < n and text[i + 1] in "0123456789abcdefABCDEF":
                    j = i + 1
                    while j < n and text[j] in "0123456789abcdefABCDEF":
                        j += 1
                    word.append(chr(int(text[i + 1 : j], 16) & 0xFF))
                    i = j
                elif c == "c" and i + 1 < n:
                    word.append(chr(ord(text[i + 1]) & 0x1F))
                    i += 2
                elif "0" <= c <= "7":
                    j = i
                    while j < n and j < i + 3 and "0" <= text[j] <= "7":
                        j += 1
                    word.append(chr(int(text[i:j], 8) & 0xFF))
                    i = j
                else:
                    word.append(_ESCAPES.get(c, c))
                    i += 1
                continue
            if quote:
                if c == quote:
                    quote = ""
                else:
                    word.append(c)
                i += 1
                continue
            if c in "\"'":
                quote = c
                i += 1
                continue
            if c in _BLANK:
                break
            word.append(c)
            i += 1
        if quote:
            return None
        out.append("".join(word))


# ------------------------------------------------------------------------------ braces {a,b}


def expand_braces(pattern: str) -> list[str]:
    """csh-style alternatives, as keepalived's include accepts: ``a{b,c{d,e}}f`` gives
    ``abf``, ``acdf``, ``acef``. A brace group without a comma is literal."""
    depth = 0
    start = -1
    commas: list[int] = []
    for i, c in enumerate(pattern):
        if c == "{":
            if depth == 0:
                start, commas = i, []
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if depth == 0:
                if not commas:
                    # literal: expand what follows it, keep this group as written
                    return [pattern[: i + 1] + rest for rest in expand_braces(pattern[i + 1 :])]
                head, tail = pattern[:start], pattern[i + 1 :]
                bounds = [start, *commas, i]
                out: list[str] = []
                for a, b in itertools.pairwise(bounds):
                    out += expand_braces(head + pattern[a + 1 : b] + tail)
                return out
        elif c == "," and depth == 1:
            commas.append(i)
    return [pattern]


# ------------------------------------------------------------------------------ the reader


@dataclass
class _Definition:
    lines: list[str]  # one item unless multiline
    multiline: bool = False
    builtin: Callable[[str], str] | None = None  # _PWD, _RANDOM...: computed at each use
    takes_params: bool = False


_DEF_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)=")
_REF_RE = re.compile(
    r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)((?: [0-9 ]*[0-9])?)\}|([A-Za-z_][A-Za-z0-9_]*))"
)
_SEQ_RE = re.compile(r"~SEQ(x?)[ \t]*\(([^)]*)\)[ \t]*(.*)\Z", re.S)
_INCLUDE_RE = re.compile(r"include([rmwba]?)[ \t]+(.*)\Z", re.S)


class Preprocessor:
    """Turns a keepalived.conf and what it includes into logical :class:`Line` s.

    ``config_id`` is what ``@ID`` lines are compared with (keepalived's ``-i``; keepalived
    defaults to the host name's first part, and so does ``halo convert``). ``notes`` get
    remarks worth telling the user (an include matching nothing, ``${_RANDOM}`` used...).
    """

    def __init__(self, config_id: str | None, *, random_seed: int = 0) -> None:
        self.config_id = config_id
        self.lines: list[Line] = []
        self.notes: list[tuple[Loc, str, str]] = []  # (where, keyword, message)
        self.used_conditionals = False
        self._defs: dict[str, _Definition] = {}
        self._pending: list[str] = []  # comment lines waiting for the next statement
        self._rng = random.Random(random_seed)
        self._dir = "."
        self._main = ""
        self._random_noted = False
        self._define_builtins()

    # -- entry points -------------------------------------------------------------------

    def read_file(self, path: str) -> list[Line]:
        self._main = path
        self._include_file(os.path.abspath(path), path, (), None)
        return self.lines

    def read_text(
        self, text: str, name: str = "keepalived.conf", directory: str = "."
    ) -> list[Line]:
        self._main = name
        self._file(text, name, os.path.abspath(directory), (os.path.abspath(name),))
        return self.lines

    # -- files --------------------------------------------------------------------------

    def _include_file(
        self, abspath: str, shown: str, stack: tuple[str, ...], at: Loc | None
    ) -> None:
        real = os.path.realpath(abspath)
        if real in stack:
            raise ConvertError.at(at, f"include loop: {shown} includes itself")
        if len(stack) >= MAX_DEPTH:
            raise ConvertError.at(at, f"includes nested more than {MAX_DEPTH} deep")
        try:
            with open(abspath, "rb") as fh:
                data = fh.read(64 << 20)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConvertError.at(at, f"cannot read {shown}: {reason}") from None
        text = data.decode("utf-8", errors="replace")
        self._file(text, shown, os.path.dirname(abspath), (*stack, real))

    def _file(self, text: str, shown: str, directory: str, stack: tuple[str, ...]) -> None:
        outer_dir, self._dir = self._dir, directory
        multiline: _Definition | None = None
        for lineno, raw in enumerate(text.split("\n"), 1):
            loc = Loc(shown, lineno)
            raw = raw.rstrip("\r")
            if len(raw) > MAX_LINE_LENGTH:
                raise ConvertError.at(loc, f"line longer than {MAX_LINE_LENGTH} characters")
            if multiline is not None:
                if not raw.strip(" \t"):
                    multiline = None  # a blank line ends a multi-line definition
                    continue
                code, _ = decomment(raw, loc)
                if code.endswith("\\"):
                    piece = code[:-1].rstrip(" \t")
                    if piece:
                        multiline.lines.append(piece)
                else:
                    if code:
                        multiline.lines.append(code)
                    multiline = None
                continue
            if not raw.strip(" \t"):
                continue
            code, comment = decomment(raw, loc)
            if not code:
                if comment is not None:
                    self._pending.append(comment)
                continue
            multiline = self._logical(code, loc, comment, stack, 0)
        self._dir = outer_dir

    # -- one logical line ---------------------------------------------------------------

    def _logical(
        self, text: str, loc: Loc, comment: str | None, stack: tuple[str, ...], depth: int
    ) -> _Definition | None:
        """Process one line; returns the definition it opened if that continues on the
        next physical lines."""
        if depth > MAX_DEPTH:
            raise ConvertError.at(loc, "parameter expansion nested too deep")
        extra: list[str] = []  # further lines of a multi-line definition used here
        for _ in range(MAX_SUBSTITUTIONS):
            if text.startswith("@"):
                negate = text.startswith("@^")
                body = text[2:] if negate else text[1:]
                m = re.match(r"(\S*)[ \t]+", body)
                self.used_conditionals = True
                if m is None:
                    return None  # nothing after the id: keepalived drops the line
                wanted = self.config_id is not None and m.group(1) == self.config_id
                if wanted == negate:
                    return None
                text = body[m.end() :]
                if not text:
                    return None
                continue
            if text.startswith("$"):
                m = _DEF_RE.match(text)
                if m is not None:
                    return self._define(m.group(1), text[m.end() :])
            if text.startswith(("~SEQ", "~LST")):
                self._expand_sequence(text, loc, comment, stack, depth)
                return None
            if "$" in text and self._defs:
                changed, text, more = self._substitute(text, loc)
                extra = more + extra
                if changed:
                    if not text.strip(" \t"):
                        break
                    text = text.strip(" \t")
                    continue
            break
        else:
            raise ConvertError.at(loc, "parameter substitution does not terminate")
        self._emit(text, loc, comment, stack)
        for more_text in extra:
            opened = self._logical(more_text.strip(" \t"), loc, None, stack, depth + 1)
            if opened is not None:
                opened.multiline = False  # a definition inside a value ends with its line
        return None

    def _emit(self, text: str, loc: Loc, comment: str | None, stack: tuple[str, ...]) -> None:
        if not text:
            return
        m = _INCLUDE_RE.match(text)
        if m is not None:
            where = f"line {loc.line}" if loc.file == self._main else str(loc)
            said = f"{text} ({where})" + (f": {comment}" if comment else "")
            self._pending.append(said)  # goes to the first statement read from there
            self._include(m.group(1), m.group(2).strip(" \t"), loc, stack)
            return
        if len(self.lines) >= MAX_LINES:
            raise ConvertError.at(loc, f"the configuration expands to more than {MAX_LINES} lines")
        if len(text) > MAX_LINE_LENGTH:
            raise ConvertError.at(loc, f"line longer than {MAX_LINE_LENGTH} characters")
        self.lines.append(Line(text, loc, self._pending, comment))
        self._pending = []

    # -- include ------------------------------------------------------------------------

    def _include(self, variant: str, pattern: str, loc: Loc, stack: tuple[str, ...]) -> None:
        if not pattern:
            raise ConvertError.at(loc, "include needs a file name or pattern")
        checks = {"": "", "r": "r", "m": "rm", "w": "rmw", "b": "rb", "a": "rmwb"}[variant]
        base = self._dir
        shown_base = os.path.dirname(loc.file)
        for alternative in expand_braces(pattern):
            full = os.path.join(base, alternative)
            matches = sorted(glob.glob(full))
            if not matches:
                wildcard = glob.has_magic(alternative)
                if not wildcard or "w" in checks:
                    what = "matches no file" if wildcard else "no such file"
                    raise ConvertError.at(loc, f"include {alternative}: {what}")
                self.notes.append((loc, "include", f"{alternative} matches no file"))
                continue
            for match in matches:
                if not os.path.isfile(match):  # a directory, a FIFO, a device...
                    if "r" in checks:
                        raise ConvertError.at(loc, f"include {match}: not a regular file")
                    self.notes.append((loc, "include", f"{match} is not a regular file: skipped"))
                    continue
                if os.path.isabs(alternative):
                    shown = match
                else:
                    rel = os.path.relpath(match, base)
                    shown = os.path.normpath(os.path.join(shown_base, rel))
                self._include_file(match, shown, stack, loc)

    # -- definitions --------------------------------------------------------------------

    def _define_builtins(self) -> None:
        self._defs["_PWD"] = _Definition([], builtin=lambda _: self._dir)
        self._defs["_INSTANCE"] = _Definition([], builtin=lambda _: self.config_id or "")
        self._defs["_RANDOM"] = _Definition([], builtin=self._random, takes_params=True)
        self._defs["_HASH"] = _Definition(["#"])
        self._defs["_BANG"] = _Definition(["!"])

    def _random(self, params: str) -> str:
        nums = [int(p) for p in params.split()]
        low = nums[0] if nums else 0
        high = nums[1] if len(nums) > 1 else 32767
        if high < low:
            low, high = high, low
        return str(self._rng.randint(low, high))

    def _define(self, name: str, value: str) -> _Definition | None:
        value = value.strip(" \t")
        if value.endswith("\\"):
            first = value[:-1].rstrip(" \t")
            d = _Definition([first] if first else [], multiline=True)
            self._defs[name] = d
            return d
        self._defs[name] = _Definition([value])
        return None

    def _substitute(self, text: str, loc: Loc) -> tuple[bool, str, list[str]]:
        """Replace known parameters, left to right, rescanning what was put in (keepalived
        substitutes recursively). Returns (changed, text, further lines)."""
        changed = False
        extra: list[str] = []
        pos = 0
        for _ in range(MAX_SUBSTITUTIONS):
            m = _REF_RE.search(text, pos)
            if m is None:
                return changed, text, extra
            braced, params, bare = m.group(1), m.group(2), m.group(3)
            name = braced or bare
            d = self._defs.get(name)
            end = m.end()
            ok = d is not None
            if ok and bare is not None and end < len(text) and text[end] not in " \t,)":
                ok = False  # $NAME must be followed by a blank, ',', ')' or the end
            if ok and params and not (d and d.takes_params):
                ok = False
            if ok and d is not None and d.multiline and end != len(text):
                ok = False  # a multi-line value only replaces a reference ending the line
            if not ok or d is None:
                pos = m.start() + 1
                continue
            changed = True
            if d.builtin is not None:
                if name == "_RANDOM" and not self._random_noted:
                    self._random_noted = True
                    self.notes.append(
                        (loc, "${_RANDOM}", "replaced by a fixed pseudo-random number")
                    )
                value = d.builtin(params or "")
                rest: list[str] = []
            else:
                value = d.lines[0] if d.lines else ""
                rest = list(d.lines[1:])
            text = text[: m.start()] + value + text[end:]
            if len(text) > MAX_LINE_LENGTH:
                raise ConvertError.at(loc, "parameter substitution makes the line too long")
            extra = rest + extra
            pos = m.start()
            if value.lstrip(" \t").startswith("~"):
                return changed, text, extra
        raise ConvertError.at(loc, "parameter substitution does not terminate")

    # -- ~SEQ / ~LST --------------------------------------------------------------------

    def _expand_sequence(
        self, text: str, loc: Loc, comment: str | None, stack: tuple[str, ...], depth: int
    ) -> None:
        if text.startswith("~SEQ"):
            var, values, rest = self._parse_seq(text, loc)
            sets = [[(var, v)] for v in values]
        else:
            sets, rest = self._parse_lst(text, loc)
        if len(self.lines) + len(sets) > MAX_LINES:
            raise ConvertError.at(loc, f"the configuration expands to more than {MAX_LINES} lines")
        for assignment in sets:
            for name, value in assignment:
                self._defs[name] = _Definition([value])
            if rest:
                opened = self._logical(rest, loc, comment, stack, depth + 1)
                if opened is not None:
                    opened.multiline = False  # nothing follows a generated line
            comment = None  # the comment goes with the first expansion only

    def _parse_seq(self, text: str, loc: Loc) -> tuple[str, list[str], str]:
        m = _SEQ_RE.match(text)
        bad = f"invalid ~SEQ specification {text.split(')')[0]})"
        if m is None:
            raise ConvertError.at(loc, bad)
        hexa, spec, rest = m.group(1) == "x", m.group(2), m.group(3).strip(" \t")
        parts = [p.strip(" \t") for p in spec.split(",")]
        var = parts[0]
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var) or not 2 <= len(parts) <= 4:
            raise ConvertError.at(loc, bad)
        nums: list[int] = []
        for p in parts[1:]:
            if "$" in p:
                _, p, _ = self._substitute(p, loc)
            try:
                nums.append(int(p, 0) if not re.fullmatch(r"[+-]?0[0-7]+", p) else int(p, 8))
            except ValueError:
                raise ConvertError.at(loc, f"{bad}: {p!r} is not a number") from None
        if len(nums) == 1:
            end = nums[0]
            start, step = (-1 if end < 0 else 1), (-1 if end < 1 else 1)
        elif len(nums) == 2:
            start, end = nums
            step = 1 if start <= end else -1
        else:
            start, step, end = nums
            if step == 0 or (start < end and step < 0) or (start > end and step > 0):
                raise ConvertError.at(loc, f"{bad}: the step never reaches the end")
        if hexa and (start < 0 or end < 0):
            raise ConvertError.at(loc, "~SEQx takes positive numbers only")
        count = (end - start) // step + 1 if (end - start) * step >= 0 else 0
        if count > MAX_LINES:
            raise ConvertError.at(loc, f"{bad}: more than {MAX_LINES} values")
        values = [format(start + i * step, "x" if hexa else "d") for i in range(max(count, 0))]
        return var, values, rest

    def _parse_lst(self, text: str, loc: Loc) -> tuple[list[list[tuple[str, str]]], str]:
        bad = "invalid ~LST specification"
        body = text[4:].lstrip(" \t")
        if not body.startswith("("):
            raise ConvertError.at(loc, bad)
        close = _matching_paren(body)
        if close < 0:
            raise ConvertError.at(loc, f"{bad}: no closing ')'")
        inner, rest = body[1:close], body[close + 1 :].strip(" \t")
        groups = _split_top(inner)
        if len(groups) < 2:
            raise ConvertError.at(loc, f"{bad}: needs variables and at least one value")
        names = _unbrace(groups[0])
        if not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names):
            raise ConvertError.at(loc, f"{bad}: bad variable name")
        sets: list[list[tuple[str, str]]] = []
        for g in groups[1:]:
            vals = _unbrace(g)
            if len(vals) > len(names):
                raise ConvertError.at(loc, f"{bad}: more values than variables in {g.strip()}")
            vals += [""] * (len(names) - len(vals))
            sets.append(list(zip(names, vals, strict=True)))
        return sets, rest


def _matching_paren(text: str) -> int:
    depth = 0
    for i, c in enumerate(text):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _split_top(text: str) -> list[str]:
    """Split at commas outside ``{…}``."""
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    for c in text:
        if c == "{":
            depth += 1
        elif c == "}":
            depth = max(depth - 1, 0)
        if c == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    out.append("".join(cur))
    return out


def _unbrace(group: str) -> list[str]:
    g = group.strip(" \t")
    if g.startswith("{") and g.endswith("}"):
        return [v.strip(" \t") for v in g[1:-1].split(",")]
    return [g]


# ------------------------------------------------------------------------------ tokens


@dataclass
class Statement:
    """A keyword with its arguments. ``text`` is as written (for keywords that re-split
    their arguments, like scripts); ``words`` is keepalived's usual split."""

    text: str
    words: list[str]
    loc: Loc
    comments: list[str] = field(default_factory=list)
    trailing: str | None = None


@dataclass
class Open:
    loc: Loc
    comments: list[str] = field(default_factory=list)
    trailing: str | None = None


@dataclass
class Close:
    loc: Loc
    comments: list[str] = field(default_factory=list)
    trailing: str | None = None


Token = Statement | Open | Close


def tokens(lines: list[Line]) -> Iterator[Token]:
    """Statements and braces, in order. A line's comments go with its first token, its
    trailing comment with its first statement (else its first token)."""
    for line in lines:
        made: list[Token] = []
        for piece in split_braces(line.text):
            if piece == "{":
                made.append(Open(line.loc))
            elif piece == "}":
                made.append(Close(line.loc))
            else:
                w = words(piece)
                if w:
                    made.append(Statement(piece, w, line.loc))
        if not made:
            continue
        made[0].comments = line.comments
        if line.trailing is not None:
            first_stmt = next((t for t in made if isinstance(t, Statement)), made[0])
            first_stmt.trailing = line.trailing
        yield from made
