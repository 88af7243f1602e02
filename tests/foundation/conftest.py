"""The distributions, built once per test run for the packaging tests that need them."""

from __future__ import annotations

import pytest
from packaging_helpers import Built, build_all


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_all(tmp_path_factory.mktemp("dist"))
