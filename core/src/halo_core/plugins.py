"""Finding and loading plugins.

Every plugin, first-party or not, is found the same way: an entry point in the
``halo.plugins`` group naming a module. Loading is isolated per plugin: one that fails to
import, implements a hook that does not exist (a misspelling), or declares a type another
plugin already declared, is recorded as a load error by name and left out, and the others
load normally. Plugins can be blocked by name with ``HALO_BLOCK_PLUGINS=a,b`` or
``global: {plugins: {block: [a, b]}}``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import halo_core
from halo_core.config.model import EXTENDED_SECTIONS
from halo_core.plugin_api import (
    API_VERSION,
    API_VERSION_ATTRIBUTE,
    CAPABILITIES,
    FIRST_PARTY_TYPES,
    KINDS,
    BackendConfig,
    CheckerConfig,
    NotifierConfig,
    PluginKind,
    PluginType,
)
from halo_core.schema import extension_point, fields_of, keys_of

if TYPE_CHECKING:
    import argparse

    import pluggy

BLOCK_ENV = "HALO_BLOCK_PLUGINS"
EXTENSION_POINTS: dict[str, type] = {
    point[1]: cls for cls in EXTENDED_SECTIONS if (point := extension_point(cls))
}
NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_BASES: dict[str, type] = {
    "checker": CheckerConfig,
    "notifier": NotifierConfig,
    "backend": BackendConfig,
}


@dataclass(frozen=True)
class PluginInfo:
    """What ``halo plugins`` shows about one plugin."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    types: tuple[tuple[str, str], ...] = ()  # (kind, type name)
    options: tuple[str, ...] = ()  # keys added to core sections, as "point.key"


@dataclass(frozen=True)
class LoadError:
    """A plugin that was not loaded, and why."""

    name: str
    distribution: str | None
    message: str


@dataclass(frozen=True)
class Found:
    """An installed plugin as discovery found it: its entry point's name and value
    (``module`` or ``module:attr``), its distribution's name and version. The validating
    child hands these to the worker, which loads the plugins without discovering them
    again (``importlib.metadata``: 2.4 MB, docs/processes.md)."""

    name: str
    value: str
    distribution: str | None
    version: str | None

    def load(self) -> Any:
        """The object the entry point names (as ``EntryPoint.load``)."""
        import importlib

        module_name, _, attrs = self.value.partition(":")
        obj: Any = importlib.import_module(module_name.strip())
        for attr in attrs.split("[")[0].strip().split(".") if attrs.strip() else ():
            obj = getattr(obj, attr)
        return obj


