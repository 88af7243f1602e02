"""The status API server against a real Daemon running on the test's event loop: checks, a
pool with real servers, no VRRP (so neither root nor a lab is needed). The VRRP side and
the daemon as a process are in test_api_lab.py."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from status_helpers import families, get_json, http, metrics, raw, response_schema, split, validate

from halo_core import plugins as plugin_loader
from halo_core.config import ConfigError, load, load_text
from halo_core.daemon import Daemon
from halo_core.events import PoolChanged, PoolMember, VrrpStateChanged
from halo_core.hookspecs import hookimpl
from halo_tool_status.endpoint import parse
from halo_tool_status.plugin import server_of, settings
from halo_tool_status.server import SOCKET_MODE


def config_text(state_dir: Path, port: int, status_api: str = "") -> str:
    return f"""
global:
  router_id: test-node
  state_dir: {state_dir}
{status_api}
checks:
  always_up: {{type: script, script: /bin/true, interval: 0.2}}
  always_down: {{type: script, script: /bin/false, interval: 0.2, fall: 1}}
virtual_servers:
  - address: 192.0.2.80
    port: 80
    name: web
    delay_loop: 0.2
    quorum: 1
    real_servers:
      - address: 127.0.0.1
        port: {port}
        checks: [{{type: tcp}}]
      - address: 127.0.0.2
        port: 9
        weight: 3
        checks: [{{type: script, script: /bin/false, fall: 1}}]
