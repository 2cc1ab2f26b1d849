"""The training loop: losses → microbatched backward → clip → AdamW → EMA; logs, grids, checkpoints."""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from impl.factory import check_class_dropout_prob
from impl.nn.unet import set_norm_recompute
from impl.runtime.backend_flags import BackendFlags, apply_backend_flags, set_backend_flags
from impl.runtime.compile import CUDA_GRAPH_MODES, mark_cuda_graph_step_begin
from impl.runtime.precision import AutocastModel, PrecisionPolicy
from impl.runtime.seeding import (
    STREAM_DROPOUT,
    STREAM_GRID,
    STREAM_STEP,
    derive_seed,
    rank_slice,
    seeded_generator,
)
from impl.train.batches import BatchSource
from impl.train.checkpoint import (
    TrainingCheckpoint,
    capture_rng_state,
    restore_rng_state,
    save_training_checkpoint,
)
from impl.train.config import TrainConfig
from impl.train.distributed import DistContext, all_gather_cat, all_reduce_sum_, barrier
from impl.train.divergence import DivergenceGuard
from impl.train.ema import EMA
from impl.train.errors import CheckpointError, exception_line
from impl.train.label_dropout import drop_labels
from impl.train.loss_fn import Diffusion, LossFn, compile_with, per_sample_loss_fn, warm_device_caches
from impl.train.metrics import MetricAccumulator, RunLogger
from impl.train.optimizer import build_adamw, match_state_layout
from impl.train.sample_eval import evaluate_samples
from impl.train.timestep_sampling import (
    draw_timesteps,
    feed_losses,
    is_loss_aware,
    load_sampler_state,
    sampler_state,
)


@dataclass
class TrainResult:
    step: int
    stopped_early: bool
    last_log: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None
    steps_this_run: int | None = None  # steps trained by this invocation (a resumed run starts later)


