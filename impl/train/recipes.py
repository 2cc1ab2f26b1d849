"""The paper's training recipes by name: every flag of each released-checkpoint run (PAPER.md's table).

A recipe is a mapping flag name → value over both flag families of ``iddpm train``: the model/diffusion
flags (``impl.factory.model_and_diffusion_defaults``) and the training flags (``TrainConfig``).  The paper's
recipes start from the ORIGINAL defaults (64×64 ImageNet-sized model, constant learning rate, EMA 0.9999,
no clipping), not from this CLI's CPU-sized ones, so every flag the CLI changes for its digits demo is
restored.  ``digits-demo`` is the CLI's own defaults (what ``iddpm train`` runs with no flags).

Explicit command-line flags override a recipe's values (``impl.commands.train``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["RECIPES", "Recipe", "get_recipe", "recipe_names"]


@dataclass(frozen=True)
class Recipe:
    """A named set of flags; ``params_millions``, ``iterations``: the paper's figures (None: not given)."""

    name: str
    summary: str
    flags: Mapping[str, Any] = field(default_factory=dict)
    params_millions: float | None = None
    iterations: int | None = None


def _original_model_flags() -> dict[str, Any]:
    from impl.factory import model_and_diffusion_defaults

    return model_and_diffusion_defaults()


# What every released-checkpoint run shares (PAPER.md: "All use, unless a row overrides it"), plus the run
# control this library chooses for runs of that length (the original saved every 10,000 steps).
_PAPER_TRAINING: dict[str, Any] = {
    "num_heads": 4,
    "attention_resolutions": "16,8",
    "use_scale_shift_norm": True,
    "rescale_timesteps": True,
    "rescale_learned_sigmas": True,
    "weight_decay": 0.0,
    "lr_schedule": "constant",
    "lr_anneal_steps": 0,
    "lr_warmup_steps": 0,
    "ema_rate": "0.9999",
    "ema_warmup": False,
    "grad_clip": 0.0,
    "precision": "fp32",
    "schedule_sampler": "uniform",
    "microbatch": -1,
    "random_flip": False,
    # run control (not the paper's; chosen for runs of 10^5–10^6 steps)
    "log_interval": 100,
    "save_interval": 10000,
    "sample_interval": 10000,
    "grid_respacing": "100",
}


def _paper(**overrides: Any) -> dict[str, Any]:
    flags = _original_model_flags()
    flags.update(_PAPER_TRAINING)
    flags.update(overrides)
    return flags


_CIFAR10 = {
    "image_size": 32,
    "num_channels": 128,
    "num_res_blocks": 3,
    "learn_sigma": True,
    "dropout": 0.3,
    "diffusion_steps": 4000,
    "noise_schedule": "cosine",
    "lr": 1e-4,
    "batch_size": 128,
    "max_steps": 500_000,
}
_IMAGENET64 = {
    "image_size": 64,
    "num_channels": 128,
    "num_res_blocks": 3,
    "learn_sigma": True,
    "diffusion_steps": 4000,
    "noise_schedule": "cosine",
    "lr": 1e-4,
    "batch_size": 128,
    "max_steps": 1_500_000,
}
_VLB = {"use_kl": True, "schedule_sampler": "loss-second-moment"}


_RUN_SPECIFIC = (
    "data",
    "out_dir",
    "data_loader",
    "num_workers",
    "device",
    "progress",
    "compile",
    "compile_scope",
    "compile_backend",
    "compile_mode",
    "optimizer_impl",
    "channels_last",
    "recompute_norms",
    "allow_tf32",
    "cudnn_benchmark",
)


def _digits_demo_flags() -> dict[str, Any]:
    from impl.factory import train_model_defaults
    from impl.train.config import TrainConfig

    flags = train_model_defaults()
    flags.update({k: v for k, v in TrainConfig().to_dict().items() if k not in ("model_flags", "recipe")})
    # Not part of the recipe: where to read and write, speed switches, and lr_anneal_steps (the CLI's
    # default is max_steps, so --recipe digits-demo --max_steps N decays over N steps as without it).
    for name in (*_RUN_SPECIFIC, "lr_anneal_steps"):
        flags.pop(name, None)
    return flags


def _build() -> dict[str, Recipe]:
    recipes = [
        Recipe(
            "digits-demo",
            "the CLI's defaults: a ~1M-parameter L_hybrid model on the embedded 8×8 digits, minutes on a CPU",
            _digits_demo_flags(),
        ),
        Recipe(
            "cifar10-hybrid",
            "CIFAR-10, L_hybrid, learned Σ, cosine T=4000, dropout 0.3",
            _paper(**_CIFAR10),
            52.55,
            500_000,
        ),
        Recipe(
            "cifar10-vlb",
            "CIFAR-10, L_vlb with the loss-second-moment sampler",
            _paper(**_CIFAR10, **_VLB),
            52.55,
            500_000,
        ),
        Recipe(
            "imagenet64-hybrid",
            "unconditional ImageNet 64×64, L_hybrid",
            _paper(**_IMAGENET64),
            121.06,
            1_500_000,
        ),
        Recipe(
            "imagenet64-vlb",
            "unconditional ImageNet 64×64, L_vlb with the loss-second-moment sampler",
            _paper(**_IMAGENET64, **_VLB),
            121.06,
            1_500_000,
        ),
        Recipe(
            "imagenet64-cond-270m",
            "class-conditional ImageNet 64×64, 192 channels (270M), batch 2048",
            _paper(
                **{
                    **_IMAGENET64,
                    "num_channels": 192,
                    "class_cond": True,
                    "rescale_learned_sigmas": False,
                    "rescale_timesteps": False,
                    "lr": 3e-4,
                    "batch_size": 2048,
                    "max_steps": 250_000,
                }
            ),
            273.05,
            250_000,
        ),
        Recipe(
            "lsun-bedroom",
            "LSUN bedroom 256×256, linear T=1000",
            _paper(
                image_size=256,
                num_channels=128,
                num_res_blocks=2,
                num_heads=1,
                learn_sigma=True,
                use_scale_shift_norm=False,
                attention_resolutions="16",
                diffusion_steps=1000,
                noise_schedule="linear",
                rescale_learned_sigmas=False,
                rescale_timesteps=False,
                lr=1e-4,
                batch_size=128,
                max_steps=1_200_000,
            ),
            113.68,
            1_200_000,
        ),
    ]
    return {
        r.name: Recipe(r.name, r.summary, MappingProxyType(dict(r.flags)), r.params_millions, r.iterations)
        for r in recipes
    }


RECIPES: Mapping[str, Recipe] = MappingProxyType(_build())


def recipe_names() -> tuple[str, ...]:
    return tuple(RECIPES)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name is a ValueError listing the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"--recipe {name!r} is not a known recipe; known: {', '.join(RECIPES)}") from None
