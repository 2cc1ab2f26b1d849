"""``iddpm train``: build data, model, diffusion and trainer from flags; start or resume a run directory."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from impl.runtime.seeding import STREAM_INIT, derive_seed
from impl.train.atomic import atomic_write_json
from impl.train.batches import InMemoryData
from impl.train.checkpoint import (
    CHECKPOINT_DIRNAME,
    find_checkpoint_dir,
    list_checkpoints,
    load_training_checkpoint,
)
from impl.train.config import TrainConfig
from impl.train.distributed import DistContext, init_from_env, shutdown
from impl.train.errors import TrainError
from impl.train.flags import build_diffusion, build_model_and_diffusion, resolve_data_flags
from impl.train.signals import StopFlag
from impl.train.trainer import Trainer, TrainResult

# Settings a resumed run may change without breaking its continuation (everything else is taken from the
# checkpoint; an explicitly given different value is an error).
RESUME_OVERRIDABLE = frozenset(
    {
        "max_steps",
        "lr_anneal_steps",
        "log_interval",
        "save_interval",
        "sample_interval",
        "num_grid_samples",
        "grid_respacing",
        "keep_checkpoints",
        "progress",
        "device",
        "compile",
        "compile_scope",
        "compile_backend",
        "compile_mode",
        "out_dir",
        "optimizer_impl",
        "channels_last",
        "recompute_norms",
        "allow_tf32",
        "cudnn_benchmark",
    }
)


def _respaces(config: TrainConfig, flags: dict[str, Any]) -> bool:
    """Whether the grid sampler needs its own respaced diffusion (a plain count >= T means all steps)."""
    spec = config.grid_respacing.strip()
    return bool(spec) and not (spec.isdigit() and int(spec) >= int(flags["diffusion_steps"]))


def default_run_dir(data: str) -> Path:
    stem = "".join(c if c.isalnum() else "-" for c in Path(data).name or data).strip("-") or "data"
    return Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def merge_resumed_config(
    saved: TrainConfig, requested: TrainConfig, explicit: set[str], explicit_model: set[str]
) -> TrainConfig:
    """The saved config with the explicitly requested run-control overrides; conflicts are errors."""
    changes: dict[str, Any] = {}
    for name in sorted(explicit):
        new, old = getattr(requested, name), getattr(saved, name)
        if new == old:
            continue
        if name not in RESUME_OVERRIDABLE:
            raise TrainError(
                f"--{name}={new!r} differs from the resumed run's {old!r}; a resumed run keeps its "
                f"configuration (changeable: {', '.join(sorted(RESUME_OVERRIDABLE))})"
            )
        changes[name] = new
    for name in sorted(explicit_model):
        new, old = requested.model_flags.get(name), saved.model_flags.get(name)
        if new != old:
            raise TrainError(f"--{name}={new!r} differs from the resumed run's {old!r}")
    return replace(saved, **changes)


def train_command(
    config: TrainConfig,
    *,
    resume: str | None = None,
    explicit: set[str] | None = None,
    explicit_model: set[str] | None = None,
    scorer_factory: Any = None,
) -> TrainResult:
    """Run ``iddpm train`` until max_steps, or until SIGINT/SIGTERM stopped it (after saving).

    ``scorer_factory(config)`` builds rank 0's sample scorer when ``config.eval_interval > 0``.
    """
    ctx = init_from_env(config.device)
    try:
        return _train(ctx, config, resume, explicit or set(), explicit_model or set(), scorer_factory)
    finally:
        shutdown()


def _train(
    ctx: DistContext,
    config: TrainConfig,
    resume: str | None,
    explicit: set[str],
    explicit_model: set[str],
    scorer_factory: Any = None,
) -> TrainResult:
    ckpt = None
    if resume is not None:
        source = Path(resume if resume != "auto" else (config.out_dir or ""))
        if resume == "auto" and not config.out_dir:
            raise TrainError("--resume without a path needs --out_dir (the run directory to continue)")
        ckpt_dir = find_checkpoint_dir(source)
        ckpt = load_training_checkpoint(ckpt_dir)
        saved = TrainConfig.from_dict(ckpt.config)
        config = merge_resumed_config(saved, config, explicit, explicit_model)
        run_dir = ckpt_dir.parent.parent
        config = replace(config, out_dir=str(run_dir))
    else:
        if not config.out_dir:
            if ctx.is_distributed:
                raise TrainError("a multi-process run needs an explicit --out_dir")
            config = replace(config, out_dir=str(default_run_dir(config.data)))
        run_dir = Path(config.out_dir)
        if list_checkpoints(run_dir / CHECKPOINT_DIRNAME):
            raise TrainError(
                f"{str(run_dir)!r} already holds a checkpoint; pass --resume {run_dir} to continue it "
                "or choose another --out_dir"
            )
    config.validate(ctx.world_size)

    from impl.data import load_data
    from impl.diffusion import create_named_schedule_sampler

    flags = dict(config.model_flags)
    in_ch = int(flags.get("in_channels", 0))
    dataset = load_data(
        config.data,
        image_size=int(flags["image_size"]),
        class_cond=bool(flags.get("class_cond", False)),
        channels=in_ch if in_ch in (1, 3) else None,
    )
    flags = resolve_data_flags(flags, dataset.channels, dataset.num_classes)
    config = replace(config, model_flags=flags)
    torch.manual_seed(derive_seed(config.seed, STREAM_INIT))
    model, diffusion = build_model_and_diffusion(flags)
    grid_diffusion = build_diffusion(flags, config.grid_respacing) if _respaces(config, flags) else None
    sampler = create_named_schedule_sampler(config.schedule_sampler, diffusion)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "config.json", config.to_dict())
    trainer = Trainer(
        model=model,
        diffusion=diffusion,
        data=InMemoryData.from_image_dataset(dataset),
        config=config,
        run_dir=run_dir,
        ctx=ctx,
        schedule_sampler=sampler,
        grid_diffusion=grid_diffusion,
        class_cond=bool(flags.get("class_cond", False)),
        num_classes=dataset.num_classes,
    )
    if ckpt is not None:
        trainer.load(ckpt)
    if config.eval_interval and ctx.is_main and scorer_factory is not None:
        trainer.sample_scorer = scorer_factory(config)
    with StopFlag() as stop:
        trainer.should_stop = lambda: stop.requested
        return trainer.run()
