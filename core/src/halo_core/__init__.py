"""halo: high availability for Linux service clusters."""

from __future__ import annotations

__all__ = ["__version__", "version"]

_version: str | None = None


def version(known: str | None = None) -> str:
    """The installed halo-core version. Looked up on first use: importlib.metadata scans
    the installed distributions, which costs tens of milliseconds here and seconds in an
    emulated VM, and most halo processes (lab helpers, captures) never need it. ``known``
    is the version another halo process of this installation looked up (the VRRP process
    is told it and never imports importlib.metadata)."""
    global _version
    if known is not None:
        _version = known
    if _version is None:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        try:
            _version = dist_version("halo-core")
        except PackageNotFoundError:  # running from a source tree without an install
            _version = "0.0.0"
    return _version


def __getattr__(name: str) -> str:
    if name == "__version__":
        return version()
    raise AttributeError(f"module 'halo_core' has no attribute {name!r}")
