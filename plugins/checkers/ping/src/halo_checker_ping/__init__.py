"""halo checker ``ping``: an ICMP or ICMPv6 echo request; success on the echo reply."""
