"""Training timestep samplers (the original `resample` module): uniform, loss-second-moment [S24]–[S26]."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist
from numpy.typing import NDArray

from impl.diffusion.gaussian_diffusion import GaussianDiffusion
from impl.diffusion.timesteps import (
    importance_weights,
    loss_second_moment_probs,
    sample_timesteps,
    update_loss_history,
)

__all__ = [
    "LossAwareSampler",
    "LossSecondMomentResampler",
    "ScheduleSampler",
    "UniformSampler",
    "create_named_schedule_sampler",
]

SAMPLER_NAMES = ("uniform", "loss-second-moment")


class ScheduleSampler(ABC):
    """A distribution p over timesteps with importance weights 1/(T·p_t) that keep the objective unbiased."""

    @abstractmethod
    def weights(self) -> NDArray[np.float64]:
        """Unnormalised sampling weights, one per timestep (float64 NumPy)."""

    def probabilities(self, device: torch.device) -> torch.Tensor:
        """p = weights/Σweights as a float64 tensor on `device`."""
        w = torch.as_tensor(self.weights(), dtype=torch.float64, device=device)
        return w / w.sum()

    def sample(
        self, batch_size: int, device: torch.device | str, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(t (B,) int64, weights (B,) float32) with t ∼ p by inverse CDF and w_t = 1/(T·p_t) [S24]."""
        dev = torch.device(device)
        p = self.probabilities(dev)
        uniforms = torch.rand(batch_size, generator=generator, device=dev, dtype=torch.float64)
        t = sample_timesteps(p, uniforms)
        return t, importance_weights(p, t).to(torch.float32)


class UniformSampler(ScheduleSampler):
    """p_t = 1/T, every weight 1 [S25]."""

    def __init__(self, diffusion: GaussianDiffusion) -> None:
        self.diffusion = diffusion
        self._weights = np.ones([diffusion.num_timesteps], dtype=np.float64)

    def weights(self) -> NDArray[np.float64]:
        """All ones."""
        return self._weights


class LossAwareSampler(ScheduleSampler):
    """A sampler updated with the training losses of every rank."""

    def update_with_local_losses(self, local_ts: torch.Tensor, local_losses: torch.Tensor) -> None:
        """Update with this rank's (t, loss) pairs and, under torch.distributed, every other rank's.

        Ranks may hold different batch sizes: sizes are all-gathered, each rank pads to the largest,
        the padded tensors are all-gathered and the padding is masked out (one host read of the largest
        size; no per-element host work).
        """
        ts = local_ts.detach().reshape(-1).to(torch.long)
        losses = local_losses.detach().reshape(-1).to(torch.float64)
        if not (dist.is_available() and dist.is_initialized()):
            self._update(ts, losses, None)
            return
        world = dist.get_world_size()
        size = torch.tensor([ts.shape[0]], dtype=torch.long, device=ts.device)
        sizes = [torch.zeros_like(size) for _ in range(world)]
        dist.all_gather(sizes, size)
        all_sizes = torch.cat(sizes)
        largest = int(all_sizes.max().item())
        padded_ts = torch.zeros(largest, dtype=torch.long, device=ts.device)
        padded_losses = torch.zeros(largest, dtype=torch.float64, device=ts.device)
        padded_ts[: ts.shape[0]] = ts
        padded_losses[: ts.shape[0]] = losses
        gathered_ts = [torch.zeros_like(padded_ts) for _ in range(world)]
        gathered_losses = [torch.zeros_like(padded_losses) for _ in range(world)]
        dist.all_gather(gathered_ts, padded_ts)
        dist.all_gather(gathered_losses, padded_losses)
        valid = torch.arange(largest, device=ts.device).unsqueeze(0) < all_sizes.unsqueeze(1)
        self._update(
            torch.stack(gathered_ts).reshape(-1), torch.stack(gathered_losses).reshape(-1), valid.reshape(-1)
        )

    def update_with_all_losses(
        self, ts: Sequence[int] | torch.Tensor, losses: Sequence[float] | torch.Tensor
    ) -> None:
        """Update with the (t, loss) pairs of all ranks, in order."""
        t_tensor = torch.as_tensor(ts, dtype=torch.long).reshape(-1)
        loss_tensor = torch.as_tensor(losses, dtype=torch.float64).reshape(-1)
        if t_tensor.shape != loss_tensor.shape:
            raise ValueError(
                f"ts and losses must have equal lengths, got {t_tensor.shape[0]} and {loss_tensor.shape[0]}"
            )
        self._update(t_tensor, loss_tensor, None)

    @abstractmethod
    def _update(self, ts: torch.Tensor, losses: torch.Tensor, valid: torch.Tensor | None) -> None:
        """Apply the pairs (those with `valid` True when given)."""