"""


@dataclass
class Running:
    daemon: Daemon
    path: Path
    sock: str
    state_dir: Path
    port: int

    async def get(self, path: str, **kw: object) -> tuple[int, dict[str, str], bytes]:
        return await asyncio.to_thread(http, self.sock, path, **kw)  # type: ignore[arg-type]

    async def get_json(self, path: str, **kw: object) -> object:
        return await asyncio.to_thread(get_json, self.sock, path, **kw)  # type: ignore[arg-type]

    async def reconfigure(self, status_api: str) -> bool:
        self.path.write_text(config_text(self.state_dir, self.port, status_api))
        return await self.daemon.reload()


@pytest.fixture
async def listener() -> AsyncIterator[int]:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def start(
    tmp_path: Path, port: int, status_api: str = "", state_dir: Path | None = None
) -> Running:
    state_dir = state_dir or tmp_path / "state"
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "halo.yaml"
    path.write_text(config_text(state_dir, port, status_api))
    plugins = plugin_loader.load()
    daemon = Daemon(load(str(path), plugins), plugins)
    await daemon.start()
    return Running(daemon, path, str(state_dir / "halo.sock"), state_dir, port)


@pytest.fixture
async def running(tmp_path: Path, listener: int) -> AsyncIterator[Running]:
    r = await start(tmp_path, listener)
    # A few check rounds, until every check and real server has its first verdict; on a
    # loaded machine that takes longer than the 0.6 s it takes on a quiet one.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    await asyncio.sleep(0.6)
    while loop.time() < deadline:
        snap = await r.get_json("/v1/status")
        states = [c["state"] for c in snap["checks"]]  # type: ignore[index]
        states += [s["state"] for p in snap["pools"] for s in p["servers"]]  # type: ignore[index]
        if {"UP", "DOWN"} >= set(states) and states.count("UP") == 2:
            break
        await asyncio.sleep(0.1)
    yield r
    await r.daemon.stop()


async def test_status_checks_and_pools(running: Running) -> None:
    snap = await running.get_json("/v1/status")
    validate(snap, response_schema("/v1/status"))  # type: ignore[arg-type]
    assert snap["halo"]["router_id"] == "test-node"  # type: ignore[index]
    checks = {c["name"]: c for c in snap["checks"]}  # type: ignore[index]
    assert checks["always_up"]["state"] == "UP" and checks["always_up"]["last_ok"] is True
    assert checks["always_down"]["state"] == "DOWN" and checks["always_down"]["failures"] >= 1
    (pool,) = snap["pools"]  # type: ignore[index]
    assert pool["name"] == "web" and pool["quorum"] is True and pool["live_weight"] == 1
    servers = {s["server"]: s for s in pool["servers"]}
    assert servers[f"127.0.0.1:{running.port}"]["state"] == "UP"
    assert servers["127.0.0.2:9"]["state"] == "DOWN"
    one = await running.get_json("/v1/pools/web")
    # Checks keep running between the two requests: compare what does not count runs.
    assert one["name"] == "web" and one["quorum"] is True  # type: ignore[index]
    assert [(s["server"], s["weight"]) for s in one["servers"]] == [  # type: ignore[index]
        (s["server"], s["weight"]) for s in pool["servers"]
    ]
    assert (await running.get_json("/v1/checks/always_up"))["name"] == "always_up"  # type: ignore[index]


async def test_errors_and_methods(running: Running) -> None:
    sock = running.sock
    status, headers, body = await running.get("/v1/checks/nope")
    assert status == 404 and json.loads(body) == {
        "error": "no check named 'nope'",
        "status": 404,
    }
    assert (await running.get("/v2/anything"))[0] == 404
    status, headers, _ = await running.get("/v1/status", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    status, headers, body = await running.get("/v1/status", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 100
    garbage = await asyncio.to_thread(raw, sock, b"HELLO\r\n\r\n")
    assert split(garbage)[0] == 400
    huge = b"GET / HTTP/1.1\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n"
    assert split(await asyncio.to_thread(raw, sock, huge))[0] == 431
    status, headers, body = await running.get("/healthz")
    assert (status, body) == (200, b"ok\n")
    index = await running.get_json("/")
    assert "/metrics" in index["endpoints"] and "/v1/events" in index["endpoints"]  # type: ignore[index]


async def test_a_slow_client_does_not_block_others(running: Running) -> None:
    """A client that connects and sends nothing holds one connection, not the server."""
    idle = await asyncio.to_thread(socket.socket, socket.AF_UNIX, socket.SOCK_STREAM)
    idle.setblocking(False)
    await asyncio.get_running_loop().sock_connect(idle, running.sock)
    try:
        assert (await running.get("/healthz"))[0] == 200
    finally:
        idle.close()


async def test_metrics_parse_and_agree_with_json(running: Running) -> None:
    status, headers, body = await running.get("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    m = metrics(text)
    types = families(text)
    assert types["halo_check_runs"] == "counter" and types["halo_check_up"] == "gauge"
    assert m[("halo_check_up", frozenset({("check", "always_up"), ("type", "script")}))] == 1
    assert m[("halo_check_up", frozenset({("check", "always_down"), ("type", "script")}))] == 0
    assert m[("halo_pool_quorum", frozenset({("virtual_server", "web")}))] == 1
    down = frozenset({("virtual_server", "web"), ("server", "127.0.0.2:9")})
    assert m[("halo_real_server_up", down)] == 0
    assert m[("halo_info", frozenset({("version", "0.1.0"), ("router_id", "test-node")}))] == 1
    assert m[("process_resident_memory_bytes", frozenset())] > 1e6
    # Pool checks appear as checks too, under their generated names.
    tcp = [k for k in m if k[0] == "halo_check_runs_total" and ("type", "tcp") in k[1]]
    assert len(tcp) == 1 and m[tcp[0]] >= 1


def feeds(daemon: Daemon) -> list[str]:
    return [s.name for s in daemon.bus.subscriptions if s.name == "status-api:events"]


async def test_event_stream(running: Running) -> None:
    # Every event goes to the API only while someone streams them.
    assert feeds(running.daemon) == []
    reader, writer = await asyncio.open_unix_connection(running.sock)
    writer.write(b"GET /v1/events?kinds=pool,vrrp_state HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b"200 OK" in head and b"text/event-stream" in head
    assert (await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)).startswith(b": halo")
    vs = running.daemon.config.model.virtual_servers[0]
    bus = running.daemon.bus
    bus.publish(
        PoolChanged(
            virtual_server="web",
            service=vs,
            members=(PoolMember("127.0.0.1", 80, 1),),
            quorum=True,
            reason="test",
        )
    )
    from halo_core.events import ConfigReloaded

    bus.publish(ConfigReloaded(path="x", summary="not wanted by this stream"))
    bus.publish(
        VrrpStateChanged(instance="VI_1", old="BACKUP", new="MASTER", priority=100, reason="t")
    )
    got = []
    while len(got) < 2:
        block = (await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)).decode()
        if block.startswith(":"):
            continue
        fields = dict(line.split(": ", 1) for line in block.strip().splitlines())
        got.append((fields["event"], json.loads(fields["data"]), int(fields["id"])))
    (k1, pool, id1), (k2, vrrp, id2) = got
    assert (k1, k2) == ("pool", "vrrp_state") and id2 > id1
    # The service is summarised: its real servers' checker settings stay out of the stream.
    assert pool["service"]["name"] == "web" and "real_servers" not in pool["service"]
    assert pool["members"] == [{"address": "127.0.0.1", "port": 80, "weight": 1, "sorry": False}]
    assert vrrp["source"] == "vrrp:VI_1" and vrrp["new"] == "MASTER" and vrrp["time"] > 0
    assert feeds(running.daemon) == ["status-api:events"]
    writer.close()
    for _ in range(100):
        if not feeds(running.daemon):
            break
        await asyncio.sleep(0.01)
    assert feeds(running.daemon) == []


async def test_token(tmp_path: Path, listener: int) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    r = await start(tmp_path, listener, f"  status_api:\n    token_file: {token_file}\n")
    try:
        status, headers, _ = await r.get("/v1/status")
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        bad = {"Authorization": "Bearer wrong"}
        assert (await r.get("/metrics", headers=bad))[0] == 401
        good = {"Authorization": "Bearer s3cret-token"}
        assert (await r.get("/metrics", headers=good))[0] == 200
        # The first verdicts before halo status reads them (asserted below): the client
        # took about as long to start as the first check round, and lost the race 1 time
        # in 6 once it started a little faster.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while loop.time() < deadline:
            body = (await r.get("/v1/checks/always_down", headers=good))[2]
            if json.loads(body)["state"] == "DOWN":
                break
            await asyncio.sleep(0.05)
        # halo status finds the socket and the token in the configuration.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "halo_core.cli",
            "status",
            "-c",
            str(r.path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        text = out.decode()
        assert "always_down  script  DOWN" in text
        assert "web" in text and "NO" not in text
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "halo_core.cli",
            "status",
            "--api",
            f"unix:{r.sock}",
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "HALO_TOKEN": ""},
        )
        out, err = await proc.communicate()
        assert proc.returncode == 1 and b"HTTP 401" in err
        # the token from a file or the environment, never in argv (ps shows argv)
        for extra, env in (
            (["--token-file", str(token_file)], {}),
            ([], {"HALO_STATUS_TOKEN": "s3cret-token"}),
        ):
            proc = await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "halo_core.cli", "status", "--api", f"unix:{r.sock}"],
                *extra,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "HALO_TOKEN": "", **env},
            )
            out, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()
            assert "always_down  script  DOWN" in out.decode()
        proc = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "halo_core.cli", "status", "--api", f"unix:{r.sock}"],
            *["--token-file", str(tmp_path / "missing")],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 2 and b"No such file or directory" in err
    finally:
        await r.daemon.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_reload_moves_the_api_to_tcp_and_back(running: Running) -> None:
    port = free_port()
    assert await running.reconfigure(f"  status_api:\n    listen: 127.0.0.1:{port}\n")
    await asyncio.sleep(0.2)
    assert not os.path.exists(running.sock)
    where = ("127.0.0.1", port)
    snap = await asyncio.to_thread(get_json, where, "/v1/status")
    assert snap["halo"]["reloads"] == 1
    # Bound to loopback, it answers to local names only (DNS rebinding from a browser).
    status, _, _ = await asyncio.to_thread(
        http, where, "/v1/status", headers={"Host": "evil.example:80"}
    )
    assert status == 421
    assert await running.reconfigure("")
    await asyncio.sleep(0.2)
    assert os.path.exists(running.sock)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.to_thread(http, where, "/healthz")


async def test_unix_socket_taken_over_only_when_stale(tmp_path: Path, listener: int) -> None:
    state = tmp_path / "state"
    state.mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(state / "halo.sock"))
    stale.close()  # the file stays: a daemon killed with -9 leaves this
    previous = os.umask(0)  # the socket must not be born 0777, even for a moment
    try:
        r = await start(tmp_path, listener)
    finally:
        assert os.umask(previous) == 0  # and the umask is the daemon's again
    try:
        assert stat.S_IMODE(os.stat(r.sock).st_mode) == SOCKET_MODE
        assert (await r.get("/healthz"))[0] == 200
        # A second daemon with the same state_dir must not steal the live socket.
        second = await start(tmp_path / "b", listener, state_dir=state)
        server = server_of(second.daemon)
        assert server is not None and server.endpoint is None  # not listening
        await second.daemon.stop()
        assert (await r.get("/healthz"))[0] == 200  # and it did not remove ours on stop
    finally:
        await r.daemon.stop()
    assert not os.path.exists(r.sock)


async def test_answers_wait_for_a_fully_started_daemon(tmp_path: Path, listener: int) -> None:
    """The API listens from halo_startup on (before VRRP, checks and pools exist) but
    answers only once the daemon has started every part: nobody sees a half-built one."""
    release = asyncio.Event()

    @hookimpl(trylast=True)  # called after the status plugin's: the daemon is mid-start
    async def halo_startup(daemon: Daemon) -> None:
        await release.wait()

    slow = types.SimpleNamespace(halo_startup=halo_startup, __name__="slow_start")
    state = tmp_path / "state"
    path = tmp_path / "halo.yaml"
    path.write_text(config_text(state, listener))
    plugins = plugin_loader.load(modules=[("slow-start", slow)])
    daemon = Daemon(load(str(path), plugins), plugins)
    starting = asyncio.ensure_future(daemon.start())
    try:
        for _ in range(100):
            if (state / "halo.sock").exists():
                break
            await asyncio.sleep(0.05)
        sock = str(state / "halo.sock")
        early = asyncio.ensure_future(asyncio.to_thread(get_json, sock, "/v1/pools"))
        done, _ = await asyncio.wait({early}, timeout=0.5)
        assert not done  # held, not answered with a daemon that has no pools yet
        release.set()
        await starting
        assert [p["name"] for p in await early] == ["web"]
    finally:
        release.set()
        await starting
        await daemon.stop()


async def test_disabled(tmp_path: Path, listener: int) -> None:
    r = await start(tmp_path, listener, "  status_api: {enabled: false}\n")
    try:
        assert not os.path.exists(r.sock)
    finally:
        await r.daemon.stop()


def test_listen_values() -> None:
    assert parse("unix:/run/halo/halo.sock").path == "/run/halo/halo.sock"
    assert parse("/tmp/x.sock").is_unix
    tcp = parse("127.0.0.1:9201")
    assert (tcp.host, tcp.port, tcp.loopback) == ("127.0.0.1", 9201, True)
    assert parse("[::1]:9201").loopback and str(parse("[::1]:9201")) == "[::1]:9201"
    assert parse("localhost:80").loopback and not parse("0.0.0.0:9201").loopback
    for bad in ("unix:relative", "9201", "::1:9201", "host:0", "host:http", "[::1]9201"):
        with pytest.raises(ValueError):
            parse(bad)


def test_config_validation() -> None:
    """The plugin's own section, validated by the core like its own settings."""
    plugins = plugin_loader.load()
    base = "global:\n  status_api:\n"
    with pytest.raises(ConfigError, match=r"^x.yaml:3:13: global\.status_api\.listen: port"):
        load_text(base + "    listen: localhost:99999\n", "x.yaml", plugins)
    with pytest.raises(ConfigError, match="either 'token' or 'token_file'"):
        load_text(base + "    token: a\n    token_file: /b\n", plugins=plugins)
    cfg = load_text(base + "    listen: 127.0.0.1:9201\n    token: t\n", plugins=plugins)
    assert settings(cfg.model).listen == "127.0.0.1:9201"
    assert settings(load_text("{}", plugins=plugins).model).enabled is True


