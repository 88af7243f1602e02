"""Plugin discovery and isolation (pluggy, entry-point group ``halo.plugins``)."""

from __future__ import annotations

import json
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pytest

from halo_core import cli, plugins
from halo_core.config import ConfigError, load_text
from halo_core.config.model import HaloConfig
from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import CheckerConfig, NotifierConfig, PluginType
from halo_core.schema import Alias, Doc, Range
from halo_core.validation import json_schema


@dataclass(frozen=True, kw_only=True)
class PingCheck(CheckerConfig):
    host: Annotated[str, Doc("host to ping")]


def make_plugin(name: str = "ping", **hooks: object) -> types.SimpleNamespace:
    @hookimpl
    def halo_plugin_types() -> list[PluginType]:
        return [PluginType("checker", name, PingCheck, "nowhere:Nothing")]

    ns = types.SimpleNamespace(halo_plugin_types=halo_plugin_types, __name__=f"test_{name}")
    for k, v in hooks.items():
        setattr(ns, k, v)
    return ns


def test_first_party_plugins_found_by_entry_point() -> None:
    """First-party plugins come through the same entry-point group as anyone's."""
    p = plugins.load()
    assert "tcp" in p.names("checker")
    info = next(i for i in p.infos if i.name == "checker-tcp")
    assert info.distribution == "halo-checker-tcp"
    assert ("checker", "tcp") in info.types


def test_plugin_type_is_usable_in_config() -> None:
    p = plugins.load(entry_points=False, modules=[("ping", make_plugin())])
    cfg = load_text("checks:\n  c: {type: ping, host: example, fall: 3}\n", "t.yaml", p)
    c = cfg.model.checks["c"]
    assert (c.kind, c.type, c.config.host, c.config.fall) == ("checker", "ping", "example", 3)


def test_plugin_schema_errors_are_located() -> None:
    p = plugins.load(entry_points=False, modules=[("ping", make_plugin())])
    with pytest.raises(ConfigError) as exc:
        load_text("checks:\n  c: {type: ping, hots: x}\n", "t.yaml", p)
    assert exc.value.lines == [
        "t.yaml:2:6: checks.c: missing required key 'host'",
        "t.yaml:2:19: checks.c.hots: unknown key (did you mean 'host'?)",
    ]


def test_misspelled_hook_is_a_load_error() -> None:
    @hookimpl
    def halo_startpu(daemon: object) -> None:
        return None

    bad = make_plugin("bad", halo_startpu=halo_startpu)
    good = make_plugin("good")
    p = plugins.load(entry_points=False, modules=[("bad", bad), ("good", good)])
    assert [e.name for e in p.errors] == ["bad"]
    assert "unknown hook 'halo_startpu'" in p.errors[0].message
    assert p.names("checker") == ["good"]


def test_wrong_hook_signature_is_a_load_error() -> None:
    @hookimpl
    def halo_startup(deamon: object) -> None:
        return None

    p = plugins.load(
        entry_points=False, modules=[("bad", make_plugin("bad", halo_startup=halo_startup))]
    )
    assert p.errors and "invalid hook" in p.errors[0].message


def test_failing_declaration_is_isolated() -> None:
    @hookimpl
    def halo_plugin_types() -> list[PluginType]:
        raise RuntimeError("boom")

    broken = types.SimpleNamespace(halo_plugin_types=halo_plugin_types, __name__="broken")
    p = plugins.load(entry_points=False, modules=[("broken", broken), ("ping", make_plugin())])
    assert p.errors[0].name == "broken" and "RuntimeError: boom" in p.errors[0].message
    assert p.names("checker") == ["ping"]


def test_duplicate_type_is_refused() -> None:
    p = plugins.load(entry_points=False, modules=[("a", make_plugin("x")), ("b", make_plugin("x"))])
    assert [e.name for e in p.errors] == ["b"]
    assert "already provided" in p.errors[0].message


