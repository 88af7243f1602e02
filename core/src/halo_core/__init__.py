"""halo: high availability for Linux service clusters."""

from __future__ import annotations

from functools import cache

__all__ = ["__version__", "version"]


@cache
def version() -> str:
    """The installed halo-core version. Looked up on first use: importlib.metadata scans
    the installed distributions, which costs tens of milliseconds here and seconds in an
    emulated VM, and most halo processes (lab helpers, captures) never need it."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("halo-core")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0"


def __getattr__(name: str) -> str:
    if name == "__version__":
        return version()
    raise AttributeError(f"module 'halo_core' has no attribute {name!r}")
