"""Whether halo needs a worker (``halo_core.handover.needs_worker``): a plugin with daemon
hooks has work unless its ``halo_has_work`` says it has none; one that raises has work and
is reported (issue #16: a configuration that gives no plugin work runs as one process)."""

from __future__ import annotations

import logging
import types
from pathlib import Path
from typing import Any

import pytest
from test_plugins import INSTANCE, holder_plugin, make_plugin

from halo_core import handover, plugins
from halo_core.config import Config, load_text, load_with_plugins
from halo_core.daemon import Daemon
from halo_core.hookspecs import hookimpl

SEED = Path(__file__).resolve().parents[2] / "examples" / "master-backup" / "master.yaml"


def hooked(*, has_work: Any = None, hook: str = "halo_startup") -> types.SimpleNamespace:
    """A plugin with the daemon hook ``hook``, and ``halo_has_work`` unless ``has_work`` is
    None (a bool to answer, or an exception to raise)."""
    daemon_hooks: dict[str, Any] = {
        "halo_subscribe": lambda bus: None,
        "halo_startup": lambda daemon: None,
        "halo_daemon_state": lambda daemon, state, reason: None,
        "halo_reload": lambda daemon, old, new: None,
    }
    ns = types.SimpleNamespace(**{hook: hookimpl(daemon_hooks[hook])})
    if has_work is not None:

        def halo_has_work(config: Config) -> bool:
            if isinstance(has_work, BaseException):
                raise has_work
            return bool(has_work)

        ns.halo_has_work = hookimpl(halo_has_work)
    return ns


def judged(**modules: types.SimpleNamespace) -> tuple[bool, list[handover.HookFailure]]:
    p = plugins.load(entry_points=False, modules=[("holder", holder_plugin()), *modules.items()])
    assert p.errors == []
    return handover.needs_worker(load_text(INSTANCE, "t.yaml", p), p)


def test_a_plugin_without_daemon_hooks_needs_no_worker() -> None:
    assert judged() == (False, [])
    # asked nothing: it has no daemon hook to run
    idle = types.SimpleNamespace(halo_has_work=hookimpl(lambda: 1 / 0))
    assert judged(idle=idle) == (False, [])


def test_a_plugin_with_daemon_hooks_and_no_answer_has_work() -> None:
    """Third-party plugins written before the hook keep their worker."""
    assert judged(old=hooked()) == (True, [])


def test_each_plugin_answers_for_itself() -> None:
    assert judged(idle=hooked(has_work=False)) == (False, [])
    assert judged(busy=hooked(has_work=True, hook="halo_daemon_state")) == (True, [])
    # pluggy's call would merge the answers; one yes among no's is work
    idle = hooked(has_work=False, hook="halo_subscribe")
    assert judged(idle=idle, busy=hooked(has_work=True, hook="halo_reload")) == (True, [])
    assert judged(idle=idle, other=hooked(has_work=False)) == (False, [])


def test_a_plugin_whose_answer_raises_has_work_and_is_reported() -> None:
    broken = hooked(has_work=RuntimeError("no\nidea"))
    assert judged(broken=broken, idle=hooked(has_work=False)) == (
        True,
        [("broken", "halo_has_work", "RuntimeError: no idea")],
    )
    # also when something else needs the worker anyway: never silently absent
    modules = [("holder", holder_plugin()), ("ping", make_plugin()), ("b", broken)]
    p = plugins.load(entry_points=False, modules=modules)
    config = load_text(INSTANCE + "checks:\n  c: {type: ping, host: example}\n", "t", p)
    assert handover.needs_worker(config, p) == (
        True,
        [("b", "halo_has_work", "RuntimeError: no idea")],
    )


def test_the_vrrp_process_logs_and_counts_the_failure(caplog: pytest.LogCaptureFixture) -> None:
    p = plugins.load(entry_points=False, modules=[("holder", holder_plugin())])
    daemon = Daemon(load_text(INSTANCE, "t.yaml", p), p, role="vrrp")
    with caplog.at_level(logging.ERROR, logger="halo"):
        daemon.has_work_failed([("broken", "halo_has_work", "RuntimeError: no idea")])
    assert caplog.messages == ["plugin broken: halo_has_work failed: RuntimeError: no idea"]
    assert daemon.hook_failures == {"broken": 1}


GLOBAL_OFF = "  status_api: {enabled: false}\n"
VIRTUAL_SERVER = """
virtual_servers:
  - address: 192.0.2.80
    port: 80
    real_servers:
      - {address: 192.0.2.90, port: 80}
"""


