"""halo checker ``file``: a number in a file; up while it is zero (keepalived's FILE_CHECK)."""
