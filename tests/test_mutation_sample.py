"""The pure parts of `tools/mutation_sample.py`: listing mutant names, the seeded sample, the score."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "mutation_sample.py"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_sample", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mutant_names_are_read_from_every_meta_file_and_sorted(tool: ModuleType, tmp_path: Path) -> None:
    first, second = tmp_path / "a.py.meta", tmp_path / "b.py.meta"
    first.write_text(json.dumps({"exit_code_by_key": {"m.x_f__mutmut_2": None, "m.x_f__mutmut_1": 0}}))
    second.write_text(json.dumps({"exit_code_by_key": {"n.x_g__mutmut_1": 1}}))
    assert tool.mutant_names([second, first]) == ["m.x_f__mutmut_1", "m.x_f__mutmut_2", "n.x_g__mutmut_1"]


def test_sample_is_reproducible_distinct_and_of_the_asked_size(tool: ModuleType) -> None:
    names = [f"m.x_f__mutmut_{i}" for i in range(500)]
    sample = tool.draw_sample(names, 40, seed=7)
    assert sample == tool.draw_sample(names[::-1], 40, seed=7)  # the order given does not matter
    assert len(set(sample)) == 40 and set(sample) <= set(names)
    assert sample != tool.draw_sample(names, 40, seed=8)
    assert tool.draw_sample(names[:5], 40, seed=7) == sorted(names[:5])
    with pytest.raises(ValueError, match="size"):
        tool.draw_sample(names, 0, seed=7)


def test_score_counts_timeouts_as_killed_and_ignores_skipped(tool: ModuleType) -> None:
    statuses = {"a": "killed", "b": "timeout", "c": "survived", "d": "no tests", "e": "skipped"}
    assert tool.mutation_score(statuses) == (2, 4, 0.5)
    assert math.isnan(tool.mutation_score({"a": "not checked"})[2])


def test_mutation_env_drops_pythonpath_and_pins_the_ci_profile(tool: ModuleType) -> None:
    env = tool.mutation_env({"PYTHONPATH": "/src", "PATH": "/bin", "OMP_NUM_THREADS": "4"})
    assert env == {"PATH": "/bin", "CI": "true", "OMP_NUM_THREADS": "4"}