@pytest.mark.parametrize(
    ("in_global", "at_end", "env", "working"),
    [
        ("", "", {}, []),  # the status API off, outside systemd: one process
        ("  status_api: {enabled: true}\n", "", {}, ["tool-status"]),
        ("  static_routes: ['192.0.2.0/24 dev eth0']\n", "", {}, ["backend-routes"]),
        ("", "    virtual_rules: ['from 192.0.2.0/24 table 100']\n", {}, ["backend-routes"]),
        ("", VIRTUAL_SERVER, {}, ["engine-pools"]),
        ("", "", {"NOTIFY_SOCKET": "/run/systemd/notify"}, ["tool-systemd"]),
        ("", "", {"WATCHDOG_USEC": "10000000"}, ["tool-systemd"]),
    ],
)
def test_first_party_plugins_say_when_they_have_work(
    in_global: str,
    at_end: str,
    env: dict[str, str],
    working: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The seed's configuration, as the validating child judges it with every installed
    plugin: the status API, systemd, routes and pools have work only when it gives them
    some (the status API with ``enabled: false`` here: it is on by default)."""
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    start = in_global if "status_api" in in_global else GLOBAL_OFF + in_global
    seed = SEED.read_text().replace("  router_id: LVS_DEVEL\n", "  router_id: LVS_DEVEL\n" + start)
    path = tmp_path / "halo.yaml"
    path.write_text(seed + at_end)
    config, p = load_with_plugins(str(path))
    assert handover.plugins_with_work(config, p) == (working, [])
    found = handover.judge(str(path))
    assert found.problems == [] and found.hook_failures == []
    # the status API alone waits for a first connection (halo_listen_on)
    assert found.worker is (bool(working) and working != ["tool-status"])
    api = {"status API": "unix:/run/halo/halo.sock"} if working == ["tool-status"] else {}
    assert found.listeners == api


def test_the_seed_as_written_waits_for_a_first_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The status API is on by default: its socket is all the worker would serve, so the
    VRRP process holds it and starts no worker until a client connects."""
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC"):
        monkeypatch.delenv(name, raising=False)
    config, p = load_with_plugins(str(SEED))
    assert handover.plugins_with_work(config, p) == (["tool-status"], [])
    found = handover.judge(str(SEED))
    assert found.worker is False
    assert found.listeners == {"status API": "unix:/run/halo/halo.sock"}
    assert handover.needs_worker(config, p) == (True, [])  # a worker, on demand


def listening(answer: Any, *, has_work: bool = True) -> types.SimpleNamespace:
    """A plugin with work whose ``halo_listen_on`` gives ``answer`` (or raises it)."""
    ns = hooked(has_work=has_work)

    def halo_listen_on(config: Config) -> dict[str, str] | None:
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]

    ns.halo_listen_on = hookimpl(halo_listen_on)
    return ns


def planned(**modules: types.SimpleNamespace) -> tuple[Any, ...]:
    p = plugins.load(entry_points=False, modules=[("holder", holder_plugin()), *modules.items()])
    assert p.errors == []
    return handover.plan(load_text(INSTANCE, "t.yaml", p), p)


def test_plugins_that_only_listen_wait_for_a_first_connection() -> None:
    one = listening({"a API": "unix:/run/a.sock"})
    two = listening({"b API": "127.0.0.1:9999"})
    assert planned(one=one) == (False, {"a API": "unix:/run/a.sock"}, [])
    assert planned(one=one, two=two) == (
        False,
        {"a API": "unix:/run/a.sock", "b API": "127.0.0.1:9999"},
        [],
    )
    # not asked without work; with other work (or no answer) the worker starts at once
    assert planned(one=listening({"a": "unix:/x"}, has_work=False)) == (False, {}, [])
    assert planned(one=one, busy=hooked(has_work=True)) == (True, {}, [])
    assert planned(one=listening(None)) == (True, {}, [])
    assert planned(one=listening({})) == (True, {}, [])


def test_a_listen_on_that_raises_starts_the_worker_and_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker, listeners, failures = planned(broken=listening(ValueError("bad")))
    assert (worker, listeners) == (True, {})
    assert failures == [("broken", "halo_listen_on", "ValueError: bad")]
    p = plugins.load(entry_points=False, modules=[("holder", holder_plugin())])
    daemon = Daemon(load_text(INSTANCE, "t.yaml", p), p, role="vrrp")
    with caplog.at_level(logging.ERROR, logger="halo"):
        daemon.has_work_failed(failures)
    assert caplog.messages == ["plugin broken: halo_listen_on failed: ValueError: bad"]
