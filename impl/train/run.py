"""``iddpm train``: build data, model, diffusion and trainer from flags; start or resume a run directory."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from impl.atomic import write_json
from impl.factory import (
    build_diffusion,
    build_model_and_diffusion,
    model_and_diffusion_defaults,
    resolve_data_flags,
)
from impl.runtime.seeding import STREAM_INIT, derive_seed
from impl.train.batches import BatchSource, InMemoryData
from impl.train.checkpoint import (
    CHECKPOINT_DIRNAME,
    TrainingCheckpoint,
    check_run_kind,
    find_checkpoint_dir,
    list_checkpoints,
    load_training_checkpoint,
)
from impl.train.config import TrainConfig
from impl.train.distributed import DistContext, barrier, init_from_env, shutdown
from impl.train.errors import CheckpointError, TrainError
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
        "grid_scale",
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
        "data_loader",
        "num_workers",
        "max_nonfinite_steps",
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
    saved: TrainConfig,
    requested: TrainConfig,
    explicit: set[str],
    explicit_model: set[str],
    overridable: frozenset[str] = RESUME_OVERRIDABLE,
) -> TrainConfig:
    """The saved config with the explicitly requested run-control overrides (the names in
    ``overridable``); conflicts are errors."""
    changes: dict[str, Any] = {}
    for name in sorted(explicit):
        new, old = getattr(requested, name), getattr(saved, name)
        if new == old:
            continue
        if name not in overridable:
            raise TrainError(
                f"--{name}={new!r} differs from the resumed run's {old!r}; a resumed run keeps its "
                f"configuration (changeable: {', '.join(sorted(overridable))})"
            )
        changes[name] = new
    # A flag the saved run does not record (it predates the flag) was built with the flag's default.
    defaults = model_and_diffusion_defaults()
    for name in sorted(explicit_model):
        new = requested.model_flags.get(name)
        old = saved.model_flags.get(name, defaults.get(name))
        if new != old:
            raise TrainError(f"--{name}={new!r} differs from the resumed run's {old!r}")
    return replace(saved, **changes)


def check_resume_steps(step: int, saved: TrainConfig, config: TrainConfig, explicit: set[str]) -> None:
    """A resumed run must have steps left to train and must not silently train at learning rate 0.

    Refused: ``max_steps`` at or below the checkpoint's step, and ``--max_steps`` raised past the run's LR
    horizon (``lr_anneal_steps``, where the linear decay reaches 0) without ``--lr_anneal_steps``.
    """
    if config.max_steps < step:
        raise TrainError(
            f"--max_steps {config.max_steps} is below the checkpoint's step {step}; a resumed run trains "
            f"on from step {step}: pass --max_steps above {step}"
        )
    if config.max_steps == step:
        raise TrainError(
            f"the checkpoint is at step {step} = max_steps: nothing is left to train; pass --max_steps "
            f"above {step} to train further"
        )
    horizon = config.lr_anneal_steps
    extended = "max_steps" in explicit and config.max_steps > saved.max_steps
    decays = config.lr_schedule != "constant"
    if extended and decays and 0 < horizon < config.max_steps and "lr_anneal_steps" not in explicit:
        raise TrainError(
            f"--max_steps {config.max_steps} goes past the run's LR horizon lr_anneal_steps {horizon} "
            f"(the learning rate is 0 from step {horizon} on); pass --lr_anneal_steps {config.max_steps} "
            f"to stretch the decay to the new end, or --lr_anneal_steps {horizon} to keep it"
        )


RUN_FILES = ("checkpoints", "samples", "tensorboard", "log.jsonl", "config.json")
"""What a run writes into its directory; ``--overwrite`` removes exactly these."""


def check_new_run_dir(run_dir: Path, overwrite: bool) -> None:
    """``--out_dir`` of a new run: a folder that is absent or empty (any content needs ``--overwrite``),
    whose nearest existing parent is writable.  Refuses before anything is written."""
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainError(f"--out_dir {str(run_dir)!r} is a file, not a folder; choose a folder path")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not overwrite:
        held = (
            "already holds a checkpoint" if list_checkpoints(run_dir / CHECKPOINT_DIRNAME) else "is not empty"
        )
        raise TrainError(
            f"--out_dir {str(run_dir)!r} {held}; pass --resume {run_dir} to continue its run, "
            "--overwrite to start a new run in it (deleting the old run's files), or choose another --out_dir"
        )
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise TrainError(f"--out_dir {str(run_dir)!r} cannot be written ({str(existing)!r} is read-only)")


def clear_run_dir(run_dir: Path) -> None:
    """Delete the files of an earlier run in ``run_dir`` (:data:`RUN_FILES`), each renamed away first."""
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_dir():
            doomed = run_dir / f".{name}.del-{os.getpid()}"
            os.replace(path, doomed)
            shutil.rmtree(doomed)
        elif path.exists():
            path.unlink()


def train_command(
    config: TrainConfig,
    *,
    resume: str | None = None,
    explicit: set[str] | None = None,
    explicit_model: set[str] | None = None,
    overwrite: bool = False,
    scorer_factory: Any = None,
) -> TrainResult:
    """Run ``iddpm train`` until max_steps, or until SIGINT/SIGTERM stopped it (after saving).

    ``scorer_factory(config)`` builds rank 0's sample scorer when ``config.eval_interval > 0``.

    ``resume`` continues a run (into ``config.out_dir`` when it is given and differs, the source run then
    left untouched); ``overwrite`` lets a new run replace the files of an earlier one in ``out_dir``.
    Everything is validated and loaded before the first file is written.
    """
    ctx = init_from_env(config.device)
    try:
        return _train(
            ctx, config, resume, explicit or set(), explicit_model or set(), overwrite, scorer_factory
        )
    finally:
        shutdown()


def resumed_config(
    config: TrainConfig,
    resume: str,
    explicit: set[str],
    explicit_model: set[str],
    overwrite: bool,
    overridable: frozenset[str] = RESUME_OVERRIDABLE,
) -> tuple[TrainConfig, TrainingCheckpoint, Path, bool]:
    """The merged config (of ``config``'s class), the loaded checkpoint, the run directory to write and
    whether it is new.  A run of another kind (a classifier run for ``iddpm train``) is refused."""
    if resume == "auto" and not config.out_dir:
        raise TrainError("--resume without a path needs --out_dir (the run directory to continue)")
    source = Path(resume if resume != "auto" else config.out_dir)
    ckpt_dir = find_checkpoint_dir(source)
    ckpt = load_training_checkpoint(ckpt_dir)
    check_run_kind(ckpt.config, getattr(config, "kind", None), ckpt_dir)
    try:
        saved = type(config).from_dict(ckpt.config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{str(ckpt_dir / 'state.json')!r}: {exc}") from None
    merged = merge_resumed_config(saved, config, explicit, explicit_model, overridable)
    check_resume_steps(ckpt.step, saved, merged, explicit)
    source_run = ckpt_dir.parent.parent
    into_new = resume != "auto" and "out_dir" in explicit and bool(config.out_dir)
    into_new = into_new and Path(config.out_dir).resolve() != source_run.resolve()
    if into_new:
        check_new_run_dir(Path(config.out_dir), overwrite)
    elif overwrite:
        raise TrainError(f"--overwrite would delete the run being resumed ({str(source_run)!r}); drop it")
    run_dir = Path(config.out_dir) if into_new else source_run
    return replace(merged, out_dir=str(run_dir)), ckpt, run_dir, into_new


TrainerBuilder = Callable[[DistContext, TrainConfig, TrainingCheckpoint | None], tuple[TrainConfig, Trainer]]
"""``build(ctx, config, ckpt) -> (config with the data-resolved flags, trainer)``: opens the data and
builds the model and trainer, loading nothing into it and writing nothing."""


def run_training(
    ctx: DistContext,
    config: TrainConfig,
    build: TrainerBuilder,
    *,
    resume: str | None,
    explicit: set[str],
    explicit_model: set[str],
    overwrite: bool,
    overridable: frozenset[str] = RESUME_OVERRIDABLE,
) -> TrainResult:
    """Start or resume a run directory and train until max_steps or a stop request: the run-directory
    checks, resume, ``build``, the checkpoint load, then (only then) the first write, and the run."""
    ckpt: TrainingCheckpoint | None = None
    fresh_dir = True
    if resume is not None:
        config, ckpt, run_dir, fresh_dir = resumed_config(
            config, resume, explicit, explicit_model, overwrite, overridable
        )
    else:
        if not config.out_dir:
            if ctx.is_distributed:
                raise TrainError("a multi-process run needs an explicit --out_dir")
            config = replace(config, out_dir=str(default_run_dir(config.data)))
        run_dir = Path(config.out_dir)
        check_new_run_dir(run_dir, overwrite)
    config.validate(ctx.world_size)
    config, trainer = build(ctx, config, ckpt)
    if ckpt is not None:
        trainer.load(ckpt)
    barrier(ctx)  # every rank has checked the run directory before rank 0 writes into it
    if ctx.is_main:
        if overwrite and fresh_dir and run_dir.is_dir():
            clear_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "config.json", config.to_dict())
    trainer.attach_run_dir(run_dir)
    start = trainer.step
    with StopFlag() as stop:
        trainer.should_stop = lambda: stop.requested
        result = trainer.run()
    result.steps_this_run = result.step - start
    return result


def _train(
    ctx: DistContext,
    config: TrainConfig,
    resume: str | None,
    explicit: set[str],
    explicit_model: set[str],
    overwrite: bool,
    scorer_factory: Any = None,
) -> TrainResult:
    def build(
        ctx: DistContext, config: TrainConfig, ckpt: TrainingCheckpoint | None
    ) -> tuple[TrainConfig, Trainer]:
        return _build_diffusion_trainer(ctx, config, ckpt, scorer_factory)

    return run_training(
        ctx,
        config,
        build,
        resume=resume,
        explicit=explicit,
        explicit_model=explicit_model,
        overwrite=overwrite,
    )


def _build_diffusion_trainer(
    ctx: DistContext, config: TrainConfig, ckpt: TrainingCheckpoint | None, scorer_factory: Any
) -> tuple[TrainConfig, Trainer]:
    from impl.diffusion import create_named_schedule_sampler

    flags = dict(config.model_flags)
    data, num_classes, channels = open_batch_source(config, flags, None if ckpt is None else ckpt.config)
    flags = resolve_data_flags(flags, channels, num_classes)
    config = replace(config, model_flags=flags)
    torch.manual_seed(derive_seed(config.seed, STREAM_INIT))
    model, diffusion = build_model_and_diffusion(flags)
    grid_diffusion = build_diffusion(flags, config.grid_respacing) if _respaces(config, flags) else None
    sampler = create_named_schedule_sampler(config.schedule_sampler, diffusion)
    trainer = Trainer(
        model=model,
        diffusion=diffusion,
        data=data,
        config=config,
        run_dir=None,  # attached by run_training once the checkpoint has loaded: a failed load writes nothing
        ctx=ctx,
        schedule_sampler=sampler,
        grid_diffusion=grid_diffusion,
        class_cond=bool(flags.get("class_cond", False)),
        num_classes=num_classes,
    )
    if config.eval_interval and ctx.is_main and scorer_factory is not None:
        trainer.sample_scorer = scorer_factory(config)  # loads the weights and statistics before any write
    return config, trainer


def open_batch_source(
    config: TrainConfig, flags: dict[str, Any], saved: dict[str, Any] | None
) -> tuple[BatchSource, int | None, int]:
    """The batch source of ``config.data`` (in memory or streamed), its class count and channel count."""
    from impl.data.training_source import open_training_data
    from impl.train.stream_batches import IndexedStreamData, ShardStreamData

    in_ch = int(flags.get("in_channels", 0))
    source = open_training_data(
        config.data,
        image_size=int(flags["image_size"]),
        class_cond=bool(flags.get("class_cond", False)),
        channels=in_ch if in_ch in (1, 3) else None,
        loader=config.data_loader,
    )
    data: BatchSource
    if source.memory is not None:
        data = InMemoryData.from_image_dataset(source.memory)
    elif source.reader is not None:
        data = IndexedStreamData(source.reader, config.num_workers)
    else:
        assert source.shards is not None
        if saved is not None:
            for name in ("num_workers", "data_loader"):
                if name in saved and saved[name] != getattr(config, name):
                    raise TrainError(
                        f"--{name}={getattr(config, name)!r} differs from the resumed run's "
                        f"{saved[name]!r}: a tar-shard run's order depends on it (docs/data.md); resume "
                        "with the same value"
                    )
        data = ShardStreamData(source.shards, config.num_workers)
    return data, source.num_classes, source.channels
