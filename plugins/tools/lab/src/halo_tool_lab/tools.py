"""The external tools the tests run, one probe each, and a trace of who runs them.

A test declares the tools it cannot do without with ``@needs_tools("nft")`` (or a module's
``pytestmark``); the lab's pytest plugin (:mod:`halo_tool_lab.pytest_plugin`) skips it
with a one-line reason when one is missing. A test that runs a tool only when it is there
(an extra cross-check) declares it with ``@uses_tools(...)`` and never skips for it.

:class:`ToolTrace` puts a shim for every watched tool in front of ``PATH`` for the session:
each run is logged with ``PYTEST_CURRENT_TEST`` (inherited by every child, so a tool run by a
halo daemon the test started counts too), and the pytest plugin fails a test that ran a tool it
did not declare. That keeps the declarations complete where the tools are installed (CI),
which is what makes a machine without them skip instead of fail.

``ip`` (iproute2) is not traced: it is the lab's own base, probed by the ``lab_root``
fixture (``lab_unavailable_reason``) for every test that builds a lab.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from halo_tool_lab.keepalived import keepalived_version

# tool -> the Debian package providing it (scripts/test installs them as root on Debian)
TOOLS: dict[str, str] = {
    "ip": "iproute2",
    "nft": "nftables",
    "keepalived": "keepalived",
    "ipvsadm": "ipvsadm",
    "systemd-analyze": "systemd",
    "qemu-system-x86_64": "qemu-system-x86",
    "tcpdump": "tcpdump",
    "vtysh": "frr",  # FRR's shell; its daemons (zebra, bgpd, bfdd) live in /usr/lib/frr
    "bird": "bird2",
    "birdc": "bird2",
    "gcc": "gcc",  # builds bench/checks' IPVS shim for keepalived's checker
    "ssh": "openssh-client",  # the ssh checker runs it
}
# not traced: ip (the lab's base, probed apart) and gcc, which libraries run on their own
# (ctypes.util.find_library asks gcc where a library is)
TRACED = tuple(t for t in TOOLS if t not in ("ip", "gcc"))
MARKERS = ("needs_tools", "uses_tools")


def _known(tools: Iterable[str]) -> tuple[str, ...]:
    tools = tuple(tools)
    unknown = [t for t in tools if t not in TOOLS]
    if unknown or not tools:
        raise ValueError(f"unknown tool(s) {unknown or '(none given)'}; known: {', '.join(TOOLS)}")
    return tools


def needs_tools(*tools: str) -> pytest.MarkDecorator:
    """Mark: the test runs *tools* and skips, with the reason, where one is missing."""
    return pytest.mark.needs_tools(*_known(tools))


def uses_tools(*tools: str) -> pytest.MarkDecorator:
    """Mark: the test runs *tools* when they are installed and passes without them."""
    return pytest.mark.uses_tools(*_known(tools))


@functools.cache
def tool_missing_reason(tool: str) -> str | None:
    """None when *tool* can be run here, else a one-line reason naming its package."""
    _known([tool])
    if shutil.which(tool) is None:
        return f"{tool} not found (Debian package {TOOLS[tool]}; scripts/test installs it as root)"
    if tool == "keepalived" and keepalived_version() is None:
        return "keepalived does not run here (keepalived --version failed)"
    return None


def tool_path(tool: str) -> str | None:
    """The path of *tool*, None when it is missing (for ``uses_tools`` cross-checks)."""
    return shutil.which(tool) if tool_missing_reason(tool) is None else None


def declared_tools(item: pytest.Item) -> set[str]:
    """Every tool *item* declares with needs_tools or uses_tools (function, class, module)."""
    return {tool for name in MARKERS for mark in item.iter_markers(name) for tool in mark.args}


def selected_for_probes(item: pytest.Item) -> bool:
    """True for the tests the hidden-tools guard runs: those declaring a tool."""
    return bool(declared_tools(item))


class ToolTrace:
    """Shims for the traced tools on ``PATH``, each logging the test that ran it."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="halo-tooltrace-"))
        self.log = self.dir / "runs.log"
        self.log.touch()
        self._offset = 0
        self._old_path = os.environ.get("PATH", "")
        for tool in TRACED:
            real = shutil.which(tool)
            if real is None:
                continue
            shim = self.dir / tool
            shim.write_text(
                "#!/bin/sh\n"
                f"printf '%s\\t%s\\n' {tool} \"${{PYTEST_CURRENT_TEST:-}}\" "
                f">> {shlex.quote(str(self.log))}\n"
                f'exec {shlex.quote(real)} "$@"\n'
            )
            shim.chmod(0o755)
        os.environ["PATH"] = f"{self.dir}{os.pathsep}{self._old_path}"

    def new_runs(self) -> list[tuple[str, str]]:
        """(tool, test node id) for each traced run logged since the previous call."""
        with open(self.log, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        runs = []
        for line in complete.decode(errors="replace").splitlines():
            tool, _, current = line.partition("\t")
            # PYTEST_CURRENT_TEST is "<node id> (setup|call|teardown)"
            nodeid = current.rsplit(" ", 1)[0]
            if nodeid:
                runs.append((tool, nodeid))
        return runs

    def close(self) -> None:
        os.environ["PATH"] = self._old_path
        shutil.rmtree(self.dir, ignore_errors=True)
