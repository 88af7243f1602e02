"""asyncio without OpenSSL until a plugin imports ``ssl`` (``halo_core.tls``,
docs/processes.md): in a process started as the worker starts, asyncio loads without
``ssl``; after a later ``import ssl``, asyncio's TLS works against a real TLS server this
test starts. The VRRP process's mark (``ssl`` absent for good) is kept."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

WORKER_LIKE = r"""
import sys
from halo_core import tls

tls.deferred()
import asyncio

before = sorted(m for m in ("ssl", "_ssl") if m in sys.modules)

async def main() -> None:
    import ssl  # as a plugin does, long after asyncio

    context = ssl.create_default_context(cafile=sys.argv[2])
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", int(sys.argv[1]), ssl=context, server_hostname="halo.test"
    )
    writer.write(b"ping\n")
    await writer.drain()
    answer = await reader.readline()
    print("BEFORE=" + ",".join(before))
    print("ANSWER=" + answer.decode().strip())
    print("VERSION=" + str(writer.get_extra_info("ssl_object").version()))
    writer.close()
    await writer.wait_closed()

asyncio.run(main())
"""


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A TLS server on 127.0.0.1 answering one line per connection (``pong``), with a
    certificate for halo.test from a test CA; its port and the CA's file."""
    ca = trustme.CA()
    cert = ca.issue_cert("halo.test", "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.makefile("rb").readline()
                    tls.sendall(b"pong\n")
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], ca_file
    finally:
        done.set()
        thread.join(5)
        listener.close()


def python(code: str, *args: str) -> list[str]:
    """What a fresh interpreter running ``code`` prints, by line (it must succeed)."""
    run = [sys.executable, "-c", code, *args]
    proc = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_asyncio_tls_works_after_a_late_import_ssl(tls_server: tuple[int, Path]) -> None:
    port, ca_file = tls_server
    lines = python(WORKER_LIKE, str(port), str(ca_file))
    assert "BEFORE=" in lines  # neither ssl nor _ssl came with asyncio
    assert "ANSWER=pong" in lines
    assert any(line.startswith("VERSION=TLSv1.") for line in lines), lines


def test_the_vrrp_process_mark_keeps_ssl_out() -> None:
    probe = (
        "from halo_core import tls\n"
        "tls.absent()\n"
        "import asyncio, sys\n"
        "try:\n"
        "    import ssl\n"
        "except ImportError:\n"
        "    print('refused', '_ssl' in sys.modules)\n"
    )
    assert python(probe) == ["refused False"]
