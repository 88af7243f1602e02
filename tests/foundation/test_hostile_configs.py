"""The generated corpus of malformed configurations (``halo_tool_lab.hostile``): ``halo
check`` exits 1 on each, with only ``file:line:col: path: message`` lines, no traceback,
within a second. Run in-process for speed (about 1,400 cases), and a sample of each
category through the real command.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from halo_core import cli, plugins
from halo_core.config import ConfigError, load, load_text
from halo_tool_lab.hostile import (
    BASES,
    MAIN,
    SECTION_OF,
    HostileConfig,
    corpus,
    materialise,
    schemas_of,
)

LINE = re.compile(r"^.+:\d+:\d+: \S.*: .+$")
SECONDS = 1.0

PLUGINS = plugins.load()
CASES = corpus(schemas_of(PLUGINS))


def _category(case: HostileConfig) -> str:
    return case.name.split("-")[0]


def test_corpus_is_large_and_covers_every_category() -> None:
    assert len(CASES) >= 500
    assert {_category(c) for c in CASES} == {
        "syntax",
        "control",
        "nul",
        "crlf",
        "encoding",
        "depth",
        "size",
        "number",
        "alias",
        "include",
        "field",
        "conflict",
    }


@pytest.mark.parametrize("kind_type", sorted(BASES), ids=lambda k: f"{k[0]}-{k[1]}")
def test_each_base_item_is_valid(kind_type: tuple[str, str]) -> None:
    """The field cases change one option of these: each must be valid as it is, or a case
    could fail for the wrong reason."""
    kind, type_name = kind_type
    item = {"type": type_name, **BASES[kind_type]}
    doc = {
        "vrrp_instances": {
            "VI_1": {
                "interface": "eth0",
                "virtual_router_id": 51,
                "virtual_ipaddress": ["192.0.2.51"],
            }
        },
        SECTION_OF[kind]: {"x": item},
    }
    try:
        load_text(yaml.safe_dump(doc), plugins=PLUGINS)
    except ConfigError as exc:
        pytest.fail("\n".join(exc.lines))


@pytest.mark.timeout(10)  # a hang fails this case, not the suite
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_config_is_answered_fast(
    case: HostileConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main = materialise(case, tmp_path)
    started = time.perf_counter()
    status = cli.main(["check", "-c", str(main)])
    elapsed = time.perf_counter() - started
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert status == 1, err
    assert out == ""
    assert lines
    assert [line for line in lines if not LINE.match(line)] == []
    assert "Traceback" not in err
    assert elapsed < SECONDS, f"{elapsed:.2f} s"


def test_reload_refuses_each_category_and_keeps_running(tmp_path: Path) -> None:
    """What a SIGHUP reload reads: the same loader, so the same answers (ConfigError,
    nothing else) for one case of each category."""
    for case in {_category(c): c for c in CASES}.values():
        directory = tmp_path / case.name
        directory.mkdir()
        with pytest.raises(ConfigError):
            load(str(materialise(case, directory)), PLUGINS)


SAMPLE = list({_category(c): c for c in reversed(CASES)}.values())


@pytest.mark.parametrize("case", SAMPLE, ids=lambda c: c.name)
def test_real_command_sample(case: HostileConfig, tmp_path: Path) -> None:
    materialise(case, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "halo_core.cli", "check", "-c", MAIN],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
        timeout=30,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert all(LINE.match(line) for line in proc.stderr.splitlines()), proc.stderr


@pytest.mark.parametrize(
    "content",
    [
        "root:$6$Zsecret$hash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
        "api_key: Zsecret-value\npassword: Zsecret2\n",
        "[section]\nkey = Zsecret\n",
        "- Zsecret\n- Zsecret2\n",
        "Zsecret: {nested: Zsecret3}\n",
        "Zsecret\n",
    ],
    ids=["shadow", "foreign-keys", "ini", "list", "nested", "scalar"],
)
def test_include_never_shows_a_foreign_files_content(
    content: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """include: reads with halo's privileges; a file that is not a halo configuration is
    refused without a word of what it holds."""
    (tmp_path / "foreign").write_text(content)
    (tmp_path / MAIN).write_text("include: foreign\n")
    assert cli.main(["check", "-c", str(tmp_path / MAIN)]) == 1
    err = capsys.readouterr().err
    assert err and "Zsecret" not in err


def test_file_count_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """MAX_FILES stops a configuration that includes too many files (10,000 files are too
    slow to write for a test: the limit is lowered instead)."""
    from halo_core.config import loader

    monkeypatch.setattr(loader, "MAX_FILES", 3)
    (tmp_path / "conf.d").mkdir()
    for i in range(5):
        (tmp_path / "conf.d" / f"{i}.yaml").write_text(f"checks: {{c{i}: {{type: tcp}}}}\n")
    (tmp_path / MAIN).write_text("include: conf.d/*.yaml\n")
    assert cli.main(["check", "-c", str(tmp_path / MAIN)]) == 1
    assert capsys.readouterr().err == (
        f"{tmp_path / MAIN}:1:10: include: more than 3 files included\n"
    )


def test_value_count_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """MAX_NODES stops a file with too many values before composing all of them (at the
    real limit that takes about 2 s: the limit is lowered instead), counted over includes."""
    from halo_core.config import loader

    monkeypatch.setattr(loader, "MAX_NODES", 50)
    (tmp_path / "a.yaml").write_text("checks: {}\nnotifiers: {}\nx: [" + "1, " * 40 + "]\n")
    (tmp_path / MAIN).write_text("include: a.yaml\nglobal: {}\ny: [" + "1, " * 20 + "]\n")
    assert cli.main(["check", "-c", str(tmp_path / MAIN)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'a.yaml'}:3:" in err
    assert "more than 50 values in the configuration" in err
