"""The noisy-image classifier's trainer: :class:`Trainer`'s loop, checkpoints, DDP, precision and logs with
a cross-entropy loss on noised images, and a held-out evaluation per quarter of the t range.

Training step: t ~ U{0, …, T−1} (the diffusion's own indices; a respaced chain has T = its length),
``x_t = q_sample(x₀, t, ε)`` [S6], ``logits = f(x_t, τ(t))`` with ``τ`` the timesteps the diffusion gives
its network (``_model_timesteps``: the respaced chain's map to original steps, and the 1000/T rescaling
when ``rescale_timesteps``), loss ``ℓ = CE(logits, y)`` [S59] averaged over the batch.

Held-out evaluation: the first ``val_samples`` images, each noised once in every quarter of [0, T) (t
uniform within the quarter, the noise and t seeded by ``(seed, STREAM_HELD_OUT, chunk)``: the same draws
at every evaluation, so evaluations of one run compare like with like), scored by the live model in eval
mode: loss and top-1 / top-5 accuracy overall and per quarter [S58], logged as ``val_*``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from impl.diffusion.gaussian_diffusion import GaussianDiffusion
from impl.diffusion.schedule import compute_dtype
from impl.runtime.precision import AutocastModel
from impl.runtime.seeding import derive_seed
from impl.train.batches import BatchSource, InMemoryData
from impl.train.classifier_config import ClassifierTrainConfig
from impl.train.classifier_metrics import NUM_T_BINS, HeldOutAccumulator, per_sample_cross_entropy
from impl.train.distributed import DistContext
from impl.train.loss_fn import LossFn
from impl.train.trainer import Trainer

__all__ = [
    "STREAM_HELD_OUT",
    "ClassifierTrainer",
    "classifier_loss_fn",
    "model_timesteps",
    "noised_inputs",
    "stratified_timesteps",
]

STREAM_HELD_OUT = 6
"""Seed stream of the held-out evaluation's timesteps and noise (after sample_eval's STREAM_EVAL 5)."""


def model_timesteps(diffusion: GaussianDiffusion, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """What the diffusion calls its network with at its step indices ``t`` (the same mapping the U-Net
    gets: original timesteps of a respaced chain, rescaled when ``rescale_timesteps``)."""
    return diffusion._model_timesteps(t, compute_dtype(dtype))


def noised_inputs(
    diffusion: GaussianDiffusion, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_t, τ(t))``: the classifier's input ``q_sample(x₀, t, ε)`` [S6] and its timesteps."""
    x_t = diffusion.q_sample(x_start, t, noise)
    return x_t, model_timesteps(diffusion, t, x_t.dtype)


def classifier_loss_fn(diffusion: GaussianDiffusion, model: nn.Module) -> LossFn:
    """The per-sample loss ``{"loss": CE(model(x_t, τ(t)), y)}`` [S59] of (x₀, t, ε, {"y": labels})."""

    def losses(
        x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, model_kwargs: dict[str, Any]
    ) -> dict[str, torch.Tensor]:
        x_t, steps = noised_inputs(diffusion, x_start, t, noise)
        return {"loss": per_sample_cross_entropy(model(x_t, steps), model_kwargs["y"])}

    return losses


def stratified_timesteps(
    count: int, num_timesteps: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """``NUM_T_BINS · count`` timesteps: bin b's block holds ``count`` draws uniform over its integers
    [⌈bT/4⌉, ⌈(b+1)T/4⌉) (a bin with no integer, T < 4, is left out)."""
    parts = []
    for b in range(NUM_T_BINS):
        lo = -(-b * num_timesteps // NUM_T_BINS)
        hi = -(-(b + 1) * num_timesteps // NUM_T_BINS)
        if hi > lo:
            parts.append(torch.randint(lo, hi, (count,), generator=generator, device=device))
    return torch.cat(parts)


class ClassifierTrainer(Trainer):
    """:class:`Trainer` with the classifier's loss and the held-out evaluation (module docstring).

    ``held_out`` (None: no evaluation) is evaluated every ``config.eval_interval`` steps and at the end;
    ``report(record)`` (rank 0) receives each evaluation's record after it is logged.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        diffusion: GaussianDiffusion,
        data: BatchSource,
        config: ClassifierTrainConfig,
        held_out: InMemoryData | None = None,
        ctx: DistContext | None = None,
        report: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if not data.has_labels:
            raise ValueError("a classifier trains on labelled data; the data set has no labels")
        self.noising: GaussianDiffusion = diffusion
        super().__init__(model=model, diffusion=diffusion, data=data, config=config, ctx=ctx)
        self.held_out = None if held_out is None else held_out.to(self.device)
        self.report = report
        self.evaluated_at: int | None = None

    def _make_loss_fn(self) -> LossFn:
        return classifier_loss_fn(self.noising, self.train_model)

    def _model_kwargs(self, labels: torch.Tensor | None) -> dict[str, Any]:
        return {"y": labels}

    def evaluate(self) -> None:
        if self.held_out is None:
            return
        record = {"step": self.step, **self._held_out_sums().reduce(self.ctx)}
        self.evaluated_at = self.step
        if self.ctx.is_main:
            if self.logger is not None:
                self.logger.write(record)
            if self.report is not None:
                self.report(record)

    def finish(self) -> None:
        if self.evaluated_at != self.step:
            self.evaluate()

    @torch.no_grad()
    def _held_out_sums(self) -> HeldOutAccumulator:
        """This rank's sums over its chunks (chunk c of the batch size goes to rank c mod world size)."""
        assert self.held_out is not None
        cfg, ctx, T = self.config, self.ctx, self.noising.num_timesteps
        assert isinstance(cfg, ClassifierTrainConfig)
        total = min(len(self.held_out), cfg.val_samples)
        acc = HeldOutAccumulator(T, self.device)
        scorer = AutocastModel(self.model, self.policy)
        self.model.eval()
        gen = torch.Generator(device=self.device)
        for chunk, lo in enumerate(range(0, total, cfg.batch_size)):
            if chunk % ctx.world_size != ctx.rank:
                continue
            idx = torch.arange(lo, min(lo + cfg.batch_size, total))
            x, labels = self.held_out.batch(idx, self.device)
            assert labels is not None
            gen.manual_seed(derive_seed(cfg.seed, STREAM_HELD_OUT, chunk))
            t = stratified_timesteps(len(idx), T, gen, self.device)
            repeats = t.shape[0] // len(idx)
            x0 = x.repeat(repeats, *([1] * (x.ndim - 1)))
            noise = torch.randn(x0.shape, generator=gen, device=self.device)
            x_t, steps = noised_inputs(self.noising, x0, t, noise)
            acc.add(scorer(self._layout(x_t), steps), labels.repeat(repeats), t)
        self.model.train()
        return acc
