"""`halo schema` and `halo check` agree: one set of declarations, two outputs.

Every malformed configuration of the corpus (tests/configs/invalid) is run through both
`halo check` and a JSON Schema validator (the ``jsonschema`` package) with the schema `halo
schema` prints. Each one `halo check` rejects is rejected by the schema too, unless its
reason is one a JSON Schema cannot say: those are listed in CHECK_ONLY with why (and in
docs/configuration.md, "What the JSON Schema cannot check"). Every valid example (the valid
corpus, examples/, the seeds' conversions in halo-tool-convert's corpus, and the YAML blocks
of the README, docs/ and the plugins' READMEs that `halo check` accepts) is accepted by both.

An editor validates each file on its own, so a configuration's included files are validated
as documents of their own, as it would.
"""

from __future__ import annotations

import glob
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from halo_core import cli, plugins
from halo_core.config import ConfigError, load, load_text, schema_document

ROOT = Path(__file__).resolve().parents[2]
INVALID = sorted((ROOT / "tests" / "configs" / "invalid").glob("*.yaml"))

SYNTAX = "not YAML: a JSON Schema validates a parsed document, there is none"
ACROSS_ITEMS = "a rule across sections or items (references, uniqueness): not one value's"
ACROSS_FIELDS = "a rule between two fields' values (a version, an address family)"
FILES = "about the files (include): the schema sees one parsed file"
CHECK_ONLY: dict[str, str] = {
    "01-syntax-unclosed-bracket": SYNTAX,
    "02-syntax-bad-indent": SYNTAX,
    "03-syntax-tab": SYNTAX,
    "07-missing-interface": ACROSS_ITEMS,  # global default_interface may give it
    "13-v2-fractional-advert": ACROSS_FIELDS,  # advert_int's range depends on version
    "14-v3-advert-too-long": ACROSS_FIELDS,
    "18-vip-mixed-families": ACROSS_ITEMS,  # IPv4 and IPv6 in one list
    "19-ipv6-on-v2": ACROSS_FIELDS,
    # YAML parsers keep the last of two equal keys: the parsed document has one
    "22-duplicate-instance": "a duplicate key: gone from the parsed document",
    "23-duplicate-vrid": ACROSS_ITEMS,
    "29-track-unknown-check": ACROSS_ITEMS,
    "31-sync-group-unknown-member": ACROSS_ITEMS,
    "35-include-missing": FILES,
    "36-include-duplicate": FILES,
    "39-unicast-family": ACROSS_FIELDS,
    "60-notifier-filters": ACROSS_ITEMS,  # names other sections define
}


@pytest.fixture(scope="module")
def loaded() -> plugins.Plugins:
    return plugins.load()


@pytest.fixture(scope="module")
def validator(loaded: plugins.Plugins) -> jsonschema.Draft202012Validator:
    schema = schema_document(loaded)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_errors(validator: jsonschema.Draft202012Validator, path: Path) -> list[str] | None:
    """What the schema says of ``path`` and the files it includes, each validated on its
    own; None when a file is not YAML."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return None
    found = [e.message for e in validator.iter_errors(data)]
    includes = data.get("include", []) if isinstance(data, dict) else []
    for pattern in [includes] if isinstance(includes, str) else includes:
        for included in sorted(glob.glob(str(path.parent / str(pattern)))):
            found += schema_errors(validator, Path(included)) or []
    return found


def test_the_schema_is_what_halo_schema_prints(
    loaded: plugins.Plugins, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(schema_document(loaded)))


def test_every_malformed_config_is_rejected_by_both(
    loaded: plugins.Plugins,
    validator: jsonschema.Draft202012Validator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    both, check_only = [], []
    for path in INVALID:
        with pytest.raises(ConfigError):
            load(str(path), loaded)
        if schema_errors(validator, path):
            both.append(path.stem)
        else:
            check_only.append(path.stem)
    with capsys.disabled():
        print(
            f"\nschema parity: {len(INVALID)} malformed configs, {len(both)} rejected by both,"
            f" {len(check_only)} by halo check only"
        )
    assert check_only == sorted(CHECK_ONLY), "a reason moved between schema and check"


def test_the_issue_cases_are_rejected_by_the_schema(
    validator: jsonschema.Draft202012Validator,
) -> None:
    """What halo schema used to accept or refuse against halo check."""
    instance = {"interface": "eth0", "virtual_router_id": 51, "virtual_ipaddress": ["192.0.2.1"]}
    assert not list(validator.iter_errors({"include": ["conf.d/*.yaml"]}))
    assert not list(validator.iter_errors({"vrrp_instances": {"VI_1": instance}}))
    rejected: list[dict[str, Any]] = [
        {"checks": {"c": {"type": "tcp", "connect_port": 80, "interval": "2 parsecs"}}},
        {"vrrp_instances": {"VI_1": {**instance, "interface": "eth0/" + "x" * 20}}},
        {"vrrp_instances": {"VI 1": instance}},
        {"vrrp_instances": {"VI_1": {**instance, "virtual_ipaddress": ["192.0.2.300"]}}},
        {"vrrp_instances": {"VI_1": {**instance, "unicast_peer": ["192.0.2.1x"]}}},
        {"vrrp_instances": {"VI_1": {**instance, "track": [{"check": "a", "file": "/f"}]}}},
    ]
    for doc in rejected:
        assert list(validator.iter_errors(doc)), doc


def test_a_wrong_type_option_names_that_type_s_problem(
    validator: jsonschema.Draft202012Validator,
) -> None:
    """Plugin sections are unions discriminated by `type` (if/then): the error is the
    chosen type's, not 'not valid under any of the given schemas'."""
    doc = {"checks": {"web": {"type": "tcp", "connect_port": 80, "conect_timeout": 2}}}
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    assert (
        error.message == "Additional properties are not allowed ('conect_timeout' was unexpected)"
    )
    doc = {"checks": {"web": {"type": "htttp"}}}
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    assert error.message.startswith("'htttp' is not one of [") and "'http'" in error.message


def valid_examples(loaded: plugins.Plugins) -> list[tuple[str, Any]]:
    """(name, parsed document) of every example `halo check` accepts."""
    out: list[tuple[str, Any]] = []
    files = [
        *sorted((ROOT / "tests" / "configs" / "valid").glob("*.yaml")),
        *sorted((ROOT / "examples").glob("**/*.yaml")),
        *sorted((ROOT / "plugins" / "tools" / "convert" / "tests" / "corpus").glob("*.yaml")),
    ]
    for path in files:
        load(str(path), loaded)  # every one of these is valid
        out.append((str(path.relative_to(ROOT)), yaml.safe_load(path.read_text()) or {}))
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    pages += sorted(ROOT.glob("plugins/*/*/README.md"))
    for page in pages:
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", page.read_text(), re.S)):
            try:
                load_text(block, str(page), loaded)
            except ConfigError:
                continue  # a fragment (one section, a placeholder): not a configuration
            out.append((f"{page.relative_to(ROOT)} block {i}", yaml.safe_load(block) or {}))
    return out


def test_every_valid_example_is_accepted_by_both(
    loaded: plugins.Plugins,
    validator: jsonschema.Draft202012Validator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    examples = valid_examples(loaded)
    assert len(examples) >= 30
    refused = [
        f"{name}: {jsonschema.exceptions.best_match(errors).message}"
        for name, doc in examples
        if (errors := list(validator.iter_errors(doc)))
    ]
    with capsys.disabled():
        print(f"\nschema parity: {len(examples)} valid examples, {len(refused)} refused")
    assert not refused
