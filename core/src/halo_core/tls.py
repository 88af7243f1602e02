"""asyncio without OpenSSL until something needs TLS (docs/processes.md).

``import asyncio`` imports ``ssl``, which loads OpenSSL (4-5 MB resident), and works without
it: its modules import it as optional (``try: import ssl / except ImportError: ssl =
None``). halo's processes mostly make no TLS connection, so:

- :func:`absent` (the VRRP process, whose address backends make none): ``ssl`` is marked
  missing for good; an import of it fails.
- :func:`deferred` (the worker): asyncio is imported with ``ssl`` marked missing, then the
  mark is taken back and a finder watches for ``import ssl``. The first one (a plugin's:
  the ssl checker, a notifier's STARTTLS or HTTPS, a third-party library) imports the real
  module, and the finder hands it to the asyncio modules that bound ``ssl = None`` at
  import, so ``loop.create_connection(ssl=...)`` and ``asyncio.open_connection(ssl=...)``
  work from then on. A process that never imports ``ssl`` never loads OpenSSL.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # nothing else at import: the VRRP process imports this first of all
    from types import ModuleType
    from typing import Any

_ASYNCIO_TLS = ("asyncio.sslproto", "asyncio.base_events", "asyncio.selector_events")
"""asyncio's modules that import ``ssl`` as optional (Python 3.11 to 3.13); any other
asyncio module holding ``ssl = None`` is given it too."""


def absent() -> None:
    """Mark ``ssl`` missing for good, before asyncio is imported (the VRRP process)."""
    if "ssl" not in sys.modules:
        sys.modules["ssl"] = None  # type: ignore[assignment]


def is_absent() -> bool:
    """Whether ``ssl`` is marked missing (:func:`absent`)."""
    return "ssl" in sys.modules and sys.modules["ssl"] is None


def restore() -> None:
    """Take :func:`absent`'s mark back: the next ``import ssl`` imports it (a forked child
    that loads plugins)."""
    if is_absent():
        del sys.modules["ssl"]


def deferred() -> None:
    """Import asyncio without ``ssl``, and have a later ``import ssl`` give asyncio TLS
    (the worker). A no-op when either is imported already."""
    if "asyncio" in sys.modules or "ssl" in sys.modules:
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]
    try:
        import asyncio  # noqa: F401 - imported now, without TLS
    finally:
        del sys.modules["ssl"]
    sys.meta_path.insert(0, _SslFinder())


class _SslFinder:
    """A ``sys.meta_path`` finder for ``ssl`` alone: the real module, found as the next
    finders would find it, whose loading ends by giving it to asyncio. Used once."""

    @classmethod
    def find_spec(cls, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "ssl":
            return None
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, cls)]
        from importlib.util import find_spec

        spec = find_spec(name)  # the finders after this one
        if spec is not None and spec.loader is not None:
            spec.loader = _GivingLoader(spec.loader)  # type: ignore[assignment]
        return spec


class _GivingLoader:
    """Loads ``ssl`` with its own loader, then gives it to asyncio (:func:`give`)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> ModuleType | None:
        created: ModuleType | None = self.loader.create_module(spec)
        return created

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        give(module)


def give(ssl: ModuleType) -> None:
    """Hand the imported ``ssl`` to the asyncio modules that were imported without it."""
    for name in {*_ASYNCIO_TLS, *(n for n in sys.modules if n.startswith("asyncio."))}:
        module = sys.modules.get(name)
        if module is None or getattr(module, "ssl", False) is not None:
            continue
        module.ssl = ssl  # type: ignore[attr-defined]
        if name == "asyncio.sslproto" and not hasattr(module, "SSLAgainErrors"):
            # defined at import only when ssl was there
            module.SSLAgainErrors = (ssl.SSLWantReadError, ssl.SSLSyscallError)  # type: ignore[attr-defined]
