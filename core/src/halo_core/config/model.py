"""The core's configuration schema: the top-level sections and the VRRP vocabulary.

Names follow keepalived.conf(5) wherever keepalived has one, so that an operator recognises
``virtual_router_id``, ``advert_int`` or ``unicast_peer``; sections that keepalived writes as
blocks with a name (``vrrp_instance VI_1 { … }``) are mappings keyed by that name.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from halo_core.log import add_secret
from halo_core.plugin_api import PluginsConfig
from halo_core.schema import (
    IP_ANY,
    Alias,
    Command,
    Configured,
    Doc,
    ExtensionPoint,
    Extensions,
    IPAddress,
    Keys,
    Length,
    Pattern,
    PluginRef,
    Range,
    Seconds,
)
from halo_core.vrrp.packet import interval_problem

_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def unusable_address(ip: IPAddress) -> str | None:
    """Why ``ip`` cannot be a virtual address or a VRRP peer, or None: the kernel accepts
    some of these, but no host on the link can reach a service through them."""
    if ip.is_unspecified:
        return f"{ip} is the unspecified address"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.version == 4 and ip == _BROADCAST:
        return f"{ip} is the broadcast address"
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    return None


NAME = Pattern(r"[A-Za-z0-9_.:@-]+", "must be a name of letters, digits and _ . : @ -")
IFNAME = Pattern(r"[^\s/]{1,15}", "must be an interface name (1 to 15 characters, no / or space)")


@dataclass(frozen=True)
class VirtualAddress:
    """A virtual address with keepalived's options.

    Written as a string like keepalived's ``virtual_ipaddress`` lines —
    ``"192.0.2.16/24 dev eth0 label eth0:1 scope global"`` — or as a mapping.
    A bare IPv4 address means /32 and an IPv6 one /128, as in keepalived.
    """

    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    dev: str | None = None
    label: str | None = None
    scope: str | None = None
    broadcast: ipaddress.IPv4Address | None = None

    _OPTIONS: ClassVar[frozenset[str]] = frozenset({"dev", "label", "scope", "brd", "broadcast"})
    _SCOPES: ClassVar[frozenset[str]] = frozenset({"global", "site", "link", "host", "nowhere"})

    @functools.cached_property
    def ip(self) -> IPAddress:
        # the interface makes a new address object on each call: validation and the
        # engine ask for it many times (a cached property stays out of eq and hash)
        return self.address.ip

    @classmethod
    def parse(cls, value: Any) -> VirtualAddress:
        if isinstance(value, dict):
            unknown = set(value) - {"address", *cls._OPTIONS}
            if unknown:
                raise ValueError(f"unknown key {sorted(unknown)[0]!r} in a virtual address")
            if "address" not in value:
                raise ValueError("missing required key 'address'")
            parts: list[str] = [str(value["address"])]
            for k in ("dev", "label", "scope", "broadcast", "brd"):
                if value.get(k) is not None:
                    parts += [k, str(value[k])]
            value = " ".join(parts)
        if not isinstance(value, str):
            raise ValueError(f"must be an address string or mapping, not {type(value).__name__}")
        words = value.split()
        if not words:
            raise ValueError("must not be empty")
        try:
            addr = ipaddress.ip_interface(words[0])
        except ValueError:
            raise ValueError(f"{words[0][:60]!r} is not an IP address or address/prefix") from None
        unusable = unusable_address(addr.ip)
        if unusable:
            raise ValueError(f"{unusable}, not one a virtual address can be")
        opts: dict[str, str] = {}
        rest = words[1:]
        if len(rest) % 2:
            raise ValueError(f"option {rest[-1]!r} needs a value")
        for key, val in zip(rest[::2], rest[1::2], strict=True):
            if key not in cls._OPTIONS:
                raise ValueError(f"unknown option {key!r} (known: dev, label, scope, brd)")
            opts["broadcast" if key == "brd" else key] = val
        if "scope" in opts and opts["scope"] not in cls._SCOPES:
            raise ValueError(f"scope must be one of {', '.join(sorted(cls._SCOPES))}")
        if "dev" in opts and not re.fullmatch(IFNAME.regex, opts["dev"]):
            raise ValueError(f"dev {opts['dev']!r} is not an interface name")
        label = opts.get("label")
        if label is not None:
            if addr.version != 4:
                raise ValueError("label applies to IPv4 addresses only")
            if len(label) > 15:  # IFNAMSIZ: the kernel refuses longer labels
                raise ValueError(f"label {label!r} is longer than 15 characters")
        brd = None
        if "broadcast" in opts:
            if addr.version != 4:
                raise ValueError("brd applies to IPv4 addresses only")
            try:
                brd = ipaddress.IPv4Address(opts["broadcast"])
            except ValueError:
                raise ValueError(f"brd {opts['broadcast'][:60]!r} is not an IPv4 address") from None
        return cls(addr, opts.get("dev"), opts.get("label"), opts.get("scope"), brd)

    @classmethod
    def __json_schema__(cls) -> dict[str, Any]:
        # the shape parse() takes: an address, then option/value pairs
        options = "|".join(sorted(cls._OPTIONS))
        return {
            "anyOf": [
                {
                    "type": "string",
                    "pattern": rf"^\s*{IP_ANY}(?:\s+(?:{options})\s+\S+)*\s*$",
                    "description": "ADDRESS[/PREFIX] [dev IF] [label L] [scope S] [brd B]",
                },
                {
                    "type": "object",
                    "properties": {
                        "address": {"type": "string", "pattern": f"^{IP_ANY}$"},
                        "dev": {"type": "string", "pattern": f"^(?:{IFNAME.regex})$"},
                        "label": {"type": "string", "maxLength": 15},
                        "scope": {"enum": sorted(cls._SCOPES)},
                        **{k: {"type": "string"} for k in ("broadcast", "brd")},
                    },
                    "required": ["address"],
                    "additionalProperties": False,
                },
            ]
        }

    def __str__(self) -> str:
        out = str(self.address)
        for k in ("dev", "label", "scope"):
            if getattr(self, k):
                out += f" {k} {getattr(self, k)}"
        return out


@dataclass(frozen=True, kw_only=True)
class Authentication:
    """VRRPv2 authentication (RFC 3768 §5.3.6). Only PASS is on the wire today; RFC 3768
    deprecates both, but keepalived users have it in their configs."""

    auth_type: Annotated[Literal["PASS"], Alias(("type",)), Doc("PASS: a clear-text password")] = (
        "PASS"
    )
    auth_pass: Annotated[
        str, Alias(("password",)), Length(1, 8), Doc("up to 8 characters (keepalived truncates)")
    ]

    def __post_init__(self) -> None:
        add_secret(self.auth_pass)  # never in a log line or a status field


@dataclass(frozen=True, kw_only=True)
class Track:
    """One input that moves a VRRP instance's priority (or puts it in FAULT).

    Exactly one of ``check``, ``interface`` or ``file``. With weight 0 a failure means FAULT;
    a positive weight is added while the input is up, a negative one subtracted while it is
    down (keepalived's rules; ``reverse`` swaps up and down).
    """

    check: Annotated[str | None, Doc("name of a check in `checks:`")] = None
    interface: Annotated[str | None, IFNAME, Doc("a network interface; down counts as failed")] = (
        None
    )
    file: Annotated[str | None, Doc("a file holding a number, multiplied by the weight")] = None
    weight: Annotated[
        int | None,
        Range(-254, 254),
        Doc("priority change (default: the check's own weight, else 0)"),
    ] = None
    reverse: Annotated[bool, Doc("invert the input")] = False

    @classmethod
    def __json_schema_rules__(cls) -> list[dict[str, Any]]:
        return [{"oneOf": [{"required": [k]} for k in ("check", "interface", "file")]}]

    def __check__(self) -> list[tuple[tuple[str, ...], str]]:
        given = [k for k in ("check", "interface", "file") if getattr(self, k) is not None]
        if len(given) != 1:
            return [((), "needs exactly one of 'check', 'interface' or 'file'")]
        return []


@dataclass(frozen=True, kw_only=True)
class VrrpInstance:
    """A VRRP virtual router on one interface (keepalived's ``vrrp_instance``)."""

    interface: Annotated[
        str | None,
        IFNAME,
        Doc("interface the adverts are sent on (without it, the one holding unicast_src_ip)"),
    ] = None
    virtual_router_id: Annotated[
        int, Range(1, 255), Doc("VRID, the same on every router of the group")
    ]
    priority: Annotated[int, Range(1, 255), Doc("255 means address owner (starts MASTER)")] = 100
    state: Annotated[
        Literal["MASTER", "BACKUP"],
        Doc("start-up hint; as in keepalived only priority 255 really starts as MASTER"),
    ] = "BACKUP"
    version: Annotated[Literal[2, 3], Alias(("vrrp_version",)), Doc("VRRP version")] = 2
    advert_int: Annotated[
        Seconds, Doc("advertisement interval: whole seconds 1–255 in v2, 0.01–40.95 s in v3")
    ] = Seconds(1.0)
    nopreempt: Annotated[bool, Doc("never take over from a lower-priority master")] = False
    preempt_delay: Annotated[
        Seconds,
        Range(0, 1000),
        Doc("wait this long after start-up or seeing a lower-priority master before preempting"),
    ] = Seconds(0.0)
    authentication: Annotated[Authentication | None, Doc("VRRPv2 only")] = None
    virtual_ipaddress: Annotated[
        list[VirtualAddress],
        Alias(("virtual_ipaddresses",)),
        Length(max=255),
        Doc("the addresses that move with the master"),
    ] = field(default_factory=list)
    virtual_ipaddress_excluded: Annotated[
        list[VirtualAddress], Doc("addresses moved with the master but not put in adverts")
    ] = field(default_factory=list)
    unicast_src_ip: Annotated[
        IPAddress | None, Alias(("mcast_src_ip",)), Doc("source address of adverts")
    ] = None
    unicast_peer: Annotated[
        list[IPAddress], Doc("send adverts to these peers instead of multicast")
    ] = field(default_factory=list)
    track: Annotated[list[Track], Doc("inputs that move the priority")] = field(
        default_factory=list
    )
    v3_checksum_as_v2: Annotated[
        bool,
        Doc(
            "VRRPv3 over IPv4: checksum without the pseudo-header"
            " (RFC 9568 option, keepalived ≥ 2.2.8)"
        ),
    ] = False
    use_vmac: Annotated[
        bool | str,
        Doc(
            "true or an interface name: a macvlan on the interface (default name vrrp.VRID)"
            " with the virtual MAC 00:00:5e:00:01:VRID (IPv6: 00:00:5e:00:02:VRID) carries the"
            " addresses and the adverts (keepalived's use_vmac)"
        ),
    ] = False
    vmac_xmit_base: Annotated[
        bool,
        Doc("with use_vmac: send adverts from the base interface (they are received there)"),
    ] = False
    accept: Annotated[
        bool,
        Doc(
            "RFC 5798 Accept_Mode: a MASTER that is not the address owner (priority 255)"
            " accepts packets addressed to the virtual addresses; false is keepalived's"
            " no_accept (they are dropped)"
        ),
    ] = True
    lower_prio_no_advert: Annotated[
        bool,
        Doc(
            "a MASTER hearing a lower-priority master does not answer with an advert at once"
            " (RFC 3768/5798; keepalived's lower_prio_no_advert, on in its strict mode)"
        ),
    ] = False
    dont_track_primary: Annotated[
        bool, Doc("ignore the instance's own interface going down (no FAULT)")
    ] = False
    unicast_ttl: Annotated[
        int, Range(1, 255), Doc("TTL (hop limit) of adverts sent to unicast peers")
    ] = 255
    check_unicast_src: Annotated[
        bool, Doc("drop unicast adverts whose source is not one of the unicast peers")
    ] = False
    extensions: Annotated[
        Extensions,
        ExtensionPoint("vrrp_instance"),
        Doc("options plugins add to an instance (written as its own keys)"),
    ] = field(default_factory=Extensions)

    @property
    def family(self) -> int:
        """4 or 6: the family of the virtual addresses, else (an instance without any) of
        the unicast peers or source; IPv4 when nothing says."""
        addrs: list[Any] = [v.address for v in self.virtual_ipaddress]
        addrs += self.unicast_peer
        if self.unicast_src_ip is not None:
            addrs.append(self.unicast_src_ip)
        return 6 if addrs and addrs[0].version == 6 else 4

    @property
    def vmac_name(self) -> str | None:
        """The macvlan's name with ``use_vmac`` (keepalived's default ``vrrp.VRID``)."""
        if self.use_vmac is False:
            return None
        if isinstance(self.use_vmac, str):
            return self.use_vmac
        return f"vrrp.{self.virtual_router_id}"

    @property
    def vmac_address(self) -> str:
        """The virtual router MAC (RFC 5798 §7.3): 00:00:5e:00:01:VRID, 00:00:5e:00:02:VRID
        for IPv6."""
        return f"00:00:5e:00:0{2 if self.family == 6 else 1}:{self.virtual_router_id:02x}"

    @property
    def address_interface(self) -> str | None:
        """Where the virtual addresses without a ``dev`` go: the VMAC, else the
        instance's interface (None: the one holding unicast_src_ip)."""
        return self.vmac_name or self.interface

    @property
    def advert_interface(self) -> str | None:
        """The interface adverts are sent from: the VMAC unless ``vmac_xmit_base``."""
        if self.vmac_name is not None and not self.vmac_xmit_base:
            return self.vmac_name
        return None

    def resolved_interface(self) -> str:
        """The interface: the configured one, else the one that holds ``unicast_src_ip``
        (keepalived's rule for a unicast instance without ``interface``). Raises OSError
        when no interface has that address."""
        if self.interface is not None:
            return self.interface
        from halo_core.netlink import interface_holding

        name = interface_holding(str(self.unicast_src_ip))
        if name is None:
            raise OSError(f"no interface has the unicast_src_ip {self.unicast_src_ip}")
        return name

    @classmethod
    def __json_schema_rules__(cls) -> list[dict[str, Any]]:
        # no authentication in VRRPv3 (whether an instance has an interface depends on
        # global.default_interface: HaloConfig.__check__)
        return [
            *(
                {
                    "if": {"required": [key], "properties": {key: {"const": 3}}},
                    "then": {"not": {"required": ["authentication"]}},
                }
                for key in ("version", "vrrp_version")
            ),
        ]

    def __check__(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        interval = interval_problem(self.version, float(self.advert_int))
        if interval:
            problems.append((("advert_int",), interval))
        if self.version == 3 and self.authentication is not None:
            problems.append((("authentication",), "VRRPv3 has no authentication (RFC 5798 §9)"))
        if isinstance(self.use_vmac, str) and not re.fullmatch(IFNAME.regex, self.use_vmac):
            problems.append((("use_vmac",), "must be true, false or an interface name"))
        if self.vmac_xmit_base and self.use_vmac is False:
            problems.append((("vmac_xmit_base",), "only with use_vmac"))
        if self.use_vmac is not False and self.unicast_peer and not self.vmac_xmit_base:
            problems.append(
                (("use_vmac",), "with unicast_peer, set vmac_xmit_base too (as keepalived needs)")
            )
        families = {v.address.version for v in self.virtual_ipaddress}
        if len(families) > 1:
            problems.append(
                (
                    ("virtual_ipaddress",),
                    "mixes IPv4 and IPv6; use one instance per family (RFC 5798 §5.2.9)",
                )
            )
        if self.version == 2 and self.family == 6:
            where = "virtual_ipaddress" if self.virtual_ipaddress else "unicast_peer"
            problems.append(((where,), "IPv6 needs VRRP version 3"))
        first: dict[IPAddress, str] = {}
        listed = [("virtual_ipaddress", i, v) for i, v in enumerate(self.virtual_ipaddress)] + [
            ("virtual_ipaddress_excluded", i, v)
            for i, v in enumerate(self.virtual_ipaddress_excluded)
        ]
        for key, i, address in listed:
            if address.ip in first:
                problems.append(
                    ((key, i), f"{address.ip} is listed twice (also at {first[address.ip]})")
                )
            else:
                first[address.ip] = f"{key}[{i}]"
        for i, peer in enumerate(self.unicast_peer):
            unusable = unusable_address(peer)
            if unusable:
                problems.append((("unicast_peer", i), f"{unusable}, not a peer's"))
        return problems


@dataclass(frozen=True, kw_only=True)
class SyncGroup:
    """Instances that change state together (keepalived's ``vrrp_sync_group``)."""

    group: Annotated[list[str], Length(min=1), Doc("member instance names")]
    track: Annotated[list[Track], Doc("inputs tracked by every member")] = field(
        default_factory=list
    )


@dataclass(frozen=True)
class ServerAddress:
    """An address and port, written ``"192.0.2.9 80"`` (keepalived's ``sorry_server``),
    ``"192.0.2.9:80"``, ``"[2001:db8::9]:80"`` or as a mapping."""

    address: IPAddress
    port: int | None = None

    @classmethod
    def parse(cls, value: Any) -> ServerAddress:
        if isinstance(value, dict):
            unknown = set(value) - {"address", "port"}
            if unknown:
                raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
            if "address" not in value:
                raise ValueError("missing required key 'address'")
            host, port = str(value["address"]), value.get("port")
        elif isinstance(value, str):
            text = value.strip()
            if " " in text:
                host, _, port_text = text.partition(" ")
            elif text.startswith("["):
                host, bracket, port_text = text[1:].partition("]")
                if not bracket or (port_text and not port_text.startswith(":")):
                    raise ValueError(
                        f"{text[:60]!r}: write an IPv6 address and port as [ADDRESS]:PORT"
                    )
                port_text = port_text[1:]
            elif text.count(":") == 1:
                host, _, port_text = text.partition(":")
            else:
                host, port_text = text, ""
            digits = port_text.strip()
            port = int(digits) if digits.isdigit() and len(digits) <= 6 else (port_text or None)
        else:
            raise ValueError(f"must be an address (and port), not {type(value).__name__}")
        try:
            addr = ipaddress.ip_address(host.strip())
        except ValueError:
            raise ValueError(f"{host[:60]!r} is not an IP address") from None
        if port is not None and (
            not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536
        ):
            raise ValueError(f"port {str(port)[:20]!r} must be 1 to 65535")
        return cls(addr, port)

    @classmethod
    def __json_schema__(cls) -> dict[str, Any]:
        return {
            "anyOf": [
                {"type": "string", "description": "ADDRESS PORT, ADDRESS:PORT or [V6]:PORT"},
                {
                    "type": "object",
                    "properties": {"address": {"type": "string"}, "port": {"type": "integer"}},
                    "required": ["address"],
                    "additionalProperties": False,
                },
            ]
        }

    def __str__(self) -> str:
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{host}:{self.port}" if self.port else str(self.address)


@dataclass(frozen=True)
class GroupEntry:
    """One entry of a virtual server group (keepalived's ``virtual_server_group``):
    ``"192.0.2.1 80"``; a range ``"192.0.2.10-20 80"`` (up to that last byte, or last group
    of IPv6 in hex), ``"192.0.2.250-192.0.3.10 80"`` or ``"192.0.2.8/29 80"``; or
    ``"fwmark 7"``. Each address (or mark) is a service of its own with the same real
    servers and the same checks."""

    first: IPAddress | None = None
    last: IPAddress | None = None  # the range's last address (None: a single address)
    port: int = 0
    fwmark: int | None = None

    LARGEST: ClassVar[int] = 4096  # addresses in one range: each is a kernel service

    @classmethod
    def parse(cls, value: Any) -> GroupEntry:
        if not isinstance(value, str):
            raise ValueError(f"must be a string like '192.0.2.1 80', not {type(value).__name__}")
        words = value.split()
        if words[:1] == ["fwmark"]:
            if len(words) != 2 or not words[1].isdigit() or not 0 < int(words[1]) < 2**32:
                raise ValueError(f"{value!r}: fwmark needs a number from 1 to {2**32 - 1}")
            return cls(fwmark=int(words[1]))
        if len(words) not in (1, 2):
            raise ValueError(f"{value!r} is not 'ADDRESS PORT', 'FIRST-LAST PORT' or 'fwmark N'")
        first, last = cls._range(value, words[0])
        port = 0
        if len(words) == 2:
            if not words[1].isdigit() or int(words[1]) > 65535:
                raise ValueError(f"{value!r}: port must be 0 to 65535")
            port = int(words[1])
        return cls(first, last, port)

    @staticmethod
    def _range(value: str, text: str) -> tuple[IPAddress, IPAddress | None]:
        if "/" in text:
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"{text!r} is not an address range") from None
            first, last = net[0], net[-1]
        else:
            host, _, end = text.partition("-")
            try:
                first = ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"{host!r} is not an IP address") from None
            if not end:
                return first, None
            if "." in end or ":" in end:
                try:
                    last = ipaddress.ip_address(end)
                except ValueError:
                    raise ValueError(f"{value!r}: {end!r} is not an IP address") from None
            else:
                v6 = first.version == 6
                width = 0xFFFF if v6 else 0xFF
                try:
                    low = int(end, 16 if v6 else 10)
                except ValueError:
                    raise ValueError(f"{value!r}: the range end {end!r} is no number") from None
                if not 0 <= low <= width:
                    raise ValueError(f"{value!r}: the range end {end!r} is too large")
                last = ipaddress.ip_address((int(first) & ~width) + low)
        if last.version != first.version or int(last) < int(first):
            raise ValueError(f"{value!r}: the range ends before it starts")
        if int(last) - int(first) >= GroupEntry.LARGEST:
            raise ValueError(f"{value!r}: more than {GroupEntry.LARGEST} addresses")
        return first, last

    @classmethod
    def __json_schema__(cls) -> dict[str, Any]:
        return {
            "type": "string",
            "description": "ADDRESS PORT, FIRST-LAST PORT, NETWORK/PREFIX PORT or fwmark N",
        }

    def addresses(self) -> list[IPAddress]:
        """Every address of the entry (none for a firewall mark)."""
        if self.first is None:
            return []
        if self.last is None:
            return [self.first]
        return [ipaddress.ip_address(n) for n in range(int(self.first), int(self.last) + 1)]

    def __str__(self) -> str:
        if self.fwmark is not None:
            return f"fwmark {self.fwmark}"
        span = f"{self.first}-{self.last}" if self.last is not None else str(self.first)
        return f"{span} {self.port}"


@dataclass(frozen=True, kw_only=True)
class RealServer:
    """One server behind a virtual service (keepalived's ``real_server``)."""

    address: Annotated[IPAddress, Doc("the real server's address")]
    port: Annotated[
        int | None, Range(1, 65535), Doc("its port (default: the virtual service's)")
    ] = None
    weight: Annotated[int, Range(0, 65535), Doc("share of new connections")] = 1
    inhibit_on_failure: Annotated[
        bool | None, Doc("on failure keep it with weight 0 instead of removing it")
    ] = None
    checks: Annotated[
        list[Annotated[Configured, PluginRef("checker")]],
        Doc("health checks; the server is up while all of them are up"),
    ] = field(default_factory=list)
    notify_up: Annotated[str | None, Command(), Doc("command run when this server goes up")] = None
    notify_down: Annotated[str | None, Command(), Doc("command run when this server goes down")] = (
        None
    )


@dataclass(frozen=True, kw_only=True)
class VirtualServer:
    """A load-balanced service (keepalived's ``virtual_server``): a virtual address and port
    (or a firewall mark) spread over real servers that join and leave with their checks."""

    address: Annotated[IPAddress | None, Doc("virtual address (usually a VRRP VIP)")] = None
    port: Annotated[int | None, Range(0, 65535), Doc("virtual port (0 or absent: all ports)")] = (
        None
    )
    fwmark: Annotated[
        int | None, Range(1, 2**32 - 1), Doc("a firewall mark instead of address/port")
    ] = None
    protocol: Annotated[Literal["TCP", "UDP", "SCTP"], Doc("transport protocol")] = "TCP"
    name: Annotated[str | None, NAME, Doc("name in logs and events (default ADDRESS:PORT)")] = None
    delay_loop: Annotated[Seconds, Doc("default check interval of its real servers")] = Seconds(
        60.0
    )
    lb_algo: Annotated[
        Literal[
            "rr",
            "wrr",
            "lc",
            "wlc",
            "lblc",
            "lblcr",
            "dh",
            "sh",
            "sed",
            "nq",
            "mh",
            "fo",
            "ovf",
            "random",
            "hash",
        ],
        Alias(("lvs_sched",)),
        Doc("scheduler (IPVS names; a load-balancer backend may support only some)"),
    ] = "wlc"
    lb_kind: Annotated[
        Literal["NAT", "DR", "TUN"], Alias(("lvs_method",)), Doc("forwarding method")
    ] = "NAT"
    lb_flags: Annotated[
        list[
            Literal[
                "mh-fallback", "mh-port", "sh-fallback", "sh-port", "flag-1", "flag-2", "flag-3"
            ]
        ],
        Doc(
            "scheduler flags: mh-/sh-fallback (skip a real server of weight 0), mh-/sh-port"
            " (hash the port too), or the raw flag-1..3 of any scheduler"
        ),
    ] = field(default_factory=list)
    tun_type: Annotated[
        Literal["ipip", "gue", "gre"], Doc("encapsulation of lb_kind TUN (gue and gre: Linux 5.3+)")
    ] = "ipip"
    tun_port: Annotated[
        int | None, Range(1, 65535), Doc("destination UDP port of tun_type gue")
    ] = None
    tun_checksum: Annotated[
        Literal["nocsum", "csum", "remcsum"],
        Doc("checksum of gue and gre tunnels: none, outer, remote (gue only)"),
    ] = "nocsum"
    group: Annotated[
        list[GroupEntry],
        Doc(
            "keepalived's virtual_server_group: services sharing these real servers and"
            " checks, instead of address/port or fwmark"
        ),
    ] = field(default_factory=list)
    persistence_timeout: Annotated[
        Seconds | None, Doc("pin a client to its real server this long")
    ] = None
    persistence_granularity: Annotated[
        IPAddress | None, Doc("netmask grouping clients for persistence")
    ] = None
    quorum: Annotated[
        int, Range(1, 2**31), Doc("total weight of live servers needed for the service")
    ] = 1
    hysteresis: Annotated[
        int, Range(0, 2**31), Doc("margin around the quorum against flapping")
    ] = 0
    quorum_up: Annotated[str | None, Command(), Doc("command run when the quorum is gained")] = None
    quorum_down: Annotated[str | None, Command(), Doc("command run when the quorum is lost")] = None
    sorry_server: Annotated[ServerAddress | None, Doc("server used while the quorum is lost")] = (
        None
    )
    sorry_server_inhibit: Annotated[
        bool, Doc("keep the sorry server with weight 0 while unused")
    ] = False
    inhibit_on_failure: Annotated[
        bool, Doc("failed servers stay with weight 0 instead of removed")
    ] = False
    alpha: Annotated[bool, Doc("servers start down until their checks succeed")] = False
    omega: Annotated[bool, Doc("run quorum_down when halo stops")] = False
    real_servers: Annotated[list[RealServer], Alias(("real_server",)), Doc("the real servers")] = (
        field(default_factory=list)
    )

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.fwmark is not None:
            return f"fwmark:{self.fwmark}"
        if self.address is None:
            return f"group:{self.group[0]}" if self.group else "?"
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{host}:{self.port or 0}"

    def __check__(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if (self.address is not None) + (self.fwmark is not None) + bool(self.group) != 1:
            problems.append(((), "needs one of 'address' (with 'port'), 'fwmark' or 'group'"))
        problems += self._lvs_problems()
        seen: set[tuple[str, int | None]] = set()
        for i, rs in enumerate(self.real_servers):
            key = (str(rs.address), rs.port or self.port)
            if key in seen:
                problems.append(
                    (("real_servers", i), f"{rs.address} port {key[1]} is listed twice")
                )
            seen.add(key)
            if (
                self.address is not None
                and rs.address.version != self.address.version
                and self.lb_kind != "NAT"
            ):
                problems.append(
                    (
                        ("real_servers", i, "address"),
                        "address family differs from the virtual server's",
                    )
                )
        return problems

    def _lvs_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for i, flag in enumerate(self.lb_flags):
            owner = flag.partition("-")[0]
            if owner in ("mh", "sh") and owner != self.lb_algo:
                problems.append((("lb_flags", i), f"{flag} needs lb_algo {owner}"))
        if self.lb_kind != "TUN":
            for key, default in (
                ("tun_type", "ipip"),
                ("tun_port", None),
                ("tun_checksum", "nocsum"),
            ):
                if getattr(self, key) != default:
                    problems.append(((key,), "only for lb_kind TUN"))
        elif self.tun_type == "gue" and self.tun_port is None:
            problems.append((("tun_port",), "tun_type gue needs tun_port"))
        elif self.tun_type != "gue" and self.tun_port is not None:
            problems.append((("tun_port",), "only for tun_type gue"))
        if self.tun_type == "ipip" and self.tun_checksum != "nocsum":
            problems.append((("tun_checksum",), "ipip tunnels have no checksum option"))
        if self.tun_type == "gre" and self.tun_checksum == "remcsum":
            problems.append((("tun_checksum",), "remcsum is for tun_type gue only"))
        return problems


@dataclass(frozen=True, kw_only=True)
class GlobalConfig:
    """Settings for the whole daemon (keepalived's ``global_defs``)."""

    router_id: Annotated[
        str | None, Doc("this node's name in notifications (default: host name)")
    ] = None
    script_user: Annotated[
        str | None,
        Doc("user (and optional :group) scripts run as; default: keepalived_script or nobody"),
    ] = None
    enable_script_security: Annotated[
        bool, Doc("refuse scripts that a non-root user could modify")
    ] = True
    log_format: Annotated[Literal["text", "json"], Doc("log lines as text or JSON")] = "text"
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"], Doc("least severe level logged")
    ] = "info"
    plugins: Annotated[PluginsConfig, Doc("plugin loading")] = field(default_factory=PluginsConfig)
    state_dir: Annotated[str, Doc("where halo keeps its run-time state")] = "/run/halo"
    default_interface: Annotated[
        str | None,
        IFNAME,
        Doc("interface of the VRRP instances that name none and have no unicast_src_ip"),
    ] = None
    dynamic_interfaces: Annotated[
        bool,
        Doc(
            "an instance whose interface does not exist waits (logged) and starts when the"
            " interface appears, instead of stopping halo; one whose interface is deleted"
            " and created again restarts on the new one"
        ),
    ] = False
    check_unicast_src: Annotated[
        bool,
        Alias(("vrrp_check_unicast_src",)),
        Doc("check_unicast_src for every VRRP instance"),
    ] = False
    vrrp_rt_priority: Annotated[
        int,
        Range(0, 99),
        Doc("real-time (SCHED_RR) priority of the VRRP process; 0: normal scheduling"),
    ] = 1
    vrrp_rlimit_rttime: Annotated[
        int,
        Range(1000, 10_000_000),
        Doc("microseconds of CPU the real-time VRRP process may use without sleeping"),
    ] = 200_000
    vrrp_priority: Annotated[int, Range(-20, 19), Doc("nice value of the VRRP process")] = 0
    vrrp_no_swap: Annotated[bool, Doc("lock the VRRP process's memory (mlockall)")] = False
    worker_priority: Annotated[
        int,
        Range(-20, 19),
        Alias(("checker_priority",)),
        Doc("nice value of the worker (checks, notifiers, pools, status API)"),
    ] = 0
    extensions: Annotated[
        Extensions,
        ExtensionPoint("global"),
        Doc("options plugins add to the daemon-wide settings (written as its own keys)"),
    ] = field(default_factory=Extensions)


@dataclass(frozen=True, kw_only=True)
class HaloConfig:
    """A halo configuration file. Other files can be pulled in with
    ``include: [conf.d/*.yaml]`` (paths relative to the including file)."""

    global_: Annotated[GlobalConfig, Alias(("global_defs",)), Doc("daemon-wide settings")] = field(
        default_factory=GlobalConfig
    )
    vrrp_instances: Annotated[
        dict[str, VrrpInstance], Keys(NAME), Doc("VRRP instances by name")
    ] = field(default_factory=dict)
    vrrp_sync_groups: Annotated[dict[str, SyncGroup], Keys(NAME), Doc("sync groups by name")] = (
        field(default_factory=dict)
    )
    checks: Annotated[
        dict[str, Annotated[Configured, PluginRef("checker")]],
        Keys(NAME),
        Doc("named checks (each with a checker `type:`)"),
    ] = field(default_factory=dict)
    notifiers: Annotated[
        dict[str, Annotated[Configured, PluginRef("notifier")]],
        Keys(NAME),
        Doc("named notifiers (each with a notifier `type:`)"),
    ] = field(default_factory=dict)
    backends: Annotated[
        dict[str, Annotated[Configured, PluginRef("backend")]],
        Keys(NAME),
        Doc("named backends (each with a backend `type:`)"),
    ] = field(default_factory=dict)
    virtual_servers: Annotated[
        list[VirtualServer],
        Alias(("virtual_server",)),
        Doc("load-balanced services and their real servers"),
    ] = field(default_factory=list)

    def __post_init__(self) -> None:
        # keepalived's default_interface: the interface of instances that give none (a
        # unicast instance with a source address finds its interface by that address)
        default = self.global_.default_interface
        if default is not None:
            filled = {
                name: dataclasses.replace(cfg, interface=default)
                if cfg.interface is None and cfg.unicast_src_ip is None
                else cfg
                for name, cfg in self.vrrp_instances.items()
            }
            object.__setattr__(self, "vrrp_instances", filled)

    def __check__(self) -> list[tuple[tuple[str | int, ...], str]]:
        return [
            (("vrrp_instances", name), "missing required key 'interface' (or give unicast_src_ip)")
            for name, cfg in self.vrrp_instances.items()
            if cfg.interface is None and cfg.unicast_src_ip is None
        ]


EXTENDED_SECTIONS: tuple[type, ...] = (GlobalConfig, VrrpInstance)
"""The core sections plugins may add options to (each has an ``ExtensionPoint`` field)."""
