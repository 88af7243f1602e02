"""``halo watch IFACE``: every VRRP router heard on a segment, and conflicts between them.

See :mod:`halo_tool_watch.watch`.
"""
