"""The VRRP process's configuration, validated in a short-lived child process.

The VRRP process (the one ``halo run`` starts, docs/processes.md) never reads YAML, never
discovers or loads plugins and never validates: a child it forks does, with every
installed plugin, and hands back a :class:`Verdict` through a pipe, pickled. The VRRP
process so keeps none of that code in memory, and a hostile file's CPU and memory are spent
in a process that is gone a moment later, off VRRP's event loop. It is asked at start
(while it works, the VRRP process imports what it runs) and at each SIGHUP.

The verdict carries VRRP's view of the configuration (:func:`vrrp_view`): its instances,
sync groups, the checks' common settings (a tracked check's default weight), the backends
that provide addresses, and the options their plugins add; none of the other plugins'
classes, so unpickling it imports none of their code. Pickle is the model's own codec
(frozen dataclasses, address types, options keyed by their class); it crosses only from a
child this process started to this process, through a pipe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# Nothing of halo's at the top: `halo run` imports this module to start the child, and
# imports the rest while the child works.
if TYPE_CHECKING:
    from halo_core.config import Config, Located
    from halo_core.plugin_api import PluginType
    from halo_core.plugins import Found, LoadError, Plugins
    from halo_core.schema import Extensions

TIMEOUT = 300.0
"""How long validation may take before the child is killed and the file refused (3,000
instances take about 2 s)."""


HookFailure = tuple[str, str, str]
"""A plugin hook that raised in the validating child (``halo_has_work``,
``halo_listen_on``): the plugin's name, the hook's, and why (``Type: message``)."""


@dataclass
class Verdict:
    """What the validating child found: the problems of an invalid file, or VRRP's view of
    a valid one with what the VRRP process needs besides."""

    problems: list[Located] = field(default_factory=list)
    config: Config | None = None
    address_types: list[PluginType] = field(default_factory=list)
    """The installed backend types that provide addresses (run in the VRRP process)."""
    plugin_errors: list[LoadError] = field(default_factory=list)
    worker: bool = False
    """Whether anything must run in a worker now (:func:`plan`)."""
    listeners: dict[str, str] = field(default_factory=dict)
    """Without a worker: the endpoints the VRRP process listens on for plugins whose only
    work is serving there, ``{label: endpoint}`` (:func:`plan`); the worker starts on their
    first connection."""
    hook_failures: list[HookFailure] = field(default_factory=list)
    """The plugins whose ``halo_has_work`` raised (counted as having work), for the VRRP
    process to log: the child's log is not the daemon's."""
    first_party: bool = True
    """Whether the address backends this configuration uses are all halo's own (none of
    them needs TLS: the VRRP process then leaves OpenSSL out)."""
    secrets: list[str] = field(default_factory=list)
    version: str = ""
    failure: str | None = None
    """Why no verdict came (the child crashed or took too long)."""
    input_fd: int = -1
    """Set in the VRRP process for a valid file: a memory file holding the worker's
    :class:`WorkerInput` (the child wrote it; this process never reads it), for each
    worker started on this configuration. Whoever holds the verdict closes it."""


@dataclass
class WorkerInput:
    """What the worker builds its configuration and plugins from, instead of reading the
    file and discovering the plugins again (docs/processes.md): the document the validating
    child read (with its marks: problems stay ``file:line:col``), the entry points it
    found, and halo's version. Pickled by the child into a memory file the VRRP process
    hands to each worker it starts (``--input-fd``) and with each reload's ``prepare``."""

    path: str
    document: Any
    plugins: list[Found]
    version: str


WORKER_HOOKS = ("halo_subscribe", "halo_startup", "halo_daemon_state", "halo_reload")


def needs_worker(config: Config, plugins: Plugins) -> tuple[bool, list[HookFailure]]:
    """Whether anything besides VRRP and its addresses must run: checks, notifiers, virtual
    servers, backends that do not provide addresses, or a plugin with daemon hooks that
    has work for ``config`` (:func:`plugins_with_work`), now or on demand. If not, halo runs
    as one process. Also returns the plugins whose hooks raised, for the caller to report."""
    worker, listeners, failures = plan(config, plugins)
    return worker or bool(listeners), failures


