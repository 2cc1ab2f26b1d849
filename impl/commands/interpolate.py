"""``iddpm interpolate A B``: slerp between the DDIM-inverted latents [S47] of two images, each frame
decoded with DDIM [S30] (η = 0); writes the ``--steps`` frames, A first and B last, to an ``.npz``.

A and B are ``.npz`` files holding one image each (``arr_0`` of shape (1, H, W, C), uint8; ``arr_1`` its
label for a class-conditional model, which then decodes every frame with A's label).
"""

from __future__ import annotations

import argparse
import json


def run(args: argparse.Namespace, explicit: set[str]) -> int:
    import torch

    from impl.commands import common, inversion
    from impl.data import save_npz_atomic
    from impl.sampling.slerp import slerp
    from impl.sampling.trajectory import to_uint8_nhwc

    if args.steps < 2:
        raise ValueError(f"--steps must be >= 2 (the frames, A and B included), got {args.steps}")
    output = inversion.check_new_output(args.output, args.overwrite)
    loaded = common.load(args, explicit)
    flags = loaded.flags
    size, channels = int(flags["image_size"]), int(flags["in_channels"])
    device = common.device(args.device)
    pixels, kwargs = [], []
    for flag, path in (("A", args.a), ("B", args.b)):
        images, labels = inversion.read_images(path, flag, size, channels)
        if images.shape[0] != 1:
            raise ValueError(f"{flag} {path!r} holds {images.shape[0]} images; give an .npz of one image")
        pixels.append(inversion.to_model_range(images, device))
        kwargs.append(inversion.class_kwargs(flags, labels, flag, device))
    with common.backend_flags(args, device):
        latents = [inversion.encode(loaded, args, x, kw) for x, kw in zip(pixels, kwargs, strict=True)]
        alphas = [k / (args.steps - 1) for k in range(args.steps)]
        mixed = torch.cat([slerp(latents[0], latents[1], alpha) for alpha in alphas])
        y = {key: value.repeat(args.steps) for key, value in kwargs[0].items()}
        frames = loaded.diffusion.ddim_sample_loop(
            loaded.model,
            tuple(mixed.shape),
            noise=mixed,
            clip_denoised=args.clip_denoised,
            model_kwargs=y,
            device=device,
        )
    save_npz_atomic(output, to_uint8_nhwc(frames))
    print(json.dumps({"frames": str(output), "shape": [args.steps, size, size, channels]}))
    return 0
