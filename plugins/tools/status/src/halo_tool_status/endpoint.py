"""Where the status API listens: a unix socket path or a TCP host and port.

Written ``unix:/run/halo/halo.sock`` (or just an absolute path) for a unix socket, and
``127.0.0.1:9201``, ``localhost:9201`` or ``[::1]:9201`` for TCP. Standard library only:
the configuration schema, the daemon and ``halo status`` all parse it.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from halo_tool_status.plugin import StatusApi

SOCKET_NAME = "halo.sock"


@dataclass(frozen=True)
class Endpoint:
    """A parsed ``listen`` value: ``path`` for a unix socket, else ``host`` and ``port``."""

    path: str | None = None
    host: str | None = None
    port: int | None = None

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    @property
    def loopback(self) -> bool:
        """Only reachable from this machine (a unix socket, or TCP on a loopback address)."""
        if self.path is not None:
            return True
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host or "").is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse(listen: str) -> Endpoint:
    """Parse a ``listen`` value; ``ValueError`` says what is wrong with it."""
    text = listen.strip()
    if text.startswith("unix:"):
        path = text[5:]
        if not path.startswith("/"):
            raise ValueError("a unix socket needs an absolute path (unix:/run/halo/halo.sock)")
        return Endpoint(path=path)
    if text.startswith("/"):
        return Endpoint(path=text)
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError("write an IPv6 address as [ADDRESS]:PORT")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError("must be unix:/PATH or HOST:PORT")
        if ":" in host:
            raise ValueError("write an IPv6 address as [ADDRESS]:PORT")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"port {port_text!r} must be 1 to 65535")
    return Endpoint(host=host, port=int(port_text))


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
