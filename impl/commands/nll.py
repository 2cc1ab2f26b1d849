"""``iddpm nll``: the NLL bound in bits/dim of a checkpoint over a data split."""

from __future__ import annotations

import argparse

from impl.commands import common


def run(args: argparse.Namespace, explicit: set[str]) -> int:
    import torch

    from impl.commands.inference import inference_model
    from impl.data import load_data
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
    dataset = load_data(
        args.data,
        image_size=int(flags["image_size"]),
        class_cond=class_cond,
        channels=int(flags["in_channels"]),
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
    common.emit(result, args.output)
    return 0
