"""The declarative schema: types, constraints, aliases, and the JSON Schema it renders."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Interface
from pathlib import Path
from typing import Annotated, Literal

import jsonschema
import pytest
import yaml

from halo_core import cli
from halo_core.config.model import VirtualAddress
from halo_core.schema import Alias, Length, Range, SchemaError, Seconds
from halo_core.validation import validate


@dataclass(frozen=True, kw_only=True)
class Sample:
    n: Annotated[int, Range(1, 10)]
    d: Seconds = Seconds(1.0)
    name: Annotated[str, Length(max=3), Alias(("nm",))] = "x"
    mode: Literal["a", "b"] = "a"
    addr: IPv4Address | None = None
    items: list[int] = field(default_factory=list)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(2, 2.0), (0.5, 0.5), ("100ms", 0.1), ("1.5s", 1.5), ("2m", 120.0), ("1h", 3600.0)],
)
def test_durations(raw: object, seconds: float) -> None:
    assert validate(Sample, {"n": 1, "d": raw}).d == pytest.approx(seconds)


def test_all_problems_reported_together() -> None:
    with pytest.raises(SchemaError) as exc:
        validate(
            Sample, {"n": 0, "name": "long", "mode": "c", "addr": "x", "items": [1, "2"], "zz": 1}
        )
    got = {(p.dotted, p.message) for p in exc.value.problems}
    assert got == {
        ("n", "must be between 1 and 10, not 0"),
        ("name", "must have at most 3 characters"),
        ("mode", "must be one of 'a', 'b', not 'c'"),
        ("addr", "'x' is not an IPv4 address"),
        ("items[1]", "must be an integer, not a string ('2')"),
        ("zz", "unknown key"),
    }


def test_alias_and_case_insensitive_literal() -> None:
    s = validate(Sample, {"n": 3, "nm": "ab", "mode": "B"})
    assert (s.name, s.mode) == ("ab", "b")


def test_booleans_are_not_integers() -> None:
    with pytest.raises(SchemaError):
        validate(Sample, {"n": True})


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("192.0.2.16", ("192.0.2.16/32", None, None, None)),
        ("192.0.2.16/24 dev eth0 label eth0:1", ("192.0.2.16/24", "eth0", "eth0:1", None)),
        ("2001:db8::1/64 dev eth1 scope link", ("2001:db8::1/64", "eth1", None, "link")),
        (
            {"address": "192.0.2.1/24", "label": "eth0:vip"},
            ("192.0.2.1/24", None, "eth0:vip", None),
        ),
    ],
)
def test_virtual_address_forms(text: object, expect: tuple[object, ...]) -> None:
    v = VirtualAddress.parse(text)
    assert (str(v.address), v.dev, v.label, v.scope) == expect
    if isinstance(v.address, IPv6Interface):
        assert v.address.version == 6


def test_json_schema_validates_the_valid_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    """`halo schema` is a valid JSON Schema and accepts every valid config (editors use it)."""
    assert cli.main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    configs = Path(__file__).resolve().parent.parent / "configs" / "valid"
    for path in configs.glob("*.yaml"):
        data = yaml.safe_load(path.read_text()) or {}
        data.pop("include", None)
        errors = list(validator.iter_errors(data))
        assert not errors, f"{path.name}: {errors[0].message}"
    bad = {"vrrp_instances": {"VI_1": {"interface": "eth0", "virtual_router_id": 999}}}
    assert list(validator.iter_errors(bad))
    assert list(validator.iter_errors({"checks": {"c": {"type": "tcp", "nope": 1}}}))
