"""The ``cuda`` marker: the root conftest's skip without CUDA, and the audit that every test of the suite
which asks for CUDA carries the marker (so ``pytest -m cuda``, step a of the device check, runs them all)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------------
# the cuda marker: the root conftest's skip, and the audit of the suite
# --------------------------------------------------------------------------------------------------
class FakeItem:
    def __init__(self, marker: pytest.Mark | None) -> None:
        self.marker = marker
        self.added: list[Any] = []

    def get_closest_marker(self, name: str) -> pytest.Mark | None:
        return self.marker if name == "cuda" else None

    def add_marker(self, marker: Any) -> None:
        self.added.append(marker)


@pytest.mark.parametrize("cuda_available", [False, True])
def test_the_root_conftest_skips_cuda_tests_only_without_cuda(
    cuda_available: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_available)
    spec = importlib.util.spec_from_file_location("iddpm_root_conftest", REPO / "conftest.py")
    assert spec is not None and spec.loader is not None
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    plain, optional, unmarked = (
        FakeItem(pytest.mark.cuda.mark),
        FakeItem(pytest.mark.cuda(optional=True).mark),
        FakeItem(None),
    )
    conftest.pytest_collection_modifyitems(None, [plain, optional, unmarked])
    assert optional.added == [] and unmarked.added == []
    expected = [] if cuda_available else ["needs a CUDA device"]
    assert [m.mark.kwargs["reason"] for m in plain.added] == expected


def unmarked_cuda_tests(source: str) -> list[str]:
    """Test functions of ``source`` that call ``torch.cuda.is_available()`` (in a decorator or the body)
    without a ``cuda`` marker (``@pytest.mark.cuda...`` or a module-level alias of one)."""
    tree = ast.parse(source)
    aliases = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign) and "pytest.mark.cuda" in ast.unparse(node.value)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    def is_cuda_mark(decorator: ast.expr) -> bool:
        text = ast.unparse(decorator)
        return text.startswith("pytest.mark.cuda") or text in aliases

    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
            continue
        calls = [
            sub
            for sub in ast.walk(node)
            if isinstance(sub, ast.Call) and ast.unparse(sub.func) == "torch.cuda.is_available"
        ]
        if calls and not any(is_cuda_mark(d) for d in node.decorator_list):
            found.append(node.name)
    return found


def test_the_audit_finds_an_unmarked_cuda_test() -> None:
    source = (
        "import pytest, torch\n"
        "needs = pytest.mark.cuda\n"
        "@pytest.mark.skipif(not torch.cuda.is_available(), reason='x')\n"
        "def test_unmarked(): pass\n"
        "@needs\n"
        "def test_alias():\n    assert torch.cuda.is_available()\n"
        "@pytest.mark.cuda(optional=True)\n"
        "def test_optional():\n    if torch.cuda.is_available(): pass\n"
        "def test_cpu_only(): pass\n"
    )
    assert unmarked_cuda_tests(source) == ["test_unmarked"]


def test_every_test_that_asks_for_cuda_carries_the_cuda_marker() -> None:
    missing = [
        f"{path.relative_to(REPO)}::{name}"
        for folder in ("tests", "properties")
        for path in sorted((REPO / folder).rglob("test_*.py"))
        for name in unmarked_cuda_tests(path.read_text(encoding="utf-8"))
    ]
    assert missing == [], "add @pytest.mark.cuda (or cuda(optional=True)) to: " + ", ".join(missing)
