"""What an ``nft list ruleset`` does to the virtual addresses, for comparing keepalived's
no-accept table (``table ip keepalived`` / ``table ip6 keepalived``) with halo's
(``table inet halo_no_accept``) by effect rather than by text.

The effect is a set of :class:`Drop`: packets of a family (``ip``/``ip6``) to (``daddr``,
on the input hook) or from (``saddr``, on the output hook) one address are dropped, except
the ICMPv6 types an earlier ``accept`` rule of the same chain lets through (neighbour
discovery).  Only the rules both daemons write are understood: a ruleset with anything
else (another hook, a jump, a policy drop, a match on something else) has no effect
computed here (:func:`effect` returns None) and is compared as text.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

Stmt = list["str | Block"]
Block = list[Stmt]

_TOKEN = re.compile(r"[{};\n]|[^\s{};]+")


@dataclass(frozen=True, order=True)
class Drop:
    hook: str  # "input" or "output"
    family: str  # "ip" or "ip6"
    field: str  # "daddr" or "saddr"
    address: str
    except_icmpv6: tuple[str, ...] = ()

    def __str__(self) -> str:
        way = "to" if self.field == "daddr" else "from"
        out = f"{self.hook}: {self.family} {way} {self.address} dropped"
        return out + (
            f" (but icmpv6 {', '.join(self.except_icmpv6)})" if self.except_icmpv6 else ""
        )


class Unknown(Exception):
    """A rule this module does not model."""


def _parse(tokens: list[str], i: int = 0) -> tuple[Block, int]:
    block: Block = []
    stmt: Stmt = []
    while i < len(tokens):
        t = tokens[i]
        i += 1
        if t == "{":
            sub, i = _parse(tokens, i)
            stmt.append(sub)
        elif t == "}":
            break
        elif t in (";", "\n"):
            if stmt:
                block.append(stmt)
            stmt = []
            continue
        else:
            stmt.append(t)
    if stmt:
        block.append(stmt)
    return block, i


def _words(block: Block) -> list[str]:
    return [w.rstrip(",") for stmt in block for w in stmt if isinstance(w, str) and w != ","]


def _values(target: str | Block, sets: dict[str, list[str]]) -> list[str]:
    if isinstance(target, list):
        return _words(target)
    if target.startswith("@"):
        if target[1:] not in sets:
            raise Unknown(f"no set {target}")
        return sets[target[1:]]
    return [target]


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise Unknown(f"not an address: {text}") from None


def _link_local_range(text: str) -> bool:
    return text in ("fe80::/10", "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff")


def _chain(
    hook: str, rules: list[Stmt], sets: dict[str, list[str]], chains: dict[str, Block]
) -> set[Drop]:
    field = {"input": "daddr", "output": "saddr"}[hook]
    drops: set[Drop] = set()
    exempt_all: set[str] = set()
    exempt: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        words: Stmt = [w for w in rule if w != "counter"]
        # "counter packets N bytes M" (nftables_counters): not an effect
        if words[:1] == ["packets"] or "packets" in words:
            k = words.index("packets")
            del words[k : k + 4]
        if words[-1:] == ["accept"] and words[-4:-2] == ["icmpv6", "type"]:
            types = set(_values(words[-2], sets))
            head = words[:-4]
            if not head:
                exempt_all |= types
                continue
            if len(head) == 3 and head[1] == field and isinstance(head[2], (str, list)):
                for a in _values(head[2], sets):
                    exempt.setdefault((str(head[0]), _address(a)), set()).update(types)
                continue
            raise Unknown(" ".join(map(str, rule)))
        if (
            len(words) == 4
            and words[0] in ("ip", "ip6")
            and words[1] == field
            and words[3] == "drop"
        ):
            family = str(words[0])
            for a in _values(words[2], sets):
                address = _address(a)
                kept = exempt_all | exempt.get((family, address), set())
                # ICMPv6 exceptions mean nothing for IPv4 packets
                except_types = tuple(sorted(kept)) if family == "ip6" else ()
                drops.add(Drop(hook, family, field, address, except_types))
            continue
        if (
            len(words) == 5
            and words[0] == "ip6"
            and words[1] == field
            and isinstance(words[2], str)
            and _link_local_range(words[2])
            and words[3] == "goto"
            and chains.get(str(words[4])) == []
        ):
            continue  # keepalived's link-local chain, empty without link-local addresses
        raise Unknown(" ".join(map(str, rule)))
    return drops


def effect(ruleset: str) -> frozenset[Drop] | None:
    """The drops ``ruleset`` (``nft list ruleset`` text) makes, or None when it holds
    anything else."""
    top, _ = _parse(_TOKEN.findall(ruleset))
    drops: set[Drop] = set()
    try:
        for stmt in top:
            if len(stmt) != 4 or stmt[0] != "table" or not isinstance(stmt[3], list):
                raise Unknown(" ".join(map(str, stmt)))
            sets: dict[str, list[str]] = {}
            chains: dict[str, Block] = {}
            for item in stmt[3]:
                kind = item[0]
                if kind in ("set", "chain") and len(item) == 3 and isinstance(item[2], list):
                    if kind == "chain":
                        chains[str(item[1])] = item[2]
                        continue
                    sets[str(item[1])] = [
                        v
                        for s in item[2]
                        if s[:2] == ["elements", "="] and isinstance(s[2], list)
                        for v in _words(s[2])
                    ]
                elif kind == "flags":
                    continue
                else:
                    raise Unknown(" ".join(map(str, item)))
            for body in chains.values():
                head = body[0] if body else []
                if head[:3] != ["type", "filter", "hook"]:
                    # a regular chain: understood only empty (keepalived's link-local one)
                    if body:
                        raise Unknown("regular chain with rules")
                    continue
                hook = str(head[3])
                if hook not in ("input", "output"):
                    raise Unknown(f"hook {hook}")
                rules = body[1:]
                if rules[:1] == [["policy", "accept"]]:
                    rules = rules[1:]
                elif rules[:1] and rules[0][:1] == ["policy"]:
                    raise Unknown(" ".join(map(str, rules[0])))
                drops |= _chain(hook, rules, sets, chains)
    except Unknown:
        return None
    return frozenset(drops)


def compare(keepalived: str, halo: str) -> str | None:
    """None when the two rulesets drop the same packets (or are the same text), else a line
    saying how they differ."""
    if keepalived == halo:
        return None
    ka, ha = effect(keepalived), effect(halo)
    if ka is None or ha is None:
        return f"keepalived {keepalived[:300]!r}, halo {halo[:300]!r}"
    if ka == ha:
        return None
    only_k = "; ".join(map(str, sorted(ka - ha))) or "-"
    only_h = "; ".join(map(str, sorted(ha - ka))) or "-"
    return f"only keepalived: {only_k}; only halo: {only_h}"
