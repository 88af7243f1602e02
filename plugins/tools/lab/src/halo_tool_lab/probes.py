"""Small traffic probes run inside a lab host."""

from __future__ import annotations

import sys

from halo_tool_lab.netns import Host

# One UDP datagram from a given source address: "sent", or "blocked" when an output hook
# drops it (sendto fails with EPERM at once; a TCP connect would only retry its SYN).
_SEND_FROM = r"""
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[2], 0))
try:
    s.sendto(b"halo", (sys.argv[1], 9))
    print("sent")
except PermissionError:
    print("blocked")
"""


def send_from(host: Host, dst: str, src: str) -> str:
    """Send one UDP datagram from ``src`` (an address of ``host``) to ``dst`` port 9:
    "sent" or "blocked" (dropped on the way out by the host's firewall)."""
    return host.run(sys.executable, "-c", _SEND_FROM, dst, src, timeout=10).stdout.strip()
