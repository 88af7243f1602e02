"""halo backend ``ipvs``: virtual services in the kernel's IP Virtual Server, reconciled."""
