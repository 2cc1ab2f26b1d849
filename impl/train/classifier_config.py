"""The configuration of a classifier run (``iddpm train_classifier``): :class:`TrainConfig` with a kind,
the classifier's flags and the held-out evaluation, and defaults for a small digits classifier."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from impl.train.checkpoint import RUN_KIND_CLASSIFIER
from impl.train.config import TrainConfig, parse_ema_rates
from impl.train.run import RESUME_OVERRIDABLE

__all__ = ["CLASSIFIER_RESUME_OVERRIDABLE", "ClassifierTrainConfig", "default_held_out"]

CLASSIFIER_RESUME_OVERRIDABLE = RESUME_OVERRIDABLE | {"eval_interval", "val_data", "val_samples"}
"""What a resumed classifier run may change: the trainer's run controls and the held-out evaluation."""

_DIGITS_TRAINING = ("digits", "digits:train")


def default_held_out(data: str) -> str:
    """``--val_data`` when not given: the digits' held-out split for the digits, else none."""
    return "digits:held_out" if data in _DIGITS_TRAINING else ""


@dataclass
class ClassifierTrainConfig(TrainConfig):
    """A classifier run: ``kind`` "classifier", ``classifier_flags`` (the full ``create_classifier``
    keyword dict once resolved), ``model_flags`` (the diffusion flags the images are noised with, and
    ``image_size``), the held-out split ``val_data`` (its first ``val_samples`` images, each noised once
    per quarter of the t range) evaluated every ``eval_interval`` steps (0: at the end only) and at the end.

    Defaults (lr 1e-3, weight decay 0.05, batch 64, 200 steps with the LR decayed linearly to 0, no EMA, no
    gradient clipping, no sample grids) train the digits classifier in well under a minute on a CPU.
    guided-diffusion's classifiers used lr 3e-4, weight decay 0.05 and a linearly annealed LR
    (docs/classifier.md).  ``ema_rate`` "" keeps no average.
    """

    kind: str = RUN_KIND_CLASSIFIER
    classifier_flags: dict[str, Any] = field(default_factory=dict)
    val_data: str = ""
    val_samples: int = 1024
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    max_steps: int = 200
    lr_anneal_steps: int = 200
    ema_rate: str = ""
    grad_clip: float = 0.0
    log_interval: int = 50
    save_interval: int = 0
    sample_interval: int = 0
    num_grid_samples: int = 0
    eval_interval: int = 0

    @property
    def ema_rates(self) -> tuple[float, ...]:
        """The EMA rates; ``ema_rate`` "" is none (a classifier needs no average)."""
        return parse_ema_rates(self.ema_rate) if self.ema_rate.strip() else ()

    def _check_eval(self) -> None:
        if self.kind != RUN_KIND_CLASSIFIER:
            raise ValueError(f"kind must be {RUN_KIND_CLASSIFIER!r}, got {self.kind!r}")
        if isinstance(self.eval_interval, bool) or not isinstance(self.eval_interval, int):
            raise ValueError(f"--eval_interval must be an integer >= 0, got {self.eval_interval!r}")
        if self.eval_interval < 0:
            raise ValueError(f"--eval_interval must be >= 0 (0: at the end only), got {self.eval_interval}")
        if self.eval_interval > 0 and not self.val_data:
            raise ValueError(
                "--eval_interval > 0 needs a held-out split: pass --val_data (digits: digits:held_out)"
            )
        if isinstance(self.val_samples, bool) or not isinstance(self.val_samples, int):
            raise ValueError(f"--val_samples must be a positive integer, got {self.val_samples!r}")
        if self.val_samples < 1:
            raise ValueError(f"--val_samples must be a positive integer, got {self.val_samples}")
        if self.num_grid_samples or self.sample_interval:
            raise ValueError("a classifier run draws no sample grids (num_grid_samples, sample_interval 0)")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ClassifierTrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown classifier config keys {unknown}; allowed: {sorted(known)}")
        return cls(**values)
