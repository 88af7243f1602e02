"""The conversion corpus: one keepalived.conf per feature group and one per seed config,
each with the YAML and the report it must give (``NAME.yaml``, ``NAME.report``).

Every converted file must load with halo's own loader. After a deliberate change to the
output, regenerate the expected files with ``HALO_UPDATE_GOLDEN=1 pytest tests/convert``
and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from halo_core import plugins as plugin_loader
from halo_core.config import load_text
from halo_core.plugins import Plugins
from halo_tool_convert import Result, convert_file

CORPUS = Path(__file__).resolve().parent / "corpus"
CONFS = sorted(CORPUS.glob("*.conf"))
UPDATE = os.environ.get("HALO_UPDATE_GOLDEN") == "1"

# The first-party plugin types the expected output was written with.
NEEDED = {
    ("checker", "tcp"),
    ("checker", "http"),
    ("checker", "ssl"),
    ("checker", "script"),
    ("checker", "udp"),
    ("checker", "ping"),
    ("checker", "dns"),
    ("checker", "smtp"),
    ("checker", "file"),
    ("notifier", "script"),
    ("notifier", "email"),
    ("backend", "vip"),
    ("backend", "ipvs"),
}


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    p = plugin_loader.load()
    have = {(k, n) for k in ("checker", "notifier", "backend") for n in p.names(k)}
    missing = NEEDED - have
    if missing:
        pytest.skip(f"first-party plugins not installed: {sorted(missing)}")
    return p


def config_id(conf: Path) -> str:
    m = re.search(r"^# config-id: (\S+)", conf.read_text(), re.M)
    return m.group(1) if m else "corpus"


def convert(conf: Path, plugins: Plugins, monkeypatch: pytest.MonkeyPatch, cid: str) -> Result:
    monkeypatch.chdir(CORPUS)  # messages name the files relative to the corpus
    return convert_file(conf.name, config_id=cid, plugins=plugins)


def test_the_corpus_covers_every_seed_and_feature_group() -> None:
    names = {c.stem for c in CONFS}
    for seed in ("000", "001", "002", "003"):
        assert any(n.startswith(f"seed-{seed}") for n in names), seed
    for group in (
        "vrrp-instance",
        "sync-groups",
        "scripts-tracking",
        "virtual-server-tcp",
        "virtual-server-http",
        "virtual-server-misc",
        "global-defs",
        "ipv6",
        "unicast",
        "advanced-syntax",
        "email",
    ):
        assert group in names, group


@pytest.mark.parametrize("conf", CONFS, ids=lambda p: p.stem)
def test_corpus(conf: Path, plugins: Plugins, monkeypatch: pytest.MonkeyPatch) -> None:
    result = convert(conf, plugins, monkeypatch, config_id(conf))
    report = "".join(f"{r}\n" for r in result.reports)
    expected_yaml = conf.with_suffix(".yaml")
    expected_report = conf.with_suffix(".report")
    if UPDATE:
        expected_yaml.write_text(result.yaml)
        expected_report.write_text(report)
    # the output is valid halo configuration, whatever the expected files say
    cfg = load_text(result.yaml, f"{conf.stem}.yaml", plugins)
    assert cfg.model.vrrp_instances or cfg.model.virtual_servers
    assert result.yaml == expected_yaml.read_text(), f"{conf.name}: YAML differs"
    assert report == expected_report.read_text(), f"{conf.name}: report differs"


def test_every_unsupported_keyword_is_in_the_yaml_too(
    plugins: Plugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never silently dropped: what the report calls unsupported, the YAML says in place
    (except address and peer options, whose line is kept without them)."""
    for conf in CONFS:
        result = convert(conf, plugins, monkeypatch, config_id(conf))
        for r in result.unsupported:
            if r.message.startswith(("address option", "needs the")) or "init_file" in r.keyword:
                continue
            line = f"line {r.loc.line}" if r.loc.file == conf.name else str(r.loc)
            assert f"unsupported ({line})" in result.yaml, (conf.name, str(r))


def test_advanced_syntax_for_another_config_id(
    plugins: Plugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = CORPUS / "advanced-syntax.conf"
    main = load_text(convert(conf, plugins, monkeypatch, "main").yaml, "main", plugins).model
    result = convert(conf, plugins, monkeypatch, "backup")
    backup = load_text(result.yaml, "backup", plugins).model
    assert main.global_.router_id == "main_router"
    assert backup.global_.router_id == "backup_router"
    assert (main.global_.script_user, backup.global_.script_user) == ("root", "nobody")
    for n in (1, 2, 3, 4):
        a, b = main.vrrp_instances[f"VI_{n}"], backup.vrrp_instances[f"VI_{n}"]
        assert (a.state, a.priority, a.nopreempt) == ("MASTER", 150, False)
        assert (b.state, b.priority, b.nopreempt) == ("BACKUP", 100, True)
        assert a.virtual_router_id == b.virtual_router_id == 11 * n
        assert [str(v) for v in a.virtual_ipaddress] == [f"192.0.2.{n}/24 dev eth0"]
    assert main.vrrp_instances["VI_web"].priority == 200
    assert backup.vrrp_instances["VI_web"].priority == 100


def test_the_seeds_broken_listing_is_an_error() -> None:
    """Seed 002 as published misses the closing brace of its vrrp_instance."""
    from halo_tool_convert import ConvertError, convert_text

    text = (CORPUS / "seed-002-nodea.conf").read_text()
    broken = text[: text.rstrip().rfind("}")]  # drop the last "}"
    with pytest.raises(ConvertError) as exc:
        convert_text(broken, "keepalived.conf", config_id="x")
    line = next(i for i, ln in enumerate(broken.splitlines(), 1) if ln.startswith("vrrp_instance"))
    assert exc.value.lines == [
        f"keepalived.conf:{line}: '{{' of 'vrrp_instance VI_1' is never closed (a '}}' is missing)"
    ]
