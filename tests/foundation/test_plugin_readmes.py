"""Every YAML example in a plugin's README is a configuration ``halo check`` accepts.

Each ```` ```yaml ```` block of ``plugins/<kind>/<name>/README.md`` is written to a file and
loaded the way ``halo check`` loads one (every installed plugin, the same errors). A block
that is only a fragment (a few keys to add to a configuration shown elsewhere) says so with
the line ``<!-- fragment -->`` right before it; it is still parsed as YAML, so it cannot rot
into invalid syntax, but not checked as a whole configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from halo_core.cli import load_or_report

ROOT = Path(__file__).resolve().parents[2]
FRAGMENT = "<!-- fragment -->"
# a fenced yaml block, with the non-blank line before it (for the fragment mark)
BLOCK = re.compile(r"(?:^([^\n]*)\n(?:[ \t]*\n)*)?^```yaml[ \t]*\n(.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class Example:
    readme: Path
    line: int  # of the opening fence
    text: str
    fragment: bool

    @property
    def id(self) -> str:
        return f"{self.readme.parent.relative_to(ROOT / 'plugins')}:{self.line}"


def examples(readme: Path) -> list[Example]:
    text = readme.read_text()
    found = []
    for m in BLOCK.finditer(text):
        fence = m.start(2) - len("```yaml\n")
        line = text.count("\n", 0, fence) + 1
        found.append(Example(readme, line, m.group(2), (m.group(1) or "").strip() == FRAGMENT))
    return found


READMES = sorted(ROOT.glob("plugins/*/*/README.md"))
EXAMPLES = [e for r in READMES for e in examples(r)]


def test_every_yaml_fence_is_found() -> None:
    """The block pattern sees every opening fence, so none is skipped unnoticed."""
    for readme in READMES:
        fences = len(re.findall(r"^```yaml", readme.read_text(), re.M))
        assert fences == len(examples(readme)), readme


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.id)
def test_readme_example(example: Example, tmp_path: Path) -> None:
    where = f"{example.readme.relative_to(ROOT)}:{example.line}"
    if example.fragment:
        assert isinstance(yaml.safe_load(example.text), dict), f"{where}: not a YAML mapping"
        return
    path = tmp_path / "halo.yaml"
    path.write_text(example.text)
    errors: list[str] = []
    loaded = load_or_report(str(path), errors.append)
    assert loaded is not None and not errors, f"{where}: halo check says\n" + "\n".join(errors)
    assert not loaded[1].errors, f"{where}: plugins failed to load: {loaded[1].errors}"


def test_a_fragment_is_marked_just_before_its_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n\nText.\n\n```yaml\nchecks: {}\n```\n\n"
        f"{FRAGMENT}\n\n```yaml\n    subject: s\n```\n\n"
        f"{FRAGMENT}\nText after the mark.\n```yaml\na: 1\n```\n"
    )
    assert [(e.line, e.fragment) for e in examples(readme)] == [(5, False), (11, True), (17, False)]
