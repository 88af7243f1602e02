"""The OpenAPI 3.1 description of the status API, served at ``/openapi.json``.

The schemas describe what :mod:`halo_tool_status.snapshot` returns; the tests validate every
live response against them, so the description cannot drift from the server.
"""

from __future__ import annotations

from typing import Any

from halo_core import version

STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
OPT_STR = {"type": ["string", "null"]}
OPT_INT = {"type": ["integer", "null"]}
OPT_NUM = {"type": ["number", "null"]}
COUNTS = {"type": "object", "additionalProperties": INT}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": required if required is not None else list(props),
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


CHECK = _obj(
    {
        "name": STR,
        "type": STR,
        "state": {"enum": ["UP", "DOWN", "DISABLED"]},
        "up": BOOL,
        "runs": INT,
        "successes": INT,
        "failures": INT,
        "timeouts": INT,
        "errors": INT,
        "transitions": INT,
        "last_ok": {"type": ["boolean", "null"]},
        "last_message": OPT_STR,
        "last_latency": NUM,
        "dynamic_weight": OPT_INT,
        "start_error": {
            **OPT_STR,
            "description": "why the checker could not be built (it fails every round)",
        },
        "disabled": {
            **OPT_STR,
            "description": "why the check cannot run at all: it never runs, and the VRRP"
            " instances tracking it ignore it (keepalived's disabled script)",
        },
    }
)

INSTANCE = _obj(
    {
        "name": STR,
        "state": {"enum": ["INITIALIZE", "BACKUP", "MASTER", "FAULT", "STOP"]},
        "interface": STR,
        "vrid": INT,
        "version": {"enum": [2, 3]},
        "priority": {**INT, "description": "effective priority"},
        "base_priority": {**INT, "description": "configured priority"},
        "advert_interval": NUM,
        "master_down_interval": NUM,
        "master": {**OPT_STR, "description": "the master last heard (null while MASTER)"},
        "master_priority": OPT_INT,
        "faults": {"type": "array", "items": STR},
        "group": OPT_STR,
        "counters": COUNTS,
        "source": STR,
        "virtual_ipaddress": {"type": "array", "items": STR},
        "preempt": BOOL,
        "timers": _obj(
            {
                "advert_interval": NUM,
                "master_advert_interval": NUM,
                "master_down_interval": NUM,
                "skew_time": NUM,
                "advert_timer_in": {**OPT_NUM, "description": "seconds (armed in MASTER)"},
                "master_down_timer_in": {**OPT_NUM, "description": "seconds (armed in BACKUP)"},
            }
        ),
        "tracks": {
            "type": "array",
            "items": _obj(
                {
                    "input": STR,
                    "up": BOOL,
                    "value": INT,
                    "weight": INT,
                    "reverse": BOOL,
                },
                ["input", "weight", "reverse"],
            ),
        },
    }
)

POOL = _obj(
    {
        "name": STR,
        "quorum": BOOL,
        "quorum_needed": INT,
        "live_weight": INT,
        "servers": {
            "type": "array",
            "items": _obj(
                {
                    "server": STR,
                    "state": {"enum": ["UP", "DOWN"]},
                    "up": BOOL,
                    "weight": INT,
                    "checks": _list("Check"),
                }
            ),
        },
        "members": {
            "type": "array",
            "items": _obj(
                {"address": STR, "port": OPT_INT, "weight": INT, "sorry": BOOL},
            ),
        },
    }
)

PLUGIN = _obj(
    {
        "name": STR,
        "type": OPT_STR,
        "status": {"type": "object", "description": "what the plugin reports (its status())"},
    }
)

BUS = _obj(
    {
        "published": INT,
        "subscribers": {
            "type": "array",
            "items": _obj(
                {
                    "name": STR,
                    "kinds": {"type": ["array", "null"], "items": STR},
                    "queued": INT,
                    "delivered": INT,
                    "failed": INT,
                    "timed_out": INT,
                    "dropped": INT,
                    "last_error": OPT_STR,
                }
            ),
        },
    }
)

DAEMON = _obj(
    {
        "version": STR,
        "pid": INT,
        "router_id": STR,
        "config": STR,
        "started": NUM,
        "uptime": NUM,
        "reloads": INT,
        "hook_failures": COUNTS,
    }
)

