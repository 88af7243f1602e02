"""Run ``test_ipvs_kernel.py`` inside a QEMU VM whose kernel has IPVS, on hosts without it.

One VM boots for the whole module (``scripts/ipvs-vm``: Debian's kernel over the host's
root filesystem); inside it an inner pytest session runs the kernel tests and writes a
JUnit XML report to a directory shared read-write with the host. Each inner test is then
reported here as its own test (``test_in_vm[NAME]``) with its outcome and message, so a
failure names the scenario step that failed.

Where the host kernel has IPVS the kernel tests run directly and this module skips, as it
does (with the runner's one-line reason) when it needs what this host lacks: root, QEMU,
a kernel image with ip_vs, a static busybox or kmod.

Python under emulation is ~15x slower, and it spends most of that compiling and importing:
the VM gets a bytecode cache (``PYTHONPYCACHEPREFIX``) kept between runs and warmed on the
host first, which halves each process's start-up in the guest.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from halo_tool_lab.tools import needs_tools

# the VM itself (the runner's --check names whatever else is missing)
pytestmark = needs_tools("qemu-system-x86_64")

ROOT = Path(__file__).resolve().parents[4]
RUNNER = ROOT / "scripts" / "ipvs-vm"
INNER = Path(__file__).with_name("test_ipvs_kernel.py")
PYCACHE = Path(os.environ.get("HALO_IPVS_VM_PYCACHE", "/var/tmp/halo-ipvs-vm-pycache"))
VM_TIMEOUT = 900  # seconds for the whole VM (boot + inner session); ~2-3 min measured


def inner_tests() -> list[str]:
    tree = ast.parse(INNER.read_text())
    return [
        n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
    ]


def vm_unavailable_reason() -> str | None:
    if os.path.exists("/proc/net/ip_vs"):
        return "the host kernel has IPVS: test_ipvs_kernel.py runs directly"
    # the runner knows what it needs; it prints one line when something is missing
    check = subprocess.run(
        [sys.executable, RUNNER, "--check"], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        return (check.stdout.strip() or check.stderr.strip() or "IPVS VM unusable").splitlines()[0]
    return None


@dataclass
class Outcome:
    state: str  # passed, failed, skipped
    message: str


@dataclass
class VmRun:
    returncode: int
    seconds: float
    output: str
    results: dict[str, Outcome]


def _warm_bytecode(env: dict[str, str]) -> None:
    # Compile on the host what the guest imports (pytest, the lab, the daemon, pyroute2):
    # seconds here instead of a minute of emulated compiling.
    code = (
        "import pytest, _pytest.python, pyroute2, yaml, halo_core.cli, halo_core.daemon,"
        " halo_tool_lab.netns, halo_core.vrrp.engine, halo_backend_ipvs.runtime,"
        " halo_backend_vip.runtime, halo_checker_tcp.runtime"
    )
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=False, timeout=300)
    subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", INNER],
        env=env,
        cwd=ROOT,
        capture_output=True,
        check=False,
        timeout=300,
    )


def _parse(junit: Path) -> dict[str, Outcome]:
    out: dict[str, Outcome] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        state, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                state = "skipped" if tag == "skipped" else "failed"
                message = (node.get("message") or "") + "\n" + (node.text or "")
                break
        out[name] = Outcome(state, message.strip())
    return out


@pytest.fixture(scope="session")
def vm_run(tmp_path_factory: pytest.TempPathFactory) -> VmRun:
    reason = vm_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    results = tmp_path_factory.mktemp("ipvs-vm")
    PYCACHE.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env |= {"PYTHONPYCACHEPREFIX": str(PYCACHE), "PYTHONUNBUFFERED": "1"}
    _warm_bytecode(env)
    junit = results / "junit.xml"
    inner = (
        f"{sys.executable} -m pytest {INNER} -q -p no:cacheprovider -p no:hypothesispytest"
        f" -o addopts=-ra --timeout={VM_TIMEOUT - 60} --junitxml={junit}"
    )
    env |= {
        "HALO_IPVS_VM": "1",
        "IPVS_VM_RW": f"{results}:{PYCACHE}",
        "IPVS_VM_TIMEOUT": str(VM_TIMEOUT),
    }
    t0 = time.monotonic()
    cp = subprocess.run(
        [sys.executable, RUNNER, inner],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=VM_TIMEOUT + 60,
    )
    seconds = time.monotonic() - t0
    output = cp.stdout + cp.stderr
    (results / "output.txt").write_text(output)
    print(f"\nIPVS VM session: {seconds:.1f} s, exit {cp.returncode}; output in {results}")
    parsed = _parse(junit) if junit.exists() else {}
    return VmRun(cp.returncode, seconds, output, parsed)


@pytest.mark.timeout(VM_TIMEOUT + 120)
def test_vm_session(vm_run: VmRun) -> None:
    """The VM booted and the inner session reported every test (exit 0 or 1: tests ran)."""
    assert vm_run.returncode in (0, 1), vm_run.output[-4000:]
    assert set(vm_run.results) == set(inner_tests()), vm_run.output[-4000:]


@pytest.mark.timeout(VM_TIMEOUT + 120)
@pytest.mark.parametrize("name", inner_tests())
def test_in_vm(vm_run: VmRun, name: str) -> None:
    outcome = vm_run.results.get(name)
    if outcome is None:
        pytest.fail(f"{name} did not run in the VM:\n{vm_run.output[-4000:]}", pytrace=False)
    if outcome.state == "skipped":
        pytest.skip(f"in the VM: {outcome.message.splitlines()[0] if outcome.message else ''}")
    if outcome.state == "failed":
        pytest.fail(f"in the VM:\n{outcome.message}", pytrace=False)
