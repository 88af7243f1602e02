"""Validation against the schemas of :mod:`halo_core.schema`, and their JSON Schema.

Split from :mod:`halo_core.schema` (which still offers :func:`validate` and
:func:`json_schema`, loading this module when first asked) so that a process that holds a
validated model without validating one, the VRRP process, does not load this code.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import math
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, get_args, get_origin

from halo_core.schema import (
    _DATACLASS,
    _INT,
    _PARSE,
    _STR,
    _UNION,
    IP_PATTERNS,
    Command,
    Configured,
    Extensions,
    ExtensionSchemas,
    Keys,
    Length,
    Path,
    Pattern,
    PluginRef,
    PluginResolver,
    Problem,
    Range,
    SchemaError,
    Seconds,
    T,
    UnknownType,
    _describe,
    _is_union,
    _meta_of,
    _shape,
    _split_annotated,
    _table,
    dotted,
    extension_point,
    fields_of,
    keys_of,
)


class _Validator:
    def __init__(
        self,
        resolve_plugin: PluginResolver | None,
        plugin_names: Callable[[str], list[str]] | None,
        extensions: ExtensionSchemas | None = None,
        unknown_type: UnknownType | None = None,
    ) -> None:
        self.problems: list[Problem] = []
        self.resolve_plugin = resolve_plugin
        self.plugin_names = plugin_names
        self.extensions: ExtensionSchemas = extensions or {}
        self.unknown_type = unknown_type
        self._added: dict[str, dict[str, type]] = {}  # by extension point (_added_keys)

    def _added_keys(self, point: str) -> dict[str, type]:
        """The keys the plugins add at extension point ``point``, each to its schema."""
        found = self._added.get(point)
        if found is None:
            added = self.extensions.get(point, {})
            found = {k: schema for schema in added.values() for k in keys_of(schema)}
            self._added[point] = found
        return found

    def fail(self, path: Path, message: str, *, at_key: bool = False) -> Any:
        self.problems.append(Problem(path, message, at_key))
        return _INVALID

    def value(self, tp: Any, meta: tuple[Any, ...], data: Any, path: Path) -> Any:
        ref, constraints = _meta_of(meta)
        if ref is not None:
            return self.plugin(ref.kind, data, path)
        result = self._value(tp, data, path)
        if result is _INVALID or not constraints:
            return result
        return self._constraints(constraints, result, path)

    def _value(self, tp: Any, data: Any, path: Path) -> Any:
        tp, meta, kind = _shape(tp)
        if meta:
            return self.value(tp, meta, data, path)
        # the common kinds first (what _shape decided once for this type)
        if kind is _STR:
            if isinstance(data, str) and "\0" not in data:
                return data
        elif kind is _INT:
            if isinstance(data, int) and not isinstance(data, bool):
                return data
        elif kind is _DATACLASS:
            return self.dataclass(tp, data, path)
        elif kind is _PARSE:
            try:
                return tp.parse(data)
            except (ValueError, TypeError) as exc:
                return self.fail(path, str(exc))
        if tp is Any or tp is object:
            return data
        if kind is _UNION:
            return self._union(tp, data, path)
        origin = get_origin(tp)
        if origin is Literal:
            choices = get_args(tp)
            for choice in choices:
                if data == choice and type(data) is type(choice):
                    return choice
                if (
                    isinstance(choice, str)
                    and isinstance(data, str)
                    and data.upper() == choice.upper()
                ):
                    return choice
            return self.fail(path, f"must be {_describe(tp)}, not {_shown(data)}")
        if origin in (list, Sequence) or (origin is tuple and get_args(tp)[1:] == (Ellipsis,)):
            if not isinstance(data, list):
                return self.fail(path, f"must be a list, not {_kind(data)}")
            (item_tp, *_) = get_args(tp)
            items = [self._value(item_tp, item, (*path, i)) for i, item in enumerate(data)]
            if any(i is _INVALID for i in items):
                return _INVALID
            return tuple(items) if origin is tuple else items
        if origin in (dict, Mapping):
            if not isinstance(data, dict):
                return self.fail(path, f"must be a mapping, not {_kind(data)}")
            _key_tp, val_tp = get_args(tp)
            out = {}
            for k, v in data.items():
                if not isinstance(k, str):
                    self.fail((*path, str(k)), "keys must be strings", at_key=True)
                    continue
                out[k] = self._value(val_tp, v, (*path, k))
            if any(v is _INVALID for v in out.values()):
                return _INVALID
            return out
        parse = getattr(tp, "parse", None)
        if callable(parse):  # a custom scalar (it may also be a dataclass, like VirtualAddress)
            try:
                return parse(data)
            except (ValueError, TypeError) as exc:
                return self.fail(path, str(exc))
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self.dataclass(tp, data, path)
        if tp is bool:
            if isinstance(data, bool):
                return data
            return self.fail(path, f"must be a boolean (true/false), not {_kind(data)}")
        if tp is int:
            if isinstance(data, int) and not isinstance(data, bool):
                return data
            return self.fail(path, f"must be an integer, not {_kind(data)}")
        if tp is float:
            if isinstance(data, int | float) and not isinstance(data, bool):
                return self._finite(data, path)
            return self.fail(path, f"must be a number, not {_kind(data)}")
        if tp is Seconds:
            return self._seconds(data, path)
        if tp is str:
            if isinstance(data, str):
                if "\0" in data:
                    # no file name, command, password or address may hold one: the OS stops
                    # at it (or refuses it) at run time
                    return self.fail(path, "must not contain a NUL character (\\0)")
                return data
            if isinstance(data, int | float) and not isinstance(data, bool):
                # keepalived passwords and names are often written bare: auth_pass 1111
                return str(data)
            return self.fail(path, f"must be a string, not {_kind(data)}")
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            for member in tp:
                if data == member.value or (
                    isinstance(data, str) and str(member.value).upper() == data.upper()
                ):
                    return member
            return self.fail(path, f"must be {_describe(tp)}, not {_shown(data)}")
        if tp in _IP_TYPES:
            return self._ip(tp, data, path)
        if tp is type(None):
            if data is None:
                return None
            return self.fail(path, f"must be null, not {_kind(data)}")
        raise TypeError(f"schema type {tp!r} at {dotted(path)} is not supported")

    def _union(self, tp: Any, data: Any, path: Path) -> Any:
        args = get_args(tp)
        if data is None:
            if type(None) in args:
                return None
            return self.fail(path, f"must be {_describe(tp)}, not null")
        candidates = [a for a in args if a is not type(None)]
        # Try each alternative silently; report one combined message if none fits.
        for alt in candidates:
            trial = _Validator(
                self.resolve_plugin, self.plugin_names, self.extensions, self.unknown_type
            )
            trial._added = self._added
            result = trial._value(alt, data, path)
            if result is not _INVALID:
                return result
        if len(candidates) == 1:
            return self._value(candidates[0], data, path)
        # Several alternatives: if exactly one is structurally plausible, report its problems.
        plausible = [a for a in candidates if _plausible(a, data)]
        if len(plausible) == 1:
            return self._value(plausible[0], data, path)
        return self.fail(path, f"must be {_describe(tp)}, not {_shown(data)}")

    def _finite(self, data: float, path: Path) -> Any:
        """``data`` as a float if it is a finite number of a sane size, else a problem."""
        if isinstance(data, float) and not math.isfinite(data):
            return self.fail(path, f"must be a finite number, not {data}")
        if abs(data) > MAX_NUMBER:
            return self.fail(path, f"must be at most {MAX_NUMBER:g} in size, not {_kind(data)}")
        return float(data)

    def _seconds(self, data: Any, path: Path) -> Any:
        seconds: float | None = None
        if isinstance(data, int | float) and not isinstance(data, bool):
            if isinstance(data, float) and math.isnan(data):
                return self.fail(path, "must be a duration, not NaN")
            seconds = data if isinstance(data, float) or abs(data) <= MAX_SECONDS else math.inf
        elif isinstance(data, str) and len(data) <= 64:
            m = _DURATION.fullmatch(data.strip())
            if m:
                seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
        if seconds is None:
            return self.fail(
                path, f"must be a duration (seconds, or e.g. '100ms', '2s'), not {_shown(data)}"
            )
        if seconds < 0:
            return self.fail(path, "must not be negative")
        if seconds > MAX_SECONDS:
            return self.fail(path, f"must be at most {MAX_SECONDS:.0f} s, not {_kind(data)}")
        return Seconds(seconds)

    def _ip(self, tp: Any, data: Any, path: Path) -> Any:
        if not isinstance(data, str):
            return self.fail(path, f"must be {_describe(tp)}, not {_kind(data)}")
        try:
            return tp(data)
        except ValueError:
            return self.fail(path, f"{_short(data)} is not {_describe(tp)}")

    def _constraints(self, meta: tuple[Any, ...], value: Any, path: Path) -> Any:
        for m in meta:
            if isinstance(m, Keys) and isinstance(value, dict):
                bad = [k for k in value if not re.fullmatch(m.pattern.regex, k)]
                for key in bad:
                    message = m.pattern.message or f"must match {m.pattern.regex}"
                    self.fail((*path, key), f"name {key!r} {message}", at_key=True)
                if bad:
                    return _INVALID
            if isinstance(m, Range) and isinstance(value, int | float):
                if (m.min is not None and value < m.min) or (m.max is not None and value > m.max):
                    return self.fail(path, f"must be {_range_text(m)}, not {_number(value)}")
            elif isinstance(m, Length) and isinstance(value, str | list | tuple | dict):
                n = len(value)
                what = "characters" if isinstance(value, str) else "items"
                if m.min is not None and n < m.min:
                    return self.fail(path, f"must have at least {m.min} {what}")
                if m.max is not None and n > m.max:
                    return self.fail(path, f"must have at most {m.max} {what}")
            elif (
                isinstance(m, Pattern)
                and isinstance(value, str)
                and not re.fullmatch(m.regex, value)
            ):
                return self.fail(path, m.message or f"must match {m.regex}")
            elif isinstance(m, Command) and isinstance(value, str):
                import shlex  # here: only validation splits commands (not the VRRP process)

                try:
                    words = shlex.split(value)
                except ValueError as exc:  # "No closing quotation", "No escaped character"
                    return self.fail(path, f"cannot be split into words: {exc}")
                if not words:
                    return self.fail(path, "names no program")
        return value

    def dataclass(
        self, cls: type, data: Any, path: Path, *, skip: frozenset[str] = frozenset()
    ) -> Any:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            return self.fail(path, f"must be a mapping, not {_kind(data)}")
        point, fields, by_name = _table(cls)
        schema_of = self._added_keys(point[1]) if point else {}
        added_data: dict[type, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {}
        ok = True
        for key, raw in data.items():
            if key in skip:
                continue
            info = by_name.get(key) if isinstance(key, str) else None
            if info is None and key in schema_of:
                added_data.setdefault(schema_of[key], {})[key] = raw
                continue
            if info is None:
                hint = _suggest(str(key), [f.key for f in fields] + list(schema_of))
                self.fail((*path, str(key)), f"unknown key{hint}", at_key=True)
                ok = False
                continue
            if info.name in kwargs:
                self.fail((*path, str(key)), f"given twice (also as {info.key!r})", at_key=True)
                ok = False
                continue
            val = self.value(info.type, info.meta, raw, (*path, key))
            if val is _INVALID:
                ok = False
            kwargs[info.name] = val
        for f in fields:
            if f.required and f.name not in kwargs:
                self.fail(path, f"missing required key {f.key!r}")
                ok = False
        if point is not None:
            # the plugins' options: validated at the section's path, since they are its keys
            options = {s: self.dataclass(s, d, path) for s, d in added_data.items()}
            ok = ok and all(o is not _INVALID for o in options.values())
            kept = {s: o for s, o in options.items() if ok and o != s()}
            kwargs[point[0]] = Extensions(kept)
        if not ok:
            return _INVALID
        try:
            obj = cls(**kwargs)
        except (ValueError, TypeError) as exc:
            return self.fail(path, str(exc))
        check = getattr(obj, "__check__", None)
        if callable(check):
            for sub, message in check() or ():
                self.fail((*path, *sub), message)
                ok = False
        return obj if ok else _INVALID

    def plugin(self, kind: str, data: Any, path: Path) -> Any:
        if not isinstance(data, dict):
            return self.fail(path, f"must be a mapping with a 'type' key, not {_kind(data)}")
        type_name = data.get("type")
        if type_name is None:
            return self.fail(path, f"missing required key 'type' (the {kind} plugin to use)")
        if not isinstance(type_name, str):
            return self.fail((*path, "type"), f"must be a string, not {_kind(type_name)}")
        cls = self.resolve_plugin(kind, type_name) if self.resolve_plugin else None
        if cls is None:
            if self.unknown_type is not None:
                return self.fail((*path, "type"), self.unknown_type(kind, type_name))
            names = self.plugin_names(kind) if self.plugin_names else []
            known = ", ".join(names) if names else "none installed"
            return self.fail(
                (*path, "type"), f"unknown {kind} type {type_name!r} (installed: {known})"
            )
        result = self.dataclass(cls, data, path, skip=frozenset({"type"}))
        if result is _INVALID:
            return _INVALID
        return Configured(kind, type_name, result)


class _Invalid:
    def __repr__(self) -> str:
        return "<invalid>"


_INVALID: Any = _Invalid()
_IP_TYPES = (
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
)
MAX_NUMBER = 1e15
"""Largest magnitude of a number option (a float beyond it has no meaning here)."""
MAX_SECONDS = 2.0**31
"""Longest duration accepted (about 68 years): a timer beyond it would never fire."""
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _plausible(tp: Any, data: Any) -> bool:
    tp, _ = _split_annotated(tp)
    if dataclasses.is_dataclass(tp):
        return isinstance(data, dict)
    origin = get_origin(tp)
    if origin in (list, tuple, Sequence):
        return isinstance(data, list)
    if origin in (dict, Mapping):
        return isinstance(data, dict)
    return not isinstance(data, dict | list)


def _range_text(r: Range) -> str:
    if r.min is not None and r.max is not None:
        return f"between {r.min:g} and {r.max:g}"
    if r.min is not None:
        return f"at least {r.min:g}"
    return f"at most {r.max:g}"


def _number(value: float) -> str:
    """A number for a message: an integer in full unless it is very long (formatting a huge
    int as a float overflows), a float as %g."""
    if isinstance(value, int):
        text = str(value)
        return text if len(text) <= 24 else f"{text[:12]}… ({len(text)} digits)"
    return f"{value:g}"


def _short(text: str, limit: int = 60) -> str:
    """``repr(text)``, cut to about ``limit`` characters: a message is one readable line."""
    shown = repr(text)
    return shown if len(shown) <= limit else f"{shown[: limit - 1]}…"


def _shown(data: Any) -> str:
    """A value as written, for a message: short scalars as their repr, containers by kind
    (an alias bomb's repr would never end)."""
    if isinstance(data, str):
        return _short(data)
    if isinstance(data, int) and not isinstance(data, bool):
        return _number(data)
    if isinstance(data, list | dict):
        return _kind(data)
    text = repr(data)  # a number, a boolean, null, or bytes from !!binary
    return text if len(text) <= 60 else f"{text[:59]}…"


def _kind(data: Any) -> str:
    if data is None:
        return "null"
    if isinstance(data, bool):
        return "a boolean"
    if isinstance(data, int):
        return f"an integer ({_number(data)})"
    if isinstance(data, float):
        return f"a number ({data:g})"
    if isinstance(data, str):
        return f"a string ({_short(data)})"
    if isinstance(data, list):
        return "a list"
    if isinstance(data, dict):
        return "a mapping"
    return type(data).__name__


def _suggest(key: str, names: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def validate(
    cls: type[T],
    data: Any,
    *,
    path: Path = (),
    resolve_plugin: PluginResolver | None = None,
    plugin_names: Callable[[str], list[str]] | None = None,
    extensions: ExtensionSchemas | None = None,
    unknown_type: UnknownType | None = None,
) -> T:
    """Validate parsed YAML ``data`` against schema class ``cls``.

    Returns the constructed object, or raises :class:`SchemaError` listing every problem.
    ``resolve_plugin`` maps ``(kind, type)`` to a plugin's schema class for fields marked
    with :class:`PluginRef`; ``extensions`` gives the options plugins add to the sections
    that have an :class:`ExtensionPoint` field; ``unknown_type`` words the error of a
    ``type:`` no installed plugin provides (why it is missing, what to install).
    """
    v = _Validator(resolve_plugin, plugin_names, extensions, unknown_type)
    result = v.dataclass(cls, data, path)
    if v.problems or result is _INVALID:
        raise SchemaError(v.problems or [Problem(path, "invalid")])
    return typing.cast(T, result)


# --------------------------------------------------------------------------- JSON Schema


def json_schema(
    cls: type,
    *,
    plugins: Callable[[str], Mapping[str, type]] | None = None,
    title: str | None = None,
    extensions: ExtensionSchemas | None = None,
    root_keys: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Render ``cls`` as a JSON Schema (draft 2020-12) document that agrees with
    :func:`validate` wherever a schema can say it: patterns match in full (anchored), the
    keys of a mapping follow its :class:`Keys` pattern (``propertyNames``), string choices
    take any case, durations are numbers or strings with a unit.

    ``plugins(kind)`` returns the installed plugin schema classes of a kind by type name; a
    plugin section is a union discriminated by its ``type`` (``if``/``then`` per type, so
    that an error names the one type's problem, not "none of the alternatives").
    ``extensions`` gives the options plugins add to sections with an :class:`ExtensionPoint`
    field; they are shown as that section's own keys. ``root_keys`` adds keys the loader
    handles before validation (``include``). A schema class's ``__json_schema_rules__()``
    gives the rules of its ``__check__`` that a schema can say, as subschemas it must match.
    """
    defs: dict[str, Any] = {}

    def ref(tp: type) -> dict[str, Any]:
        name = f"{tp.__module__}.{tp.__qualname__}".replace("halo_", "").replace(".", "_")
        if name not in defs:
            defs[name] = {}  # placeholder breaks recursion
            defs[name] = obj(tp)
        return {"$ref": f"#/$defs/{name}"}

    def obj(tp: type, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        props: dict[str, Any] = dict(extra or {})
        required: list[str] = list(extra or {})
        point = extension_point(tp)
        added = (extensions or {}).get(point[1], {}) if point else {}
        own = [f for f in fields_of(tp) if point is None or f.name != point[0]]
        for f in own + [f for schema in added.values() for f in fields_of(schema)]:
            s = field(f.type, f.meta)
            if f.doc:
                s = {**s, "description": f.doc}
            if not f.required and _jsonable(f.default):
                s = {**s, "default": _jsonable_value(f.default)}
            props[f.key] = s
            for alias in f.aliases:
                props[alias] = {**s, "deprecated": True, "description": f"alias of {f.key}"}
            if f.required:
                required.append(f.key)
        out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        if tp.__doc__ and not tp.__doc__.startswith(tp.__name__ + "("):
            out["description"] = " ".join(tp.__doc__.split())
        if required:
            out["required"] = required
        rules = getattr(tp, "__json_schema_rules__", None)
        if callable(rules):  # the rules of its __check__ that a schema can say
            out["allOf"] = list(rules())
        return out

    def plugin_section(kind: str) -> dict[str, Any]:
        name = f"{kind}_section"
        if name in defs:
            return {"$ref": f"#/$defs/{name}"}
        alts = dict(sorted((plugins(kind) if plugins else {}).items()))
        if not alts:
            return {"not": {}, "description": f"no {kind} plugins are installed"}
        defs[name] = {
            "type": "object",
            "description": f"a {kind}: `type` picks the plugin, the other keys are its options",
            "required": ["type"],
            "properties": {"type": {"enum": list(alts), "description": f"the {kind} type"}},
            "allOf": [
                {
                    "if": {"properties": {"type": {"const": type_name}}, "required": ["type"]},
                    "then": obj(schema, {"type": {"const": type_name}}),
                }
                for type_name, schema in alts.items()
            ],
        }
        return {"$ref": f"#/$defs/{name}"}

    def field(tp: Any, meta: tuple[Any, ...]) -> dict[str, Any]:
        for m in meta:
            if isinstance(m, PluginRef):
                return plugin_section(m.kind)
        s = of(tp)
        for m in meta:
            if isinstance(m, Range):
                bounds = {"minimum": m.min, "maximum": m.max}
                _constrain(s, "number", {k: v for k, v in bounds.items() if v is not None})
            elif isinstance(m, Length):
                lengths = {"min": m.min, "max": m.max}
                for kind, key in (
                    ("string", "Length"),
                    ("array", "Items"),
                    ("object", "Properties"),
                ):
                    _constrain(
                        s, kind, {f"{k}{key}": v for k, v in lengths.items() if v is not None}
                    )
            elif isinstance(m, Pattern):
                _constrain(s, "string", {"pattern": anchored(m.regex)})
            elif isinstance(m, Keys):
                s["propertyNames"] = {"pattern": anchored(m.pattern.regex)}
        return s

    def of(tp: Any) -> dict[str, Any]:
        tp, meta = _split_annotated(tp)
        if meta:
            return field(tp, meta)
        if tp is Any or tp is object:
            return {}
        if _is_union(tp):
            alts = [of(a) for a in get_args(tp)]
            if all(set(a) == {"type"} for a in alts):  # one "type" list: a clearer error
                listed = [
                    t
                    for a in alts
                    for t in (a["type"] if isinstance(a["type"], list) else [a["type"]])
                ]
                return {"type": listed}
            return {"anyOf": alts}
        origin = get_origin(tp)
        if origin is Literal:
            return _choices(list(get_args(tp)))
        if origin in (list, tuple, Sequence):
            return {"type": "array", "items": of(get_args(tp)[0])}
        if origin in (dict, Mapping):
            return {"type": "object", "additionalProperties": of(get_args(tp)[1])}
        custom = getattr(tp, "__json_schema__", None)
        if callable(custom):
            return dict(custom())
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return ref(tp)
        simple: dict[Any, dict[str, Any]] = {
            bool: {"type": "boolean"},
            int: {"type": "integer"},
            float: {"type": "number"},
            str: {"type": ["string", "number"]},  # numbers are accepted as strings
            type(None): {"type": "null"},
            Seconds: {
                "anyOf": [
                    {"type": "number", "minimum": 0},
                    {"type": "string", "pattern": r"^\s*(?:" + _DURATION.pattern + r")\s*$"},
                ],
                "description": "seconds, or a number with a unit: ms, s, m, h",
            },
        }
        if tp in simple:
            return dict(simple[tp])
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return _choices([m.value for m in tp])
        if tp in _IP_TYPES:
            return {"type": "string", "pattern": IP_PATTERNS[tp], "description": _describe(tp)}
        return {}

    root = obj(cls)
    for key, sub in (root_keys or {}).items():
        root["properties"][key] = dict(sub)
    doc: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    if title:
        doc["title"] = title
    doc.update(root)
    if defs:
        doc["$defs"] = defs
    anchored_doc: dict[str, Any] = _anchor_patterns(doc)
    return anchored_doc


def anchored(regex: str) -> str:
    """``regex`` as a JSON Schema ``pattern`` that, like :func:`re.fullmatch`, must match
    the whole string (a JSON Schema pattern matches anywhere unless anchored)."""
    if regex.startswith("^") and regex.endswith("$") and not regex.endswith(r"\$"):
        return regex
    return f"^(?:{regex})$"


def _anchor_patterns(node: Any) -> Any:
    """Anchor every ``pattern`` of a schema, those of plugins' ``__json_schema__`` too: the
    validator matches every pattern in full."""
    if isinstance(node, dict):
        return {
            k: anchored(v) if k == "pattern" and isinstance(v, str) else _anchor_patterns(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_anchor_patterns(v) for v in node]
    return node


def _constrain(schema: dict[str, Any], json_type: str, keywords: dict[str, Any]) -> None:
    """Add ``keywords`` to the part of ``schema`` that is of ``json_type`` (the schema
    itself, or its alternatives of that type): ``minLength`` on a string, not on a list."""
    if not keywords:
        return
    declared = schema.get("type")
    kinds = set(declared) if isinstance(declared, list) else {declared}
    if json_type in kinds or (json_type == "number" and "integer" in kinds):
        schema.update(keywords)
    for alt in schema.get("anyOf", []):
        _constrain(alt, json_type, keywords)


def _choices(values: list[Any]) -> dict[str, Any]:
    """An ``enum`` for completion; string choices also in any case, as the validator takes
    them (``state: master``)."""
    words = [v for v in values if isinstance(v, str) and v.upper() != v.lower()]
    if not words:
        return {"enum": values}
    any_case = "|".join(
        "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in w)
        for w in words
    )
    return {"anyOf": [{"enum": values}, {"type": "string", "pattern": f"^(?:{any_case})$"}]}


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | type(None) | enum.Enum) or (
        isinstance(value, list | tuple) and all(_jsonable(v) for v in value)
    )


def _jsonable_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_jsonable_value(v) for v in value]
    return value
