"""The training configuration: one frozen-in-spirit dataclass, validated, JSON round-trippable."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from impl.train.optimizer import OPTIMIZER_IMPLS as OPTIMIZER_IMPLS
from impl.train.optimizer import check_optimizer_impl

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
SCHEDULE_SAMPLERS: tuple[str, ...] = ("uniform", "loss-second-moment")
# What `compile=True` hands to torch.compile: the network alone, or the whole per-sample loss function
# (q_sample → network → L_simple / L_vlb / L_hybrid) as one graph.
COMPILE_SCOPES: tuple[str, ...] = ("model", "loss")
COMPILE_BACKENDS: tuple[str, ...] = ("inductor", "aot_eager", "eager")
# "" leaves torch.compile's mode unset (its default); the named modes are inductor's.
COMPILE_MODES: tuple[str, ...] = (
    "",
    "default",
    "reduce-overhead",
    "max-autotune",
    "max-autotune-no-cudagraphs",
)


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
    microbatching).  ``lr_anneal_steps`` is the horizon of the linear LR decay (0: constant LR).
    ``optimizer_impl``, ``channels_last``, ``allow_tf32`` and ``cudnn_benchmark`` are speed switches (see
    docs/training.md); the first two keep the float32 arithmetic up to rounding, TF32 does not.
    ``compile_scope`` ("model": the network; "loss": the network and the whole diffusion loss as one
    graph), ``compile_backend`` and ``compile_mode`` (passed to ``torch.compile``) matter only with
    ``compile=True``.
    ``recompute_norms`` reruns the U-Net's GroupNorm → scale-shift → SiLU → dropout segments in the
    backward pass instead of storing them (same values, less activation memory; ``impl.nn.recompute``).
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
    keep_checkpoints: int = 2
    random_flip: bool = False
    progress: bool = True
    device: str = "auto"
    optimizer_impl: str = "auto"
    channels_last: bool = False
    recompute_norms: bool = False
    allow_tf32: bool = False
    cudnn_benchmark: bool = False
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
        parse_ema_rates(self.ema_rate)
        if self.schedule_sampler not in SCHEDULE_SAMPLERS:
            raise ValueError(
                f"schedule_sampler must be one of {SCHEDULE_SAMPLERS}, got {self.schedule_sampler!r}"
            )
        if not self.grad_clip >= 0.0:
            raise ValueError(f"grad_clip must be >= 0 (0: no clipping), got {self.grad_clip}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        _one_of("compile_scope", self.compile_scope, COMPILE_SCOPES)
        _one_of("compile_backend", self.compile_backend, COMPILE_BACKENDS)
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
        _positive_int("keep_checkpoints", self.keep_checkpoints)
        check_optimizer_impl(self.optimizer_impl)
        for name in ("channels_last", "allow_tf32", "cudnn_benchmark"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        _check_eval(self)

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


def _one_of(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _finite_nonneg(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
