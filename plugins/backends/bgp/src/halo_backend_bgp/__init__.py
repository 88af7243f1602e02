"""halo backend ``bgp``: service addresses announced as host routes over BGP by a real speaker."""