def test_schema_must_derive_from_the_kind_base() -> None:
    @hookimpl
    def halo_plugin_types() -> list[PluginType]:
        return [PluginType("notifier", "n", PingCheck, "x:y")]

    mod = types.SimpleNamespace(halo_plugin_types=halo_plugin_types, __name__="m")
    p = plugins.load(entry_points=False, modules=[("m", mod)])
    assert "deriving from NotifierConfig" in p.errors[0].message
    assert NotifierConfig  # the base a notifier must use


def test_block_by_env_and_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.BLOCK_ENV, "checker-tcp, other")
    p = plugins.load()
    assert "tcp" not in p.names("checker")
    assert "checker-tcp" in p.blocked
    monkeypatch.delenv(plugins.BLOCK_ENV)
    p = plugins.load(block=["halo-checker-tcp"])  # a distribution name works too
    assert "tcp" not in p.names("checker")


def test_config_block_list_is_honoured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from halo_core import cli

    path = tmp_path / "c.yaml"
    path.write_text(
        "global:\n  plugins:\n    block: [checker-tcp]\n"
        "checks:\n  c: {type: tcp, connect_port: 1}\n"
    )
    assert cli.main(["check", "-c", str(path)]) == 1
    assert "unknown checker type 'tcp' (installed:" in capsys.readouterr().err


def test_a_failing_add_commands_breaks_no_other_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`halo --help` loads plugins: one whose commands fail (a bug, a name already taken)
    is reported and the core's and the other plugins' commands stay."""

    @hookimpl
    def halo_add_commands(subparsers: Any) -> None:
        subparsers.add_parser("ping-now", help="ping")

    @hookimpl
    def raising(subparsers: Any) -> None:
        raise RuntimeError("boom")

    @hookimpl
    def clashing(subparsers: Any) -> None:
        subparsers.add_parser("check")

    mods = [
        ("bug", make_plugin("bug", halo_add_commands=raising)),
        ("clash", make_plugin("clash", halo_add_commands=clashing)),
        ("ping", make_plugin("ping", halo_add_commands=halo_add_commands)),
    ]
    parser = cli.build_parser(plugins.load(entry_points=False, modules=mods))
    err = capsys.readouterr().err
    assert "plugin bug: cannot add its commands: RuntimeError: boom" in err
    assert "plugin clash: cannot add its commands" in err
    help_text = parser.format_help()
    assert "ping-now" in help_text and "check" in help_text


# ------------------------------------------------------------- capabilities

INSTANCE = (
    "vrrp_instances:\n  VI_1:\n    interface: eth0\n    virtual_router_id: 51\n"
    "    virtual_ipaddress: [192.0.2.10/24]\n"
)


def holder_plugin(
    name: str = "holder", extensions: dict[str, type] | None = None
) -> types.SimpleNamespace:
    """A backend type that provides addresses (and adds ``extensions`` to core sections)."""
    from halo_core.plugin_api import BackendConfig

    @dataclass(frozen=True, kw_only=True)
    class HolderConfig(BackendConfig):
        pass

    @hookimpl
    def halo_plugin_types() -> list[PluginType]:
        return [
            PluginType(
                "backend", name, HolderConfig, "nowhere:Nothing", provides=frozenset({"addresses"})
            )
        ]

    plugin = extending(extensions or {}, f"test_{name}")
    plugin.halo_plugin_types = halo_plugin_types
    return plugin


def test_addresses_need_a_backend_that_provides_them() -> None:
    """The error names the distribution to install, as before the capability existed."""
    p = plugins.load(entry_points=False, modules=[("ping", make_plugin())])
    with pytest.raises(ConfigError) as exc:
        load_text(INSTANCE, "t.yaml", p)
    assert exc.value.lines == [
        "t.yaml:5:24: vrrp_instances.VI_1.virtual_ipaddress: needs a backend that holds these"
        " addresses (pip install halo-backend-vip)"
    ]
    p = plugins.load(entry_points=False, modules=[("holder", holder_plugin())])
    assert p.providers("addresses") == ["holder"]
    load_text(INSTANCE, "t.yaml", p)


def test_unknown_capabilities_are_load_errors() -> None:
    @hookimpl
    def halo_plugin_types() -> list[PluginType]:
        return [PluginType("checker", "x", PingCheck, "a:b", provides=frozenset({"coffee"}))]

    p = plugins.load(
        entry_points=False,
        modules=[("x", types.SimpleNamespace(halo_plugin_types=halo_plugin_types))],
    )
    assert [e.message for e in p.errors] == [
        "checker type 'x' provides unknown capability 'coffee'"
    ]


# ------------------------------------------------------------- options plugins add to core sections


@dataclass(frozen=True, kw_only=True)
class CacheSettings:
    """A plugin's own settings: a named sub-section of global:."""

    size: Annotated[int, Range(1, 100), Doc("entries kept")] = 10