@dataclass
class Plugins:
    """The loaded plugins: pluggy's manager, the types they provide, and what went wrong."""

    _manager: pluggy.PluginManager | None = None
    infos: list[PluginInfo] = field(default_factory=list)
    errors: list[LoadError] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    # blocked entry point → its distribution, and the names HALO_BLOCK_PLUGINS blocked
    blocked_distributions: dict[str, str | None] = field(default_factory=dict)
    blocked_by_env: set[str] = field(default_factory=set)
    types: dict[str, dict[str, PluginType]] = field(default_factory=lambda: {k: {} for k in KINDS})
    # the option schemas plugins add to core sections: point → plugin name → schema
    extensions: dict[str, dict[str, type]] = field(
        default_factory=lambda: {point: {} for point in EXTENSION_POINTS}
    )
    # the sub-commands each plugin added (filled by add_commands): plugin name → names
    commands: dict[str, list[str]] = field(default_factory=dict)
    # every entry point discovery found (blocked and failed ones too), for the worker
    found: list[Found] = field(default_factory=list)

    @property
    def manager(self) -> pluggy.PluginManager:
        """pluggy's manager, made when first needed: the VRRP process holds the address
        backends' types and calls no hook, so it never imports pluggy (0.3 MB)."""
        if self._manager is None:
            self._manager = new_manager()
        return self._manager

    @property
    def hook(self) -> Any:
        return self.manager.hook

    def schema_for(self, kind: str, name: str) -> type | None:
        t = self.types.get(kind, {}).get(name)
        return t.schema if t else None

    def names(self, kind: str) -> list[str]:
        return sorted(self.types.get(kind, {}))

    def schemas(self, kind: str) -> Mapping[str, type]:
        return {n: t.schema for n, t in self.types.get(kind, {}).items()}

    def providers(self, capability: str, kind: str = "backend") -> list[str]:
        """Names of the installed types of ``kind`` that provide ``capability``, sorted."""
        return sorted(n for n, t in self.types.get(kind, {}).items() if capability in t.provides)

    def add_commands(self, subparsers: argparse._SubParsersAction[Any]) -> None:
        """Call each plugin's ``halo_add_commands`` on its own. A plugin whose hook raises
        or adds a command name already taken (argparse refuses it) loses the commands it
        added and becomes a load error; the other plugins' commands are added."""
        # registration order: an installed plugin keeps its command, a later one clashing with
        # it is the one dropped
        for impl in self.hook.halo_add_commands.get_hookimpls():
            name = self.manager.get_name(impl.plugin) or repr(impl.plugin)
            parsers = dict(subparsers._name_parser_map)
            helps = list(subparsers._choices_actions)
            try:
                impl.function(subparsers=subparsers)
                added = [n for n in subparsers._name_parser_map if n not in parsers]
                if added:
                    self.commands[name] = added
            except Exception as exc:  # plugin territory: drop this plugin, keep the others
                subparsers._name_parser_map.clear()
                subparsers._name_parser_map.update(parsers)
                subparsers._choices_actions[:] = helps
                self.drop(name, f"cannot add its commands: {_one_line(exc)}")

    def drop(self, name: str, message: str) -> None:
        """Unload plugin ``name`` after the fact, recording ``message`` as its load error."""
        info = next((i for i in self.infos if i.name == name), None)
        module = self.manager.get_plugin(name)
        if module is not None:
            self.manager.unregister(module)
        if info is not None:
            self.infos.remove(info)
            for kind, type_name in info.types:
                self.types[kind].pop(type_name, None)
            for by_plugin in self.extensions.values():
                by_plugin.pop(name, None)
        self.errors.append(LoadError(name, info.distribution if info else None, message))

    def type(self, kind: str, name: str) -> PluginType:
        return self.types[kind][name]

    def unknown_type(self, kind: str, name: str) -> str:
        """Why no plugin provides ``kind`` type ``name``, in one line: the installed types,
        and, when the plugin that would provide it is known (a first-party type, or an entry
        point named ``KIND-NAME``), that it is blocked, failed to load (with the load
        error), or which distribution to install."""
        text = f"unknown {kind} type {name!r} (installed: {', '.join(self.names(kind)) or 'none'})"
        dist = FIRST_PARTY_TYPES.get((kind, name))
        entry_point = f"{kind}-{name}"

        def provides(plugin: str, distribution: str | None) -> bool:
            return plugin == entry_point or (dist is not None and distribution == dist)

        for plugin in self.blocked:
            if provides(plugin, self.blocked_distributions.get(plugin)):
                how = (
                    BLOCK_ENV
                    if {plugin, self.blocked_distributions.get(plugin)} & self.blocked_by_env
                    else "global.plugins.block"
                )
                return f"{text}: its plugin {plugin} is blocked by {how}"
        for err in self.errors:
            if provides(err.name, err.distribution):
                return f"{text}: its plugin {err.name} failed to load: {err.message}"
        if dist is not None:
            return f"{text}: pip install {dist}"
        # a third-party type: any plugin that is not loaded may be the one
        missing = [f"{e.name} failed to load" for e in self.errors]
        missing += [f"{b} is blocked" for b in self.blocked]
        if missing:
            return f"{text}; not loaded, so maybe providing it: {', '.join(missing)}"
        return text


def new_manager() -> pluggy.PluginManager:
    import pluggy

    from halo_core import hookspecs

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def blocked_names(extra: Iterable[str] = ()) -> set[str]:
    env = os.environ.get(BLOCK_ENV, "")
    return {n.strip() for n in env.split(",") if n.strip()} | set(extra)


