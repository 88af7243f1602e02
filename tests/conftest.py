"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from halo_core.lab.netns import Lab, lab_unavailable_reason
from tool_probes import (
    NOT_YET_DECLARED,
    ToolTrace,
    declared_tools,
    selected_for_probes,
    tool_missing_reason,
)

# ---------------------------------------------------------------------------------------------
# external tools (tool_probes.py): skip where a declared tool is missing, fail a test that
# runs a tool it did not declare


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tool-tests-only",
        action="store_true",
        help="run only the tests that declare an external tool (the hidden-tools guard)",
    )


_trace: ToolTrace | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _trace
    config.addinivalue_line(
        "markers", "needs_tools(*tools): runs these tools; skipped where one is missing"
    )
    config.addinivalue_line(
        "markers", "uses_tools(*tools): runs these tools when installed, passes without"
    )
    if _trace is None:
        _trace = ToolTrace()


def pytest_unconfigure(config: pytest.Config) -> None:
    global _trace
    if _trace is not None:
        _trace.close()
        _trace = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--tool-tests-only"):
        keep = [i for i in items if selected_for_probes(i)]
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep
    # a skip mark, not a skip in a hook: pytest then applies it before any fixture is set up
    # and reports it at the test's own line
    for item in items:
        for mark in item.iter_markers("needs_tools"):
            reasons = [r for r in map(tool_missing_reason, mark.args) if r is not None]
            if reasons:
                item.add_marker(pytest.mark.skip(reason=reasons[0]))
                break


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    # after the fixtures' teardown, so the processes a fixture started have run their tools
    if _trace is None:
        return
    runs = _trace.new_runs()
    by_id = {i.nodeid: i for i in item.session.items} if runs else {}
    undeclared = set()
    for tool, nodeid in runs:
        runner = by_id.get(nodeid)
        if runner is None or tool in declared_tools(runner):
            continue
        if nodeid.split("::")[0] in NOT_YET_DECLARED:
            continue
        undeclared.add(f"{nodeid} ran {tool}")
    if undeclared:
        pytest.fail(
            f"{'; '.join(sorted(undeclared))} without declaring it: add needs_tools(...) "
            "(tests/tool_probes.py) so it skips where the tool is missing",
            pytrace=False,
        )


# ---------------------------------------------------------------------------------------------
# network-namespace lab (halo_core.lab): needs root and working `ip netns`


@pytest.fixture(scope="session")
def lab_root() -> None:
    """Skip the test unless network-namespace labs can be built (root, iproute2, netns)."""
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(f"lab unavailable: {reason}")


LabFactory = Callable[..., Lab]


@pytest.fixture
def lab(lab_root: None) -> Iterator[LabFactory]:
    """Factory: ``lab(hosts=2, **kwargs)`` builds a :class:`Lab` that is always closed."""
    labs: list[Lab] = []

    def make(hosts: int | Sequence[str] = 2, **kwargs: Any) -> Lab:
        new = Lab(hosts, **kwargs)
        labs.append(new)
        return new

    yield make
    errors: list[Exception] = []
    for made in reversed(labs):
        try:
            made.close()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
