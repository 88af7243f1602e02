"""The operator's view of a running daemon: the status API (JSON, Prometheus ``/metrics``,
server-sent events, an OpenAPI description) and the ``halo status`` client.

Standard library only. :mod:`.plugin` holds the hooks and the settings schema and is all
that every ``halo`` command imports; :mod:`.server` runs inside the daemon; :mod:`.client`
is the command; :mod:`.snapshot` turns the daemon's objects into data both of them, and
:mod:`.metrics`, share.
"""
