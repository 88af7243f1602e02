"""Pytest fixtures shared by tests/ and the plugin distributions' own tests (plugins/*/*/tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from halo_core.lab.netns import Lab, lab_unavailable_reason

# ---------------------------------------------------------------------------------------------
# network-namespace lab (halo_core.lab): needs root and working `ip netns`


@pytest.fixture(scope="session")
def lab_root() -> None:
    """Skip the test unless network-namespace labs can be built (root, iproute2, netns)."""
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(f"lab unavailable: {reason}")


LabFactory = Callable[..., Lab]


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
