"""The status API server: a small read-only HTTP/1.1 server on asyncio streams.

Why not aiohttp: importing ``aiohttp.web`` adds about 14 MB to the daemon's resident memory
(measured: 28.9 → 42.8 MB), against a node budget of 35 MB, for a handful of GET endpoints
and one event stream. This server does only what the API needs: ``GET``/``HEAD``, one
request per connection (``Connection: close``), bounded request heads, a bearer token, and
server-sent events. It runs on the daemon's event loop and never blocks it: every response
is built from a snapshot in one synchronous step and then written out.

Endpoints (described in full by ``GET /openapi.json``): ``/v1/status``, ``/v1/instances``,
``/v1/sync-groups``, ``/v1/checks``, ``/v1/pools`` (each list also by name), ``/v1/backends``,
``/v1/notifiers``, ``/v1/bus``, ``/v1/events`` (server-sent events), ``/metrics``,
``/healthz``, ``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import time

# hmac.compare_digest without hmac: hmac imports OpenSSL's libcrypto (3.7 MB resident) for
# a constant-time comparison the interpreter has built in; the worker of a configuration
# without TLS has no other use for it.
from _operator import _compare_digest as compare_digest
from asyncio import FIRST_COMPLETED
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from halo_core import listen, version
from halo_core.events import Event
from halo_core.log import add_secret, redact_data
from halo_tool_status import metrics, snapshot
from halo_tool_status.endpoint import Endpoint, read_token, resolve
from halo_tool_status.plugin import StatusApi, settings

if TYPE_CHECKING:
    from halo_core.bus import Subscription
    from halo_core.config.model import HaloConfig
    from halo_core.daemon import Daemon

log = logging.getLogger("halo.status")

MAX_HEAD = 16 * 1024  # request line and headers; the API takes no bodies
HEAD_TIMEOUT = 10.0  # a client that does not finish its request head in time is dropped
WRITE_TIMEOUT = 30.0  # a client that does not read its response (or events) is dropped
MAX_CONNECTIONS = 64  # event streams hold connections open; this bounds them
SSE_QUEUE = 1000  # events buffered per stream before the oldest are dropped
SSE_KEEPALIVE = 15.0  # a comment line this often: proxies keep the stream, dead peers show
SOCKET_MODE = listen.SOCKET_MODE  # root and the socket's group (the daemon runs as root)

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    421: "Misdirected Request",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def json_response(data: Any, status: int = 200) -> Response:
    """``data`` as JSON, every string in it redacted (an error text may quote a secret)."""
    data = redact_data(data)
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
    return Response(status, body.encode())


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    resp = json_response({"error": message, "status": status}, status)
    resp.headers.update(headers or {})
    return resp


def parse_head(head: bytes) -> Request:
    """The request line and headers (``head`` ends with the blank line)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise HttpError(400, "undecodable request") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "malformed request line")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "malformed header line")
        headers[name.lower()] = value.strip()
    try:
        url = urlsplit(target)
    except ValueError:  # e.g. "//[x/": an unclosed IPv6 literal in the authority
        raise HttpError(400, "malformed request target") from None
    if not url.path.startswith("/"):
        raise HttpError(400, "the target must be a path")
    return Request(method, url.path, parse_qs(url.query), headers)


def _host_is_local(host_header: str) -> bool:
    """A ``Host`` naming this machine: what a local client sends, and what a web page using
    DNS rebinding to reach a localhost port cannot."""
    host = host_header.strip()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EventStream:
    """One connected ``/v1/events`` client: a bounded queue the bus handler fills."""

    def __init__(self, kinds: set[str] | None) -> None:
        self.kinds = kinds
        self.queue: deque[tuple[int, Event]] = deque(maxlen=SSE_QUEUE)
        self.dropped = 0
        self.wakeup = asyncio.Event()

    def offer(self, seq: int, event: Event) -> None:
        if self.kinds is not None and event.kind not in self.kinds:
            return
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append((seq, event))
        self.wakeup.set()


