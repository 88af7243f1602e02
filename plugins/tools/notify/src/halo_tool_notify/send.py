"""``halo notify --test NOTIFIER``: one TEST event through one configured notifier.

The notifier is built exactly as the daemon builds it (the plugin's factory, the configured
options), gets one VRRP state change through ``notify`` and is then closed, which flushes
what it only queued (e-mail).
"""

from __future__ import annotations

import asyncio
import time

from halo_core.bus import EventBus
from halo_core.config import Config
from halo_core.events import VrrpStateChanged
from halo_core.plugin_api import Notifier, PluginContext, UnknownName, event_filter, pick
from halo_core.plugins import Plugins
from halo_core.scheduler import Scheduler

# What the daemon allows a notifier's close() (Daemon.stop).
CLOSE_TIMEOUT = 10.0

# Status keys (the first-party notifiers' convention) that count a delivery.
DELIVERED_KEYS = ("sent", "succeeded", "fifo_written")


def sample_event(config: Config, instance: str | None, state: str) -> VrrpStateChanged:
    """A realistic state change of ``instance`` (default: the first configured one)."""
    instances = config.model.vrrp_instances
    if instance is not None:
        instance = pick("VRRP instance", instance, list(instances))
    elif instances:
        instance = next(iter(instances))
    inst = instances.get(instance) if instance else None
    return VrrpStateChanged(
        instance=instance or "TEST",
        old="MASTER" if state != "MASTER" else "BACKUP",
        new=state,
        priority=inst.priority if inst else 100,
        reason="TEST: sent by halo notify --test, not a real state change",
        interface=inst.interface if inst else None,
        vrid=inst.virtual_router_id if inst else None,
    )


def send_test_event(
    config: Config, plugins: Plugins, name: str, *, instance: str | None, state: str
) -> int:
    """Send one test event through notifier ``name``, wait for its delivery and print the
    outcome: 0 delivered, 1 failed or nothing sent, 2 unknown name."""
    model = config.model
    try:
        pick("notifier", name, list(model.notifiers))
        event = sample_event(config, instance, state)
    except UnknownName as exc:
        print(f"halo notify: {exc}")
        return 2
    configured = model.notifiers[name]
    what = f"notifier {name} ({configured.type})"
    print(
        f"halo notify: sending a TEST event through {what}: VRRP instance {event.instance}"
        f" {event.old} -> {event.new} (priority {event.priority})"
    )
    if not event_filter(configured.config)(event):
        print(f"  note: the filters of {name} (events, instances, states) would drop this event;")
        print("  it is sent anyway, but a real one like it would not be")

    async def once() -> tuple[dict[str, object], float]:
        scheduler = Scheduler()
        ctx = PluginContext(name, model, EventBus(), scheduler.clock, scheduler)
        notifier = plugins.type("notifier", configured.type).load_factory()(configured.config, ctx)
        if not isinstance(notifier, Notifier):
            raise TypeError(f"the factory built a {type(notifier).__name__}, not a Notifier")
        start = time.perf_counter()
        try:
            async with asyncio.timeout(float(notifier.timeout)):
                await notifier.notify(event)
        finally:
            # close() flushes what notify() only queued (e-mail): the delivery happens here.
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await notifier.close()
        return dict(notifier.status()), time.perf_counter() - start

    try:
        status, took = asyncio.run(once())
    except TimeoutError:
        print(f"{what}: FAILED: timed out")
        return 1
    except Exception as exc:
        print(f"{what}: FAILED: {type(exc).__name__}: {exc}")
        return 1
    error = status.get("last_error")
    if error:
        print(f"{what}: FAILED after {took:.3f}s: {error}")
        return 1
    if any(status.get(k) for k in DELIVERED_KEYS):
        print(f"{what}: delivered in {took:.3f}s")
        return 0
    print(f"{what}: nothing sent: it does nothing for a {event.new} event of {event.instance}")
    return 1