def plan(config: Config, plugins: Plugins) -> tuple[bool, dict[str, str], list[HookFailure]]:
    """Whether a worker must run now (as :func:`needs_worker`), and if not, the endpoints to
    listen on until a worker is wanted (``halo_listen_on``: every plugin with work only
    serves there); with the plugins whose hooks raised."""
    working, failures = plugins_with_work(config, plugins)
    m = config.model
    if m.checks or m.notifiers or m.virtual_servers:
        return True, {}, failures
    providers = set(plugins.providers("addresses"))
    if any(c.type not in providers for c in m.backends.values()):
        return True, {}, failures
    listeners: dict[str, str] = {}
    for name in working:
        found = _listen_on(plugins, name, config, failures)
        if not found:
            return True, {}, failures
        listeners.update(found)
    return False, listeners, failures


def _listen_on(
    plugins: Plugins, name: str, config: Config, failures: list[HookFailure]
) -> dict[str, str] | None:
    """Plugin ``name``'s ``halo_listen_on`` answer (None when it has none, or raised: then
    among ``failures``)."""
    impl = _impls(plugins, "halo_listen_on").get(name)
    if impl is None:
        return None
    try:
        found = _ask(impl, config)
        if found is None:
            return None
        return {str(label): str(endpoint) for label, endpoint in dict(found).items()}
    except BaseException as exc:  # plugin territory: a worker at once, reported
        failures.append(_failure(name, "halo_listen_on", exc))
        return None


def plugins_with_work(config: Config, plugins: Plugins) -> tuple[list[str], list[HookFailure]]:
    """The plugins implementing a daemon hook (:data:`WORKER_HOOKS`) that have work for
    ``config``, by name, and those whose ``halo_has_work`` raised. Each is asked on its own
    (pluggy's call would merge the answers): one without ``halo_has_work`` has work; one
    whose hook raises has work too, and is among the failures."""
    hooked = {name for h in WORKER_HOOKS for name in _impls(plugins, h)}
    asked = _impls(plugins, "halo_has_work")
    working: list[str] = []
    failures: list[HookFailure] = []
    for name in sorted(hooked):
        impl = asked.get(name)
        try:
            if impl is None or _ask(impl, config):
                working.append(name)
        except BaseException as exc:  # plugin territory, even SystemExit: has work, reported
            failures.append(_failure(name, "halo_has_work", exc))
            working.append(name)
    return working, failures


def _impls(plugins: Plugins, hook: str) -> dict[str, Any]:
    """The implementations of ``hook``, by plugin name (plugin objects need not be
    hashable: names are)."""
    return {
        plugins.manager.get_name(i.plugin) or repr(i.plugin): i
        for i in getattr(plugins.hook, hook).get_hookimpls()
    }


def _ask(impl: Any, config: Config) -> Any:
    """Call one plugin's implementation of a hook taking ``config`` (pluggy lets an
    implementation take fewer arguments than the hook has)."""
    return impl.function(*[config for _ in impl.argnames])


def _failure(name: str, hook: str, exc: BaseException) -> HookFailure:
    return name, hook, f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def vrrp_view(config: Config, plugins: Plugins) -> Config:
    """What the VRRP process needs of ``config``: instances and sync groups (with the
    options of the plugins providing addresses only), every check reduced to the settings
    all checkers share (its default weight for tracking), the backends providing
    addresses; no notifier, virtual server or other backend. A disabled check is left out
    (:meth:`~halo_core.plugin_api.CheckerConfig.disabled`): the instances tracking it ignore
    it, as keepalived does."""
    from halo_core.config import Config
    from halo_core.plugin_api import CheckerConfig, disabled_reason
    from halo_core.schema import Configured, Extensions

    m = config.model
    providers = set(plugins.providers("addresses"))
    own = {
        i.name for i in plugins.infos if any(n in providers for k, n in i.types if k == "backend")
    }
    kept = {s for point in plugins.extensions.values() for name, s in point.items() if name in own}

    def options(extensions: Extensions) -> Extensions:
        return Extensions({s: v for s, v in extensions.by_schema.items() if s in kept})

    shared = [f.name for f in dataclasses.fields(CheckerConfig) if f.init]
    model = dataclasses.replace(
        m,
        global_=dataclasses.replace(m.global_, extensions=options(m.global_.extensions)),
        vrrp_instances={
            n: dataclasses.replace(i, extensions=options(i.extensions))
            for n, i in m.vrrp_instances.items()
        },
        checks={
            n: Configured(
                c.kind, c.type, CheckerConfig(**{k: getattr(c.config, k) for k in shared})
            )
            for n, c in m.checks.items()
            if not (isinstance(c.config, CheckerConfig) and disabled_reason(c.config))
        },
        notifiers={},
        backends={n: c for n, c in m.backends.items() if c.type in providers},
        virtual_servers=[],
    )
    return Config(model, config.path, None)


