"""`halo run --log-format text|json` and the journal: the daemon as a process whose stderr
is a file, with ``JOURNAL_STREAM`` naming that file's device and inode as systemd would."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from halo_core.log import PriorityPrefix, TextFormatter

PREFIX = re.compile(r"^<([0-7])>")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, body: str = "") -> Path:
    port = closed_port()
    cfg = tmp / "halo.yaml"
    cfg.write_text(
        f"global: {{state_dir: {tmp / 'state'}, status_api: {{enabled: false}}}}\n"
        "checks:\n"
        f"  web: {{type: tcp, connect_ip: 127.0.0.1, connect_port: {port},"
        " interval: 0.2, fall: 1, warmup: 0}\n" + body
    )
    return cfg


def run_halo(
    tmp: Path, cfg: Path, *args: str, journal: bool, until: str | None = "check web: down"
) -> tuple[int, list[str]]:
    """Run ``halo run`` until ``until`` is logged (then SIGTERM) or it exits by itself;
    its stderr lines."""
    log = tmp / "stderr.log"
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    with open(log, "wb") as err:
        if journal:
            st = os.fstat(err.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "halo_core.cli", "run", "-c", str(cfg), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
        try:
            deadline = time.monotonic() + 20
            while proc.poll() is None and time.monotonic() < deadline:
                if until is not None and until in log.read_text(errors="replace"):
                    proc.send_signal(signal.SIGTERM)
                    break
                time.sleep(0.05)
            code = proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return code, log.read_text().splitlines()


def test_text_under_journald_carries_priorities(tmp_path: Path) -> None:
    code, lines = run_halo(tmp_path, write_config(tmp_path), journal=True)
    assert code == 0, lines
    assert lines and all(PREFIX.match(ln) for ln in lines), lines
    by_message = {PREFIX.sub("", ln): int(ln[1]) for ln in lines}
    (down,) = [m for m in by_message if m.startswith("check web: down")]
    assert by_message[down] == 4  # warning
    (started,) = [m for m in by_message if m.startswith("halo ") and " started " in m]
    assert by_message[started] == 6  # info
    assert not re.match(r"\d\d:\d\d", started)  # journald has its own time


def test_json_under_journald_is_prefixed_json(tmp_path: Path) -> None:
    code, lines = run_halo(tmp_path, write_config(tmp_path), "--log-format", "json", journal=True)
    assert code == 0, lines
    records = []
    for ln in lines:
        m = PREFIX.match(ln)
        assert m, ln
        rec = json.loads(ln[m.end() :])
        records.append((int(m.group(1)), rec))
    (prio, down) = next((p, r) for p, r in records if r["message"].startswith("check web: down"))
    assert prio == 4 and down["level"] == "warning" and down["logger"] == "halo.checks"
    assert (down["check"], down["from_state"], down["to_state"]) == ("web", "UP", "DOWN")
    assert "refused" in down["reason"]
    assert datetime.fromisoformat(down["time"]).utcoffset() is not None


def test_terminal_text_and_json_have_no_prefix(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    code, lines = run_halo(tmp_path, cfg, journal=False)
    assert code == 0 and lines, lines
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO|WARNING|ERROR) ", ln) for ln in lines)
    assert any(re.search(r" WARNING +check web: down", ln) for ln in lines), lines
    code, lines = run_halo(tmp_path, cfg, "--log-format", "json", journal=False)
    assert code == 0 and lines, lines
    assert all(json.loads(ln)["message"] for ln in lines)


def test_configuration_errors_are_errors(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "vrrp_instances:\n  VI_1: {interface: eth0}\n")
    code, lines = run_halo(tmp_path, cfg, journal=True, until=None)
    assert code == 1
    assert lines and all(ln.startswith("<3>") for ln in lines), lines
    assert any("not started" in ln for ln in lines), lines


@pytest.mark.parametrize("stream", ["", "garbage", "1:1"])
def test_no_prefix_unless_stderr_is_the_journal_stream(tmp_path: Path, stream: str) -> None:
    cfg = write_config(tmp_path, "vrrp_instances:\n  VI_1: {interface: eth0}\n")
    env = dict(os.environ, JOURNAL_STREAM=stream)
    proc = subprocess.run(
        [sys.executable, "-m", "halo_core.cli", "run", "-c", str(cfg)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr and not any(PREFIX.match(ln) for ln in proc.stderr.splitlines())


def test_every_line_of_a_traceback_keeps_the_priority() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("halo", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    lines = PriorityPrefix(TextFormatter(journald=True)).format(record).split("\n")
    assert len(lines) > 3 and all(ln.startswith("<3>") for ln in lines), lines
    assert lines[0] == "<3>failed" and lines[-1] == "<3>RuntimeError: boom"
