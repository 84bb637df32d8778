"""The dependency direction of DESIGN.md / STYLE.md, checked on the source (no import-linter needed).

events imports nothing of ours; pipelines imports events; services imports events and pipelines;
frontend imports events; knative (the local runtime) imports events and starts services as
processes. Nothing imports services, frontend, knative or load, except the benchmarks in
load/bench, which (like the tests) drive every part.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("events", "pipelines", "services", "knative", "frontend", "load")
ALLOWED = {
    "events": {"events"},
    "pipelines": {"events", "pipelines"},
    "services": {"events", "pipelines", "services"},
    "frontend": {"events", "frontend"},
    "knative": {"events", "knative"},
    "load": {"events", "load"},
}
HARNESSES = ("load/bench/",)  # may import any package, as tests do


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_the_design_allows(package: str) -> None:
    offenders = {}
    for path in sorted((REPO / package).rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith(HARNESSES) or "/compiled/" in relative:
            continue
        extra = imported_packages(path) - ALLOWED[package]
        if extra:
            offenders[relative] = sorted(extra)
    assert not offenders, f"imports against the dependency direction: {offenders}"


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from services.sink import Rejected\nimport frontend.app\n")
    assert imported_packages(bad) == {"services", "frontend"}