class Trainer:
    """Trains ``model`` on ``data`` with ``diffusion.training_losses``.

    Every random number of step ``s`` (data order, t, noise, flips, dropout) is a function of
    ``(config.seed, s, rank)``, so a resumed run and a multi-process run reproduce a straight single-process
    run of the same global batch.  Only rank 0 writes files.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        diffusion: Diffusion,
        data: BatchSource,
        config: TrainConfig,
        run_dir: Path | None = None,
        ctx: DistContext | None = None,
        schedule_sampler: Any = None,
        grid_diffusion: Any = None,
        class_cond: bool = False,
        num_classes: int | None = None,
        should_stop: Any = None,
    ) -> None:
        self.ctx = ctx or DistContext()
        config.validate(self.ctx.world_size)
        self.config = config
        self.device = self.ctx.device
        self.run_dir = run_dir
        self.diffusion = diffusion
        self.grid_diffusion: Any = grid_diffusion if grid_diffusion is not None else diffusion
        self.schedule_sampler = schedule_sampler
        self.class_cond = class_cond
        self.num_classes = num_classes
        # classifier-free guidance [S51]: labels become the null label (index num_classes) with this chance
        flags = config.model_flags
        self.class_dropout_prob = check_class_dropout_prob(flags.get("class_dropout_prob", 0.0), class_cond)
        self.null_label = int(flags.get("num_classes") or num_classes or 0)
        if class_cond and not data.has_labels:
            raise ValueError("class_cond=True needs a data set with labels")
        self.should_stop = should_stop
        self.data = data.to(self.device)
        self.data.bind(
            seed=config.seed,
            global_batch=config.batch_size,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
        )
        self.saved_backend_flags: BackendFlags | None = apply_backend_flags(
            self.device, allow_tf32=config.allow_tf32, cudnn_benchmark=config.cudnn_benchmark
        )
        self.model = model.to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if config.recompute_norms:
            set_norm_recompute(self.model, True)
        self.params = list(self.model.parameters())
        self.policy = PrecisionPolicy.create(config.precision, self.device)
        self.ddp: DistributedDataParallel | None = None
        inner: nn.Module = self.model
        if self.ctx.is_distributed:
            self.ddp = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
            inner = self.ddp
        if config.compile and config.compile_scope == "model":
            inner = compile_with(config, inner)
        self.train_model = AutocastModel(inner, self.policy)
        # ``loss_fn`` is the eager per-sample loss; ``step_loss_fn`` is what train_step calls (the same
        # function compiled as one graph under compile_scope="loss").
        self.loss_fn: LossFn = self._make_loss_fn()
        self.loss_compiled = config.compile and config.compile_scope == "loss"
        self.step_loss_fn: LossFn = compile_with(config, self.loss_fn) if self.loss_compiled else self.loss_fn
        graph_mode = config.compile_mode in CUDA_GRAPH_MODES
        self._loss_cuda_graphs = self.loss_compiled and self.device.type == "cuda" and graph_mode
        self.optimizer = build_adamw(
            self.params, config.optimizer_impl, self.device, lr=config.lr, weight_decay=config.weight_decay
        )
        self.ema = EMA(self.model, config.ema_rates)
        self.metrics = MetricAccumulator(diffusion.num_timesteps, self.device)
        self.step = 0
        self.logger = RunLogger(run_dir, enabled=self.ctx.is_main) if run_dir is not None else None
        self._grid_model: nn.Module | None = None
        self._step_gen = torch.Generator(device=self.device)
        self.last_log: dict[str, Any] = {}
        self._skipped = 0
        self.guard = DivergenceGuard(
            self.device,
            loss_scaling=self.policy.scaler is not None,
            max_nonfinite_steps=config.max_nonfinite_steps,
        )
        # The newest checkpoint this trainer saved or was loaded from (named when training diverges).
        self.last_checkpoint: Path | None = None

        # rank 0's scorer of ``evaluate_samples`` (set by train_command when eval_interval > 0)
        self.sample_scorer: Any = None

    def _make_loss_fn(self) -> LossFn:
        """The eager per-sample loss of (x_0, t, ε, model_kwargs) through ``self.train_model``."""
        return per_sample_loss_fn(self.diffusion, self.train_model)

    def evaluate(self) -> None:
        """The evaluation every ``eval_interval`` steps: sample quality (``impl.train.sample_eval``)."""
        evaluate_samples(self, self.sample_scorer)

    def finish(self) -> None:
        """After the final save of a run that was not stopped early: the last sample grid."""
        self.save_grid()

    def attach_run_dir(self, run_dir: Path) -> None:
        """Write checkpoints, grids and ``log.jsonl`` to ``run_dir`` from now on."""
        self.run_dir = run_dir
        self.logger = RunLogger(run_dir, enabled=self.ctx.is_main)

    # ------------------------------------------------------------------ one step
    def _model_kwargs(self, labels: torch.Tensor | None) -> dict[str, Any]:
        return {"y": labels} if self.class_cond and labels is not None else {}

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` channels-last when the config asks for it and ``x`` is an image batch (same values)."""
        if self.config.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def restore_backend_flags(self) -> None:
        """Put back the TF32 / cuDNN settings that construction replaced (CUDA only; else a no-op)."""
        if self.saved_backend_flags is not None:
            set_backend_flags(self.saved_backend_flags)
            self.saved_backend_flags = None

    def _losses(
        self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, kwargs: dict[str, Any]
    ) -> dict[str, torch.Tensor]:
        """The per-sample loss dict of one microbatch through ``step_loss_fn``."""
        if not self.loss_compiled:
            return self.step_loss_fn(x, t, noise, kwargs)
        warm_device_caches(self.diffusion, x)
        if not self._loss_cuda_graphs:
            return self.step_loss_fn(x, t, noise, kwargs)
        mark_cuda_graph_step_begin()
        # The graph's outputs are overwritten by the next replay; the losses outlive it (metrics, sampler).
        return {name: value.clone() for name, value in self.step_loss_fn(x, t, noise, kwargs).items()}

    def train_step(self) -> None:
        """One optimisation step on the global batch of ``self.step``."""
        cfg, ctx, T = self.config, self.ctx, self.diffusion.num_timesteps
        step = self.step
        gen = self._step_gen
        gen.manual_seed(derive_seed(cfg.seed, STREAM_STEP, step))
        t_all, w_all = draw_timesteps(self.schedule_sampler, T, cfg.batch_size, gen, self.device)
        noise_all = self._layout(
            torch.randn((cfg.batch_size, *self.data.sample_shape), generator=gen, device=self.device)
        )
        flip_all = (
            torch.rand(cfg.batch_size, generator=gen, device=self.device) < 0.5 if cfg.random_flip else None
        )
        drop_all = (
            torch.rand(cfg.batch_size, generator=gen, device=self.device)
            if self.class_dropout_prob > 0
            else None
        )
        share = rank_slice(cfg.batch_size, ctx.rank, ctx.world_size)
        x, labels = self.data.fetch(step, self.device)
        if drop_all is not None and labels is not None:
            labels = drop_labels(labels, drop_all[share], self.class_dropout_prob, self.null_label)
        x = self._layout(x)
        if flip_all is not None:
            x = torch.where(flip_all[share].view(-1, *([1] * (x.ndim - 1))), x.flip(-1), x)
        t, w, noise = t_all[share], w_all[share], noise_all[share]
        torch.manual_seed(derive_seed(cfg.seed, STREAM_DROPOUT, step, ctx.rank))

        lr = cfg.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        self.model.train()

        local = x.shape[0]
        micro = cfg.microbatch_size or local
        raw_losses: list[torch.Tensor] = []
        for start in range(0, local, micro):
            end = min(start + micro, local)
            sync_now = end >= local
            defer = self.ddp is not None and not sync_now
            with self.ddp.no_sync() if (defer and self.ddp is not None) else contextlib.nullcontext():
                kwargs = self._model_kwargs(None if labels is None else labels[start:end])
                losses = self._losses(x[start:end], t[start:end], noise[start:end], kwargs)
                # mean over the microbatch times its share of the local batch = sum / local
                loss = (losses["loss"] * w[start:end]).sum() / local
                self.policy.scale(loss).backward()  # type: ignore[no-untyped-call]
            self.metrics.add_losses(t[start:end], losses, w[start:end])
            raw_losses.append(losses["loss"].detach())

        if is_loss_aware(self.schedule_sampler):
            feed_losses(self.schedule_sampler, t_all, all_gather_cat(torch.cat(raw_losses), ctx))

        scaler = self.policy.scaler
        if scaler is not None:
            scaler.unscale_(self.optimizer)
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=self.device)
        if cfg.grad_clip > 0 and grads:
            torch.nn.utils.clip_grads_with_norm_(self.params, cfg.grad_clip, norm)
        self.metrics.add_grad_norm(norm)
        self.guard.record_grad_norm(norm, step)
        if scaler is not None:
            scale_before = scaler.get_scale()
            scaler.step(self.optimizer)
            scaler.update()
            stepped = scaler.get_scale() >= scale_before
        else:
            self.optimizer.step()
            stepped = True
        if stepped:
            self.ema.update([p.detach() for p in self.params], cfg.ema_decays(self.step))
        else:
            self._skipped += 1
        self.guard.record_update(not stepped, step)
        self.step += 1

    # ------------------------------------------------------------------ the loop
    def _stop_requested(self, at_log_step: bool) -> bool:
        local = bool(self.should_stop()) if self.should_stop is not None else False
        if not self.ctx.is_distributed:
            return local
        if not at_log_step:
            return False
        flag = torch.tensor([1.0 if local else 0.0], device=self.device)
        return bool(all_reduce_sum_(flag, self.ctx).item() > 0)

    def run(self) -> TrainResult:
        """Train until ``config.max_steps`` or a stop request; save (and draw a grid) at the end."""
        cfg = self.config
        self._skipped = 0
        progress = _progress_bar(cfg, self.step) if (cfg.progress and self.ctx.is_main) else None
        window_start, window_step = time.perf_counter(), self.step
        stopped = False
        checkpoint: Path | None = None
        try:
            while self.step < cfg.max_steps:
                self.train_step()
                if progress is not None:
                    progress.update(1)
                at_log = self.step % cfg.log_interval == 0 or self.step == cfg.max_steps
                if at_log:
                    now = time.perf_counter()
                    record = self._log(now - window_start, self.step - window_step)
                    window_start, window_step = now, self.step
                    self.guard.check(self.last_checkpoint)
                    if progress is not None:
                        progress.set_postfix(
                            loss=f"{record['loss']:.4f}", samples_s=f"{record['samples_per_sec']:.0f}"
                        )
                if self._stop_requested(at_log):
                    stopped = self.step < cfg.max_steps
                    break
                if cfg.save_interval and self.step % cfg.save_interval == 0 and self.step < cfg.max_steps:
                    checkpoint = self.save()
                if cfg.sample_interval and self.step % cfg.sample_interval == 0 and self.step < cfg.max_steps:
                    self.save_grid()
                if cfg.eval_interval and self.step % cfg.eval_interval == 0:
                    self.evaluate()
        finally:
            if progress is not None:
                progress.close()
        if self.metrics.sums[3].item() > 0:
            self._log(max(time.perf_counter() - window_start, 1e-9), self.step - window_step)
        checkpoint = self.save()
        if not stopped:
            self.finish()
        if self.logger is not None:
            self.logger.close()
        return TrainResult(
            step=self.step, stopped_early=stopped, last_log=self.last_log, checkpoint=checkpoint
        )

    def _log(self, seconds: float, steps: int) -> dict[str, Any]:
        record: dict[str, Any] = {"step": self.step}
        record.update(self.metrics.reduce_and_reset(self.ctx))
        record["lr"] = self.config.lr_at(max(self.step - 1, 0))
        record["samples_per_sec"] = steps * self.config.batch_size / seconds if seconds > 0 else math.nan
        record["skipped_steps"] = self._skipped
        record["time"] = time.time()
        self.last_log = record
        if self.logger is not None:
            self.logger.write(record)
        return record

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_state(self) -> TrainingCheckpoint:
        scaler = self.policy.scaler
        return TrainingCheckpoint(
            step=self.step,
            config=self.config.to_dict(),
            model={k: v.detach() for k, v in self.model.state_dict().items()},
            emas={rate: self.ema.state_dict(self.model, rate) for rate in self.ema.rates},
            optimizer=self.optimizer.state_dict(),
            sampler=sampler_state(self.schedule_sampler),
            scaler=None if scaler is None else _scaler_state(scaler),
            rng=capture_rng_state(),
        )

    def save(self) -> Path | None:
        """Rank 0 writes ``<run_dir>/checkpoints/step_N`` atomically; every rank waits for it.  A diverged
        state is never saved (nor anything pruned for it): :class:`DivergenceError` instead."""
        self.guard.check(self.last_checkpoint)
        path: Path | None = None
        if self.run_dir is not None and self.ctx.is_main:
            keep = self.config.keep_checkpoints
            path = save_training_checkpoint(self.run_dir, self.checkpoint_state(), keep=keep)
            self.last_checkpoint = path
        barrier(self.ctx)
        return path

    def load(self, ckpt: TrainingCheckpoint) -> None:
        """Restore model, EMAs, optimizer, sampler history, loss scale, RNG and step from ``ckpt``."""
        try:
            self.model.load_state_dict({k: v.to(self.device) for k, v in ckpt.model.items()}, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint does not match the model: {exception_line(exc)}") from None
        for rate in self.ema.rates:
            if rate not in ckpt.emas:
                raise CheckpointError(
                    f"checkpoint has EMA rates {sorted(ckpt.emas)}, the run asks for {list(self.ema.rates)}"
                )
            try:
                self.ema.load_state_dict(rate, {k: v.to(self.device) for k, v in ckpt.emas[rate].items()})
            except ValueError as exc:
                raise CheckpointError(str(exc)) from None
        if ckpt.optimizer is not None:
            try:
                self.optimizer.load_state_dict(ckpt.optimizer)
                match_state_layout(self.optimizer)
            except (ValueError, KeyError, RuntimeError) as exc:
                reason = exception_line(exc)
                raise CheckpointError(f"optimizer state does not match the model: {reason}") from None
        try:
            load_sampler_state(self.schedule_sampler, ckpt.sampler)
        except ValueError as exc:
            raise CheckpointError(str(exc)) from None
        if self.policy.scaler is not None and ckpt.scaler:
            self.policy.scaler.load_state_dict(ckpt.scaler)
        restore_rng_state(ckpt.rng)
        self.step = ckpt.step
        self.last_checkpoint = ckpt.path

    # ------------------------------------------------------------------ sample grids
    @torch.no_grad()
    def sample_images(
        self, num: int, rate: float | None = None, seed: int | None = None
    ) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """``num`` samples of the EMA model (first rate by default) as uint8 NHWC, seeded by the step
        (or by ``seed``)."""
        if self._grid_model is None:
            self._grid_model = copy.deepcopy(self.model)
        grid_model = self._grid_model
        self.ema.copy_to(grid_model, self.ema.rates[0] if rate is None else rate)
        grid_model.eval()
        seed = derive_seed(self.config.seed, STREAM_GRID, self.step) if seed is None else seed
        gen = seeded_generator(seed, self.device)
        kwargs: dict[str, Any] = {}
        if self.class_cond and self.num_classes:
            kwargs["y"] = torch.arange(num, device=self.device) % self.num_classes
        sampler_model = AutocastModel(grid_model, self.policy)
        shape = (num, *self.data.sample_shape)
        out = self.grid_diffusion.p_sample_loop(
            sampler_model, shape, model_kwargs=kwargs, progress=False, generator=gen
        )
        images = ((out.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
        return np.ascontiguousarray(images.cpu().numpy())

    def save_grid(self) -> Path | None:
        """Rank 0 writes ``<run_dir>/samples/step_N.png`` from the EMA model, enlarged as ``grid_scale`` says
        (``impl.data.writers.resolve_scale``); no-op without images/run dir."""
        n = self.config.num_grid_samples
        if self.run_dir is None or not self.ctx.is_main or n == 0 or len(self.data.sample_shape) != 3:
            return None
        from impl.data import save_image_grid

        images = self.sample_images(n)
        path = self.run_dir / "samples" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image_grid(path, images, scale=self.config.grid_scale)
        return path


def _scaler_state(scaler: torch.amp.GradScaler) -> dict[str, Any]:
    return {k: (float(v) if isinstance(v, float) else v) for k, v in scaler.state_dict().items()}


def _progress_bar(cfg: TrainConfig, initial: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=cfg.max_steps, initial=initial, desc="train", unit="step", dynamic_ncols=True)
