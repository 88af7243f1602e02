"""Deterministic fuzzing of halo's input surfaces, shared by the CI tests and ``bench/fuzz``.

Each ``fuzz_*`` function takes a seed and a count, feeds that many generated inputs to the
real code and returns a :class:`FuzzReport`: inputs, crashes (an exception that is not the
surface's own "bad input" answer), must-drop accepts (VRRP: a packet RFC 3768 / RFC 9568
says to discard that reached the state machine), false drops (a valid packet refused) and
the time per input. The same seed gives the same inputs.

- :func:`fuzz_vrrp`: VRRPv2/v3 adverts over IPv4 and IPv6, built and mutated here (IP
  header, VRRP fields, checksum fixed up or not, ancillary data: hop limit, destination,
  interface index), pushed through the interface socket's receive path into real
  :class:`~halo_core.vrrp.engine.InstanceRuntime` objects, in BACKUP and in MASTER. Whether
  a packet must be dropped is decided by :func:`must_drop`, written from the RFCs
  independently of :mod:`halo_core.vrrp.packet` (its own parser, a naive RFC 1071 sum).
- :func:`fuzz_http`: raw, malformed HTTP requests to a running status API (``halo run`` in
  a subprocess, on loopback); every answer must be a well-formed response, the daemon must
  live, its log must hold no traceback.
- :func:`fuzz_config`: mutated YAML through the configuration loader (what ``halo check``
  runs); a crash is any exception other than ``ConfigError``, a hang an input over 1 s.
- :func:`fuzz_keepalived`: mutated keepalived.conf through ``halo convert``'s lexer, parser
  and mapping; a crash is any exception other than ``ConvertError``.
"""

from __future__ import annotations

import contextlib
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = [
    "FuzzReport",
    "fuzz_config",
    "fuzz_http",
    "fuzz_keepalived",
    "fuzz_vrrp",
    "must_drop",
    "ones_complement_sum",
]

HANG_SECONDS = 1.0  # an input taking longer than this counts as a hang


