"""halo checker ``smtp``: an SMTP server's 220 greeting, HELO answered with 250, then QUIT."""
