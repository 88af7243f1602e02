"""halo checker ``udp``: a UDP datagram to a port; success on a reply (or, without
``require_reply``, when no ICMP port unreachable comes back)."""
