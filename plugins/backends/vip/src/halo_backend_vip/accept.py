"""RFC 5798 Accept_Mode off (keepalived's ``no_accept``): a MASTER that is not the address
owner must not accept packets addressed to its virtual addresses.

The addresses of every such instance (``accept: false`` and a priority below 255) are put
in an nftables table of halo's own, ``inet halo_no_accept``: its input chain drops packets
to them and its output chain packets from them, as keepalived 2.2.7's ``vrrp_nftables.c``
does (``ip daddr @vips drop`` in ``in``, ``ip saddr @vips drop`` in ``out``; keepalived
added the output rule in 334b16e9, "Add option to block outbound traffic from VIPs").  An
address in no-accept mode only serves for routing: a local program that binds to it, or
that the kernel's source selection gives it, would send from an address whose replies the
input chain drops, so it fails at once instead of hanging.  Neighbour solicitations and
advertisements pass both ways, or the master could not answer for an IPv6 address it
routes for (the kernel's answers come from the address itself; ARP is not IP, so IPv4
needs no such rule).  The table is the same whatever the state: on a BACKUP the addresses
are not local, so no packet to or from them meets these hooks.  It is replaced as a whole
(one ``nft -f`` transaction) when the configuration changes and deleted on stop.
"""

from __future__ import annotations

import asyncio
import logging

from halo_core.config.model import HaloConfig
from halo_core.schema import IPAddress

log = logging.getLogger("halo.backend.vip")

TABLE = "halo_no_accept"


def dropped_addresses(config: HaloConfig) -> list[IPAddress]:
    """The virtual addresses of the instances in no-accept mode (not the address owner)."""
    out: list[IPAddress] = []
    for icfg in config.vrrp_instances.values():
        if icfg.accept or icfg.priority == 255:
            continue
        out += [v.ip for v in (*icfg.virtual_ipaddress, *icfg.virtual_ipaddress_excluded)]
    return out


def ruleset(addresses: list[IPAddress]) -> str:
    """The nft script that replaces halo's table with one dropping ``addresses``."""
    v4 = sorted({str(a) for a in addresses if a.version == 4})
    v6 = sorted({str(a) for a in addresses if a.version == 6})

    def chain(name: str, hook: str, field: str) -> str:
        # keepalived's priority: just before the filter chains of other tables
        return (
            f"  chain {name} {{\n"
            f"    type filter hook {hook} priority -1; policy accept;\n"
            f"    ip {field} @vips4 drop\n"
            f"    ip6 {field} @vips6 icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }}"
            " accept\n"
            f"    ip6 {field} @vips6 drop\n"
            "  }\n"
        )

    def addr_set(name: str, kind: str, elements: list[str]) -> str:
        listed = f" elements = {{ {', '.join(elements)} }};" if elements else ""
        return f"  set {name} {{ type {kind};{listed} }}\n"

    return (
        f"table inet {TABLE}\n"
        f"delete table inet {TABLE}\n"
        f"table inet {TABLE} {{\n"
        + addr_set("vips4", "ipv4_addr", v4)
        + addr_set("vips6", "ipv6_addr", v6)
        + chain("input", "input", "daddr")
        + chain("output", "output", "saddr")
        + "}\n"
    )


class NoAcceptFirewall:
    """halo's no-accept table: present while some instance needs it."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.installed = False

    async def apply(self, config: HaloConfig) -> None:
        """Make the table match ``config``: replaced, or deleted when no instance is in
        no-accept mode. Raises RuntimeError (one line) when nft is missing or fails."""
        addresses = dropped_addresses(config)
        if not addresses:
            await self.remove()
            return
        await _nft(ruleset(addresses))
        self.installed = True
        log.info(
            "%s: no_accept: dropping packets to and from %s",
            self.backend,
            ", ".join(str(a) for a in addresses),
        )

    async def remove(self) -> None:
        if not self.installed:
            return
        self.installed = False
        try:
            await _nft(f"table inet {TABLE}\ndelete table inet {TABLE}\n")
        except RuntimeError as exc:
            log.error("%s: %s", self.backend, exc)


async def _nft(script: str) -> None:
    import shutil  # here: most VRRP processes never run nft (shutil costs 0.4 MB)

    nft = shutil.which("nft")
    if nft is None:
        raise RuntimeError("no_accept (accept: false) needs the nft command (nftables)")
    proc = await asyncio.create_subprocess_exec(
        nft,
        "-f",
        "-",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(script.encode()), 30)
    if proc.returncode:
        text = " ".join(err.decode(errors="replace").split())[:300]
        raise RuntimeError(f"nft refused the no_accept table: {text}")
