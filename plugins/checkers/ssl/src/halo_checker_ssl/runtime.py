"""The ``ssl`` checker at run time: the ``http`` checker over TLS, judging the certificate.

Requests go through the http checker's client (halo_lib_http); this module adds the TLS context
(verification, CA file, client certificate), the server name (SNI) and the certificate's
expiry. The expiry is read from the certificate itself (DER) rather than from Python's parsed
form, which is empty when verification is off: an expired certificate fails the check even
then, and one close to expiry gives a warning on an ok result.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import time
from datetime import UTC, datetime

from halo_checker_http.runtime import HttpChecker, Peer, Verdict
from halo_checker_ssl.plugin import SslCheck
from halo_core.plugin_api import CheckTarget
from halo_lib_http import Disconnected, HttpError


class SslChecker(HttpChecker):
    """``factory(config, target)`` of the ``ssl`` type."""

    scheme = "https"
    default_port = 443
    config: SslCheck

    def __init__(self, config: SslCheck, target: CheckTarget) -> None:
        # Only narrows the config's type: the hooks below read the TLS options from it.
        super().__init__(config, target)

    def server_hostname(self, host: str | None) -> str | None:
        # keepalived's order: sni_name, then the virtualhost. An address is never sent as
        # SNI (RFC 6066); verification then matches the certificate against the address.
        name = self.config.sni or (_hostname(host) if host else None)
        if not name:
            return None
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return name
        return None

    def ssl_context(self) -> ssl.SSLContext:
        return CONTEXTS.get(self.config)

    def explain(self, exc: HttpError) -> str:
        reason = super().explain(exc)
        if isinstance(exc, Disconnected) and self.config.cert_file is None:
            # TLS 1.3 servers refuse a missing client certificate after the handshake, and
            # the alert saying so is lost on the way up: all the client sees is a hang-up.
            reason += " (does it require a client certificate?)"
        return reason

    def inspect(self, peer: Peer) -> Verdict:
        if peer.certificate is None:  # e.g. redirected to plain http
            return Verdict()
        try:
            not_after = certificate_not_after(peer.certificate)
        except ValueError as exc:
            return Verdict(error=f"cannot read the server's certificate: {exc}")
        when = not_after.strftime("%Y-%m-%d %H:%M:%S UTC")
        left = not_after.timestamp() - time.time()
        if left <= 0:
            return Verdict(error=f"certificate expired on {when}")
        warn = float(self.config.expiry_warning)
        if left < warn:
            return Verdict(
                warning=f"certificate expires in {_span(left)}, on {when}",
                note=f"certificate expires {when}",
            )
        return Verdict(note=f"certificate valid until {when}")


def _hostname(host: str) -> str:
    """``www.example.com:8443`` → ``www.example.com``; ``[2001:db8::1]:443`` → the address."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else host


def _span(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{max(seconds, 0) / 60:.0f} minutes"


# --------------------------------------------------------------------------- TLS contexts


class _Contexts:
    """TLS contexts shared by checks with the same options: loading the system CAs costs
    time and memory, paid once rather than per check. A context is rebuilt when one of its
    files changes, so a renewed client certificate is picked up without a reload."""

    def __init__(self) -> None:
        self.cache: dict[tuple[object, ...], tuple[tuple[int | None, ...], ssl.SSLContext]] = {}

    def get(self, config: SslCheck) -> ssl.SSLContext:
        key = (
            config.verifying,
            config.ca_file,
            config.cert_file,
            config.key_file,
            config.key_password,
        )
        stamp = tuple(
            _mtime(path, what)
            for path, what in (
                (config.ca_file, "ca_file"),
                (config.cert_file, "cert_file"),
                (config.key_file, "key_file"),
            )
        )
        cached = self.cache.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        context = build_context(config)
        self.cache[key] = (stamp, context)
        return context


def _mtime(path: str | None, what: str) -> int | None:
    if path is None:
        return None
    try:
        return os.stat(path).st_mtime_ns
    except OSError as exc:
        raise OSError(f"{what} {path}: {exc.strerror or exc}") from exc


def build_context(config: SslCheck) -> ssl.SSLContext:
    """The client TLS context of ``config``; raises ``OSError`` saying which file is bad."""
    # PROTOCOL_TLS_CLIENT verifies chain and name by default; a ca_file replaces the system
    # CAs rather than adding to them, so that it pins whom the check trusts.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if config.verifying:
        if config.ca_file is not None:
            try:
                context.load_verify_locations(cafile=config.ca_file)
            except (OSError, ValueError) as exc:
                raise OSError(f"ca_file {config.ca_file}: {_reason(exc)}") from exc
        else:
            context.load_default_certs()
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.cert_file is not None:
        try:
            context.load_cert_chain(config.cert_file, config.key_file, config.key_password)
        except (OSError, ValueError) as exc:
            raise OSError(f"cert_file {config.cert_file}: {_reason(exc)}") from exc
    return context


def _reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


CONTEXTS = _Contexts()


# --------------------------------------------------------------------------- DER


def certificate_not_after(der: bytes) -> datetime:
    """The end of validity (``notAfter``, UTC) of an X.509 certificate in DER.

    A minimal walk (RFC 5280 §4.1): Certificate → tbsCertificate → skip the optional
    version, serialNumber, signature and issuer → validity → notAfter. Enough for this one
    field without a dependency on a full ASN.1 or X.509 library.
    """
    tag, start, _ = _element(der, 0)
    _expect(tag, 0x30, "Certificate")
    tag, pos, _ = _element(der, start)
    _expect(tag, 0x30, "tbsCertificate")
    tag, _, end = _element(der, pos)
    if tag == 0xA0:  # [0] EXPLICIT version
        pos = end
    for name, want in (("serialNumber", 0x02), ("signature", 0x30), ("issuer", 0x30)):
        tag, _, pos = _element(der, pos)
        _expect(tag, want, name)
    tag, pos, _ = _element(der, pos)
    _expect(tag, 0x30, "validity")
    _, _, pos = _element(der, pos)  # notBefore
    tag, start, end = _element(der, pos)
    return _time(tag, der[start:end])


def _element(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start, end) of the content of the DER element at ``pos``."""
    if pos + 2 > len(der):
        raise ValueError("truncated certificate")
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or pos + count > len(der):
            raise ValueError("bad length in certificate")
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    if pos + length > len(der):
        raise ValueError("truncated certificate")
    return tag, pos, pos + length


def _expect(tag: int, want: int, name: str) -> None:
    if tag != want:
        raise ValueError(f"unexpected tag 0x{tag:02x} for {name}")


def _time(tag: int, value: bytes) -> datetime:
    text = value.decode("ascii", errors="replace")
    try:
        if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ; RFC 5280: YY < 50 is 20YY
            parsed = datetime.strptime(text, "%y%m%d%H%M%SZ")
            if parsed.year >= 2050:
                parsed = parsed.replace(year=parsed.year - 100)
        elif tag == 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
            parsed = datetime.strptime(text, "%Y%m%d%H%M%SZ")
        else:
            raise ValueError(f"unexpected tag 0x{tag:02x} for notAfter")
    except ValueError as exc:
        raise ValueError(f"bad notAfter {text!r}: {exc}") from None
    return parsed.replace(tzinfo=UTC)
