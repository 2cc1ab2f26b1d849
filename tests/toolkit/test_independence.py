"""The toolkit sits below every suite: unit tests do not import the property suite, and `testing/`
imports neither a suite nor the code under test."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("tests", {"properties"}),
        ("benchmarks", {"properties"}),
        ("testing", {"properties", "tests", "benchmarks", "impl", "reference"}),
    ],
)
def test_no_module_imports_across_the_layering(folder: str, forbidden: set[str]) -> None:
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"no Python files under {folder}/"
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) & forbidden)
        for path in files
        if _imported_packages(path) & forbidden
    }
    assert not offenders, f"imports that break the layering: {offenders}"


def test_only_the_spec_check_reads_the_catalogue() -> None:
    """One justified exception: `tests/test_spec.py` checks that the entry names in docs/spec.md's index
    exist, so it reads `properties.catalogue` (by name, through importlib, not as a dependency of a unit
    test).  Any other module under tests/ that reaches into the property suite that way fails here."""
    readers = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("*.py")
        if 'import_module("properties' in path.read_text(encoding="utf-8")
        and path.name != "test_independence.py"
    )
    assert readers == ["tests/test_spec.py"], readers
