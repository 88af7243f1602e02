"""halo tool ``systemd-unit``: a hardened systemd unit for the halo that runs the command."""