def judge(path: str, input_fd: int = -1) -> Verdict:
    """Load and validate ``path`` with every installed plugin (in the child); for a valid
    file, write the worker's :class:`WorkerInput` to ``input_fd``."""
    from halo_core import log, version
    from halo_core.config import ConfigError, load_with_plugins
    from halo_core.plugin_api import FIRST_PARTY_TYPES

    try:
        config, plugins = load_with_plugins(path)
    except ConfigError as exc:
        return Verdict(problems=exc.problems)
    if input_fd >= 0:
        write_input(input_fd, config, plugins)
    providers = plugins.providers("addresses")
    used = {c.type for c in config.model.backends.values()} & set(providers) or set(providers)
    by_type = {t: i.distribution for i in plugins.infos for k, t in i.types if k == "backend"}
    worker, listeners, failures = plan(config, plugins)
    return Verdict(
        config=vrrp_view(config, plugins),
        address_types=[plugins.type("backend", n) for n in providers],
        plugin_errors=list(plugins.errors),
        worker=worker,
        listeners=listeners,
        hook_failures=failures,
        first_party=all(by_type.get(t) == FIRST_PARTY_TYPES.get(("backend", t)) for t in used),
        secrets=log.secrets(),
        version=version(),
    )


def write_input(fd: int, config: Config, plugins: Plugins) -> None:
    """Write the worker's :class:`WorkerInput` for ``config`` and ``plugins`` to ``fd``."""
    import pickle

    from halo_core import version

    given = WorkerInput(config.path, config.raw, list(plugins.found), version())
    view = memoryview(pickle.dumps(given, protocol=pickle.HIGHEST_PROTOCOL))
    while view:
        view = view[os.write(fd, view) :]


def input_file(config: Config, plugins: Plugins) -> int:
    """A new memory file holding the worker's input for ``config`` (a daemon that read its
    file itself, not through a validating child)."""
    fd = os.memfd_create("halo-worker-input", os.MFD_CLOEXEC)
    try:
        write_input(fd, config, plugins)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_input(fd: int) -> WorkerInput:
    """The :class:`WorkerInput` in memory file ``fd`` (read from its start, whoever else
    holds it; ``fd`` stays open). ValueError when it holds none."""
    from _pickle import loads  # the C unpickler alone (see _decode)

    chunks: list[bytes] = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    try:
        found = loads(b"".join(chunks))
    except Exception as exc:
        raise ValueError(f"no configuration came from the VRRP process ({exc})") from None
    if not isinstance(found, WorkerInput):
        raise ValueError(f"the VRRP process gave a {type(found).__name__}, not a configuration")
    return found


def worker_plugins(given: WorkerInput) -> Plugins:
    """The plugins of ``given``, loaded as the validating child loaded them (less those the
    document blocks), without discovering them."""
    from halo_core import plugins
    from halo_core.config import block_list

    return plugins.load(block=block_list(given.document), found=given.plugins)


def worker_config(given: WorkerInput, plugins: Plugins) -> Config:
    """The configuration of ``given``, validated with ``plugins`` (ConfigError if not)."""
    from halo_core import version
    from halo_core.config import from_document

    version(given.version)
    return from_document(given.document, given.path, plugins)


def close_input(fd: int) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


@dataclass
class Child:
    """A forked child validating a file: its pid, the pipe its verdict comes through and
    the memory file it writes the worker's input to."""

    pid: int
    fd: int
    input_fd: int = -1


