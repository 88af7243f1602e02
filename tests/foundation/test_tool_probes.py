"""A machine without the external tools skips the tests that need them and fails none.

Three nets, cheapest first:

- a static check: a test whose code (with the helpers, classes and fixtures of its own
  module it uses) visibly runs a tool (``x.run("nft", ...)``, ``["systemd-analyze", ...]``,
  ``Keepalived(...)``, a lab's ``partition``/``loss``) declares it;
- a child pytest running every test that declares a tool (``needs_tools`` / ``uses_tools``,
  see halo_tool_lab.tools) with the traced tools hidden from ``PATH``: 0 failed;
- the tool trace of the lab's pytest plugin, in every session where the tools are installed
  (CI): a test running a tool it did not declare fails, whatever path (a fixture, a child)
  ran it.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from halo_tool_lab.tools import (
    MARKERS,
    TRACED,
    needs_tools,
    tool_missing_reason,
    uses_tools,
)

ROOT = Path(__file__).resolve().parents[2]
# library calls that run a tool: Keepalived(...) starts keepalived; partition() and loss() of
# a lab (named lab or lb, as the tests do; str.partition is not one) are nftables rules
LAB = re.compile(r"(^|\.)(lab|lb)$|^lab\(")


def _tools_run_by(node: ast.AST) -> set[tuple[str, int]]:
    """(tool, line) for every visible run of a traced tool in *node*."""
    found = set()
    for sub in ast.walk(node):
        first: ast.expr | None = None
        if isinstance(sub, ast.Call):
            first = sub.args[0] if sub.args else None
            if isinstance(sub.func, ast.Name) and sub.func.id == "Keepalived":
                found.add(("keepalived", sub.lineno))
            if (
                isinstance(sub.func, ast.Attribute)
                and sub.func.attr in ("partition", "loss")
                and LAB.search(ast.unparse(sub.func.value))
            ):
                found.add(("nft", sub.lineno))
        elif isinstance(sub, ast.List | ast.Tuple) and sub.elts:
            first = sub.elts[0]
        if isinstance(first, ast.Constant) and first.value in TRACED:
            found.add((str(first.value), sub.lineno))
    return found


def _declared_in(node: ast.AST, symbols: dict[str, ast.AST], seen: set[str]) -> set[str]:
    """Tools named by needs_tools/uses_tools calls in *node*, following module-level names
    (``marks=KEEPALIVED``)."""
    tools = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name | ast.Attribute):
            name = sub.func.id if isinstance(sub.func, ast.Name) else sub.func.attr
            if name in MARKERS:
                tools |= {a.value for a in sub.args if isinstance(a, ast.Constant)}
        if isinstance(sub, ast.Name) and sub.id in symbols and sub.id not in seen:
            seen.add(sub.id)
            tools |= _declared_in(symbols[sub.id], symbols, seen)
    return tools


def _names_in(nodes: list[ast.stmt] | list[ast.AST]) -> set[str]:
    """Names read in *nodes*, and the parameters of functions there (fixtures they use)."""
    found = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                found.add(sub.id)
            elif isinstance(sub, ast.arguments):
                found |= {a.arg for a in sub.args}
    return found


def undeclared_tool_runs(path: Path) -> list[str]:
    """``path::test runs TOOL (line N)`` for each test of *path* running a tool it does not
    declare, as far as the code of its own module shows."""
    tree = ast.parse(path.read_text(), str(path))
    label = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    symbols: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            symbols[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            symbols.update({t.id: node for t in targets if isinstance(t, ast.Name)})
    module_marks = symbols.get("pytestmark")
    module_tools = _declared_in(module_marks, symbols, set()) if module_marks else set()
    tests: list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, list[ast.expr]]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            tests.append((node, []))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            tests += [
                (m, node.decorator_list)
                for m in node.body
                if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
    out = []
    for test, class_decorators in tests:
        if not test.name.startswith("test"):
            continue
        # the test's body and, transitively, the module's helpers and fixtures it names
        used: list[ast.AST] = list(test.body)
        names = {a.arg for a in test.args.args} | _names_in(test.body)
        seen: set[str] = set()
        while names:
            name = names.pop()
            if name in seen or name not in symbols:
                continue
            seen.add(name)
            used.append(symbols[name])
            names |= _names_in([symbols[name]])
        declared = set(module_tools)
        for deco in [*test.decorator_list, *class_decorators]:
            declared |= _declared_in(deco, symbols, set())
        runs = {run for node in used for run in _tools_run_by(node)}
        for tool, line in sorted(runs):
            if tool not in declared:
                out.append(f"{label}::{test.name} runs {tool} (line {line})")
    return out


def path_without(tools: tuple[str, ...], bindir: Path) -> str:
    """A PATH of one directory: symlinks to every command on the current PATH but *tools*."""
    bindir.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            link = bindir / entry.name
            if entry.name in tools or os.path.lexists(link):
                continue  # hidden, or shadowed by an earlier PATH entry
            link.symlink_to(entry.path)
    return str(bindir)


def test_hidden_tools_skip_and_never_fail(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": path_without(TRACED, tmp_path / "bin")}
    env.pop("PYTEST_ADDOPTS", None)
    argv = [sys.executable, "-m", "pytest", "--tool-tests-only", "-q", "-rs"]
    argv += ["-p", "no:cacheprovider", "--basetemp", str(tmp_path / "inner")]
    proc = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    out = proc.stdout + proc.stderr
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    print(summary)
    print("\n".join(ln for ln in out.splitlines() if ln.startswith("SKIPPED")))
    assert proc.returncode == 0 and not re.search(r"\d+ (failed|errors?)\b", summary), out[-6000:]
    for tool in {"nft", "keepalived"}:  # tests declaring them exist: their skips must show
        assert f": {tool} not found (Debian package" in out, out[-6000:]


def test_unknown_tool_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown tool"):
        needs_tools("nfx")
    with pytest.raises(ValueError, match="unknown tool"):
        uses_tools()
    with pytest.raises(ValueError, match="unknown tool"):
        tool_missing_reason("ipvsadmin")


def test_every_visible_tool_run_is_declared() -> None:
    files = sorted(
        [*(ROOT / "tests").rglob("test_*.py"), *ROOT.glob("plugins/*/*/tests/test_*.py")]
    )
    checked = [
        f
        for f in files
        if f != Path(__file__).resolve()  # names the tools to look for them
    ]
    assert [line for f in checked for line in undeclared_tool_runs(f)] == []


def test_static_check_sees_a_missing_declaration(tmp_path: Path) -> None:
    test_file = tmp_path / "test_example.py"
    test_file.write_text(
        "def helper(lb):\n"
        "    return lb.partition(lb.hosts[0], 112)\n"
        "def test_undeclared(lab):\n"
        "    helper(lab(2))\n"
        "@needs_tools('nft')\n"
        "def test_declared(lab):\n"
        "    lab(2).loss(50)\n"
        "def test_other_partition(buf, sep):\n"
        "    buf.partition(sep)\n"
        "def test_string_partition():\n"
        "    'a=b'.partition('=')\n"
        "def test_command(host):\n"
        "    host.run('keepalived', '--version')\n"
    )
    found = undeclared_tool_runs(test_file)
    assert [line.split("::")[1] for line in found] == [
        "test_undeclared runs nft (line 2)",
        "test_command runs keepalived (line 13)",
    ]
