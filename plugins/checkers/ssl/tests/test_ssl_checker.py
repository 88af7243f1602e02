"""The ssl checker against real TLS servers on 127.0.0.1, with certificates from a test CA."""

from __future__ import annotations

import asyncio
import os
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from http_servers import Make, Pki, Server, ServerFactory

from halo_checker_ssl import runtime
from halo_checker_ssl.runtime import certificate_not_after

BODY = "ok, healthy\n"


async def tls_server(
    servers: ServerFactory, pki: Pki, leaf: trustme.LeafCert | None = None
) -> Server:
    srv = await servers.start(pki.server_context(leaf))
    srv.reply("/health", BODY)
    return srv


def https(server: Server, **options: Any) -> dict[str, Any]:
    return {
        "type": "ssl",
        "connect_ip": "127.0.0.1",
        "connect_port": server.port,
        "url": [{"path": "/health", "regex": "healthy"}],
        **options,
    }


def days(n: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=n)


# --------------------------------------------------------------------------- verification


async def test_verified_with_ca_file_and_sni(servers: ServerFactory, pki: Pki, make: Make) -> None:
    server = await tls_server(servers, pki)
    result = await make(**https(server, ca_file=pki.ca_file, sni="halo.test")).check()
    assert result.ok, result.message
    assert result.message.startswith(f"GET https://127.0.0.1:{server.port}/health: 200, regex")
    assert "certificate valid until" in result.message and result.warning is None
    assert server.sni == ["halo.test"]


async def test_virtualhost_gives_sni_and_host(servers: ServerFactory, pki: Pki, make: Make) -> None:
    server = await tls_server(servers, pki)
    checker = make(**https(server, ca_file=pki.ca_file, virtualhost="halo.test:8443"))
    assert (await checker.check()).ok
    assert server.sni == ["halo.test"]
    assert server.seen[-1].host == "halo.test:8443"


async def test_address_is_verified_without_sni(
    servers: ServerFactory, pki: Pki, make: Make
) -> None:
    server = await tls_server(servers, pki)  # its certificate names 127.0.0.1 too
    assert (await make(**https(server, ca_file=pki.ca_file)).check()).ok
    assert server.sni == [None]


async def test_untrusted_ca_fails_when_verifying(
    servers: ServerFactory, pki: Pki, make: Make, tmp_path: Path
) -> None:
    server = await tls_server(servers, pki)
    system = await make(**https(server, verify=True, sni="halo.test")).check()
    assert not system.ok
    assert "certificate rejected: unable to get local issuer certificate" in system.message
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    pinned = await make(**https(server, ca_file=str(other), sni="halo.test")).check()
    assert not pinned.ok and "certificate rejected" in pinned.message


async def test_not_verifying_accepts_any_certificate(
    servers: ServerFactory, pki: Pki, make: Make
) -> None:
    server = await tls_server(servers, pki)
    for options in ({}, {"verify": False}, {"verify": False, "sni": "other.test"}):
        result = await make(**https(server, **options)).check()
        assert result.ok, (options, result.message)


async def test_wrong_name_fails(servers: ServerFactory, pki: Pki, make: Make) -> None:
    server = await tls_server(servers, pki, pki.ca.issue_cert("halo.test"))  # no address
    by_name = await make(**https(server, ca_file=pki.ca_file, sni="other.test")).check()
    assert not by_name.ok
    assert "certificate rejected: Hostname mismatch" in by_name.message
    assert "other.test" in by_name.message
    by_address = await make(**https(server, ca_file=pki.ca_file)).check()
    assert not by_address.ok and "IP address mismatch" in by_address.message
    assert server.seen == []  # no request went over a rejected connection


