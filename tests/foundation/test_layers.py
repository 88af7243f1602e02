"""The import graph has the layers the design draws, checked with ``ast`` (no import runs).

Inside halo-core: no import cycles, and no import from a lower layer to a higher one —
``vrrp.fsm``/``vrrp.packet`` ← ``vrrp.engine`` ← ``daemon`` ← ``cli``, with the
configuration, schema, bus and scheduler below the daemon. Plugins import halo-core only
through its plugin-facing modules. Every import counts, including those inside functions
(a lazy import is still a dependency); imports under ``if TYPE_CHECKING:`` do not, as they
exist for annotations only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core" / "src"
PLUGINS = sorted((ROOT / "plugins").glob("*/*/src"))

# Highest first. A module may import its own layer and those below it.
LAYERS: list[tuple[str, set[str]]] = [
    ("command line", {"halo_core.cli", "halo_core.worker"}),
    ("daemon", {"halo_core.daemon", "halo_core.once"}),
    (
        "runtime",
        {
            "halo_core.vrrp.engine",
            "halo_core.checks",
            "halo_core.check_batch",
            "halo_core.processes",
            "halo_core.realtime",
            "halo_core.ipc",
            "halo_core.vrrp.status",
        },
    ),
    (
        "configuration and plugin loading",
        {
            "halo_core.config",
            "halo_core.config.loader",
            "halo_core.config.document",
            "halo_core.config.model",
            "halo_core.plugins",
            "halo_core.handover",
        },
    ),
    ("plugin API", {"halo_core.plugin_api", "halo_core.hookspecs", "halo_core.bus"}),
    (
        "VRRP protocol",
        {
            "halo_core.vrrp.fsm",
            "halo_core.vrrp.transport",
            "halo_core.vrrp.tracking",
            "halo_core.vrrp.vmac",
            "halo_core.vrrp.prelisten",
            "halo_core.vrrp.repeatfilter",
        },
    ),
    (
        "foundation",
        {
            "halo_core",
            "halo_core.schema",
            "halo_core.validation",
            "halo_core.events",
            "halo_core.scheduler",
            "halo_core.script_runner",
            "halo_core.log",
            "halo_core.text_table",
            "halo_core.netlink",
            "halo_core.vrrp",
            "halo_core.vrrp.packet",
            "halo_core.vrrp.rawsock",
            "halo_core.cfunc",
            "halo_core.listen",
            "halo_core.tls",
        },
    ),
]

# What a plugin may import from halo-core: the API it is written against and the data it
# is handed (events, the configuration model), plus the helpers offered to plugins.
PLUGIN_FACING = {
    "halo_core",  # version()
    "halo_core.plugin_api",
    "halo_core.hookspecs",
    "halo_core.bus",  # the bus a PluginContext carries (halo_tool_lab.testing builds one)
    "halo_core.schema",
    "halo_core.validation",  # the schema's validator (halo status checks replies with it)
    "halo_core.events",
    "halo_core.scheduler",
    "halo_core.script_runner",
    # a check run with rise/fall and its events, for plugins that check things themselves
    # (halo-engine-pools runs every real server's checks with it, as the daemon runs its own)
    "halo_core.checks",
    "halo_core.config.model",
    "halo_core.log",  # fields(): structured log records
    "halo_core.text_table",  # the tables a command prints
    # listening sockets, bound as the VRRP process binds them and taken over from it
    "halo_core.listen",
    # the protocol's vocabulary a tool shows (states, reject reasons) or decodes (watch)
    "halo_core.vrrp.fsm",
    "halo_core.vrrp.packet",
    # tools load and validate configurations and discover plugins the way the core does
    # (convert checks what it writes; status reads the API's settings from the file)
    "halo_core.config",
    "halo_core.config.loader",
    "halo_core.plugins",
}


def modules(root: Path) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in _runtime_imports_of(child))
            continue
        yield from _runtime_imports_of(node)


def _runtime_imports_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _runtime_imports(node)


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The known modules ``name`` imports at run time (``from pkg import mod`` counts as
    importing ``pkg.mod``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
            continue
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        for alias in node.names:
            full = f"{base}.{alias.name}"
            found.add(full if full in known else base)
    out = set()
    for target in found:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)
    return out


def core_graph() -> dict[str, set[str]]:
    mods = modules(CORE)
    return {m: imports(m, p, set(mods)) for m, p in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_core_module_has_a_layer() -> None:
    placed = {m for _, members in LAYERS for m in members}
    unplaced = sorted(m for m in core_graph() if m not in placed)
    assert not unplaced, f"give these modules a layer in {__name__}.LAYERS: {unplaced}"
    stale = sorted(placed - set(core_graph()))
    assert not stale, f"LAYERS names modules that do not exist: {stale}"


def test_no_import_cycles_in_core() -> None:
    assert cycles(core_graph()) == []


def test_no_import_runs_up_the_layers() -> None:
    rank = {m: i for i, (_, members) in enumerate(LAYERS) for m in members}
    names = {m: name for name, members in LAYERS for m in members}
    upward = []
    for module, targets in sorted(core_graph().items()):
        for target in sorted(targets):
            if rank[target] < rank[module]:
                upward.append(
                    f"{module} ({names[module]}) -> {target} ({names[target]}, a higher layer)"
                )
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_plugins_import_only_the_plugin_facing_modules() -> None:
    core = set(modules(CORE))
    wrong = []
    for src in PLUGINS:
        for module, path in sorted(modules(src).items()):
            known = core | set(modules(src))
            for target in sorted(imports(module, path, known)):
                if target in core and target not in PLUGIN_FACING:
                    wrong.append(f"{module} -> {target}")
    assert not wrong, "plugins reach into halo-core internals:\n" + "\n".join(wrong)


def test_the_checks_see_what_they_check() -> None:
    """The graph reader itself: a lazy import counts, a TYPE_CHECKING one does not."""
    graph = core_graph()
    assert "halo_core.vrrp.engine" in graph["halo_core.daemon"]  # imported in a method
    assert "halo_core.daemon" not in graph["halo_core.hookspecs"]  # annotations only
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