class StatusServer:
    """The daemon's status API: started at ``halo_startup``, moved at ``halo_reload``,
    closed at ``halo_shutdown`` (see :mod:`.plugin`)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.started = time.time()
        self.reloads = 0
        self.endpoint: Endpoint | None = None
        self.token: str | None = None
        self._settings: tuple[StatusApi, str] | None = None  # and the state_dir
        self._servers: list[asyncio.Server] = []  # TCP: one per address the host has
        self._bound: listen.Bound | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._streams: set[EventStream] = set()
        self._subscription: Subscription | None = None
        self._feed: Subscription | None = None  # all events, while a stream is connected
        self._seq = 0
        self._routes: list[tuple[str, Callable[[Request, str], Response]]] = [
            ("/v1/instances/", self._instance),
            ("/v1/checks/", self._check),
            ("/v1/pools/", self._pool),
        ]
        self._exact: dict[str, Callable[[Request], Response]] = {
            "/": self._index,
            "/healthz": lambda r: Response(200, b"ok\n", "text/plain; charset=utf-8"),
            "/openapi.json": self._openapi,
            "/metrics": self._metrics,
            "/v1/status": lambda r: json_response(self.snapshot()),
            "/v1/instances": lambda r: json_response(snapshot.instances(self.daemon)),
            "/v1/sync-groups": lambda r: json_response(snapshot.sync_groups(self.daemon)),
            "/v1/checks": lambda r: json_response(snapshot.checks(self.daemon)),
            "/v1/pools": lambda r: json_response(snapshot.pools(self.daemon)),
            "/v1/backends": lambda r: json_response(snapshot.backends(self.daemon)),
            "/v1/notifiers": lambda r: json_response(snapshot.notifiers(self.daemon)),
            "/v1/bus": lambda r: json_response(snapshot.bus(self.daemon)),
        }

    # ------------------------------------------------------------------ life cycle

    async def start(self, config: HaloConfig | None = None) -> bool:
        """Listen as ``config`` (default: the daemon's) says. Never raises: the API failing
        to start is logged and VRRP runs on without it."""
        if self._subscription is None:
            self._subscription = self.daemon.bus.subscribe(
                self._on_reload, kinds=["config_reloaded"], name="status-api", timeout=5.0
            )
        model = config or self.daemon.config.model
        wanted, state_dir = self._settings = (settings(model), model.global_.state_dir)
        if not wanted.enabled:
            return False
        try:
            self.token = read_token(wanted)
            add_secret(self.token)
        except (OSError, ValueError) as exc:
            log.error("status API not started: cannot read its token: %s", exc)
            return False
        endpoint = resolve(wanted.listen, state_dir)
        try:
            # The sockets the VRRP process bound and handed over with this worker (it
            # started on their first connection, which waits in the backlog), else ours.
            bound = listen.inherited(endpoint) or listen.bind(endpoint)
        except (OSError, RuntimeError) as exc:
            log.error("status API not started on %s: %s", endpoint, exc)
            return False
        try:
            for sock in bound.sockets:
                self._servers.append(await self._serve_on(sock))
        except (OSError, RuntimeError) as exc:
            log.error("status API not started on %s: %s", endpoint, exc)
            for server in self._servers:
                server.close()
            self._servers = []
            bound.close()
            return False
        self._bound = bound
        self.endpoint = endpoint
        if not endpoint.loopback and self.token is None:
            log.warning("status API on %s is reachable from the network without a token", endpoint)
        log.info("status API listening on %s", endpoint)
        return True

    async def _serve_on(self, sock: socket.socket) -> asyncio.Server:
        if sock.family == socket.AF_UNIX:
            return await asyncio.start_unix_server(self._accept, sock=sock, limit=MAX_HEAD)
        return await asyncio.start_server(self._accept, sock=sock, limit=MAX_HEAD)

    async def close(self) -> None:
        for sub in (self._subscription, self._feed):
            if sub is not None:
                self.daemon.bus.unsubscribe(sub)
        self._subscription = self._feed = None
        await self._stop_listening()

    async def _stop_listening(self) -> None:
        servers, self._servers = self._servers, []
        if not servers:
            return
        for server in servers:
            server.close()
        # Let the event streams write what is queued (the STOP transitions) before closing.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while any(s.queue for s in self._streams) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=2.0)
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        self.endpoint = None
        bound, self._bound = self._bound, None
        if bound is not None:
            bound.close()  # removes the unix socket's file if it is still ours

    def _on_reload(self, event: Event) -> None:
        self.reloads += 1

    def _on_event(self, event: Event) -> None:
        """Subscribed to every event while a stream is connected, and only then: a busy
        pool publishes thousands of check results a second that nobody else reads."""
        self._seq += 1
        for stream in list(self._streams):
            stream.offer(self._seq, event)

    async def reconfigure(self, new: HaloConfig) -> None:
        """Apply a reloaded configuration: restart the API if its settings changed."""
        if (settings(new), new.global_.state_dir) == self._settings:
            return
        log.info("status API: settings changed; restarting it")
        await self._stop_listening()
        await self.start(new)

    # ------------------------------------------------------------------ connections

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # the daemon is stopping: just close
        except Exception:  # a bug here must cost one response, never the daemon
            log.exception("status API: request failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) > MAX_CONNECTIONS:
            await self._write(writer, error_response(503, "too many connections"), head=False)
            return
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
            # Listening starts with the daemon; answers wait until every part of it is up,
            # so no client ever sees a half-built daemon.
            await self.daemon.started.wait()
        except (asyncio.LimitOverrunError, ValueError):
            await self._write(writer, error_response(431, "request head too large"), head=False)
            return
        is_head = False
        try:
            request = parse_head(head)
            is_head = request.method == "HEAD"
            self._authorize(request)
            if request.method not in ("GET", "HEAD"):
                raise HttpError(405, "read-only API: GET only", {"Allow": "GET, HEAD"})
            if request.path == "/v1/events":
                await self._events(request, reader, writer)
                return
            # VRRP may live in another process: its state as of now, not of the last push.
            await self.daemon.refresh_vrrp_status()
            response = self._route(request)
        except HttpError as exc:
            response = error_response(exc.status, exc.message, exc.headers)
        await self._write(writer, response, head=is_head)

    def _authorize(self, request: Request) -> None:
        endpoint = self.endpoint
        local_only = endpoint is not None and endpoint.path is None and endpoint.loopback
        if local_only and not _host_is_local(request.headers.get("host", "")):
            raise HttpError(421, "this API answers to localhost names only")
        if self.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not compare_digest(
            given.strip().encode(), self.token.encode()
        ):
            raise HttpError(
                401, "a valid bearer token is required", {"WWW-Authenticate": 'Bearer realm="halo"'}
            )

    async def _write(self, writer: asyncio.StreamWriter, response: Response, *, head: bool) -> None:
        lines = [
            f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            "Cache-Control: no-store",
            "Connection: close",
            f"Server: halo/{version()}",
            *(f"{k}: {v}" for k, v in response.headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if not head:
            writer.write(response.body)
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)

    # ------------------------------------------------------------------ routes

    def _route(self, request: Request) -> Response:
        handler = self._exact.get(request.path.rstrip("/") or "/")
        if handler is not None:
            return handler(request)
        for prefix, named in self._routes:
            if request.path.startswith(prefix) and len(request.path) > len(prefix):
                return named(request, unquote(request.path[len(prefix) :]))
        raise HttpError(404, f"no such endpoint: {request.path}")

    def snapshot(self) -> dict[str, Any]:
        return snapshot.full(self.daemon, self.started, self.reloads)

    def _index(self, request: Request) -> Response:
        return json_response(
            {
                "name": "halo",
                "version": version(),
                "openapi": "/openapi.json",
                "endpoints": sorted([*self._exact, "/v1/events"]),
            }
        )

    def _openapi(self, request: Request) -> Response:
        from halo_tool_status.openapi import document

        return json_response(document())

    def _metrics(self, request: Request) -> Response:
        return Response(200, metrics.render(self.snapshot()).encode(), metrics.CONTENT_TYPE)

    @staticmethod
    def _named(items: list[dict[str, Any]], name: str, what: str) -> Response:
        for item in items:
            if item.get("name") == name:
                return json_response(item)
        raise HttpError(404, f"no {what} named {name!r}")

    def _instance(self, request: Request, name: str) -> Response:
        return self._named(snapshot.instances(self.daemon), name, "VRRP instance")

    def _check(self, request: Request, name: str) -> Response:
        return self._named(snapshot.checks(self.daemon), name, "check")

    def _pool(self, request: Request, name: str) -> Response:
        return self._named(snapshot.pools(self.daemon), name, "virtual server")

    # ------------------------------------------------------------------ event stream

    async def _events(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        kinds_arg = ",".join(request.query.get("kinds", []))
        kinds = {k for k in kinds_arg.split(",") if k} or None
        writer.write(
            (
                "HTTP/1.1 200 OK\r\n"
                "Content-Type: text/event-stream; charset=utf-8\r\n"
                "Cache-Control: no-store\r\n"
                "Connection: close\r\n"
                f"Server: halo/{version()}\r\n\r\n"
            ).encode()
        )
        if request.method == "HEAD":
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
            return
        stream = EventStream(kinds)
        self._streams.add(stream)
        if self._feed is None:
            self._feed = self.daemon.bus.subscribe(
                self._on_event, name="status-api:events", timeout=5.0
            )
        # The client sends nothing more: end of input means it hung up, and the stream
        # (and the all-events subscription) should go now, not at the next write.
        hangup = asyncio.ensure_future(reader.read(1))
        try:
            # The first line says the stream is live: a client may act (e.g. trigger
            # something) once it has read it, and no event after it is missed.
            writer.write(f": halo {version()} events\nretry: 2000\n\n".encode())
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
            while True:
                if not stream.queue:
                    stream.wakeup.clear()
                    wakeup = asyncio.ensure_future(stream.wakeup.wait())
                    await asyncio.wait(
                        {wakeup, hangup}, timeout=SSE_KEEPALIVE, return_when=FIRST_COMPLETED
                    )
                    wakeup.cancel()
                    if hangup.done():
                        return
                if not stream.queue:
                    writer.write(b": keepalive\n\n")
                chunks = []
                while stream.queue:
                    seq, event = stream.queue.popleft()
                    data = json.dumps(
                        redact_data(snapshot.event_dict(event)),
                        ensure_ascii=False,
                        separators=(",", ":"),
                    )
                    chunks.append(f"id: {seq}\nevent: {event.kind}\ndata: {data}\n\n")
                if stream.dropped:
                    chunks.append(f": {stream.dropped} events dropped (slow reader)\n\n")
                    stream.dropped = 0
                writer.write("".join(chunks).encode())
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
        finally:
            hangup.cancel()
            self._streams.discard(stream)
            if not self._streams and self._feed is not None:
                self.daemon.bus.unsubscribe(self._feed)
                self._feed = None
