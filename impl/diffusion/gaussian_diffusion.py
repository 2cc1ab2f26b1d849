"""`GaussianDiffusion`: the original improved-diffusion class, its math delegated to the tensor modules.

Per-step methods gather float64-built tables already on the input's device in the input's compute dtype
(float64 stays float64; anything else computes in float32), never synchronise with the host, and take
`noise=` or a `torch.Generator` for every random draw.  Loops are implemented in `impl.sampling`, which
sees this class only through the protocols of `impl.diffusion.types`; the class inherits the loop methods
(original keyword signatures, settings handed over as one `SamplingOptions`) from its mixin there.  The
float64 tables are `self.tables`, also readable under their original attribute names (`self.betas`, …).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from impl.diffusion import objectives, process, steps
from impl.diffusion.enums import LossType, ModelMeanType, ModelVarType
from impl.diffusion.schedule import TABLE_NAMES, TableCache, TorchTables, compute_dtype, diffusion_tables
from impl.diffusion.types import CondFn, DenoisedFn, Model
from impl.sampling.methods import SamplingLoopMethods

__all__ = ["GaussianDiffusion"]


def draw_noise(
    like: torch.Tensor, noise: torch.Tensor | None, generator: torch.Generator | None
) -> torch.Tensor:
    """`noise` when given (checked against `like`'s shape), else a standard normal draw from `generator`."""
    if noise is not None:
        if noise.shape != like.shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {tuple(like.shape)}")
        return noise
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


class GaussianDiffusion(SamplingLoopMethods):
    """A Gaussian diffusion process with T steps and its reverse model (SPEC §1–§5, §7).

    The loop methods (`p_sample_loop`, `ddim_sample_loop`, their progressive forms, `calc_bpd_loop`) come
    from `impl.sampling.methods.SamplingLoopMethods`.
    """

    def __init__(
        self,
        *,
        betas: NDArray[np.float64] | Sequence[float],
        model_mean_type: ModelMeanType,
        model_var_type: ModelVarType,
        loss_type: LossType,
        rescale_timesteps: bool = False,
        loss_weighting: str = "none",
        min_snr_gamma: float = 5.0,
        vlb_weight: float | None = None,
    ) -> None:
        if not isinstance(model_mean_type, ModelMeanType):
            raise ValueError(f"model_mean_type must be one of {[m.name for m in ModelMeanType]}")
        if not isinstance(model_var_type, ModelVarType):
            raise ValueError(f"model_var_type must be one of {[m.name for m in ModelVarType]}")
        if not isinstance(loss_type, LossType):
            raise ValueError(f"loss_type must be one of {[m.name for m in LossType]}")
        objectives.check_objective_options(
            model_mean_type, model_var_type, loss_type, loss_weighting, min_snr_gamma, vlb_weight
        )
        self.model_mean_type = model_mean_type
        self.model_var_type = model_var_type
        self.loss_type = loss_type
        self.rescale_timesteps = rescale_timesteps
        self.loss_weighting = loss_weighting
        self.min_snr_gamma = float(min_snr_gamma)
        self.vlb_weight = None if vlb_weight is None else float(vlb_weight)
        host = diffusion_tables(np.asarray(betas, dtype=np.float64))
        self.tables = host
        self._cache = TableCache(host)
        self.num_timesteps = host.num_timesteps

    def __getattr__(self, name: str) -> NDArray[np.float64]:
        """The float64 NumPy tables under their original attribute names (`diffusion.betas`, …)."""
        # Reached only for names not found normally; read __dict__ so a half-built object cannot recurse.
        tables = self.__dict__.get("tables")
        if tables is not None and name in TABLE_NAMES:
            table: NDArray[np.float64] = getattr(tables, name)
            return table
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ---- tables and timesteps -------------------------------------------------------------------
    def tables_for(self, x: torch.Tensor) -> TorchTables:
        """The tables on x's device in x's compute dtype (cached)."""
        return self._cache.get(x.device, x.dtype)

    def prepare_device_caches(self, x: torch.Tensor) -> None:
        """Build every lazily cached device tensor a step on ``x`` will read, now.

        Call it before ``torch.compile`` traces a step: a cache entry created inside the first trace fails
        that trace's guard on the next call and forces a recompile (on CUDA, a second graph capture).
        """
        self.tables_for(x)

    def _check_t(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(f"t must have shape ({x.shape[0]},) to match x, got {tuple(t.shape)}")
        if t.is_floating_point():
            raise ValueError("t must be an integer tensor of timesteps in [0, num_timesteps)")
        process.check_timesteps(t, self.num_timesteps)
        return t.to(device=x.device, dtype=torch.long)

    def _scale_timesteps(self, t: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """t·1000/T as a float when `rescale_timesteps`, else t unchanged (SPEC §5)."""
        if self.rescale_timesteps:
            return t.to(dtype) * (1000.0 / self.num_timesteps)
        return t

    def _model_timesteps(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """What the network (and a guidance `cond_fn`) is called with at process step t."""
        return self._scale_timesteps(t, dtype)

    def _run_model(
        self, model: Model, x: torch.Tensor, t: torch.Tensor, model_kwargs: dict[str, Any] | None
    ) -> torch.Tensor:
        return model(x, self._model_timesteps(t, compute_dtype(x.dtype)), **(model_kwargs or {}))

    # ---- forward process and posterior ----------------------------------------------------------
    def q_mean_variance(
        self, x_start: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q(x_t|x_0): (mean, variance, log_variance) [S5]."""
        return process.q_mean_variance(self.tables_for(x_start), x_start, self._check_t(t, x_start))

    def q_sample(
        self,
        x_start: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε [S6]."""
        eps = draw_noise(x_start, noise, generator)
        return process.q_sample(self.tables_for(x_start), x_start, self._check_t(t, x_start), eps)

    def q_posterior_mean_variance(
        self, x_start: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q(x_{t−1}|x_t, x_0): (mean, variance, log_variance_clipped) [S7]–[S8]."""
        return process.q_posterior_mean_variance(self.tables_for(x_t), x_start, x_t, self._check_t(t, x_t))

    def _predict_xstart_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_0 from ε [S9]."""
        return process.predict_xstart_from_eps(self.tables_for(x_t), x_t, self._check_t(t, x_t), eps)

    def _predict_eps_from_xstart(
        self, x_t: torch.Tensor, t: torch.Tensor, pred_xstart: torch.Tensor
    ) -> torch.Tensor:
        """ε from x_0 (inverse of [S9])."""
        return process.predict_eps_from_xstart(self.tables_for(x_t), x_t, self._check_t(t, x_t), pred_xstart)

    def _predict_xstart_from_xprev(
        self, x_t: torch.Tensor, t: torch.Tensor, xprev: torch.Tensor
    ) -> torch.Tensor:
        """x_0 from x_{t−1} [S10]."""
        return process.predict_xstart_from_xprev(self.tables_for(x_t), x_t, self._check_t(t, x_t), xprev)

    # ---- reverse process ------------------------------------------------------------------------
    def p_mean_variance(
        self,
        model: Model,
        x: torch.Tensor,
        t: torch.Tensor,
        clip_denoised: bool = True,
        denoised_fn: DenoisedFn | None = None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Run the net at x_t and return mean, variance, log_variance, pred_xstart (SPEC §3)."""
        t = self._check_t(t, x)
        model_output = self._run_model(model, x, t, model_kwargs)
        return process.p_mean_variance(
            self.tables_for(x),
            model_output,
            x,
            t,
            model_mean_type=self.model_mean_type,
            model_var_type=self.model_var_type,
            clip_denoised=clip_denoised,
            denoised_fn=denoised_fn,
        )

    def condition_mean(
        self,
        cond_fn: CondFn,
        p_mean_var: dict[str, torch.Tensor],
        x: torch.Tensor,
        t: torch.Tensor,
        model_kwargs: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """Guided mean μ + Σ·cond_fn(x, t_model, **model_kwargs) (SPEC §7)."""
        t = self._check_t(t, x)
        grad = cond_fn(x, self._model_timesteps(t, compute_dtype(x.dtype)), **(model_kwargs or {}))
        return steps.condition_mean(p_mean_var, grad)

    def condition_score(
        self,
        cond_fn: CondFn,
        p_mean_var: dict[str, torch.Tensor],
        x: torch.Tensor,
        t: torch.Tensor,
        model_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Guided score ε̂ − √(1 − ᾱ_t)·cond_fn(...) and the x̂_0, mean it implies (SPEC §7)."""
        t = self._check_t(t, x)
        grad = cond_fn(x, self._model_timesteps(t, compute_dtype(x.dtype)), **(model_kwargs or {}))
        return steps.condition_score(self.tables_for(x), p_mean_var, x, t, grad)

    def p_sample(
        self,
        model: Model,
        x: torch.Tensor,
        t: torch.Tensor,
        clip_denoised: bool = True,
        denoised_fn: DenoisedFn | None = None,
        cond_fn: CondFn | None = None,
        model_kwargs: dict[str, Any] | None = None,
        noise: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """One ancestral step x_t → x_{t−1} [S29]: keys sample, pred_xstart."""
        t = self._check_t(t, x)
        out = self.p_mean_variance(model, x, t, clip_denoised, denoised_fn, model_kwargs)
        if cond_fn is not None:
            out["mean"] = self.condition_mean(cond_fn, out, x, t, model_kwargs)
        z = draw_noise(out["mean"], noise, generator)
        return {"sample": steps.p_sample_step(out, t, z), "pred_xstart": out["pred_xstart"]}

    def ddim_sample(
        self,
        model: Model,
        x: torch.Tensor,
        t: torch.Tensor,
        clip_denoised: bool = True,
        denoised_fn: DenoisedFn | None = None,
        cond_fn: CondFn | None = None,
        model_kwargs: dict[str, Any] | None = None,
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """One DDIM step x_t → x_{t−1} with stochasticity η [S30]: keys sample, pred_xstart."""
        steps.check_eta(eta)
        t = self._check_t(t, x)
        out = self.p_mean_variance(model, x, t, clip_denoised, denoised_fn, model_kwargs)
        if cond_fn is not None:
            out = self.condition_score(cond_fn, out, x, t, model_kwargs)
        tab = self.tables_for(x)
        if noise is None and eta == 0.0:
            z = torch.zeros_like(out["pred_xstart"])  # σ = 0: no draw needed
        else:
            z = draw_noise(out["pred_xstart"], noise, generator)
        return {"sample": steps.ddim_step(tab, out, x, t, z, eta), "pred_xstart": out["pred_xstart"]}

    def ddim_reverse_sample(
        self,
        model: Model,
        x: torch.Tensor,
        t: torch.Tensor,
        clip_denoised: bool = True,
        denoised_fn: DenoisedFn | None = None,
        model_kwargs: dict[str, Any] | None = None,
        eta: float = 0.0,
    ) -> dict[str, torch.Tensor]:
        """One deterministic DDIM inversion step x_t → x_{t+1} [S31]: keys sample, pred_xstart."""
        if eta != 0.0:
            raise ValueError(
                f"eta must be 0.0 for ddim_reverse_sample (the inversion is deterministic), got {eta}"
            )
        t = self._check_t(t, x)
        out = self.p_mean_variance(model, x, t, clip_denoised, denoised_fn, model_kwargs)
        sample = steps.ddim_reverse_step(self.tables_for(x), out, x, t)
        return {"sample": sample, "pred_xstart": out["pred_xstart"]}

    # ---- objectives and likelihood ------------------------------------------------------------
    def training_losses(
        self,
        model: Model,
        x_start: torch.Tensor,
        t: torch.Tensor,
        model_kwargs: dict[str, Any] | None = None,
        noise: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per-sample training losses [S21]–[S23]: `loss` and, where they apply, `mse`, `vb` (each (B,))."""
        t = self._check_t(t, x_start)
        eps = draw_noise(x_start, noise, generator)
        tab = self.tables_for(x_start)
        x_t = process.q_sample(tab, x_start, t, eps)
        model_output = self._run_model(model, x_t, t, model_kwargs)
        return objectives.training_losses(
            tab,
            model_output,
            x_start,
            x_t,
            t,
            eps,
            model_mean_type=self.model_mean_type,
            model_var_type=self.model_var_type,
            loss_type=self.loss_type,
            loss_weighting=self.loss_weighting,
            min_snr_gamma=self.min_snr_gamma,
            vlb_weight=self.vlb_weight,
        )

    def vb_terms_bpd(
        self,
        model: Model,
        x_start: torch.Tensor,
        x_t: torch.Tensor,
        t: torch.Tensor,
        clip_denoised: bool = True,
        model_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, torch.Tensor]:
        """The VLB term at t in bits/dim [S18]: keys output (B,), pred_xstart."""
        t = self._check_t(t, x_t)
        model_output = self._run_model(model, x_t, t, model_kwargs)
        return objectives.vb_term_bpd(
            self.tables_for(x_t),
            model_output,
            x_start,
            x_t,
            t,
            model_mean_type=self.model_mean_type,
            model_var_type=self.model_var_type,
            clip_denoised=clip_denoised,
        )

    _vb_terms_bpd = vb_terms_bpd  # the original's (private) name

    def prior_bpd(self, x_start: torch.Tensor) -> torch.Tensor:
        """The prior term L_T in bits/dim [S19], shape (B,)."""
        return objectives.prior_bpd(self.tables_for(x_start), x_start)

    _prior_bpd = prior_bpd  # the original's (private) name
