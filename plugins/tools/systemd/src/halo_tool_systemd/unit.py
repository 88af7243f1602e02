"""A systemd service unit for the halo installation that is running this code.

``ExecStart=`` is this installation's ``halo`` (a pipx, ``uv tool`` or virtual-environment
install puts it somewhere different each time), and the sandbox is what halo itself needs:
raw sockets and netlink, plus running the operator's scripts. ``systemd-analyze security``
rates the unit 3.4 (OK); the comments in it say what each setting forbids and how to relax it.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import sys
from collections.abc import Sequence

PROJECT_URL = "https://github.com/halo-ha/halo"  # when halo-core's metadata has none
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def halo_command(argv0: str | None = None, executable: str | None = None) -> list[str]:
    """How to start this halo: its ``halo`` console script as an absolute path, or this
    interpreter with ``-m halo_core.cli`` when it has none (a bare checkout)."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = os.path.abspath(sys.executable if executable is None else executable)
    candidates = []
    if os.path.basename(argv0) == "halo":
        found = argv0 if os.sep in argv0 else shutil.which(argv0)
        if found:
            candidates.append(os.path.abspath(found))
    # The console script installed next to this interpreter (a virtual environment's bin/).
    candidates.append(os.path.join(os.path.dirname(executable), "halo"))
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return [path]
    return [executable, "-m", "halo_core.cli"]


def project_url() -> str:
    """halo's home page, from halo-core's metadata (the one place it is written down)."""
    try:
        urls = importlib.metadata.metadata("halo-core").get_all("Project-URL") or []
    except importlib.metadata.PackageNotFoundError:
        urls = []
    for entry in urls:
        label, _, url = str(entry).partition(",")
        if label.strip().lower() == "homepage" and url.strip():
            return url.strip()
    return PROJECT_URL


def exec_quote(arg: str) -> str:
    """One argument of an ``Exec*=`` line: ``%`` and ``$`` doubled (systemd expands
    specifiers and variables there), quoted when it holds blanks, quotes or backslashes."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if not arg or re.search(r"[\s\"'\\;]", arg):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def exec_line(argv: Sequence[str]) -> str:
    return " ".join(exec_quote(a) for a in argv)


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _ipvs_module_lines() -> str:
    """Load ip_vs before the sandbox: ProtectKernelModules= stops the ipvs backend's own
    ``modprobe``. Only when that backend is installed."""
    if not _installed("halo-backend-ipvs"):
        return ""
    modprobe = shutil.which("modprobe", path=SYSTEM_PATH)
    if modprobe is None:
        return "# No modprobe here: load ip_vs at boot (modules-load.d) for the ipvs backend.\n"
    return (
        "# ProtectKernelModules= stops halo's own `modprobe ip_vs` (the ipvs backend): load it\n"
        "# first, outside the sandbox ('+'); without it IPVS fails with a clear error ('-').\n"
        f"ExecStartPre=-+{modprobe} -q ip_vs\n"
    )


UNIT = """\
# halo: VRRP failover, health checks and load-balancer control.
# Written by `halo systemd-unit` for the halo at {halo}.
# Install as /etc/systemd/system/halo.service, then
#   systemctl daemon-reload && systemctl enable --now halo
# Local changes belong in a drop-in: systemctl edit halo
[Unit]
Description=halo high availability daemon (VRRP, health checks, load balancing)
Documentation={documentation}
# VRRP needs the interfaces configured; it does not need the network to be "online".
After=network.target
Wants=network.target
# keepalived and halo must not both speak VRRP for the same routers on one node.
Conflicts=keepalived.service

[Service]
# halo sends READY=1 once its instances, checks and status API are up, STATUS= lines for
# `systemctl status`, RELOADING=1/READY=1 around a reload and STOPPING=1 on the way out.
# With systemd >= 253, Type=notify-reload can replace Type=notify and the ExecReload lines.
Type=notify
# The sd_notify messages come from halo's worker process, a child of the main (VRRP)
# process (docs/processes.md); without the plugins' processes halo runs as one.
NotifyAccess=all
{modprobe}ExecStart={run}
# Validate first, so that `systemctl reload halo` fails, with the errors in the journal,
# when the new file is invalid (the daemon would keep its running configuration anyway).
ExecReload={check}
ExecReload={kill} -HUP $MAINPID
# SIGTERM: masters send a priority-0 advert (the backup takes over at once), addresses are
# removed, notify scripts run. KillMode=mixed lets those scripts finish before systemd
# kills what is left of the control group; so does it kill anything a script left running
# in the background: start long-lived things with `systemctl` or `systemd-run`.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec=90
# The keep-alive comes from halo's event loop: a loop stalled for this long is no longer
# doing VRRP, and a restart is the right answer.
WatchdogSec=10
Restart=on-failure
RestartSec=1
# /run/halo holds the pid file and the status API socket (global.state_dir).
RuntimeDirectory=halo
RuntimeDirectoryMode=0755
LimitNOFILE=65536
UMask=0022

# The sandbox. halo and every check and notify script it runs live inside it. Relax it for
# your scripts in a drop-in (systemctl edit halo); docs/operations.md says how.
# VRRP and gratuitous ARP use raw and packet sockets (CAP_NET_RAW); addresses, routes, IPVS
# and nftables are netlink (CAP_NET_ADMIN); scripts run as global.script_user (CAP_SETUID,
# CAP_SETGID) and are killed when they overrun (CAP_KILL). Nothing else: no CAP_SYS_ADMIN,
# no CAP_DAC_OVERRIDE (root scripts can only write files root owns).
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_SETUID CAP_SETGID CAP_KILL
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET
# No set-uid programs (sudo, su) in scripts: run them as root (global.script_user) instead.
NoNewPrivileges=yes
RestrictSUIDSGID=yes
# /usr, /boot, /efi and /etc are read-only, /home, /root and /run/user too; /var, /srv and
# /run stay writable (state files, FIFOs). /tmp is the system's, shared with the scripts'
# readers, not a private one.
ProtectSystem=full
ProtectHome=read-only
PrivateTmp=no
PrivateDevices=yes
# halo sets no sysctls and loads no modules itself (ip_vs for the ipvs backend is loaded by
# ExecStartPre= when that backend is installed); scripts that do need
# ProtectKernelTunables=no or ProtectKernelModules=no.
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
# Left out on purpose: MemoryDenyWriteExecute= (scripts may run JIT runtimes: Java, node,
# ctypes callbacks) and ProtectProc=invisible (vrrp_scripts such as `killall -0 haproxy` or
# `pidof nginx` must see other users' processes).

# Logs go to journald through stderr; halo writes <N> priority prefixes there.
StandardOutput=journal
StandardError=journal
SyslogIdentifier=halo

[Install]
WantedBy=multi-user.target
"""


def render(config: str, command: Sequence[str] | None = None) -> str:
    """The unit for this installation, running with the configuration file ``config``."""
    halo = list(command) if command is not None else halo_command()
    config = os.path.abspath(config)
    kill = shutil.which("kill", path=SYSTEM_PATH) or "/bin/kill"
    return UNIT.format(
        halo=" ".join(halo),
        documentation=project_url(),
        modprobe=_ipvs_module_lines(),
        run=exec_line([*halo, "run", "-c", config]),
        check=exec_line([*halo, "check", "-q", "-c", config]),
        kill=kill,
    )
