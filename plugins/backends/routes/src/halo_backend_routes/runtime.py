"""Routes and rules into the kernel with pyroute2 (imported only when an instance has
some). A failure is logged against the instance and counted; it never reaches VRRP."""

from __future__ import annotations

import errno
import logging
import socket
from collections import Counter
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from halo_backend_routes.plugin import (
    RTPROT_KEEPALIVED,
    Nexthop,
    VirtualRoute,
    VirtualRule,
)

log = logging.getLogger("halo.routes")

SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254}
RTNH_F_ONLINK = 4


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


class Netlink:
    def __init__(self) -> None:
        self.ipr: AsyncIPRoute | None = None
        self.counters: Counter[str] = Counter()

    async def _socket(self) -> AsyncIPRoute:
        if self.ipr is None:
            self.ipr = AsyncIPRoute()
            await self.ipr.setup_endpoint()
        return self.ipr

    def close(self) -> None:
        if self.ipr is not None:
            self.ipr.close()
            self.ipr = None

    def _route_args(self, route: VirtualRoute) -> dict[str, Any]:
        args: dict[str, Any] = {
            "dst": str(route.to),
            "family": _family(route.to.version),
            "type": route.type,
            "table": route.table if route.table is not None else 254,
        }
        if route.via is not None:
            args["gateway"] = str(route.via)
        if route.dev is not None:
            args["oif"] = socket.if_nametoindex(route.dev)
        if route.nexthops:
            args["multipath"] = [self._nexthop_args(hop) for hop in route.nexthops]
        if route.src is not None:
            args["prefsrc"] = str(route.src)
        if route.metric is not None:
            args["priority"] = route.metric
        if route.scope is not None:
            args["scope"] = SCOPES[route.scope]
        # keepalived's routes are proto keepalived (18) unless the line says otherwise
        args["proto"] = route.proto if route.proto is not None else RTPROT_KEEPALIVED
        return args

    def _nexthop_args(self, hop: Nexthop) -> dict[str, Any]:
        # as keepalived's add_nexthop: rtnh_hops is the weight less one
        args: dict[str, Any] = {"hops": hop.weight - 1 if hop.weight is not None else 0}
        if hop.via is not None:
            args["gateway"] = str(hop.via)
        if hop.dev is not None:
            args["oif"] = socket.if_nametoindex(hop.dev)
        if hop.onlink:
            args["flags"] = RTNH_F_ONLINK
        return args

    def _rule_args(self, rule: VirtualRule) -> dict[str, Any]:
        args: dict[str, Any] = {"table": rule.table, "family": _family(rule.family)}
        if rule.src is not None:
            args |= {"src": str(rule.src.network_address), "src_len": rule.src.prefixlen}
        if rule.dst is not None:
            args |= {"dst": str(rule.dst.network_address), "dst_len": rule.dst.prefixlen}
        if rule.iif is not None:
            args["iifname"] = rule.iif
        if rule.oif is not None:
            args["oifname"] = rule.oif
        if rule.fwmark is not None:
            args["fwmark"] = rule.fwmark
        if rule.priority is not None:
            args["priority"] = rule.priority
        args["protocol"] = rule.protocol if rule.protocol is not None else RTPROT_KEEPALIVED
        return args

    async def add_route(self, instance: str, route: VirtualRoute) -> None:
        await self._do(instance, f"add route {route}", "route", "replace", self._route_args, route)

    async def delete_route(self, instance: str, route: VirtualRoute) -> None:
        await self._do(instance, f"remove route {route}", "route", "del", self._route_args, route)

    async def add_rule(self, instance: str, rule: VirtualRule) -> None:
        await self._do(instance, f"add rule {rule}", "rule", "add", self._rule_args, rule)

    async def delete_rule(self, instance: str, rule: VirtualRule) -> None:
        await self._do(instance, f"remove rule {rule}", "rule", "del", self._rule_args, rule)

    async def _do(
        self, instance: str, what: str, kind: str, op: str, build: Any, item: Any
    ) -> None:
        try:
            ipr = await self._socket()
            await getattr(ipr, kind)(op, **build(item))
        except NetlinkError as exc:
            # adding what is there, or removing what is gone, is the state we want
            if (op == "add" and exc.code == errno.EEXIST) or (
                op == "del" and exc.code in (errno.ESRCH, errno.ENOENT, errno.EADDRNOTAVAIL)
            ):
                return
            self.counters["failed"] += 1
            log.error("%s: cannot %s: %s", instance, what, exc.args[1] if exc.args else exc)
        except OSError as exc:  # an interface that does not exist (if_nametoindex)
            self.counters["failed"] += 1
            log.error("%s: cannot %s: %s", instance, what, exc.strerror or exc)
