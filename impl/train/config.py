"""The training configuration: one frozen-in-spirit dataclass, validated, JSON round-trippable."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from impl.data.choices import DATA_LOADERS as DATA_LOADERS
from impl.diffusion.resample import SAMPLER_NAMES
from impl.runtime.compile import COMPILE_MODES, COMPILE_SCOPES, TRAINING_COMPILE_BACKENDS
from impl.runtime.precision import check_precision
from impl.train.ema import warmup_decay
from impl.train.lr import check_lr_schedule, scheduled_lr
from impl.train.optimizer import OPTIMIZER_IMPLS as OPTIMIZER_IMPLS
from impl.train.optimizer import check_optimizer_impl

SCHEDULE_SAMPLERS: tuple[str, ...] = SAMPLER_NAMES
"""The names ``schedule_sampler`` takes: those ``create_named_schedule_sampler`` knows (one definition)."""


def parse_ema_rates(spec: str) -> tuple[float, ...]:
    """Parse ``"0.9999,0.999"`` into rates; each must lie in [0, 1) and appear once."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"ema_rate must list at least one rate in [0, 1), got {spec!r}")
    rates: list[float] = []
    for part in parts:
        try:
            rate = float(part)
        except ValueError:
            raise ValueError(f"ema_rate must be comma-separated floats in [0, 1), got {spec!r}") from None
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"ema_rate entries must lie in [0, 1), got {rate!r} in {spec!r}")
        if rate in rates:
            raise ValueError(f"ema_rate lists {rate!r} twice in {spec!r}")
        rates.append(rate)
    return tuple(rates)


def ema_rate_name(rate: float) -> str:
    """The canonical text of a rate used in file names (``0.9999`` -> ``"0.9999"``)."""
    return repr(float(rate))