async def test_connect_timeout_covers_the_handshake(make: Make) -> None:
    """A server that accepts but never answers the TLS handshake."""
    writers: list[asyncio.StreamWriter] = []
    silent = await asyncio.start_server(lambda r, w: writers.append(w), "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        checker = make(type="ssl", connect_ip="127.0.0.1", connect_port=port, connect_timeout=0.2)
        result = await asyncio.wait_for(checker.check(), 5)
    finally:
        silent.close()
        for writer in writers:
            writer.close()
        await silent.wait_closed()
    assert not result.ok
    assert result.message == f"GET https://127.0.0.1:{port}/: connect timed out after 0.2s"


# --------------------------------------------------------------------------- expiry


async def test_expiry_warning_keeps_the_check_up(
    servers: ServerFactory, pki: Pki, make: Make
) -> None:
    leaf = pki.ca.issue_cert("halo.test", "127.0.0.1", not_after=days(3))
    server = await tls_server(servers, pki, leaf)
    for options in ({"ca_file": pki.ca_file}, {}):  # verified or not
        result = await make(**https(server, **options)).check()
        assert result.ok, result.message
        assert result.warning is not None
        assert result.warning.startswith("certificate expires in 3 days, on ")
    quiet = await make(**https(server, expiry_warning="48h")).check()
    assert quiet.ok and quiet.warning is None
    off = await make(**https(server, expiry_warning=0)).check()
    assert off.ok and off.warning is None


async def test_expiry_warning_on_an_empty_body(
    servers: ServerFactory, pki: Pki, make: Make
) -> None:
    """The certificate is noted at connect time: a response without a body has nothing
    left to read on its connection when the checker judges it."""
    leaf = pki.ca.issue_cert("halo.test", not_after=days(1))
    server = await tls_server(servers, pki, leaf)
    server.reply("/empty", "")
    result = await make(**https(server, method="HEAD", url=[{"path": "/empty"}])).check()
    assert result.ok and result.warning is not None
    assert "expires in 24 hours" in result.warning


async def test_expired_certificate_fails(servers: ServerFactory, pki: Pki, make: Make) -> None:
    leaf = pki.ca.issue_cert("halo.test", not_before=days(-30), not_after=days(-1))
    server = await tls_server(servers, pki, leaf)
    unverified = await make(**https(server)).check()
    assert not unverified.ok
    assert "/health: certificate expired on " in unverified.message
    verified = await make(**https(server, ca_file=pki.ca_file, sni="halo.test")).check()
    assert not verified.ok
    assert "certificate rejected: certificate has expired" in verified.message


async def test_keepalive_still_judges_the_certificate(
    servers: ServerFactory, pki: Pki, make: Make
) -> None:
    leaf = pki.ca.issue_cert("halo.test", not_after=days(5))
    server = await tls_server(servers, pki, leaf)
    checker = make(**https(server, keepalive=True))
    results = [await checker.check() for _ in range(3)]
    assert all(r.ok and r.warning for r in results)
    assert len(set(server.peer_ports)) == 1


# --------------------------------------------------------------------------- redirects


async def test_redirect_to_https_is_verified(servers: ServerFactory, pki: Pki, make: Make) -> None:
    """An https server redirecting to another: the ssl checker follows it with its own TLS
    settings; an http check redirected to https verifies with the system's CAs (which do
    not know the test CA)."""
    target = await tls_server(servers, pki)
    plain = await servers.start()
    moved = f"https://127.0.0.1:{target.port}/health"
    plain.reply("/old", status=301, headers={"Location": moved})
    source = await tls_server(servers, pki)
    source.reply("/old", status=302, headers={"Location": moved})
    followed = await make(
        **https(
            source,
            ca_file=pki.ca_file,
            follow_redirects=True,
            url=[{"path": "/old", "regex": "healthy"}],
        )
    ).check()
    assert followed.ok, followed.message
    assert "regex matched, certificate valid until" in followed.message
    assert [s.path for s in target.seen] == ["/health"]
    http = make(
        connect_ip="127.0.0.1",
        connect_port=plain.port,
        follow_redirects=True,
        url=[{"path": "/old"}],
    )
    result = await http.check()
    assert not result.ok
    assert result.message == (
        f"GET http://127.0.0.1:{plain.port}/old: certificate rejected: unable to get local"
        " issuer certificate"
    )


# --------------------------------------------------------------------------- client certificates


async def mtls_server(servers: ServerFactory, pki: Pki) -> Server:
    ctx = pki.server_context()
    ctx.verify_mode = ssl.CERT_REQUIRED
    pki.ca.configure_trust(ctx)
    srv = await servers.start(ctx)
    srv.reply("/health", BODY)
    return srv


async def test_client_certificate(servers: ServerFactory, pki: Pki, make: Make) -> None:
    server = await mtls_server(servers, pki)
    cert, key = pki.client_files()
    with_cert = await make(**https(server, cert_file=cert, key_file=key)).check()
    assert with_cert.ok, with_cert.message
    without = await make(**https(server)).check()
    assert not without.ok
    assert without.message == (
        f"GET https://127.0.0.1:{server.port}/health: the server closed the connection without"
        " a response (does it require a client certificate?)"
    )
    assert len(server.seen) == 1


async def test_client_certificate_and_key_in_one_file(
    servers: ServerFactory, pki: Pki, make: Make, tmp_path: Path
) -> None:
    server = await mtls_server(servers, pki)
    both = tmp_path / "both.pem"
    cert, key = pki.client_files("both")
    both.write_text(Path(key).read_text() + Path(cert).read_text())
    assert (await make(**https(server, cert_file=str(both))).check()).ok


async def test_unreadable_files_fail_the_check(make: Make, tmp_path: Path) -> None:
    # No server needed: the TLS setup fails before connecting.
    missing = str(tmp_path / "nope.pem")
    result = await make(connect_ip="127.0.0.1", type="ssl", cert_file=missing).check()
    assert not result.ok
    assert result.message == (
        f"GET https://127.0.0.1/: TLS setup: cert_file {missing}: No such file or directory"
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    result = await make(connect_ip="127.0.0.1", type="ssl", ca_file=str(garbage)).check()
    assert not result.ok and f"TLS setup: ca_file {garbage}: " in result.message


async def test_context_shared_and_rebuilt_when_a_file_changes(
    pki: Pki, make: Make, tmp_path: Path
) -> None:
    cert, key = pki.client_files("rotating")
    first = make(connect_ip="127.0.0.1", type="ssl", cert_file=cert, key_file=key)
    second = make(connect_ip="127.0.0.2", type="ssl", cert_file=cert, key_file=key)
    ctx = first.ssl_context()
    assert second.ssl_context() is ctx and first.ssl_context() is ctx
    stat = os.stat(cert)
    os.utime(cert, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert first.ssl_context() is not ctx


# --------------------------------------------------------------------------- DER


@pytest.mark.parametrize(
    "not_after",
    [
        datetime(2030, 5, 17, 12, 34, 56, tzinfo=UTC),  # UTCTime
        datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),  # UTCTime, last century
        datetime(2051, 1, 2, 3, 4, 5, tzinfo=UTC),  # GeneralizedTime from 2050 on
    ],
)
def test_not_after_from_der(pki: Pki, not_after: datetime) -> None:
    leaf = pki.ca.issue_cert(
        "halo.test", not_before=datetime(1990, 1, 1, tzinfo=UTC), not_after=not_after
    )
    pem = leaf.cert_chain_pems[0].bytes()
    der = ssl.PEM_cert_to_DER_cert(pem.decode())
    assert certificate_not_after(der) == not_after
    assert x509.load_der_x509_certificate(der).not_valid_after_utc == not_after


def test_not_after_rejects_garbage(pki: Pki) -> None:
    der = ssl.PEM_cert_to_DER_cert(pki.ca.cert_pem.bytes().decode())
    assert certificate_not_after(der) > datetime.now(UTC)  # a CA certificate too
    for bad in (b"", b"\x30", b"\x02\x01\x00", der[:40], b"\x30\x85" + der[2:]):
        with pytest.raises(ValueError):
            certificate_not_after(bad)
    assert runtime._hostname("[2001:db8::1]:443") == "2001:db8::1"
    assert runtime._hostname("www.example.com:8443") == "www.example.com"
    assert runtime._hostname("2001:db8::1") == "2001:db8::1"
