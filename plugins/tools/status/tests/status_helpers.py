"""Helpers for the operations tests: plain-socket HTTP (so malformed requests can be sent
too), OpenAPI response validation and the Prometheus text parser."""

from __future__ import annotations

import json
import socket
from typing import Any

from jsonschema import Draft202012Validator
from prometheus_client.parser import text_string_to_metric_families

from halo_tool_status import openapi


def connect(where: str | tuple[str, int], timeout: float = 5.0) -> socket.socket:
    if isinstance(where, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(where)
    return s


def raw(where: str | tuple[str, int], data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` and read until the server closes the connection."""
    with connect(where, timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def split(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def http(
    where: str | tuple[str, int],
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    hdrs = {"Host": "localhost", **(headers or {})}
    req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    status, got, body = split(raw(where, (req + "\r\n").encode()))
    if "content-length" in got and method != "HEAD":
        assert int(got["content-length"]) == len(body)
    return status, got, body


def get_json(where: str | tuple[str, int], path: str, **kw: Any) -> Any:
    status, headers, body = http(where, path, **kw)
    assert status == 200, (path, status, body)
    assert headers["content-type"] == "application/json"
    return json.loads(body)


DOC = openapi.document()


def response_schema(path: str) -> dict[str, Any] | None:
    """The documented 200 JSON schema of ``path`` (an OpenAPI template), None if not JSON."""
    content = DOC["paths"][path]["get"]["responses"]["200"]["content"]
    if "application/json" not in content:
        return None
    return content["application/json"]["schema"]  # type: ignore[no-any-return]


def validate(instance: Any, schema: dict[str, Any]) -> None:
    """Validate against a schema whose $refs point into the OpenAPI document."""
    root = {**schema, "components": DOC["components"]}
    Draft202012Validator(root).validate(instance)


def metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample, by (sample name, labels), as the Prometheus client's parser reads it."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def families(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}
