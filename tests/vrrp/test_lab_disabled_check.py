"""A tracked check script that is not there, on real kernels: keepalived 2.2.7 logs
"Disabling track script ... since not found/accessible" and runs the instance as if it did
not track the script (seed-003 of docs/keepalived-equivalence.md: MASTER), where halo
counted the check failed and kept the instance in FAULT. Now the check is disabled: a
warning in ``halo check`` and in the log, DISABLED in the status, never run, ignored by the
instances tracking it (weight 0, a weight, init_fail alike); a reload after the script
appears runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from halo_tool_lab.netns import wait_until
from halo_tool_lab.pytest_plugin import HaloFactory, LabFactory
from halo_tool_lab.testing import run_halo, write_script


def config(script: Path) -> str:
    return (
        "global:\n  router_id: h1\n  log_format: json\n"
        "checks:\n"
        f"  chk_missing:\n    type: script\n    script: {script}\n    interval: 0.2\n"
        f"  chk_init_fail:\n    type: script\n    script: {script} x\n    interval: 0.2\n"
        "    init_fail: true\n"
        "vrrp_instances:\n"
        "  VI_1:\n    interface: eth0\n    virtual_router_id: 51\n    priority: 100\n"
        "    version: 3\n    advert_int: 0.1\n    virtual_ipaddress: [192.0.2.100/24]\n"
        "    track: [{check: chk_missing}, {check: chk_init_fail}]\n"
        "  VI_2:\n    interface: eth0\n    virtual_router_id: 52\n    priority: 100\n"
        "    version: 3\n    advert_int: 0.1\n    virtual_ipaddress: [192.0.2.101/24]\n"
        "    track: [{check: chk_missing, weight: -50}]\n"
    )


def test_halo_check_warns(tmp_path: Path) -> None:
    path = tmp_path / "halo.yaml"
    path.write_text(config(tmp_path / "nothere.sh"))
    done = run_halo("check", "-c", str(path))
    assert done.returncode == 0, done.stderr
    warnings = done.stderr.splitlines()
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith(f"warning: {path}:6:5: checks.chk_missing: disabled: script")
    assert f"{tmp_path}/nothere.sh is not found; it will never run" in warnings[0]


@pytest.mark.lab
def test_a_missing_script_is_disabled_not_failed(
    lab: LabFactory, start_halo: HaloFactory, tmp_path: Path
) -> None:
    (h1,) = lab(1).hosts
    script = tmp_path / "later.sh"
    a = start_halo(h1, config(script), state={"VI_1": "MASTER", "VI_2": "MASTER"})
    assert a.wait_log(r"check chk_missing \(script\): disabled: script .* is not found"), a.log
    status = json.loads(run_halo("status", "-c", str(a.config_path), "--json").stdout)
    checks = {c["name"]: c for c in status["checks"]}
    assert checks["chk_missing"]["state"] == "DISABLED", checks
    assert checks["chk_missing"]["runs"] == 0
    assert "is not found" in checks["chk_init_fail"]["disabled"]
    instances = {i["name"]: i for i in status["instances"]}
    assert instances["VI_2"]["priority"] == 100, instances  # no -50: not tracked

    # the script appears and a reload looks again: now it runs, and its failure counts
    write_script(script, "exit 1")
    a.reload(config(script).replace("interval: 0.2\n", "interval: 0.2\n    fall: 1\n", 1))
    assert a.wait_state("VI_1", "FAULT"), a.log
    assert wait_until(lambda: "192.0.2.101" in h1.run("ip", "addr").stdout, 5.0, 0.05)
