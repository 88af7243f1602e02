"""keepalived.conf's block structure: statements and ``{ … }`` blocks → a tree of
:class:`Node` s.

Which keywords take a block is the keyword tables' business (:mod:`.mapping`); here a
statement directly followed by ``{`` owns the block, whatever its keyword. Braces must
balance: a ``}`` with no open block, a ``{`` that follows no statement, and a block still
open at the end of the input are errors at the line concerned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from halo_tool_convert.lexer import (
    Close,
    ConvertError,
    Line,
    Loc,
    Open,
    Preprocessor,
    Statement,
    Token,
    quoted_words,
    tokens,
)

__all__ = ["Node", "Parsed", "parse_file", "parse_lines", "parse_text"]


@dataclass
class Node:
    """One statement: ``keyword`` and ``args`` (keepalived's usual word split), the
    statement's ``text`` as written, where it was, its comments, and its block if it has
    one (``block`` is None for a plain statement)."""

    keyword: str
    args: list[str]
    text: str
    loc: Loc
    comments: list[str] = field(default_factory=list)
    trailing: str | None = None
    block: list[Node] | None = None
    end_comments: list[str] = field(default_factory=list)  # comments before its "}"

    @property
    def has_block(self) -> bool:
        return self.block is not None

    @property
    def children(self) -> list[Node]:
        return self.block or []

    @property
    def line(self) -> str:
        """The statement as keepalived.conf would show it (for messages and comments)."""
        return " ".join([self.keyword, *self.args])

    def quoted_args(self) -> list[str] | None:
        """The arguments split like keepalived splits scripts (quotes and escapes)."""
        qw = quoted_words(self.text)
        return None if qw is None else qw[1:]


@dataclass
class Parsed:
    """The top-level statements and what the reader noticed on the way."""

    nodes: list[Node]
    notes: list[tuple[Loc, str, str]]  # (where, keyword, message)
    used_conditionals: bool = False
    end_comments: list[str] = field(default_factory=list)


def parse_file(path: str, config_id: str | None = None) -> Parsed:
    pre = Preprocessor(config_id)
    lines = pre.read_file(path)
    return _finish(lines, pre)


def parse_text(
    text: str, name: str = "keepalived.conf", config_id: str | None = None, directory: str = "."
) -> Parsed:
    pre = Preprocessor(config_id)
    lines = pre.read_text(text, name, directory)
    return _finish(lines, pre)


def _finish(lines: list[Line], pre: Preprocessor) -> Parsed:
    nodes, end_comments = parse_lines(lines)
    # comments after the last statement
    end_comments += pre._pending
    return Parsed(nodes, pre.notes, pre.used_conditionals, end_comments)


def parse_lines(lines: list[Line]) -> tuple[list[Node], list[str]]:
    """Build the tree; returns the top-level nodes and comments left at the very end."""
    return build(tokens(lines))


def build(stream: Iterable[Token]) -> tuple[list[Node], list[str]]:
    root: list[Node] = []
    stack: list[Node] = []  # nodes whose block is open
    current = root
    last: Node | None = None  # the statement just read, which a "{" would belong to
    root_end: list[str] = []
    for tok in stream:
        if isinstance(tok, Statement):
            node = Node(tok.words[0], tok.words[1:], tok.text, tok.loc, tok.comments, tok.trailing)
            current.append(node)
            last = node
        elif isinstance(tok, Open):
            if last is None or last.block is not None:
                raise ConvertError.at(tok.loc, "unexpected '{' (it follows no keyword)")
            last.block = []
            last.comments += tok.comments
            if tok.trailing is not None and last.trailing is None:
                last.trailing = tok.trailing
            stack.append(last)
            current = last.block
            last = None
        elif isinstance(tok, Close):
            if not stack:
                raise ConvertError.at(tok.loc, "unexpected '}' (no block is open)")
            closed = stack.pop()
            closed.end_comments += tok.comments
            if tok.trailing is not None:
                closed.end_comments.append(tok.trailing)
            current = stack[-1].block if stack and stack[-1].block is not None else root
            last = None
    if stack:
        opened = stack[0]
        raise ConvertError.at(
            opened.loc,
            f"'{{' of {opened.line!r} is never closed (a '}}' is missing"
            + (f"; the innermost open block is at {stack[-1].loc}" if len(stack) > 1 else "")
            + ")",
        )
    return root, root_end
