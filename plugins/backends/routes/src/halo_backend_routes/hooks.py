"""The routes backend at run time: the static routes and rules (in place from start to
stop), which instances have routes or rules, which of them are MASTER, and the bus
subscription that follows their state. One per process (the daemon's hooks are called once
per start)."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from halo_backend_routes.plugin import (
    RoutesGlobalOptions,
    RoutesInstanceOptions,
    VirtualRule,
    keepalived_priorities,
)
from halo_core.events import Event, VrrpStateChanged

if TYPE_CHECKING:
    from halo_backend_routes.runtime import Netlink
    from halo_core.bus import EventBus
    from halo_core.config.model import HaloConfig

log = logging.getLogger("halo.routes")

STATIC = "static routes and rules"
"""What the static ones are logged as (no VRRP instance can have this name)."""


def wanted_sets(
    model: HaloConfig,
) -> tuple[RoutesInstanceOptions, dict[str, RoutesInstanceOptions]]:
    """The static routes and rules, and each instance's that has some, with keepalived's
    priority given to every rule written without one (static rules first, then the
    instances' in file order: keepalived numbers them as it reads the file)."""
    static = model.global_.extensions[RoutesGlobalOptions]
    sets = {
        STATIC: RoutesInstanceOptions(
            virtual_routes=static.static_routes, virtual_rules=static.static_rules
        )
    }
    for name, inst in model.vrrp_instances.items():
        opts = inst.extensions[RoutesInstanceOptions]
        if opts.virtual_routes or opts.virtual_rules:
            sets[name] = opts
    rules = [(name, i) for name, opts in sets.items() for i in range(len(opts.virtual_rules))]
    given = keepalived_priorities([sets[name].virtual_rules[i] for name, i in rules])
    numbered: dict[str, list[VirtualRule]] = {
        name: list(o.virtual_rules) for name, o in sets.items()
    }
    for at, priority in given.items():
        name, i = rules[at]
        numbered[name][i] = dataclasses.replace(numbered[name][i], priority=priority)
    out = {
        name: dataclasses.replace(opts, virtual_rules=numbered[name]) for name, opts in sets.items()
    }
    return out.pop(STATIC), out


class Routes:
    def __init__(self) -> None:
        self.wanted: dict[str, RoutesInstanceOptions] = {}  # instance -> its routes and rules
        self.applied: dict[str, RoutesInstanceOptions] = {}  # what is in the kernel now
        self.static = RoutesInstanceOptions()  # the static routes and rules in the kernel
        self.masters: set[str] = set()
        self.netlink: Netlink | None = None

    def _kernel(self) -> Netlink:
        if self.netlink is None:
            from halo_backend_routes.runtime import Netlink

            self.netlink = Netlink()
        return self.netlink

    async def configure(self, model: HaloConfig) -> list[str]:
        """Take a (re)loaded configuration: a MASTER whose routes or rules changed gets the
        new ones (the old ones removed first); the others are untouched. The static routes
        and rules no longer configured are removed and the new ones added (keepalived's
        reload), those unchanged are not touched."""
        static, wanted = wanted_sets(model)
        done = await self._static(static)
        for name in sorted(set(self.applied) | set(wanted)):
            if self.applied.get(name) != wanted.get(name) and name in self.masters:
                await self._withdraw(name)
                if name in wanted:
                    await self._apply(name, wanted[name])
                done.append(f"{name}: virtual routes and rules changed")
        self.wanted = wanted
        return done

    async def _static(self, new: RoutesInstanceOptions) -> list[str]:
        old = self.static
        if new == old:
            return []
        gone = RoutesInstanceOptions(
            virtual_routes=[r for r in old.virtual_routes if r not in new.virtual_routes],
            virtual_rules=[r for r in old.virtual_rules if r not in new.virtual_rules],
        )
        added = RoutesInstanceOptions(
            virtual_routes=[r for r in new.virtual_routes if r not in old.virtual_routes],
            virtual_rules=[r for r in new.virtual_rules if r not in old.virtual_rules],
        )
        kernel = self._kernel()
        await self._remove(kernel, STATIC, gone)
        await self._add(kernel, STATIC, added)
        self.static = new
        log.info(
            "%s: %d routes and %d rules added, %d routes and %d rules removed",
            STATIC,
            len(added.virtual_routes),
            len(added.virtual_rules),
            len(gone.virtual_routes),
            len(gone.virtual_rules),
        )
        return [f"{STATIC} changed"] if old != RoutesInstanceOptions() else []

    async def on_event(self, event: Event) -> None:
        if not isinstance(event, VrrpStateChanged):
            return
        name = event.instance
        if event.new == "MASTER":
            self.masters.add(name)
            opts = self.wanted.get(name)
            if opts is not None:
                await self._apply(name, opts)
        else:
            self.masters.discard(name)
            await self._withdraw(name)

    @staticmethod
    async def _add(kernel: Netlink, name: str, opts: RoutesInstanceOptions) -> None:
        for route in opts.virtual_routes:
            await kernel.add_route(name, route)
        for rule in opts.virtual_rules:
            await kernel.add_rule(name, rule)

    @staticmethod
    async def _remove(kernel: Netlink, name: str, opts: RoutesInstanceOptions) -> None:
        for rule in opts.virtual_rules:
            await kernel.delete_rule(name, rule)
        for route in opts.virtual_routes:
            await kernel.delete_route(name, route)

    async def _apply(self, name: str, opts: RoutesInstanceOptions) -> None:
        await self._add(self._kernel(), name, opts)
        self.applied[name] = opts
        log.info(
            "%s: %d virtual routes and %d rules added",
            name,
            len(opts.virtual_routes),
            len(opts.virtual_rules),
        )

    async def _withdraw(self, name: str) -> None:
        opts = self.applied.pop(name, None)
        if opts is None:
            return
        await self._remove(self._kernel(), name, opts)
        log.info("%s: virtual routes and rules removed", name)

    async def withdraw_all(self) -> None:
        for name in list(self.applied):
            await self._withdraw(name)
        await self._static(RoutesInstanceOptions())  # keepalived removes them on stop
        if self.netlink is not None:
            self.netlink.close()
            self.netlink = None


_routes = Routes()


def subscribe(bus: EventBus) -> None:
    bus.subscribe(_routes.on_event, kinds=["vrrp_state"], name="routes")


async def configure(model: HaloConfig) -> list[str]:
    return await _routes.configure(model)


async def withdraw_all() -> None:
    await _routes.withdraw_all()
