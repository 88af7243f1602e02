"""Listening sockets the VRRP process holds for a plugin and hands to the worker
(``halo_core.listen``): bound as the status API binds its own, handed over through
``$HALO_LISTEN_FDS``, taken once, and their unix socket files removed only while ours."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from halo_core import listen


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(listen, "_inherited", None)
    monkeypatch.delenv(listen.ENV, raising=False)
    yield


def test_a_unix_socket_is_born_0660_in_a_new_directory(tmp_path: Path) -> None:
    path = tmp_path / "run" / "halo.sock"
    bound = listen.bind(listen.parse(f"unix:{path}"))
    try:
        assert stat.S_IMODE(path.stat().st_mode) == listen.SOCKET_MODE
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755 & ~_umask()
        assert listen.socket_alive(str(path))  # listening: a connection waits in the backlog
    finally:
        bound.close()
    assert not path.exists()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_stale_file_is_replaced_a_live_one_or_another_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "halo.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a daemon that died: the file stays, nobody listens
    bound = listen.bind(listen.Endpoint(path=str(path)))
    with pytest.raises(RuntimeError, match="in use"):
        listen.bind(listen.Endpoint(path=str(path)))
    bound.close()
    path.write_text("x")
    with pytest.raises(RuntimeError, match="not a socket"):
        listen.bind(listen.Endpoint(path=str(path)))


def test_close_leaves_a_successors_file(tmp_path: Path) -> None:
    path = tmp_path / "halo.sock"
    first = listen.bind(listen.Endpoint(path=str(path)))
    os.unlink(path)
    second = listen.bind(listen.Endpoint(path=str(path)))
    first.close()
    assert path.exists()
    second.close()
    assert not path.exists()


def test_tcp_binds_each_address_of_the_host() -> None:
    bound = listen.bind(listen.Endpoint(host="127.0.0.1", port=0))
    try:
        assert len(bound.sockets) == 1
        assert bound.sockets[0].getsockname()[0] == "127.0.0.1"
        assert bound.file_id is None
    finally:
        bound.close()


def test_handed_over_sockets_are_taken_once_by_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the worker sees them: descriptors named in the environment, which is cleaned."""
    path = tmp_path / "halo.sock"
    unix = listen.bind(listen.Endpoint(path=str(path)))
    tcp = listen.bind(listen.Endpoint(host="127.0.0.1", port=0))
    fds, named = listen.handing_over([unix, tcp])
    assert fds == [unix.sockets[0].fileno(), tcp.sockets[0].fileno()]
    # the worker's copies (pass_fds): duplicates of the VRRP process's
    copies = [os.dup(fd) for fd in fds]
    named = named.replace(f"{fds[0]}=", f"{copies[0]}=").replace(f"{fds[1]}=", f"{copies[1]}=")
    monkeypatch.setenv(listen.ENV, named)
    unix.close(unlink=False)
    tcp_endpoint = tcp.endpoint
    tcp.close()
    got = listen.inherited(listen.Endpoint(path=str(path)))
    assert listen.ENV not in os.environ  # the worker's scripts do not inherit it
    assert got is not None and [s.fileno() for s in got.sockets] == [copies[0]]
    assert got.file_id == (path.stat().st_dev, path.stat().st_ino)
    assert listen.inherited(listen.Endpoint(path=str(path))) is None  # taken
    assert listen.socket_alive(str(path))
    assert listen.close_unclaimed() == [str(tcp_endpoint)]
    with pytest.raises(OSError):
        os.fstat(copies[1])
    got.close()
    assert not path.exists()


def test_garbage_in_the_environment_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(listen.ENV, "x=unix:/a 99999=unix:/b nonsense")
    assert listen.inherited(listen.parse("unix:/a")) is None
    assert listen.close_unclaimed() == []


def test_the_vrrp_process_holds_endpoints_and_starts_the_worker_on_a_first_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Daemon._listen binds and watches, a reload's new endpoint rebinds (the old file
    goes), the first connection starts the worker with the sockets to hand over, and
    stopping never starts one."""
    import asyncio
    import logging

    from test_plugins import INSTANCE, holder_plugin

    from halo_core import plugins
    from halo_core.config import load_text
    from halo_core.daemon import Daemon

    p = plugins.load(entry_points=False, modules=[("holder", holder_plugin())])
    daemon = Daemon(load_text(INSTANCE, "t.yaml", p), p, role="vrrp")
    daemon.handed_over = True
    daemon.with_worker = False
    started: list[list[listen.Bound]] = []

    def add_worker() -> None:
        daemon.with_worker = True
        started.append(daemon._stop_listening())

    daemon._add_worker = add_worker  # type: ignore[method-assign]
    first, second = tmp_path / "a.sock", tmp_path / "b.sock"

    async def scenario() -> None:
        daemon._listen({"x API": f"unix:{first}"})
        assert first.exists() and list(daemon.listening) == ["x API"]
        daemon._listen({"x API": f"unix:{second}"})  # a reload moved it
        assert second.exists() and not first.exists()
        await asyncio.sleep(0.05)
        assert started == []  # nobody connected
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(second))
            await asyncio.sleep(0.05)
        assert len(started) == 1 and [str(b.endpoint) for b in started[0]] == [f"unix:{second}"]
        assert daemon.listening == {}
        for bound in started[0]:
            bound.close()
        assert not second.exists()
        # stopping: a connection starts nothing, and the loop does not spin on it
        daemon.with_worker = False
        daemon._listen({"x API": f"unix:{first}"})
        daemon.stopping.set()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(first))
            await asyncio.sleep(0.05)
        assert len(started) == 1
        for bound in daemon._stop_listening():
            bound.close()
        assert not first.exists()

    with caplog.at_level(logging.INFO, logger="halo"):
        asyncio.run(scenario())
    assert "x API: first connection, starting the worker" in caplog.messages