def load(
    *,
    block: Iterable[str] = (),
    modules: Iterable[tuple[str, ModuleType | object]] = (),
    entry_points: bool = True,
    found: Iterable[Found] | None = None,
) -> Plugins:
    """Discover and load plugins.

    ``modules`` adds plugin objects directly (for tests and embedding); they go through the
    same checks as entry-point plugins. ``found``: the entry points another process
    discovered (:attr:`Plugins.found`), loaded as if discovered here (the worker).
    """
    plugins = Plugins(new_manager())
    blocked = blocked_names(block)
    plugins.blocked_by_env = blocked_names()
    if found is None and entry_points:
        found = discover()
    for ep in found or ():
        plugins.found.append(ep)
        dist = ep.distribution
        if ep.name in blocked or (dist and dist in blocked):
            plugins.blocked.append(ep.name)
            plugins.blocked_distributions[ep.name] = dist
            continue
        try:
            module = ep.load()
        except Exception as exc:  # any import-time failure is this plugin's, not halo's
            plugins.errors.append(LoadError(ep.name, dist, f"import failed: {_one_line(exc)}"))
            continue
        _register(plugins, ep.name, module, dist, ep.version)
    for name, module in modules:
        if name in blocked:
            plugins.blocked.append(name)
            continue
        _register(plugins, name, module, None, None)
    return plugins


def discover() -> list[Found]:
    """The installed plugins' entry points (group ``halo.plugins``), by name."""
    # here, not at the top: the VRRP process and the worker never discover plugins
    # (importlib.metadata costs 2 MB and tens of milliseconds)
    import importlib.metadata

    from halo_core import hookspecs

    out: list[Found] = []
    for ep in sorted(
        importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP), key=lambda e: e.name
    ):
        # each .name / .version parses the distribution's METADATA again: once is enough
        meta = ep.dist.metadata if ep.dist else None
        dist, dist_version = (meta["Name"], meta["Version"]) if meta else (None, None)
        out.append(Found(ep.name, ep.value, dist, dist_version))
    return out


def _register(
    plugins: Plugins, name: str, module: Any, dist: str | None, version: str | None
) -> None:
    from pluggy import PluginValidationError

    pm = plugins.manager
    incompatible = api_version_problem(module)
    if incompatible:
        plugins.errors.append(LoadError(name, dist, incompatible))
        return
    if pm.has_plugin(name):
        plugins.errors.append(LoadError(name, dist, "a plugin with this name is already loaded"))
        return
    try:
        pm.register(module, name=name)
    except (PluginValidationError, ValueError) as exc:
        plugins.errors.append(LoadError(name, dist, f"invalid hook: {_one_line(exc)}"))
        return
    # A hook implementation whose name matches no hookspec (a misspelling such as
    # halo_startpu) would otherwise be silently ignored.
    unknown = [
        impl.function.__name__
        for hook_name in dir(pm.hook)
        if not hook_name.startswith("_")
        for impl in getattr(pm.hook, hook_name).get_hookimpls()
        if impl.plugin is module and not getattr(pm.hook, hook_name).has_spec()
    ]
    if unknown:
        pm.unregister(module)
        plugins.errors.append(
            LoadError(name, dist, f"unknown hook {unknown[0]!r} (see halo_core.hookspecs)")
        )
        return
    declared: list[tuple[str, str]] = []
    types: list[PluginType] = []
    impl = next((i for i in pm.hook.halo_plugin_types.get_hookimpls() if i.plugin is module), None)
    if impl is not None:
        try:
            declared_types: Any = impl.function()
            types = list(declared_types or [])
            problems = [_check_type(plugins, t) for t in types]
        except Exception as exc:  # a plugin's declaration code is plugin territory
            problems, types = [f"halo_plugin_types failed: {_one_line(exc)}"], []
        problem = next((p for p in problems if p), None)
        if problem:
            pm.unregister(module)
            plugins.errors.append(LoadError(name, dist, problem))
            return
    extensions: dict[str, type] = {}
    impl = next(
        (i for i in pm.hook.halo_config_extensions.get_hookimpls() if i.plugin is module), None
    )
    if impl is not None:
        try:
            declared_extensions: Any = impl.function()
            extensions = dict(declared_extensions or {})
            problem = next(
                filter(None, (_check_extension(plugins, *e) for e in extensions.items())), None
            )
        except Exception as exc:  # a plugin's declaration code is plugin territory
            problem = f"halo_config_extensions failed: {_one_line(exc)}"
        if problem:
            pm.unregister(module)
            plugins.errors.append(LoadError(name, dist, problem))
            return
    for t in types:
        plugins.types[t.kind][t.name] = t
        declared.append((t.kind, t.name))
    for point, schema in extensions.items():
        plugins.extensions[point][name] = schema
    plugins.infos.append(
        PluginInfo(
            name,
            getattr(module, "__name__", repr(module)),
            dist,
            version,
            tuple(declared),
            tuple(f"{p}.{f.key}" for p, schema in extensions.items() for f in fields_of(schema)),
        )
    )


