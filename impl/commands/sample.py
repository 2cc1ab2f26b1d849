"""``iddpm sample``: draw samples from a checkpoint to ``.npz`` and a PNG grid."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from impl.commands import common

if TYPE_CHECKING:
    from impl.commands.editing import EditInputs

#: The PNG grid shows the first this many samples.
GRID_IMAGES = 256


def run(args: argparse.Namespace, explicit: set[str]) -> int:
    from impl.commands.classifier_guidance import check_guidance_flags, classifier_guidance
    from impl.commands.editing import read_edit_inputs
    from impl.commands.generation import generate_samples
    from impl.commands.guidance_free import guidance_scale_for
    from impl.commands.trajectory import loop_step_count, plan_pictures
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
    check_guidance_flags(args, explicit)
    loaded = common.load(args, explicit)
    flags = loaded.flags
    size, channels = int(flags["image_size"]), int(flags["in_channels"])
    num_classes = int(flags["num_classes"]) if flags.get("class_cond") else None
    if num_classes is not None and args.class_label >= num_classes:
        raise ValueError(
            f"--class_label {args.class_label} is not a class of the model: -1 (random classes) or 0 … "
            f"{num_classes - 1}"
        )
    device = common.device(args.device)
    guidance = classifier_guidance(args, explicit, flags, device)
    if args.class_label >= 0 and num_classes is None and guidance is None:
        raise ValueError(
            f"--class_label {args.class_label} needs a class-conditional model; {args.checkpoint!r} is "
            "unconditional (class_cond False): drop --class_label, or guide towards it with --classifier"
        )
    edit = read_edit_inputs(args, explicit, size=size, channels=channels, num_classes=num_classes)
    if edit is not None:
        edit.check_chain(loaded.diffusion.num_timesteps)  # --jump_length against the chain, before planning
    num_samples = edit.images.shape[0] if edit and "num_samples" not in explicit else args.num_samples
    guidance_scale = guidance_scale_for(args.guidance_scale, flags, args.checkpoint)
    suffix = f"_{flags['timestep_respacing']}" if flags.get("timestep_respacing") else ""
    suffix += "_ddim" if args.use_ddim and "ddim" not in suffix else ""
    suffix += edit_suffix(edit) if edit is not None else ""
    suffix += f"_classifier{args.classifier_scale:g}" if guidance is not None else ""
    suffix += f"_guidance{guidance_scale:g}" if guidance_scale is not None else ""
    default_dir = loaded.run_dir / "samples" if loaded.run_dir is not None else Path.cwd()
    stem = f"samples_{num_samples}x{size}x{size}x{channels}{suffix}"
    npz = Path(args.output) if args.output else default_dir / f"{stem}.npz"
    grid = Path(args.grid) if args.grid else npz.with_suffix(".png")
    for target in (npz, grid):
        if not target.parent.is_dir() and not (target.parent == default_dir and loaded.run_dir is not None):
            raise FileNotFoundError(f"output folder {str(target.parent)!r} does not exist")
        if target.exists() and not args.overwrite:
            flag = "--output" if target == npz else "--grid"
            raise ValueError(f"{flag}: {str(target)!r} exists; pass --overwrite to replace it")
    num_steps = (  # the reverse steps each batch's loop runs: the strips' columns
        loaded.diffusion.num_timesteps
        if edit is None
        else loop_step_count(
            loaded.diffusion.num_timesteps,
            strength=edit.strength,
            jump_length=edit.jump_length,
            resample_jumps=edit.resample_jumps,
        )
    )
    trajectory_writer = plan_pictures(
        grid_scale=args.grid_scale,
        save_trajectory=args.save_trajectory,
        npz=npz,
        image_hw=(size, size),
        grid_images=min(num_samples, GRID_IMAGES),
        num_steps=num_steps,
        overwrite=args.overwrite,
    )
    try:
        with common.backend_flags(args, device):
            images, labels = generate_samples(
                loaded.model,
                loaded.diffusion,
                num_samples=num_samples,
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
                observer=trajectory_writer,
                edit=edit,
                cond_fn=guidance.cond_fn if guidance else None,
                guidance_classes=guidance.num_classes if guidance else None,
                guidance_scale=guidance_scale,
            )
        npz.parent.mkdir(parents=True, exist_ok=True)
        save_npz_atomic(npz, images, labels)
        save_image_grid(grid, images[:GRID_IMAGES], scale=args.grid_scale, name="--grid_scale")
        report: dict[str, Any] = {"samples": str(npz), "grid": str(grid), "shape": list(images.shape)}
        if trajectory_writer is not None:
            report["trajectory"] = str(trajectory_writer.finish(images))
    except BaseException:
        if trajectory_writer is not None:
            trajectory_writer.discard()  # no hidden staging folder is left behind
        raise
    print(json.dumps(report))
    return 0


def edit_suffix(edit: EditInputs) -> str:
    """The default file name's mark of an edit: ``_img2img<s>`` (img2img at strength s), ``_inpaint``
    (a mask; ``_inpaint_img2img<s>`` when s < 1) and ``_jumps<r>x<j>`` (RePaint's resampling, r > 1)."""
    if edit.keep is None:
        suffix = f"_img2img{edit.strength:g}"
    else:
        suffix = "_inpaint" + (f"_img2img{edit.strength:g}" if edit.strength != 1.0 else "")
    if edit.resample_jumps > 1:
        suffix += f"_jumps{edit.resample_jumps}x{edit.jump_length}"
    return suffix
