"""halo's nftables table as data: pure functions from the wanted state to ``nft -j`` commands.

Nothing here runs ``nft``; :mod:`.runtime` does. Keeping the generation pure lets the tests
compare rulesets without a kernel and lets the runtime rebuild the expected shape of the
table at any time (for drift detection).

Layout of the table (family ``inet``; only the maps of the families in use hold elements)::

    map vs4        ip daddr . meta l4proto . th dport : jump vsN    services with a port
    map vs4_any    ip daddr . meta l4proto            : jump vsN    port 0: every port
    map vs6, vs6_any                                                the same for IPv6
    map vs_mark    meta nfproto . meta mark           : jump vsN    firewall-mark services
    map empty4 … empty_mark                           : jump reject_empty
    set snat4, snat6, snat_mark                        what the postrouting chain SNATs
    set vips4, vips6                                   VIPs dropped on a non-owner master

    chain dnat_pre   nat prerouting  (dstnat)      vmap lookups into vs*
    chain dnat_out   nat output      (dstnat)      the same for clients on the director
    chain guard_pre  filter prerouting (dstnat-10) new connections to an empty service:
    chain guard_out  filter output   (dstnat-10)   jump reject_empty (TCP reset / ICMP)
    chain snat_post  nat postrouting (srcnat)      masquerade / snat (optional)
    chain vips_in    filter input    (filter-1)    the VIP firewall (optional)
    chain vsN        one per virtual service: the DNAT rule choosing a real server

A pool change rewrites one ``vsN`` chain (flush + add) and toggles the service's ``empty*``
element in the same transaction; everything else only changes on a full rebuild.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial, reduce
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Literal

Family = Literal[4, 6]
Mode = Literal["rr", "wrr", "random", "hash", "fo"]
Json = dict[str, Any]

NFPROTO = {4: "ipv4", 6: "ipv6"}
L3 = {4: "ip", 6: "ip6"}
# Offset in bits of the source address in the IPv4 and IPv6 headers (for raw-payload hashing
# of an address prefix: nft cannot mask inside jhash).
SADDR_OFFSET = {4: 96, 6: 64}
ADDR_BITS = {4: 32, 6: 128}

# Chain priorities. dstnat = -100, srcnat = 100, filter = 0 (the kernel's names).
PRIO_DSTNAT = -100
PRIO_SRCNAT = 100
PRIO_GUARD = PRIO_DSTNAT - 10  # before NAT, so it sees the virtual address
PRIO_VIPS = -1  # just before the usual filter chains (a drop anywhere is final)

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True)
class Dest:
    """A real server as DNAT sees it."""

    address: IPAddress
    port: int | None
    weight: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{host}:{self.port}" if self.port else host


@dataclass(frozen=True)
class Service:
    """A virtual service this backend balances (derived from the config once)."""

    index: int
    label: str
    family: Family
    protocol: str  # tcp, udp, sctp
    address: IPAddress | None = None
    port: int | None = None  # None: every port
    fwmark: int | None = None
    mode: Mode = "wrr"
    hash_prefix: int | None = None  # persistence granularity in bits (None: whole address)
    seed: int = 0

    @property
    def chain(self) -> str:
        return f"vs{self.index}"

    @property
    def dispatch(self) -> tuple[str, str]:
        """(vs map, empty map) names for this service's key."""
        if self.fwmark is not None:
            return "vs_mark", "empty_mark"
        suffix = "" if self.port else "_any"
        return f"vs{self.family}{suffix}", f"empty{self.family}{suffix}"

    def key(self) -> Json | str | int:
        """This service's element key in its dispatch maps."""
        if self.fwmark is not None:
            return {"concat": [NFPROTO[self.family], self.fwmark]}
        assert self.address is not None
        if self.port:
            return {"concat": [str(self.address), self.protocol, self.port]}
        return {"concat": [str(self.address), self.protocol]}


