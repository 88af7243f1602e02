"""A generated corpus of malformed halo configurations, for tests and ``bench/configs``.

Every case must make ``halo check`` exit 1 with ``file:line:col: path: message`` lines: no
traceback, no hang, fast. The corpus covers YAML syntax, control characters, encodings,
nesting depth, size, numbers (huge, NaN, infinite), alias bombs, includes (loops, diamonds,
devices, directories, FIFOs, unreadable and non-YAML files), a wrong-type and an
out-of-range value for every field of the core's sections and of each installed plugin's
schema, and conflicts between sections.

``corpus(schemas)`` builds the cases; ``schemas`` maps ``(kind, type)`` to the plugin's schema
class and ``bases`` gives a valid item of each (the test checks that each base alone is
valid, so a plugin that adds a required option shows up there, not as a false pass).
``materialise(case, directory)`` writes one case and returns its main file.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from halo_core.config.model import (
    Authentication,
    GlobalConfig,
    RealServer,
    SyncGroup,
    Track,
    VirtualServer,
    VrrpInstance,
)
from halo_core.schema import Length, PluginRef, Range, Seconds, fields_of

MAIN = "halo.yaml"


@dataclass(frozen=True)
class HostileConfig:
    """One malformed configuration: its files (relative path → bytes; ``halo.yaml`` is the
    one checked) and special files to create (relative path → ``fifo``, ``dir``,
    ``mode000`` or ``symlink:TARGET``)."""

    name: str
    files: Mapping[str, bytes]
    special: Mapping[str, str] = field(default_factory=dict)


def materialise(case: HostileConfig, directory: Path) -> Path:
    """Write ``case`` into ``directory`` (which must exist) and return its main file."""
    for rel, content in case.files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    for rel, kind in case.special.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "dir":
            path.mkdir()
        elif kind == "mode000":
            path.chmod(0)
        elif kind.startswith("symlink:"):
            path.symlink_to(kind.removeprefix("symlink:"))
        else:
            raise ValueError(f"unknown special file kind {kind!r}")
    return directory / MAIN


# --------------------------------------------------------------------------- building blocks

INSTANCE: dict[str, Any] = {
    "interface": "eth0",
    "virtual_router_id": 51,
    "virtual_ipaddress": ["192.0.2.51"],
}
"""A valid VRRP instance, the base every instance case changes one thing of."""

BASES: dict[tuple[str, str], dict[str, Any]] = {
    ("checker", "tcp"): {"connect_ip": "192.0.2.9", "connect_port": 80},
    ("checker", "http"): {"connect_ip": "192.0.2.9", "url": [{"path": "/"}]},
    ("checker", "ssl"): {"connect_ip": "192.0.2.9", "url": [{"path": "/"}]},
    ("checker", "ssh"): {"connect_ip": "192.0.2.9", "username": "probe", "password": "pw"},
    ("checker", "script"): {"script": "/bin/true"},
    ("notifier", "script"): {"notify": "/bin/true"},
    ("notifier", "email"): {"smtp_server": "192.0.2.25", "notification_email": ["a@example.org"]},
    ("notifier", "webhook"): {"url": "https://hooks.example.org/x"},
    ("backend", "vip"): {},
    ("backend", "ipvs"): {},
    ("backend", "nftables"): {},
}
"""A valid item of each first-party plugin type (without its ``type:``)."""

SECTION_OF = {"checker": "checks", "notifier": "notifiers", "backend": "backends"}


def _doc(**sections: Any) -> dict[str, Any]:
    return {"vrrp_instances": {"VI_1": dict(INSTANCE)}, **sections}


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # a shared base dict is written out each time, not as an alias


def _text(doc: Any) -> bytes:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=False, width=1000).encode()


def _one(name: str, text: str | bytes, **files: bytes) -> HostileConfig:
    main = text.encode() if isinstance(text, str) else text
    return HostileConfig(name, {MAIN: main, **files})


# --------------------------------------------------------------------------- categories


def syntax() -> Iterator[HostileConfig]:
    cases = {
        "unclosed-flow-list": "vrrp_instances: [\n",
        "unclosed-flow-map": "global: {router_id: a\n",
        "unclosed-double-quote": 'global:\n  router_id: "abc\n',
        "unclosed-single-quote": "global:\n  router_id: 'abc\n",
        "bad-indent": "global:\n  router_id: a\n log_level: info\n",
        "tab-indent": "global:\n\trouter_id: a\n",
        "key-without-colon": "global\n  router_id: a\n",
        "colon-in-plain": "global: a: b\n",
        "two-documents": "global: {}\n---\nglobal: {}\n",
        "undefined-alias": "global: *nothing\n",
        "python-tag": "global: !!python/object:os.system {}\n",
        "unknown-tag": "global: !whatever {}\n",
        "bad-escape": 'global:\n  router_id: "\\q"\n',
        "anchor-without-node": "global: &a\n  - &b\n",
        "stray-closing-bracket": "global: ]\n",
        "stray-closing-brace": "global: }\n",
        "complex-key": "? [a, b]\n: c\n",
        "mapping-as-key": "{a: 1}: x\n",
        "directive-garbage": "%FOO bar\n---\nglobal: {log_level: loud}\n",
        "yaml-2-directive": "%YAML 2.0\n---\nglobal: {}\n",
        "only-a-scalar": "hello\n",
        "only-a-list": "- a\n- b\n",
        "only-a-number": "42\n",
        "binary-tag": "global:\n  router_id: !!binary aGVsbG8=\n",
        "timestamp-value": "global:\n  router_id: 2001-12-14t21:59:43.10-05:00\n",
        "set-tag": "global: !!set {a, b}\n",
        "omap-tag": "global: !!omap [a: 1]\n",
        "duplicate-section": "global: {}\nglobal: {}\n",
        "duplicate-key-deep": "vrrp_instances:\n  VI_1: {interface: a, interface: b}\n",
        "block-scalar-bad": "global:\n  router_id: |\n bad\n",
        "unicode-bom-middle": "global:\n  router_id: a\ufeffb\n  log_level: loud\n",
        "very-long-key": "x" * 5000 + ": 1\n",
        "very-long-line": "global:\n  router_id: " + "y" * 200_000 + "\n  log_level: loud\n",
        "many-unknown-keys": "".join(f"key{i}: {i}\n" for i in range(2000)),
        "merge-of-scalar": "global:\n  <<: 5\n",
        "merge-of-list-of-scalars": "global:\n  <<: [1, 2]\n",
        "null-key": "~: 1\n",
        "bool-key-section": "on: 1\n",
    }
    for name, text in cases.items():
        yield _one(f"syntax-{name}", text)


def control_characters() -> Iterator[HostileConfig]:
    allowed = {0x09, 0x0A, 0x0D}
    for code in [*range(0x00, 0x20), 0x7F, 0x80, 0x9F, 0xFFFE, 0xFFFF]:
        if code in allowed:
            continue
        char = chr(code)
        yield _one(f"control-{code:04x}-value", f'global:\n  router_id: "a{char}b"\n')
        if code in (0x00, 0x07, 0x1B, 0x7F):
            yield _one(f"control-{code:04x}-key", f"glo{char}bal: {{}}\n")
            yield _one(f"control-{code:04x}-comment", f"# a{char}b\nglobal: {{}}\n")
    for escaped in ("\\0", "\\x00", "\\u0000"):
        yield _one(f"nul-escaped-{escaped[1:]}", f'global:\n  router_id: "a{escaped}b"\n')
    yield _one("crlf-in-value", 'global:\n  router_id: "a\\r\\nb"\n  log_level: loud\n')


def encodings() -> Iterator[HostileConfig]:
    text = "global:\n  router_id: é\n  log_level: loud\n"
    yield _one("encoding-latin1", text.encode("latin-1"))
    yield _one("encoding-utf16le-bom", text.encode("utf-16"))
    yield _one("encoding-utf16be", text.encode("utf-16-be"))
    yield _one("encoding-utf32", text.encode("utf-32"))
    yield _one("encoding-cp1252-quotes", b"global:\n  router_id: \x93a\x94\n")
    yield _one("encoding-lone-continuation", b"global:\n  router_id: \x80\n")
    yield _one("encoding-overlong-slash", b"global:\n  router_id: \xc0\xaf\n")
    yield _one("encoding-surrogate", b"global:\n  router_id: \xed\xa0\x80\n")
    yield _one("encoding-truncated", b"global:\n  router_id: \xe2\x82\n")
    yield _one("encoding-nul-bytes", b"global:\n  router_id: a\x00b\n")
    yield _one("encoding-all-nul", b"\x00" * 4096)
    yield _one("encoding-random-binary", bytes(range(256)) * 16)
    yield _one("encoding-bom-then-garbage", b"\xef\xbb\xbf\xff\xfe")
    yield _one("encoding-utf8-bom-bad-value", "\ufeffglobal:\n  log_level: loud\n".encode())


def depth() -> Iterator[HostileConfig]:
    for n in (51, 100, 249, 1000, 10_000, 100_000):
        yield _one(f"depth-flow-list-{n}", "global: " + "[" * n + "]" * n + "\n")
    for n in (60, 500):
        yield _one(f"depth-flow-map-{n}", "global: " + "{a: " * n + "1" + "}" * n + "\n")
        yield _one(f"depth-unclosed-{n}", "global: " + "[" * n + "\n")
        block = "".join("  " * i + f"k{i}:\n" for i in range(n)) + "  " * n + "v\n"
        yield _one(f"depth-block-{n}", block)
    # shallow as written, deep once its aliases are expanded
    chain = "a0: &a0 [[[[[[[[[[x]]]]]]]]]]\n" + "".join(
        f"a{i}: &a{i} [[[[[[[[[[*a{i - 1}]]]]]]]]]]\n" for i in range(1, 8)
    )
    yield _one("depth-through-aliases", chain)


def size() -> Iterator[HostileConfig]:
    mib = 1024 * 1024
    yield _one("size-file-over-limit", b"# padding\n" * (5 * mib // 10))
    parts = {f"conf.d/{i}.yaml": b"#" * (3 * mib) + b"\n" for i in range(6)}
    yield HostileConfig("size-total-over-limit", {MAIN: b"include: conf.d/*.yaml\n", **parts})
    yield _one("size-long-string-value", "global:\n  router_id: " + "z" * 300_000 + "\n  x: 1\n")
    wide = "vrrp_instances:\n  VI_1:\n    interface: eth0\n    virtual_router_id: 51\n"
    wide += "    virtual_ipaddress: [" + ", ".join("192.0.2.1" for _ in range(5000)) + "]\n"
    yield _one("size-5000-vips", wide)
    # Dense YAML just under the value limit (MAX_NODES), broken at its end: the most a
    # file within the limits can cost before its error is found.
    line = "- [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p]\n"
    yield _one("size-near-value-limit-broken-at-end", "x:\n" + line * 11_700 + "y: [\n")
    # Near the largest real configuration (3,000 instances, each tracking a check), valid
    # YAML whose one error is semantic and late: everything is read and validated first.
    big = instances(3000)
    yield _one("size-3000-instances-unknown-track-late", _last_track(big, "nosuch"))
    # the next-to-last instance takes the last one's VRID on the same interface
    vrid_2999 = f"    interface: veth11\n    virtual_router_id: {2999 % 255}\n"
    yield _one(
        "size-3000-instances-duplicate-vrid-late",
        big.replace(vrid_2999, f"    interface: veth11\n    virtual_router_id: {2999 % 255 + 1}\n"),
    )


def instances(count: int, *, tracking: bool = True) -> str:
    """``count`` VRRP instances (255 per interface), each with an address and (``tracking``)
    tracking one check: the shape and size of the largest configurations halo is run with."""
    out = ["checks:", "  web: {type: tcp, port: 80}"] if tracking else []
    out.append("vrrp_instances:")
    for i in range(count):
        out += [
            f"  VI_{i}:",
            f"    interface: veth{i // 255}",
            f"    virtual_router_id: {i % 255 + 1}",
            "    priority: 100",
            "    advert_int: 1",
            f"    virtual_ipaddress: [198.51.{i // 250}.{i % 250 + 1}/24]",
        ]
        out += ["    track: [{check: web}]"] if tracking else []
    return "\n".join(out) + "\n"


def _last_track(text: str, check: str) -> str:
    """``text`` with its last instance tracking ``check`` instead."""
    at = text.rindex("{check: web}")
    return text[:at] + f"{{check: {check}}}" + text[at + len("{check: web}") :]


def numbers() -> Iterator[HostileConfig]:
    fields = {
        "virtual_router_id": ("vrrp_instances", "VI_1"),
        "priority": ("vrrp_instances", "VI_1"),
        "advert_int": ("vrrp_instances", "VI_1"),
        "preempt_delay": ("vrrp_instances", "VI_1"),
    }
    values: dict[str, str] = {
        "digits-400": "9" * 400,
        "digits-4301": "9" * 4301,
        "digits-100000": "9" * 100_000,
        "negative-400": "-" + "9" * 400,
        "hex-huge": "0x" + "f" * 5000,
        "octal-huge": "0o" + "7" * 5000,
        "float-1e400": "1e400",
        "float-neg-1e400": "-1e400",
        "float-1e308": "1.0e308",
        "nan": ".nan",
        "inf": ".inf",
        "neg-inf": "-.inf",
        "sexagesimal": "190:20:30",
        "underscore": "1_000_000_000_000_000_000",
    }
    for key, (section, name) in fields.items():
        for label, raw in values.items():
            text = (
                f"{section}:\n  {name}:\n    interface: eth0\n    virtual_ipaddress: [192.0.2.51]\n"
            )
            text += "    virtual_router_id: 51\n" if key != "virtual_router_id" else ""
            yield _one(f"number-{key}-{label}", text + f"    {key}: {raw}\n")
    for label, raw in (
        ("duration-huge", "'" + "9" * 400 + "s'"),
        ("duration-nan", ".nan"),
        ("duration-inf", ".inf"),
        ("duration-1e300h", "'1e300h'"),
        ("duration-long-digits", "'" + "1" * 60 + "h'"),
    ):
        check = "checks:\n  c:\n    type: tcp\n    connect_port: 80\n"
        yield _one(f"number-check-interval-{label}", check + f"    interval: {raw}\n")


def alias_bombs() -> Iterator[HostileConfig]:
    def laughs(levels: int, width: int, tail: str) -> str:
        out = "x0: &x0 [" + ", ".join(["lol"] * width) + "]\n"
        for i in range(1, levels):
            out += f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * width) + "]\n"
        return out + tail

    yield _one("alias-billion-laughs", laughs(9, 10, "global: {}\n"))
    yield _one("alias-laughs-duplicate-key", laughs(9, 10, "global:\n  a: 1\n  a: 2\n"))
    yield _one("alias-laughs-small-dup-key", laughs(4, 10, "dup: 1\ndup: 2\n"))
    yield _one("alias-laughs-in-instance", laughs(7, 10, "") + "vrrp_instances:\n  VI_1: *x6\n")
    for leaves in (5, 6):
        template = "t0: &t0 ['${state}', '${state}', '${state}', '${state}', '${state}', x]\n"
        for i in range(1, leaves + 2):
            template += f"t{i}: &t{i} [" + ", ".join([f"*t{i - 1}"] * 10) + "]\n"
        doc = (
            template.replace("t", "hook_t")
            + "notifiers:\n  n:\n    type: webhook\n    url: https://hooks.example.org/x\n"
            + f"    template: {{text: *hook_t{leaves + 1}}}\n"
        )
        yield _one(f"alias-webhook-template-1e{leaves}", doc)
    yield _one("alias-recursive-list", "global: &g [*g]\n")
    yield _one("alias-recursive-map", "global: &g {a: *g}\n")
    yield _one(
        "alias-merge-bomb",
        "d0: &d0 {a: 1, b: 2}\n"
        + "".join(
            f"d{i}: &d{i} {{<<: [*d{i - 1}], k{i}: [*d{i - 1}, *d{i - 1}]}}\n" for i in (1, 2)
        )
        + "global:\n  <<: *d2\n",
    )


def includes() -> Iterator[HostileConfig]:
    inst = _text(_doc())
    yield _one("include-self", b"include: halo.yaml\n" + inst)
    yield HostileConfig(
        "include-loop-two",
        {MAIN: b"include: a.yaml\n" + inst, "a.yaml": b"include: halo.yaml\nchecks: {}\n"},
    )
    yield HostileConfig(
        "include-loop-three",
        {
            MAIN: b"include: a.yaml\n",
            "a.yaml": b"include: b.yaml\nchecks: {}\n",
            "b.yaml": b"include: a.yaml\nnotifiers: {}\n",
        },
    )
    # diamonds: every file of a level includes every file of the next
    width, levels = 4, 8
    files = {MAIN: b"include: l0/*.yaml\n" + inst}
    for lvl in range(levels):
        for j in range(width):
            nxt = b"include: ../l%d/*.yaml\n" % (lvl + 1) if lvl + 1 < levels else b""
            files[f"l{lvl}/{j}.yaml"] = nxt + b"checks: {}\n"
    yield HostileConfig("include-diamond-4x8", files)
    yield HostileConfig(
        "include-same-twice",
        {MAIN: b"include: [a.yaml, ./a.yaml]\n" + inst, "a.yaml": b"checks: {}\n"},
    )
    for device in ("/dev/zero", "/dev/urandom", "/dev/null", "/dev/full", "/dev/tty"):
        yield _one(f"include-device-{device[5:]}", f"include: {device}\n".encode() + inst)
    yield _one("include-proc-mem", b"include: /proc/self/mem\n" + inst)
    yield _one("include-directory", b"include: /\n" + inst)
    yield _one("include-shadow", b"include: /etc/shadow\n" + inst)
    yield _one("include-passwd", b"include: /etc/passwd\n" + inst)
    yield _one("include-binary", b"include: /bin/sh\n" + inst)
    yield _one("include-os-release", b"include: /etc/os-release\n" + inst)
    yield _one("include-missing", b"include: nowhere.yaml\n" + inst)
    yield _one("include-number", b"include: 5\n" + inst)
    yield _one("include-mapping", b"include: {a: 1}\n" + inst)
    yield _one("include-empty-string", b"include: ''\n" + inst)
    yield _one("include-nul", b'include: "a\\0b"\n' + inst)
    yield _one("include-long-name", b"include: " + b"n" * 5000 + b"\n" + inst)
    yield _one("include-glob-devices", b"include: /dev/null*\n" + inst)
    yield HostileConfig(
        "include-fifo", {MAIN: b"include: pipe.yaml\n" + inst}, {"pipe.yaml": "fifo"}
    )
    yield HostileConfig(
        "include-subdir", {MAIN: b"include: sub.yaml\n" + inst}, {"sub.yaml": "dir"}
    )
    yield HostileConfig(
        "include-symlink-zero",
        {MAIN: b"include: z.yaml\n" + inst},
        {"z.yaml": "symlink:/dev/zero"},
    )
    yield HostileConfig(
        "include-dangling-symlink",
        {MAIN: b"include: d.yaml\n" + inst},
        {"d.yaml": "symlink:/nonexistent/x.yaml"},
    )
    yield HostileConfig(
        "include-symlink-loop",
        {MAIN: b"include: s1.yaml\n" + inst},
        {"s1.yaml": "symlink:s2.yaml", "s2.yaml": "symlink:s1.yaml"},
    )
    # unreadable for anyone but root; its content is wrong too, so root gets an error as well
    yield HostileConfig(
        "include-unreadable",
        {MAIN: b"include: secret.yaml\n" + inst, "secret.yaml": b"checks: [oops]\n"},
        {"secret.yaml": "mode000"},
    )
    yield HostileConfig(
        "include-error-inside",
        {MAIN: b"include: a.yaml\n" + inst, "a.yaml": b"checks: {c: {type: nope}}\n"},
    )
    yield HostileConfig(
        "include-syntax-inside",
        {MAIN: b"include: a.yaml\n" + inst, "a.yaml": b"checks: [\n"},
    )
    yield HostileConfig(
        "include-defines-twice",
        {
            MAIN: b"include: a.yaml\n" + inst,
            "a.yaml": _text({"vrrp_instances": {"VI_1": INSTANCE}}),
        },
    )


# --------------------------------------------------------------------------- every field


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], optional
        return typing.Union[tuple(args)], optional  # noqa: UP007 - built at run time
    return tp, False


def _bad_values(tp: Any, meta: tuple[Any, ...]) -> list[tuple[str, Any]]:
    """Values that ``tp`` with ``meta`` must refuse, each with a short label."""
    inner, optional = _unwrap(tp)
    out: list[tuple[str, Any]] = []
    if not optional and not dataclasses.is_dataclass(inner):  # null means {} for a section
        out.append(("null", None))
    rng = next((m for m in meta if isinstance(m, Range)), None)
    length = next((m for m in meta if isinstance(m, Length)), None)
    origin = typing.get_origin(inner)
    if inner is bool:
        out += [("string", "maybe"), ("number", 2), ("list", [True])]
    elif inner is int:
        out += [("string", "x"), ("float", 1.5), ("list", [1]), ("map", {"a": 1})]
        if rng and rng.min is not None:
            out.append(("below-min", math.floor(rng.min) - 1))
        if rng and rng.max is not None:
            out.append(("above-max", math.ceil(rng.max) + 1))
        out.append(("huge", 10**90))
    elif inner is float or inner is Seconds:
        out += [("string", "soon"), ("nan", math.nan), ("inf", math.inf), ("negative", -1)]
        out += [("list", [1]), ("huge", 10**90)]
        if rng and rng.max is not None and rng.max < 1e9:
            out.append(("above-max", rng.max * 2 + 1))
        if rng and rng.min is not None and rng.min > 0:
            out.append(("zero", 0))
    elif inner is str:
        out += [("list", ["a"]), ("map", {"a": 1}), ("nul", "a\0b")]
        if length and length.max is not None:
            out.append(("too-long", "x" * (length.max + 1)))
    elif origin is Literal:
        out += [("unknown", "NO_SUCH_CHOICE"), ("list", ["x"])]
    elif inner in (ipaddress.IPv4Address, ipaddress.IPv6Address) or _is_ip_union(inner):
        out += [("not-an-address", "300.1.2.3"), ("number", 7), ("list", ["192.0.2.1"])]
    elif origin in (list, tuple):
        out += [("map", {"a": 1})]
        if length and length.max is not None:
            pass  # a list of too many valid items would need a valid item: covered elsewhere
    elif origin is dict:
        out += [("list", [1, 2]), ("string", "x")]
    elif hasattr(inner, "parse"):  # a custom scalar (an address, a secret): not a list
        out += [("list-of-maps", [{"a": 1}])]
    elif dataclasses.is_dataclass(inner):
        out += [("string", "x"), ("list", [1]), ("map-unknown-key", {"no_such_key": 1})]
    return out  # Any (a template): nothing is wrong


def _is_ip_union(tp: Any) -> bool:
    args = typing.get_args(tp)
    return bool(args) and all(
        a in (ipaddress.IPv4Address, ipaddress.IPv6Address) for a in args if a is not type(None)
    )


def _field_cases(
    prefix: str, cls: type, place: Callable[[dict[str, Any]], dict[str, Any]], base: dict[str, Any]
) -> Iterator[HostileConfig]:
    """A case per bad value of each field of ``cls``, written at ``place(item)``."""
    for f in fields_of(cls):
        if any(isinstance(m, PluginRef) for m in f.meta) or f.key == "extensions":
            continue
        for label, value in _bad_values(f.type, f.meta):
            item = {**base, f.key: value}
            yield HostileConfig(f"field-{prefix}-{f.key}-{label}", {MAIN: _text(place(item))})
        if f.required and f.key in base:
            item = {k: v for k, v in base.items() if k != f.key}
            yield HostileConfig(f"field-{prefix}-{f.key}-missing", {MAIN: _text(place(item))})
    yield HostileConfig(
        f"field-{prefix}-unknown-key", {MAIN: _text(place({**base, "no_such_option": 1}))}
    )


def every_field(schemas: Mapping[tuple[str, str], type]) -> Iterator[HostileConfig]:
    vs_base: dict[str, Any] = {"address": "192.0.2.80", "port": 80}
    rs_base: dict[str, Any] = {"address": "192.0.2.81", "port": 80}
    sections: list[tuple[str, type, Callable[[dict[str, Any]], dict[str, Any]], dict[str, Any]]]
    sections = [
        ("instance", VrrpInstance, lambda i: {"vrrp_instances": {"VI_1": i}}, dict(INSTANCE)),
        ("global", GlobalConfig, lambda g: _doc(**{"global": g}), {}),
        (
            "auth",
            Authentication,
            lambda a: {"vrrp_instances": {"VI_1": {**INSTANCE, "authentication": a}}},
            {"auth_pass": "secret"},
        ),
        (
            "track",
            Track,
            lambda t: {"vrrp_instances": {"VI_1": {**INSTANCE, "track": [t]}}},
            {"interface": "eth1"},
        ),
        (
            "sync-group",
            SyncGroup,
            lambda g: _doc(vrrp_sync_groups={"G": g}),
            {"group": ["VI_1"]},
        ),
        ("virtual-server", VirtualServer, lambda v: {"virtual_servers": [v]}, vs_base),
        (
            "real-server",
            RealServer,
            lambda r: {"virtual_servers": [{**vs_base, "real_servers": [r]}]},
            rs_base,
        ),
    ]
    for prefix, cls, place, base in sections:
        yield from _field_cases(prefix, cls, place, base)
    for (kind, type_name), cls in sorted(schemas.items()):
        if (kind, type_name) not in BASES:
            continue  # a third-party plugin: no known valid base to start from
        section = SECTION_OF[kind]
        plugin_base = {"type": type_name, **BASES[kind, type_name]}

        def place(item: dict[str, Any], section: str = section) -> dict[str, Any]:
            return _doc(**{section: {"x": item}})

        yield from _field_cases(f"{kind}-{type_name}", cls, place, plugin_base)


# --------------------------------------------------------------------------- conflicts


def conflicts() -> Iterator[HostileConfig]:
    def inst(**changes: Any) -> dict[str, Any]:
        return {**INSTANCE, **changes}

    vrrp = "vrrp_instances"
    cases: dict[str, dict[str, Any]] = {
        "same-vrid": {vrrp: {"A": inst(), "B": inst(virtual_ipaddress=["192.0.2.52"])}},
        "same-vip-two-instances": {vrrp: {"A": inst(), "B": inst(virtual_router_id=52)}},
        "same-vip-twice": {vrrp: {"A": inst(virtual_ipaddress=["192.0.2.5", "192.0.2.5/24"])}},
        "vip-excluded-twice": {vrrp: {"A": inst(virtual_ipaddress_excluded=["192.0.2.51"])}},
        "vip-unspecified": {vrrp: {"A": inst(virtual_ipaddress=["0.0.0.0"])}},
        "vip-unspecified-v6": {vrrp: {"A": inst(version=3, virtual_ipaddress=["::"])}},
        "vip-multicast": {vrrp: {"A": inst(virtual_ipaddress=["224.0.0.18"])}},
        "vip-multicast-v6": {vrrp: {"A": inst(version=3, virtual_ipaddress=["ff02::12"])}},
        "vip-broadcast": {vrrp: {"A": inst(virtual_ipaddress=["255.255.255.255"])}},
        "vip-loopback": {vrrp: {"A": inst(virtual_ipaddress=["127.0.0.1"])}},
        "vip-loopback-v6": {vrrp: {"A": inst(version=3, virtual_ipaddress=["::1"])}},
        "no-interface-no-source": {vrrp: {"A": inst(interface=None)}},
        "vip-mixed-families": {
            vrrp: {"A": inst(version=3, virtual_ipaddress=["192.0.2.1", "2001:db8::1"])}
        },
        "vip-v6-in-v2": {vrrp: {"A": inst(virtual_ipaddress=["2001:db8::1"])}},
        "vip-bad-option": {vrrp: {"A": inst(virtual_ipaddress=["192.0.2.1 dev"])}},
        "vip-bad-brd": {vrrp: {"A": inst(virtual_ipaddress=["192.0.2.1 brd nope"])}},
        "vip-label-v6": {vrrp: {"A": inst(version=3, virtual_ipaddress=["2001:db8::1 label x"])}},
        "peer-multicast": {vrrp: {"A": inst(unicast_peer=["224.0.0.18"])}},
        "peer-broadcast": {vrrp: {"A": inst(unicast_peer=["255.255.255.255"])}},
        "peer-unspecified": {vrrp: {"A": inst(unicast_peer=["0.0.0.0"])}},
        "peer-family": {
            vrrp: {"A": inst(unicast_src_ip="192.0.2.1", unicast_peer=["2001:db8::2"])}
        },
        "src-family": {vrrp: {"A": inst(unicast_src_ip="2001:db8::1")}},
        "v3-with-auth": {vrrp: {"A": inst(version=3, authentication={"auth_pass": "x"})}},
        "v2-fraction-interval": {vrrp: {"A": inst(advert_int=0.5)}},
        "v3-interval-too-long": {vrrp: {"A": inst(version=3, advert_int=41)}},
        "auth-nul": {vrrp: {"A": inst(authentication={"auth_pass": "ab\0"})}},
        "track-two-kinds": {vrrp: {"A": inst(track=[{"interface": "eth1", "file": "/x"}])}},
        "track-nothing": {vrrp: {"A": inst(track=[{"weight": 5}])}},
        "track-unknown-check": {vrrp: {"A": inst(track=[{"check": "nope"}])}},
        "bad-instance-name": {vrrp: {"A B": inst()}},
        "sync-unknown-member": {vrrp: {"A": inst()}, "vrrp_sync_groups": {"G": {"group": ["B"]}}},
        "sync-member-twice": {
            vrrp: {"A": inst()},
            "vrrp_sync_groups": {"G": {"group": ["A"]}, "H": {"group": ["A"]}},
        },
        "state-dir-nul": {"global": {"state_dir": "/a\0b"}, vrrp: {"A": inst()}},
        "vs-twice": {
            "virtual_servers": [
                {"address": "192.0.2.80", "port": 80},
                {"address": "192.0.2.80", "port": 80},
            ]
        },
        "vs-fwmark-twice": {"virtual_servers": [{"fwmark": 1}, {"fwmark": 1}]},
        "vs-neither": {"virtual_servers": [{"port": 80}]},
        "vs-both": {"virtual_servers": [{"address": "192.0.2.80", "fwmark": 1}]},
        "vs-sorry-unclosed": {
            "virtual_servers": [{"address": "192.0.2.80", "port": 80, "sorry_server": "[::1"}]
        },
        "vs-sorry-junk-after": {
            "virtual_servers": [{"address": "192.0.2.80", "port": 80, "sorry_server": "[::1]x"}]
        },
        "vs-sorry-port-huge": {
            "virtual_servers": [
                {"address": "192.0.2.80", "port": 80, "sorry_server": "192.0.2.9 " + "9" * 5000}
            ]
        },
        "rs-twice": {
            "virtual_servers": [
                {
                    "address": "192.0.2.80",
                    "port": 80,
                    "real_servers": [{"address": "192.0.2.9"}, {"address": "192.0.2.9"}],
                }
            ]
        },
        "quorum-unclosed-quote": {
            "virtual_servers": [{"address": "192.0.2.80", "port": 80, "quorum_up": "/bin/x 'a"}]
        },
        "rs-notify-nul": {
            "virtual_servers": [
                {
                    "address": "192.0.2.80",
                    "port": 80,
                    "real_servers": [{"address": "192.0.2.9", "notify_up": "/bin/x\0"}],
                }
            ]
        },
        "check-interval-zero": {
            "checks": {"c": {"type": "tcp", "connect_port": 80, "interval": 0}}
        },
        "check-timeout-zero": {"checks": {"c": {"type": "tcp", "connect_port": 80, "timeout": 0}}},
        "check-timeout-nan": {
            "checks": {"c": {"type": "tcp", "connect_port": 80, "timeout": math.nan}}
        },
        "check-interval-inf": {
            "checks": {"c": {"type": "tcp", "connect_port": 80, "interval": math.inf}}
        },
        "check-notify-unclosed": {
            "checks": {"c": {"type": "tcp", "connect_port": 80, "notify_up": '/bin/x "a'}}
        },
        "check-unknown-type": {"checks": {"c": {"type": "telepathy"}}},
        "check-no-type": {"checks": {"c": {"interval": 1}}},
        "notify-unclosed-quote": {"notifiers": {"n": {"type": "script", "notify": "/bin/x 'a"}}},
        "notify-nul": {"notifiers": {"n": {"type": "script", "notify_master": "/bin/x\0y"}}},
        "webhook-header-crlf": {
            "notifiers": {
                "n": {
                    "type": "webhook",
                    "url": "https://hooks.example.org/x",
                    "headers": {"X-A": "a\r\nX-Injected: 1"},
                }
            }
        },
        "webhook-port-huge": {"notifiers": {"n": {"type": "webhook", "url": "http://h:99999/"}}},
        "webhook-not-a-url": {"notifiers": {"n": {"type": "webhook", "url": "ftp://h/x"}}},
        "email-to-crlf": {
            "notifiers": {
                "n": {
                    "type": "email",
                    "smtp_server": "192.0.2.25",
                    "notification_email": ["a@example.org\r\nBcc: b@example.org"],
                }
            }
        },
        "email-from-crlf": {
            "notifiers": {
                "n": {
                    "type": "email",
                    "smtp_server": "192.0.2.25",
                    "notification_email": ["a@example.org"],
                    "notification_email_from": "h@example.org\nBcc: x@example.org",
                }
            }
        },
        "section-wrong-type": {"vrrp_instances": ["VI_1"]},
        "global-defs-and-global": {"global": {}, "global_defs": {}},
    }
    for name, doc in cases.items():
        yield HostileConfig(f"conflict-{name}", {MAIN: _text(doc)})


def schemas_of(installed: Any) -> dict[tuple[str, str], type]:
    """``(kind, type)`` → schema class of each checker, notifier and backend type that
    ``installed`` (a ``halo_core.plugins.Plugins``) has: what :func:`corpus` takes."""
    return {
        (kind, name): installed.schema_for(kind, name)
        for kind in SECTION_OF
        for name in installed.names(kind)
    }


def corpus(schemas: Mapping[tuple[str, str], type]) -> list[HostileConfig]:
    """Every case, each name unique."""
    out = [
        *syntax(),
        *control_characters(),
        *encodings(),
        *depth(),
        *size(),
        *numbers(),
        *alias_bombs(),
        *includes(),
        *every_field(schemas),
        *conflicts(),
    ]
    names = [c.name for c in out]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise AssertionError(f"case names used twice: {sorted(dupes)}")
    return out
