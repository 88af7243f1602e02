"""The two BGP speakers the backend drives: ExaBGP as a child process, or a running FRR.

Both take whole routes (a prefix and the backend's attributes) and say when they died;
the runtime (:mod:`.runtime`) decides what to announce and restarts a dead speaker.

Why these interfaces:

- ExaBGP's API is a process it runs itself, talking on that process's stdin/stdout
  (text commands, one ``done``/``error`` acknowledgement each). Its other interface, the
  named pipes of ``exabgpcli``, lives in fixed system directories and gives no
  acknowledgement. halo makes the API process a small relay to a Unix socket halo
  listens on: every command is confirmed, and when halo dies the relay's socket closes
  and ExaBGP (``exabgp.api.terminate``) exits, so no route outlives the daemon that
  decided it.
- FRR is driven through ``vtysh``, its supported configuration interface (the same
  commands an operator types), adding and removing ``network`` statements with a
  route-map for the attributes. FRR keeps its neighbours, timers and BFD; halo never
  rewrites them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pwd
import secrets
import shutil
import signal
import sys
import tempfile
from collections import deque
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

from halo_backend_bgp.plugin import BgpBackendConfig, BgpPeer

log = logging.getLogger("halo.backend.bgp")

Prefix = IPv4Network | IPv6Network

START_TIMEOUT = 20.0
"""Seconds ExaBGP may take to read its configuration and start its API process."""
COMMAND_TIMEOUT = 10.0


class SpeakerError(RuntimeError):
    """The speaker could not be started or did not accept a command."""


def _family(prefix: Prefix) -> str:
    return "ipv4" if prefix.version == 4 else "ipv6"


# ------------------------------------------------------------------------------ ExaBGP


def exabgp_config(config: BgpBackendConfig, socket_name: str, python: str) -> str:
    """The ExaBGP configuration: the relay as API process, one ``neighbor`` per peer."""
    router_id = config.router_id or next(
        p.local_address for p in config.peers if p.local_address.version == 4
    )
    lines = [
        "process halo {",
        f'    run "{python}" -m halo_backend_bgp.relay "{socket_name}";',
        "    encoder text;",
        "}",
    ]
    for peer in config.peers:
        lines += _neighbor(config, peer, str(router_id))
    return "\n".join(lines) + "\n"


def _neighbor(config: BgpBackendConfig, peer: BgpPeer, router_id: str) -> list[str]:
    out = [
        f"neighbor {peer.address} {{",
        f"    router-id {router_id};",
        f"    local-address {peer.local_address};",
        f"    local-as {config.local_as};",
        f"    peer-as {peer.peer_as};",
        f"    hold-time {peer.hold_time or config.hold_time};",
    ]
    if peer.passive:
        out.append("    passive true;")
    if peer.md5_password:
        out.append(f'    md5-password "{peer.md5_password}";')
    out.append("    family {")
    out += [f"        {family} unicast;" for family in peer.session_families()]
    out += ["    }", "    api {", "        processes [ halo ];", "    }", "}"]
    return out


def exabgp_environment(config: BgpBackendConfig) -> dict[str, str]:
    """ExaBGP's settings as environment variables: no daemonizing, no privilege drop (halo
    already runs as the user it should), no pid file or CLI pipes in system directories,
    log to stdout (halo's log), acknowledge each command, exit when the API process ends."""
    passive = sorted({str(p.local_address) for p in config.peers if p.passive})
    return {
        "exabgp.daemon.daemonize": "false",
        "exabgp.daemon.user": pwd.getpwuid(os.getuid()).pw_name,
        "exabgp.daemon.drop": "false",
        "exabgp.daemon.pid": "",
        "exabgp.log.destination": "stdout",
        "exabgp.log.level": "INFO",
        "exabgp.api.cli": "false",
        "exabgp.api.ack": "true",
        "exabgp.api.encoder": "text",
        "exabgp.api.respawn": "false",
        "exabgp.api.terminate": "true",
        "exabgp.tcp.bind": " ".join(passive),
    }


def exabgp_route(config: BgpBackendConfig, prefix: Prefix, withdraw: bool = False) -> str:
    """One text API command for *prefix* with the backend's attributes."""
    hop = next((str(a) for a in config.next_hop if a.version == prefix.version), "self")
    parts = ["withdraw" if withdraw else "announce", "route", str(prefix), "next-hop", hop]
    if withdraw:
        return " ".join(parts)
    if config.med is not None:
        parts += ["med", str(config.med)]
    if config.local_preference is not None:
        parts += ["local-preference", str(config.local_preference)]
    if config.communities:
        parts += ["community", "[", *config.communities, "]"]
    if config.as_path_prepend:
        # ExaBGP puts local_as in front on eBGP sessions; these are the extra copies.
        parts += ["as-path", "[", *[str(config.local_as)] * config.as_path_prepend, "]"]
    return " ".join(parts)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when halo dies, even by SIGKILL (PR_SET_PDEATHSIG),
    so that a dead halo's routes do not stay announced."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def exabgp_command(config: BgpBackendConfig) -> list[str]:
    if config.exabgp:
        return [config.exabgp]
    return [sys.executable, "-m", "exabgp"]


class ExaBgpSpeaker:
    """ExaBGP as a child process with a generated configuration in a private directory."""

    name = "exabgp"

    def __init__(self, config: BgpBackendConfig, label: str, state_dir: str | None = None) -> None:
        self.config = config
        self.label = label
        self.state_dir = state_dir
        self.dir: Path | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.server: asyncio.Server | None = None
        self.output: deque[str] = deque(maxlen=20)
        self._connected: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None
        self._connected = None
        self._lock = asyncio.Lock()
        self._log_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> None:
        command = exabgp_command(self.config)
        if os.path.sep not in command[0] and shutil.which(command[0]) is None:
            raise SpeakerError(f"exabgp program {command[0]!r} not found")
        self.dir = self._directory()
        # An abstract socket (Linux): no file to leave behind, no path-length limit.
        socket_name = f"@halo-bgp-{os.getpid()}-{self.label}-{secrets.token_hex(4)}"
        conf = self.dir / "exabgp.conf"
        conf.write_text(exabgp_config(self.config, socket_name, sys.executable))
        loop = asyncio.get_running_loop()
        self._connected = loop.create_future()
        self.server = await asyncio.start_unix_server(
            self._accept, path="\0" + socket_name.removeprefix("@")
        )
        env = {**os.environ, **exabgp_environment(self.config)}
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *command,
                str(conf),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                start_new_session=True,  # a Ctrl-C meant for halo reaches halo only
            )
        except OSError as exc:
            await self.close()
            raise SpeakerError(f"cannot run {command[0]}: {exc}") from exc
        self._log_task = asyncio.create_task(self._read_output())
        exited: asyncio.Future[Any] = asyncio.ensure_future(self.proc.wait())
        connected: asyncio.Future[Any] = self._connected
        try:
            done, _ = await asyncio.wait(
                {connected, exited},
                timeout=START_TIMEOUT,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if self._connected not in done:
                if exited in done:
                    await asyncio.sleep(0.1)  # let the last lines of output arrive
                    why = f"exited with {self.proc.returncode}"
                else:
                    why = f"API not connected after {START_TIMEOUT:g} s"
                await self.close()
                raise SpeakerError(f"exabgp {why}: {self.last_output()}")
        finally:
            exited.cancel()
        self.reader, self.writer = self._connected.result()

    def _directory(self) -> Path:
        """Where ExaBGP's configuration goes: ``STATE_DIR/bgp-NAME`` (one per backend, emptied
        at each start, so a killed halo leaves nothing that grows), or a temporary directory
        when the state directory is not there."""
        if self.state_dir and os.path.isdir(self.state_dir):
            directory = Path(self.state_dir) / f"bgp-{self.label}"
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(mode=0o700)
            return directory
        return Path(tempfile.mkdtemp(prefix=f"halo-bgp-{self.label}-"))

    def last_output(self) -> str:
        lines = [ln for ln in self.output if ln.strip()]
        return " | ".join(lines[-3:]) if lines else "no output"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._connected is not None and not self._connected.done():
            self._connected.set_result((reader, writer))
        else:
            writer.close()

    async def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            text = line.decode(errors="replace").rstrip()
            self.output.append(text)
            log.debug("%s: exabgp: %s", self.label, text)

    async def command(self, line: str) -> None:
        """Send one API command and wait for its acknowledgement."""
        async with self._lock:
            if self.writer is None or self.reader is None:
                raise SpeakerError("exabgp is not running")
            try:
                self.writer.write(line.encode() + b"\n")
                await self.writer.drain()
                answer = await asyncio.wait_for(self.reader.readline(), COMMAND_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                raise SpeakerError(f"exabgp did not answer {line!r}: {exc}") from exc
            word = answer.decode(errors="replace").strip()
            if word != "done":
                raise SpeakerError(f"exabgp refused {line!r}: {word or 'connection closed'}")

    async def announce(self, prefix: Prefix) -> None:
        await self.command(exabgp_route(self.config, prefix))

    async def withdraw(self, prefix: Prefix) -> None:
        await self.command(exabgp_route(self.config, prefix, withdraw=True))

    async def wait_dead(self) -> str:
        """Return, with the reason, once ExaBGP has exited."""
        assert self.proc is not None
        code = await self.proc.wait()
        if self._log_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._log_task, 1.0)
        why = f"signal {-code}" if code < 0 else f"status {code}"
        return f"exabgp exited ({why}): {self.last_output()}"

    async def close(self) -> None:
        """Stop ExaBGP (SIGTERM: it closes its sessions with a Cease notification) and remove
        the directory."""
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 5.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._log_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._log_task, 1.0)
            self._log_task = None
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


