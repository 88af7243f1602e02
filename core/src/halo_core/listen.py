"""Listening sockets that a plugin serves on and the VRRP process may hold for it (socket
activation, systemd's and inetd's way; docs/processes.md).

An endpoint is written ``unix:/run/halo/halo.sock`` (or just an absolute path) for a unix
socket, and ``127.0.0.1:9201``, ``localhost:9201`` or ``[::1]:9201`` for TCP. A plugin
whose only work is such an API names its endpoints (``halo_listen_on``); while nothing else
needs a worker, the VRRP process binds them with :func:`bind` (the very code the plugin
binds with itself), watches them for a first connection without accepting it, and then
starts the worker, handing the sockets over (:func:`handing_over`): the worker's plugin
takes them with :func:`inherited` instead of binding. Standard library only: the VRRP
process imports this.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import stat
from dataclasses import dataclass

SOCKET_MODE = 0o660
"""A unix socket's mode: root and the socket's group (the daemon runs as root)."""
BACKLOG = 100  # asyncio's default: connections wait here until the worker accepts them
ENV = "HALO_LISTEN_FDS"
"""The environment variable naming the sockets a worker inherits, ``FD=ENDPOINT`` joined
by spaces (systemd's LISTEN_FDS with LISTEN_FDNAMES, in one)."""


@dataclass(frozen=True)
class Endpoint:
    """A parsed endpoint: ``path`` for a unix socket, else ``host`` and ``port``."""

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
    """Parse an endpoint; ``ValueError`` says what is wrong with it."""
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


@dataclass
class Bound:
    """The listening sockets of one endpoint (TCP: one per address the host resolves to),
    and for a unix socket the file's identity, to remove it only while it is still ours."""

    endpoint: Endpoint
    sockets: list[socket.socket]
    file_id: tuple[int, int] | None = None

    def close(self, *, unlink: bool = True) -> None:
        """Close the sockets and (``unlink``) remove the unix socket's file if it is still
        the one bound here, not a successor's."""
        for sock in self.sockets:
            sock.close()
        self.sockets = []
        path, file_id, self.file_id = self.endpoint.path, self.file_id, None
        if unlink and path is not None and file_id is not None:
            with contextlib.suppress(OSError):
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == file_id:
                    os.unlink(path)


def bind(endpoint: Endpoint) -> Bound:
    """Bind and listen on ``endpoint``, non-blocking. A unix socket is born with
    :data:`SOCKET_MODE` in a directory made if missing; a file left by a daemon that died is
    replaced, one something still listens on is refused. ``OSError`` (or ``RuntimeError``
    for a path in use or not a socket) when it cannot."""
    if endpoint.path is not None:
        return _bind_unix(endpoint)
    sockets: list[socket.socket] = []
    try:
        # every address the host resolves to, as asyncio.start_server binds them
        infos = socket.getaddrinfo(
            endpoint.host, endpoint.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return Bound(endpoint, sockets)


def _bind_unix(endpoint: Endpoint) -> Bound:
    path = endpoint.path
    assert path is not None
    os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)  # rwxr-xr-x
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise RuntimeError(f"{path} exists and is not a socket")
        if socket_alive(path):
            raise RuntimeError(f"{path} is in use (another halo with the same state_dir?)")
        os.unlink(path)  # left behind by a daemon that died
    # bind() creates the file with the umask's mode: set the umask so that it is born
    # SOCKET_MODE, with no moment at which a wider mode lets another user connect. The
    # umask is the process's, but nothing else runs between these two lines (one thread).
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o777 & ~SOCKET_MODE)
    try:
        sock.bind(path)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(previous)
    st = os.stat(path)
    return Bound(endpoint, [sock], (st.st_dev, st.st_ino))


def socket_alive(path: str) -> bool:
    """Whether something accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(path)
        except OSError:
            return False
        return True


# -- handing sockets over to the worker


def handing_over(bound: list[Bound]) -> tuple[list[int], str]:
    """The descriptors to pass to the worker and the value of :data:`ENV` naming them."""
    fds = [s.fileno() for b in bound for s in b.sockets]
    named = [f"{s.fileno()}={b.endpoint}" for b in bound for s in b.sockets]
    return fds, " ".join(named)


_inherited: dict[str, list[socket.socket]] | None = None


def _take_environment() -> dict[str, list[socket.socket]]:
    """The sockets :data:`ENV` names, once per process; the variable is removed so that
    the worker's own children (scripts) inherit neither it nor the descriptors (Python's
    are not inheritable)."""
    global _inherited
    if _inherited is None:
        _inherited = {}
        for item in os.environ.pop(ENV, "").split():
            fd_text, sep, name = item.partition("=")
            if not sep or not fd_text.isdigit():
                continue
            try:
                sock = socket.socket(fileno=int(fd_text))
            except OSError:  # not an open socket: ignore it
                continue
            sock.set_inheritable(False)
            _inherited.setdefault(name, []).append(sock)
    return _inherited


def inherited(endpoint: Endpoint) -> Bound | None:
    """The listening sockets for ``endpoint`` that this process was handed at start (the
    caller now owns them; a unix socket's file is removed when it closes them), or None."""
    sockets = _take_environment().pop(str(endpoint), None)
    if not sockets:
        return None
    file_id = None
    if endpoint.path is not None:
        with contextlib.suppress(OSError):
            st = os.stat(endpoint.path)
            file_id = (st.st_dev, st.st_ino)
    return Bound(endpoint, sockets, file_id)


def close_unclaimed() -> list[str]:
    """Close the inherited sockets no plugin took (the file changed between the hand-over
    and the worker reading it); their endpoints. A unix socket's file is removed."""
    left = _take_environment()
    names = sorted(left)
    for name in names:
        try:
            bound = inherited(parse(name))
        except ValueError:  # not an endpoint: nothing to remove
            bound = Bound(Endpoint(), left.pop(name))
        if bound is not None:
            bound.close()
    return names
