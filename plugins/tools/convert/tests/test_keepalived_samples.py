"""keepalived's own sample configurations (``doc/samples``, shipped by the Debian package in
/usr/share/doc/keepalived/samples): every one converts with exit status 0 and loads with
halo's loader, as keepalived runs every one of them; ``--strict`` fails exactly those that
gave a warning or an unsupported line."""

from __future__ import annotations

from pathlib import Path

import pytest

from halo_core import cli
from halo_core import plugins as plugin_loader
from halo_core.config import load_text
from halo_tool_convert import convert_file

SAMPLES = Path("/usr/share/doc/keepalived/samples")
CONFS = sorted(SAMPLES.glob("keepalived.conf.*")) if SAMPLES.is_dir() else []

pytestmark = pytest.mark.skipif(
    not CONFS, reason=f"keepalived's samples are not installed ({SAMPLES}: Debian keepalived)"
)


def test_all_25_samples_are_there() -> None:
    assert len(CONFS) == 25, [c.name for c in CONFS]


@pytest.mark.parametrize("conf", CONFS, ids=lambda p: p.name.removeprefix("keepalived.conf."))
def test_sample_converts_and_loads(
    conf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugins = plugin_loader.load()
    result = convert_file(str(conf), config_id="sample", plugins=plugins)
    load_text(result.yaml, "converted.yaml", plugins)  # raises on any problem
    out = tmp_path / "halo.yaml"
    assert cli.main(["convert", "-q", "-i", "sample", "-o", str(out), str(conf)]) == 0
    assert out.read_text() == result.yaml
    strict = cli.main(["convert", "--strict", "-i", "sample", "-o", str(out), str(conf)])
    assert strict == (1 if result.warnings or result.unsupported else 0)
    capsys.readouterr()