@dataclass
class FuzzReport:
    """What one fuzzing run found."""

    surface: str
    inputs: int = 0
    crashes: int = 0
    must_drop_accepts: int = 0
    false_drops: int = 0
    hangs: int = 0
    accepted: int = 0
    seconds: float = 0.0
    slowest: float = 0.0
    examples: list[str] = field(default_factory=list)  # the first few findings, for the report
    outcomes: Counter[str] = field(default_factory=Counter)
    crash_kinds: Counter[str] = field(default_factory=Counter)  # "ReaderError at reader.py:143"

    def finding(self, kind: str, text: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {text}")

    @property
    def per_input_us(self) -> float:
        return self.seconds / self.inputs * 1e6 if self.inputs else 0.0

    @property
    def clean(self) -> bool:
        return not (self.crashes or self.must_drop_accepts or self.false_drops or self.hangs)

    def line(self) -> str:
        return (
            f"{self.surface:<10} inputs {self.inputs:>9,}  crashes {self.crashes}  "
            f"must-drop accepts {self.must_drop_accepts}  false drops {self.false_drops}  "
            f"hangs {self.hangs}  accepted {self.accepted:,}  "
            f"{self.per_input_us:,.1f} µs/input  slowest {self.slowest * 1000:,.1f} ms"
        )


def _crash_kind(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return type(exc).__name__ + where


def _last_frame(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return f"{type(exc).__name__}: {str(exc)[:200]}{where}"


# ============================================================================ VRRP

PEER4 = IPv4Address("192.0.2.12")
PEER6 = IPv6Address("fe80::12")
OWN4 = IPv4Address("192.0.2.11")
OWN6 = IPv6Address("fe80::11")
GROUP4 = IPv4Address("224.0.0.18")
GROUP6 = IPv6Address("ff02::12")
IFINDEX = 7
VRID = 51
PASSWORD = b"s3cret"
_IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
_IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)

Anc = list[tuple[int, int, bytes]]


@dataclass(frozen=True)
class Expected:
    """The receiving instance's configuration, as the oracle sees it."""

    version: int
    v6: bool
    interval_cs: int
    addresses: tuple[IPv4Address, ...] | tuple[IPv6Address, ...]
    auth_pass: bytes | None  # VRRPv2 PASS password, None without authentication
    local: frozenset[IPv4Address | IPv6Address]


def ones_complement_sum(data: bytes) -> int:
    """RFC 1071: the ones'-complement sum of 16-bit words, folded; a plain loop, on purpose
    (the reference the codec's fast checksum is checked against)."""
    if len(data) % 2:
        data += b"\0"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _pseudo(src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address, n: int) -> bytes:
    if isinstance(src, IPv4Address):
        return src.packed + dst.packed + struct.pack("!BBH", 0, 112, n)
    return src.packed + dst.packed + struct.pack("!I3xB", n, 112)


def _checksum_ok(
    payload: bytes, version: int, src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address
) -> bool:
    covered = payload if version == 2 else _pseudo(src, dst, len(payload)) + payload
    return ones_complement_sum(covered) == 0xFFFF


def _fix_checksum(
    payload: bytearray, version: int, src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address
) -> None:
    if len(payload) < 8:
        return
    payload[6:8] = b"\0\0"
    covered = bytes(payload) if version == 2 else _pseudo(src, dst, len(payload)) + payload
    payload[6:8] = struct.pack("!H", ~ones_complement_sum(covered) & 0xFFFF)


def must_drop(
    exp: Expected,
    *,
    datagram: bytes | None = None,
    payload: bytes | None = None,
    anc: Anc | None = None,
    src6: IPv6Address | None = None,
    ifindex: int = IFINDEX,
) -> str | None:
    """Why RFC 3768 §7.1 / RFC 9568 §7.1 (and halo's one interface rule) say to drop this
    packet, or None when it is to be accepted. IPv4: the whole datagram (a raw socket gives
    the IP header); IPv6: the VRRP payload, the ancillary data and the source."""
    if not exp.v6:
        assert datagram is not None
        if len(datagram) < 20:
            return "ip header short"
        ihl = (datagram[0] & 0x0F) * 4
        if datagram[0] >> 4 != 4 or ihl < 20:
            return "ip version/ihl"
        total = (datagram[2] << 8) | datagram[3]
        if not ihl <= total <= len(datagram):
            return "ip total length"
        if ((datagram[6] << 8) | datagram[7]) & 0x3FFF:
            return "fragment"
        if datagram[9] != 112:
            return "not protocol 112"
        ttl = datagram[8]
        src: IPv4Address | IPv6Address = IPv4Address(datagram[12:16])
        dst: IPv4Address | IPv6Address = IPv4Address(datagram[16:20])
        body = datagram[ihl:total]
    else:
        assert payload is not None and src6 is not None and anc is not None
        ttl, dst = -1, GROUP6
        for level, kind, value in anc:
            if level != socket.IPPROTO_IPV6:
                continue
            if kind == _IPV6_HOPLIMIT:
                if len(value) < 4:
                    return "malformed hop limit"
                ttl = struct.unpack("i", value[:4])[0]
            elif kind == _IPV6_PKTINFO:
                if len(value) < 20:
                    return "malformed pktinfo"
                dst = IPv6Address(value[:16])
                if struct.unpack("I", value[16:20])[0] != ifindex:
                    return "received on another interface"
        src, body = src6, payload
    if dst.is_multicast and ttl != 255:
        return "ttl"
    if len(body) < 8:
        return "short"
    version, kind = body[0] >> 4, body[0] & 0x0F
    if version != exp.version:
        return "version"
    if kind != 1:
        return "type"
    count = body[3]  # 0 is not a reason to drop (RFC 9568 §7.1): keepalived sends it
    alen = 16 if exp.v6 else 4
    if len(body) != 8 + count * alen + (8 if version == 2 else 0):
        return "length"
    if not _checksum_ok(body, version, src, dst):
        return "checksum"
    if body[1] != VRID:
        return "vrid"
    if version == 2:
        auth_type = 1 if exp.auth_pass is not None else 0
        if body[4] != auth_type:
            return "auth type"
        if exp.auth_pass is not None and body[-8:] != exp.auth_pass.ljust(8, b"\0"):
            return "password"
        if body[5] == 0:
            return "interval 0"
        raw = body[8 : 8 + count * 4]
        listed = [IPv4Address(raw[i : i + 4]) for i in range(0, len(raw), 4)]
        if sorted(listed) != sorted(exp.addresses) and body[2] != 255:  # type: ignore[type-var]
            return "address list from a non-owner"
        if body[5] * 100 != exp.interval_cs:
            return "interval differs"
    elif ((body[4] & 0x0F) << 8) | body[5] == 0:
        return "interval 0"
    if src in exp.local:
        return "our own packet"
    return None


@dataclass
class Target:
    """One receiving VRRP instance: its configuration as the oracle sees it, the receive
    half of its interface socket (``take``, as the event loop reads packets)
    and its runtime (whose ``counters["adverts_received"]`` counts what reached the state
    machine). The harness that builds real ones is ``tests/fuzz/vrrp_targets.py``: plugins
    may not import the engine."""

    name: str
    exp: Expected
    sock: Any
    runtime: Any


def _vrrp_input(
    rng: random.Random, exp: Expected
) -> tuple[bytes, IPv4Address | IPv6Address, IPv4Address | IPv6Address, int]:
    """A VRRP payload, its source and destination and TTL: valid, then maybe mutated."""
    v6 = exp.v6
    own = next(a for a in sorted(exp.local, key=str) if isinstance(a, IPv6Address) is v6)
    version = exp.version if rng.random() < 0.9 else rng.choice([0, 1, 2, 3, 4, 15])
    r = rng.random()
    src: IPv4Address | IPv6Address
    if r < 0.9:
        src = PEER6 if v6 else PEER4
    elif r < 0.95:
        src = own
    else:
        src = IPv6Address(rng.getrandbits(128)) if v6 else IPv4Address(rng.getrandbits(32))
    r = rng.random()
    dst: IPv4Address | IPv6Address
    if r < 0.85:
        dst = GROUP6 if v6 else GROUP4
    elif r < 0.93:
        dst = own
    else:
        dst = IPv6Address(rng.getrandbits(128)) if v6 else IPv4Address(rng.getrandbits(32))
    if isinstance(src, IPv4Address) is not isinstance(dst, IPv4Address):
        dst = GROUP6 if v6 else GROUP4
    ttl = 255 if rng.random() < 0.9 else rng.choice([0, 1, 64, 254, 256 % 256, 128])
    addrs: list[Any] = list(exp.addresses)
    r = rng.random()
    if r < 0.1:
        rng.shuffle(addrs)
    elif r < 0.15:
        addrs = addrs[:1]
    elif r < 0.2:
        bits = 128 if v6 else 32
        make = IPv6Address if v6 else IPv4Address
        addrs = [make(rng.getrandbits(bits)) for _ in range(rng.randint(1, 20))]
    count = len(addrs)
    priority = rng.choice([0, 1, 99, 100, 101, 254, 255, rng.randint(0, 255)])
    vrid = VRID if rng.random() < 0.9 else rng.randint(0, 255)
    if version == 2 or (version not in (2, 3) and not v6):
        b4 = 1 if exp.auth_pass is not None else 0
        if rng.random() < 0.05:
            b4 = rng.randint(0, 255)
        b5 = exp.interval_cs // 100 if rng.random() < 0.9 else rng.randint(0, 255)
        auth = (exp.auth_pass or b"").ljust(8, b"\0")
        if rng.random() < 0.05:
            auth = rng.randbytes(8)
        tail = auth
    else:
        cs = rng.choice([exp.interval_cs, 1, 4095, 0, rng.randint(0, 0xFFFF)])
        b4, b5 = (cs >> 8) & 0xFF, cs & 0xFF
        tail = b""
    body = b"".join(a.packed for a in addrs)
    payload = bytearray(
        struct.pack("!BBBBBBH", (version << 4) | 1, vrid, priority, count, b4, b5, 0) + body + tail
    )
    _fix_checksum(payload, 3 if version != 2 else 2, src, dst)
    if rng.random() < 0.4:
        _mutate(rng, payload)
        if rng.random() < 0.6:  # reach the checks behind the checksum
            _fix_checksum(payload, 2 if payload[:1] == b"\x21" else 3, src, dst)
    return bytes(payload), src, dst, ttl


def _mutate(rng: random.Random, data: bytearray) -> None:
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        if r < 0.35 and data:
            i = rng.randrange(len(data))
            data[i] = rng.randint(0, 255)
        elif r < 0.5 and data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif r < 0.65:
            del data[rng.randint(0, len(data)) :]
        elif r < 0.75:
            data.extend(rng.randbytes(rng.choice([1, 2, 4, 8, 16, rng.randint(0, 64)])))
        elif r < 0.9 and len(data) >= 8:
            i = rng.randrange(8)  # a header field
            data[i] = rng.choice([0, 1, 2, 3, 0x21, 0x31, 0x32, 0xFF, rng.randint(0, 255)])
        elif data:
            i = rng.randrange(len(data))
            data[i:i] = rng.randbytes(rng.randint(1, 8))


def _ipv4_datagram(
    rng: random.Random, payload: bytes, src: IPv4Address, dst: IPv4Address, ttl: int
) -> bytes:
    options = b"\x01\x01\x01\x00" * rng.choice([0, 0, 0, 0, 1, 2]) if rng.random() < 0.1 else b""
    ihl = 5 + len(options) // 4
    header = bytearray(
        struct.pack(
            "!BBHHHBBHII",
            0x40 | ihl,
            0xC0,
            ihl * 4 + len(payload),
            rng.getrandbits(16),
            0,
            ttl,
            112,
            0,
            int(src),
            int(dst),
        )
        + options
    )
    if rng.random() < 0.1:
        field_at = rng.choice([0, 2, 3, 6, 7, 9])
        header[field_at] = rng.randint(0, 255)
    datagram = bytes(header) + payload
    if rng.random() < 0.05:
        datagram += rng.randbytes(rng.randint(1, 32))  # beyond Total Length
    if rng.random() < 0.03:
        datagram = datagram[: rng.randint(0, len(datagram))]
    return datagram


def _ipv6_ancillary(rng: random.Random, dst: IPv6Address, ttl: int) -> Anc:
    anc: Anc = []
    if rng.random() < 0.97:
        value = struct.pack("i", ttl)
        if rng.random() < 0.02:
            value = value[: rng.randint(0, 3)]
        anc.append((socket.IPPROTO_IPV6, _IPV6_HOPLIMIT, value))
    if rng.random() < 0.97:
        index = IFINDEX if rng.random() < 0.95 else rng.choice([0, 1, IFINDEX + 1, 2**31])
        value = struct.pack("16sI", dst.packed, index)
        if rng.random() < 0.02:
            value = value[: rng.randint(0, 19)]
        anc.append((socket.IPPROTO_IPV6, _IPV6_PKTINFO, value))
    if rng.random() < 0.02:
        anc.append((socket.SOL_SOCKET, rng.randint(0, 64), rng.randbytes(rng.randint(0, 16))))
    rng.shuffle(anc)
    return anc


def fuzz_vrrp(seed: int, count: int, targets: Sequence[Target]) -> FuzzReport:
    """``count`` generated packets through each target's interface socket into its instance."""
    import logging

    report = FuzzReport("vrrp")
    rng = random.Random(seed)
    vrrp_log = logging.getLogger("halo.vrrp")
    level = vrrp_log.level
    vrrp_log.setLevel(logging.CRITICAL)  # a million "advert from ..." warnings are not the point
    start = time.perf_counter()
    try:
        for _ in range(count):
            t = targets[rng.randrange(len(targets))]
            payload, src, dst, ttl = _vrrp_input(rng, t.exp)
            before = t.runtime.counters["adverts_received"]
            t0 = time.perf_counter()
            try:
                if t.exp.v6:
                    assert isinstance(src, IPv6Address) and isinstance(dst, IPv6Address)
                    anc = _ipv6_ancillary(rng, dst, ttl)
                    verdict = must_drop(t.exp, payload=payload, anc=anc, src6=src)
                    t.sock.take(payload, anc, (f"{src}%eth0", 0, 0, IFINDEX), 0.0, 0.0)
                else:
                    assert isinstance(src, IPv4Address) and isinstance(dst, IPv4Address)
                    datagram = _ipv4_datagram(rng, payload, src, dst, ttl)
                    verdict = must_drop(t.exp, datagram=datagram)
                    t.sock.take(datagram, [], None, 0.0, 0.0)
            except Exception as exc:
                report.crashes += 1
                report.finding("crash", f"{t.name} {payload.hex()}: {_last_frame(exc)}")
                continue
            finally:
                elapsed = time.perf_counter() - t0
                report.slowest = max(report.slowest, elapsed)
                report.inputs += 1
            accepted = t.runtime.counters["adverts_received"] > before
            report.outcomes[verdict or "accept"] += 1
            if accepted:
                report.accepted += 1
                if verdict is not None:
                    report.must_drop_accepts += 1
                    report.finding("must-drop accept", f"{t.name} ({verdict}) {payload.hex()}")
            elif verdict is None:
                report.false_drops += 1
                report.finding("false drop", f"{t.name} {payload.hex()} src {src} dst {dst}")
    finally:
        vrrp_log.setLevel(level)
    report.seconds = time.perf_counter() - start
    return report


# ============================================================================ status API HTTP

_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "get", "", "G\x00T", "GET GET"]
_PATHS = [
    "/",
    "/v1/status",
    "/v1/instances",
    "/v1/instances/VI_1",
    "/v1/instances/%00",
    "/v1/checks/%ff%fe",
    "/metrics",
    "/healthz",
    "/openapi.json",
    "/v1/events?kinds=vrrp_state",
    "*",
    "http://localhost/v1/status",
    "//[x/",
    "/v1/pools/" + "a" * 2000,
    "/?" + "&".join(f"k{i}=v" for i in range(200)),
    "/v1/status?%zz=%",
    "/\x7f\x80\xff",
    "/../../etc/passwd",
]
_HOSTS = ["localhost", "127.0.0.1", "[::1]", "localhost:1", "evil.example", "", "[::1", "::1"]


def _http_request(rng: random.Random) -> bytes:
    method = rng.choice(_METHODS) if rng.random() < 0.3 else "GET"
    path = rng.choice(_PATHS)
    version = rng.choice(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/1.1 x", "", "http/1.1"])
    if rng.random() < 0.7:
        version = "HTTP/1.1"
    headers = [f"Host: {rng.choice(_HOSTS) if rng.random() < 0.3 else 'localhost'}"]
    for _ in range(rng.choice([0, 0, 1, 3, 30])):
        headers.append(
            rng.choice(
                [
                    "Authorization: Bearer " + rng.choice(["", "x", "a" * 500]),
                    "Authorization: Basic Zm9vOmJhcg==",
                    "X-A: " + "b" * rng.choice([1, 100, 5000]),
                    " Leading: space",
                    "NoColon",
                    ":empty-name",
                    "Content-Length: " + rng.choice(["5", "-1", "99999999999999999999", "x"]),
                    "Transfer-Encoding: chunked",
                    "Connection: keep-alive",
                    "Host: second.example",
                ]
            )
        )
    lines = [f"{method} {path} {version}", *headers, "", ""]
    head = bytearray("\r\n".join(lines).encode("latin-1", "replace"))
    r = rng.random()
    if r < 0.3:
        _mutate(rng, head)
    elif r < 0.35:
        head = bytearray(rng.randbytes(rng.randint(0, 300))) + b"\r\n\r\n"
    elif r < 0.4:
        head = head.replace(b"\r\n", b"\n")
    elif r < 0.42:
        head = bytearray(b"GET / HTTP/1.1\r\nX: " + b"y" * 20000 + b"\r\n\r\n")  # over the limit
    if rng.random() < 0.1:
        head += b"body-bytes-the-api-does-not-read"
    return bytes(head)


_STATUS_LINE = b"HTTP/1.1 "


def _check_response(data: bytes, request: bytes) -> str | None:
    """None when ``data`` is a well-formed answer (or nothing: the head never ended)."""
    if not data:
        return None if b"\r\n\r\n" not in request else "no answer to a complete head"
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(_STATUS_LINE):
        return f"not an HTTP response: {data[:80]!r}"
    try:
        status = int(head[9:12])
    except ValueError:
        return f"bad status line: {head[:40]!r}"
    if status >= 500 and status != 503:
        return f"server error {status}"
    lengths = [
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")[1:]
        if line.lower().startswith(b"content-length:")
    ]
    streamed = request.startswith(b"HEAD ") or b"text/event-stream" in head
    if lengths and not streamed and int(lengths[0]) != len(body):
        return f"content-length {lengths[0]!r} but {len(body)} octets"
    return None


def _exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with contextlib.suppress(OSError):
            s.sendall(request)
            s.shutdown(socket.SHUT_WR)  # the server sees the end; an unfinished head ends
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"text/event-stream" in chunks[0] and sum(map(len, chunks)) > 200:
                break  # a live event stream: the head and the first lines are enough
        return b"".join(chunks)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def status_daemon(workdir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    """``halo run`` with the status API on a loopback port and two checks, no VRRP (no root
    needed); yields (port, process, log path), stops it after."""
    port = _free_port()
    config = workdir / "halo.yaml"
    log_path = workdir / "halo.log"
    config.write_text(
        f"global:\n  router_id: fuzz\n  state_dir: {workdir / 'state'}\n"
        f"  status_api: {{listen: '127.0.0.1:{port}'}}\n"
        "checks:\n  up: {type: script, script: /bin/true, interval: 1}\n"
    )
    with open(log_path, "wb") as log_fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "halo_core.cli", "run", "-c", str(config)],
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                if _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", 2.0):
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"halo did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        yield port, proc, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def fuzz_http(seed: int, count: int, workdir: Path | None = None) -> FuzzReport:
    """``count`` generated requests, one connection each, to a running daemon's API."""
    report = FuzzReport("http")
    rng = random.Random(seed)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="halo-fuzz-")))
        with status_daemon(workdir) as (port, proc, log_path):
            start = time.perf_counter()
            for _ in range(count):
                if not _http_one(report, rng, port, proc):
                    break
            report.seconds = time.perf_counter() - start
            alive = proc.poll() is None
        text = log_path.read_text(errors="replace")
    tracebacks = text.count("Traceback")
    if tracebacks or not alive:
        report.crashes += tracebacks + (0 if alive else 1)
        report.finding("log", text[-1500:])
    return report