def api_version_problem(module: object) -> str | None:
    """Why ``module`` cannot load with this plugin API (``None`` when it can): it declares
    ``HALO_PLUGIN_API`` for another major version, a newer minor one, or not as
    ``(major, minor)``. Checked before anything of the plugin is called."""
    declared = getattr(module, API_VERSION_ATTRIBUTE, (1, 0))
    ours = ".".join(map(str, API_VERSION))
    if not (
        isinstance(declared, tuple)
        and len(declared) == 2
        and all(type(n) is int and n >= 0 for n in declared)
    ):
        return (
            f"{API_VERSION_ATTRIBUTE} must be (major, minor), e.g. {API_VERSION}, not {declared!r}"
        )
    major, minor = declared
    if major == API_VERSION[0] and minor <= API_VERSION[1]:
        return None
    loads = f"{API_VERSION[0]}.0" + (f" to {ours}" if API_VERSION[1] else "")
    return (
        f"built for plugin API {major}.{minor}, but halo-core {halo_core.version()} provides"
        f" plugin API {ours} (it loads plugins built for {loads})"
    )


def _check_type(plugins: Plugins, t: object) -> str | None:
    if not isinstance(t, PluginType):
        return f"halo_plugin_types returned {type(t).__name__}, not PluginType"
    if t.kind not in KINDS:
        return f"type {t.name!r} has unknown kind {t.kind!r} (one of {', '.join(KINDS)})"
    if t.name in plugins.types[t.kind]:
        return f"{t.kind} type {t.name!r} is already provided by another plugin"
    base = _BASES[t.kind]
    if not (dataclasses.is_dataclass(t.schema) and issubclass(t.schema, base)):
        return f"{t.kind} type {t.name!r}: schema must be a dataclass deriving from {base.__name__}"
    unknown = sorted(set(t.provides) - set(CAPABILITIES))
    if unknown:
        return f"{t.kind} type {t.name!r} provides unknown capability {unknown[0]!r}"
    return None


def _check_extension(plugins: Plugins, point: object, schema: object) -> str | None:
    if point not in EXTENSION_POINTS:
        return f"cannot add options to {point!r} (only to {', '.join(EXTENSION_POINTS)})"
    if not (isinstance(schema, type) and dataclasses.is_dataclass(schema)):
        return f"{point} options: the schema must be a dataclass"
    for f in fields_of(schema):
        if not NAME_RE.fullmatch(f.key):
            return f"{point} option {f.key!r}: the name must be lower-case letters, digits and _"
        if f.required:  # most sections leave a plugin's keys out
            return f"{point} option {f.key!r} needs a default"
    keys = keys_of(schema)
    core = keys & keys_of(EXTENSION_POINTS[str(point)])
    if core:
        return f"{point} option {min(core)!r} is the core's"
    for other, other_schema in plugins.extensions[str(point)].items():
        clash = keys & keys_of(other_schema)
        if clash:
            return f"{point} option {min(clash)!r} is already added by {other!r}"
    return None


_IMPORT_PROBE = """
import json, sys
from halo_core.plugin_api import PluginType
out = {}
for factory in sys.argv[1:]:
    try:
        PluginType("checker", "probe", object, factory).load_factory()
    except BaseException as exc:
        text = " ".join(str(exc).split())
        out[factory] = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
print(json.dumps(out))
"""


def runtime_import_errors(types: Iterable[PluginType]) -> dict[str, str]:
    """Import the runtime factory of each of ``types`` and give why it cannot be, by type
    name (``kind type``), without building or starting anything.

    The imports run in a child interpreter: a runtime's libraries (HTTP, SSH, SMTP clients)
    stay out of the calling process, so that ``halo check`` stays light, and whatever a
    broken module does at import time cannot touch it."""
    by_factory: dict[str, list[PluginType]] = {}
    for t in types:
        if isinstance(t.factory, str):
            by_factory.setdefault(t.factory, []).append(t)
    if not by_factory:
        return {}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _IMPORT_PROBE, *by_factory],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        failed: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        failed = {f: f"the import could not be tried: {_one_line(exc)}" for f in by_factory}
    return {
        f"{t.kind} {t.name}": message
        for factory, message in failed.items()
        for t in by_factory.get(factory, [])
    }


def kind_of(name: str) -> PluginKind | None:
    return name if name in KINDS else None  # type: ignore[return-value]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
