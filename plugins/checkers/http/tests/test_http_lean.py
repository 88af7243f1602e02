"""A plain http check loads neither aiohttp nor ``ssl`` (OpenSSL): a worker whose asyncio runs
without TLS (``ssl`` blocked, as the VRRP process runs) can run it."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from typing import Any

import yaml
from http_servers import Pki, Server, ServerFactory

BODY = "ok, healthy\n"

PROBE = """
import sys
sys.modules["ssl"] = None  # before asyncio: any import of ssl now fails
import asyncio

from halo_core import plugins
from halo_core.config import load_text
from halo_core.plugin_api import CheckTarget

loaded = plugins.load()
configured = load_text(sys.argv[1], "halo.yaml", loaded).model.checks["web"]
factory = loaded.type("checker", "http").load_factory()


async def main():
    checker = factory(configured.config, CheckTarget("web"))
    try:
        return [await checker.check() for _ in range(2)]
    finally:
        await checker.close()


for result in asyncio.run(main()):
    print("RESULT", result.ok, result.message)
heavy = ("aiohttp", "ssl", "_ssl", "_hashlib")
print("LOADED", sorted(m for m in heavy if sys.modules.get(m) is not None))
"""


async def run_child(code: str, config: dict[str, Any]) -> list[str]:
    """Run ``code`` in a new interpreter with the YAML of ``config``; its output's lines.
    Asynchronously: the test servers run on this loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        yaml.safe_dump(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode().splitlines()


async def test_plain_http_check_runs_without_ssl_and_aiohttp(server: Server) -> None:
    server.reply("/old", status=302, headers={"Location": "/health"})
    digest = hashlib.md5(BODY.encode()).hexdigest()
    config = {
        "checks": {
            "web": {
                "type": "http",
                "connect_ip": "127.0.0.1",
                "connect_port": server.port,
                "keepalive": True,
                "follow_redirects": True,
                "url": [
                    {"path": "/health", "digest": digest, "regex": "healthy"},
                    {"path": "/old", "regex": "ok"},
                ],
            }
        }
    }
    lines = await run_child(PROBE, config)
    results = [line for line in lines if line.startswith("RESULT ")]
    assert (
        results
        == [
            f"RESULT True GET http://127.0.0.1:{server.port}/health: 200, digest ok, regex matched;"
            f" GET http://127.0.0.1:{server.port}/old: 200, regex matched"
        ]
        * 2
    ), lines
    # Neither aiohttp, nor OpenSSL through ssl or hashlib (the digest is CPython's own MD5).
    assert lines[-1] == "LOADED []", lines
    assert [s.path for s in server.seen] == ["/health", "/old", "/health"] * 2
    assert len(set(server.peer_ports)) == 1  # keepalive: one connection, redirect included


DEFERRED = """
import sys
from halo_core import tls
tls.deferred()  # the worker's asyncio: no ssl until a plugin imports it

from halo_core import plugins
from halo_core.config import load_text
from halo_core.plugin_api import CheckTarget
import asyncio

loaded = plugins.load()
checks = load_text(sys.argv[1], "halo.yaml", loaded).model.checks


async def run(name):
    factory = loaded.type("checker", checks[name].type).load_factory()
    checker = factory(checks[name].config, CheckTarget(name))
    try:
        result = await checker.check()
    finally:
        await checker.close()
    print("RESULT", name, result.ok, result.message)


asyncio.run(run("web"))
print("SSL", "ssl" in sys.modules)
asyncio.run(run("tls"))  # the ssl checker imports ssl: asyncio gets TLS then
print("SSL", "ssl" in sys.modules)
"""


async def test_ssl_check_after_plain_http_in_a_worker_with_deferred_tls(
    server: Server, servers: ServerFactory, pki: Pki
) -> None:
    """As in the worker (halo_core.tls.deferred): the http check leaves ssl unimported, and
    the ssl check that comes later imports it and connects over TLS."""
    secure = await servers.start(pki.server_context())
    secure.reply("/health", BODY)
    config = {
        "checks": {
            "web": {
                "type": "http",
                "connect_ip": "127.0.0.1",
                "connect_port": server.port,
                "url": [{"path": "/health"}],
            },
            "tls": {
                "type": "ssl",
                "connect_ip": "127.0.0.1",
                "connect_port": secure.port,
                "ca_file": pki.ca_file,
                "url": [{"path": "/health", "regex": "healthy"}],
            },
        }
    }
    lines = await run_child(DEFERRED, config)
    assert lines[0] == f"RESULT web True GET http://127.0.0.1:{server.port}/health: 200"
    assert lines[1] == "SSL False"
    assert lines[2].startswith(
        f"RESULT tls True GET https://127.0.0.1:{secure.port}/health: 200, regex matched,"
        " certificate valid until "
    ), lines
    assert lines[3] == "SSL True"
