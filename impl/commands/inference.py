"""Loading a trained model for ``iddpm sample`` / ``iddpm nll`` and drawing samples in seeded batches."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from impl.factory import build_diffusion, build_model_and_diffusion
from impl.runtime.compile import check_sampling_compile_backend
from impl.runtime.precision import AutocastModel, PrecisionPolicy, check_precision
from impl.runtime.seeding import derive_seed, seeded_generator
from impl.sampling.compiled import CompiledStepRunner
from impl.sampling.guidance_free import guided_network
from impl.train.checkpoint import (
    STATE_FILENAME,
    earlier_checkpoint_hint,
    find_checkpoint_dir,
    read_state_json,
)
from impl.train.config import ema_rate_name, parse_ema_rates
from impl.train.errors import CheckpointError, exception_line

# Flags a sampling/evaluation command may set differently from the training run.
INFERENCE_OVERRIDABLE = frozenset({"timestep_respacing", "use_checkpoint", "dropout"})


@dataclass
class LoadedModel:
    model: nn.Module
    diffusion: Any
    flags: dict[str, Any]
    weights: Path
    run_dir: Path | None


def load_for_inference(
    checkpoint: str,
    *,
    cli_flags: dict[str, Any],
    explicit_model: set[str],
    use_ema: bool,
    ema_rate: str,
    device: torch.device,
) -> LoadedModel:
    """The model and diffusion of a checkpoint.

    ``checkpoint`` is a run directory (its latest checkpoint), a ``checkpoints/step_N`` folder, one
    ``.safetensors`` file inside such a folder, or a state-dict file of the original code (``.pt``) or of
    any source, in which case the model flags come from the command line (``cli_flags``).
    ``timestep_respacing`` always comes from the command line.
    """
    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {checkpoint!r} does not exist")
    respacing = str(cli_flags.get("timestep_respacing", ""))
    if path.is_dir() or (path.parent / STATE_FILENAME).is_file():
        ckpt_dir = find_checkpoint_dir(path if path.is_dir() else path.parent)
        meta = read_state_json(ckpt_dir)
        try:
            flags = dict(meta["config"]["model_flags"])
            rates = [float(r) for r in meta["ema_rates"]]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{str(ckpt_dir / STATE_FILENAME)!r} lacks model_flags/ema_rates") from None
        for name in sorted(explicit_model - INFERENCE_OVERRIDABLE):
            if name in flags and cli_flags[name] != flags[name]:
                raise CheckpointError(
                    f"--{name}={cli_flags[name]!r} does not match the checkpoint's {flags[name]!r} "
                    "(model and diffusion flags come from the run; drop the flag)"
                )
        flags.update({k: cli_flags[k] for k in explicit_model & INFERENCE_OVERRIDABLE})
        flags["timestep_respacing"] = respacing
        weights = path if path.is_file() else _choose_weights(ckpt_dir, rates, use_ema, ema_rate)
        model, diffusion = build_model_and_diffusion(flags)
        _load_state(model, weights)
        return LoadedModel(model.to(device).eval(), diffusion, flags, weights, ckpt_dir.parent.parent)

    from impl.factory import load_checkpoint, model_flag_names

    flags = dict(cli_flags)
    model_flags = {k: flags[k] for k in model_flag_names() if k in flags}
    if not flags.get("class_cond"):
        model_flags.pop("num_classes", None)
    try:
        model = load_checkpoint(path, **model_flags)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, SafetensorError) as exc:
        raise CheckpointError(f"cannot read checkpoint {checkpoint!r}: {exception_line(exc)}") from None
    return LoadedModel(model.to(device).eval(), build_diffusion(flags), flags, path, None)


def _choose_weights(ckpt_dir: Path, rates: list[float], use_ema: bool, ema_rate: str) -> Path:
    if not use_ema:
        return ckpt_dir / "model.safetensors"
    if not rates:
        raise CheckpointError(f"{str(ckpt_dir)!r} holds no EMA weights; pass --use_ema False")
    rate = parse_ema_rates(ema_rate)[0] if ema_rate else rates[0]
    if rate not in rates:
        raise CheckpointError(f"--ema_rate {rate} is not in the checkpoint; it holds {rates}")
    return ckpt_dir / f"ema_{ema_rate_name(rate)}.safetensors"


def _load_state(model: nn.Module, weights: Path) -> None:
    try:
        state = load_file(str(weights), device="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {str(weights)!r} is missing") from None
    except (SafetensorError, OSError, ValueError) as exc:
        hint = earlier_checkpoint_hint(weights.parent)
        raise CheckpointError(
            f"checkpoint file {str(weights)!r} is corrupt: {exception_line(exc)}{hint}"
        ) from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{str(weights)!r} does not match the model: {exception_line(exc)}") from None


def inference_model(
    model: nn.Module, *, precision: str = "fp32", channels_last: bool = False, device: torch.device
) -> nn.Module:
    """The network as the samplers and the NLL bound should call it.

    With ``channels_last`` the weights are converted to ``torch.channels_last`` in place (same values;
    convolutions then run NHWC kernels whatever the input layout).  With ``precision`` bf16 or fp16 the
    network is wrapped in :class:`AutocastModel`, which runs it under autocast and returns float32, so the
    diffusion math stays float32; fp32 returns ``model`` itself.
    """
    check_precision(precision)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if precision == "fp32":
        return model
    return AutocastModel(model, PrecisionPolicy.create(precision, device))


def step_runner_for(compile: bool, backend: str = "inductor") -> CompiledStepRunner | None:
    """A :class:`CompiledStepRunner` on ``backend`` when ``compile`` is set (one whole reverse step per
    compiled call; CUDA graphs on CUDA with inductor), else None (the eager loop)."""
    check_sampling_compile_backend(backend)
    return CompiledStepRunner(backend=backend) if compile else None


@torch.no_grad()
def generate_samples(
    model: nn.Module,
    diffusion: Any,
    *,
    num_samples: int,
    batch_size: int,
    shape: tuple[int, int, int],
    use_ddim: bool = False,
    eta: float = 0.0,
    temperature: float = 1.0,
    init_temperature: float = 1.0,
    clip_denoised: bool = True,
    num_classes: int | None = None,
    class_label: int = -1,
    seed: int = 0,
    device: torch.device,
    progress: bool = True,
    precision: str = "fp32",
    channels_last: bool = False,
    compile: bool = False,
    compile_backend: str = "inductor",
    guidance_scale: float | None = None,
) -> tuple[np.ndarray[Any, np.dtype[np.uint8]], np.ndarray[Any, np.dtype[np.int64]] | None]:
    """``num_samples`` images as uint8 NHWC (and labels for a class-conditional model).

    Batch ``k`` uses a generator seeded by ``(seed, k)``: the output does not depend on anything else.
    Labels are uniform over the classes (or all ``class_label`` when it is >= 0).

    Speed options (the defaults are the plain path): ``precision`` bf16/fp16 runs the network under
    autocast (:func:`inference_model`; the diffusion math stays float32); ``channels_last`` converts the
    model in place and draws x_T channels-last (same values); ``compile`` runs each reverse step through a
    :class:`CompiledStepRunner` on ``compile_backend``, which draws the same noise as the eager loop.
    ``temperature`` τ scales each step's noise [S45], ``init_temperature`` τ₀ the starting noise [S46].
    ``guidance_scale`` w (a model trained with ``class_dropout_prob > 0``): classifier-free guidance with
    the null label ``num_classes`` [S50], wrapped around the (autocast) network.
    """
    if num_samples < 1 or batch_size < 1:
        raise ValueError(f"num_samples and batch_size must be positive, got {num_samples}, {batch_size}")
    if num_classes is not None and class_label >= num_classes:
        raise ValueError(f"class_label must be -1 (random) or in [0, {num_classes}), got {class_label}")
    runner = step_runner_for(compile, compile_backend)
    net = inference_model(model, precision=precision, channels_last=channels_last, device=device)
    net = guided_network(net, guidance_scale, num_classes)
    images: list[np.ndarray[Any, np.dtype[np.uint8]]] = []
    labels: list[np.ndarray[Any, np.dtype[np.int64]]] = []
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=num_samples, desc="sample", unit="img", dynamic_ncols=True)
    for k, start in enumerate(range(0, num_samples, batch_size)):
        n = min(batch_size, num_samples - start)
        gen = seeded_generator(derive_seed(seed, k), device)
        kwargs: dict[str, Any] = {}
        if num_classes is not None:
            if class_label >= 0:
                y = torch.full((n,), class_label, dtype=torch.int64, device=device)
            else:
                y = torch.randint(0, num_classes, (n,), generator=gen, device=device)
            kwargs["y"] = y
            labels.append(y.cpu().numpy().astype(np.int64))
        # x_T: the draw the loop itself would make from ``gen``, laid out channels-last when asked.
        noise = torch.randn((n, *shape), generator=gen, device=device)
        if channels_last:
            noise = noise.contiguous(memory_format=torch.channels_last)
        loop = diffusion.ddim_sample_loop if use_ddim else diffusion.p_sample_loop
        extra: dict[str, Any] = {"eta": eta} if use_ddim else {}
        x = loop(
            net,
            (n, *shape),
            noise=noise,
            clip_denoised=clip_denoised,
            model_kwargs=kwargs,
            progress=False,
            generator=gen,
            device=device,
            step_runner=runner,
            temperature=temperature,
            init_temperature=init_temperature,
            **extra,
        )
        pixels = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
        images.append(np.ascontiguousarray(pixels.cpu().numpy()))
        if bar is not None:
            bar.update(n)
    if bar is not None:
        bar.close()
    return np.concatenate(images), (np.concatenate(labels) if labels else None)
