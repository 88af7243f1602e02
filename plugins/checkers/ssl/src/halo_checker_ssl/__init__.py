"""halo checker ``ssl``: the ``http`` checker over TLS, with certificate-expiry warnings."""