# ------------------------------------------------------------------------------ FRR


def frr_route_map(config: BgpBackendConfig, name: str) -> list[str]:
    """vtysh configuration lines of the route-map carrying the backend's attributes."""
    lines = [f"route-map {name} permit 10"]
    if config.communities:
        lines.append("set community " + " ".join(config.communities) + " additive")
    if config.med is not None:
        lines.append(f"set metric {config.med}")
    if config.local_preference is not None:
        lines.append(f"set local-preference {config.local_preference}")
    if config.as_path_prepend:
        lines.append(
            "set as-path prepend " + " ".join([str(config.local_as)] * config.as_path_prepend)
        )
    for hop in config.next_hop:
        lines.append(
            f"set ip next-hop {hop}" if hop.version == 4 else f"set ipv6 next-hop global {hop}"
        )
    lines.append("exit")
    return lines


def frr_network(
    config: BgpBackendConfig, prefix: Prefix, route_map: str, withdraw: bool
) -> list[str]:
    statement = f"network {prefix}" if withdraw else f"network {prefix} route-map {route_map}"
    return [
        f"router bgp {config.local_as}",
        f"address-family {_family(prefix)} unicast",
        ("no " if withdraw else "") + statement,
        "exit-address-family",
        "exit",
    ]


class FrrSpeaker:
    """A running FRR, configured through vtysh. halo does not own the daemons: when bgpd
    stops answering halo reports it and puts its networks back once bgpd is back."""

    name = "frr"

    def __init__(self, config: BgpBackendConfig, label: str) -> None:
        self.config = config
        self.route_map = f"halo-{label}"
        self.announced: set[Prefix] = set()
        self.pid: int | None = None

    async def vtysh(self, lines: Sequence[str], configure: bool = True) -> str:
        argv = list(self.config.vtysh)
        if configure:
            argv += ["-c", "configure terminal"]
        for line in lines:
            argv += ["-c", line]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            raise SpeakerError(f"cannot run {argv[0]}: {exc}") from exc
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT)
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise SpeakerError(f"vtysh did not answer within {COMMAND_TIMEOUT:g} s") from exc
        text = out.decode(errors="replace")
        errors = [ln for ln in text.splitlines() if ln.startswith("%")]
        if proc.returncode != 0 or errors:
            why = "; ".join(errors) or text.strip().splitlines()[-1:] or f"status {proc.returncode}"
            raise SpeakerError(f"vtysh: {why}")
        return text

    async def start(self) -> None:
        self.announced.clear()
        await self.vtysh(
            [
                *frr_route_map(self.config, self.route_map),
                f"router bgp {self.config.local_as}",
                # the host route need not be in FRR's RIB (a VIP on a /24, an address on lo)
                "no bgp network import-check",
                "exit",
            ]
        )

    async def announce(self, prefix: Prefix) -> None:
        await self.vtysh(frr_network(self.config, prefix, self.route_map, withdraw=False))
        self.announced.add(prefix)

    async def withdraw(self, prefix: Prefix) -> None:
        await self.vtysh(frr_network(self.config, prefix, self.route_map, withdraw=True))
        self.announced.discard(prefix)

    async def wait_dead(self) -> str:
        """Poll bgpd; return, with the reason, once it no longer answers or has lost halo's
        networks (it was restarted with its saved configuration)."""
        while True:
            await asyncio.sleep(float(self.config.check_interval))
            try:
                running = await self.vtysh(["show running-config bgpd"], configure=False)
            except SpeakerError as exc:
                return f"FRR does not answer: {exc}"
            lost = [
                p
                for p in self.announced
                if f"network {p} route-map {self.route_map}" not in running
            ]
            if lost:
                return f"FRR lost halo's networks ({', '.join(map(str, sorted(lost, key=str)))})"

    async def close(self) -> None:
        with contextlib.suppress(SpeakerError):
            await self.vtysh([f"no route-map {self.route_map}"])


Speaker = ExaBgpSpeaker | FrrSpeaker
