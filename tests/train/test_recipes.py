"""The named recipes against the paper's table (docs/recipes.md, itself checked against PAPER.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

from impl.factory import create_model, model_flag_names
from impl.train.config import TrainConfig
from impl.train.recipes import RECIPES, get_recipe

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "recipes.md"
PAPER = REPO.parent / "shared" / "PAPER.md"

# PAPER.md: "All use, unless a row overrides it: num_heads 4, attention_resolutions 16,8,
# use_scale_shift_norm True, rescale_timesteps True, rescale_learned_sigmas True, AdamW with weight_decay 0,
# constant learning rate (lr_anneal_steps 0), EMA rate 0.9999, no gradient clipping, fp32,
# schedule_sampler uniform."  Written out here from that sentence, as flag values.
COMMON = {
    "num_heads": "4",
    "attention_resolutions": "16,8",
    "use_scale_shift_norm": "True",
    "rescale_timesteps": "True",
    "rescale_learned_sigmas": "True",
    "weight_decay": "0",
    "lr_anneal_steps": "0",
    "lr_schedule": "constant",
    "ema_rate": "0.9999",
    "grad_clip": "0",
    "precision": "fp32",
    "schedule_sampler": "uniform",
}


def table_rows(text: str) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] and cells[0] not in ("recipe",) and not set(cells[0]) <= {"-"}:
            rows[cells[0]] = cells[1:]
    return rows


def parse_cell(cell: str, rows: dict[str, list[str]], column: int) -> dict[str, str]:
    """``a 1, b x`` → {a: 1, b: x}; ``as NAME`` → NAME's cell; ``+ c y`` → the row's base plus c."""
    cell = cell.replace("`", "").strip()
    if cell.startswith("as "):
        return parse_cell(rows[cell[3:].strip()][column], rows, column)
    out: dict[str, str] = {}
    # "attention_resolutions 16,8" holds a comma: split on ", " followed by a flag name
    for part in re.split(r",\s+(?=[a-z_]+\s)", cell.lstrip("+ ").strip()):
        name, _, value = part.strip().partition(" ")
        out[name] = value.strip()
    return out


def paper_flags(name: str, rows: dict[str, list[str]]) -> dict[str, str]:
    model, diffusion, training = rows[name][:3]
    base_name = model.replace("`", "").strip()[3:].strip() if model.strip("`").startswith("as ") else None
    flags = dict(COMMON)
    for column, cell in enumerate((model, diffusion, training)):
        if cell.replace("`", "").strip().startswith("+") and base_name is not None:
            flags.update(parse_cell(rows[base_name][column], rows, column))
        flags.update(parse_cell(cell, rows, column))
    return flags


def parse_count(text: str) -> float:
    scale = {"K": 1e3, "M": 1e6}[text[-1]]
    return float(text[:-1]) * scale


def same(expected: str, actual: Any) -> bool:
    if isinstance(actual, bool):
        return expected == str(actual)
    if isinstance(actual, int | float):
        return float(expected) == float(actual)
    return expected == str(actual)


ROWS = table_rows(DOC.read_text())
PAPER_RECIPES = [n for n in RECIPES if n != "digits-demo"]


def test_the_doc_table_is_the_papers_table() -> None:
    if not PAPER.is_file():
        pytest.skip(f"{PAPER} is not beside this checkout")
    assert table_rows(PAPER.read_text()) == ROWS


def test_every_paper_row_has_a_recipe_and_back() -> None:
    assert set(ROWS) == set(PAPER_RECIPES)
    assert "digits-demo" in RECIPES


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_recipe_matches_the_table_entry_by_entry(name: str) -> None:
    recipe = get_recipe(name)
    expected = paper_flags(name, ROWS)
    for flag, value in expected.items():
        assert flag in recipe.flags, f"{name}: the paper sets {flag} {value}; the recipe does not"
        assert same(value, recipe.flags[flag]), f"{name}: {flag} is {recipe.flags[flag]!r}, paper: {value}"
    iterations = parse_count(ROWS[name][4])
    assert recipe.flags["max_steps"] == iterations == recipe.iterations
    assert recipe.params_millions == float(ROWS[name][3].rstrip("M"))


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_recipe_model_has_the_papers_parameter_count(name: str) -> None:
    flags = dict(get_recipe(name).flags)
    with torch.device("meta"):
        model = create_model(**{k: flags[k] for k in model_flag_names()})
    count = sum(p.numel() for p in model.parameters())
    assert round(count / 1e6, 2) == float(ROWS[name][3].rstrip("M")), count


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_flags_are_all_known_and_valid(name: str) -> None:
    from impl.factory import train_model_defaults

    flags = dict(get_recipe(name).flags)
    train_fields = set(TrainConfig().to_dict()) - {"model_flags"}
    model_names = set(train_model_defaults())
    unknown = set(flags) - train_fields - model_names
    assert not unknown, unknown
    train = {k: v for k, v in flags.items() if k in train_fields}
    train.setdefault("lr_anneal_steps", train.get("max_steps", 1000))
    TrainConfig(**train).validate()


def test_an_unknown_recipe_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: digits-demo, cifar10-hybrid"):
        get_recipe("cifar100")