def _http_one(
    report: FuzzReport, rng: random.Random, port: int, proc: subprocess.Popen[bytes]
) -> bool:
    """Send one request and judge the answer; False when the daemon has died."""
    request = _http_request(rng)
    t0 = time.perf_counter()
    try:
        answer = _exchange(port, request)
    except OSError as exc:
        answer = b""
        if proc.poll() is not None:
            report.crashes += 1
            report.finding("daemon died", f"after {request[:200]!r}: {exc}")
            return False
    elapsed = time.perf_counter() - t0
    report.inputs += 1
    report.slowest = max(report.slowest, elapsed)
    problem = _check_response(answer, request)
    report.outcomes[answer[9:12].decode("latin-1") if answer else "closed"] += 1
    if problem is not None:
        report.crashes += 1
        report.finding("bad answer", f"{request[:200]!r}: {problem}")
    if elapsed > HANG_SECONDS:
        report.hangs += 1
        report.finding("slow", f"{request[:200]!r}: {elapsed:.2f} s")
    return True


# ============================================================================ config loader

SEED_CONFIG = """\
global:
  router_id: lb1
  log_format: text
vrrp_instances:
  VI_1:
    state: MASTER
    interface: eth0
    virtual_router_id: 51
    priority: 100
    advert_int: 1
    version: 2
    authentication: {auth_type: PASS, auth_pass: '1111'}
    virtual_ipaddress:
      - 192.0.2.16/24
      - 192.0.2.17
    track: [{check: web, weight: -20}]
  VI_6:
    interface: eth0
    virtual_router_id: 52
    priority: 90
    version: 3
    advert_int: 0.1
    virtual_ipaddress: [2001:db8::16/64]
    unicast_peer: [2001:db8::2]
vrrp_sync_groups:
  G1: {group: [VI_1, VI_6]}
checks:
  web: {type: tcp, connect_ip: 192.0.2.20, connect_port: 80, interval: 2, timeout: 1,
        rise: 2, fall: 3}
  page: {type: http, url: [{path: /health}], connect_ip: 192.0.2.20, interval: 5}
  sh: {type: script, script: '/bin/true arg', interval: 1}
notifiers:
  hook: {type: webhook, url: 'http://192.0.2.30/hook', events: [vrrp_state]}
virtual_servers:
  - address: 192.0.2.80
    port: 80
    delay_loop: 3
    real_servers:
      - {address: 192.0.2.21, port: 80, weight: 2, checks: [{type: tcp}]}
"""

