"""``halo demo``: the seeds' experiment on this machine, in network namespaces.

Two nodes share one virtual IP (MASTER priority 100, BACKUP priority 90); each runs a small
web server answering with its own name, like the tutorials' "from server …" test page; a
client asks the VIP every 100 ms. The demo kills the master, watches the VIP move and the
answers switch, brings the master back, watches it take over again, and prints a timeline
(state changes, announcements seen on the wire, the client's answers, the longest gap in
service). Everything lives in namespaces it creates and removes again, also on Ctrl-C.

The same module provides the two helper programs the demo runs inside the namespaces:
``python -m halo_tool_lab.demo serve NAME`` and ``python -m halo_tool_lab.demo client URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

VIP = "192.0.2.100"
PORT = 8080


# --------------------------------------------------------------------------- in-namespace programs


async def serve(name: str, port: int) -> None:
    """A minimal HTTP server: every GET answers ``from server NAME``."""
    body = f"from server {name}\n".encode()
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.write(response)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "0.0.0.0", port, reuse_address=True)
    async with server:
        await server.serve_forever()


async def client(host: str, port: int, interval: float, duration: float, out: Path) -> None:
    """GET http://host:port/ every ``interval`` seconds for ``duration`` seconds; one JSON
    line per request: start time, whether it answered, who answered. Requests overlap, so a
    hanging one (an ARP entry pointing at a dead node) does not stop the others."""
    loop = asyncio.get_running_loop()
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    fh = out.open("a", buffering=1)

    async def one() -> None:
        start = time.time()
        who, ok = "", False
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
            writer.write(request)
            data = await asyncio.wait_for(reader.read(4096), 1.0)
            writer.close()
            text = data.decode(errors="replace")
            if " 200 " in text.split("\r\n", 1)[0]:
                ok = True
                who = text.rsplit("from server ", 1)[-1].strip()
        except (OSError, TimeoutError):
            pass
        fh.write(json.dumps({"t": start, "done": time.time(), "ok": ok, "from": who}) + "\n")

    tasks: set[asyncio.Task[None]] = set()
    deadline = loop.time() + duration
    next_at = loop.time()
    while loop.time() < deadline:  # bounded in time, one request per interval
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    if tasks:
        await asyncio.wait(tasks, timeout=2)
    fh.close()


# --------------------------------------------------------------------------- the demo


@dataclass
class Timeline:
    start: float = field(default_factory=time.time)
    entries: list[tuple[float, str, str]] = field(default_factory=list)

    def add(self, when: float, who: str, what: str) -> None:
        self.entries.append((when, who, what))

    def render(self) -> str:
        lines = [f"{'time':>8}  {'who':<8}  what", f"{'-' * 8}  {'-' * 8}  {'-' * 50}"]
        for when, who, what in sorted(self.entries, key=lambda e: e[0]):
            lines.append(f"{when - self.start:8.3f}  {who:<8}  {what}")
        return "\n".join(lines)


def halo_config(priority: int, state: str, version: int, advert_int: float) -> str:
    auth = "    authentication: {auth_type: PASS, auth_pass: demo}\n" if version == 2 else ""
    return (
        "global:\n  log_format: json\n"
        "vrrp_instances:\n  VI_1:\n"
        f"    state: {state}\n    interface: eth0\n    virtual_router_id: 51\n"
        f"    priority: {priority}\n    version: {version}\n    advert_int: {advert_int:g}\n"
        f"{auth}    virtual_ipaddress:\n      - {VIP}/24\n"
    )


def keepalived_config(priority: int, state: str, version: int, advert_int: float) -> str:
    auth = (
        "    authentication {\n        auth_type PASS\n        auth_pass demo\n    }\n"
        if version == 2
        else ""
    )
    return (
        "global_defs {\n    router_id demo\n"
        f"    vrrp_version {version}\n    vrrp_garp_master_delay 5\n}}\n"
        "vrrp_instance VI_1 {\n"
        f"    state {state}\n    interface eth0\n    virtual_router_id 51\n"
        f"    priority {priority}\n    advert_int {advert_int:g}\n{auth}"
        f"    virtual_ipaddress {{\n        {VIP}/24\n    }}\n}}\n"
    )


class Node:
    """One demo node: halo (or keepalived) plus the web server, in a lab host."""

    def __init__(
        self,
        lab: Any,
        host: Any,
        workdir: Path,
        *,
        priority: int,
        state: str,
        args: argparse.Namespace,
        keepalived: bool,
    ) -> None:
        self.lab = lab
        self.host = host
        self.name = host.name
        self.workdir = workdir
        self.priority = priority
        self.state = state
        self.args = args
        self.keepalived = keepalived
        self.proc: Any = None
        self.ka: Any = None
        self.log = workdir / f"{self.name}.log"
        host.spawn(
            sys.executable, "-m", "halo_tool_lab.demo", "serve", self.name, "--port", str(PORT)
        )

    def start(self) -> None:
        if self.keepalived:
            from halo_tool_lab.keepalived import Keepalived

            conf = keepalived_config(
                self.priority, self.state, self.args.version, self.args.advert_int
            )
            self.ka = Keepalived(
                self.host, conf, self.workdir, name=f"{self.name}-{int(time.time() * 1000)}"
            )
            return
        cfg = self.workdir / f"{self.name}.yaml"
        cfg.write_text(
            halo_config(self.priority, self.state, self.args.version, self.args.advert_int)
        )
        self.proc = self.host.spawn(
            sys.executable, "-m", "halo_core.cli", "run", "-c", str(cfg), log=self.log
        )

    def kill(self) -> None:
        if self.ka is not None:
            self.ka.kill9()
        elif self.proc is not None:
            self.proc.kill_group(9)
            self.proc.wait(5)

    def state_changes(self) -> list[tuple[float, str]]:
        out: list[tuple[float, str]] = []
        if self.keepalived:
            return out  # keepalived's own log has no timestamps here; the wire tells instead
        if not self.log.exists():
            return out
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            msg = rec.get("message", "")
            if "entering" in msg and "state" in msg:
                out.append((datetime.fromisoformat(rec["time"]).timestamp(), msg))
        return out


def run_demo(args: argparse.Namespace) -> int:
    from halo_tool_lab import capture as cap
    from halo_tool_lab.netns import Lab, lab_unavailable_reason, wait_until

    reason = lab_unavailable_reason()
    if reason is not None:
        print(f"halo demo: needs root and network namespaces: {reason}", file=sys.stderr)
        return 2
    t = Timeline()
    workdir = Path(tempfile.mkdtemp(prefix="halo-demo-"))
    kind = f"VRRPv{args.version}, adverts every {args.advert_int:g}s"
    print(f"halo demo: two nodes share {VIP} ({kind}); a client asks it every 100 ms.")
    print(f"  files in {workdir}\n")
    with Lab(["node1", "node2", "client"]) as lab:
        node1 = Node(
            lab,
            lab.host("node1"),
            workdir,
            priority=100,
            state="MASTER",
            args=args,
            keepalived=False,
        )
        node2 = Node(
            lab,
            lab.host("node2"),
            workdir,
            priority=90,
            state="BACKUP",
            args=args,
            keepalived=args.keepalived,
        )
        macs = {lab.host("node1").mac: "node1", lab.host("node2").mac: "node2"}
        capture = lab.capture(workdir / "wire.pcap")
        client_log = workdir / "client.jsonl"
        down = 3 * args.advert_int + 1
        budget = 3 * down + 30
        lab.host("client").spawn(
            sys.executable,
            "-m",
            "halo_tool_lab.demo",
            "client",
            VIP,
            "--port",
            str(PORT),
            "--interval",
            "0.1",
            "--duration",
            str(budget),
            "--out",
            str(client_log),
        )

        def step(msg: str) -> None:
            print(f"  [{time.time() - t.start:6.2f}s] {msg}", flush=True)
            t.add(time.time(), "demo", msg)

        dead: set[str] = set()

        def owner() -> str | None:
            # A dead node may still have the VIP configured (kill -9 leaves it, as with
            # keepalived), but it is off the network: it owns nothing.
            for n in (node1, node2):
                if n.name not in dead and n.host.has_address(VIP):
                    return str(n.name)
            return None

        step(
            "starting node1 (priority 100, halo) and node2 (priority 90, "
            + ("keepalived)" if args.keepalived else "halo)")
        )
        node1.start()
        node2.start()
        if not wait_until(lambda: owner() == "node1", down + 10):
            step(f"node1 did not become master (VIP on {owner()}); see {workdir}")
            return 1
        step("node1 holds the VIP")
        time.sleep(2)
        step("node1 dies: kill -9 halo and unplug its cable (a power cut)")
        node1.kill()
        cable = lab.unplug(node1.host)
        dead.add("node1")
        if not wait_until(lambda: owner() == "node2", down + 10, 0.01):
            step("node2 did not take over")
            return 1
        step("node2 holds the VIP")
        time.sleep(2)
        step("node1 comes back: cable in, halo started (it clears the VIP it left behind)")
        cable.remove()
        node1.start()
        wait_until(lambda: not node1.host.has_address(VIP), 10, 0.01)
        dead.discard("node1")
        if not wait_until(lambda: owner() == "node1", down + 10, 0.01):
            step("node1 did not take the VIP back")
            return 1
        step("node1 holds the VIP again (preemption)")
        time.sleep(2)
        frames = capture.stop()

    for n in (node1, node2):
        for when, msg in n.state_changes():
            t.add(when, n.name, msg.split(": ", 1)[-1])
    last_garp: dict[str, float] = {}
    for arp in cap.arp_packets(frames):
        who = macs.get(arp.src_mac, arp.src_mac)
        if arp.sender_ip == arp.target_ip and arp.time - last_garp.get(who, 0) > 1.0:
            t.add(arp.time, who, f"gratuitous ARP: {arp.sender_ip} is at {arp.sender_mac}")
        last_garp[who] = arp.time
    answers = (
        [json.loads(line) for line in client_log.read_text().splitlines()]
        if client_log.exists()
        else []
    )
    # An answer counts when it arrives: a request sent into the outage may be answered
    # after its SYN is retransmitted, by whoever holds the VIP by then.
    answers.sort(key=lambda a: a["done"])
    current = None
    last_ok: float | None = None
    gap = (0.0, 0.0, 0.0)
    failed = 0
    for a in answers:
        if a["ok"]:
            if last_ok is not None and a["done"] - last_ok > gap[0]:
                gap = (a["done"] - last_ok, last_ok, a["done"])
            if a["from"] != current:
                extra = f" ({failed} requests failed meanwhile)" if failed else ""
                t.add(a["done"], "client", f"answers now come from {a['from']}{extra}")
                current = a["from"]
            failed = 0
            last_ok = a["done"]
        else:
            failed += 1
    print("\nTimeline\n" + t.render())
    ok = sum(1 for a in answers if a["ok"])
    print(f"\nClient: {ok} of {len(answers)} requests answered.")
    if gap[0] > 0:
        print(
            f"Longest gap in service: {gap[0]:.3f} s"
            f" (between {gap[1] - t.start:.3f} s and {gap[2] - t.start:.3f} s)."
        )
    print("Everything the demo created has been removed.")
    return 0


def add_command(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "demo",
        help="show a VIP failing over and back between two nodes (needs root)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"""\
