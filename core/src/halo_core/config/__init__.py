"""Loading a halo configuration: YAML with includes → validated, cross-checked objects.

Errors come out as ``file:line:col: dotted.path: message`` lines, all of them at once, in
file order. Nothing here raises anything but :class:`ConfigError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from halo_core.config.model import HaloConfig, SyncGroup, VrrpInstance
from halo_core.plugin_api import CAPABILITIES, FILTER_STATES, UnknownName, pick
from halo_core.schema import Path, Problem, SchemaError, dotted

if TYPE_CHECKING:
    from halo_core.config.document import Mark
    from halo_core.config.loader import LoadProblem
    from halo_core.plugins import Plugins

# The YAML loader (and PyYAML) is imported by the functions that read files: the VRRP
# process holds a validated model it did not read itself (docs/processes.md) and never
# imports it.

__all__ = ["Config", "ConfigError", "HaloConfig", "load", "load_text"]


@dataclass(frozen=True)
class Located:
    """A problem with its place in the files."""

    mark: Mark
    path: Path | None
    message: str

    def __str__(self) -> str:
        file, line, col = self.mark
        where = dotted(self.path) if self.path is not None else "(file)"
        return f"{file}:{line}:{col}: {where}: {self.message}"


class ConfigError(Exception):
    """An invalid configuration; ``lines`` are the user-facing messages."""

    def __init__(self, problems: list[Located]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.mark, str(p)))
        super().__init__("\n".join(self.lines))

    @property
    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


@dataclass(frozen=True)
class Config:
    """A validated configuration and where it came from."""

    model: HaloConfig
    path: str
    raw: Any  # the loaded document with its marks, for reload diffs and diagnostics

    @property
    def instances(self) -> dict[str, VrrpInstance]:
        return self.model.vrrp_instances

    @property
    def sync_groups(self) -> dict[str, SyncGroup]:
        return self.model.vrrp_sync_groups


def load(path: str, plugins: Plugins | None = None) -> Config:
    """Read, merge, validate and cross-check ``path``. Raises :class:`ConfigError`."""
    from halo_core.config.loader import load_file

    raw, problems = load_file(path)
    return _finish(raw, problems, path, plugins)


def load_text(text: str, filename: str = "<string>", plugins: Plugins | None = None) -> Config:
    from halo_core.config.loader import parse_text

    raw, problems = parse_text(text, filename)
    if raw is None and not problems:
        raw = {}
    return _finish(raw, problems, filename, plugins)


def from_document(raw: Any, path: str, plugins: Plugins | None = None) -> Config:
    """Validate and cross-check a document another process read from ``path`` (with
    :func:`load`'s marks, so that problems are still ``file:line:col``); the worker gets
    its configuration so, and never imports the YAML loader. Raises :class:`ConfigError`."""
    return _finish(raw, [], path, plugins)


def schema_document(plugins: Plugins | None = None) -> dict[str, Any]:
    """The JSON Schema of a configuration file (``halo schema``): the same declarations
    :func:`load` validates with, for the installed plugins, and the ``include`` key the
    loader reads."""
    from halo_core.config.loader import INCLUDE_SCHEMA
    from halo_core.validation import json_schema

    return json_schema(
        HaloConfig,
        plugins=plugins.schemas if plugins else None,
        extensions=plugins.extensions if plugins else None,
        title="halo configuration",
        root_keys={"include": INCLUDE_SCHEMA},
    )


def block_list(raw: Any) -> list[str]:
    """Plugin names blocked by the config, read leniently before validation (validation needs
    the plugins loaded, and which plugins load depends on this)."""
    if not isinstance(raw, dict):
        return []
    section = raw.get("global") or raw.get("global_defs")
    if not isinstance(section, dict):
        return []
    plugins = section.get("plugins")
    block = plugins.get("block") if isinstance(plugins, dict) else None
    return [b for b in block if isinstance(b, str)] if isinstance(block, list) else []


def _finish(
    raw: Any, load_problems: list[LoadProblem], path: str, plugins: Plugins | None
) -> Config:
    from halo_core.config.document import collector_paused

    with collector_paused():  # what validation builds is kept: see collector_paused
        return _validated(raw, load_problems, path, plugins)


def _validated(
    raw: Any, load_problems: list[LoadProblem], path: str, plugins: Plugins | None
) -> Config:
    from halo_core.config.document import locate
    from halo_core.validation import validate  # not loaded by the VRRP process

    located = [_located(raw, p) for p in load_problems]
    if raw is None or any(p.fatal for p in load_problems):
        raise ConfigError(located or [Located((path, 1, 1), None, "empty configuration")])
    if not isinstance(raw, dict):
        raise ConfigError([Located((path, 1, 1), None, "the configuration must be a mapping")])

    def where(problem: Problem) -> Located:
        mark = locate(raw, problem.path, at_key=problem.at_key) or (path, 1, 1)
        return Located(mark, problem.path, problem.message)

    try:
        model = validate(
            HaloConfig,
            raw,
            resolve_plugin=plugins.schema_for if plugins else None,
            plugin_names=plugins.names if plugins else None,
            extensions=plugins.extensions if plugins else None,
            unknown_type=plugins.unknown_type if plugins else None,
        )
    except SchemaError as exc:
        located += [where(p) for p in exc.problems]
        raise ConfigError(located) from None
    located += [where(p) for p in cross_check(model)]
    located += [where(p) for p in notifier_filter_problems(model)]
    if plugins is not None and not plugins.providers("addresses"):
        for name, inst in model.vrrp_instances.items():
            if inst.virtual_ipaddress:
                located.append(
                    where(
                        Problem(
                            ("vrrp_instances", name, "virtual_ipaddress"),
                            "needs a backend that holds these addresses"
                            f" (pip install {CAPABILITIES['addresses']})",
                        )
                    )
                )
    if located:
        raise ConfigError(located)
    return Config(model, path, raw)


def _located(raw: Any, p: LoadProblem) -> Located:
    from halo_core.config.document import path_of

    if p.container is not None and p.key is not None:
        parent = path_of(raw, p.container)
        if parent is not None:
            return Located(p.mark, (*parent, p.key), p.message)
    return Located(p.mark, p.path, p.message)


def cross_check(cfg: HaloConfig) -> Iterable[Problem]:
    """Rules that span sections: references, VRID clashes. (The sections' names follow
    their ``Keys`` pattern in the schema.)"""
    seen_vrid: dict[tuple[str, int, int], str] = {}
    vip_owner: dict[Any, str] = {}
    for name, inst in cfg.vrrp_instances.items():
        # two instances holding one address fight over it: each master adds it, each
        # backup's step-down removes it from under the other
        for field_name in ("virtual_ipaddress", "virtual_ipaddress_excluded"):
            for i, address in enumerate(getattr(inst, field_name)):
                other = vip_owner.setdefault(address.ip, name)
                if other != name:
                    yield Problem(
                        ("vrrp_instances", name, field_name, i),
                        f"{address.ip} is already a virtual address of instance {other!r}",
                    )
        family = inst.family
        key = (inst.interface or str(inst.unicast_src_ip), family, inst.virtual_router_id)
        if key in seen_vrid:
            yield Problem(
                ("vrrp_instances", name, "virtual_router_id"),
                f"VRID {inst.virtual_router_id} on {inst.interface} (IPv{family})"
                f" is already used by {seen_vrid[key]}",
            )
        else:
            seen_vrid[key] = name
        yield from _check_tracks(cfg, inst.track, ("vrrp_instances", name, "track"))
        for i, peer in enumerate(inst.unicast_peer):
            src = inst.unicast_src_ip
            if src is not None and src.version != peer.version:
                yield Problem(
                    ("vrrp_instances", name, "unicast_peer", i),
                    "address family differs from unicast_src_ip",
                )
        src = inst.unicast_src_ip
        if src is not None and inst.virtual_ipaddress:  # noqa: SIM102 - reads as two rules
            if src.version != inst.virtual_ipaddress[0].address.version:
                yield Problem(
                    ("vrrp_instances", name, "unicast_src_ip"),
                    "address family differs from the virtual addresses",
                )

    service_at: dict[tuple[Any, ...], int] = {}
    for i, vs in enumerate(cfg.virtual_servers):
        service = (vs.fwmark, vs.address, vs.port or 0, vs.protocol)
        first = service_at.setdefault(service, i)
        if first != i:
            yield Problem(
                ("virtual_servers", i),
                f"the same service as virtual_servers[{first}] ({vs.label} {vs.protocol})",
            )

    member_of: dict[str, str] = {}
    for gname, group in cfg.vrrp_sync_groups.items():
        for i, member in enumerate(group.group):
            if member not in cfg.vrrp_instances:
                yield Problem(
                    ("vrrp_sync_groups", gname, "group", i), f"no VRRP instance named {member!r}"
                )
            elif member in member_of:
                yield Problem(
                    ("vrrp_sync_groups", gname, "group", i),
                    f"{member!r} is already in sync group {member_of[member]!r}",
                )
            else:
                member_of[member] = gname
        yield from _check_tracks(cfg, group.track, ("vrrp_sync_groups", gname, "track"))


def notifier_filter_problems(cfg: HaloConfig) -> Iterable[Problem]:
    """A notifier's filters name things that exist: a filter that can never match (a
    misspelled instance or state) would leave the notifier silently dead. ``events`` are
    event kinds, ``states`` the states events carry, ``instances`` the VRRP instances, sync
    groups, virtual servers and checks of this configuration (a real server's check, named
    ``SERVICE/SERVER/TYPE``, by its virtual server's name)."""
    from halo_core.events import Event

    def kinds(cls: type[Event]) -> set[str]:
        return {cls.kind}.union(*(kinds(sub) for sub in cls.__subclasses__()))

    services = [vs.label for vs in cfg.virtual_servers]
    known = {
        "events": sorted(kinds(Event) - {Event.kind}),
        "states": list(FILTER_STATES),
        "instances": [*cfg.vrrp_instances, *cfg.vrrp_sync_groups, *services, *cfg.checks],
    }
    what = {
        "events": "event type",
        "states": "state",
        "instances": "instance, sync group, virtual server or check",
    }
    for name, configured in cfg.notifiers.items():
        for key, names in known.items():
            for i, given in enumerate(getattr(configured.config, key, None) or ()):
                value = given.upper() if key == "states" else given
                if key == "instances" and value.split("/")[0] in services and "/" in value:
                    continue
                listed = "configured" if key == "instances" else "known"
                try:
                    pick(what[key], value, names, listed=listed)
                except UnknownName as exc:
                    yield Problem(("notifiers", name, key, i), str(exc))


def _check_tracks(cfg: HaloConfig, tracks: list[Any], path: Path) -> Iterable[Problem]:
    for i, t in enumerate(tracks):
        if t.check is not None and t.check not in cfg.checks:
            yield Problem((*path, i, "check"), f"no check named {t.check!r} in checks")


def plugins_for(config_path: str | None = None) -> Plugins:
    """The installed plugins, less those the configuration at ``config_path`` blocks."""
    from halo_core import plugins

    block: list[str] = []
    if config_path:
        from halo_core.config.loader import load_file

        raw, _ = load_file(config_path)
        block = block_list(raw)
    return plugins.load(block=block)


def load_or_report(path: str, report: Callable[[str], object]) -> tuple[Config, Plugins] | None:
    """Load the plugins and the configuration for a command; on errors ``report`` them (one
    line each) and give None. Every command that reads a configuration uses this, the
    core's and the plugins' alike."""
    try:
        return load_with_plugins(path)
    except ConfigError as exc:
        for line in exc.lines:
            report(line)
        return None


def load_with_plugins(path: str) -> tuple[Config, Plugins]:
    """The installed plugins (less those the file blocks) and the configuration at ``path``
    validated with them. Raises :class:`ConfigError`."""
    from halo_core import plugins
    from halo_core.config.document import collector_paused
    from halo_core.config.loader import load_file

    with collector_paused():  # one collection at the end, not one after each step
        raw, problems = load_file(path)  # read once: the block list, then the validation
        p = plugins.load(block=block_list(raw))
        return _finish(raw, problems, path, p), p


def runtime_problems(config: Config, plugins: Plugins) -> list[str]:
    """One line for each ``type:`` of the configuration whose runtime cannot be imported
    (``halo check``: the daemon would run such a check as failed, and leave out such a
    notifier or backend). The runtimes are imported, nothing is built or started."""
    from halo_core.config.document import locate
    from halo_core.plugins import runtime_import_errors

    uses: dict[tuple[str, str], list[Path]] = {}
    m = config.model
    sections = (("checks", "checker"), ("notifiers", "notifier"), ("backends", "backend"))
    for section, kind in sections:
        for name, configured in getattr(m, section).items():
            uses.setdefault((kind, configured.type), []).append((section, name, "type"))
    for i, vs in enumerate(m.virtual_servers):
        for j, rs in enumerate(vs.real_servers):
            for k, configured in enumerate(rs.checks):
                path = ("virtual_servers", i, "real_servers", j, "checks", k, "type")
                uses.setdefault(("checker", configured.type), []).append(path)
    errors = runtime_import_errors(plugins.type(kind, name) for kind, name in uses)
    return ConfigError(
        [
            Located(
                locate(config.raw, path) or (config.path, 1, 1),
                path,
                f"the runtime of {kind} type {name!r} cannot be imported: {why}",
            )
            for (kind, name), paths in uses.items()
            if (why := errors.get(f"{kind} {name}"))
            for path in paths
        ]
    ).lines


def disabled_checks(config: Config) -> list[str]:
    """One warning line (``file:line:col: path: ...``) for each check that cannot run at all
    (:meth:`~halo_core.plugin_api.CheckerConfig.disabled`): the daemon disables it and the
    instances tracking it ignore it, as keepalived does (``halo check`` says so)."""
    from halo_core.config.document import locate
    from halo_core.plugin_api import CheckerConfig, disabled_reason

    found: list[tuple[tuple[str | int, ...], CheckerConfig]] = []
    m = config.model
    found += [(("checks", name), c.config) for name, c in m.checks.items()]
    for i, vs in enumerate(m.virtual_servers):
        for j, rs in enumerate(vs.real_servers):
            for k, c in enumerate(rs.checks):
                found.append((("virtual_servers", i, "real_servers", j, "checks", k), c.config))
    return [
        str(
            Located(
                locate(config.raw, path) or (config.path, 1, 1),
                path,
                f"disabled: {why}; it will never run, and instances tracking it ignore it"
                " (as keepalived does)",
            )
        )
        for path, checker in found
        if isinstance(checker, CheckerConfig) and (why := disabled_reason(checker))
    ]