def test_settings_without_the_plugin(tmp_path: Path) -> None:
    """Blocked (or not installed), the plugin's section is an unknown key and a daemon runs
    without any API."""
    plugins = plugin_loader.load(block=["tool-status"])
    with pytest.raises(ConfigError, match=r"global\.status_api: unknown key"):
        load_text("global:\n  status_api: {enabled: true}\n", plugins=plugins)

    async def run() -> None:
        state = tmp_path / "state"
        path = tmp_path / "halo.yaml"
        path.write_text(f"global:\n  state_dir: {state}\n")
        daemon = Daemon(load(str(path), plugins), plugins)
        await daemon.start()
        try:
            assert server_of(daemon) is None and not (state / "halo.sock").exists()
        finally:
            await daemon.stop()

    asyncio.run(run())


def test_schema_shows_the_section() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "halo_core.cli", "schema"], capture_output=True, text=True
    )
    doc = json.loads(proc.stdout)
    global_ = doc["$defs"][doc["properties"]["global"]["$ref"].rsplit("/", 1)[1]]
    section = doc["$defs"][global_["properties"]["status_api"]["$ref"].rsplit("/", 1)[1]]
    assert set(section["properties"]) == {"enabled", "listen", "token", "token_file"}
    assert "sections" not in global_["properties"]
    listed = subprocess.run(
        [sys.executable, "-m", "halo_core.cli", "plugins"], capture_output=True, text=True
    )
    assert "halo-tool-status" in listed.stdout and "option global.status_api" in listed.stdout


