"""``halo convert`` on the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from halo_core import cli

CORPUS = Path(__file__).resolve().parent / "corpus"
GOOD = """global_defs {
    router_id lb1
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    use_ipvlan
    virtual_ipaddress {
        192.0.2.10
    }
}
"""


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def test_convert_prints_yaml_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(GOOD)
    status, out, err = run(["convert", "-i", "lb1", str(conf)], capsys)
    assert status == 0
    assert "vrrp_instances:\n  VI_1:\n" in out
    assert err.splitlines() == [
        f"unsupported: {conf}:7: use_ipvlan: halo's use_vmac has no such option (one macvlan"
        " per instance, RFC 5798's MAC)",
        "halo convert: 2 blocks converted, 0 notes, 0 warnings, 1 unsupported",
    ]
    # and the result passes `halo check`
    yaml_file = tmp_path / "halo.yaml"
    yaml_file.write_text(out)
    assert cli.main(["check", "-q", "-c", str(yaml_file)]) == 0


def test_strict_makes_unsupported_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(GOOD)
    status, out, err = run(["convert", "--strict", "-i", "x", str(conf)], capsys)
    assert status == 1
    assert out == ""
    assert err.splitlines()[-1] == "halo convert: not written (--strict)"


# What keepalived reads with a complaint and runs anyway: the converter says so and goes on.
LENIENT = """global_defs {
    lvs_id LVS1
    garp_master_delay 5
}
vvrp_script chk {
    script "/bin/true"
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 300
    unicast_src_ip 192.0.2.1/24
    unicast_peer {
        192.0.2.2/24
    }
    virtual_ipaddress {
        192.0.2.100
        2001:db8::100
    }
}
vrrp_instance VI_2 {
    virtual_router_id 52
    virtual_ipaddress {
        192.0.2.101
    }
}
"""


def test_lines_keepalived_complains_about_are_warnings_and_the_rest_is_converted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(LENIENT)
    status, out, err = run(["convert", "-i", "x", str(conf)], capsys)
    assert status == 0, err
    assert err.splitlines() == [
        f"note: {conf}:2: lvs_id: keepalived ignores this too (obsolete since keepalived"
        " 1.1.x; the router_id names the node)",
        f"warning: {conf}:3: 'garp_master_delay' is not a keepalived keyword in global_defs;"
        " ignored (it belongs in vrrp_instance)",
        f"warning: {conf}:5: 'vvrp_script' is not a keepalived block; ignored"
        " (did you mean 'vrrp_script'?)",
        f"warning: {conf}:11: priority: 300 is out of range (1 to 255); ignored",
        f"note: {conf}:12: unicast_src_ip: the /24 is dropped (keepalived ignores it too)",
        f"note: {conf}:14: 192.0.2.2/24: the /24 is dropped (keepalived ignores it too)",
        f"warning: {conf}:18: virtual_ipaddress 2001:db8::100: not the instance's address"
        " family; ignored (as keepalived >= 1.3.1 ignores it)",
        f"warning: {conf}:21: vrrp_instance VI_2 has no interface (keepalived 2.2.7 stops on"
        " it too: 'Unknown interface!'); ignored",
        "halo convert: 3 blocks converted, 3 notes, 5 warnings, 0 unsupported",
    ]
    assert "2001:db8::100" not in out and "VI_2" in out  # VI_2 as a comment only
    yaml_file = tmp_path / "halo.yaml"
    yaml_file.write_text(out)
    assert cli.main(["check", "-q", "-c", str(yaml_file)]) == 0
    assert "unicast_src_ip: 192.0.2.1\n" in out
    status, out, err = run(["convert", "--strict", "-i", "x", str(conf)], capsys)
    assert status == 1 and out == ""


def test_output_file_and_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = CORPUS / "seed-001-lvs-dr.conf"
    target = tmp_path / "halo.yaml"
    status, out, err = run(["convert", "-q", "-i", "x", "-o", str(target), str(conf)], capsys)
    assert status == 0 and out == ""
    *reports, summary = err.splitlines()
    assert all(line.startswith(("unsupported: ", "warning: ")) for line in reports)  # no notes
    assert summary.startswith("halo convert: ")
    assert "virtual_servers:" in target.read_text()


def test_malformed_config_is_file_line_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(GOOD.replace("    virtual_ipaddress {\n", "    virtual_ipaddress {{\n"))
    status, out, err = run(["convert", "-i", "x", str(conf)], capsys)
    assert status == 1 and out == ""
    assert err == f"{conf}:8: unexpected '{{' (it follows no keyword)\n"
    status, out, err = run(["convert", str(tmp_path / "missing.conf")], capsys)
    assert status == 1
    missing = tmp_path / "missing.conf"
    assert err == f"halo convert: cannot read {missing}: No such file or directory\n"


def test_default_config_id_is_the_host_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text("@nosuchhost use_ipvlan\n" + GOOD.replace("    use_ipvlan\n", ""))
    status, _, err = run(["convert", str(conf)], capsys)
    assert status == 0
    assert "note: " in err and "give --config-id to convert for another node" in err


def test_convert_imports_no_network_library(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text((CORPUS / "virtual-server-http.conf").read_text())
    probe = (
        "import sys\n"
        "from halo_core import cli\n"
        "status = cli.main(sys.argv[1:])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in"
        " {'aiohttp', 'asyncssh', 'scapy', 'pyroute2', 'aiosmtplib'})\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
        "sys.exit(status)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, "convert", "-q", "-i", "x", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stderr or proc.stderr.rstrip().endswith("HEAVY="), proc.stderr


def test_help_lists_convert_from_its_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    assert "convert a keepalived.conf to halo's YAML" in capsys.readouterr().out


def test_a_plugin_whose_commands_fail_leaves_the_others(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from halo_core import plugins as plugin_loader
    from halo_core.hookspecs import hookimpl

    class Clashing:
        @hookimpl
        def halo_add_commands(self, subparsers: Any) -> None:
            subparsers.add_parser("convert", help="a second convert")

    real_load = plugin_loader.load
    monkeypatch.setattr(
        plugin_loader, "load", lambda **kw: real_load(modules=[("clash", Clashing())], **kw)
    )
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out, err = capsys.readouterr()
    assert "convert a keepalived.conf to halo's YAML" in out
    assert "halo: plugin clash: cannot add its commands: " in err


def test_an_address_listed_twice_is_kept_once_and_the_instance_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """keepalived's sample keepalived.conf.vrrp lists 192.168.200.18 twice (the second time
    with a label): keepalived runs the instance with the address once; so does halo. The
    warning says what it means for a pair with keepalived: keepalived repeats the address
    in its adverts and drops halo's, which list it once (both would be master)."""
    conf = tmp_path / "keepalived.conf"
    conf.write_text(
        "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n"
        " virtual_ipaddress {\n  192.0.2.18\n  192.0.2.18 label eth0:1\n }\n}\n"
    )
    status, out, err = run(["convert", "-i", "x", str(conf)], capsys)
    assert status == 0, err
    assert err.splitlines()[0] == (
        f"warning: {conf}:6: virtual_ipaddress 192.0.2.18 label eth0:1: 192.0.2.18 is listed"
        " twice; left out (keepalived configures it once, as first listed, but repeats it in"
        " its adverts and drops adverts that list it once: a keepalived peer on this file and"
        " halo would both be master, so list it once there too)"
    )
    assert "VI_1:" in out and "- 192.0.2.18\n" in out and "label" not in out
