"""Schema and hooks of the ``routes`` backend: keepalived's ``virtual_routes`` and
``virtual_rules``, written in each VRRP instance, and its ``static_routes`` and
``static_rules`` (``global:``, in place whatever the VRRP state). The netlink work lives in
:mod:`.runtime`, imported only when the configuration has routes or rules.

This module is imported by ``halo check``: it must stay free of pyroute2 and sockets.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from halo_core.hookspecs import hookimpl
from halo_core.schema import Doc

if TYPE_CHECKING:
    from halo_core.bus import EventBus
    from halo_core.config import Config
    from halo_core.daemon import Daemon

IFNAME = re.compile(r"[^\s/]{1,15}")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _network(text: str) -> Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an address or prefix") from None


def _address(text: str) -> Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


def _number(key: str, text: str, high: int = 2**32 - 1) -> int:
    if not text.isdigit() or not 0 <= int(text) <= high:
        raise ValueError(f"{key} {text!r} must be a number from 0 to {high}")
    return int(text)


PROTOCOLS = {"kernel": 2, "boot": 3, "static": 4, "keepalived": 18}
"""Route protocols known by name (/etc/iproute2/rt_protos); others are given by number."""
RTPROT_KEEPALIVED = 18
"""The protocol keepalived's routes and rules carry when none is given."""


def _protocol(key: str, text: str) -> int:
    return PROTOCOLS[text] if text in PROTOCOLS else _number(key, text, 255)


