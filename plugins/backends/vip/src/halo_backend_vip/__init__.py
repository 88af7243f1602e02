"""halo backend ``vip``: a VRRP master's virtual addresses in the kernel, announced on the wire."""
