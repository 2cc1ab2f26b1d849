"""``iddpm encode``: DDIM inversion [S47] of images to their latents x_T, written to an ``.npz``."""

from __future__ import annotations

import argparse
import json
from typing import IO

import numpy as np


def run(args: argparse.Namespace, explicit: set[str]) -> int:
    from impl.atomic import atomic_write
    from impl.commands import common, inversion

    if args.batch_size < 1:
        raise ValueError(f"--batch_size must be a positive integer, got {args.batch_size}")
    output = inversion.check_new_output(args.output, args.overwrite)
    loaded = common.load(args, explicit)
    flags = loaded.flags
    size, channels = int(flags["image_size"]), int(flags["in_channels"])
    images, labels = inversion.read_images(args.images, "--images", size, channels)
    device = common.device(args.device)
    kwargs = inversion.class_kwargs(flags, labels, "--images", device)
    with common.backend_flags(args, device):
        latents = inversion.encode(loaded, args, inversion.to_model_range(images, device), kwargs)
    latent_array = latents.float().cpu().numpy()

    def write(handle: IO[bytes]) -> None:
        if labels is None:
            np.savez(handle, arr_0=latent_array)
        else:
            np.savez(handle, arr_0=latent_array, arr_1=labels)

    atomic_write(output, write)
    print(json.dumps({"latents": str(output), "shape": list(latent_array.shape)}))
    return 0
