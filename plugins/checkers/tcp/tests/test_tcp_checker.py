"""The tcp checker against real listeners: up, down, bind address, time-out, flapping."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from halo_core import plugins
from halo_core.bus import EventBus
from halo_core.checks import CheckRunner
from halo_core.config import load_text
from halo_core.plugin_api import CheckTarget
from halo_core.scheduler import Scheduler
from halo_tool_lab.netns import Lab


def runner(text: str, target: CheckTarget | None = None) -> CheckRunner:
    p = plugins.load()
    cfg = load_text(f"checks:\n  c: {text}\n", "t.yaml", p)
    configured = cfg.model.checks["c"]
    r = CheckRunner(
        "c", p.type("checker", "tcp"), configured.config,
        target=target or CheckTarget("c"), scheduler=Scheduler(), bus=EventBus(),
    )  # fmt: skip
    r.checker = r.ptype.load_factory()(r.config, r.target)
    return r


async def test_up_and_down() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    r = runner(f"{{type: tcp, connect_ip: 127.0.0.1, connect_port: {port}}}")
    result, _ = await r.probe()
    assert result.ok and result.message == f"connected to 127.0.0.1:{port}"
    server.close()
    await server.wait_closed()
    result, _ = await r.probe()
    assert not result.ok and "Connection refused" in result.message


async def test_ipv6_and_bind_address() -> None:
    seen: list[str] = []

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peername")[0])
        writer.close()

    server = await asyncio.start_server(accept, "::1", 0)
    port = server.sockets[0].getsockname()[1]
    r = runner(f"{{type: tcp, connect_ip: '::1', connect_port: {port}, bind_to: '::1'}}")
    assert (await r.probe())[0].ok
    await asyncio.sleep(0.05)
    assert seen == ["::1"]
    server.close()


async def test_real_server_target_defaults() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    import ipaddress

    r = runner("{type: tcp}", CheckTarget("rs", ipaddress.ip_address("127.0.0.1"), port))
    assert (await r.probe())[0].ok
    server.close()


async def test_flapping_with_rise_and_fall() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    r = runner(f"{{type: tcp, connect_ip: 127.0.0.1, connect_port: {port}, rise: 2, fall: 2}}")
    changes: list[bool] = []
    r.on_change = lambda name, up, res: changes.append(up)
    server: asyncio.base_events.Server | None = None
    for listening in (False, True, False, False, True, True):
        if listening and server is None:
            server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
        if not listening and server is not None:
            server.close()
            await server.wait_closed()
            server = None
        await r.run_once()
    # down,up (1 success: not enough), down,down (fall 2 → down), up,up (rise 2 → up)
    assert changes == [False, True]
    if server is not None:
        server.close()


def test_timeout_against_a_silent_host(lab_root: None, tmp_path: Path) -> None:
    """SYNs into the void: the runner's time-out ends the check, reported as such."""
    with Lab(2, ipv6=False) as lab:
        a, b = lab.hosts
        lab.unplug(b)
        yaml = f"checks: {{c: {{type: tcp, connect_ip: {b.ipv4}, connect_port: 80, timeout: 0.3}}}}"
        code = (
            "import asyncio\n"
            "from halo_core import plugins\n"
            "from halo_core.plugin_api import CheckTarget\n"
            "from halo_core.bus import EventBus\n"
            "from halo_core.checks import CheckRunner\n"
            "from halo_core.config import load_text\n"
            "from halo_core.scheduler import Scheduler\n"
            "async def main():\n"
            "    p = plugins.load()\n"
            f"    c = load_text({yaml!r}, 't', p).model.checks['c']\n"
            "    r = CheckRunner('c', p.type('checker','tcp'), c.config, target=CheckTarget('c'),"
            " scheduler=Scheduler(), bus=EventBus())\n"
            "    r.checker = r.ptype.load_factory()(r.config, r.target)\n"
            "    res, took = await r.probe()\n"
            "    print(res.ok, res.message, round(took, 1))\n"
            "asyncio.run(main())\n"
        )
        import sys

        out = a.run(sys.executable, "-c", code, timeout=20).stdout.strip()
        assert out == "False timed out after 0.3s 0.3", out
