"""halo backend ``nftables``: load balancing by nftables DNAT in a table halo owns."""
