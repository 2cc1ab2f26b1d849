"""``iddpm sample --init_images X.npz [--strength s] [--mask M.npz]``: reading and checking the edit inputs,
and editing one batch (img2img [S53]–[S54], inpainting [S55]–[S57]; see docs/guidance.md).

Sample i edits init image i mod N (N images in the file): ``--num_samples`` defaults to N, and a larger or
smaller count repeats or truncates the images cyclically.  The mask and the labels follow the same index.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from impl.commands.inversion import read_images, read_npz_arrays, to_model_range
from impl.diffusion.editing import largest_jump_length, start_level

__all__ = ["EditInputs", "read_edit_inputs", "read_mask"]

# The flags that mean nothing without --init_images, with their parser defaults.
EDIT_ONLY_FLAGS = ("strength", "mask", "resample_jumps", "jump_length")


@dataclass(frozen=True)
class EditInputs:
    """The checked edit inputs: uint8 NHWC images, their labels, a keep mask (N or 1, H, W), the settings."""

    images: np.ndarray[Any, np.dtype[np.uint8]]
    labels: np.ndarray[Any, np.dtype[np.int64]] | None
    keep: np.ndarray[Any, np.dtype[np.bool_]] | None
    strength: float
    jump_length: int
    resample_jumps: int
    source: str = ""  # the --init_images path, for messages

    def check_guidance_labels(self, num_classes: int) -> None:
        """arr_1 as the guidance targets of an unconditional model: each must be one of the classifier's
        ``num_classes`` classes, else a ValueError naming ``--init_images``."""
        if self.labels is None:
            return
        low, high = int(self.labels.min()), int(self.labels.max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"--init_images {self.source!r}: arr_1 labels are the guidance targets and must lie in "
                f"[0, {num_classes}) (the classifier's classes), got {low}..{high}; fix arr_1 or give "
                "--class_label"
            )

    def check_chain(self, num_timesteps: int) -> None:
        """Refuse ``--resample_jumps`` > 1 where the edit's ℓ₀ levels of a ``num_timesteps``-step chain leave
        no jump level (``--jump_length`` >= ℓ₀ [S57]): a ValueError naming ``--jump_length``."""
        levels = start_level(self.strength, num_timesteps)
        if self.resample_jumps <= 1 or self.jump_length <= largest_jump_length(levels):
            return
        largest = largest_jump_length(levels)
        fix = (
            f"the largest --jump_length that works is {largest}"
            if largest >= 1
            else "no --jump_length works: raise --strength or --timestep_respacing, or drop --resample_jumps"
        )
        raise ValueError(
            f"--jump_length {self.jump_length} leaves no jump level for --resample_jumps "
            f"{self.resample_jumps}: the edit runs {levels} of the chain's {num_timesteps} steps "
            f"(--strength {self.strength:g}), and a jump of j levels needs j < {levels}; {fix}"
        )

    def rows(self, start: int, n: int) -> np.ndarray[Any, np.dtype[np.int64]]:
        """The init-image indices of samples start … start + n − 1 (cyclic)."""
        rows: np.ndarray[Any, np.dtype[np.int64]] = np.arange(start, start + n, dtype=np.int64)
        rows %= self.images.shape[0]
        return rows

    def labels_of(self, start: int, n: int) -> np.ndarray[Any, np.dtype[np.int64]] | None:
        """The arr_1 labels of samples start … start + n − 1 (None when the file has none)."""
        return None if self.labels is None else self.labels[self.rows(start, n)]

    def edit_steps(
        self,
        diffusion: Any,
        model: Any,
        start: int,
        n: int,
        *,
        use_ddim: bool,
        eta: float,
        temperature: float,
        clip_denoised: bool,
        model_kwargs: dict[str, Any],
        generator: torch.Generator,
        device: torch.device,
        step_runner: Any = None,
        channels_last: bool = False,
        cond_fn: Any = None,
    ) -> tuple[torch.Tensor, Iterator[dict[str, torch.Tensor]]]:
        """The init images of samples start … start + n − 1 in model range and the progressive loop that
        edits them ([S53]–[S57]); the last step's ``sample`` is the edit, the init images when the loop
        yields no step (s = 0).

        The settings are those of the plain sampling loop (``cond_fn``: a guidance gradient, SPEC §7).
        """
        from impl.diffusion.types import SamplingOptions
        from impl.sampling.editing import edit_sample_loop_progressive

        self.check_chain(diffusion.num_timesteps)
        rows = self.rows(start, n)
        x0 = to_model_range(self.images[rows], device)
        if channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        keep = None
        if self.keep is not None:
            masks = self.keep if self.keep.shape[0] == 1 else self.keep[rows]
            keep = torch.from_numpy(np.ascontiguousarray(masks)).to(device)[:, None]
        options = SamplingOptions(
            clip_denoised=clip_denoised,
            cond_fn=cond_fn,
            model_kwargs=model_kwargs,
            eta=eta if use_ddim else 0.0,
            generator=generator,
            temperature=temperature,
        )
        steps = edit_sample_loop_progressive(
            diffusion,
            model,
            x0,
            strength=self.strength,
            keep=keep,
            jump_length=self.jump_length,
            resample_jumps=self.resample_jumps,
            use_ddim=use_ddim,
            device=device,
            options=options,
            step_runner=step_runner,
        )
        return x0, steps


def read_mask(path: str, num_images: int, size: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """``arr_0`` of ``--mask`` as a bool (N, H, W) or (1, H, W) keep mask (True = keep).

    Accepted: shape (N, H, W), (N, H, W, 1) or (H, W) (one mask for every image), N the number of init
    images and H = W the model's size; dtype bool, an integer type or a float type, holding only 0 and 1.
    """
    arrays = read_npz_arrays(path, "--mask", ("arr_0",))
    if "arr_0" not in arrays:
        raise ValueError(f"--mask {path!r} has no arr_0 (the keep mask: 1 = keep, 0 = generate)")
    mask = arrays["arr_0"]
    given_shape = mask.shape
    if mask.dtype != np.bool_ and not (
        np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating)
    ):
        raise ValueError(f"--mask {path!r}: arr_0 must be bool, integer or float, got dtype {mask.dtype}")
    if mask.ndim == 4 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    elif mask.ndim == 2:
        mask = mask[None]
    expected = f"({num_images}, {size}, {size}), ({num_images}, {size}, {size}, 1) or ({size}, {size})"
    if mask.ndim != 3 or mask.shape[1:] != (size, size) or mask.shape[0] not in (1, num_images):
        raise ValueError(
            f"--mask {path!r}: arr_0 has shape {given_shape}; "
            f"expected {expected} for {num_images} init images of {size}x{size}"
        )
    if not np.all((mask == 0) | (mask == 1)):
        values = np.unique(mask)[:5]
        if np.issubdtype(mask.dtype, np.floating) and np.isnan(mask).any():
            reason = "it holds NaN: give 0 or 1 at every pixel"
        elif np.all((mask == 0) | (mask == 255)):
            reason = "a 0/255 image mask: divide it by 255"
        else:
            reason = "1 keeps a pixel, 0 generates it; nothing in between"
        raise ValueError(
            f"--mask {path!r} must hold only 0 (generate) and 1 (keep), got values such as {values.tolist()} "
            f"({reason})"
        )
    return mask.astype(np.bool_)


def read_edit_inputs(
    args: argparse.Namespace, explicit: set[str], *, size: int, channels: int, num_classes: int | None
) -> EditInputs | None:
    """The edit inputs of ``iddpm sample`` (None without ``--init_images``), every flag checked."""
    if not args.init_images:
        given = [f"--{flag}" for flag in EDIT_ONLY_FLAGS if flag in explicit]
        if given:
            raise ValueError(f"{given[0]} needs --init_images (the .npz of images to edit)")
        return None
    images, labels = read_images(args.init_images, "--init_images", size, channels)
    if args.strength is None and not args.mask:
        raise ValueError(
            "--init_images without --mask is img2img: give --strength s in [0, 1] (0: the images unchanged, "
            "1: start from the last step)"
        )
    strength = 1.0 if args.strength is None else float(args.strength)
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ValueError(
            f"--strength must lie in [0, 1] (0: the images unchanged, 1: all steps), got {strength}"
        )
    if args.jump_length < 1:
        raise ValueError(f"--jump_length must be an integer >= 1, got {args.jump_length}")
    if args.resample_jumps < 1:
        raise ValueError(
            f"--resample_jumps must be an integer >= 1 (1: no resampling), got {args.resample_jumps}"
        )
    if args.resample_jumps > 1 and not args.mask:
        raise ValueError("--resample_jumps > 1 needs --mask (RePaint's resampling is for inpainting)")
    if "init_temperature" in explicit and args.init_temperature != 1.0:
        raise ValueError("--init_temperature does not apply with --init_images: the start is q_sample(x_0)")
    keep = read_mask(args.mask, images.shape[0], size) if args.mask else None
    # arr_1: the labels of a class-conditional model, or the guidance targets of an unconditional one with
    # --classifier (their range is the classifier's, checked by generate_samples); otherwise unused.
    guided = num_classes is None and bool(getattr(args, "classifier", None))
    if labels is None or (num_classes is None and not guided):
        labels = None  # an unconditional model takes no labels; a conditional one without arr_1 draws them
    elif labels.shape != (images.shape[0],):
        raise ValueError(
            f"--init_images {args.init_images!r}: arr_1 must hold one label per image, got shape "
            f"{labels.shape}"
        )
    elif num_classes is not None and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"--init_images {args.init_images!r}: arr_1 labels must lie in [0, {num_classes}), got "
            f"{labels.min()}..{labels.max()}"
        )
    return EditInputs(
        images, labels, keep, strength, args.jump_length, args.resample_jumps, source=args.init_images
    )
