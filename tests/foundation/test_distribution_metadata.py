"""What PyPI shows of each distribution, read from the built wheels' METADATA: the MIT
LICENSE (in wheel and sdist), classifiers, project URLs, Python >= 3.11, compatible ranges on
halo's own distributions, halo-core's extras, and READMEs whose links work away from the
repository."""

from __future__ import annotations

import re
import tarfile
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from packaging_helpers import ROOT, Built

PROJECT = "https://github.com/halo-ha/halo"  # the project's home: every URL lives under it
COPYRIGHT = "Copyright (c) 2026 the halo authors"
CLASSIFIERS = {
    "Intended Audience :: System Administrators",
    "Operating System :: POSIX :: Linux",
    "Programming Language :: Python :: 3 :: Only",
    "Programming Language :: Python :: 3.11",
}
# What a keepalived-style VRRP node needs: halo-core[vrrp].
VRRP = {
    "halo-backend-vip",
    "halo-checker-tcp",
    "halo-checker-http",
    "halo-checker-script",
    "halo-notifier-script",
    "halo-tool-notify",
    "halo-tool-status",
    "halo-tool-systemd",
}


def metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(zf.read(name).decode())


def wheel_license(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith("/licenses/LICENSE"))).decode()


def compatible(version: str) -> SpecifierSet:
    """0.1.x -> >=0.1,<0.2: the range halo's distributions require of each other."""
    v = Version(version)
    return SpecifierSet(f">={v.major}.{v.minor},<{v.major}.{v.minor + 1}")


def test_every_distribution_built(built: Built) -> None:
    assert sorted(built.wheels) == sorted(built.sources) == sorted(built.sdists)


def test_license(built: Built) -> None:
    for name, wheel in built.wheels.items():
        meta = metadata(wheel)
        assert meta["License-Expression"] == "MIT", name
        assert meta.get_all("License-File") == ["LICENSE"], name
        text = wheel_license(wheel)
        assert text.startswith("MIT License") and COPYRIGHT in text, name
        with tarfile.open(built.sdists[name]) as tf:
            assert any(m.name.endswith("/LICENSE") for m in tf.getmembers()), name


def test_python_classifiers_and_urls(built: Built) -> None:
    for name, wheel in built.wheels.items():
        meta = metadata(wheel)
        assert meta["Requires-Python"] == ">=3.11", name
        assert set(meta.get_all("Classifier") or []) >= CLASSIFIERS, name
        urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
        assert urls["Homepage"] == PROJECT and urls["Repository"] == PROJECT, name
        assert urls["Issues"] == f"{PROJECT}/issues", name
        assert urls["Documentation"].startswith(f"{PROJECT}/tree/main/"), name
        assert_exists_in_repo(urls["Documentation"])


def test_first_party_requirements_are_compatible_ranges(built: Built) -> None:
    """Every requirement on a halo distribution (plugins on halo-core, ssl on http, the
    extras) is >=X.Y,<X.(Y+1) of the version built with it. Every plugin requires halo-core;
    a library (plugins/libs/) only if it uses it (halo-lib-http is standard library only)."""
    versions = {n: metadata(w)["Version"] for n, w in built.wheels.items()}
    for name, wheel in built.wheels.items():
        for line in metadata(wheel).get_all("Requires-Dist") or []:
            req = Requirement(line)
            if req.name in versions:
                assert req.specifier == compatible(versions[req.name]), f"{name}: {line}"
        if name != "halo-core" and built.sources[name].parent.name != "libs":
            core = [Requirement(r) for r in metadata(wheel).get_all("Requires-Dist") or []]
            assert any(r.name == "halo-core" and r.marker is None for r in core), name


def extras(meta: Message) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    reqs = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
    for extra in meta.get_all("Provides-Extra") or []:
        out[extra] = {
            r.name for r in reqs if r.marker is not None and r.marker.evaluate({"extra": extra})
        }
    return out


def test_core_extras(built: Built) -> None:
    """One extra per plugin (named after it, with its kind where two share a name), vrrp
    and all. Libraries (plugins/libs/) have none: the plugins that need one require it."""
    offered = extras(metadata(built.wheels["halo-core"]))
    plugins = {
        n: p for n, p in built.sources.items() if n != "halo-core" and p.parent.name != "libs"
    }
    short = [p.name for p in plugins.values()]
    for name, path in plugins.items():
        kind = path.parent.name.rstrip("s")
        extra = path.name if short.count(path.name) == 1 else f"{kind}-{path.name}"
        assert offered.get(extra) == {name}, f"halo-core[{extra}] should install {name}"
    assert offered["vrrp"] == VRRP
    assert set(plugins) <= offered["all"]


LINK = re.compile(r"\]\(([^)\s]+)\)|(?:href|src)=\"([^\"]+)\"")


def assert_exists_in_repo(url: str) -> None:
    """A link into this repository names a file or folder that exists (on main, in time)."""
    found = re.fullmatch(re.escape(PROJECT) + r"/(?:blob|tree)/main/([^#?]+)(?:#.*)?", url)
    if found:
        assert (ROOT / found.group(1)).exists(), url


def test_readme_links_are_absolute(built: Built) -> None:
    for name, wheel in built.wheels.items():
        meta = metadata(wheel)
        assert meta["Description-Content-Type"] == "text/markdown", name
        readme = meta.get_payload()
        assert isinstance(readme, str) and readme.startswith(f"# {name}"), name
        for m in LINK.finditer(readme):
            url = m.group(1) or m.group(2)
            assert url.startswith(("https://", "http://", "mailto:")), f"{name}: {url}"
            assert_exists_in_repo(url)


def test_readme_install_commands_name_real_extras(built: Built) -> None:
    offered = extras(metadata(built.wheels["halo-core"]))
    readme = (ROOT / "README.md").read_text()
    named = {
        e for group in re.findall(r"halo-core\[([a-z,-]+)\]", readme) for e in group.split(",")
    }
    assert "vrrp" in named and named <= set(offered), named - set(offered)