def _pairs(words: list[str], known: frozenset[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    if len(words) % 2:
        raise ValueError(f"{words[-1]!r} needs a value")
    for key, value in zip(words[::2], words[1::2], strict=True):
        if key not in known:
            raise ValueError(f"unknown option {key!r} (known: {', '.join(sorted(known))})")
        if key in opts:
            raise ValueError(f"{key} is given twice")
        opts[key] = value
    return opts


@dataclass(frozen=True)
class Nexthop:
    """One path of a multipath route: ``nexthop [via ADDR] [dev IF] [weight N] [onlink]``."""

    via: Address | None = None
    dev: str | None = None
    weight: int | None = None
    onlink: bool = False

    def __str__(self) -> str:
        words = ["nexthop"]
        for key in ("via", "dev", "weight"):
            value = getattr(self, key)
            if value is not None:
                words += [key, str(value)]
        return " ".join([*words, "onlink"] if self.onlink else words)


def _nexthops(words: list[str]) -> tuple[Nexthop, ...]:
    """keepalived's ``nexthop ... nexthop ...`` tail of a route line (vrrp_iproute.c,
    parse_nexthops): each ``nexthop`` followed by via, dev, weight (1 to 256), onlink."""
    hops = []
    while words:
        if words[0] != "nexthop":
            raise ValueError(f"{words[0]!r} after the nexthops (each starts with nexthop)")
        words = words[1:]
        opts: dict[str, str] = {}
        while words and words[0] != "nexthop":
            key = words.pop(0)
            if key == "onlink":
                value = ""
            elif key in ("via", "dev", "weight"):
                if words and key == "via" and words[0] in ("inet", "inet6"):
                    words.pop(0)  # keepalived's family word: the address tells it anyway
                if not words or words[0] == "nexthop":
                    raise ValueError(f"nexthop {key} needs a value")
                value = words.pop(0)
            else:
                raise ValueError(
                    f"unknown nexthop option {key!r} (known: dev, onlink, via, weight)"
                )
            if key in opts:
                raise ValueError(f"nexthop {key} is given twice")
            opts[key] = value
        dev = opts.get("dev")
        if dev is not None and not IFNAME.fullmatch(dev):
            raise ValueError(f"nexthop dev {dev!r} is not an interface name")
        weight = opts.get("weight")
        if weight is not None and not (weight.isdigit() and 1 <= int(weight) <= 256):
            raise ValueError(f"nexthop weight {weight!r} must be a number from 1 to 256")
        hop = Nexthop(
            _address(opts["via"]) if "via" in opts else None,
            dev,
            int(weight) if weight is not None else None,
            "onlink" in opts,
        )
        if hop.via is None and hop.dev is None:
            raise ValueError("a nexthop needs via ADDRESS or dev INTERFACE")
        hops.append(hop)
    return tuple(hops)


@dataclass(frozen=True)
class VirtualRoute:
    """A route keepalived's way, as one line:
    ``[src ADDR] [to] PREFIX [via ADDR] [dev IF] [table N] [metric N] [scope S] [proto P]``,
    or ``blackhole|unreachable|prohibit PREFIX [table N] [metric N]``. A multipath route
    gives its paths after the other options, ``nexthop via A [dev IF] [weight N] [onlink]
    nexthop via B ...``, or keepalived's older ``via A or B`` (read as two nexthops)."""

    to: Network
    via: Address | None = None
    dev: str | None = None
    src: Address | None = None
    table: int | None = None
    metric: int | None = None
    scope: str | None = None
    proto: int | None = None
    type: str = "unicast"
    nexthops: tuple[Nexthop, ...] = ()

    _TYPES: ClassVar[frozenset[str]] = frozenset({"blackhole", "unreachable", "prohibit"})
    _KEYS: ClassVar[frozenset[str]] = frozenset(
        {"src", "via", "dev", "table", "metric", "scope", "proto"}
    )
    _SCOPES: ClassVar[dict[str, int]] = {"global": 0, "site": 200, "link": 253, "host": 254}

    @classmethod
    def parse(cls, value: Any) -> VirtualRoute:
        if not isinstance(value, str):
            raise ValueError(f"must be a route line, not {type(value).__name__}")
        words = value.split()
        kind = "unicast"
        if words and words[0] in cls._TYPES:
            kind = words.pop(0)
        src = None
        if len(words) >= 2 and words[0] == "src":
            src = _address(words[1])
            words = words[2:]
        if words and words[0] == "to":
            words = words[1:]
        if not words:
            raise ValueError("needs a destination prefix")
        to = _network(words[0])
        # keepalived reads gw as via and takes protocol for proto
        words = [{"gw": "via", "protocol": "proto"}.get(w, w) for w in words[1:]]
        nexthops: tuple[Nexthop, ...] = ()
        if "nexthop" in words:
            at = words.index("nexthop")
            nexthops = _nexthops(words[at:])
            words = words[:at]
        alternative = None
        if "or" in words:
            at = words.index("or")
            if nexthops:
                raise ValueError("'or' and nexthop cannot be used together")
            if at + 1 >= len(words):
                raise ValueError("'or' needs a gateway address after it")
            if "or" in words[at + 2 :]:
                raise ValueError("only one 'or' is allowed (for more paths use nexthop)")
            alternative = _address(words[at + 1])
            words = words[:at] + words[at + 2 :]
        opts = _pairs(words, cls._KEYS - {"src"})
        via = _address(opts["via"]) if "via" in opts else None
        dev = opts.get("dev")
        if dev is not None and not IFNAME.fullmatch(dev):
            raise ValueError(f"dev {dev!r} is not an interface name")
        if alternative is not None:
            if via is None:
                raise ValueError("'or' needs via ADDRESS before it")
            # keepalived moves via to the first nexthop and the 'or' address to the second;
            # a dev given on the line is the dev of both paths
            nexthops = (Nexthop(via, dev), Nexthop(alternative, dev))
            via = dev = None
        elif nexthops and (via is not None or dev is not None):
            raise ValueError("a route with nexthops gives via and dev in each nexthop")
        if kind != "unicast" and (via or dev or nexthops):
            raise ValueError(f"a {kind} route has no via, dev or nexthop")
        if kind == "unicast" and via is None and dev is None and not nexthops:
            raise ValueError("needs via ADDRESS or dev INTERFACE")
        for addr in (via, src, *(hop.via for hop in nexthops)):
            if addr is not None and addr.version != to.version:
                raise ValueError(f"{addr} is not of the family of {to}")
        scope = opts.get("scope")
        if scope is not None and scope not in cls._SCOPES:
            raise ValueError(f"scope must be one of {', '.join(cls._SCOPES)}")
        return cls(
            to,
            via,
            dev,
            src,
            _number("table", opts["table"]) if "table" in opts else None,
            _number("metric", opts["metric"]) if "metric" in opts else None,
            scope,
            _protocol("proto", opts["proto"]) if "proto" in opts else None,
            kind,
            nexthops,
        )

    def __str__(self) -> str:
        words = [] if self.type == "unicast" else [self.type]
        if self.src is not None:
            words += ["src", str(self.src)]
        words.append(str(self.to))
        for key in ("via", "dev", "table", "metric", "scope", "proto"):
            value = getattr(self, key)
            if value is not None:
                words += [key, str(value)]
        return " ".join([*words, *map(str, self.nexthops)])

    @classmethod
    def __json_schema__(cls) -> dict[str, Any]:
        return {
            "type": "string",
            "description": "[src ADDR] [to] PREFIX [via ADDR] [dev IF] [table N] [metric N]"
            " [scope S] [proto P], or a multipath route: PREFIX [table N] ..."
            " nexthop via ADDR [dev IF] [weight N] [onlink] nexthop via ADDR ...",
        }


@dataclass(frozen=True)
class VirtualRule:
    """A policy-routing rule keepalived's way, as one line:
    ``[from PREFIX] [to PREFIX] [iif IF] [oif IF] [fwmark N] [priority N] [protocol N]
    table N``. Without a priority, keepalived's is given (:func:`keepalived_priorities`)."""

    table: int
    src: Network | None = None
    dst: Network | None = None
    iif: str | None = None
    oif: str | None = None
    fwmark: int | None = None
    priority: int | None = None
    protocol: int | None = None

    _KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "from",
            "to",
            "iif",
            "oif",
            "fwmark",
            "priority",
            "preference",
            "pref",
            "table",
            "lookup",
            "protocol",
        }
    )

    @property
    def family(self) -> int:
        nets = [n for n in (self.src, self.dst) if n is not None]
        return nets[0].version if nets else 4

    @classmethod
    def parse(cls, value: Any) -> VirtualRule:
        if not isinstance(value, str):
            raise ValueError(f"must be a rule line, not {type(value).__name__}")
        opts = _pairs(value.split(), cls._KEYS)
        table = opts.get("table", opts.get("lookup"))
        if table is None:
            raise ValueError("needs table N")
        for key in ("iif", "oif"):
            if key in opts and not IFNAME.fullmatch(opts[key]):
                raise ValueError(f"{key} {opts[key]!r} is not an interface name")
        src = _network(opts["from"]) if "from" in opts else None
        dst = _network(opts["to"]) if "to" in opts else None
        if src is not None and dst is not None and src.version != dst.version:
            raise ValueError("from and to must be of one family")
        prio = opts.get("priority", opts.get("preference", opts.get("pref")))
        return cls(
            _number("table", table),
            src,
            dst,
            opts.get("iif"),
            opts.get("oif"),
            _number("fwmark", opts["fwmark"]) if "fwmark" in opts else None,
            _number("priority", prio) if prio is not None else None,
            _protocol("protocol", opts["protocol"]) if "protocol" in opts else None,
        )

    def __str__(self) -> str:
        words = []
        for key, value in (
            ("from", self.src),
            ("to", self.dst),
            ("iif", self.iif),
            ("oif", self.oif),
            ("fwmark", self.fwmark),
            ("priority", self.priority),
            ("protocol", self.protocol),
        ):
            if value is not None:
                words += [key, str(value)]
        return " ".join([*words, "table", str(self.table)])

    @classmethod
    def __json_schema__(cls) -> dict[str, Any]:
        return {
            "type": "string",
            "description": "[from PREFIX] [to PREFIX] [iif IF] [oif IF] [fwmark N]"
            " [priority N] [protocol N] table N",
        }


