"""The script notifier: keepalived's arguments, the HALO_* environment, order per instance,
time-outs that kill the process group, failures counted, and the notify FIFO."""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from halo_core import plugins
from halo_core.bus import EventBus
from halo_core.config import ConfigError, load_text
from halo_core.events import (
    Event,
    PoolChanged,
    PriorityChanged,
    RealServerChanged,
    SyncGroupStateChanged,
    VrrpAnnounce,
)
from halo_core.plugin_api import PluginContext, event_filter
from halo_core.scheduler import LoopClock, Scheduler
from halo_notifier_script.plugin import ScriptNotifierConfig
from halo_notifier_script.runtime import ScriptNotifier
from halo_tool_lab.testing import eventually, load_config, make_context, vrrp, write_script

ROOT = os.geteuid() == 0

# Appends "<script name> <arguments>" to out/calls, and its HALO_* environment and uid to
# out/env-<script name>: what the tests look at. The name comes from HALO_SCRIPT: a script
# run under enable_script_security has /proc/self/fd/N as its $0.
RECORDER = """
name=$(basename "$HALO_SCRIPT")
echo "$name $*" >> {out}/calls
{{ env | grep '^HALO_' | sort; echo "uid=$(id -u)"; }} > {out}/env-$name
"""


def recorder(d: Path, name: str, before: str = "") -> str:
    write_script(d / name, before + RECORDER.format(out=d / "out"))
    return str(d / name)


def calls(d: Path) -> list[str]:
    path = d / "out" / "calls"
    return path.read_text().splitlines() if path.exists() else []


def env_of(d: Path, name: str) -> dict[str, str]:
    lines = (d / "out" / f"env-{name}").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def notifier(**options: Any) -> ScriptNotifier:
    return ScriptNotifier(ScriptNotifierConfig(**options), make_context("hooks"))


async def test_keepalived_arguments_and_environment(public_dir: Path) -> None:
    n = notifier(
        notify_master=recorder(public_dir, "master.sh") + " --restart 'my service'",
        notify=recorder(public_dir, "notify.sh") + " first",
    )
    await n.notify(vrrp("MASTER", old="BACKUP", priority=150, group="G1", reason="higher prio"))
    # notify_master runs as configured; notify gets INSTANCE NAME STATE PRIORITY appended,
    # after the state's own script (keepalived.conf(5)).
    assert calls(public_dir) == [
        "master.sh --restart my service",
        "notify.sh first INSTANCE VI_1 MASTER 150",
    ]
    env = env_of(public_dir, "master.sh")
    assert {k: v for k, v in env.items() if k != "HALO_TIME"} == {
        "HALO_EVENT": "vrrp_state",
        "HALO_GROUP": "G1",
        "HALO_INSTANCE": "VI_1",
        "HALO_INTERFACE": "eth0",
        "HALO_NAME": "VI_1",
        "HALO_NOTIFIER": "hooks",
        "HALO_OLD_STATE": "BACKUP",
        "HALO_PRIORITY": "150",
        "HALO_REASON": "higher prio",
        "HALO_ROUTER_ID": "lb1",
        "HALO_SCRIPT": str(public_dir / "master.sh"),
        "HALO_STATE": "MASTER",
        "HALO_TYPE": "INSTANCE",
        "HALO_VRID": "51",
        "uid": env["uid"],
    }
    assert abs(float(env["HALO_TIME"]) - time.time()) < 60
    if ROOT:  # the default script user (keepalived_script, else nobody), never root
        assert env["uid"] != "0"
        assert env["uid"] == str(pwd.getpwnam(n.scripts.run_as.name.split(":")[0]).pw_uid)
    assert n.status()["succeeded"] == 2


async def test_each_state_has_its_script_and_notify_gets_every_change(public_dir: Path) -> None:
    n = notifier(
        **{
            f"notify_{s}": recorder(public_dir, f"{s}.sh")
            for s in ("master", "backup", "fault", "stop")
        },
        notify=recorder(public_dir, "notify.sh"),
    )
    for state in ("BACKUP", "MASTER", "FAULT", "STOP"):
        await n.notify(vrrp(state, priority=90))
    assert calls(public_dir) == [
        "backup.sh ",
        "notify.sh INSTANCE VI_1 BACKUP 90",
        "master.sh ",
        "notify.sh INSTANCE VI_1 MASTER 90",
        "fault.sh ",
        "notify.sh INSTANCE VI_1 FAULT 90",
        "stop.sh ",
        "notify.sh INSTANCE VI_1 STOP 90",
    ]


