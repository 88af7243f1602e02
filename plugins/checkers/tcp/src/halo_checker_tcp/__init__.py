"""halo checker ``tcp``: success when a TCP connection is established."""
