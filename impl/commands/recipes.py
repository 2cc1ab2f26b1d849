"""``iddpm recipes``: the named training recipes with every flag they set."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace, explicit: set[str]) -> int:
    from impl.train.recipes import RECIPES

    for recipe in RECIPES.values():
        facts = []
        if recipe.params_millions is not None:
            facts.append(f"{recipe.params_millions:.2f}M parameters")
        if recipe.iterations is not None:
            facts.append(f"{recipe.iterations:,} iterations in the paper")
        extra = f" ({'; '.join(facts)})" if facts else ""
        print(f"{recipe.name}: {recipe.summary}{extra}")
        print("  " + " ".join(f"--{k} {_text(v)}" for k, v in recipe.flags.items()))
    return 0


def _text(value: object) -> str:
    text = str(value)
    return repr(text) if text == "" or " " in text else text
