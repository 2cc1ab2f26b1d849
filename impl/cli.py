"""``iddpm train | sample | nll | evaluate``: parse flags, call the library, report errors as one line.

Flag names are those of the original scripts (``--image_size``, ``--num_channels``, ``--use_ddim``, …);
``--image-size`` style spellings are accepted too.  Bad flags, missing paths and corrupt or mismatched
checkpoints print ``iddpm: error: …`` on stderr and exit with status 2, without a traceback and without
writing anything.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROG = "iddpm"
EXIT_USAGE = 2


def _bool(value: str | bool) -> bool:
    from impl.factory import str2bool

    return str2bool(value)


def _add_bool(parser: argparse._ActionsContainer, name: str, default: bool, help_text: str) -> None:
    parser.add_argument(
        f"--{name}", type=_bool, nargs="?", const=True, default=default, metavar="BOOL", help=help_text
    )


def normalize_flag_spelling(argv: Sequence[str]) -> list[str]:
    """``--image-size=8`` → ``--image_size=8``: dashes inside long flag names become underscores."""
    out: list[str] = []
    for token in argv:
        if token.startswith("--") and len(token) > 2:
            name, sep, value = token[2:].partition("=")
            token = "--" + name.replace("-", "_") + sep + value
        out.append(token)
    return out


# ------------------------------------------------------------------------------------------ parsers
def _add_train_parser(sub: Any) -> None:
    from impl.factory import add_dict_to_argparser
    from impl.train.config import (
        COMPILE_BACKENDS,
        COMPILE_MODES,
        COMPILE_SCOPES,
        OPTIMIZER_IMPLS,
        PRECISIONS,
        SCHEDULE_SAMPLERS,
        TrainConfig,
    )
    from impl.train.flags import train_model_defaults

    d = TrainConfig()
    p = sub.add_parser(
        "train",
        help="train a model (no flags: a small digits model on the CPU in a few minutes)",
        description="Train a diffusion model; see docs/training.md for every flag and the run directory.",
    )
    add_dict_to_argparser(p, train_model_defaults())
    g = p.add_argument_group("training")
    g.add_argument(
        "--data",
        "--data_dir",
        dest="data",
        default=d.data,
        help="'digits', 'digits:train', 'digits:held_out', an image folder or an .npz file",
    )
    g.add_argument("--out_dir", default=d.out_dir, help="run directory (default runs/<data>-<time>)")
    g.add_argument("--batch_size", type=int, default=d.batch_size, help="global batch (split across ranks)")
    g.add_argument("--microbatch", type=int, default=d.microbatch, help="per-rank microbatch; -1: off")
    g.add_argument("--lr", type=float, default=d.lr)
    g.add_argument("--weight_decay", type=float, default=d.weight_decay)
    g.add_argument("--max_steps", type=int, default=d.max_steps, help="number of optimisation steps")
    g.add_argument(
        "--lr_anneal_steps",
        type=int,
        default=None,
        help="linear LR decay horizon (default: max_steps; 0: constant LR)",
    )
    g.add_argument("--ema_rate", default=d.ema_rate, help="comma-separated EMA rates, e.g. 0.9999,0.999")
    g.add_argument("--schedule_sampler", default=d.schedule_sampler, choices=SCHEDULE_SAMPLERS)
    g.add_argument("--grad_clip", type=float, default=d.grad_clip, help="max global grad norm; 0: off")
    g.add_argument("--precision", default=d.precision, choices=PRECISIONS)
    _add_bool(g, "use_fp16", False, "the original flag: same as --precision fp16")
    _add_bool(g, "compile", d.compile, "torch.compile the model")
    g.add_argument(
        "--compile_scope",
        default=d.compile_scope,
        choices=COMPILE_SCOPES,
        help="with --compile: the network alone, or the whole per-sample loss as one graph",
    )
    g.add_argument(
        "--compile_backend",
        default=d.compile_backend,
        choices=COMPILE_BACKENDS,
        help="torch.compile backend of --compile",
    )
    g.add_argument(
        "--compile_mode",
        default=d.compile_mode,
        choices=COMPILE_MODES,
        help="torch.compile mode of --compile ('': its default; the others need inductor)",
    )
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--log_interval", type=int, default=d.log_interval)
    g.add_argument("--save_interval", type=int, default=d.save_interval, help="0: only at the end")
    g.add_argument(
        "--sample_interval",
        type=int,
        default=d.sample_interval,
        help="steps between EMA sample grids; 0: only at the end",
    )
    g.add_argument("--num_grid_samples", type=int, default=d.num_grid_samples, help="0: no grids")
    g.add_argument(
        "--grid_respacing",
        default=d.grid_respacing,
        help="timestep_respacing used for the sample grids ('' = all steps)",
    )
    g.add_argument("--keep_checkpoints", type=int, default=d.keep_checkpoints)
    _add_bool(g, "random_flip", d.random_flip, "flip images left-right at random")
    _add_bool(g, "progress", d.progress, "show a progress bar")
    g.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    g.add_argument(
        "--optimizer_impl",
        default=d.optimizer_impl,
        choices=OPTIMIZER_IMPLS,
        help="AdamW kernels: auto (fused on CUDA), fused, foreach or for-loop",
    )
    _add_bool(g, "channels_last", d.channels_last, "model, batch and noise in channels-last layout")
    _add_bool(
        g,
        "recompute_norms",
        d.recompute_norms,
        "rerun the U-Net's norm/SiLU segments in backward instead of storing them (less memory)",
    )
    _add_bool(g, "allow_tf32", d.allow_tf32, "CUDA only: TF32 for float32 matmuls and convolutions")
    _add_bool(g, "cudnn_benchmark", d.cudnn_benchmark, "CUDA only: cuDNN autotuning of convolutions")
    g.add_argument(
        "--resume",
        "--resume_checkpoint",
        dest="resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="PATH",
        help="continue a run (PATH: run dir or checkpoint; bare: --out_dir)",
    )


def _add_model_source(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The flags ``sample`` and ``nll`` share; returns the "speed" group for command-specific switches."""
    from impl.factory import add_dict_to_argparser, model_and_diffusion_defaults
    from impl.train.config import PRECISIONS

    add_dict_to_argparser(p, model_and_diffusion_defaults())
    p.add_argument(
        "--checkpoint",
        "--model_path",
        dest="checkpoint",
        required=True,
        help="run dir, checkpoints/step_N dir, or a .pt/.safetensors state dict",
    )
    _add_bool(p, "use_ema", True, "use EMA weights of a run checkpoint")
    p.add_argument("--ema_rate", default="", help="which EMA (default: the run's first rate)")
    _add_bool(p, "clip_denoised", True, "clip predicted x_0 to [-1, 1]")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--output", default="", help="output file")
    g = p.add_argument_group("speed (the defaults are the plain path; see docs/training.md)")
    g.add_argument(
        "--precision",
        default="fp32",
        metavar="{" + ",".join(PRECISIONS) + "}",
        help="network under bf16/fp16 autocast; the diffusion math stays float32",
    )
    _add_bool(g, "channels_last", False, "model weights (and sampler noise) in channels-last layout")
    _add_bool(g, "allow_tf32", False, "CUDA only: TF32 for float32 matmuls and convolutions")
    _add_bool(g, "cudnn_benchmark", False, "CUDA only: cuDNN autotuning of convolutions")
    return g


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Improved DDPM: train, sample, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sample,nll,evaluate}")
    _add_train_parser(sub)

    s = sub.add_parser("sample", help="draw samples to .npz (+ PNG grid)")
    s_speed = _add_model_source(s)
    s.add_argument("--num_samples", type=int, default=64)
    _add_bool(s, "use_ddim", False, "DDIM instead of ancestral sampling")
    s.add_argument("--eta", type=float, default=0.0, help="DDIM eta")
    s.add_argument("--class_label", type=int, default=-1, help="class of every sample; -1: random")
    s.add_argument("--grid", default="", help="PNG grid path (default: next to the .npz)")
    _add_bool(s, "progress", True, "show a progress bar")
    _add_bool(s_speed, "compile", False, "run each reverse step through torch.compile (CUDA graphs on CUDA)")
    s_speed.add_argument(
        "--compile_backend",
        default="inductor",
        help="torch.compile backend of --compile: inductor, aot_eager, eager or cudagraphs",
    )

    n = sub.add_parser("nll", help="NLL bound in bits/dim over a data split, as JSON")
    n_speed = _add_model_source(n)
    n.add_argument("--data", default="digits:held_out")
    n.add_argument("--num_samples", type=int, default=0, help="images to evaluate; 0: all")
    n_speed.add_argument(
        "--timestep_batch",
        type=int,
        default=1,
        help="timesteps per network call (a speed option; same values)",
    )

    e = sub.add_parser("evaluate", help="digits classifier score + Fréchet distance of a samples .npz")
    e.add_argument("samples", help=".npz with arr_0 = uint8 NHWC images")
    e.add_argument("--output", default="", help="also write the JSON here")
    return parser


