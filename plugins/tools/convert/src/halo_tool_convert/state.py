"""The state a conversion keeps between keywords and blocks: what an instance, sync
group, script, virtual or real server has said so far, and the checker defaults passed
down from virtual to real servers to checkers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from halo_tool_convert.emit import Entry, YMap
from halo_tool_convert.lexer import Loc
from halo_tool_convert.parser import Node


@dataclass
class ScriptDef:
    name: str
    loc: Loc
    check: YMap
    weight: int = 0
    reverse: bool = False
    has_script: bool = False


@dataclass
class TrackFileDef:
    name: str
    loc: Loc
    file: str | None = None
    weight: int = 1
    reverse: bool = False


@dataclass
class TrackRef:
    kind: Literal["check", "interface", "file"]
    name: str
    entry: YMap
    item: Entry
    weight: int
    loc: Loc


@dataclass
class Notify:
    key: str
    command: str
    user: str | None
    loc: Loc


@dataclass
class InstanceState:
    name: str
    loc: Loc
    m: YMap
    state: str = "BACKUP"
    priority: int = 100
    version: int | None = None
    advert_int: float | None = None
    tracks: list[TrackRef] = field(default_factory=list)
    notify: list[Notify] = field(default_factory=list)
    smtp_alert: bool | None = None
    vip_locs: list[Loc] = field(default_factory=list)
    strict: bool | None = None
    """The instance's own strict_mode (None: global_defs vrrp_strict decides)."""
    strict_loc: Loc | None = None
    strict_on: bool = False
    """keepalived's strict mode applies (set once the instance is converted)."""


@dataclass
class GroupState:
    name: str
    loc: Loc
    members: list[tuple[str, Loc]] = field(default_factory=list)
    tracking_weight: bool = False
    smtp_alert: bool | None = None
    notify: list[Notify] = field(default_factory=list)


@dataclass
class Email:
    recipients: list[tuple[str, Loc]] = field(default_factory=list)
    sender: str | None = None
    server: str | None = None
    port: int | None = None
    helo: str | None = None
    timeout: float | None = None
    smtp_alert: bool | None = None
    smtp_alert_vrrp: bool | None = None
    smtp_alert_checker: bool | None = None
    no_email_faults: bool = False
    nodes: list[Node] = field(default_factory=list)


@dataclass
class CheckDefaults:
    """Checker settings a virtual or real server passes down to its checkers."""

    connect_timeout: float | None = None
    retry: int | None = None
    delay_before_retry: float | None = None
    warmup: float | None = None
    delay_loop: float | None = None
    virtualhost: str | None = None

    def over(self, other: CheckDefaults) -> CheckDefaults:
        """These settings, falling back to ``other``'s."""
        return CheckDefaults(
            **{
                k: getattr(self, k) if getattr(self, k) is not None else getattr(other, k)
                for k in self.__dataclass_fields__
            }
        )


@dataclass
class VsState:
    m: YMap
    loc: Loc
    label: str
    lb_kind: str = "NAT"
    defaults: CheckDefaults = field(default_factory=CheckDefaults)
    smtp_alert: bool | None = None
    rs_alerts: list[bool | None] = field(default_factory=list)
    rs_methods: list[tuple[str, Node]] = field(default_factory=list)


@dataclass
class CheckCtx:
    m: YMap
    kind: str  # keepalived's checker keyword
    defaults: CheckDefaults
    own: CheckDefaults = field(default_factory=CheckDefaults)


@dataclass
class RsCtx:
    m: YMap
    vs: VsState
    defaults: CheckDefaults
    node: Node
    index: int = 0
