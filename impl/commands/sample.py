"""``iddpm sample``: draw samples from a checkpoint to ``.npz`` and a PNG grid."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from impl.commands import common


def run(args: argparse.Namespace, explicit: set[str]) -> int:
    from impl.commands.guidance_free import guidance_scale_for
    from impl.commands.inference import generate_samples
    from impl.data import save_image_grid, save_npz_atomic
    from impl.diffusion.steps import check_eta, check_temperature
    from impl.runtime.compile import SAMPLING_COMPILE_BACKENDS
    from impl.runtime.precision import PRECISIONS

    if args.num_samples < 1 or args.batch_size < 1:
        raise ValueError("--num_samples and --batch_size must be positive integers")
    common.check_choice("precision", args.precision, PRECISIONS)
    common.check_choice("compile_backend", args.compile_backend, SAMPLING_COMPILE_BACKENDS)
    try:
        check_eta(args.eta)
    except ValueError:
        raise ValueError(
            f"--eta must be a finite number >= 0 (0: deterministic DDIM), got {args.eta}"
        ) from None
    for flag in ("temperature", "init_temperature"):
        check_temperature(getattr(args, flag), f"--{flag}")
    if args.class_label < -1:
        raise ValueError(
            f"--class_label must be -1 (random classes) or a class index >= 0, got {args.class_label}"
        )
    for flag, value in (("output", args.output), ("grid", args.grid)):
        if value and Path(value).is_dir():
            raise ValueError(f"--{flag} {value!r} is a folder; give a file name in it")
    loaded = common.load(args, explicit)
    flags = loaded.flags
    size, channels = int(flags["image_size"]), int(flags["in_channels"])
    num_classes = int(flags["num_classes"]) if flags.get("class_cond") else None
    if args.class_label >= 0 and num_classes is None:
        raise ValueError(
            f"--class_label {args.class_label} needs a class-conditional model; {args.checkpoint!r} is "
            "unconditional (class_cond False): drop --class_label"
        )
    guidance_scale = guidance_scale_for(args.guidance_scale, flags, args.checkpoint)
    suffix = f"_{flags['timestep_respacing']}" if flags.get("timestep_respacing") else ""
    suffix += "_ddim" if args.use_ddim and "ddim" not in suffix else ""
    default_dir = loaded.run_dir / "samples" if loaded.run_dir is not None else Path.cwd()
    stem = f"samples_{args.num_samples}x{size}x{size}x{channels}{suffix}"
    npz = Path(args.output) if args.output else default_dir / f"{stem}.npz"
    grid = Path(args.grid) if args.grid else npz.with_suffix(".png")
    for target in (npz, grid):
        if not target.parent.is_dir() and not (target.parent == default_dir and loaded.run_dir is not None):
            raise FileNotFoundError(f"output folder {str(target.parent)!r} does not exist")
    device = common.device(args.device)
    with common.backend_flags(args, device):
        images, labels = generate_samples(
            loaded.model,
            loaded.diffusion,
            num_samples=args.num_samples,
            batch_size=args.batch_size,
            shape=(channels, size, size),
            use_ddim=args.use_ddim,
            eta=args.eta,
            temperature=args.temperature,
            init_temperature=args.init_temperature,
            clip_denoised=args.clip_denoised,
            num_classes=num_classes,
            class_label=args.class_label,
            seed=args.seed,
            device=device,
            progress=args.progress,
            precision=args.precision,
            channels_last=args.channels_last,
            compile=args.compile,
            compile_backend=args.compile_backend,
            guidance_scale=guidance_scale,
        )
    npz.parent.mkdir(parents=True, exist_ok=True)
    save_npz_atomic(npz, images, labels)
    save_image_grid(grid, images[:256])
    print(json.dumps({"samples": str(npz), "grid": str(grid), "shape": list(images.shape)}))
    return 0