def explicit_flags(argv: Sequence[str]) -> set[str]:
    """The destinations the user actually gave on the command line."""
    parser = build_parser()
    _suppress_defaults(parser)
    namespace, _ = parser.parse_known_args(list(argv))
    return set(vars(namespace)) - {"command"}


def _suppress_defaults(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _suppress_defaults(child)
        elif action.dest != "help":
            action.default = argparse.SUPPRESS


# ------------------------------------------------------------------------------------------ commands
def _model_flag_values(args: argparse.Namespace) -> dict[str, Any]:
    from impl.factory import model_and_diffusion_defaults

    return {k: getattr(args, k) for k in model_and_diffusion_defaults()}


def cmd_train(args: argparse.Namespace, explicit: set[str]) -> int:
    from impl.factory import model_and_diffusion_defaults
    from impl.train.config import TrainConfig
    from impl.train.run import train_command

    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model_flags"}
    values = {k: getattr(args, k) for k in fields}
    if args.lr_anneal_steps is None:
        values["lr_anneal_steps"] = args.max_steps
    if args.use_fp16:
        if "precision" in explicit and args.precision != "fp16":
            raise ValueError(f"--use_fp16 True contradicts --precision {args.precision}")
        values["precision"] = "fp16"
        explicit = explicit | {"precision"}
    config = TrainConfig(**values, model_flags=_model_flag_values(args))
    model_names = set(model_and_diffusion_defaults())
    result = train_command(
        config,
        resume=args.resume,
        explicit=(explicit & fields),
        explicit_model=(explicit & model_names),
    )
    if result.checkpoint is not None:
        run_dir = result.checkpoint.parent.parent
        if result.stopped_early:
            print(
                f"{PROG}: stopped at step {result.step}; checkpoint saved to {result.checkpoint}; "
                f"continue with: {PROG} train --resume {run_dir}",
                file=sys.stderr,
            )
        else:
            print(
                f"{PROG}: trained {result.step} steps; run directory {run_dir} "
                f"(checkpoints/, samples/, log.jsonl)",
                file=sys.stderr,
            )
    return 0


def _device(name: str) -> Any:
    from impl.train.distributed import resolve_device

    return resolve_device(name)


def _load(args: argparse.Namespace, explicit: set[str]) -> Any:
    from impl.factory import model_and_diffusion_defaults
    from impl.train.inference import load_for_inference

    return load_for_inference(
        args.checkpoint,
        cli_flags=_model_flag_values(args),
        explicit_model=explicit & set(model_and_diffusion_defaults()),
        use_ema=args.use_ema,
        ema_rate=args.ema_rate,
        device=_device(args.device),
    )


def _backend_flags(args: argparse.Namespace, device: Any) -> Any:
    """``--allow_tf32`` / ``--cudnn_benchmark`` for the duration of a command (CUDA only)."""
    from impl.train.backend_flags import backend_flags_scope

    return backend_flags_scope(device, allow_tf32=args.allow_tf32, cudnn_benchmark=args.cudnn_benchmark)


def _check_choice(flag: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"--{flag} must be one of {', '.join(allowed)}, got {value!r}")


def cmd_sample(args: argparse.Namespace, explicit: set[str]) -> int:
    from impl.data import save_image_grid, save_npz_atomic
    from impl.train.config import PRECISIONS
    from impl.train.inference import COMPILE_BACKENDS, generate_samples

    if args.num_samples < 1 or args.batch_size < 1:
        raise ValueError("--num_samples and --batch_size must be positive integers")
    _check_choice("precision", args.precision, PRECISIONS)
    _check_choice("compile_backend", args.compile_backend, COMPILE_BACKENDS)
    loaded = _load(args, explicit)
    flags = loaded.flags
    size, channels = int(flags["image_size"]), int(flags["in_channels"])
    num_classes = int(flags["num_classes"]) if flags.get("class_cond") else None
    suffix = f"_{flags['timestep_respacing']}" if flags.get("timestep_respacing") else ""
    suffix += "_ddim" if args.use_ddim and "ddim" not in suffix else ""
    default_dir = loaded.run_dir / "samples" if loaded.run_dir is not None else Path.cwd()
    stem = f"samples_{args.num_samples}x{size}x{size}x{channels}{suffix}"
    npz = Path(args.output) if args.output else default_dir / f"{stem}.npz"
    grid = Path(args.grid) if args.grid else npz.with_suffix(".png")
    for target in (npz, grid):
        if not target.parent.is_dir() and not (target.parent == default_dir and loaded.run_dir is not None):
            raise FileNotFoundError(f"output folder {str(target.parent)!r} does not exist")
    device = _device(args.device)
    with _backend_flags(args, device):
        images, labels = generate_samples(
            loaded.model,
            loaded.diffusion,
            num_samples=args.num_samples,
            batch_size=args.batch_size,
            shape=(channels, size, size),
            use_ddim=args.use_ddim,
            eta=args.eta,
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
        )
    npz.parent.mkdir(parents=True, exist_ok=True)
    save_npz_atomic(npz, images, labels)
    save_image_grid(grid, images[:256])
    print(json.dumps({"samples": str(npz), "grid": str(grid), "shape": list(images.shape)}))
    return 0


def cmd_nll(args: argparse.Namespace, explicit: set[str]) -> int:
    import torch

    from impl.data import load_data
    from impl.evaluate import nll_bound
    from impl.train.config import PRECISIONS
    from impl.train.inference import inference_model
    from impl.train.seeding import seeded_generator

    if args.num_samples < 0:
        raise ValueError(f"--num_samples must be >= 0 (0: all), got {args.num_samples}")
    _check_choice("precision", args.precision, PRECISIONS)
    if args.timestep_batch < 1:
        raise ValueError(
            f"--timestep_batch must be an integer >= 1 (timesteps per network call), "
            f"got {args.timestep_batch}"
        )
    _check_output_folder(args.output)
    loaded = _load(args, explicit)
    flags = loaded.flags
    class_cond = bool(flags.get("class_cond"))
    dataset = load_data(
        args.data,
        image_size=int(flags["image_size"]),
        class_cond=class_cond,
        channels=int(flags["in_channels"]),
    )
    device: torch.device = _device(args.device)
    model = inference_model(
        loaded.model, precision=args.precision, channels_last=args.channels_last, device=device
    )
    with _backend_flags(args, device):
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
    _emit(result, args.output)
    return 0


def cmd_evaluate(args: argparse.Namespace, explicit: set[str]) -> int:
    from impl.data.npz import read_npz
    from impl.evaluate import digits_sample_quality

    path = Path(args.samples)
    if not path.is_file():
        raise FileNotFoundError(f"samples file {args.samples!r} does not exist")
    _check_output_folder(args.output)
    images, _ = read_npz(path)
    result = digits_sample_quality(images)
    result["samples"] = str(path)
    _emit(result, args.output)
    return 0


def _check_output_folder(output: str) -> None:
    if output and not Path(output).parent.is_dir():
        raise FileNotFoundError(f"output folder {str(Path(output).parent)!r} does not exist")


def _emit(result: dict[str, Any], output: str) -> None:
    from impl.evaluate import write_json_atomic

    if output:
        write_json_atomic(output, result)
    print(json.dumps(result, indent=2, sort_keys=True))


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "nll": cmd_nll, "evaluate": cmd_evaluate}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``iddpm`` script; returns the exit status."""
    tokens = normalize_flag_spelling(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(tokens)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    from impl.nn import CheckpointMismatchError
    from impl.train.errors import TrainError

    try:
        return COMMANDS[args.command](args, explicit_flags(tokens))
    except (TrainError, CheckpointMismatchError, ValueError, FileNotFoundError, NotADirectoryError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
