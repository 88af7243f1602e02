"""halo checker ``http``: an HTTP request whose status, body digest or regex must match."""