def test_status_command_stays_light() -> None:
    """Like `halo check`: no network library comes in with `halo status`."""
    argv = ["status", "--api", "unix:/nonexistent/halo.sock"]
    probe = (
        "import sys\nfrom halo_core import cli\nrc = cli.main(sys.argv[1:])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'aiohttp', 'scapy', 'pyroute2', 'asyncssh'})\nprint('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=False
    )
    assert "HEAVY=\n" in proc.stdout, proc.stdout + proc.stderr


def test_a_check_that_cannot_start_is_in_the_metrics_with_the_reason() -> None:
    """A check whose checker could not be built: down, and halo_check_start_failed with the
    reason, beside the JSON's start_error."""
    from halo_tool_status.metrics import render

    reason = "cannot start: ModuleNotFoundError: No module named 'redis'"
    check = {"name": "db", "type": "redis", "up": False, "errors": 3, "start_error": reason}
    halo = {"version": "0", "router_id": "n", "started": 0, "reloads": 0, "hook_failures": {}}
    text = render({"halo": halo, "checks": [check, {**check, "name": "ok", "start_error": None}]})
    m = metrics(text)
    assert families(text)["halo_check_start_failed"] == "gauge"
    who = {("check", "db"), ("type", "redis")}
    assert m[("halo_check_start_failed", frozenset({*who, ("reason", reason)}))] == 1
    assert m[("halo_check_up", frozenset(who))] == 0
    assert not [k for k in m if k[0] == "halo_check_start_failed" and ("check", "ok") in k[1]]


