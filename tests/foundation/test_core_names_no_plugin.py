"""The core names no plugin: no first-party plugin's name, distribution, package or option
appears in ``core/src``. The names come from the installed plugins themselves (entry
points, declared types and their schemas), so a new plugin is covered without editing this
test. What the core must know of a plugin it learns through the plugin API: capabilities a
type provides (``PluginType.provides``) and options a plugin adds to the core's sections
(``halo_config_extensions``)."""

from __future__ import annotations

import ast
import dataclasses
import importlib.metadata
import inspect
import re
from pathlib import Path

from halo_core import hookspecs, plugin_api, plugins
from halo_core.config import model
from halo_core.schema import fields_of, keys_of

CORE = Path(__file__).resolve().parents[2] / "core" / "src" / "halo_core"

# Words a plugin uses that are the core's own vocabulary too; each with why.
GENERIC = {
    "script": "the core runs scripts itself (vrrp_script checks' notify_up/down, pools)",
    "key": "a mapping key: the config loader's and the schema validator's word",
    "env": "a process environment: the script runner and the event fields it fills",
    "user": "the user a script runs as (global script_user)",
    "command": "a script's command line, and argparse's sub-command",
    "notify": "a notifier's method in the plugin API (Notifier.notify)",
    "server": "a real server, the pools' word",
    "subject": "what an event is about (instance, group, service), in the event filters",
    "template": "the event-field templates the core renders for every notifier",
    "body": "a packet's or a netlink message's body in the codecs",
    "window": "a time window in the VRRP state machine",
    "table": "the aligned text table commands print (text_table)",
    "headers": "a text table's column headers",
    "payload": "a packet's payload in the VRRP codec and transport",
    "size": "a struct's or a buffer's size in the codecs",
    "file": "the config file, track_file and the pid file: the core's own word",
    "ping": "the supervisor's liveness message to the worker (ping / pong)",
    "process": "an operating-system process: the VRRP process, the worker, a script's",
    "ssl": "the standard library's TLS module, which the VRRP process keeps out of asyncio",
}
# plugin_api.FIRST_PARTY_TYPES, the one table of first-party types and their distributions
# (the install hint of an unknown type or a missing capability), names them; nothing else does.
ALLOWED_HITS = {
    ("plugin_api.py", word)
    for (_, type_name), dist in plugin_api.FIRST_PARTY_TYPES.items()
    for word in (type_name, dist)
}


def _core_keys() -> set[str]:
    """Every key of the core's own schemas: those words belong to the core."""
    classes = [c for _, c in inspect.getmembers(model, dataclasses.is_dataclass)]
    classes += [
        plugin_api.CheckerConfig,
        plugin_api.NotifierConfig,
        plugin_api.BackendConfig,
        plugin_api.PluginsConfig,
    ]
    return {
        k for c in classes if isinstance(c, type) for f in fields_of(c) for k in (f.key, *f.aliases)
    }


def _plugin_vocabulary() -> tuple[dict[str, str], dict[str, str]]:
    """(names, options): each word with where it comes from."""
    names: dict[str, str] = {}
    for ep in importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
        if ep.dist is None or not ep.dist.name.startswith("halo-"):
            continue  # first-party only
        names[ep.name] = "entry point"
        names[ep.dist.name] = "distribution"
        names[ep.value.split(":")[0].split(".")[0]] = f"package of {ep.dist.name}"
    loaded = plugins.load()
    assert not loaded.errors, loaded.errors
    core_keys = _core_keys()
    options: dict[str, str] = {}
    for kind, by_name in loaded.types.items():
        for name, ptype in by_name.items():
            names[name] = f"{kind} type"
            for f in fields_of(ptype.schema):
                for key in (f.key, *f.aliases):
                    if key not in core_keys:
                        options[key] = f"option of the {name} {kind}"
    for point, by_plugin in loaded.extensions.items():
        for name, schema in by_plugin.items():
            for key in keys_of(schema) - core_keys:
                options[key] = f"{point} option added by {name}"
    for word in GENERIC:
        names.pop(word, None)
        options.pop(word, None)
    return names, options


def _hits(path: Path, names: dict[str, str], options: dict[str, str]) -> list[str]:
    word = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, names)) + r")(?![\w-])")
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        found: list[tuple[str, str]] = []
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [(w, names[w]) for w in word.findall(node.value)]
            found += [(node.value, options[node.value])] if node.value in options else []
        idents: list[str] = []
        if isinstance(node, ast.Name):
            idents = [node.id]
        elif isinstance(node, ast.Attribute):
            idents = [node.attr]
        elif isinstance(node, ast.keyword) and node.arg:
            idents = [node.arg]
        elif isinstance(node, ast.ClassDef):
            idents = [
                s.target.id
                for s in node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
            ]
        for ident in idents:
            if ident in names:
                found.append((ident, names[ident]))
            if ident in options:
                found.append((ident, options[ident]))
        rel = path.relative_to(CORE).as_posix()
        for w, what in found:
            if (path.name, w) not in ALLOWED_HITS:
                out.append(f"{rel}:{getattr(node, 'lineno', 0)}: {w!r} ({what})")
    return out


def test_vocabulary_is_derived_from_the_plugins() -> None:
    names, options = _plugin_vocabulary()
    assert {"vip", "halo-backend-vip", "halo_backend_vip", "tcp", "webhook"} <= set(names)
    assert {"garp_master_delay", "connect_port", "url"} <= set(options)


def test_core_names_no_plugin() -> None:
    names, options = _plugin_vocabulary()
    hits = []
    for path in sorted(CORE.rglob("*.py")):
        hits += _hits(path, names, options)
    assert not hits, "the core names plugins:\n" + "\n".join(hits)


def test_first_party_table_is_what_the_plugins_declare() -> None:
    """FIRST_PARTY_TYPES lists every type a first-party distribution provides, with it."""
    loaded = plugins.load()
    declared = {
        (kind, type_name): info.distribution
        for info in loaded.infos
        if info.distribution and info.distribution.startswith("halo-")
        for kind, type_name in info.types
    }
    assert declared == plugin_api.FIRST_PARTY_TYPES
