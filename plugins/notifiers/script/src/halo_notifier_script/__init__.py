"""halo notifier ``script``: keepalived's notify scripts and notify FIFO."""