class LossSecondMomentResampler(LossAwareSampler):
    """p_t ∝ √E[L_t²] over the last `history_per_term` losses per t, mixed with `uniform_prob` [S26].

    The history lives in a float64 tensor on the device of the losses it is updated with.
    """

    def __init__(
        self, diffusion: GaussianDiffusion, history_per_term: int = 10, uniform_prob: float = 0.001
    ) -> None:
        if history_per_term < 1:
            raise ValueError(f"history_per_term must be >= 1, got {history_per_term}")
        if not 0.0 <= uniform_prob <= 1.0:
            raise ValueError(f"uniform_prob must lie in [0, 1], got {uniform_prob}")
        self.diffusion = diffusion
        self.history_per_term = history_per_term
        self.uniform_prob = uniform_prob
        steps = diffusion.num_timesteps
        self._loss_history = torch.zeros((steps, history_per_term), dtype=torch.float64)
        self._loss_counts = torch.zeros((steps,), dtype=torch.long)

    def probabilities(self, device: torch.device) -> torch.Tensor:
        """The sampling distribution, computed on the history's device (no host round trip)."""
        p = loss_second_moment_probs(self._loss_history, self._loss_counts, self.uniform_prob)
        return p.to(device)

    def weights(self) -> NDArray[np.float64]:
        """The sampling distribution as NumPy (uniform ones until warmed up, as the original)."""
        if not self._warmed_up():
            return np.ones([self.diffusion.num_timesteps], dtype=np.float64)
        p = loss_second_moment_probs(self._loss_history, self._loss_counts, self.uniform_prob)
        return np.asarray(p.cpu().numpy(), dtype=np.float64)

    def _warmed_up(self) -> bool:
        return bool((self._loss_counts == self.history_per_term).all().item())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The loss history ``(T, K)`` and per-t counts ``(T,)``: everything needed to resume sampling."""
        return {"loss_history": self._loss_history.detach().clone(), "loss_counts": self._loss_counts.clone()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned, onto this sampler's current device."""
        expected = {
            "loss_history": tuple(self._loss_history.shape),
            "loss_counts": tuple(self._loss_counts.shape),
        }
        if set(state) != set(expected):
            raise ValueError(f"state must hold exactly {sorted(expected)}; got {sorted(state)}")
        for key, shape in expected.items():
            if tuple(state[key].shape) != shape:
                raise ValueError(
                    f"state[{key!r}] has shape {tuple(state[key].shape)}, expected {shape} "
                    "(different diffusion_steps or history_per_term?)"
                )
        device = self._loss_history.device
        self._loss_history = state["loss_history"].to(device=device, dtype=torch.float64).clone()
        self._loss_counts = state["loss_counts"].to(device=device, dtype=torch.long).clone()

    def _update(self, ts: torch.Tensor, losses: torch.Tensor, valid: torch.Tensor | None) -> None:
        if ts.device != self._loss_history.device:
            self._loss_history = self._loss_history.to(ts.device)
            self._loss_counts = self._loss_counts.to(ts.device)
        self._loss_history, self._loss_counts = update_loss_history(
            self._loss_history, self._loss_counts, ts, losses, valid
        )


def create_named_schedule_sampler(name: str, diffusion: GaussianDiffusion) -> ScheduleSampler:
    """ "uniform" → `UniformSampler`, "loss-second-moment" → `LossSecondMomentResampler`."""
    if name == "uniform":
        return UniformSampler(diffusion)
    if name == "loss-second-moment":
        return LossSecondMomentResampler(diffusion)
    raise ValueError(f"unknown schedule sampler name {name!r}; expected one of {SAMPLER_NAMES}")
