"""The NLL bound of a dataset in bits/dim [S20], averaged over images with standard errors.

``nll_bound`` runs ``diffusion.calc_bpd_loop`` over the first ``num_samples`` images of a dataset (in
stored order, without random flips) in batches, read through ``impl.data.ordered.OrderedImages`` (so a
streamed ``.npy`` or tar-shard set is read batch by batch, never held whole), and ``summarize_bpd_terms``
turns the per-image terms into a JSON-able report.  Standard errors are ``s / √n`` with ``s`` the sample
standard deviation (``ddof = 1``) over images; they are ``None`` when ``n = 1``.  The per-t terms and MSEs
are means over images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from impl.data.dataset import ImageDataset
from impl.data.images import to_model_range
from impl.data.ordered import OrderedImages
from impl.data.training_source import TrainingData

__all__ = ["BpdDiffusion", "nll_bound", "summarize_bpd_terms"]

BPD_KEYS = ("total_bpd", "prior_bpd", "vb", "xstart_mse", "mse")


class BpdDiffusion(Protocol):
    """What ``nll_bound`` needs of a diffusion: ``GaussianDiffusion`` and ``SpacedDiffusion`` provide it."""

    @property
    def num_timesteps(self) -> int: ...

    def calc_bpd_loop(
        self,
        model: Callable[..., torch.Tensor],
        x_start: torch.Tensor,
        clip_denoised: bool = ...,
        model_kwargs: dict[str, Any] | None = ...,
        *,
        generator: torch.Generator | None = ...,
        timestep_batch: int = ...,
    ) -> Mapping[str, torch.Tensor]: ...


def _mean_and_stderr(values: NDArray[np.float64]) -> tuple[float, float | None]:
    n = values.shape[0]
    mean = float(values.mean())
    if n < 2:
        return mean, None
    return mean, float(values.std(ddof=1) / math.sqrt(n))


def summarize_bpd_terms(terms: Mapping[str, NDArray[np.float64]]) -> dict[str, Any]:
    """Means over images (and ``std(ddof=1)/√n`` errors) of per-image bound terms, as a JSON-able dict.

    ``terms`` holds ``total_bpd``, ``prior_bpd`` (n,) and ``vb``, ``xstart_mse``, ``mse`` (n, T) as
    returned by ``calc_bpd_loop`` for n images, in its column order (timestep T − 1 first, as the original
    code).  The summary lists per-t values in ascending t; the decoder term is ``L_0`` [S18].
    """
    missing = [k for k in BPD_KEYS if k not in terms]
    if missing:
        raise ValueError(f"terms must hold {list(BPD_KEYS)}; missing {missing}")
    arrays = {k: np.asarray(terms[k], dtype=np.float64) for k in BPD_KEYS}
    for k in ("vb", "xstart_mse", "mse"):  # to ascending t: column t is timestep t from here on
        if arrays[k].ndim == 2:
            arrays[k] = arrays[k][:, ::-1]
    n = arrays["total_bpd"].shape[0]
    if n < 1 or arrays["total_bpd"].shape != (n,) or arrays["prior_bpd"].shape != (n,):
        raise ValueError("total_bpd and prior_bpd must have the same shape (n,) with n >= 1")
    steps = arrays["vb"].shape[1] if arrays["vb"].ndim == 2 else -1
    for k in ("vb", "xstart_mse", "mse"):
        if arrays[k].shape != (n, steps) or steps < 1:
            raise ValueError(f"{k} must have shape (n, T) = ({n}, T) like vb; got {arrays[k].shape}")
    for k, a in arrays.items():
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{k} holds non-finite values")
    total, total_se = _mean_and_stderr(arrays["total_bpd"])
    prior, prior_se = _mean_and_stderr(arrays["prior_bpd"])
    decoder, decoder_se = _mean_and_stderr(arrays["vb"][:, 0])
    return {
        "n": int(n),
        "num_timesteps": int(steps),
        "total_bpd": total,
        "total_bpd_stderr": total_se,
        "prior_bpd": prior,
        "prior_bpd_stderr": prior_se,
        "decoder_bpd": decoder,
        "decoder_bpd_stderr": decoder_se,
        "vb_terms_bpd": arrays["vb"].mean(axis=0).tolist(),
        "xstart_mse": arrays["xstart_mse"].mean(axis=0).tolist(),
        "eps_mse": arrays["mse"].mean(axis=0).tolist(),
    }


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return value


def nll_bound(
    model: Callable[..., torch.Tensor],
    diffusion: BpdDiffusion,
    dataset: ImageDataset | TrainingData | OrderedImages,
    *,
    batch_size: int,
    num_samples: int | None,
    clip_denoised: bool = True,
    device: str | torch.device = "cpu",
    generator: torch.Generator | None = None,
    class_cond: bool = False,
    timestep_batch: int = 1,
) -> dict[str, Any]:
    """The NLL bound [S20] of the first ``num_samples`` images (None: all) of ``dataset``, in bits/dim.

    ``dataset`` is an in-memory ``ImageDataset``, what ``open_training_data`` opened (memory, ``.npy``,
    lazy folder or tar shards, read in stored order), or an ``OrderedImages`` (which may convert each batch).
    With ``class_cond`` the labels go to the model as ``model_kwargs={"y": labels}`` (the dataset must have
    labels).  ``generator`` (on ``device``) draws the noise of every step, so a seeded generator makes the
    result reproducible, and independent of ``timestep_batch`` (timesteps evaluated per network call, a
    speed option that leaves the values unchanged; see ``calc_bpd_loop``).  Returns
    ``summarize_bpd_terms`` plus ``"config"`` (the settings used).
    """
    batch_size = _positive_int(batch_size, "batch_size")
    data = OrderedImages.of(dataset)
    available = len(data)
    n = available if num_samples is None else _positive_int(num_samples, "num_samples")
    if n > available:
        raise ValueError(f"num_samples must be at most the dataset size {available}; got {n}")
    if class_cond and not data.has_labels:
        raise ValueError("class_cond=True needs a dataset with labels; the dataset has none")
    if generator is not None and torch.device(generator.device) != torch.device(device):
        raise ValueError(f"generator must live on device {device!s}; it is on {generator.device}")
    collected: dict[str, list[NDArray[np.float64]]] = {k: [] for k in BPD_KEYS}
    for images, labels in data.batches(n, batch_size):
        x_start = to_model_range(images).to(device)
        model_kwargs: dict[str, Any] = {}
        if class_cond and labels is not None:
            model_kwargs["y"] = torch.from_numpy(labels).to(device)
        with torch.no_grad():
            out = diffusion.calc_bpd_loop(
                model,
                x_start,
                clip_denoised=clip_denoised,
                model_kwargs=model_kwargs,
                generator=generator,
                timestep_batch=timestep_batch,
            )
        for k in BPD_KEYS:
            collected[k].append(out[k].detach().to("cpu", torch.float64).numpy())
    summary = summarize_bpd_terms({k: np.concatenate(v, axis=0) for k, v in collected.items()})
    summary["config"] = {
        "num_samples": n,
        "batch_size": batch_size,
        "timestep_batch": timestep_batch,
        "clip_denoised": bool(clip_denoised),
        "class_cond": bool(class_cond),
        "device": str(device),
        "generator_seed": None if generator is None else int(generator.initial_seed()),
        "num_timesteps": int(diffusion.num_timesteps),
        "image_size": data.image_size,
        "channels": data.channels,
    }
    return summary