@dataclass(frozen=True, kw_only=True)
class CacheOptions:
    cache: Annotated[CacheSettings, Doc("the cache")] = field(default_factory=CacheSettings)


@dataclass(frozen=True, kw_only=True)
class HoldOptions:
    hold_delay: Annotated[int | None, Doc("hold the addresses this long")] = None


def extending(extensions: dict[str, type], name: str = "ext") -> types.SimpleNamespace:
    """A tool plugin (no types) adding ``extensions`` to core sections."""

    @hookimpl
    def halo_config_extensions() -> dict[str, type]:
        return extensions

    return types.SimpleNamespace(halo_config_extensions=halo_config_extensions, __name__=name)


def with_extensions() -> plugins.Plugins:
    """A tool plugin adding global.cache, a type plugin adding an instance's hold_delay:
    both through the same hook."""
    holder = holder_plugin(extensions={"vrrp_instance": HoldOptions})
    return plugins.load(
        entry_points=False,
        modules=[("cache", extending({"global": CacheOptions})), ("holder", holder)],
    )


def test_added_options_are_validated_with_positions() -> None:
    p = with_extensions()
    with pytest.raises(ConfigError) as exc:
        load_text("global:\n  cache:\n    size: 500\n    sise: 1\n  cach: {}\n", "f.yaml", p)
    assert exc.value.lines == [
        "f.yaml:3:11: global.cache.size: must be between 1 and 100, not 500",
        "f.yaml:4:5: global.cache.sise: unknown key (did you mean 'size'?)",
        "f.yaml:5:3: global.cach: unknown key (did you mean 'cache'?)",
    ]
    with pytest.raises(ConfigError) as exc:
        load_text(INSTANCE + "    hold_delay: soon\n    hold_dealy: 1\n", "t.yaml", p)
    assert exc.value.lines == [
        "t.yaml:6:17: vrrp_instances.VI_1.hold_delay: must be an integer, not a string ('soon')",
        "t.yaml:7:5: vrrp_instances.VI_1.hold_dealy: unknown key (did you mean 'hold_delay'?)",
    ]


def test_added_options_have_their_defaults_when_absent() -> None:
    p = with_extensions()
    for text in ("{}", "global:\n  router_id: a\n", "global:\n  cache:\n"):
        assert load_text(text, plugins=p).model.global_.extensions[CacheOptions] == CacheOptions()
    cfg = load_text("global:\n  cache: {size: 5}\n" + INSTANCE + "    hold_delay: 3\n", plugins=p)
    assert cfg.model.global_.extensions[CacheOptions].cache == CacheSettings(size=5)
    assert cfg.instances["VI_1"].extensions[HoldOptions].hold_delay == 3
    plain = load_text(INSTANCE, plugins=p).instances["VI_1"]
    assert plain.extensions[HoldOptions] == HoldOptions()
    # only what differs from the defaults is kept: the same meaning compares equal
    assert load_text(INSTANCE + "    hold_delay: null\n", plugins=p).instances["VI_1"] == plain


def test_json_schema_shows_added_options_as_the_sections_keys() -> None:
    doc = json_schema(HaloConfig, extensions=with_extensions().extensions)

    def props(name: str) -> dict[str, Any]:
        found = next(d for n, d in doc["$defs"].items() if n.endswith(name))
        return dict(found["properties"])

    assert "$ref" in props("GlobalConfig")["cache"] and "extensions" not in props("GlobalConfig")
    assert "size" in props("CacheSettings")
    assert "hold_delay" in props("VrrpInstance") and "extensions" not in props("VrrpInstance")


