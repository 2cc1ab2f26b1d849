"""Builders shared by the benchmarks: models, diffusions, trainers and inputs in a given mode.

Each builder applies a mode through the library's own switches (``attention_backend``, ``TrainConfig``
``precision`` / ``compile`` / ``optimizer_impl`` / ``channels_last`` / ``allow_tf32`` / ``cudnn_benchmark``,
``AutocastModel``) so both modes run the same code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from benchmarks.configs import ModelConfig
from benchmarks.harness import Mode, maybe_compile, module_to_memory_format
from impl.commands.generation import inference_model as library_inference_model
from impl.commands.generation import step_runner_for
from impl.diffusion import GaussianDiffusion, create_named_schedule_sampler
from impl.factory import create_model_and_diffusion
from impl.nn.attention import AttentionBlock
from impl.nn.unet import UNetModel, set_attention_backend
from impl.sampling.compiled import CompiledStepRunner
from impl.train import AutocastModel, DistContext, InMemoryData, PrecisionPolicy, TrainConfig, Trainer

PAPER_LR = 1e-4
PAPER_EMA_RATE = "0.9999"


def precision_of(mode: Mode) -> str:
    """The ``TrainConfig.precision`` / ``PrecisionPolicy`` name of the mode's autocast dtype."""
    if mode.autocast_dtype is None:
        return "fp32"
    if mode.autocast_dtype == torch.bfloat16:
        return "bf16"
    if mode.autocast_dtype == torch.float16:
        return "fp16"
    raise ValueError(f"mode.autocast_dtype must be None, bfloat16 or float16, got {mode.autocast_dtype}")


def attention_backend_of(mode: Mode) -> str:
    """``"sdpa"`` for modes with SDPA attention, else the original einsum formulation ``"naive"``."""
    return "sdpa" if mode.sdpa_attention else "naive"


def build_model_and_diffusion(
    config: ModelConfig, mode: Mode, device: torch.device, *, timestep_respacing: str = ""
) -> tuple[UNetModel, GaussianDiffusion]:
    """``create_model_and_diffusion(**flags)`` on ``device``, channels-last when the mode asks for it."""
    flags = {**config.flags, "timestep_respacing": timestep_respacing}
    model, diffusion = create_model_and_diffusion(**flags, attention_backend=attention_backend_of(mode))
    model = module_to_memory_format(model.to(device), mode)
    return model, diffusion


def inference_model(model: nn.Module, mode: Mode, device: torch.device) -> nn.Module:
    """The network as the samplers call it: compiled when the mode compiles, run under the mode's autocast
    by the library's ``AutocastModel`` (which returns float32, so the diffusion math stays float32)."""
    model.eval()
    inner: Any = maybe_compile(model, mode)
    return AutocastModel(inner, PrecisionPolicy.create(precision_of(mode), device))


def sampling_network(
    model: nn.Module, mode: Mode, device: torch.device
) -> tuple[nn.Module, CompiledStepRunner | None]:
    """The network and step runner the sampling loops get in ``mode``.

    With ``mode.compiled_sampling_step`` the whole reverse step (network, p_mean_variance, noise add) is
    compiled as one graph by the library's ``CompiledStepRunner`` (CUDA graphs via "reduce-overhead" on
    CUDA), so the network inside it stays uncompiled; otherwise the network alone is compiled when the mode
    compiles and the loop runs the diffusion arithmetic eagerly.
    """
    if not mode.compiled_sampling_step:
        return inference_model(model, mode, device), None
    # exactly what `iddpm sample --precision … --channels_last … --compile True` builds
    net = library_inference_model(
        model.eval(), precision=precision_of(mode), channels_last=mode.channels_last, device=device
    )
    return net, step_runner_for(True, mode.compile_backend)


@contextlib.contextmanager
def naive_attention(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily switch every attention block to the einsum backend (FLOP counting sees its matmuls)."""
    saved = [
        (block, block.attention_backend) for block in model.modules() if isinstance(block, AttentionBlock)
    ]
    set_attention_backend(model, "naive")
    try:
        yield model
    finally:
        for block, backend in saved:
            block.attention_backend = backend


def random_images(shape: tuple[int, ...], device: torch.device, *, seed: int = 0) -> torch.Tensor:
    """Uniform random data in [-1, 1) (never zeros: they hide bugs and can time faster than real data)."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0).to(device)


def prefill_loss_history(sampler: Any, num_timesteps: int, *, seed: int = 0) -> None:
    """Give a loss-aware sampler a full history (K losses for every t), so timing sees the importance-
    sampling steady state instead of the uniform warm-up phase."""
    per_term = int(getattr(sampler, "history_per_term", 10))
    generator = torch.Generator(device="cpu").manual_seed(seed)
    ts = torch.arange(num_timesteps).repeat(per_term)
    losses = torch.rand(ts.shape[0], generator=generator, dtype=torch.float64) + 0.05
    sampler.update_with_all_losses(ts, losses)


def build_trainer(
    config: ModelConfig, mode: Mode, device: torch.device, *, batch_size: int, data_items: int
) -> Trainer:
    """A ``Trainer`` with the paper's recipe (L_hybrid, loss-second-moment sampler, EMA 0.9999, lr 1e-4)
    on random 8-bit images, in the given mode.

    The mode's optimizer kernels (fused in the fast mode, the plain for-loop AdamW in the eager baseline),
    layout, norm recomputation, compilation (the whole per-sample loss as one graph: ``compile_scope
    "loss"``) and TF32 / cuDNN-autotune settings go through ``TrainConfig``; the Trainer converts the model,
    the batch and the noise to channels-last itself.
    """
    model, diffusion = build_model_and_diffusion(config, mode, device)
    generator = torch.Generator(device="cpu").manual_seed(0)
    size = config.image_size
    pixels = torch.randint(0, 256, (data_items, config.channels, size, size), generator=generator)
    data = InMemoryData(pixels.to(torch.uint8))
    train_config = TrainConfig(
        batch_size=batch_size,
        lr=PAPER_LR,
        ema_rate=PAPER_EMA_RATE,
        schedule_sampler="loss-second-moment",
        precision=precision_of(mode),
        compile=mode.compile,
        compile_scope="loss",
        compile_backend=mode.compile_backend,
        progress=False,
        device=str(device),
        optimizer_impl="fused" if mode.fused_optimizer else "for-loop",
        channels_last=mode.channels_last,
        recompute_norms=mode.recompute_norms,
        allow_tf32=mode.tf32,
        cudnn_benchmark=mode.cudnn_benchmark,
        model_flags=dict(config.flags),
    )
    sampler = create_named_schedule_sampler("loss-second-moment", diffusion)
    prefill_loss_history(sampler, diffusion.num_timesteps)
    return Trainer(
        model=model,
        diffusion=diffusion,
        data=data,
        config=train_config,
        ctx=DistContext(device=device),
        schedule_sampler=sampler,
    )
