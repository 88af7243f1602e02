"""Example third-party halo checker ``file_age``."""