# Tokens a mutation puts in place of a scalar or inserts: YAML syntax and the values the
# schema must refuse with a message (types, ranges, special floats, huge numbers).
_YAML_TOKENS = [
    "",
    "~",
    "null",
    "true",
    "no",
    "0",
    "-1",
    "256",
    "1e400",
    ".nan",
    ".inf",
    "-.inf",
    "0x1F",
    "0o777",
    "1_000",
    "9" * 50,
    "'quoted'",
    '"\\u0000"',
    '"\\x07"',
    "[]",
    "{}",
    "[1, [2, [3]]]",
    "{a: 1}",
    "&a x",
    "*a",
    "!!binary aGVsbG8=",
    "!!python/object:os.system",
    "!!set {a, b}",
    "<<: {x: 1}",
    "- item",
    "? complex",
    "|\n  block",
    ">-\n  folded",
    "%YAML 1.1",
    "---",
    "...",
    "192.0.2.300",
    "2001:db8::/200",
    "224.0.0.18",
    "0.0.0.0",
    "eth0\teth1",
    "'" + "x" * 300 + "'",
    "\ufeff",
    "\x85",
    "\u2028",
]


def _mutate_yaml(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        i = rng.randrange(len(lines))
        line = lines[i]
        if r < 0.35 and ":" in line:
            key, _, _ = line.partition(":")
            lines[i] = f"{key}: {rng.choice(_YAML_TOKENS)}"
        elif r < 0.45:
            lines.insert(i, lines[rng.randrange(len(lines))])  # a duplicate or misplaced line
        elif r < 0.55:
            del lines[i]
        elif r < 0.65:
            indent = rng.choice([-2, 2, 1, -1, 4])
            lines[i] = " " * max(0, len(line) - len(line.lstrip()) + indent) + line.lstrip()
        elif r < 0.8 and line:
            data = bytearray(line.encode())
            _mutate(rng, data)
            lines[i] = data.decode("utf-8", "replace")
        elif r < 0.9 and line:
            j = rng.randrange(len(line) + 1)
            lines[i] = line[:j] + rng.choice(_YAML_TOKENS) + line[j:]
        else:
            lines.insert(i, "x" + str(rng.randint(0, 99)) + ": " + rng.choice(_YAML_TOKENS))
    return "\n".join(lines)


class _Hang(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (main thread only; elsewhere: no limit)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        raise _Hang

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _run_inputs(
    report: FuzzReport,
    inputs: Iterator[str],
    run: Callable[[str], object],
    expected: tuple[type[BaseException], ...],
    hang_limit: float,
) -> None:
    start = time.perf_counter()
    for text in inputs:
        t0 = time.perf_counter()
        try:
            with _time_limit(hang_limit):
                run(text)
            report.accepted += 1
            report.outcomes["accepted"] += 1
        except expected:
            report.outcomes["refused"] += 1
        except _Hang:
            report.hangs += 1
            report.finding("hang", repr(text[:300]))
        except Exception as exc:
            report.crashes += 1
            report.crash_kinds[_crash_kind(exc)] += 1
            report.finding("crash", f"{_last_frame(exc)} for {text[:300]!r}")
        elapsed = time.perf_counter() - t0
        report.inputs += 1
        report.slowest = max(report.slowest, elapsed)
    report.seconds = time.perf_counter() - start


def fuzz_config(
    seed: int, count: int, *, base: str = SEED_CONFIG, hang_limit: float = 5.0
) -> FuzzReport:
    """``count`` mutations of ``base`` through the loader ``halo check`` uses. Inputs over
    :data:`HANG_SECONDS` count as hangs; ``hang_limit`` is where one is interrupted."""
    from halo_core import plugins
    from halo_core.config import ConfigError, load_text

    report = FuzzReport("config")
    loaded = plugins.load()
    rng = random.Random(seed)

    def inputs() -> Iterator[str]:
        for _ in range(count):
            yield _mutate_yaml(rng, base)

    _run_inputs(
        report, inputs(), lambda t: load_text(t, "fuzz.yaml", loaded), (ConfigError,), hang_limit
    )
    _count_slow(report)
    return report


def _count_slow(report: FuzzReport) -> None:
    if report.slowest > HANG_SECONDS and not report.hangs:
        report.hangs += 1
        report.finding("slow", f"slowest input {report.slowest:.2f} s")


# ============================================================================ keepalived lexer

SEED_KEEPALIVED = """\
! keepalived.conf, every construct the lexer knows
global_defs {
   router_id LVS_DEVEL
   notification_email { admin@example.com }
   vrrp_garp_master_delay 1
}
$IF=eth0
@node1 $PRIO=150
@^node1 $PRIO=100
vrrp_script chk_web {
   script "/bin/true arg"   # a comment
   interval 2
   weight -20
}
vrrp_instance VI_1 {
    state MASTER
    interface $IF
    virtual_router_id 51
    priority $PRIO
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    virtual_ipaddress {
        192.0.2.16/24 dev eth0 label eth0:1
        192.0.2.17
    }
    track_script { chk_web }
    unicast_peer { 192.0.2.12 }
}
~SEQ(n, 1, 3)
vrrp_instance VI_${n} { interface eth0
    virtual_router_id ${n}
    priority 90
    virtual_ipaddress { 192.0.2.2${n} } }
virtual_server 192.0.2.80 80 {
    delay_loop 6
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 192.0.2.21 80 {
        weight 1
        TCP_CHECK { connect_timeout 3 }
    }
}
"""

_KEEPALIVED_TOKENS = [
    "{",
    "}",
    "{ {",
    "} }",
    "!",
    "#",
    '"',
    '"unterminated',
    "\\",
    "$",
    "${",
    "$X",
    "$X=$X",
    "$REC=$REC$REC",
    "@",
    "@^",
    "@node1",
    "~SEQ(i,1,",
    "~SEQ(i, 1, 100000000)",
    "~SEQ(i, 1, 0, 1)",
    "include",
    "include /dev/null",
    "include *",
    "include {a,b}",
    "999999999999999999999",
    "-1",
    "nan",
    "inf",
    "0x",
    "192.0.2.300",
    "2001:db8::/999",
    "\t",
    "\x00",
    "\x07",
    "é",
]


def _mutate_keepalived(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        i = rng.randrange(len(words))
        if r < 0.4:
            words[i] = rng.choice(_KEEPALIVED_TOKENS)
        elif r < 0.6:
            words.insert(i, rng.choice(_KEEPALIVED_TOKENS))
        elif r < 0.7:
            del words[i]
        elif r < 0.8:
            words.insert(i, words[rng.randrange(len(words))])
        else:
            data = bytearray(words[i].encode())
            _mutate(rng, data)
            words[i] = data.decode("utf-8", "replace")
    return " ".join(words)


def fuzz_keepalived(seed: int, count: int, *, hang_limit: float = 5.0) -> FuzzReport:
    """``count`` mutated keepalived.conf texts through ``halo convert`` (lexer, parser,
    mapping, validation), in an empty directory so includes find nothing of ours."""
    from halo_core import plugins
    from halo_tool_convert import ConvertError, convert_text

    report = FuzzReport("keepalived")
    loaded = plugins.load()
    rng = random.Random(seed)

    def inputs() -> Iterator[str]:
        for _ in range(count):
            yield _mutate_keepalived(rng, SEED_KEEPALIVED)

    with tempfile.TemporaryDirectory(prefix="halo-fuzz-") as empty:

        def run(text: str) -> None:
            convert_text(text, config_id="node1", plugins=loaded, directory=empty)

        _run_inputs(report, inputs(), run, (ConvertError,), hang_limit)
    _count_slow(report)
    return report


def describe(reports: Sequence[FuzzReport]) -> str:
    return "\n".join(r.line() for r in reports)
