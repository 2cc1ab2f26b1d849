"""``iddpm nll``: the NLL bound in bits/dim of a checkpoint over a data split."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from impl.commands import common

if TYPE_CHECKING:
    from impl.data.ordered import OrderedImages


def run(args: argparse.Namespace, explicit: set[str]) -> int:
    import torch

    from impl.commands.generation import inference_model
    from impl.evaluate import nll_bound
    from impl.runtime.precision import PRECISIONS
    from impl.runtime.seeding import seeded_generator

    if args.num_samples < 0:
        raise ValueError(f"--num_samples must be >= 0 (0: all), got {args.num_samples}")
    common.check_choice("precision", args.precision, PRECISIONS)
    if args.timestep_batch < 1:
        raise ValueError(
            f"--timestep_batch must be an integer >= 1 (timesteps per network call), "
            f"got {args.timestep_batch}"
        )
    common.check_output_folder(args.output)
    loaded = common.load(args, explicit)
    flags = loaded.flags
    class_cond = bool(flags.get("class_cond"))
    dataset, conversion = model_sized_data(
        args.data, int(flags["image_size"]), int(flags["in_channels"]), class_cond, bool(args.resize)
    )
    device: torch.device = common.device(args.device)
    model = inference_model(
        loaded.model, precision=args.precision, channels_last=args.channels_last, device=device
    )
    with common.backend_flags(args, device):
        result = nll_bound(
            model,
            loaded.diffusion,
            dataset,
            batch_size=args.batch_size,
            num_samples=args.num_samples or None,
            clip_denoised=args.clip_denoised,
            device=device,
            generator=seeded_generator(args.seed, device),
            class_cond=class_cond,
            timestep_batch=args.timestep_batch,
        )
    result["config"].update(precision=args.precision, channels_last=bool(args.channels_last))
    result["checkpoint"] = str(loaded.weights)
    result["data"] = args.data
    result["data_read"] = {"kind": dataset.source.kind, "images": result["n"], "in_set": len(dataset)}
    result["data_conversion"] = conversion
    common.emit(result, args.output)
    return 0


def model_sized_data(
    data: str, image_size: int, channels: int, class_cond: bool, resize: bool
) -> tuple[OrderedImages, dict[str, Any] | None]:
    """The set ``data`` names (any ``iddpm train --data`` spec), read in stored order at the model's size
    and channel count, and what was converted (None: nothing).

    The digits and an ``.npz`` are read into memory; a ``.npy`` (or a prepared ``npy`` folder) and tar shards
    are streamed batch by batch; an image folder is read as ``iddpm train`` reads it (in memory up to 1 GiB
    of pixels, lazily above).  Data of another size or channel count (and an image folder, whose files have
    sizes of their own) is converted only with ``resize``: the same ``convert_channels`` + ``resize_square``
    for every kind, batch by batch when streamed.  Without it a ValueError names ``--resize``, since the
    bound of converted images is not the bound of the data.
    """
    from impl.data import load_data
    from impl.data.ordered import OrderedImages
    from impl.data.training_source import data_kind, open_training_data

    target = [image_size, image_size, channels]
    kind = data_kind(data)
    if kind == "folder":
        if not resize:
            raise ValueError(
                f"--data {data!r} is an image folder: its images are centre-cropped and resized to the "
                f"model's {image_size}x{image_size}x{channels} only with --resize (recorded in the JSON)"
            )
        folder = open_training_data(data, image_size=image_size, class_cond=class_cond, channels=channels)
        return OrderedImages(folder), {"from": "image folder", "to": target}
    if kind == "memory":
        dataset = load_data(data, class_cond=class_cond)
        source = OrderedImages.of(dataset)
    else:  # a .npy, a prepared folder or tar shards: streamed, never held whole
        source = OrderedImages(
            open_training_data(data, image_size=None, class_cond=class_cond, loader="stream")
        )
    stored = [source.image_size, source.image_size, source.channels]
    if stored == target:
        return source, None
    if not resize:
        raise ValueError(
            f"--data {data!r} holds {stored[0]}x{stored[1]}x{stored[2]} images but the model takes "
            f"{image_size}x{image_size}x{channels}: pass --resize to centre-crop, resize and convert them "
            "(recorded in the JSON), or give data of the model's size"
        )
    return OrderedImages(source.source, fit_to=(image_size, channels)), {"from": stored, "to": target}
