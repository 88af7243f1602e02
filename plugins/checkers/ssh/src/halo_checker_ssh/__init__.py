"""halo checker ``ssh``: log in over SSH, optionally run a command and check its result."""
