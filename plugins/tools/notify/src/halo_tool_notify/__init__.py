"""halo-tool-notify: ``halo notify --test``, one test event through a configured notifier."""
