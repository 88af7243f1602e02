"""The routes backend at run time: which instances have routes or rules, which of them are
MASTER, and the bus subscription that follows their state. One per process (the daemon's
hooks are called once per start)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from halo_backend_routes.plugin import RoutesInstanceOptions
from halo_core.events import Event, VrrpStateChanged

if TYPE_CHECKING:
    from halo_backend_routes.runtime import Netlink
    from halo_core.bus import EventBus
    from halo_core.config.model import HaloConfig

log = logging.getLogger("halo.routes")


class Routes:
    def __init__(self) -> None:
        self.wanted: dict[str, RoutesInstanceOptions] = {}  # instance -> its routes and rules
        self.applied: dict[str, RoutesInstanceOptions] = {}  # what is in the kernel now
        self.masters: set[str] = set()
        self.netlink: Netlink | None = None

    def _kernel(self) -> Netlink:
        if self.netlink is None:
            from halo_backend_routes.runtime import Netlink

            self.netlink = Netlink()
        return self.netlink

    async def configure(self, model: HaloConfig) -> list[str]:
        """Take a (re)loaded configuration: a MASTER whose routes or rules changed gets the
        new ones (the old ones removed first); the others are untouched."""
        wanted = {}
        for name, inst in model.vrrp_instances.items():
            opts = inst.extensions[RoutesInstanceOptions]
            if opts.virtual_routes or opts.virtual_rules:
                wanted[name] = opts
        done = []
        for name in sorted(set(self.applied) | set(wanted)):
            if self.applied.get(name) != wanted.get(name) and name in self.masters:
                await self._withdraw(name)
                if name in wanted:
                    await self._apply(name, wanted[name])
                done.append(f"{name}: virtual routes and rules changed")
        self.wanted = wanted
        return done

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

    async def _apply(self, name: str, opts: RoutesInstanceOptions) -> None:
        kernel = self._kernel()
        for route in opts.virtual_routes:
            await kernel.add_route(name, route)
        for rule in opts.virtual_rules:
            await kernel.add_rule(name, rule)
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
        kernel = self._kernel()
        for rule in opts.virtual_rules:
            await kernel.delete_rule(name, rule)
        for route in opts.virtual_routes:
            await kernel.delete_route(name, route)
        log.info("%s: virtual routes and rules removed", name)

    async def withdraw_all(self) -> None:
        for name in list(self.applied):
            await self._withdraw(name)
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
