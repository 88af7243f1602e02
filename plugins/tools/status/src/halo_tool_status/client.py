"""``halo status``: ask the running daemon's status API and print tables.

Standard library only (``http.client``, over a unix socket or TCP): the command must work on
a node where nothing but halo is installed, and start fast.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sys
from typing import Any

from halo_core.text_table import table
from halo_tool_status.endpoint import Endpoint, parse, read_token, resolve
from halo_tool_status.plugin import SECTION, StatusApi

DEFAULT_STATE_DIR = "/run/halo"


class ApiError(Exception):
    """The API could not be reached or refused the request; the message says which."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def get(
    endpoint: Endpoint, path: str, *, token: str | None = None, timeout: float = 5.0
) -> tuple[int, str, bytes]:
    """``GET path``: (status, content type, body). Raises :class:`ApiError` when the daemon
    cannot be reached."""
    conn: http.client.HTTPConnection
    if endpoint.path is not None:
        conn = _UnixConnection(endpoint.path, timeout)
    else:
        # A daemon listening on every address is reached on loopback.
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(endpoint.host or "", endpoint.host)
        conn = http.client.HTTPConnection(host or "localhost", endpoint.port, timeout=timeout)
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ApiError(f"cannot reach halo at {endpoint}: {why}") from None
    finally:
        conn.close()
    return resp.status, resp.getheader("Content-Type") or "", body


def get_json(endpoint: Endpoint, path: str, *, token: str | None = None) -> Any:
    status, _, body = get(endpoint, path, token=token)
    try:
        doc = json.loads(body)
    except ValueError:
        raise ApiError(f"{endpoint}{path}: HTTP {status}, not JSON") from None
    if status != 200:
        raise ApiError(f"{endpoint}{path}: HTTP {status}: {doc.get('error', '')}")
    return doc


def settings_from_config(config_path: str) -> tuple[Endpoint, str | None]:
    """The API endpoint and token a config file sets. Only ``global.state_dir`` and
    ``global.status_api`` are read (no other plugin is needed): the command must work even
    when a plugin is broken."""
    from halo_core.config.loader import load_file
    from halo_core.config.model import GlobalConfig
    from halo_core.schema import SchemaError
    from halo_core.validation import validate

    raw, _ = load_file(config_path)
    section = raw.get("global") or raw.get("global_defs") if isinstance(raw, dict) else None
    if not isinstance(section, dict):
        section = {}
    state_dir = {"state_dir": section["state_dir"]} if "state_dir" in section else {}
    try:
        g = validate(GlobalConfig, state_dir, path=("global",))
        api = validate(StatusApi, section.get(SECTION), path=("global", SECTION))
    except SchemaError as exc:
        raise ApiError(f"{config_path}: invalid global section: {exc}") from None
    try:
        token = read_token(api)
    except (OSError, ValueError) as exc:
        raise ApiError(f"cannot read the API token: {exc}") from None
    return resolve(api.listen, g.state_dir), token


# ---------------------------------------------------------------------------------- tables


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1 and float(value).is_integer():
        return f"{int(value)}s"
    if value < 1:
        return f"{value * 1000:.0f}ms" if value < 0.1 else f"{value:g}s"
    return f"{value:.2f}s"


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def render(snap: dict[str, Any]) -> str:
    h = snap["halo"]
    reloads = f", {h['reloads']} reload{'s' if h['reloads'] != 1 else ''}" if h["reloads"] else ""
    lines = [
        f"halo {h['version']} on {h['router_id']} (pid {h['pid']}), up "
        f"{_duration(h['uptime'])}, config {h['config']}{reloads}"
    ]
    insts = snap.get("instances", [])
    if insts:
        rows = []
        for i in insts:
            if i["state"] == "MASTER":
                seen = "(this node)"
            elif i.get("master"):
                seen = f"{i['master']} ({i['master_priority']})"
            else:
                seen = None
            rows.append(
                [
                    i["name"],
                    i["state"],
                    i["interface"],
                    i["vrid"],
                    f"v{i['version']}",
                    i["priority"],
                    i["base_priority"],
                    _seconds(i["advert_interval"]),
                    seen,
                    "; ".join(i.get("faults", [])) or None,
                ]
            )
        lines += [
            "",
            *table(
                [
                    "INSTANCE",
                    "STATE",
                    "IFACE",
                    "VRID",
                    "VER",
                    "PRIO",
                    "BASE",
                    "ADVERT",
                    "MASTER SEEN",
                    "FAULTS",
                ],
                rows,
            ),
        ]
    groups = snap.get("sync_groups", [])
    if groups:
        lines += [
            "",
            *table(
                ["SYNC GROUP", "STATE", "MEMBERS"],
                [[g["name"], g["state"], ", ".join(g["members"])] for g in groups],
            ),
        ]
    checks = snap.get("checks", [])
    if checks:
        rows = [
            [
                c["name"],
                c["type"],
                c["state"],
                {True: "ok", False: "failed", None: None}[c.get("last_ok")],
                _seconds(c.get("last_latency")) if c.get("runs") else None,
                c["runs"],
                c["failures"] + c["timeouts"] + c["errors"],
                (c.get("disabled") or c.get("last_message") or "").splitlines()[0][:60]
                if c.get("disabled") or c.get("last_message")
                else None,
            ]
            for c in checks
        ]
        lines += [
            "",
            *table(
                ["CHECK", "TYPE", "STATE", "LAST", "LATENCY", "RUNS", "FAILED", "MESSAGE"], rows
            ),
        ]
    pools = snap.get("pools", [])
    if pools:
        rows = []
        for p in pools:
            quorum = f"{'yes' if p['quorum'] else 'NO'} ({p['live_weight']}/{p['quorum_needed']})"
            servers = p.get("servers", []) or [None]
            for n, s in enumerate(servers):
                head = [p["name"], quorum] if n == 0 else ["", ""]
                if s is None:
                    rows.append([*head, None, None, None, None])
                    continue
                failing = [c["name"] for c in s.get("checks", []) if not c.get("up")]
                rows.append(
                    [
                        *head,
                        s["server"],
                        s["state"],
                        s["weight"],
                        ", ".join(failing) + " down" if failing else None,
                    ]
                )
        lines += [
            "",
            *table(["VIRTUAL SERVER", "QUORUM", "REAL SERVER", "STATE", "WEIGHT", "CHECKS"], rows),
        ]
    for key, title in (("backends", "backends"), ("notifiers", "notifiers")):
        items = snap.get(key, [])
        if items:
            parts = []
            for b in items:
                text = f"{b['name']} ({b['type']})" if b.get("type") != b["name"] else b["name"]
                err = b.get("status", {}).get("last_error") or b.get("status", {}).get("error")
                parts.append(text + (f" [last error: {err}]" if err else ""))
            lines += ["", f"{title}: " + ", ".join(parts)]
    if not (insts or checks or pools):
        lines += ["", "(no VRRP instances, checks or virtual servers configured)"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- command


def cmd_status(args: argparse.Namespace) -> int:
    token = args.token
    try:
        if args.api:
            endpoint = parse(args.api)
        elif os.path.exists(args.config):
            endpoint, configured = settings_from_config(args.config)
            token = token or configured
        else:
            endpoint = resolve(None, DEFAULT_STATE_DIR)
    except ValueError as exc:
        print(f"halo status: --api: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"halo status: {exc}", file=sys.stderr)
        return 1
    try:
        snap = get_json(endpoint, "/v1/status", token=token)
    except ApiError as exc:
        print(f"halo status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(snap, indent=2))
    else:
        print(render(snap))
    return 0
