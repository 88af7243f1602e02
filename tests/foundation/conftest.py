"""The distributions, built once per test run for the packaging tests that need them."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging_helpers import Built, build_all
from plugin_kit import build_kit


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_all(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def kit(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The wheels of a plugin author's environment (halo-core, halo-tool-lab,
    halo-tool-notify), built once per test run for the plugin-kit and guide tests."""
    return build_kit(tmp_path_factory.mktemp("kit"))


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the checks of plugin projects: the stdlib and halo-core are
    analysed once per test run, not once per project."""
    return tmp_path_factory.mktemp("mypy-cache")