@dataclass
class TrainConfig:
    """Every training setting that is not part of the model and diffusion flags.

    ``batch_size`` is the GLOBAL batch (split evenly across ranks); ``microbatch`` is per rank (-1 or 0: no
    microbatching).  ``lr_schedule`` (constant, linear, cosine) decays the LR to 0 at ``lr_anneal_steps`` (for
    linear, 0 means constant: the original flag) after ``lr_warmup_steps`` of linear warm-up from 0.
    ``ema_warmup`` replaces the fixed EMA rates by ``min(rate, 1 − (1 + step/ema_inv_gamma)^−ema_power)``.
    ``grid_scale`` enlarges the sample grids' PNGs (0: auto, 1: off; ``impl.data.writers``).
    ``recipe`` names the preset the flags came from (``impl.train.recipes``; "" for none).
    ``optimizer_impl``, ``channels_last``, ``allow_tf32`` and ``cudnn_benchmark`` are speed switches (see
    docs/training.md); the first two keep the float32 arithmetic up to rounding, TF32 does not.
    ``compile_scope`` ("model": the network; "loss": the network and the whole diffusion loss as one
    graph), ``compile_backend`` and ``compile_mode`` (passed to ``torch.compile``) matter only with
    ``compile=True``.
    ``recompute_norms`` reruns the U-Net's GroupNorm → scale-shift → SiLU → dropout segments in the
    backward pass instead of storing them (same values, less activation memory; ``impl.nn.recompute``).
    ``data_loader`` ("auto": by size; "memory"; "stream") and ``num_workers`` (DataLoader workers decoding
    ahead of the trainer) choose how the data is read (docs/data.md).
    ``max_nonfinite_steps``: with fp16 loss scaling, the number of consecutive skipped (non-finite) steps
    tolerated before the run is stopped as diverged; without loss scaling the first non-finite loss or
    gradient stops it (``impl.train.divergence``).
    ``model_flags`` holds the model_and_diffusion flags the model was built with.
    """

    data: str = "digits:train"
    out_dir: str = ""
    batch_size: int = 64
    microbatch: int = -1
    lr: float = 1e-3
    weight_decay: float = 0.0
    max_steps: int = 1000
    lr_anneal_steps: int = 1000
    ema_rate: str = "0.995"
    ema_warmup: bool = False
    ema_inv_gamma: float = 1.0
    ema_power: float = 2.0 / 3.0
    lr_schedule: str = "linear"
    lr_warmup_steps: int = 0
    recipe: str = ""
    schedule_sampler: str = "uniform"
    grad_clip: float = 1.0
    precision: str = "fp32"
    compile: bool = False
    compile_scope: str = "model"
    compile_backend: str = "inductor"
    compile_mode: str = ""
    seed: int = 0
    log_interval: int = 50
    save_interval: int = 500
    sample_interval: int = 500
    num_grid_samples: int = 64
    grid_respacing: str = "100"
    grid_scale: int = 0
    keep_checkpoints: int = 2
    random_flip: bool = False
    progress: bool = True
    device: str = "auto"
    optimizer_impl: str = "auto"
    channels_last: bool = False
    recompute_norms: bool = False
    allow_tf32: bool = False
    cudnn_benchmark: bool = False
    data_loader: str = "auto"
    num_workers: int = 0
    max_nonfinite_steps: int = 50
    eval_interval: int = 0
    eval_samples: int = 1000
    eval_reference: str = ""
    eval_metrics: str = "fid"
    eval_inception_weights: str = ""
    model_flags: dict[str, Any] = field(default_factory=dict)

    @property
    def ema_rates(self) -> tuple[float, ...]:
        return parse_ema_rates(self.ema_rate)

    def validate(self, world_size: int = 1) -> None:
        """Raise ValueError naming the first bad field and the values it allows."""
        _positive_int("batch_size", self.batch_size)
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        if self.batch_size % world_size != 0:
            raise ValueError(
                f"batch_size (global) must be divisible by the number of processes {world_size}, "
                f"got {self.batch_size}"
            )
        local = self.batch_size // world_size
        if self.microbatch not in (-1, 0) and not 1 <= self.microbatch <= local:
            raise ValueError(
                f"microbatch must be -1/0 (off) or in [1, per-rank batch {local}], got {self.microbatch}"
            )
        _finite_nonneg("lr", self.lr)
        _finite_nonneg("weight_decay", self.weight_decay)
        _positive_int("max_steps", self.max_steps)
        if self.lr_anneal_steps < 0:
            raise ValueError(f"lr_anneal_steps must be >= 0 (0: constant LR), got {self.lr_anneal_steps}")
        _ = self.ema_rates  # parses and checks ema_rate
        check_lr_schedule(self.lr_schedule, self.lr_anneal_steps, self.lr_warmup_steps)
        if self.lr_schedule == "constant" and self.lr_warmup_steps > self.max_steps:
            raise ValueError(
                f"lr_warmup_steps {self.lr_warmup_steps} is beyond the run (max_steps {self.max_steps}); "
                "a decaying schedule's warm-up must end before lr_anneal_steps"
            )
        if not isinstance(self.ema_warmup, bool):
            raise ValueError(f"ema_warmup must be True or False, got {self.ema_warmup!r}")
        warmup_decay(0.5, 0, inv_gamma=self.ema_inv_gamma, power=self.ema_power)  # checks both
        if self.schedule_sampler not in SCHEDULE_SAMPLERS:
            raise ValueError(
                f"schedule_sampler must be one of {SCHEDULE_SAMPLERS}, got {self.schedule_sampler!r}"
            )
        if not self.grad_clip >= 0.0:
            raise ValueError(f"grad_clip must be >= 0 (0: no clipping), got {self.grad_clip}")
        check_precision(self.precision)
        _one_of("compile_scope", self.compile_scope, COMPILE_SCOPES)
        _one_of("compile_backend", self.compile_backend, TRAINING_COMPILE_BACKENDS)
        _one_of("compile_mode", self.compile_mode, COMPILE_MODES)
        if self.compile_mode not in ("", "default") and self.compile_backend != "inductor":
            raise ValueError(
                f"compile_mode {self.compile_mode!r} is an inductor mode: it needs compile_backend "
                f"'inductor', got compile_backend {self.compile_backend!r} (use compile_mode '' or 'default')"
            )
        _positive_int("log_interval", self.log_interval)
        for name in ("save_interval", "sample_interval", "num_grid_samples"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: off / only at the end), got {getattr(self, name)}")
        _check_grid_scale(self)
        _positive_int("keep_checkpoints", self.keep_checkpoints)
        _positive_int("max_nonfinite_steps", self.max_nonfinite_steps)
        check_optimizer_impl(self.optimizer_impl)
        _one_of("data_loader", self.data_loader, DATA_LOADERS)
        if (
            isinstance(self.num_workers, bool)
            or not isinstance(self.num_workers, int)
            or self.num_workers < 0
        ):
            raise ValueError(
                "num_workers must be an integer >= 0 (0: read in the training process), "
                f"got {self.num_workers!r}"
            )
        for name in ("channels_last", "allow_tf32", "cudnn_benchmark"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        self._check_eval()

    def _check_eval(self) -> None:
        """The ``eval_*`` fields (a subclass with another evaluation checks its own)."""
        _check_eval(self)

    def lr_at(self, step: int) -> float:
        """The learning rate of optimisation step ``step`` under this run's schedule."""
        return scheduled_lr(
            self.lr,
            step,
            schedule=self.lr_schedule,
            horizon=self.lr_anneal_steps,
            warmup_steps=self.lr_warmup_steps,
        )

    def ema_decays(self, step: int) -> dict[float, float] | None:
        """Per-rate EMA decay of update ``step`` with ``ema_warmup``; None: the fixed rates."""
        if not self.ema_warmup:
            return None
        return {
            r: warmup_decay(r, step, inv_gamma=self.ema_inv_gamma, power=self.ema_power)
            for r in self.ema_rates
        }

    @property
    def microbatch_size(self) -> int | None:
        return None if self.microbatch in (-1, 0) else self.microbatch

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict (e.g. a checkpoint's JSON); unknown keys are an error naming them, missing keys
        (a checkpoint written before the key existed) take their defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}; allowed: {sorted(known)}")
        return cls(**values)


EVAL_METRICS: tuple[str, ...] = ("fid", "sfid", "is", "prc", "kid")


def _check_eval(cfg: TrainConfig) -> None:
    """The ``eval_*`` fields (sample-quality evaluation every ``eval_interval`` steps; 0: off)."""
    if not isinstance(cfg.eval_interval, int) or cfg.eval_interval < 0:
        raise ValueError(f"eval_interval must be >= 0 (0: off), got {cfg.eval_interval!r}")
    if cfg.eval_interval == 0:
        return
    if not isinstance(cfg.eval_samples, int) or cfg.eval_samples < 2:
        raise ValueError(f"eval_samples must be an integer >= 2, got {cfg.eval_samples!r}")
    if not cfg.eval_reference:
        raise ValueError("eval_reference must name reference images or statistics when eval_interval > 0")
    names = [n.strip() for n in cfg.eval_metrics.split(",") if n.strip()]
    if not names or any(n not in EVAL_METRICS for n in names):
        raise ValueError(f"eval_metrics must list names from {EVAL_METRICS}, got {cfg.eval_metrics!r}")


def _check_grid_scale(cfg: TrainConfig) -> None:
    """``grid_scale``: an integer >= 0, and a factor that keeps the grid's PNG within the writer's limit."""
    from impl.data.writers import grid_shape, resolve_scale

    scale = cfg.grid_scale
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 0:
        raise ValueError(f"grid_scale must be an integer >= 0 (0: auto, 1: no enlargement), got {scale!r}")
    size = cfg.model_flags.get("image_size")
    if cfg.num_grid_samples > 0 and isinstance(size, int) and size > 0:
        resolve_scale(scale, (size, size), grid_shape(cfg.num_grid_samples, size, size), name="grid_scale")


def _one_of(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _finite_nonneg(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
