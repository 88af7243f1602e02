"""Logging that suits a terminal, journald and log shippers: the daemon's one logging setup.

Text lines on a terminal start with the time and the level. Under systemd (``JOURNAL_STREAM``
names our stderr, see sd_journal_stream_fd(3)) every line, text or JSON, starts with an
sd-daemon ``<N>`` syslog priority prefix, which journald strips and turns into the entry's
priority (``journalctl -p warning`` then works); text lines carry no time there, journald has
its own. ``json`` writes one object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
``message`` and, when the call site passed them with ``extra=``, the structured fields in
:data:`FIELDS`.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import re
import sys
import time
from typing import Any, Literal

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")

SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def fields(
    *,
    instance: str | None = None,
    group: str | None = None,
    check: str | None = None,
    virtual_server: str | None = None,
    server: str | None = None,
    backend: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
) -> dict[str, str]:
    """``extra=`` for a log call: the structured fields given, None ones left out."""
    # Only the parameters are local names here.
    return {k: v for k, v in locals().items() if v is not None}


FIELDS = tuple(inspect.signature(fields).parameters)
"""The structured fields a record may carry; JSON lines include those present."""


# --------------------------------------------------------------------------- secrets

REDACTED = "<redacted>"
_secrets: set[str] = set()
_secret_re: re.Pattern[str] | None = None


def iso_utc(t: float) -> str:
    """``t`` (seconds since the epoch) as ISO 8601 in UTC to the microsecond, as
    ``datetime.isoformat`` writes it (without datetime: the VRRP process needs no more)."""
    whole = int(t)
    micro = round((t - whole) * 1e6)
    if micro == 1_000_000:
        whole, micro = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{micro:06d}+00:00"


def secrets() -> list[str]:
    """Every secret registered so far (handed to a process that did not read them)."""
    return sorted(_secrets)


def add_secret(value: str | None) -> None:
    """Never show ``value`` again: every log line and every status field that would contain
    it shows :data:`REDACTED` instead. Passwords, tokens, URLs that carry a credential and
    header values register here when the configuration is read or a secret is revealed at
    run time."""
    global _secret_re
    if not value or value in _secrets:
        return
    _secrets.add(value)
    # Longest first, so a secret that contains another is replaced whole. A short one
    # (keepalived's auth_pass is often 4 digits) only where it stands alone, or every "1"
    # in the log would go.
    parts = [
        re.escape(v) if len(v) >= 6 else rf"(?<![\w]){re.escape(v)}(?![\w])"
        for v in sorted(_secrets, key=len, reverse=True)
    ]
    _secret_re = re.compile("|".join(parts))


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by :data:`REDACTED`."""
    return _secret_re.sub(REDACTED, text) if _secret_re is not None else text


def redact_data(data: Any) -> Any:
    """A copy of JSON-shaped ``data`` with every string redacted (keys kept)."""
    if _secret_re is None:
        return data
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {k: redact_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(v) for v in data]
    return data


class RedactSecrets(logging.Filter):
    """Rewrites each record with its message, structured fields and traceback redacted,
    before any formatter sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secret_re is None:
            return True
        record.msg = redact(record.getMessage())
        record.args = None
        for name in FIELDS:
            value = record.__dict__.get(name)
            if isinstance(value, str):
                record.__dict__[name] = redact(value)
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level (between two levels: the more severe one)."""
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        if levelno <= level:
            return SYSLOG_PRIORITY[level]
    return SYSLOG_PRIORITY[logging.CRITICAL]


def under_journald() -> bool:
    """True when stderr is the journal stream systemd gave us (device and inode match)."""
    stream = os.environ.get("JOURNAL_STREAM")
    if not stream:
        return False
    try:
        dev, ino = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class TextFormatter(logging.Formatter):
    """``HH:MM:SS.mmm LEVEL   message`` on a terminal; the bare message for journald."""

    def __init__(self, journald: bool) -> None:
        super().__init__("%(message)s" if journald else "%(asctime)s %(levelname)-7s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return (
            time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": iso_utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = str(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # already formatted (and redacted) by RedactSecrets
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


class PriorityPrefix(logging.Formatter):
    """Puts journald's ``<N>`` in front of what another formatter made. Every line of a
    multi-line record (a traceback) gets it, or journald files the rest at its default
    priority."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in self.inner.format(record).split("\n"))


class BackgroundWriter(logging.StreamHandler):  # type: ignore[type-arg]
    """Formats on the caller's thread, writes on a thread of its own.

    For the VRRP process: a write to stderr can block - for seconds when it is a file on a
    busy disk, for as long as journald is behind when it is the journal's stream - and an
    event loop blocked in a log line sends no advert (in the soak, two real-time VRRP
    processes slept 0.35-0.5 s at once in writes). Up to ``LIMIT`` lines wait; past that
    lines are dropped, and a line says how many once writing catches up. The thread writes
    to the descriptor itself (``os.write``), holding no lock a forked child (a reload's
    validation) could inherit held; such a child writes its lines directly.
    """

    LIMIT = 10_000

    def __init__(self, stream: Any) -> None:
        import queue
        import threading

        super().__init__(stream)
        try:
            self.fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):  # not a file (a test's capture)
            self.fd = None
        self.lines: queue.Queue[str | None] = queue.Queue(self.LIMIT)
        self.dropped = 0
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._write, name="log-writer", daemon=True)
        self.thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        import queue

        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        if os.getpid() != self.pid or self.fd is None:
            self._out(line)
            return
        try:
            self.lines.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def _out(self, line: str) -> None:
        try:
            if self.fd is None:
                self.stream.write(line + self.terminator)
                self.stream.flush()
                return
            data = (line + self.terminator).encode("utf-8", "backslashreplace")
            while data:
                data = data[os.write(self.fd, data) :]
        except (OSError, ValueError):
            pass  # a closed or broken stderr: nothing else can be done with the line

    def _write(self) -> None:
        while (line := self.lines.get()) is not None:
            self._out(line)
            if self.dropped and self.lines.empty():
                dropped, self.dropped = self.dropped, 0
                self._out(f"{dropped} log lines dropped: writing them could not keep up")

    def close(self) -> None:
        """Write what waits (bounded: a stderr that never takes it is left)."""
        import queue

        if self.thread.is_alive() and os.getpid() == self.pid:
            with contextlib.suppress(queue.Full):
                self.lines.put(None, timeout=1.0)
            self.thread.join(timeout=5.0)
        super().close()


def setup(level: str = "info", fmt: str = "text", *, background: bool = False) -> None:
    """Send every record to stderr as ``fmt`` (text or json), the least severe being
    ``level``; with ``background``, written by a thread of its own
    (:class:`BackgroundWriter`, for the VRRP process). Calling it again replaces the
    previous setup."""
    journald = under_journald()
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter(journald)
    if journald:
        formatter = PriorityPrefix(formatter)
    handler = BackgroundWriter(sys.stderr) if background else logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        if isinstance(h, BackgroundWriter):
            h.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
