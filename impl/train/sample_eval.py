"""Sample-quality evaluation during training (``--eval_interval N``): sample, gather, score, keep the best.

Every rank draws its share ``⌈K / world_size⌉`` of the ``eval_samples`` K images from the first EMA model
(through the trainer's grid sampler, i.e. respaced as ``--grid_respacing``), in batches of the per-rank
batch size, each batch seeded by ``(seed, STREAM_EVAL, step, rank, batch)``.  Rank 0 gathers the first K,
calls the scorer (``impl.evaluate.during_training.TrainingSampleScorer``, handed in by the command layer),
logs the numbers as ``eval_<metric>`` to log.jsonl (and TensorBoard), and when the FID is the lowest so far
writes the checkpoint to ``<run_dir>/best/`` (staged beside it, then swapped in with renames) together with
``best/best.json`` ``{"step", "fid"}``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from impl.runtime.seeding import derive_seed
from impl.train.checkpoint import save_training_checkpoint
from impl.train.distributed import all_gather_cat, barrier

__all__ = ["BEST_DIRNAME", "STREAM_EVAL", "best_fid", "evaluate_samples"]

STREAM_EVAL = 5
BEST_DIRNAME = "best"
BEST_FILENAME = "best.json"
Scorer = Callable[[np.ndarray[Any, np.dtype[np.uint8]]], dict[str, Any]]


def _draw_share(trainer: Any) -> torch.Tensor:
    cfg, ctx = trainer.config, trainer.ctx
    share = -(-cfg.eval_samples // ctx.world_size)
    per_batch = max(1, cfg.batch_size // ctx.world_size)
    parts = []
    for index, lo in enumerate(range(0, share, per_batch)):
        seed = derive_seed(cfg.seed, STREAM_EVAL, trainer.step, ctx.rank, index)
        images = trainer.sample_images(min(per_batch, share - lo), seed=seed)
        parts.append(torch.from_numpy(images))
    return torch.cat(parts).to(trainer.device)


def best_fid(run_dir: Path) -> float:
    """The FID recorded in ``<run_dir>/best/best.json``; infinity when there is none yet."""
    path = run_dir / BEST_DIRNAME / BEST_FILENAME
    try:
        return float(json.loads(path.read_text())["fid"])
    except (OSError, ValueError, KeyError, TypeError):
        return math.inf


def _write_best(trainer: Any, fid: float) -> Path:
    run_dir: Path = trainer.run_dir
    staging = run_dir / f".best-staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    step_dir = save_training_checkpoint(staging, trainer.checkpoint_state(), keep=1)
    (step_dir / BEST_FILENAME).write_text(json.dumps({"step": trainer.step, "fid": fid}) + "\n")
    final = run_dir / BEST_DIRNAME
    old = run_dir / f".best-old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(step_dir, final)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    return final


def evaluate_samples(trainer: Any, scorer: Scorer | None) -> dict[str, Any] | None:
    """Run one evaluation (all ranks take part in sampling); rank 0 returns the logged record."""
    images = all_gather_cat(_draw_share(trainer), trainer.ctx)
    record: dict[str, Any] | None = None
    if trainer.ctx.is_main and scorer is not None:
        batch = np.ascontiguousarray(images[: trainer.config.eval_samples].cpu().numpy())
        report = scorer(batch)
        record = {"step": trainer.step, "eval_num_samples": int(batch.shape[0])}
        for key in ("fid", "sfid", "inception_score", "precision", "recall", "kid"):
            if report.get(key) is not None:
                record[f"eval_{key}"] = float(report[key])
        if trainer.logger is not None:
            trainer.logger.write(record)
        fid = report.get("fid")
        if trainer.run_dir is not None and fid is not None and float(fid) < best_fid(trainer.run_dir):
            _write_best(trainer, float(fid))
            record["eval_best"] = True
    barrier(trainer.ctx)
    return record
