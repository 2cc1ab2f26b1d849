"""``iddpm train_classifier`` with its default digits classifier learns: 60 steps already put held-out
top-1 accuracy at low noise far above chance, and accuracy falls as t rises.

Measured (seeds 0–4, 60 steps, 200 held-out digits × 4 quarters): top-1 in the lowest quarter of t
0.735–0.835 (chance 0.10), in the highest 0.12–0.225.  The threshold 0.5 leaves a wide margin on both
sides: an untrained classifier's 200 rows exceed it with negligible probability (binomial, p = 0.1).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from impl.cli import main


@pytest.mark.slow
def test_default_digits_classifier_beats_chance_at_low_t(tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = ["train_classifier", "--out_dir", str(run), "--max_steps", "60", "--val_samples", "200"]
    assert main([*argv, "--progress", "False"]) == 0
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    final = [r for r in records if "val_acc1" in r]
    assert len(final) == 1 and final[0]["step"] == 60
    held_out = final[0]
    assert held_out["val_acc1_q0"] > 0.5  # chance: 0.1 (10 classes)
    assert held_out["val_acc1_q0"] > held_out["val_acc1_q3"]  # noisier inputs are harder
    assert held_out["val_acc5_q0"] >= held_out["val_acc1_q0"]
