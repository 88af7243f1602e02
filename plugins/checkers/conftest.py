"""Fixtures for the tests of the http and ssl checkers (``http/tests``, ``ssl/tests``): real
servers on 127.0.0.1 and checkers built from YAML through the real plugins, closed after
each test. They sit here, above both distributions, because both use them; pytest loads
this file for either (also run alone) and puts this folder on ``sys.path``, which is how
``http_servers`` is imported."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trustme
import yaml
from http_servers import Make, Pki, Server, ServerFactory

from halo_core import plugins
from halo_core.config import load_text
from halo_core.plugin_api import CheckTarget


@pytest.fixture
async def servers() -> AsyncIterator[ServerFactory]:
    factory = ServerFactory()
    yield factory
    for runner in factory.runners:
        await runner.cleanup()


@pytest.fixture
async def server(servers: ServerFactory) -> Server:
    """A plain HTTP server; ``/health`` answers 200 "ok, healthy"."""
    srv = await servers.start()
    srv.reply("/health", "ok, healthy\n")
    return srv


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def pki(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    yield Pki(ca, tmp_path_factory.mktemp("pki"))


# --------------------------------------------------------------------------- checkers


@pytest.fixture(scope="session")
def halo_plugins() -> plugins.Plugins:
    loaded = plugins.load()
    assert {"http", "ssl"} <= set(loaded.names("checker")), loaded.errors
    return loaded


@pytest.fixture
async def make(halo_plugins: plugins.Plugins) -> AsyncIterator[Make]:
    """``make(type="http", **options)``: a checker built from YAML like the daemon's; closed
    after the test."""
    made: list[Any] = []

    def build(type: str = "http", target: CheckTarget | None = None, **options: Any) -> Any:
        text = yaml.safe_dump({"checks": {"c": {"type": type, **options}}})
        configured = load_text(text, "t.yaml", halo_plugins).model.checks["c"]
        factory = halo_plugins.type("checker", type).load_factory()
        checker = factory(configured.config, target or CheckTarget("c"))
        made.append(checker)
        return checker

    yield build
    for checker in made:
        await checker.close()