async def test_sync_group_and_real_server(public_dir: Path) -> None:
    n = notifier(
        notify_master=recorder(public_dir, "master.sh"),
        notify=recorder(public_dir, "notify.sh"),
        notify_up=recorder(public_dir, "up.sh") + " web",
        notify_down=recorder(public_dir, "down.sh"),
    )
    await n.notify(
        SyncGroupStateChanged(
            group="G1", old="BACKUP", new="MASTER", members=("VI_1", "VI_2"), reason="r"
        )
    )
    up = RealServerChanged(
        virtual_server="192.0.2.1:80", real_server="10.0.0.5:8080", up=True, weight=3
    )
    await n.notify(up)
    await n.notify(
        RealServerChanged(
            virtual_server="192.0.2.1:80", real_server="10.0.0.5:8080", up=False, weight=0
        )
    )
    # a group's priority is 0 in keepalived's arguments; real servers get no extra arguments
    assert calls(public_dir) == [
        "master.sh ",
        "notify.sh GROUP G1 MASTER 0",
        "up.sh web",
        "down.sh ",
    ]
    group_env = env_of(public_dir, "master.sh")
    assert (group_env["HALO_TYPE"], group_env["HALO_MEMBERS"]) == ("GROUP", "VI_1 VI_2")
    rs_env = env_of(public_dir, "up.sh")
    assert rs_env["HALO_TYPE"] == "REAL_SERVER"
    assert (rs_env["HALO_VIRTUAL_SERVER"], rs_env["HALO_REAL_SERVER"]) == (
        "192.0.2.1:80",
        "10.0.0.5:8080",
    )
    assert (rs_env["HALO_STATE"], rs_env["HALO_WEIGHT"]) == ("UP", "3")


async def test_events_without_scripts_are_ignored(public_dir: Path) -> None:
    n = notifier(notify_master=recorder(public_dir, "master.sh"))
    await n.notify(vrrp("BACKUP"))
    await n.notify(Event())
    assert calls(public_dir) == []
    assert n.status()["runs"] == 0


async def test_order_per_instance_through_the_bus(public_dir: Path) -> None:
    """A slow notify_backup finishes before the next notify_master of the same instance
    starts, while another instance's hook does not wait for it."""
    log = public_dir / "out" / "calls"
    write_script(
        public_dir / "backup.sh",
        f'echo "backup $HALO_NAME start" >> {log}\n'
        f'sleep 0.6; echo "backup $HALO_NAME end" >> {log}\n',
    )
    write_script(public_dir / "master.sh", f'echo "master $HALO_NAME" >> {log}\n')
    n = notifier(
        notify_backup=str(public_dir / "backup.sh"), notify_master=str(public_dir / "master.sh")
    )
    ctx = make_context()
    bus = ctx.bus

    async def deliver(event: Event) -> None:  # what the daemon subscribes
        await n.notify(event)

    bus.subscribe(deliver, name="notifier:hooks", timeout=n.timeout)
    bus.publish(vrrp("BACKUP", instance="VI_1", old="MASTER"))
    bus.publish(vrrp("MASTER", instance="VI_1"))
    bus.publish(vrrp("MASTER", instance="VI_2"))
    await bus.drain(timeout=10)
    lines = calls(public_dir)
    assert [ln for ln in lines if "VI_1" in ln] == [
        "backup VI_1 start",
        "backup VI_1 end",
        "master VI_1",
    ]
    assert lines.index("master VI_2") < lines.index("backup VI_1 end")