Show VRRP failover on this machine. Two halo nodes share the virtual IP
{VIP} (node1 MASTER priority 100, node2 BACKUP priority 90), each with a web
server on port {PORT} answering "from server NAME"; a client asks the VIP every
100 ms. The demo kills node1 (kill -9 and its cable unplugged), watches node2 take over,
brings node1 back, watches it take the VIP back, and prints a timeline and the
longest gap in service.

Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW), the ip command and nft.

It creates, and removes again when it ends (also on Ctrl-C or a failure):
  - network namespaces halo-PID-XXXX-node1, -node2, -client and -sw
    (PID and a random XXXX make the names unique to this run);
  - in -sw a bridge br0 and one veth pair per node: ports p1, p2, p3 on the
    bridge, eth0 in node1, node2 and client;
  - the addresses 192.0.2.11/24, 192.0.2.12/24, 192.0.2.13/24 and
    2001:db8::11/64, ::12/64, ::13/64 on those eth0 (RFC 5737 and RFC 3849
    documentation ranges), and the VIP {VIP}/24, added by the nodes;
  - while node1 is unplugged, an nftables table on the bridge in -sw;
  - processes in the namespaces: halo run on each node (keepalived on node2
    with --keepalived), the two web servers, the client, a packet capture.
Nothing in the machine's own network namespace is touched. The configurations,
logs and the capture (wire.pcap) stay in a directory under $TMPDIR, printed at
the start, for you to read.
""",
    )
    p.add_argument(
        "--version",
        type=int,
        choices=[2, 3],
        default=2,
        dest="version",
        help="VRRP version (default: %(default)s)",
    )
    p.add_argument(
        "--advert-int",
        type=float,
        default=None,
        help="advert interval in seconds (default: 1, or 0.1 with --version 3)",
    )
    p.add_argument(
        "--keepalived",
        action="store_true",
        help="run node2 as the real keepalived (it must be installed) instead of halo",
    )
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    if args.advert_int is None:
        args.advert_int = 1.0 if args.version == 2 else 0.1
    if args.version == 2 and args.advert_int != int(args.advert_int):
        print("halo demo: VRRPv2 adverts are whole seconds", file=sys.stderr)
        return 2
    try:
        return run_demo(args)
    except KeyboardInterrupt:
        print("\nhalo demo: interrupted; everything it created has been removed.", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m halo_tool_lab.demo")
    sub = parser.add_subparsers(dest="what", required=True)
    ps = sub.add_parser("serve")
    ps.add_argument("name")
    ps.add_argument("--port", type=int, default=PORT)
    pc = sub.add_parser("client")
    pc.add_argument("host")
    pc.add_argument("--port", type=int, default=PORT)
    pc.add_argument("--interval", type=float, default=0.1)
    pc.add_argument("--duration", type=float, default=60.0)
    pc.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.what == "serve":
        asyncio.run(serve(args.name, args.port))
    else:
        asyncio.run(
            client(args.host, args.port, args.interval, min(args.duration, 600.0), args.out)
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
