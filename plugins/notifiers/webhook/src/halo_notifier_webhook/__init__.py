"""halo notifier ``webhook``: signed JSON over HTTP with retries and templates."""