def test_halo_plugins_lists_added_options(capsys: pytest.CaptureFixture[str]) -> None:
    p = with_extensions()
    assert {i.name: i.options for i in p.infos} == {
        "cache": ("global.cache",),
        "holder": ("vrrp_instance.hold_delay",),
    }
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "option global.status_api" in out and "option vrrp_instance.garp_master_delay" in out
    assert cli.main(["plugins", "--json"]) == 0
    listed = {i["name"]: i["options"] for i in json.loads(capsys.readouterr().out)["plugins"]}
    assert listed["tool-status"] == ["global.status_api"]


def test_added_options_are_unknown_keys_without_the_plugin() -> None:
    p = with_extensions()
    p.drop("cache", "dropped")  # as when its commands fail
    with pytest.raises(ConfigError, match=r"global\.cache: unknown key"):
        load_text("global:\n  cache: {}\n", plugins=p)
    with pytest.raises(ConfigError, match=r"VI_1\.hold_delay: unknown key"):
        load_text(INSTANCE + "    hold_delay: 1\n", plugins=plugins.load(entry_points=False))


@dataclass(frozen=True, kw_only=True)
class StateDir:
    state_dir: str = "/tmp"


@dataclass(frozen=True, kw_only=True)
class Priority:
    prio: Annotated[int, Alias(("priority",))] = 1


@dataclass(frozen=True, kw_only=True)
class Shouting:
    Size: int = 1


@dataclass(frozen=True, kw_only=True)
class NoDefault:
    size: int


@pytest.mark.parametrize(
    ("extensions", "message"),
    [
        ({"global": StateDir}, "global option 'state_dir' is the core's"),
        ({"vrrp_instance": Priority}, "vrrp_instance option 'priority' is the core's"),
        ({"nowhere": CacheOptions}, "cannot add options to 'nowhere' (only to global,"),
        ({"global": int}, "global options: the schema must be a dataclass"),
        ({"global": Shouting}, "global option 'Size': the name must be lower-case"),
        ({"global": NoDefault}, "global option 'size' needs a default"),
    ],
)
def test_bad_added_options_are_a_load_error(extensions: dict[str, type], message: str) -> None:
    p = plugins.load(
        entry_points=False,
        modules=[("bad", holder_plugin("bad", extensions)), ("ping", make_plugin())],
    )
    assert [e.name for e in p.errors] == ["bad"] and p.errors[0].message.startswith(message)
    assert "bad" not in p.names("backend") and "ping" in p.names("checker")
    assert all(not by_plugin for by_plugin in p.extensions.values())


def test_an_option_added_twice_is_a_load_error_for_the_second() -> None:
    @hookimpl
    def halo_config_extensions() -> dict[str, type]:
        raise RuntimeError("boom")

    p = plugins.load(
        entry_points=False,
        modules=[
            ("first", extending({"global": CacheOptions, "vrrp_instance": HoldOptions})),
            ("second", extending({"global": CacheOptions})),
            ("third", holder_plugin("third", {"vrrp_instance": HoldOptions})),
            ("fourth", types.SimpleNamespace(halo_config_extensions=halo_config_extensions)),
        ],
    )
    assert [(e.name, e.message) for e in p.errors] == [
        ("second", "global option 'cache' is already added by 'first'"),
        ("third", "vrrp_instance option 'hold_delay' is already added by 'first'"),
        ("fourth", "halo_config_extensions failed: RuntimeError: boom"),
    ]
    assert "third" not in p.names("backend")


def test_vip_adds_garp_master_delay_to_instances() -> None:
    from halo_backend_vip.plugin import VipInstanceOptions

    cfg = load_text(INSTANCE + "    garp_master_delay: 0\n", "t.yaml", plugins.load())
    assert cfg.instances["VI_1"].extensions[VipInstanceOptions].garp_master_delay == 0.0


