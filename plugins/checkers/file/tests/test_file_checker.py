"""The file checker on real files, and its conversion from keepalived's FILE_CHECK."""

from __future__ import annotations

from pathlib import Path

from halo_tool_lab.testing import config_errors, run_check


def test_zero_is_up_anything_else_down(tmp_path: Path) -> None:
    path = tmp_path / "drain"
    conf = f"checks:\n  c: {{type: file, file: {path}}}\n"
    rconf = conf.replace("}", ", reverse: true}")
    assert run_check(conf).ok  # missing reads as 0
    path.write_text("1\n")
    result = run_check(conf)
    assert not result.ok and result.message == f"{path} holds 1"
    assert run_check(rconf).ok
    path.write_text("  -0 trailing words")
    assert run_check(conf).ok
    path.write_text("not a number")
    assert run_check(conf).ok and not run_check(rconf).ok


def test_relative_path_is_refused() -> None:
    assert config_errors("checks:\n  c: {type: file, file: drain}\n") == [
        "f.yaml:2:25: checks.c.file: must be an absolute path"
    ]


def test_keepalived_file_check_converts() -> None:
    from halo_tool_convert import convert_text

    text = (
        "track_file drain {\n  file /run/lb/drain\n  weight 0\n}\n"
        "track_file weighted {\n  file /run/lb/w\n}\n"
        "virtual_server 192.0.2.10 80 {\n"
        "  real_server 192.0.2.21 80 {\n    FILE_CHECK {\n      track_file drain\n    }\n  }\n"
        "  real_server 192.0.2.22 80 {\n    FILE_CHECK {\n      track_file weighted\n    }\n"
        "  }\n"
        "  real_server 192.0.2.23 80 {\n    FILE_CHECK {\n      track_file weighted\n"
        "      weight 0 reverse\n    }\n  }\n}\n"
    )
    result = convert_text(text, config_id="x")
    assert result.yaml.count("type: file") == 2
    assert "file: /run/lb/drain" in result.yaml and "reverse: true" in result.yaml
    assert [(r.loc.line, r.keyword) for r in result.unsupported] == [(15, "FILE_CHECK")]
    assert "of weight 1 adds value x weight" in result.unsupported[0].message
