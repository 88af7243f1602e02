"""What a notification can say about an event: its fields as JSON values, keepalived's
wording (summary and detail), ``${field}`` templates over them, and secrets taken from the
environment or a file. Documented in docs/events.md.

Stdlib only: notifier schemas import it, and ``halo check`` must stay light. A library, not
a plugin and not in halo-core (the daemon never describes an event in words): the e-mail
and webhook notifiers require it, and a third-party notifier that does the same describes
events the same way.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from halo_core.events import (
    BackendFailed,
    CheckStateChanged,
    ConfigReloaded,
    Event,
    PoolChanged,
    PriorityChanged,
    RealServerChanged,
    SyncGroupStateChanged,
    VrrpStateChanged,
)
from halo_core.log import add_secret

# ``time`` is given at the top level; ``service`` (pool events) is the virtual server's whole
# configuration: the receiver has it already, and it may hold other plugins' secrets.
_NOT_DATA = frozenset({"time", "service"})

# Fields every event gets in templates, besides its own.
COMMON_FIELDS = (
    "kind",
    "router_id",
    "notifier",
    "time",
    "timestamp",
    "summary",
    "detail",
    "name",
    "state",
)


def jsonable(value: Any) -> Any:
    """``value`` as JSON data: dataclasses become objects, addresses and the like strings."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)


def event_data(event: Event) -> dict[str, Any]:
    """The event's own fields (see docs/events.md), as JSON values."""
    return {
        f.name: jsonable(getattr(event, f.name))
        for f in dataclasses.fields(event)
        if f.name not in _NOT_DATA
    }


def name_of(event: Event) -> str:
    """What the event is about: the instance, group, real server, check or backend."""
    if isinstance(event, RealServerChanged):
        return event.real_server
    for attr in ("instance", "group", "virtual_server", "check", "backend"):
        value = getattr(event, attr, None)
        if value:
            return str(value)
    return event.source


def state_of(event: Event) -> str:
    """The new state: MASTER, BACKUP, FAULT, STOP, or UP/DOWN ("" when not a state change)."""
    new = getattr(event, "new", None)
    if isinstance(new, str):
        return new.upper()
    up = getattr(event, "up", None)
    if isinstance(up, bool):
        return "UP" if up else "DOWN"
    return ""


def _entering(state: str) -> str:
    return "Stopping" if state == "STOP" else f"Entering {state} state"


def summary(event: Event) -> str:
    """One line, in keepalived's SMTP alert words where keepalived has them."""
    if isinstance(event, VrrpStateChanged):
        return f"VRRP Instance {event.instance} - {_entering(event.new)}"
    if isinstance(event, SyncGroupStateChanged):
        return f"VRRP Group {event.group} - {_entering(event.new)}"
    if isinstance(event, RealServerChanged):
        state = "UP" if event.up else "DOWN"
        return f"Realserver {event.real_server} of virtual server {event.virtual_server} - {state}"
    if isinstance(event, CheckStateChanged):
        return f"Check {event.check} - {'UP' if event.up else 'DOWN'}"
    if isinstance(event, PriorityChanged):
        return f"VRRP Instance {event.instance} - priority {event.old} -> {event.new}"
    if isinstance(event, BackendFailed):
        about = f" for {event.instance}" if event.instance else ""
        return f"Backend {event.backend} failed{about}"
    if isinstance(event, ConfigReloaded):
        return "Configuration reloaded"
    if isinstance(event, PoolChanged):
        quorum = "" if event.quorum else ", quorum lost"
        return f"Virtual server {event.virtual_server} - {len(event.members)} members{quorum}"
    return f"{event.kind} {name_of(event)}"


def detail(event: Event) -> str:
    """keepalived's alert body line, or the event's reason."""
    if isinstance(event, VrrpStateChanged):
        return {
            "MASTER": "=> VRRP Instance is now owning VRRP VIPs <=",
            "BACKUP": "=> VRRP Instance is no longer owning VRRP VIPs <=",
            "FAULT": "=> VRRP Instance is no longer owning VRRP VIPs <=",
            "STOP": "=> VRRP Instance stopping <=",
        }.get(event.new, event.reason)
    if isinstance(event, SyncGroupStateChanged):
        if event.new == "STOP":
            return "=> All VRRP group instances are now stopping <="
        return f"=> All VRRP group instances are now in {event.new} state <="
    if isinstance(event, RealServerChanged):
        return "=> CHECK succeed on service <=" if event.up else "=> CHECK failed on service <="
    for attr in ("reason", "error", "message", "summary", "detail"):
        value = getattr(event, attr, None)
        if value:
            return str(value)
    return ""


def values(event: Event, *, router_id: str, notifier: str) -> dict[str, Any]:
    """Every field a template may use, as JSON values: the event's own and the common ones
    (a common name wins over an event field of the same name)."""
    from datetime import datetime  # here: notifier schemas import this module (0.45 MB)

    out = event_data(event)
    out.update(
        kind=event.kind,
        router_id=router_id,
        notifier=notifier,
        time=datetime.fromtimestamp(event.time).astimezone().isoformat(timespec="seconds"),
        timestamp=event.time,
        summary=summary(event),
        detail=detail(event),
        name=name_of(event),
        state=state_of(event),
    )
    return out


