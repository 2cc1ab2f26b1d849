"""The editing flags of ``iddpm sample``: img2img (``--init_images``, ``--strength``) and inpainting
(``--mask``, ``--resample_jumps``, ``--jump_length``); see docs/guidance.md."""

from __future__ import annotations

import argparse

__all__ = ["_add_editing_flags"]


def _add_editing_flags(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group("editing: img2img and inpainting (see docs/guidance.md)")
    g.add_argument(
        "--init_images",
        default="",
        help=".npz with arr_0 = uint8 NHWC images of the model's size to edit (arr_1: their labels); "
        "--num_samples defaults to their number, and sample i edits image i mod N",
    )
    g.add_argument(
        "--strength",
        type=float,
        default=None,
        help="img2img: start at level floor(s*T + 1/2) of the (respaced) T-step chain; 0: the images "
        "unchanged, 1: all steps (required without --mask; default 1 with it)",
    )
    g.add_argument(
        "--mask",
        default="",
        help=".npz with arr_0 = keep mask (1 = keep, 0 = generate), shape (N,H,W), (N,H,W,1) or (H,W)",
    )
    g.add_argument(
        "--resample_jumps",
        type=int,
        default=1,
        help="inpainting: RePaint's resampling r, the times each jump level is passed (1: no resampling)",
    )
    g.add_argument(
        "--jump_length",
        type=int,
        default=10,
        help="inpainting: levels RePaint's resampling walks back up per jump (RePaint's j, default 10)",
    )