@dataclass(frozen=True, kw_only=True)
class RoutesInstanceOptions:
    """What this backend adds to every VRRP instance (written among the instance's keys)."""

    virtual_routes: Annotated[
        list[VirtualRoute],
        Doc("routes added while the instance is MASTER, removed when it leaves MASTER"),
    ] = field(default_factory=list)
    virtual_rules: Annotated[
        list[VirtualRule],
        Doc("policy-routing rules added while MASTER, removed when it leaves MASTER"),
    ] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class RoutesGlobalOptions:
    """What this backend adds to the ``global:`` settings: keepalived's ``static_routes`` and
    ``static_rules``."""

    static_routes: Annotated[
        list[VirtualRoute],
        Doc("routes added when halo starts, whatever the VRRP states, removed when it stops"),
    ] = field(default_factory=list)
    static_rules: Annotated[
        list[VirtualRule],
        Doc("policy-routing rules added when halo starts, removed when it stops"),
    ] = field(default_factory=list)


RULE_START_PRIORITY = 16384
"""keepalived's priority for the first rule written without one (vrrp_iprule.c)."""


def keepalived_priorities(rules: list[VirtualRule]) -> dict[int, int]:
    """The priority keepalived gives each rule written without one, by position in
    ``rules`` (the static rules, then each instance's, in file order): 16384 for the first
    of a family, one less for each next one of that family, so that the rules keep their
    order whichever instance adds its rules first. Counted afresh at every (re)load, as
    keepalived does."""
    following = {4: RULE_START_PRIORITY, 6: RULE_START_PRIORITY}
    out = {}
    for i, rule in enumerate(rules):
        if rule.priority is None:
            out[i] = following[rule.family]
            following[rule.family] -= 1
    return out


@hookimpl
def halo_config_extensions() -> dict[str, type]:
    return {"vrrp_instance": RoutesInstanceOptions, "global": RoutesGlobalOptions}


@hookimpl
def halo_has_work(config: Config) -> bool:
    """Work only when the file has static or virtual routes or rules."""
    static = config.model.global_.extensions[RoutesGlobalOptions]
    if static.static_routes or static.static_rules:
        return True
    for instance in config.model.vrrp_instances.values():
        opts = instance.extensions[RoutesInstanceOptions]
        if opts.virtual_routes or opts.virtual_rules:
            return True
    return False


@hookimpl
def halo_subscribe(bus: EventBus) -> None:
    from halo_backend_routes import hooks

    hooks.subscribe(bus)


@hookimpl
async def halo_startup(daemon: Daemon) -> None:
    from halo_backend_routes import hooks

    await hooks.configure(daemon.config.model)


@hookimpl
async def halo_reload(daemon: Daemon, old: Config, new: Config) -> list[str]:
    from halo_backend_routes import hooks

    return await hooks.configure(new.model)


@hookimpl
async def halo_shutdown(daemon: Daemon) -> None:
    from halo_backend_routes import hooks

    await hooks.withdraw_all()


@hookimpl
def halo_convert_keepalived() -> list[Any]:
    from halo_backend_routes.keepalived import keywords

    return list(keywords())