def text(value: Any) -> str:
    """A JSON value as template text: nothing for null, lists space-separated."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return " ".join(str(v) for v in value)
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def utc_time(timestamp: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- templates


def _event_classes(cls: type[Event] = Event) -> Iterator[type[Event]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _event_classes(sub)


def known_fields() -> set[str]:
    """Names a template may use: the common ones and every field of every event class
    imported so far (a plugin's own events included)."""
    names = set(COMMON_FIELDS)
    for cls in _event_classes():
        if dataclasses.is_dataclass(cls):
            names.update(f.name for f in dataclasses.fields(cls) if f.name not in _NOT_DATA)
    return names


def template_problem(template: str, extra: tuple[str, ...] = ()) -> str | None:
    """Why ``template`` cannot be used (bad ``$`` syntax, unknown field), or None."""
    t = string.Template(template)
    if not t.is_valid():
        return "invalid template: write ${field} for a field and $$ for a dollar sign"
    known = known_fields() | set(extra)
    unknown = sorted(set(t.get_identifiers()) - known)
    if unknown:
        import difflib  # only for a wrong name: not on the daemon's import path

        close = difflib.get_close_matches(unknown[0], sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else "see docs/events.md"
        return f"unknown field {unknown[0]!r} in template ({hint})"
    return None


class _Fields(dict[str, Any]):
    """Template mapping: a field this event does not have renders as nothing."""

    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, fields: dict[str, Any]) -> str:
    return string.Template(template).substitute(_Fields({k: text(v) for k, v in fields.items()}))


def render_json(template: Any, fields: dict[str, Any]) -> Any:
    """Render a JSON-shaped template: every string in it is a template, and a string that is
    exactly one ``${field}`` becomes that field's JSON value (a number stays a number)."""
    if isinstance(template, str):
        t = string.Template(template)
        ids = t.get_identifiers()
        if len(ids) == 1 and template.strip() in (f"${{{ids[0]}}}", f"${ids[0]}"):
            return fields.get(ids[0])
        return render(template, fields)
    if isinstance(template, list):
        return [render_json(v, fields) for v in template]
    if isinstance(template, dict):
        return {str(k): render_json(v, fields) for k, v in template.items()}
    return template


def json_template_problem(
    template: Any, path: tuple[str | int, ...] = ()
) -> tuple[tuple[str | int, ...], str] | None:
    """The first problem in a JSON-shaped template: (path, message) or None.

    A list or mapping met again (a YAML alias repeats one object) is not looked into again:
    an alias bomb of a million strings costs what was written, not what it expands to."""
    seen: set[int] = set()

    def walk(node: Any, where: tuple[str | int, ...]) -> tuple[tuple[str | int, ...], str] | None:
        if isinstance(node, str):
            problem = template_problem(node)
            return (where, problem) if problem else None
        if id(node) in seen:
            return None
        seen.add(id(node))
        items: list[tuple[str | int, Any]] = []
        if isinstance(node, list):
            items = list(enumerate(node))
        elif isinstance(node, dict):
            items = [(str(k), v) for k, v in node.items()]
        for key, value in items:
            found = walk(value, (*where, key))
            if found:
                return found
        return None

    return walk(template, path)


# --------------------------------------------------------------------------- secrets


@dataclass(frozen=True)
class Secret:
    """A password or key: ``{env: NAME}`` (an environment variable of the daemon),
    ``{file: /path}`` (the file's content, without its final newline) or, least preferred,
    the value itself. Never shown: its repr names only where it comes from."""

    env: str | None = None
    file: str | None = None
    value: str | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def parse(cls, data: Any) -> Secret:
        if isinstance(data, str | int) and not isinstance(data, bool):
            add_secret(str(data))  # from now on never in a log line or a status field
            return cls(value=str(data))
        if not isinstance(data, dict):
            raise ValueError("must be a string, {env: NAME} or {file: PATH}")
        unknown = sorted(set(data) - {"env", "file"})
        if unknown:
            raise ValueError(
                f"unknown key {unknown[0]!r} (a secret is {{env: NAME}} or {{file: PATH}})"
            )
        if len(data) != 1:
            raise ValueError("needs exactly one of 'env' or 'file'")
        (key, ref), *_ = data.items()
        if not isinstance(ref, str) or not ref:
            raise ValueError(f"{key} must be a non-empty string")
        return cls(env=ref) if key == "env" else cls(file=ref)

    @classmethod
    def __json_schema__(cls) -> dict[str, Any]:
        ref = {"type": "string", "minLength": 1}
        return {
            "anyOf": [
                {"type": "string", "description": "the secret itself (prefer env or file)"},
                {
                    "type": "object",
                    "properties": {"env": ref},
                    "required": ["env"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {"file": ref},
                    "required": ["file"],
                    "additionalProperties": False,
                },
            ]
        }

    def reveal(self) -> str:
        """The secret's value; ValueError (which never contains it) when it is unavailable."""
        if self.value is not None:
            return self.value
        if self.env is not None:
            found = os.environ.get(self.env)
            if found is None:
                raise ValueError(f"environment variable {self.env} is not set")
            add_secret(found)
            return found
        assert self.file is not None
        try:
            with open(self.file, encoding="utf-8") as fh:
                found = fh.read().rstrip("\r\n")
            add_secret(found)
            return found
        except OSError as exc:
            raise ValueError(f"cannot read secret file {self.file}: {exc.strerror}") from None

    def __repr__(self) -> str:
        if self.env is not None:
            return f"Secret(env={self.env!r})"
        if self.file is not None:
            return f"Secret(file={self.file!r})"
        return "Secret(<hidden>)"

    __str__ = __repr__
