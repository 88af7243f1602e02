"""The ``tcp`` checker at run time: one non-blocking connect per check.

A bare socket (the C type, without socket.socket's Python layer) rather than
``asyncio.open_connection``: the check sends nothing, so the stream reader, writer, protocol
and transport that open_connection builds are pure overhead. ``check_now``
(halo_core.plugin_api.CheckNow) starts the connect without awaiting and, when the connection
is already established or refused as ``connect`` returns (the usual case on a LAN), gives
the result at once: halo then runs many checks in one wake-up, with no task per check
(bench/checks/per_check.py). Only a connect still in progress is awaited with
``loop.sock_connect``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Awaitable

from halo_checker_tcp.plugin import TcpCheck
from halo_core.plugin_api import CheckResult, CheckTarget, endpoint

_STREAM = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
# socket.socket's Python layer (__init__, close) cost as much as the rest of a check's
# Python, and the check needs none of it
_Socket = socket.SocketType


class TcpChecker:
    def __init__(self, config: TcpCheck, target: CheckTarget) -> None:
        end = endpoint(
            target, config.connect_ip, config.connect_port, config.bind_to, config.bind_port
        )
        self.family, self.address, self.local, self.where = (
            end.family,
            end.address,
            end.local,
            end.where,
        )
        self.up = CheckResult(True, f"connected to {self.where}")

    def check_now(self) -> CheckResult | Awaitable[CheckResult]:
        sock = _Socket(self.family, _STREAM)
        waiting = False
        try:
            if self.local is not None:
                sock.bind(self.local)
            code = sock.connect_ex(self.address)
            if code == errno.EINPROGRESS:
                try:
                    sock.getpeername()
                    code = 0  # established while connect ran
                except OSError:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    waiting = code == 0  # still in progress: the rest is awaited
        except OSError as exc:
            return self._down(exc)
        finally:
            if not waiting:
                sock.close()
        if waiting:  # rare: asyncio's sock_connect wants the full socket object
            return self._finish(socket.socket(self.family, socket.SOCK_STREAM, 0, sock.detach()))
        return self.up if code == 0 else self._down(OSError(code, os.strerror(code)))

    async def _finish(self, sock: socket.socket) -> CheckResult:
        try:
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, self.address)
        except OSError as exc:
            return self._down(exc)
        finally:
            sock.close()  # also when the runner's time-out cancels us mid-connect
        return self.up

    def _down(self, exc: OSError) -> CheckResult:
        # sock_connect's own message repeats the address; the errno says what happened
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return CheckResult(False, f"connect to {self.where}: {reason}")

    async def check(self) -> CheckResult:
        outcome = self.check_now()
        return outcome if isinstance(outcome, CheckResult) else await outcome

    async def close(self) -> None:
        return None
