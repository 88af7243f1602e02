"""Schema and hooks of the ``smtp`` checker. The runtime lives in :mod:`.runtime`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from halo_core.hookspecs import hookimpl
from halo_core.plugin_api import CheckerConfig, PluginType
from halo_core.schema import Alias, Doc, IPAddress, Pattern, Range

HELO = Pattern(r"[A-Za-z0-9.:\[\]-]{1,255}", "must be a host name or an address literal")


@dataclass(frozen=True, kw_only=True)
class SmtpCheck(CheckerConfig):
    """Talk to an SMTP server (keepalived's SMTP_CHECK): its 220 greeting, ``HELO``
    answered with 250, then ``QUIT``. Inside a real server the address and port default to
    the server's."""

    connect_ip: Annotated[IPAddress | None, Doc("the SMTP server")] = None
    connect_port: Annotated[
        int | None, Range(1, 65535), Alias(("port",)), Doc("its port (default 25)")
    ] = None
    bind_to: Annotated[IPAddress | None, Doc("source address")] = None
    bind_port: Annotated[int | None, Range(1, 65535), Doc("source port")] = None
    helo_name: Annotated[str | None, HELO, Doc("the HELO argument (default: the host name)")] = None


@hookimpl
def halo_plugin_types() -> list[PluginType]:
    return [
        PluginType(
            kind="checker",
            name="smtp",
            schema=SmtpCheck,
            factory="halo_checker_smtp.runtime:SmtpChecker",
            summary="SMTP greeting and HELO",
        )
    ]


@hookimpl
def halo_convert_keepalived() -> list[Any]:
    from halo_checker_smtp.keepalived import keywords

    return keywords()
