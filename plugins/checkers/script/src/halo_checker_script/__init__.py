"""halo checker ``script``: run an executable; its exit status is the result."""
