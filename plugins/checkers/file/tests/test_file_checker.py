"""The file checker on real files, and its conversion from keepalived's FILE_CHECK."""

from __future__ import annotations

from pathlib import Path

from halo_checker_file.plugin import FileCheck
from halo_checker_file.runtime import FileChecker
from halo_core import plugins
from halo_core.bus import EventBus
from halo_core.events import Event, PoolChanged
from halo_core.plugin_api import CheckTarget
from halo_core.scheduler import Scheduler
from halo_engine_pools.pool import Pool
from halo_tool_lab.clock import FakeClock
from halo_tool_lab.testing import config_errors, load_config, run_check


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
    assert result.unsupported == []
    rss = load_config(result.yaml).model.virtual_servers[0].real_servers
    checks = [rs.checks[0].config for rs in rss]
    assert [(c.file, c.weight_factor, c.reverse) for c in checks] == [
        ("/run/lb/drain", None, False),
        ("/run/lb/w", 1, False),  # the track_file's default weight 1: value x 1 is added
        ("/run/lb/w", None, True),
    ]


async def test_weight_factor_moves_the_real_server_weight(tmp_path: Path) -> None:
    """keepalived's weighted FILE_CHECK (track_file.c): the real server's weight becomes its
    configured weight + value x weight (x -1 with reverse), never below 0; the check stays
    up, and a pool publishes each new weight."""
    path = tmp_path / "w"
    config = FileCheck(file=str(path), weight_factor=10)
    checker = FileChecker(config, CheckTarget("c", weight=5))
    path.write_text("3\n")
    result = await checker.check()
    assert (result.ok, result.weight, result.message) == (
        True,
        35,
        f"{path} holds 3: weight 5+30 = 35",
    )
    path.write_text("-1")
    assert (await checker.check()).weight == 0  # 5 - 10, never below 0
    reverse = FileChecker(
        FileCheck(file=str(path), weight_factor=2, reverse=True), CheckTarget("c", weight=5)
    )
    assert (await reverse.check()).weight == 7  # -1 x 2 x -1
    path.write_text(str(2**30))
    assert not (
        await FileChecker(
            FileCheck(file=str(path), weight_factor=-2), CheckTarget("c", weight=5)
        ).check()
    ).ok

    text = (
        "virtual_servers:\n  - address: 192.0.2.10\n    port: 80\n    real_servers:\n"
        f"      - {{address: 192.0.2.21, weight: 5, checks: [{{type: file, file: {path},"
        " weight_factor: 10}]}\n"
    )
    cfg = load_config(text)
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    pool = Pool(
        cfg.model.virtual_servers[0],
        plugins=plugins.load(),
        scheduler=Scheduler(FakeClock()),
        bus=bus,
    )
    runner = next(iter(pool.servers[0].checks.values()))
    # the checker as the pool's runner builds it: with the real server's weight as target
    built = runner.ptype.load_factory()(runner.config, runner.target)
    for value in (1, 2, 2, 0):
        path.write_text(str(value))
        runner.record(await built.check(), 0.001)
    await bus.drain()
    weights = [e.members[0].weight for e in seen if isinstance(e, PoolChanged)]
    assert weights == [15, 25, 5]  # one per change of weight
