"""pytest fixtures for tests that need a network-namespace lab, and halo running in it.

Installed with halo-tool-lab and loaded by pytest through the ``pytest11`` entry point, so
the tests of any distribution in the same environment can ask for ``lab_root``, ``lab``,
``start_halo`` and ``public_dir`` (for plugins that run scripts) without a conftest.py. The
``lab`` and ``keepalived`` markers are registered here too, and the external-tool probes of
:mod:`halo_tool_lab.tools`: a test marked ``needs_tools("nft")`` skips with a one-line
reason where nft is missing, and a test that runs a traced tool it did not declare fails.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from halo_tool_lab.halo import Halo
from halo_tool_lab.netns import Host, Lab, lab_unavailable_reason, wait_until
from halo_tool_lab.testing import HttpServer
from halo_tool_lab.tools import (
    ToolTrace,
    declared_tools,
    selected_for_probes,
    tool_missing_reason,
)

LabFactory = Callable[..., Lab]
HaloFactory = Callable[..., Halo]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tool-tests-only",
        action="store_true",
        help="run only the tests that declare an external tool (the hidden-tools guard)",
    )


_trace: ToolTrace | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _trace
    config.addinivalue_line("markers", "lab: needs root and network namespaces (skipped otherwise)")
    config.addinivalue_line("markers", "keepalived: needs the keepalived binary")
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
        undeclared.add(f"{nodeid} ran {tool}")
    if undeclared:
        pytest.fail(
            f"{'; '.join(sorted(undeclared))} without declaring it: add needs_tools(...) "
            "(halo_tool_lab.tools) so it skips where the tool is missing",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def lab_root() -> None:
    """Skip the test unless network-namespace labs can be built (root, iproute2, netns)."""
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(f"lab unavailable: {reason}")


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


@pytest.fixture
def start_halo(lab_root: None, tmp_path: Path) -> Iterator[HaloFactory]:
    """Factory: ``start_halo(host, config, *, name=None, state=None, timeout=10.0,
    log_level=None)`` starts halo in a lab host (see :class:`Halo`); with
    ``state={"VI_1": "MASTER"}`` it waits until every instance named is in its state, and
    fails the test with the log if that takes longer than *timeout*. Daemons still running
    after the test are stopped."""
    started: list[Halo] = []

    def start(
        host: Host,
        config: str,
        *,
        name: str | None = None,
        state: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        log_level: str | None = None,
    ) -> Halo:
        daemon = Halo(host, config, tmp_path, name=name, log_level=log_level)
        started.append(daemon)
        wanted = dict(state or {})

        def reached() -> bool:
            return all(daemon.states(i)[-1:] == [s] for i, s in wanted.items())

        if wanted and not wait_until(reached, timeout):
            pytest.fail(
                f"{daemon.name}: not in {wanted} after {timeout} s:\n{daemon.log}", pytrace=False
            )
        return daemon

    yield start
    for daemon in reversed(started):
        if daemon.running:
            daemon.stop()


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A root-owned 0755 directory under /tmp that an unprivileged script user can enter
    (pytest's tmp_path is 0700), with a world-writable ``out`` directory for what scripts
    write back; removed after the test. Scripts placed here pass script security checks."""
    made = Path(tempfile.mkdtemp(prefix="halo-test-", dir="/tmp"))
    made.chmod(0o755)
    (made / "out").mkdir()
    (made / "out").chmod(0o777)
    yield made
    shutil.rmtree(made, ignore_errors=True)


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    """A small aiohttp server on loopback in a thread of its own (:class:`HttpServer`):
    /health answers 200, /broken 503, and POSTs to /hook are recorded in ``posts``."""
    with HttpServer() as server:
        yield server