async def test_hanging_script_is_killed_with_its_group(public_dir: Path) -> None:
    pidfile = public_dir / "out" / "child.pid"
    write_script(public_dir / "hang.sh", f"sleep 300 & echo $! > {pidfile}; wait\n")
    n = notifier(notify_master=str(public_dir / "hang.sh"), timeout=0.5)
    assert n.timeout > 1.0  # the bus's limit leaves room for the script's own
    start = time.monotonic()
    await n.notify(vrrp("MASTER"))
    assert time.monotonic() - start < 5
    assert n.status()["timed_out"] == 1
    assert "timed out" in (n.status()["last_error"] or "")
    child = int(pidfile.read_text())

    def gone() -> bool:
        try:
            with open(f"/proc/{child}/stat") as fh:
                return fh.read().split(")")[-1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    await eventually(gone, 5)


async def test_failures_are_logged_and_counted(
    public_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_script(public_dir / "fail.sh", "echo 'service nginx not found' >&2; exit 3\n")
    insecure = write_script(public_dir / "insecure.sh", "exit 0\n", mode=0o777)
    n = notifier(
        notify_master=str(public_dir / "fail.sh"),
        notify_backup=str(insecure),
        notify_fault="/nonexistent/fault.sh",
    )
    with caplog.at_level(logging.WARNING, logger="halo.notifier.script"):
        await n.notify(vrrp("MASTER"))
        await n.notify(vrrp("BACKUP"))
        await n.notify(vrrp("FAULT"))
    status = n.status()
    assert status["failed"] == 1
    assert status["refused"] == (2 if ROOT else 1)  # insecure is refused only for another user
    assert "notify_master for VI_1 MASTER: exit status 3: service nginx not found" in caplog.text
    assert "notify_fault for VI_1 FAULT: refused: /nonexistent/fault.sh" in caplog.text


async def test_notify_fifo(public_dir: Path) -> None:
    path = public_dir / "notify.fifo"
    n = notifier(notify_fifo=str(path))
    assert stat.S_ISFIFO(path.stat().st_mode)  # created when missing
    # Nobody reading yet: as in keepalived (which opens it read-write) the line waits in the
    # pipe, and notify() does not wait.
    await asyncio.wait_for(n.notify(vrrp("BACKUP", priority=90)), 1)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        await n.notify(vrrp("MASTER", priority=100))
        await n.notify(
            SyncGroupStateChanged(
                group="G1", old="BACKUP", new="MASTER", members=("VI_1",), reason=""
            )
        )
        await n.notify(
            RealServerChanged(
                virtual_server="192.0.2.1:80", real_server="10.0.0.5:80", up=False, weight=0
            )
        )
        assert os.read(reader, 4096).decode().splitlines() == [
            'INSTANCE "VI_1" BACKUP 90',
            'INSTANCE "VI_1" MASTER 100',
            'GROUP "G1" MASTER 0',
            "RS [10.0.0.5]:tcp:80 192.0.2.1:80 DOWN",  # a virtual server halo does not know
        ]
    finally:
        os.close(reader)
    assert (n.status()["fifo_written"], n.status()["fifo_dropped"]) == (4, 0)
    # A full pipe (a reader that stopped reading) drops lines instead of blocking.
    long_name = "V" * 200
    for _ in range(400):  # 400 x ~220 octets > the 64 KiB of a pipe
        await n.notify(vrrp("FAULT", instance=long_name))
    assert n.status()["fifo_dropped"] > 0
    await n.close()
    assert not path.exists()  # we made it, we remove it


FIFO_CONFIG = """
virtual_servers:
  - address: 192.0.2.10
    port: 80
    quorum: 2
    real_servers:
      - {address: 10.0.0.5, port: 8080}
      - {address: 10.0.0.6}
  - fwmark: 7
    protocol: UDP
    real_servers: [{address: "2001:db8::5", port: 53}]
"""


async def test_fifo_lines_are_keepalived_s(public_dir: Path) -> None:
    """Every line keepalived 2.2.7 writes: states, DELETED, priority changes,
    MASTER_RX_LOWER_PRI, virtual-server quorum and real servers in its
    ``[ADDRESS]:proto:PORT`` form (``vrrp_notify.c``, ``ipwrapper.c``)."""
    path = public_dir / "notify.fifo"
    cfg = load_config(FIFO_CONFIG).model
    clock = LoopClock()
    context = PluginContext("fifo", cfg, EventBus(), clock, Scheduler(clock))
    n = ScriptNotifier(
        ScriptNotifierConfig(
            notify_fifo=str(path), notify_priority_changes=["VI_1"], notify_deleted=True
        ),
        context,
    )
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        vs = cfg.virtual_servers[0]
        events: list[Event] = [
            vrrp("MASTER", priority=100),
            PriorityChanged(instance="VI_1", old=100, new=90, reason="check down"),
            PriorityChanged(instance="VI_2", old=100, new=90, reason="not asked for"),
            VrrpAnnounce(instance="VI_1", reason="split-brain"),
            vrrp("BACKUP", old="MASTER", priority=90),
            PriorityChanged(instance="VI_1", old=90, new=100, reason="check up"),
            RealServerChanged(
                virtual_server=vs.label, real_server="10.0.0.5:8080", up=False, weight=0
            ),
            RealServerChanged(
                virtual_server="fwmark:7", real_server="[2001:db8::5]:53", up=True, weight=1
            ),
            pool(vs, quorum=True),  # the first one: no change, no line
            pool(vs, quorum=False),
            pool(vs, quorum=True),
            vrrp("STOP", priority=100, removed=True),
        ]
        for event in events:
            await n.notify(event)
        assert os.read(reader, 4096).decode().splitlines() == [
            'INSTANCE "VI_1" MASTER 100',
            'INSTANCE "VI_1" MASTER_PRIORITY 90',
            'INSTANCE "VI_1" MASTER_RX_LOWER_PRI 90',
            'INSTANCE "VI_1" BACKUP 90',
            'INSTANCE "VI_1" BACKUP_PRIORITY 100',
            "RS [10.0.0.5]:tcp:8080 [192.0.2.10]:tcp:80 DOWN",
            "RS [2001:db8::5]:udp:53 FWM 7 UP",
            "VS [192.0.2.10]:tcp:80 DOWN",
            "VS [192.0.2.10]:tcp:80 UP",
            'INSTANCE "VI_1" DELETED 100',
        ]
    finally:
        os.close(reader)
        await n.close()


def pool(vs: Any, *, quorum: bool) -> PoolChanged:
    return PoolChanged(virtual_server=vs.label, service=vs, members=(), quorum=quorum, reason="")


async def test_deleted_master_rx_lower_pri_and_priority_scripts(public_dir: Path) -> None:
    """notify_deleted runs for an instance a reload removed, and notify gets DELETED; without
    it they get FAULT (keepalived's default). notify_master_rx_lower_pri runs without
    arguments, and notify is not run for it; priority changes run no script."""
    n = notifier(
        notify=recorder(public_dir, "notify.sh"),
        notify_deleted=recorder(public_dir, "deleted.sh"),
        notify_fault=recorder(public_dir, "fault.sh"),
        notify_master_rx_lower_pri=recorder(public_dir, "lower.sh") + " VI_1",
        notify_priority_changes=True,
    )
    await n.notify(vrrp("MASTER", priority=100))
    await n.notify(VrrpAnnounce(instance="VI_1", reason="split-brain"))
    await n.notify(PriorityChanged(instance="VI_1", old=100, new=90, reason="r"))
    await n.notify(vrrp("STOP", old="MASTER", priority=90, removed=True))
    plain = notifier(notify=recorder(public_dir, "notify.sh"))
    await plain.notify(vrrp("STOP", instance="VI_2", old="BACKUP", priority=50, removed=True))
    assert calls(public_dir) == [
        "notify.sh INSTANCE VI_1 MASTER 100",
        "lower.sh VI_1",
        "deleted.sh ",
        "notify.sh INSTANCE VI_1 DELETED 90",
        "notify.sh INSTANCE VI_2 FAULT 50",
    ]


FIFO_READER = """
trap 'echo TERM >> {out}/fifo-lines' TERM
echo "started $*" >> {out}/fifo-lines
while read -r line; do echo "$line" >> {out}/fifo-lines; done < "$1"
echo EOF >> {out}/fifo-lines
"""


async def test_notify_fifo_script_reads_the_fifo_and_gets_sigterm(public_dir: Path) -> None:
    """keepalived's notify_fifo_script: started with the FIFO's path as its last argument;
    at the end SIGTERM, then the FIFO closes and it reads what is left (the STOP lines)."""
    (public_dir / "out").mkdir(exist_ok=True)
    script = public_dir / "reader.sh"
    write_script(script, FIFO_READER.format(out=public_dir / "out"))
    path = public_dir / "notify.fifo"
    n = notifier(notify_fifo=str(path), notify_fifo_script=str(script))
    lines = public_dir / "out" / "fifo-lines"
    try:
        await eventually(lambda: lines.exists() and "started" in lines.read_text(), timeout=5)
        # The script may write its first line before the notifier has heard it started.
        await eventually(lambda: n.status()["fifo_script_running"], timeout=5)
        await n.notify(vrrp("MASTER"))
        await n.notify(vrrp("STOP", old="MASTER"))
    finally:
        await n.close()
    text = lines.read_text().splitlines()
    assert text[0] == f"started {path}"
    assert 'INSTANCE "VI_1" MASTER 100' in text and 'INSTANCE "VI_1" STOP 100' in text
    assert "TERM" in text and text[-1] == "EOF"
    assert not n.status()["fifo_script_running"]
    assert not path.exists()


async def test_fifo_that_is_not_a_fifo(public_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = public_dir / "plain"
    path.write_text("")
    await fifo_refused(path, "exists and is not a FIFO", caplog)
    assert path.read_text() == ""  # not written to, and not ours: left alone


async def test_unknown_script_user_keeps_the_notifier_from_starting() -> None:
    if not ROOT:
        pytest.skip("the script user only applies to root")
    with pytest.raises(ValueError, match="does not exist"):
        notifier(notify_master="/bin/true", script_user="no-such-user-here")


def test_filters_select_instances_and_groups() -> None:
    """One notifier per instance with the common filters (applied by the daemon)."""
    wanted = event_filter(ScriptNotifierConfig(notify_master="/bin/true", instances=["VI_1"]))
    assert wanted(vrrp("MASTER", instance="VI_1"))
    assert not wanted(vrrp("MASTER", instance="VI_2"))
    only_groups = event_filter(
        ScriptNotifierConfig(notify_master="/bin/true", events=["vrrp_group_state"])
    )
    assert not only_groups(vrrp("MASTER", group="G1"))


def test_schema() -> None:
    p = plugins.load()
    text = (
        "vrrp_instances:\n"
        "  VI_1: {interface: eth0, virtual_router_id: 51, virtual_ipaddress: [192.0.2.16]}\n"
        "notifiers:\n"
        "  vi1_hooks:\n"
        "    type: script\n"
        "    instances: [VI_1]\n"
        "    notify_master: /usr/local/bin/restart-nginx\n"
        "    notify: /usr/local/bin/log-state\n"
        "    vrrp_notify_fifo: /run/halo/notify.fifo\n"
        "    script_timeout: 2s\n"
    )
    cfg = load_text(text, "t.yaml", p).model.notifiers["vi1_hooks"].config
    assert (cfg.notify_fifo, cfg.timeout, cfg.instances) == ("/run/halo/notify.fifo", 2, ["VI_1"])
    with pytest.raises(ConfigError) as exc:
        load_text(
            'notifiers:\n  a: {type: script}\n  b: {type: script, notify: "/bin/x \'y"}\n',
            "t.yaml",
            p,
        )
    assert exc.value.lines == [
        "t.yaml:2:6: notifiers.a: configures nothing: give a notify_* command or notify_fifo",
        "t.yaml:3:29: notifiers.b.notify: cannot be split into arguments: No closing quotation",
    ]


# ------------------------------------------------- FIFO attacks: only a real, trusted FIFO


async def fifo_refused(path: Path, expected: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="halo.notifier.script"):
        n = notifier(notify_fifo=str(path))
    assert expected in caplog.text
    await n.notify(vrrp("MASTER"))
    assert (n.status()["fifo_written"], n.status()["fifo_dropped"]) == (0, 1)
    await n.close()


async def test_fifo_behind_a_symbolic_link_is_refused(
    public_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = public_dir / "real.fifo"
    os.mkfifo(target, 0o600)
    reader = os.open(target, os.O_RDONLY | os.O_NONBLOCK)
    try:
        link = public_dir / "notify.fifo"
        link.symlink_to(target)
        await fifo_refused(link, "is a symbolic link, not a FIFO", caplog)
        assert os.read(reader, 4096) == b""  # nothing reached the FIFO the link points at
    finally:
        os.close(reader)
    assert link.is_symlink()  # not ours: left alone


@pytest.mark.skipif(not ROOT, reason="needs root to give the FIFO away")
async def test_fifo_of_another_user_is_refused(
    public_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = public_dir / "notify.fifo"
    os.mkfifo(path, 0o600)
    os.chown(path, 4242, 4242)  # neither root nor the script user
    await fifo_refused(path, "is owned by uid 4242, not root or the script user", caplog)


async def test_fifo_writable_by_others_is_refused(
    public_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = public_dir / "notify.fifo"
    os.mkfifo(path)
    path.chmod(0o622)  # anyone could forge lines for its reader
    await fifo_refused(path, "is writable by others", caplog)
