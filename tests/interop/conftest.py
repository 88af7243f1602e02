"""Fixtures for the VRRP interop tests: a lab, a capture on its switch, and nodes."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from vrrp_peers import Interop, InteropFactory, Proto, Wire

from halo_tool_lab.netns import Lab


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_FAILED] = report.failed


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def interop(
    lab: Callable[..., Lab], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[InteropFactory]:
    """Factory: ``interop(proto, hosts=2)`` -> :class:`Interop` (closed with the lab, even on
    failure; a failed test prints every node's log tail)."""
    made: list[Interop] = []

    def make(proto: Proto, hosts: int = 2) -> Interop:
        lb = lab(hosts, ipv6=proto.ipv6)
        cap = lb.capture(tmp_path / f"vrrp-{len(made)}.pcap", filter="vrrp")
        scenario = Interop(lb, proto, tmp_path, Wire(cap))
        made.append(scenario)
        return scenario

    yield make
    if request.node.stash.get(_FAILED, False):
        for scenario in made:
            print(scenario.logs(80))
    # The lab would stop them too, but gracefully: keepalived takes a second to exit.
    for scenario in made:
        for node in scenario.nodes:
            if node.running:
                node.kill9()
