"""Declarative config schemas: typed dataclasses in, validated objects and JSON Schema out.

Every piece of halo configuration, the core's and each plugin's, is described by a frozen
dataclass whose field annotations say what is accepted::

    @dataclass(frozen=True, kw_only=True)
    class TcpCheck(CheckerConfig):
        connect_ip: Annotated[IPAddress | None, Doc("address to connect to")] = None
        connect_port: Annotated[int, Range(1, 65535), Doc("TCP port")]

:func:`validate` turns parsed YAML into instances of such classes and reports *every*
problem at once as :class:`Problem` objects carrying the dotted path of the offending
value; :func:`json_schema` renders the same classes as JSON Schema for editors. Both live in
:mod:`halo_core.validation`: the VRRP process imports this module for the markers of the
model it is handed and never validates.

Why not pydantic: measured here, importing it costs 13 MB of RSS, a third of a node's memory
budget; the subset of behaviour halo needs (strict types, unknown keys rejected, all errors
reported with their path, JSON Schema) fits in this module.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

Path = tuple[str | int, ...]
T = TypeVar("T")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


# --------------------------------------------------------------------------- metadata markers


@dataclass(frozen=True)
class Doc:
    """Human description of a field; shown in JSON Schema and generated docs."""

    text: str


@dataclass(frozen=True)
class Range:
    """Inclusive numeric bounds."""

    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Length:
    """Bounds on the length of a string or list."""

    min: int | None = None
    max: int | None = None


@dataclass(frozen=True)
class Pattern:
    """A regular expression a string must match in full."""

    regex: str
    message: str | None = None


@dataclass(frozen=True)
class Keys:
    """The pattern every key of a mapping must match in full (the names of named sections);
    the error is ``name 'KEY' MESSAGE`` at the key."""

    pattern: Pattern


@dataclass(frozen=True)
class Command:
    """Marks a string run as a command, split into words with shell-like quoting and no
    shell (keepalived's way): a quote left open is found by ``halo check``, not when the
    command is due to run."""


@dataclass(frozen=True)
class Alias:
    """Other accepted spellings of a field name (e.g. keepalived's historical names)."""

    names: tuple[str, ...]


class Seconds(float):
    """A duration in seconds. YAML may give a number (seconds) or a string with a unit:
    ``"100ms"``, ``"1.5s"``, ``"2m"``, ``"1h"``."""


@dataclass(frozen=True)
class PluginRef:
    """Marks a field whose value is a plugin's config, chosen by its ``type:`` key."""

    kind: str


@dataclass(frozen=True)
class ExtensionPoint:
    """Marks the :class:`Extensions` field of a core section that plugins may add options to
    (the ``halo_config_extensions`` hook). A key of the section that is not one of its own
    fields is looked up among the options plugins added at ``point``, validated against the
    declaring plugin's schema and stored in this field. The field itself is not a key."""

    point: str


@dataclass(frozen=True)
class Extensions:
    """The options plugins added to one section, each plugin's validated as its schema.

    Read yours with ``section.extensions[YourSchema]``: the validated object, or your
    schema's defaults when the section sets none of your keys (or the config was validated
    without your plugin). Only objects that differ from the defaults are kept, so two
    sections compare equal when they mean the same."""

    by_schema: Mapping[type, Any] = dataclasses.field(default_factory=dict)

    def __getitem__(self, schema: type[T]) -> T:
        found = self.by_schema.get(schema)
        return found if isinstance(found, schema) else schema()


@dataclass(frozen=True)
class Configured:
    """A validated plugin config: which plugin type, and its validated schema object."""

    kind: str
    type: str
    config: Any


class ScalarParser(typing.Protocol):
    """A custom scalar type: a class with ``parse(value) -> instance`` raising ValueError."""

    @classmethod
    def parse(cls, value: Any) -> Any: ...


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config value.

    ``at_key`` says the problem is the key itself (an unknown key), so the location shown to
    the user is the key's rather than the value's.
    """

    path: Path
    message: str
    at_key: bool = False

    @property
    def dotted(self) -> str:
        return dotted(self.path)


def dotted(path: Path) -> str:
    """``("vrrp_instances", "VI_1", "track", 0)`` → ``vrrp_instances.VI_1.track[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


class SchemaError(Exception):
    """Raised by :func:`validate` with every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(f"{p.dotted}: {p.message}" for p in problems))
        self.problems = list(problems)


# --------------------------------------------------------------------------- type analysis


@dataclass(frozen=True)
class FieldInfo:
    name: str  # the attribute
    key: str  # the YAML key: the attribute without a trailing underscore (global_ → global)
    type: Any
    meta: tuple[Any, ...]
    required: bool
    default: Any
    doc: str | None
    aliases: tuple[str, ...]


_hints_cache: dict[type, list[FieldInfo]] = {}


def fields_of(cls: type) -> list[FieldInfo]:
    """Fields of a schema dataclass with their annotations unpacked (cached)."""
    cached = _hints_cache.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls, include_extras=True)
    out: list[FieldInfo] = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_"):
            continue
        tp, meta = _split_annotated(hints[f.name])
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default: Any = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        doc = next((m.text for m in meta if isinstance(m, Doc)), None)
        aliases = next((m.names for m in meta if isinstance(m, Alias)), ())
        out.append(FieldInfo(f.name, f.name.rstrip("_"), tp, meta, required, default, doc, aliases))
    _hints_cache[cls] = out
    return out


def _split_annotated(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    if get_origin(tp) is Annotated:
        args = get_args(tp)
        inner, meta = _split_annotated(args[0])
        return inner, tuple(args[1:]) + meta
    return tp, ()


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


_metas: dict[tuple[Any, ...], tuple[Any, tuple[Any, ...]]] = {}


def _meta_of(meta: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    """A field's metadata as validation uses it: its first :class:`PluginRef` (or None), and
    the metadata that constrain a value (the rest, e.g. its :class:`Doc`, do not)."""
    try:
        return _metas[meta]
    except KeyError:
        pass
    except TypeError:  # unhashable metadata: sorted each time
        return _sort_meta(meta)
    found = _metas[meta] = _sort_meta(meta)
    return found


def _sort_meta(meta: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    ref = next((m for m in meta if isinstance(m, PluginRef)), None)
    kinds = (Keys, Range, Length, Pattern, Command)
    return ref, tuple(m for m in meta if isinstance(m, kinds))


# What the validator does with a type, decided once per type (validating 3,000 instances
# asked the same questions of the same few types 36,000 times: a fifth of the time).
_STR, _INT, _DATACLASS, _PARSE, _UNION, _OTHER = (object() for _ in range(6))
_shapes: dict[Any, tuple[Any, tuple[Any, ...], object]] = {}


def _shape(tp: Any) -> tuple[Any, tuple[Any, ...], object]:
    """``tp`` without ``Annotated``, its metadata, and what kind of value it asks for, in
    the order :meth:`_Validator._value` tests them."""
    try:
        return _shapes[tp]
    except KeyError:
        pass
    except TypeError:  # an unhashable annotation: decided each time
        return _decide(tp)
    shape = _shapes[tp] = _decide(tp)
    return shape


def _decide(tp: Any) -> tuple[Any, tuple[Any, ...], object]:
    inner, meta = _split_annotated(tp)
    kind = _OTHER
    if meta or inner is Any or inner is object:
        pass
    elif _is_union(inner):
        kind = _UNION
    elif get_origin(inner) is not None:
        pass  # Literal, list, tuple, dict: handled in order by _value
    elif callable(getattr(inner, "parse", None)):
        kind = _PARSE
    elif dataclasses.is_dataclass(inner) and isinstance(inner, type):
        kind = _DATACLASS
    elif inner is str:
        kind = _STR
    elif inner is int:
        kind = _INT
    return inner, meta, kind


def _describe(tp: Any) -> str:
    """Short human name of an expected type, for messages."""
    tp, _ = _split_annotated(tp)
    if tp is type(None):
        return "null"
    if _is_union(tp):
        return " or ".join(_describe(a) for a in get_args(tp))
    origin = get_origin(tp)
    if origin in (list, tuple, Sequence):
        return "a list"
    if origin in (dict, Mapping):
        return "a mapping"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        Seconds: "a duration",
        ipaddress.IPv4Address: "an IPv4 address",
        ipaddress.IPv6Address: "an IPv6 address",
        ipaddress.IPv4Interface: "an IPv4 address/prefix",
        ipaddress.IPv6Interface: "an IPv6 address/prefix",
    }
    if tp in names:
        return names[tp]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


# --------------------------------------------------------------------------- validation

PluginResolver = Callable[[str, str], type | None]
"""(kind, type name) → the plugin's schema class, or None when no such type is installed."""

ExtensionSchemas = Mapping[str, Mapping[str, type]]
"""An extension point's name → the option schemas plugins add there, by plugin name."""

UnknownType = Callable[[str, str], str]
"""(kind, type name) → the message for a ``type:`` no installed plugin provides."""


def extension_point(cls: type) -> tuple[str, str] | None:
    """(field name, point) of ``cls``'s :class:`ExtensionPoint` field, if it has one."""
    for f in fields_of(cls):
        for m in f.meta:
            if isinstance(m, ExtensionPoint):
                return f.name, m.point
    return None


_tables: dict[type, tuple[tuple[str, str] | None, list[FieldInfo], dict[str, FieldInfo]]] = {}


def _table(
    cls: type,
) -> tuple[tuple[str, str] | None, list[FieldInfo], dict[str, FieldInfo]]:
    """``cls``'s extension point, its fields but that point's, and each field by its key
    and aliases: what validating a mapping as ``cls`` looks up (made once per class)."""
    table = _tables.get(cls)
    if table is None:
        point = extension_point(cls)
        fields = [f for f in fields_of(cls) if point is None or f.name != point[0]]
        by_name: dict[str, FieldInfo] = {}
        for f in fields:
            by_name[f.key] = f
            for alias in f.aliases:
                by_name[alias] = f
        table = _tables[cls] = (point, fields, by_name)
    return table


def keys_of(cls: type) -> set[str]:
    """The keys a schema class accepts: its fields' names and their aliases."""
    return {k for f in fields_of(cls) for k in (f.key, *f.aliases)}


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4 = rf"(?:{_OCTET}\.){{3}}{_OCTET}"
_V4_NET = rf"{_V4}(?:/(?:3[0-2]|[12]?[0-9]))?"
_V6 = r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*"  # the shape; ipaddress has the last word
_V6_NET = rf"{_V6}(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?"
IP_ANY = f"(?:{_V4_NET}|{_V6_NET})"
"""An IPv4 or IPv6 address with an optional prefix, as a regex (for ``__json_schema__``)."""
IP_PATTERNS: dict[Any, str] = {
    ipaddress.IPv4Address: f"^{_V4}$",
    ipaddress.IPv6Address: f"^{_V6}$",
    ipaddress.IPv4Interface: f"^{_V4_NET}$",
    ipaddress.IPv6Interface: f"^{_V6_NET}$",
    ipaddress.IPv4Network: f"^{_V4_NET}$",
    ipaddress.IPv6Network: f"^{_V6_NET}$",
}
"""What each address type looks like, as a JSON Schema ``pattern``."""


# The validator and the JSON Schema writer are half of this module's code: the validating
# child's and the CLI's. The VRRP process imports this module for the markers and classes
# of the model it is handed, never validates, and so never loads them (halo_core.validation).