@dataclass(frozen=True)
class Options:
    """The backend options that shape the ruleset."""

    table: str = "halo"
    masquerade: bool = False
    snat_to: tuple[IPAddress, ...] = ()
    empty_reject: bool = True
    vip_firewall: bool = False
    hash_buckets: int = 64


@dataclass
class State:
    """Everything the table should express: members per service (None while a service has
    not been reported yet: it then gets no rule at all) and the VIPs to drop."""

    members: dict[int, tuple[Dest, ...] | None] = field(default_factory=dict)
    vips: frozenset[IPAddress] = frozenset()


# ------------------------------------------------------------------------------ expressions


def _payload(protocol: str, name: str) -> Json:
    return {"payload": {"protocol": protocol, "field": name}}


def _meta(key: str) -> Json:
    return {"meta": {"key": key}}


def _match(left: Json, right: Any, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def _jump(chain: str) -> Json:
    return {"jump": {"target": chain}}


def _addr_port(dest: Dest) -> Json | str:
    if dest.port is None:
        return str(dest.address)
    return {"concat": [str(dest.address), dest.port]}


# ------------------------------------------------------------------------------ selection


def usable(service: Service, dests: Iterable[Dest]) -> tuple[Dest, ...]:
    """The dests that can take new connections: weight > 0, the service's address family,
    and (when some have a port) a port, since one DNAT map cannot both rewrite and keep
    the port. The first of two identical address/port pairs wins."""
    out: list[Dest] = []
    seen: set[tuple[IPAddress, int | None]] = set()
    for d in dests:
        if d.weight <= 0 or d.address.version != service.family:
            continue
        if (d.address, d.port) in seen:
            continue
        seen.add((d.address, d.port))
        out.append(d)
    if any(d.port is not None for d in out):
        out = [d for d in out if d.port is not None]
    return tuple(out)


def slots(weights: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive [first, last] ranges of ``numgen … mod total`` per weight, after dividing
    the weights by their greatest common divisor (so 2:4:6 takes 6 slots, not 12)."""
    g = reduce(math.gcd, weights)
    out = []
    start = 0
    for w in weights:
        n = w // g
        out.append((start, start + n - 1))
        start += n
    return out


def _score(bucket: int, dest: Dest) -> float:
    # Weighted rendezvous hashing: each bucket goes to the dest with the highest
    # -weight/ln(u), u uniform in (0, 1) from a hash of (bucket, dest). Removing a dest only
    # moves that dest's buckets, so a failed server does not reshuffle everybody else.
    digest = hashlib.blake2b(f"{bucket}|{dest.address}|{dest.port}".encode(), digest_size=8)
    u = (int.from_bytes(digest.digest(), "big") + 1) / (2**64 + 2)
    return -dest.weight / math.log(u)


@lru_cache(maxsize=4096)
def buckets(dests: tuple[Dest, ...], count: int) -> list[tuple[int, int, Dest]]:
    """Hash buckets 0..count-1 assigned to dests (weighted rendezvous), merged into ranges.
    Cached: a periodic drift check regenerates every service's rule."""
    owner = [max(dests, key=partial(_score, b)) for b in range(count)]
    out: list[tuple[int, int, Dest]] = []
    for b, d in enumerate(owner):
        if out and out[-1][2] == d and out[-1][1] == b - 1:
            out[-1] = (out[-1][0], b, d)
        else:
            out.append((b, b, d))
    return out


def _range(first: int, last: int) -> Json | int:
    # nft lists a one-value range as the value: generate it that way too.
    return first if first == last else {"range": [first, last]}


def dnat_rule(service: Service, dests: Sequence[Dest], opts: Options) -> list[Json] | None:
    """The expressions of the DNAT rule of ``service`` (None without usable dests)."""
    picked = usable(service, dests)
    if not picked:
        return None
    exprs: list[Json] = []
    if service.fwmark is not None:  # the mark alone says nothing about the family
        exprs.append(_match(_meta("nfproto"), NFPROTO[service.family]))
    if picked[0].port is not None:  # nft: a port mapping needs the protocol matched first
        exprs.append(_match(_meta("l4proto"), service.protocol))
    family = L3[service.family]
    single: Dest | None = None
    mapping: Json | None = None
    if service.mode == "fo":
        # Weighted failover (IPVS fo): every new connection to the heaviest server.
        single = max(picked, key=lambda d: d.weight)
    elif len(picked) == 1:
        single = picked[0]
    elif service.mode == "hash":
        count = max(opts.hash_buckets, len(picked))
        ranges = buckets(tuple(picked), count)
        bits = service.hash_prefix
        source: Json = _payload(family, "saddr")
        if bits is not None and bits < ADDR_BITS[service.family]:
            # Whole bytes only: nft cannot mask inside jhash, a raw payload can be shorter.
            bits = bits // 8 * 8
            source = {
                "payload": {"base": "nh", "offset": SADDR_OFFSET[service.family], "len": bits}
            }
        if bits == 0:
            single = ranges[0][2]  # every client in one group: one server
        else:
            mapping = {
                "key": {"jhash": {"mod": count, "seed": service.seed, "expr": source}},
                "data": {"set": [[_range(a, b), _addr_port(d)] for a, b, d in ranges]},
            }
    else:
        weights = [1 if service.mode == "rr" else d.weight for d in picked]
        table = slots(weights)
        mode = "random" if service.mode == "random" else "inc"
        mapping = {
            "key": {"numgen": {"mode": mode, "mod": table[-1][1] + 1, "offset": 0}},
            "data": {
                "set": [
                    [_range(a, b), _addr_port(d)] for (a, b), d in zip(table, picked, strict=True)
                ]
            },
        }
    if mapping is not None:
        exprs.append({"dnat": {"family": family, "addr": {"map": mapping}}})
    else:
        assert single is not None
        stmt: Json = {"family": family, "addr": str(single.address)}
        if single.port is not None:
            stmt["port"] = single.port
        exprs.append({"dnat": stmt})
    return exprs


def _comment(service: Service) -> str:
    return service.label[:120]


def is_empty(service: Service, dests: Sequence[Dest] | None) -> bool:
    """Whether new connections to the service must be refused (reported, none usable)."""
    return dests is not None and not usable(service, dests)


# ------------------------------------------------------------------------------ commands


def _obj(opts: Options, **kw: Any) -> Json:
    return {"family": "inet", "table": opts.table, **kw}


def _rule(opts: Options, chain: str, exprs: list[Json], comment: str | None = None) -> Json:
    body = _obj(opts, chain=chain, expr=exprs)
    if comment:
        body["comment"] = comment
    return {"add": {"rule": body}}


def _base_chain(opts: Options, name: str, kind: str, hook: str, prio: int) -> Json:
    return {
        "add": {"chain": _obj(opts, name=name, type=kind, hook=hook, prio=prio, policy="accept")}
    }


MAP_TYPES: dict[str, list[str] | str] = {
    "vs4": ["ipv4_addr", "inet_proto", "inet_service"],
    "vs4_any": ["ipv4_addr", "inet_proto"],
    "vs6": ["ipv6_addr", "inet_proto", "inet_service"],
    "vs6_any": ["ipv6_addr", "inet_proto"],
    "vs_mark": ["nf_proto", "mark"],
}
EMPTY_MAPS = {name.replace("vs", "empty", 1): types for name, types in MAP_TYPES.items()}


def _lookups(prefix: str) -> list[list[Json]]:
    """The vmap lookups of the dispatch chains, most specific first."""

    def vmap(keys: list[Json], name: str) -> list[Json]:
        return [{"vmap": {"key": {"concat": keys}, "data": f"@{prefix}{name}"}}]

    out = []
    for fam in (4, 6):
        daddr, proto = _payload(L3[fam], "daddr"), _meta("l4proto")
        out.append(vmap([daddr, proto, _payload("th", "dport")], f"{fam}"))
        out.append(vmap([daddr, proto], f"{fam}_any"))
    out.append(vmap([_meta("nfproto"), _meta("mark")], "_mark"))
    return out


def service_rules(service: Service, dests: Sequence[Dest] | None, opts: Options) -> list[Json]:
    """The ``add rule`` commands of one service chain (none while unreported)."""
    if dests is None:
        return []
    exprs = dnat_rule(service, dests, opts)
    if exprs is None:
        if opts.empty_reject:
            return []  # the guard chain rejects new connections before NAT
        return [_rule(opts, service.chain, [{"drop": None}], _comment(service))]
    return [_rule(opts, service.chain, exprs, _comment(service))]


def _snat_rules(services: Sequence[Service], opts: Options) -> list[Json]:
    if not opts.masquerade and not opts.snat_to:
        return []
    status = _match({"ct": {"key": "status"}}, "dnat", op="in")
    out: list[Json] = []
    for fam in (4, 6):
        addr = [a for a in opts.snat_to if a.version == fam]
        if opts.snat_to and not addr:
            continue  # snat_to names no address of this family: leave it alone
        action: Json = (
            {"snat": {"family": L3[fam], "addr": str(addr[0])}} if addr else {"masquerade": None}
        )
        if any(s.family == fam and s.fwmark is None for s in services):
            key = {"ct": {"key": f"{L3[fam]} daddr", "dir": "original"}}
            out.append(_rule(opts, "snat_post", [status, _match(key, f"@snat{fam}"), action]))
        if any(s.family == fam and s.fwmark is not None for s in services):
            out.append(
                _rule(
                    opts,
                    "snat_post",
                    [
                        status,
                        _match(_meta("nfproto"), NFPROTO[fam]),
                        _match(_meta("mark"), "@snat_mark"),
                        action,
                    ],
                )
            )
    return out


def _vip_elements(vips: Iterable[IPAddress], fam: int) -> list[str]:
    return sorted(str(a) for a in vips if a.version == fam)


def full(services: Sequence[Service], state: State, opts: Options) -> list[Json]:
    """One transaction that replaces halo's table, whatever is there now: ``add table``
    (a no-op when it exists) then ``delete table`` then everything anew. The kernel applies
    the batch atomically, so packets see the old table or the new one, never a mix."""
    table = {"family": "inet", "name": opts.table}
    cmds: list[Json] = [{"add": {"table": table}}, {"delete": {"table": table}}]
    cmds.append({"add": {"table": table}})
    # chains first: the maps' verdicts jump to them
    cmds.append(_base_chain(opts, "dnat_pre", "nat", "prerouting", PRIO_DSTNAT))
    cmds.append(_base_chain(opts, "dnat_out", "nat", "output", PRIO_DSTNAT))
    if opts.empty_reject:
        cmds.append(_base_chain(opts, "guard_pre", "filter", "prerouting", PRIO_GUARD))
        cmds.append(_base_chain(opts, "guard_out", "filter", "output", PRIO_GUARD))
        cmds.append({"add": {"chain": _obj(opts, name="reject_empty")}})
    if opts.masquerade or opts.snat_to:
        cmds.append(_base_chain(opts, "snat_post", "nat", "postrouting", PRIO_SRCNAT))
    if opts.vip_firewall:
        cmds.append(_base_chain(opts, "vips_in", "filter", "input", PRIO_VIPS))
    for s in services:
        cmds.append({"add": {"chain": _obj(opts, name=s.chain)}})

    maps: dict[str, list[Any]] = {name: [] for name in MAP_TYPES}
    empties: dict[str, list[Any]] = {name: [] for name in EMPTY_MAPS}
    for s in services:
        vs_map, empty_map = s.dispatch
        maps[vs_map].append([s.key(), _jump(s.chain)])
        if opts.empty_reject and is_empty(s, state.members.get(s.index)):
            empties[empty_map].append([s.key(), _jump("reject_empty")])
    for name, types in MAP_TYPES.items():
        body = _obj(opts, name=name, type=types, map="verdict")
        if maps[name]:
            body["elem"] = maps[name]
        cmds.append({"add": {"map": body}})
    if opts.empty_reject:
        for name, types in EMPTY_MAPS.items():
            body = _obj(opts, name=name, type=types, map="verdict")
            if empties[name]:
                body["elem"] = empties[name]
            cmds.append({"add": {"map": body}})
    if opts.masquerade or opts.snat_to:
        for fam in (4, 6):
            body = _obj(opts, name=f"snat{fam}", type=f"ipv{fam}_addr")
            elems = sorted({str(s.address) for s in services if s.family == fam and s.address})
            if elems:
                body["elem"] = elems
            cmds.append({"add": {"set": body}})
        body = _obj(opts, name="snat_mark", type="mark")
        marks = sorted({s.fwmark for s in services if s.fwmark is not None})
        if marks:
            body["elem"] = marks
        cmds.append({"add": {"set": body}})
    if opts.vip_firewall:
        for fam in (4, 6):
            body = _obj(opts, name=f"vips{fam}", type=f"ipv{fam}_addr")
            elems = _vip_elements(state.vips, fam)
            if elems:
                body["elem"] = elems
            cmds.append({"add": {"set": body}})

    for exprs in _lookups("vs"):
        cmds.append(_rule(opts, "dnat_pre", exprs))
        cmds.append(_rule(opts, "dnat_out", exprs))
    if opts.empty_reject:
        new = _match({"ct": {"key": "state"}}, "new", op="in")
        for exprs in _lookups("empty"):
            cmds.append(_rule(opts, "guard_pre", [new, *exprs]))
            cmds.append(_rule(opts, "guard_out", [new, *exprs]))
        cmds.append(
            _rule(
                opts,
                "reject_empty",
                [_match(_meta("l4proto"), "tcp"), {"reject": {"type": "tcp reset"}}],
            )
        )
        cmds.append(
            _rule(opts, "reject_empty", [{"reject": {"type": "icmpx", "expr": "port-unreachable"}}])
        )
    cmds.extend(_snat_rules(services, opts))
    if opts.vip_firewall:
        # Neighbour discovery must keep working for the VIPs (the master answers for them).
        nd = {"set": ["nd-neighbor-solicit", "nd-neighbor-advert"]}
        cmds.append(
            _rule(opts, "vips_in", [_match(_payload("icmpv6", "type"), nd), {"accept": None}])
        )
        for fam in (4, 6):
            cmds.append(
                _rule(
                    opts,
                    "vips_in",
                    [_match(_payload(L3[fam], "daddr"), f"@vips{fam}"), {"drop": None}],
                )
            )
    for s in services:
        cmds.extend(service_rules(s, state.members.get(s.index), opts))
    return cmds


def service_update(
    service: Service,
    dests: Sequence[Dest] | None,
    opts: Options,
) -> list[Json]:
    """Commands that bring one service from whatever it was to ``dests``: flush its chain
    and add its rule; add or remove its ``empty*`` element. An element is removed with
    ``add`` then ``delete`` so the command works whether or not it was there."""
    cmds: list[Json] = [{"flush": {"chain": _obj(opts, name=service.chain)}}]
    cmds.extend(service_rules(service, dests, opts))
    if opts.empty_reject:
        _, empty_map = service.dispatch
        elem = _obj(opts, name=empty_map, elem=[[service.key(), _jump("reject_empty")]])
        cmds.append({"add": {"element": elem}})
        if not is_empty(service, dests):
            key_only = _obj(opts, name=empty_map, elem=[service.key()])
            cmds.append({"delete": {"element": key_only}})
    return cmds


def vips_update(vips: Iterable[IPAddress], opts: Options) -> list[Json]:
    """Replace the VIP firewall's sets."""
    cmds: list[Json] = []
    for fam in (4, 6):
        cmds.append({"flush": {"set": _obj(opts, name=f"vips{fam}")}})
        elems = _vip_elements(vips, fam)
        if elems:
            cmds.append({"add": {"element": _obj(opts, name=f"vips{fam}", elem=elems)}})
    return cmds


def delete_table(opts: Options) -> list[Json]:
    """Remove halo's table, whether or not it exists."""
    table = {"family": "inet", "name": opts.table}
    return [{"add": {"table": table}}, {"delete": {"table": table}}]


def document(cmds: list[Json]) -> dict[str, list[Json]]:
    return {"nftables": cmds}


# ------------------------------------------------------------------------------ read back


@dataclass(frozen=True)
class Shape:
    """What drift detection compares: chains with their rule counts (and the comments of
    their rules), and the element count of every named set and map."""

    chains: Mapping[str, tuple[str, ...]]
    sets: Mapping[str, int]


def expected_shape(cmds: Sequence[Json]) -> Shape:
    """The shape a full transaction produces."""
    chains: dict[str, list[str]] = {}
    sets: dict[str, int] = {}
    for cmd in cmds:
        body = cmd.get("add")
        if not body:
            continue
        if "chain" in body:
            chains.setdefault(body["chain"]["name"], [])
        elif "rule" in body:
            chains.setdefault(body["rule"]["chain"], []).append(body["rule"].get("comment", ""))
        elif "map" in body or "set" in body:
            obj = body.get("map") or body["set"]
            sets[obj["name"]] = len(obj.get("elem", ()))
        elif "element" in body:
            sets[body["element"]["name"]] = sets.get(body["element"]["name"], 0) + len(
                body["element"]["elem"]
            )
    return Shape({k: tuple(v) for k, v in chains.items()}, sets)


def listed_shape(listing: Mapping[str, Any], table: str) -> Shape | None:
    """The shape of ``nft -j list table inet TABLE`` output; None if the table is absent."""
    chains: dict[str, list[str]] = {}
    sets: dict[str, int] = {}
    found = False
    for item in listing.get("nftables", []):
        kind, body = next(iter(item.items()))
        if not isinstance(body, dict) or body.get("family", "inet") != "inet":
            continue
        if kind == "table" and body.get("name") == table:
            found = True
        if body.get("table") != table:
            continue
        if kind == "chain":
            chains.setdefault(body["name"], [])
        elif kind == "rule":
            chains.setdefault(body["chain"], []).append(body.get("comment", ""))
        elif kind in ("set", "map"):
            sets[body["name"]] = len(body.get("elem", ()))
    if not found:
        return None
    return Shape({k: tuple(v) for k, v in chains.items()}, sets)


def describe_drift(want: Shape, have: Shape | None) -> str | None:
    """A short description of how the kernel's table differs from ours (None: it does not)."""
    if have is None:
        return "the table is gone"
    problems: list[str] = []
    for name in sorted(set(want.chains) | set(have.chains)):
        w, h = want.chains.get(name), have.chains.get(name)
        if w is None:
            problems.append(f"unexpected chain {name}")
        elif h is None:
            problems.append(f"chain {name} is gone")
        elif w != h:
            problems.append(f"chain {name} has {len(h)} rules instead of {len(w)}")
    for name in sorted(set(want.sets) | set(have.sets)):
        w2, h2 = want.sets.get(name), have.sets.get(name)
        if w2 is None:
            problems.append(f"unexpected set {name}")
        elif h2 is None:
            problems.append(f"set {name} is gone")
        elif w2 != h2:
            problems.append(f"set {name} has {h2} elements instead of {w2}")
    return "; ".join(problems[:5]) or None


def seed_of(label: str) -> int:
    """A jhash seed stable across restarts, so a rebuilt table keeps clients where they were."""
    return zlib.crc32(label.encode())


def parse_address(text: str) -> IPAddress:
    return ip_address(text)
