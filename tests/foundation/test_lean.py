"""`halo --version`, `halo check`, `halo plugins` and `halo watch` stay light: no network
library is imported. The VRRP process `halo run` starts imports only what it runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from halo_tool_lab.pytest_plugin import LabFactory

HEAVY = ("aiohttp", "asyncssh", "scapy", "pyroute2", "aiosmtplib")
CONFIG = Path(__file__).resolve().parent.parent / "configs" / "valid" / "seed-master.yaml"

PROBE = """
import sys
from halo_core import cli
try:
    status = cli.main(sys.argv[1:])
except SystemExit as exc:
    status = exc.code
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})
print('HEAVY=' + ','.join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv", [["--version"], ["check", "-c", str(CONFIG)], ["plugins"], ["watch", "nosuchif0"]]
)
def test_no_heavy_imports(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=set(HEAVY)), *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert line == ["HEAVY="], proc.stderr


# The VRRP process (`halo run`): once started, it reports what it imported and its resident
# memory, and stops itself. Its configuration was validated by a child process
# (halo_core.handover), so none of the loader's, the plugin machinery's or TLS's modules
# are in it.
VRRP_PROBE = """
import json, logging, os, signal, sys
from halo_core import cli

def report() -> None:
    with open("/proc/self/status") as fh:
        rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    with open(sys.argv[2], "w") as out:
        modules = sorted(m for m, module in sys.modules.items() if module is not None)
        json.dump({"modules": modules, "rss_kb": rss}, out)
    os.kill(os.getpid(), signal.SIGTERM)

class Started(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("halo ") and " started with " in record.getMessage():
            import asyncio
            # the worker is spawned by then, and the address backend's reconcile job (every
            # 5 s) has run: what a running process loads counts, not only what start loads
            asyncio.get_running_loop().call_later(5.5, report)

logging.getLogger("halo").addHandler(Started())
sys.exit(cli.main(["run", "-c", sys.argv[1]]))
"""

NOT_IN_VRRP = (
    "yaml",  # the configuration is read by the validating child
    "importlib.metadata",  # plugin discovery, the version: the child's
    "email",  # importlib.metadata's
    "ssl",  # asyncio does without; halo's address backend makes no TLS connection
    "_hashlib",  # OpenSSL again (hmac), for a comparison the interpreter has built in
    "datetime",
    "argparse",  # `halo run` reads its own few options (halo_core.cli._plain_run)
    "shutil",  # argparse's, and nft's lookup (only when the firewall is used)
    "pickle",  # the C unpickler reads the verdict; the Python pickler is the child's
    "ctypes",  # malloc_trim is called through _ctypes (halo_core.realtime.trim_heap)
    "random",  # the scheduler's jitter: the VRRP process's one job (reconcile) has none
    "pluggy",  # no hook is called in the VRRP process (halo_core.plugins.Plugins.manager)
    "halo_core.hookspecs",
    "halo_core.config.loader",
    "halo_core.validation",  # the validator and JSON Schema writer: the child's
    "halo_core.checks",
    "halo_core.script_runner",
    *HEAVY,
)
VRRP_RSS_MB = 30  # 35.6 MB before the VRRP process handed validation to a child


def test_vrrp_process_imports_only_what_it_runs(lab: LabFactory, tmp_path: Path) -> None:
    import json

    config = tmp_path / "halo.yaml"
    config.write_text(
        CONFIG.read_text().replace("global:\n", f"global:\n  state_dir: {tmp_path / 'state'}\n")
    )
    (tmp_path / "probe.py").write_text(VRRP_PROBE)
    out, log = tmp_path / "probe.json", tmp_path / "halo.log"
    host = lab(1).hosts[0]
    proc = host.spawn(sys.executable, str(tmp_path / "probe.py"), str(config), str(out), log=log)
    assert proc.wait(60) == 0, log.read_text()
    found = json.loads(out.read_text())
    modules: list[str] = found["modules"]
    assert [m for m in modules if m.split(".")[0] in NOT_IN_VRRP or m in NOT_IN_VRRP] == []
    distributions = {m.split(".")[0] for m in modules if m.startswith("halo_")}
    assert distributions == {"halo_core", "halo_backend_vip"}  # and the address backend's
    assert found["rss_kb"] < VRRP_RSS_MB * 1024, found["rss_kb"]


def test_status_api_loads_no_openssl() -> None:
    """The status API runs in every worker (the seed's too): its server compares tokens
    without hmac, which would load OpenSSL's libcrypto (3.7 MB) into a worker that has no
    other use for it when asyncio runs without ssl."""
    probe = (
        "import sys; sys.modules['ssl'] = None\n"
        "import halo_tool_status.server\n"
        "print(sorted(m for m in ('_hashlib', 'hashlib', 'hmac', '_ssl') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert proc.stdout.strip() == "[]", proc.stderr
