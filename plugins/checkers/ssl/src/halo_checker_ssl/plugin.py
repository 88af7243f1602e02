"""Schema and hooks of the ``ssl`` checker: the ``http`` checker's options plus TLS. The
runtime lives in :mod:`.runtime`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from halo_checker_http.plugin import HttpCheck, Problems
from halo_core.hookspecs import hookimpl
from halo_core.log import add_secret
from halo_core.plugin_api import PluginType
from halo_core.schema import Alias, Doc, Range, Seconds


@dataclass(frozen=True, kw_only=True)
class SslCheck(HttpCheck):
    """Request one or more URLs over HTTPS, judged like the ``http`` check (keepalived's
    SSL_GET); also fails on an expired server certificate and warns before it expires.

    The server's certificate is verified when ``verify`` is true, which is the default as soon
    as a ``ca_file`` is given; without one, as with keepalived's SSL_GET, it is not (servers
    behind a load balancer are usually reached by address, with internal certificates)."""

    connect_port: Annotated[
        int | None,
        Range(1, 65535),
        Alias(("port",)),
        Doc("port to connect to (default: the real server's, else 443)"),
    ] = None
    sni: Annotated[
        str | None,
        Alias(("sni_name",)),
        Doc("TLS server name to send and verify (default: the virtualhost, if any)"),
    ] = None
    verify: Annotated[
        bool | None,
        Doc(
            "verify the server's certificate chain and name "
            "(default: true with a ca_file, else false as keepalived)"
        ),
    ] = None
    ca_file: Annotated[
        str | None,
        Alias(("ca",)),
        Doc("PEM file of the CAs to trust when verifying (default: the system's)"),
    ] = None
    cert_file: Annotated[
        str | None,
        Alias(("certificate",)),
        Doc("PEM client certificate (chain) for servers that require one"),
    ] = None
    key_file: Annotated[
        str | None, Alias(("key",)), Doc("its private key (default: in cert_file)")
    ] = None
    key_password: Annotated[
        str | None, Alias(("password",)), Doc("password of an encrypted key_file")
    ] = None
    expiry_warning: Annotated[
        Seconds,
        Doc("warn when the server's certificate expires within this time (0: never)"),
    ] = Seconds(14 * 86400.0)

    @property
    def verifying(self) -> bool:
        return self.verify if self.verify is not None else self.ca_file is not None

    def __post_init__(self) -> None:
        add_secret(self.key_password)  # never in a log line or a status field

    def __check__(self) -> Problems:
        problems = super().__check__()
        if self.cert_file is None:
            for name in ("key_file", "key_password"):
                if getattr(self, name) is not None:
                    problems.append(((name,), "needs cert_file"))
        if self.verify is False and self.ca_file is not None:
            problems.append((("ca_file",), "is not used with verify: false"))
        return problems


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="checker",
            name="ssl",
            schema=SslCheck,
            factory="halo_checker_ssl.runtime:SslChecker",
            summary="HTTPS request: the http checks plus TLS and certificate expiry",
        )
    ]


@hookimpl
def halo_convert_keepalived() -> list[Any]:
    from halo_checker_ssl.keepalived import keywords

    return keywords()