async def test_secrets_never_in_logs_or_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run with a status token, a webhook whose URL (from the environment) fails and a
    header value, and a VRRP password: none of them appears in any log line (text or JSON)
    or in /v1/status, also where an error message would quote them."""
    import io
    import logging

    from halo_core import log as halo_log

    token = "tok-9f8e7d6c5b4a"
    url = "http://127.0.0.1:99999/hook-path-s3cr3t-1b2c"  # port out of range: refused at start
    header = "hdr-value-7a6b5c4d"
    auth_pass = "pw4vrrp"
    monkeypatch.setenv("HALO_TEST_HOOK_URL", url)
    state_dir = tmp_path / "state"
    path = tmp_path / "halo.yaml"
    path.write_text(f"""
global:
  state_dir: {state_dir}
  status_api:
    token: {token}
checks:
  down: {{type: script, script: /bin/false, interval: 0.2, fall: 1}}
notifiers:
  hook:
    type: webhook
    url: {{env: HALO_TEST_HOOK_URL}}
    headers: {{X-Api-Key: {header}}}
    attempts: 1
    timeout: 1
""")
    load_text(
        "vrrp_instances:\n  VI_1: {interface: eth0, virtual_router_id: 1,"
        f" virtual_ipaddress: [192.0.2.1], authentication: {{auth_pass: {auth_pass}}}}}\n"
    )
    secrets = [token, url, header, auth_pass]
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    texts = []
    try:
        for fmt in ("text", "json"):
            stream = io.StringIO()
            monkeypatch.setattr(sys, "stderr", stream)
            halo_log.setup("debug", fmt)
            plugins = plugin_loader.load()
            daemon = Daemon(load(str(path), plugins), plugins)
            await daemon.start()
            sock = str(state_dir / "halo.sock")
            auth = {"Authorization": f"Bearer {token}"}
            try:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 15
                status: Any = {}
                while loop.time() < deadline:
                    status = await asyncio.to_thread(get_json, sock, "/v1/status", headers=auth)
                    if status["checks"][0]["runs"] >= 2:
                        break
                    await asyncio.sleep(0.1)
                # whatever a plugin or the core might log about them
                logging.getLogger("halo.test").error("the secrets: %s", " ".join(secrets))
                try:
                    raise ValueError(f"failed with {url} and {token}")
                except ValueError:
                    logging.getLogger("halo.test").exception("a traceback quoting secrets")
                events = await asyncio.to_thread(http, sock, "/v1/status", headers=auth)
            finally:
                await daemon.stop()
            texts += [stream.getvalue(), json.dumps(status), events[2].decode()]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    joined = "\n".join(texts)
    assert halo_log.REDACTED in joined
    assert "ValueError: failed with" in joined
    for secret in secrets:
        assert secret not in joined, secret
