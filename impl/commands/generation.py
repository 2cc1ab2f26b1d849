"""Drawing samples in seeded batches for ``iddpm sample``: the network as the samplers call it (precision,
layout, guidance wrappers), the step runner, and the batch loop that feeds every progressive loop (from
noise, or an edit of init images) through a step observer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from impl.commands.editing import EditInputs
from impl.diffusion.types import CondFn
from impl.runtime.compile import check_sampling_compile_backend
from impl.runtime.precision import AutocastModel, PrecisionPolicy, check_precision
from impl.runtime.seeding import derive_seed, seeded_generator
from impl.sampling.classifier_guidance import WithoutLabels
from impl.sampling.compiled import CompiledStepRunner
from impl.sampling.guidance_free import guided_network
from impl.sampling.trajectory import BatchStepObserver, observed, to_uint8_nhwc

# The seed stream of the guidance labels of an unconditional model (batch k: derive_seed(seed, k, this)),
# apart from the batch's own generator so x_T and every step's noise are those of unguided sampling.
GUIDANCE_LABEL_STREAM = 1


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
    observer: BatchStepObserver | None = None,
    edit: EditInputs | None = None,
    cond_fn: CondFn | None = None,
    guidance_classes: int | None = None,
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
    ``observer`` sees every step dict of each batch's progressive loop (``impl.sampling.trajectory``;
    e.g. a trajectory writer); it cannot change the samples.
    With ``edit`` each sample edits its init image instead (img2img / inpainting, `impl.commands.editing`;
    labels from the images' arr_1 when they have them and ``class_label`` is -1).
    Classifier guidance: ``cond_fn`` (``impl.commands.classifier_guidance``) gets the labels as
    ``model_kwargs["y"]``; on an unconditional model they are drawn over ``guidance_classes`` from their
    own seed stream (or all ``class_label``) and kept from the network, so x_T and the step noise are
    unguided sampling's; with ``edit`` whose images have labels (arr_1) and ``class_label`` -1, those labels
    are the guidance targets instead (checked against ``guidance_classes`` before any batch).
    ``guidance_scale`` w (a model trained with ``class_dropout_prob > 0``): classifier-free guidance with
    the null label ``num_classes`` [S50], wrapped around the (autocast) network.
    """
    if num_samples < 1 or batch_size < 1:
        raise ValueError(f"num_samples and batch_size must be positive, got {num_samples}, {batch_size}")
    label_classes = num_classes if num_classes is not None else guidance_classes
    if label_classes is not None and class_label >= label_classes:
        raise ValueError(f"class_label must be -1 (random) or in [0, {label_classes}), got {class_label}")
    if compile and cond_fn is not None:
        raise ValueError("compile does not support a guidance cond_fn (autograd inside the traced step)")
    runner = step_runner_for(compile, compile_backend)
    net = inference_model(model, precision=precision, channels_last=channels_last, device=device)
    if num_classes is None and guidance_classes is not None:
        net = WithoutLabels(net)
    net = guided_network(net, guidance_scale, num_classes)
    if edit is not None and num_classes is None and guidance_classes is not None and class_label < 0:
        edit.check_guidance_labels(guidance_classes)  # the init images' labels become guidance targets
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
            elif edit is not None and (known := edit.labels_of(start, n)) is not None:
                y = torch.from_numpy(known).to(device)
            else:
                y = torch.randint(0, num_classes, (n,), generator=gen, device=device)
            kwargs["y"] = y
            labels.append(y.cpu().numpy().astype(np.int64))
        elif guidance_classes is not None:
            label_gen = seeded_generator(derive_seed(seed, k, GUIDANCE_LABEL_STREAM), device)
            if class_label >= 0:
                y = torch.full((n,), class_label, dtype=torch.int64, device=device)
            elif edit is not None and (targets := edit.labels_of(start, n)) is not None:
                y = torch.from_numpy(targets).to(device)  # the init images' own labels
            else:
                y = torch.randint(0, guidance_classes, (n,), generator=label_gen, device=device)
            kwargs["y"] = y
            labels.append(y.cpu().numpy().astype(np.int64))
        if edit is not None:  # img2img / inpainting of the batch's init images
            fallback, steps = edit.edit_steps(
                diffusion,
                net,
                start,
                n,
                use_ddim=use_ddim,
                eta=eta,
                temperature=temperature,
                clip_denoised=clip_denoised,
                model_kwargs=kwargs,
                generator=gen,
                device=device,
                step_runner=runner,
                channels_last=channels_last,
                cond_fn=cond_fn,
            )
        else:
            fallback, steps = (
                None,
                _noise_steps(
                    diffusion,
                    net,
                    (n, *shape),
                    gen,
                    device,
                    use_ddim=use_ddim,
                    eta=eta,
                    temperature=temperature,
                    init_temperature=init_temperature,
                    clip_denoised=clip_denoised,
                    model_kwargs=kwargs,
                    step_runner=runner,
                    channels_last=channels_last,
                    cond_fn=cond_fn,
                ),
            )
        if observer is not None:
            observer.begin_batch(start, n)
        final = fallback
        for out in observed(steps, observer):
            final = out["sample"]
        if final is None:
            raise ValueError("the diffusion has no timesteps to sample")
        images.append(to_uint8_nhwc(final))
        if observer is not None:
            observer.end_batch()
        if bar is not None:
            bar.update(n)
    if bar is not None:
        bar.close()
    return np.concatenate(images), (np.concatenate(labels) if labels else None)


def _noise_steps(
    diffusion: Any,
    net: Any,
    shape: tuple[int, ...],
    gen: torch.Generator,
    device: torch.device,
    *,
    use_ddim: bool,
    eta: float,
    temperature: float,
    init_temperature: float,
    clip_denoised: bool,
    model_kwargs: dict[str, Any],
    step_runner: Any,
    channels_last: bool,
    cond_fn: CondFn | None,
) -> Iterator[dict[str, torch.Tensor]]:
    """The progressive ancestral or DDIM loop of one batch from x_T drawn from ``gen``."""
    # x_T: the draw the loop itself would make from ``gen``, laid out channels-last when asked.
    noise = torch.randn(shape, generator=gen, device=device)
    if channels_last:
        noise = noise.contiguous(memory_format=torch.channels_last)
    loop = diffusion.ddim_sample_loop_progressive if use_ddim else diffusion.p_sample_loop_progressive
    extra: dict[str, Any] = {"eta": eta} if use_ddim else {}
    steps: Iterator[dict[str, torch.Tensor]] = loop(
        net,
        shape,
        noise=noise,
        clip_denoised=clip_denoised,
        model_kwargs=model_kwargs,
        progress=False,
        generator=gen,
        device=device,
        step_runner=step_runner,
        temperature=temperature,
        init_temperature=init_temperature,
        cond_fn=cond_fn,
        **extra,
    )
    return steps
