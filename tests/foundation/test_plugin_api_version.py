"""The plugin API has a version; a plugin declares the one it was written against
(``HALO_PLUGIN_API``), and one halo-core cannot serve is a load error naming both versions,
before any of its hooks runs. (A plugin built out of tree: test_plugin_kit.py.)"""

from __future__ import annotations

import types

import pytest

from halo_core import plugins
from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import API_VERSION, PluginType


def plugin(api: object = None) -> types.SimpleNamespace:
    called: list[str] = []

    @hookimpl
    def halo_plugin_types() -> list[PluginType]:
        called.append("halo_plugin_types")
        return []

    module = types.SimpleNamespace(halo_plugin_types=halo_plugin_types, called=called)
    if api is not None:
        module.HALO_PLUGIN_API = api
    return module


def test_this_api_is_1_0() -> None:
    assert API_VERSION == (1, 0)


@pytest.mark.parametrize("api", [None, (1, 0)])
def test_a_plugin_for_this_api_loads(api: object) -> None:
    module = plugin(api)
    p = plugins.load(entry_points=False, modules=[("ok", module)])
    assert not p.errors and [i.name for i in p.infos] == ["ok"]
    assert module.called == ["halo_plugin_types"]


@pytest.mark.parametrize(
    ("api", "message"),
    [
        (
            (2, 0),
            "built for plugin API 2.0, but halo-core 0.1.0 provides plugin API 1.0"
            " (it loads plugins built for 1.0)",
        ),
        (
            (1, 1),
            "built for plugin API 1.1, but halo-core 0.1.0 provides plugin API 1.0"
            " (it loads plugins built for 1.0)",
        ),
        (
            (0, 9),
            "built for plugin API 0.9, but halo-core 0.1.0 provides plugin API 1.0"
            " (it loads plugins built for 1.0)",
        ),
        ("1.0", "HALO_PLUGIN_API must be (major, minor), e.g. (1, 0), not '1.0'"),
    ],
)
def test_another_api_is_a_load_error_before_any_hook(api: object, message: str) -> None:
    module = plugin(api)
    p = plugins.load(entry_points=False, modules=[("other", module), ("ok", plugin())])
    assert [(e.name, e.message) for e in p.errors] == [("other", message)]
    assert [i.name for i in p.infos] == ["ok"]  # the others load
    assert module.called == []
