"""What the worker is handed instead of reading the file (``halo_core.handover.WorkerInput``,
docs/processes.md): the validating child's document and entry points, in a memory file, read
back into the same configuration and plugins the child had; a reload's copy crosses the
link with its message (``SCM_RIGHTS``); the worker's own command line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from halo_core import handover, ipc, plugins
from halo_core.config import ConfigError, from_document, load_with_plugins
from halo_core.config.document import locate
from halo_core.worker import options

CONFIG = """global:
  router_id: input-test
include: conf.d/*.yaml
checks:
  alive: {type: script, script: /bin/true}
"""
INSTANCE = """vrrp_instances:
  VI_1:
    interface: eth0
    virtual_router_id: 51
    virtual_ipaddress: [192.0.2.10/24]
    track: [{check: alive}]
"""


def written(tmp_path: Path) -> Path:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "vrrp.yaml").write_text(INSTANCE)
    path = tmp_path / "halo.yaml"
    path.write_text(CONFIG)
    return path


def test_the_worker_builds_what_the_child_validated_without_yaml_or_discovery(
    tmp_path: Path,
) -> None:
    path = written(tmp_path)
    child = handover.begin(str(path))
    found = handover.finish(child)
    try:
        assert found.problems == [] and found.input_fd >= 0
        given = handover.read_input(found.input_fd)
        again = handover.read_input(found.input_fd)  # each worker reads it from the start
    finally:
        handover.close_input(found.input_fd)
    assert again.document == given.document
    config, plugins = load_with_plugins(str(path))
    worker_plugins = handover.worker_plugins(given)
    worker_config = handover.worker_config(given, worker_plugins)
    assert worker_config.model == config.model and worker_config.path == config.path
    assert worker_plugins.infos == plugins.infos
    assert worker_plugins.errors == plugins.errors and worker_plugins.blocked == plugins.blocked
    assert worker_plugins.types == plugins.types
    # the marks came along: an include's place is still its own file's
    assert locate(worker_config.raw, ("vrrp_instances", "VI_1", "virtual_router_id")) == (
        str(tmp_path / "conf.d" / "vrrp.yaml"),
        4,
        24,
    )


def test_an_invalid_file_leaves_no_input_and_a_bad_document_is_placed(tmp_path: Path) -> None:
    path = written(tmp_path)
    path.write_text(CONFIG + "bogus: 1\n")
    found = handover.finish(handover.begin(str(path)))
    assert found.problems and found.input_fd == -1
    # a document validated again (the worker's) reports problems at their place: here with
    # the script checker's plugin blocked
    path.write_text(CONFIG)
    config, _ = load_with_plugins(str(path))
    without = plugins.load(block=["halo-checker-script"])
    with pytest.raises(ConfigError) as caught:
        from_document(config.raw, config.path, without)
    assert caught.value.lines[0].startswith(f"{path}:5:17: checks.alive.type: unknown checker")


def test_read_input_refuses_what_is_not_an_input() -> None:
    fd = os.memfd_create("not-an-input")
    try:
        with pytest.raises(ValueError, match="no configuration came from the VRRP process"):
            handover.read_input(fd)
        os.write(fd, b"\x80\x05N.")  # a pickled None
        with pytest.raises(ValueError, match="gave a NoneType"):
            handover.read_input(fd)
    finally:
        os.close(fd)


async def test_a_descriptor_crosses_the_link_with_its_message() -> None:
    a, b = ipc.socketpair()
    received: list[ipc.Message] = []
    got = asyncio.Event()

    def on_message(msg: ipc.Message) -> None:
        received.append(msg)
        got.set()

    sender = ipc.Link(a, lambda msg: None)
    receiver = ipc.Link(b, on_message, fds=True)
    fd = os.memfd_create("carried")
    os.write(fd, b"the configuration")
    try:
        sender.send({"t": "prepare", "id": 1}, fds=[fd])
        sender.send({"t": "ping"})
        await asyncio.wait_for(got.wait(), 5)
        while len(received) < 2:
            await asyncio.sleep(0.01)
    finally:
        os.close(fd)  # the sender's own: the message carried a copy
        sender.close()
    prepare, ping = received
    (carried,) = prepare.pop(ipc.FDS)
    try:
        assert os.pread(carried, 100, 0) == b"the configuration"
    finally:
        os.close(carried)
    assert prepare == {"t": "prepare", "id": 1} and ping == {"t": "ping"}
    receiver.close()


def test_the_worker_command_line() -> None:
    assert options(["--fd", "3", "--input-fd=4", "--log-level", "debug"]) == {
        "fd": "3",
        "input_fd": "4",
        "log_level": "debug",
    }
    for argv, why in (
        (["--fd", "3"], "--input-fd needs a descriptor number"),
        (["--fd", "3", "--input-fd", "x"], "--input-fd needs a descriptor number"),
        (["--fd", "3", "--input-fd", "4", "--config", "x"], "unknown option '--config'"),
        (["--fd"], "--fd needs a value"),
    ):
        with pytest.raises(ValueError, match=why):
            options(argv)
    proc = subprocess.run(
        [sys.executable, "-m", "halo_core.worker", "--fd", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("halo-worker: --input-fd needs a descriptor number\n")
