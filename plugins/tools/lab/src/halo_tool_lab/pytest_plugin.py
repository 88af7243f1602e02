"""pytest fixtures for tests that need a network-namespace lab.

Installed with halo-tool-lab and loaded by pytest through the ``pytest11`` entry point, so
the tests of any distribution in the same environment can ask for ``lab_root`` and ``lab``
without a conftest.py. The ``lab`` and ``keepalived`` markers are registered here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from halo_tool_lab.netns import Lab, lab_unavailable_reason

LabFactory = Callable[..., Lab]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: needs root and network namespaces (skipped otherwise)")
    config.addinivalue_line("markers", "keepalived: needs the keepalived binary")


@pytest.fixture(scope="session")
def lab_root() -> None:
    """Skip the test unless network-namespace labs can be built (root, iproute2, netns)."""
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(f"lab unavailable: {reason}")


@pytest.fixture
def lab(lab_root: None) -> Iterator[LabFactory]:
    """Factory: ``lab(hosts=2, **kwargs)`` builds a :class:`Lab` that is always closed."""
    labs: list[Lab] = []

    def make(hosts: int | Sequence[str] = 2, **kwargs: Any) -> Lab:
        new = Lab(hosts, **kwargs)
        labs.append(new)
        return new

    yield make
    errors: list[Exception] = []
    for made in reversed(labs):
        try:
            made.close()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