def begin(path: str) -> Child:
    """Fork a child that validates ``path``. A fork, not a new interpreter: the child starts
    with what this process imported already (the model, the schema machinery) and adds
    only what validation needs; none of it comes back here."""
    import signal

    read_end, write_end = os.pipe()
    try:
        input_fd = os.memfd_create("halo-worker-input", os.MFD_CLOEXEC)
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    try:
        pid = os.fork()
    except OSError:
        for fd in (read_end, write_end, input_fd):
            os.close(fd)
        raise
    if pid:
        os.close(write_end)
        return Child(pid, read_end, input_fd)
    status = 1
    try:  # the child: never returns
        os.close(read_end)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)  # not the VRRP process's handlers
        signal.set_wakeup_fd(-1)  # its loop's wake-up pipe is the parent's too
        from halo_core import tls

        tls.restore()  # a plugin's schema module may import ssl
        os.dup2(2, 1)  # what a plugin prints at import goes to the standard error
        import pickle

        data = pickle.dumps(judge(path, input_fd), protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(write_end, "wb") as out:
            out.write(data)
        status = 0
    except BrokenPipeError:
        pass  # the daemon stopped (or gave up) while this was validating: nobody to tell
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(status)


def finish(child: Child) -> Verdict:
    """The verdict of a child :func:`begin` forked (at start, before any event loop)."""
    import select
    import time

    chunks: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT
    while (left := deadline - time.monotonic()) > 0 and select.select([child.fd], [], [], left)[0]:
        chunk = os.read(child.fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    else:
        os.kill(child.pid, 9)
    os.close(child.fd)
    _, status = os.waitpid(child.pid, 0)
    return _with_input(_decode(b"".join(chunks), os.waitstatus_to_exitcode(status)), child)


async def verdict(path: str) -> Verdict:
    """Validate ``path`` in a forked child, from the event loop (a reload)."""
    try:
        child = begin(path)
    except OSError as exc:
        return Verdict(failure=f"cannot start the validation: {exc}")
    return await collect(child)


async def collect(child: Child) -> Verdict:
    """The verdict of a child :func:`begin` forked, read on the event loop, which sleeps
    until the child writes and then until it exits."""
    import asyncio

    loop = asyncio.get_running_loop()
    chunks: list[bytes] = []
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        chunk = os.read(child.fd, 1 << 16)
        if chunk:
            chunks.append(chunk)
            return
        # At its end a pipe stays readable: watched any longer, it would wake the loop at
        # once, again and again, until the child is reaped - a busy loop that, in real
        # time, hit RLIMIT_RTTIME during SIGHUP storms (and so lost real time: the
        # soak's false takeovers).
        loop.remove_reader(child.fd)
        if not done.done():
            done.set_result(None)

    loop.add_reader(child.fd, readable)
    try:
        async with asyncio.timeout(TIMEOUT):
            await done
            status = await exited(child.pid)  # it exits once it has written
    except TimeoutError:
        os.kill(child.pid, 9)
        os.waitpid(child.pid, 0)
        close_input(child.input_fd)
        return Verdict(failure=f"validation took longer than {TIMEOUT:g}s")
    except BaseException:  # cancelled: the daemon stops during a reload
        close_input(child.input_fd)
        try:
            os.kill(child.pid, 9)
            os.waitpid(child.pid, 0)
        except OSError:  # already reaped
            pass
        raise
    finally:
        loop.remove_reader(child.fd)
        os.close(child.fd)
    return _with_input(_decode(b"".join(chunks), os.waitstatus_to_exitcode(status)), child)


def _with_input(found: Verdict, child: Child) -> Verdict:
    """``found`` holding the child's memory file when it is valid (else closed)."""
    if found.failure is None and not found.problems and found.config is not None:
        found.input_fd = child.input_fd
    else:
        close_input(child.input_fd)
    return found


async def exited(pid: int) -> int:
    """Wait for child ``pid`` to exit and reap it; its wait status. The loop sleeps
    meanwhile: the child's pidfd wakes it (polled every 5 ms where there is none)."""
    import asyncio

    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux, or before 5.3
        fd = -1
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
        while not reaped and fd < 0:
            await asyncio.sleep(0.005)
            reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped:
            return status
        gone: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not gone.done():
                gone.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await gone
        finally:
            loop.remove_reader(fd)
        return os.waitpid(pid, 0)[1]  # it has exited: no wait
    finally:
        if fd >= 0:
            os.close(fd)


def _decode(out: bytes, status: int | None) -> Verdict:
    # The C unpickler alone: the pickle module around it (a pickler in Python, 0.2 MB) is
    # the validating child's, never used here.
    from _pickle import loads

    try:
        found = loads(out)
    except Exception as exc:  # a crashed child: nothing, or half a pickle
        how = f"exited with status {status}" if status else f"gave no verdict ({exc})"
        return Verdict(failure=f"the validating process {how}")
    if not isinstance(found, Verdict):
        return Verdict(failure=f"the validating process gave a {type(found).__name__}")
    return found


def accept(found: Verdict) -> Config:
    """The configuration of a verdict, its secrets registered for redaction; ConfigError
    for an invalid file, RuntimeError when no verdict came."""
    from halo_core import log, version
    from halo_core.config import ConfigError

    if found.failure is not None:
        raise RuntimeError(found.failure)
    if found.problems or found.config is None:
        raise ConfigError(found.problems)
    for value in found.secrets:
        log.add_secret(value)
    if found.version:
        version(found.version)
    return found.config
