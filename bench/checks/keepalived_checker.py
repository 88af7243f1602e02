"""keepalived's checker process on a kernel without IPVS, for measuring its TCP_CHECKs.

keepalived runs health checks only for the real servers of a ``virtual_server``, and its
checker process exits at start when it cannot reach IPVS (lab kernels have no ip_vs). The
LD_PRELOAD library built from ``ipvs_shim.c`` answers keepalived's IPVS socket options as an
empty, working IPVS (see the C file), so ``keepalived -C`` (checker only) runs its
TCP_CHECKs against real servers and logs their up/down transitions as it would in
production; the shim appends every faked IPVS change to a log (``ADDDEST``/``DELDEST``).

Used by ``bench/checks/per_check.py`` and ``tests/checks/test_ipvs_shim.py``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from halo_tool_lab.keepalived import Keepalived, keepalived_available
from halo_tool_lab.netns import Host

SHIM_SOURCE = Path(__file__).resolve().with_name("ipvs_shim.c")
VIRTUAL_ADDRESS = "203.0.113.10"  # the (never configured) virtual service address
REAL_SERVERS_PER_SERVICE = 100


def shim_unavailable_reason() -> str | None:
    """Why keepalived's checker cannot run with the shim here, or None."""
    if shutil.which("gcc") is None:
        return "gcc not found (needed to build bench/checks/ipvs_shim.c)"
    if not keepalived_available():
        return "keepalived not found or does not run"
    return None


def compile_c(source: Path, out: Path, *flags: str) -> Path:
    """``gcc -O2 FLAGS -o OUT SOURCE``; raises RuntimeError with gcc's message."""
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = ["gcc", "-O2", *flags, "-o", str(out), str(source)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"building {source.name} failed: {proc.stderr.strip()[-2000:]}")
    return out


def build_shim(directory: Path) -> Path:
    """Compile the shim into *directory*."""
    return compile_c(SHIM_SOURCE, directory / "ipvs_shim.so", "-shared", "-fPIC", "-ldl")


def tcp_check_config(
    server: str,
    ports: Sequence[int],
    interval: float,
    timeout: float = 1.0,
    retry: int = 0,
) -> str:
    """A keepalived.conf with one TCP_CHECK per port of *server*, every *interval* seconds.

    NAT forwarding lets the real servers' ports differ from the service's (with DR keepalived
    resets them to the service's port); at most REAL_SERVERS_PER_SERVICE real servers per
    virtual server, each virtual server on its own port.
    """
    lines = ["global_defs {", "    router_id per_check", "}"]
    for first in range(0, len(ports), REAL_SERVERS_PER_SERVICE):
        lines += [
            f"virtual_server {VIRTUAL_ADDRESS} {80 + first // REAL_SERVERS_PER_SERVICE} {{",
            f"    delay_loop {interval:g}",
            "    lb_algo rr",
            "    lb_kind NAT",
            "    protocol TCP",
        ]
        for port in ports[first : first + REAL_SERVERS_PER_SERVICE]:
            lines += [
                f"    real_server {server} {port} {{",
                "        weight 1",
                "        TCP_CHECK {",
                f"            connect_timeout {timeout:g}",
                f"            retry {retry}",
                "        }",
                "    }",
            ]
        lines.append("}")
    return "\n".join(lines) + "\n"


class KeepalivedChecker(Keepalived):
    """``keepalived -C`` (the checker process only) in *host*, with the IPVS shim preloaded.

    The shim's log of faked IPVS changes is :attr:`ipvs_log`.
    """

    def __init__(self, host: Host, config: str, workdir: Path, shim: Path) -> None:
        self.ipvs_log = Path(workdir) / f"ipvs-{host.name}.log"
        self.ipvs_log.unlink(missing_ok=True)
        super().__init__(
            host,
            config,
            workdir,
            vrrp_only=False,
            extra_args=["-C"],
            env={"LD_PRELOAD": str(shim), "IPVS_SHIM_LOG": str(self.ipvs_log)},
        )

    def checker_pid(self) -> int | None:
        """The checker child's PID (from its pid file), None until it runs."""
        return self.child_pid("checkers")

    def ipvs_changes(self) -> list[str]:
        try:
            return self.ipvs_log.read_text().splitlines()
        except FileNotFoundError:
            return []
