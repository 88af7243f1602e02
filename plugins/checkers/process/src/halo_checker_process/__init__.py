"""halo checker ``process``: how many processes of a name run (keepalived's vrrp_track_process)."""
