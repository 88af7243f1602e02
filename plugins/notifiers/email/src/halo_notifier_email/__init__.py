"""halo notifier ``email``: SMTP alerts with coalescing, rate limiting and retries."""