STATUS = _obj(
    {
        "halo": _ref("Daemon"),
        "instances": _list("Instance"),
        "sync_groups": _list("SyncGroup"),
        "checks": _list("Check"),
        "pools": _list("Pool"),
        "backends": _list("Plugin"),
        "notifiers": _list("Plugin"),
        "bus": _ref("Bus"),
    }
)

SCHEMAS: dict[str, Any] = {
    "Status": STATUS,
    "Daemon": DAEMON,
    "Instance": INSTANCE,
    "SyncGroup": _obj({"name": STR, "state": STR, "members": {"type": "array", "items": STR}}),
    "Check": CHECK,
    "Pool": POOL,
    "Plugin": PLUGIN,
    "Bus": BUS,
    "Index": _obj(
        {"name": STR, "version": STR, "openapi": STR, "endpoints": {"type": "array", "items": STR}}
    ),
    "Error": _obj({"error": STR, "status": INT}),
    "Event": {
        "type": "object",
        "description": "a bus event: its kind, source, time and the fields of that kind "
        "(see halo_core.events)",
        "properties": {"kind": STR, "source": STR, "time": NUM},
        "required": ["kind", "source", "time"],
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "401": _json(_ref("Error"), "a token is configured and the request lacks it"),
}
NOT_FOUND = {"404": _json(_ref("Error"), "nothing by that name")}


def _get(
    summary: str, ok: dict[str, Any], *, extra: dict[str, Any] | None = None, **op: Any
) -> dict[str, Any]:
    return {"get": {"summary": summary, **op, "responses": {"200": ok, **ERRORS, **(extra or {})}}}


def _name(what: str) -> list[dict[str, Any]]:
    return [{"name": "name", "in": "path", "required": True, "schema": STR, "description": what}]


PATHS: dict[str, Any] = {
    "/": _get("what this API serves", _json(_ref("Index"), "index")),
    "/healthz": _get(
        "liveness: answers while the daemon's event loop runs",
        {"description": "ok", "content": {"text/plain": {"schema": STR}}},
    ),
    "/openapi.json": _get(
        "this description", _json({"type": "object"}, "the OpenAPI 3.1 document")
    ),
    "/metrics": _get(
        "Prometheus metrics",
        {
            "description": "text exposition format 0.0.4",
            "content": {"text/plain; version=0.0.4": {"schema": STR}},
        },
    ),
    "/v1/status": _get("everything at once", _json(_ref("Status"), "the daemon's state")),
    "/v1/instances": _get("VRRP instances", _json(_list("Instance"), "every instance")),
    "/v1/instances/{name}": _get(
        "one VRRP instance",
        _json(_ref("Instance"), "the instance"),
        extra=NOT_FOUND,
        parameters=_name("instance name"),
    ),
    "/v1/sync-groups": _get("VRRP sync groups", _json(_list("SyncGroup"), "every group")),
    "/v1/checks": _get("named checks", _json(_list("Check"), "every check of `checks:`")),
    "/v1/checks/{name}": _get(
        "one check", _json(_ref("Check"), "the check"), extra=NOT_FOUND, parameters=_name("check")
    ),
    "/v1/pools": _get("virtual servers", _json(_list("Pool"), "every virtual server")),
    "/v1/pools/{name}": _get(
        "one virtual server",
        _json(_ref("Pool"), "the virtual server"),
        extra=NOT_FOUND,
        parameters=_name("virtual server name (URL-encoded)"),
    ),
    "/v1/backends": _get("backends", _json(_list("Plugin"), "every running backend")),
    "/v1/notifiers": _get("notifiers", _json(_list("Plugin"), "every running notifier")),
    "/v1/bus": _get("event bus statistics", _json(_ref("Bus"), "the bus")),
    "/v1/events": _get(
        "bus events as they happen (server-sent events)",
        {
            "description": "a text/event-stream: `event:` is the kind, `data:` one JSON "
            "Event, `id:` a sequence number",
            "content": {"text/event-stream": {"schema": STR}},
        },
        parameters=[
            {
                "name": "kinds",
                "in": "query",
                "required": False,
                "schema": STR,
                "description": "comma-separated event kinds to receive (default: all)",
            }
        ],
    ),
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "halo status API",
            "version": version(),
            "description": "Read-only state of a running halo daemon. When a token is "
            "configured every request needs `Authorization: Bearer TOKEN`.",
        },
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"token": []}],
    }