# ------------------------------------------------------------- sub-commands, one plugin at a time


def commands_plugin(*names: str, fail: bool = False) -> types.SimpleNamespace:
    @hookimpl
    def halo_add_commands(subparsers: Any) -> None:
        for n in names:
            subparsers.add_parser(n, help=f"the {n} command").set_defaults(func=lambda a: 0)
        if fail:
            raise RuntimeError("broken")

    return types.SimpleNamespace(halo_add_commands=halo_add_commands)


def test_a_clashing_or_failing_command_plugin_is_a_load_error_and_others_load(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from halo_core.cli import build_parser

    p = plugins.load(
        entry_points=False,
        modules=[
            ("good", commands_plugin("hello")),
            ("clash", commands_plugin("extra", "check")),
            ("broken", commands_plugin("half", fail=True)),
            ("typed", make_plugin()),
        ],
    )
    parser = build_parser(p)
    assert sorted((e.name, e.message) for e in p.errors) == [
        ("broken", "cannot add its commands: RuntimeError: broken"),
        (
            "clash",
            "cannot add its commands: ArgumentError: argument COMMAND: conflicting"
            " subparser: check",
        ),
    ]
    assert parser.parse_args(["hello"]).command == "hello"
    with pytest.raises(SystemExit):
        parser.parse_args(["extra"])  # the clashing plugin's other command went with it
    with pytest.raises(SystemExit):
        parser.parse_args(["half"])
    assert parser.parse_args(["check", "-q"]).quiet  # the core's own check is untouched
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    out = capsys.readouterr().out
    assert "hello" in out and "extra" not in out and "half" not in out
    assert [i.name for i in p.infos] == ["good", "typed"]
    assert "ping" in p.names("checker")


def test_a_factory_product_that_is_no_backend_is_refused() -> None:
    import asyncio

    from halo_core.config import load_text as load_config
    from halo_core.daemon import Daemon
    from halo_core.plugin_api import Backend, BackendConfig

    @dataclass(frozen=True, kw_only=True)
    class Cfg(BackendConfig):
        pass

    class Good(Backend):
        def __init__(self, config: Any, ctx: Any) -> None:
            pass

        async def start(self) -> None:
            pass

        async def handle(self, event: Any) -> None:
            pass

        async def stop(self) -> None:
            pass

    class Partial:  # no kinds, reload or status, and does not derive from Backend
        def __init__(self, config: Any, ctx: Any) -> None:
            pass

        async def start(self) -> None:
            pass

    @hookimpl
    def halo_plugin_types() -> list[PluginType]:
        return [
            PluginType("backend", "good", Cfg, Good),
            PluginType("backend", "part", Cfg, Partial),
        ]

    p = plugins.load(
        entry_points=False,
        modules=[("b", types.SimpleNamespace(halo_plugin_types=halo_plugin_types))],
    )
    cfg = load_config("backends:\n  g: {type: good}\n  p: {type: part}\n", "t.yaml", p)

    async def run() -> Daemon:
        d = Daemon(cfg, p)
        await d._start_backends()
        assert d.backends["g"].kinds is None
        await d.backends["g"].reload(cfg.model)  # the default: nothing
        assert d.backends["g"].status() == {}
        await d.bus.close()
        return d

    d = asyncio.run(run())
    assert list(d.backends) == ["g"]
    assert d.failed_backends == {
        "p": "TypeError: the factory built a Partial, which is not a halo_core.plugin_api.Backend"
        " (derive from it)"
    }


def test_unknown_first_party_type_names_the_distribution_to_install() -> None:
    p = plugins.load(entry_points=False, modules=[("ping", make_plugin())])
    with pytest.raises(ConfigError) as err:
        load_text("checks:\n  web:\n    type: tcp\n", plugins=p)
    assert err.value.lines == [
        "<string>:3:11: checks.web.type: unknown checker type 'tcp' (installed: ping):"
        " pip install halo-checker-tcp"
    ]
