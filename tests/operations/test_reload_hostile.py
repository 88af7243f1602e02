"""A reload (what SIGHUP runs) of a hostile configuration returns False, never raises, logs
every error line and keeps the configuration in force. The daemon is built, not started:
refusing happens before anything running is touched."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest

from halo_core import plugins
from halo_core.config import ConfigError, load
from halo_core.daemon import Daemon
from halo_tool_lab.hostile import HostileConfig, corpus, materialise, schemas_of

PLUGINS = plugins.load()
CASES = corpus(schemas_of(PLUGINS))
# one of each category, and every include and conflict case (they reach the loader's and the
# cross-checks' paths that a reload shares with halo check)
SAMPLE = list({c.name.split("-")[0]: c for c in CASES}.values()) + [
    c for c in CASES if c.name.startswith(("include-", "conflict-", "alias-"))
]

GOOD = """vrrp_instances:
  VI_1:
    interface: eth0
    virtual_router_id: 51
    virtual_ipaddress: [192.0.2.51]
"""


@pytest.mark.parametrize("case", SAMPLE, ids=lambda c: c.name)
def test_reload_of_hostile_config_is_refused_and_logged(
    case: HostileConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    main = work / "halo.yaml"
    main.write_text(GOOD)
    daemon = Daemon(load(str(main), PLUGINS), PLUGINS)
    before = daemon.config
    # the hostile case replaces the directory's content, as an operator's edit would
    main.unlink()
    staged = tmp_path / "staged"
    staged.mkdir()
    materialise(case, staged)
    for item in staged.iterdir():
        shutil.move(str(item), work / item.name)
    with pytest.raises(ConfigError) as expected:
        load(str(main), PLUGINS)

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(daemon.reload()) is False
    assert daemon.config is before
    logged = [r.getMessage() for r in caplog.records]
    for line in expected.value.lines:
        assert f"reload: {line}" in logged
    assert "reload: the configuration is invalid; the running one stays in force" in logged
    assert not any(r.exc_info for r in caplog.records)
