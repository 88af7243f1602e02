"""Where the status API listens: a unix socket path or a TCP host and port.

Written ``unix:/run/halo/halo.sock`` (or just an absolute path) for a unix socket, and
``127.0.0.1:9201``, ``localhost:9201`` or ``[::1]:9201`` for TCP
(:func:`halo_core.listen.parse`). Standard library only: the configuration schema, the
daemon and ``halo status`` all parse it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

# The endpoint and its parsing are the core's: the VRRP process binds the same endpoints
# while no worker runs (halo_core.listen).
from halo_core.listen import Endpoint, parse

__all__ = ["SOCKET_NAME", "Endpoint", "parse", "read_token", "resolve"]

if TYPE_CHECKING:
    from halo_tool_status.plugin import StatusApi

SOCKET_NAME = "halo.sock"


def resolve(listen: str | None, state_dir: str) -> Endpoint:
    """The configured endpoint, or the default unix socket in ``state_dir``."""
    if listen is None:
        return Endpoint(path=os.path.join(state_dir, SOCKET_NAME))
    return parse(listen)


def read_token(settings: StatusApi) -> str | None:
    """The configured token, from the config or its file. ``OSError``/``ValueError`` when
    the file cannot give one: the caller must then not serve (fail closed)."""
    if settings.token is not None:
        return settings.token
    if settings.token_file is None:
        return None
    with open(settings.token_file) as fh:
        token = fh.readline().strip()
    if not token:
        raise ValueError(f"{settings.token_file} is empty")
    return token
