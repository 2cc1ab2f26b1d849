"""The argument parsers of the ``iddpm`` commands (parsing only: the work is in ``impl.commands``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from impl.cli.classifier_guidance import _add_classifier_guidance_flags
from impl.cli.editing import _add_editing_flags
from impl.cli.guidance_free import _add_guidance_free_flags
from impl.cli.one_line import OneLineParser
from impl.cli.options import PROG, _add_bool, _add_model_source, _add_resume_flag
from impl.cli.pictures import _add_grid_scale_flag, _add_trajectory_flags
from impl.cli.train_classifier import add_train_classifier_parser


def _add_train_parser(sub: Any) -> None:
    from impl.factory import add_dict_to_argparser, train_model_defaults
    from impl.runtime.compile import COMPILE_MODES, COMPILE_SCOPES, TRAINING_COMPILE_BACKENDS
    from impl.runtime.precision import PRECISIONS
    from impl.train.config import DATA_LOADERS, OPTIMIZER_IMPLS, SCHEDULE_SAMPLERS, TrainConfig

    d = TrainConfig()
    from impl.train.lr import LR_SCHEDULES
    from impl.train.recipes import recipe_names

    p = sub.add_parser(
        "train",
        help="train a model (no flags: a small digits model on the CPU in a few minutes)",
        description="Train a diffusion model; see docs/training.md for every flag and the run directory.",
    )
    add_dict_to_argparser(p, train_model_defaults())
    g = p.add_argument_group("training")
    g.add_argument(
        "--recipe",
        default=d.recipe,
        metavar="NAME",
        help=f"set every flag of a named recipe ({', '.join(recipe_names())}); explicit flags override it",
    )
    _add_bool(g, "dry_run", False, "print the resolved configuration as JSON and exit (writes nothing)")
    g.add_argument(
        "--data",
        "--data_dir",
        dest="data",
        default=d.data,
        help="'digits', 'digits:train', 'digits:held_out', an image folder, an .npz, a .npy, a folder "
        "written by 'iddpm prepare', or tar shards (folder, brace pattern, .txt list); see docs/data.md",
    )
    g.add_argument(
        "--data_loader",
        default=d.data_loader,
        choices=DATA_LOADERS,
        help="auto: hold the set in memory up to 1 GiB of pixels, else stream it; memory or stream force it",
    )
    g.add_argument(
        "--num_workers",
        type=int,
        default=d.num_workers,
        help="DataLoader workers decoding ahead of training when streaming (0: in the training process)",
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
    g.add_argument(
        "--lr_schedule",
        default=d.lr_schedule,
        choices=LR_SCHEDULES,
        help="LR decay to 0 at lr_anneal_steps (linear: the original's lr_anneal_steps behaviour)",
    )
    g.add_argument("--lr_warmup_steps", type=int, default=d.lr_warmup_steps, help="linear LR warm-up from 0")
    g.add_argument("--ema_rate", default=d.ema_rate, help="comma-separated EMA rates, e.g. 0.9999,0.999")
    _add_bool(g, "ema_warmup", d.ema_warmup, "EMA decay min(rate, 1 - (1 + step/inv_gamma)^-power)")
    g.add_argument("--ema_inv_gamma", type=float, default=d.ema_inv_gamma, help="EMA warm-up inv_gamma")
    g.add_argument("--ema_power", type=float, default=d.ema_power, help="EMA warm-up power")
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
        choices=TRAINING_COMPILE_BACKENDS,
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
    _add_grid_scale_flag(g)
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
    ev = p.add_argument_group("sample quality during training (see docs/evaluation.md)")
    ev.add_argument(
        "--eval_interval", type=int, default=d.eval_interval, help="steps between evaluations; 0: off"
    )
    ev.add_argument("--eval_samples", type=int, default=d.eval_samples, help="EMA samples per evaluation")
    ev.add_argument(
        "--eval_reference", default=d.eval_reference, help="reference images or `iddpm stats` file"
    )
    ev.add_argument("--eval_metrics", default=d.eval_metrics, help="comma-separated fid,sfid,is,prc,kid")
    ev.add_argument(
        "--eval_inception_weights", default=d.eval_inception_weights, help="local Inception weights"
    )
    g.add_argument(
        "--max_nonfinite_steps",
        type=int,
        default=d.max_nonfinite_steps,
        help="fp16: consecutive skipped (non-finite) steps before the run stops as diverged",
    )
    _add_bool(g, "overwrite", False, "start a new run in a non-empty --out_dir, deleting the old run's files")
    _add_resume_flag(
        g,
        "continue a run (PATH: run dir or checkpoint; bare: --out_dir); with --out_dir NEW it "
        "continues into NEW and leaves PATH untouched",
    )


def _add_prepare_parser(sub: Any) -> None:
    from impl.data.choices import DEFAULT_SHARD_SIZE, PREPARE_FORMATS, SPLITS

    p = sub.add_parser(
        "prepare",
        help="convert an image folder, .npz, CIFAR-10 or downsampled ImageNet into .npy or tar shards",
        description="Prepare training data (see docs/data.md); re-running on the same --out verifies it.",
    )
    p.add_argument(
        "source",
        help="an image folder, an .npz (arr_0/arr_1), cifar-10-python.tar.gz or its extracted folder, or a "
        "folder / .npz of downsampled-ImageNet batches",
    )
    p.add_argument("--out", required=True, help="the folder to create (written atomically)")
    p.add_argument("--format", default="shards", choices=PREPARE_FORMATS, help="tar shards or one .npy")
    p.add_argument(
        "--image_size",
        type=int,
        default=None,
        help="resize (BOX halvings, bicubic, centre crop); default: keep",
    )
    p.add_argument("--shard_size", type=int, default=DEFAULT_SHARD_SIZE, help="images per tar shard")
    p.add_argument("--split", default="train", choices=SPLITS, help="CIFAR-10 / ImageNet split")
    _add_bool(p, "folder_labels", False, "image folder: class label = file name before the first '_'")
    _add_bool(p, "overwrite", False, "replace an existing --out")
    _add_bool(p, "progress", True, "show a progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Improved DDPM: train, sample, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train_parser(sub)
    add_train_classifier_parser(sub)
    sub.add_parser("recipes", help="list the named training recipes (--recipe) with their flags")

    s = sub.add_parser("sample", help="draw samples to .npz (+ PNG grid)")
    s_speed = _add_model_source(s)
    s.add_argument("--num_samples", type=int, default=64)
    _add_bool(s, "use_ddim", False, "DDIM instead of ancestral sampling")
    s.add_argument("--eta", type=float, default=0.0, help="DDIM eta")
    s.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="scale of each step's noise (ancestral, DDIM eta > 0); 1: untempered",
    )
    s.add_argument("--init_temperature", type=float, default=1.0, help="x_T = init_temperature * z")
    s.add_argument("--class_label", type=int, default=-1, help="class of every sample; -1: random")
    s.add_argument("--grid", default="", help="PNG grid path (default: next to the .npz)")
    _add_bool(s, "overwrite", False, "replace existing --output / --grid files and trajectory strips")
    _add_trajectory_flags(s)
    _add_bool(s, "progress", True, "show a progress bar")
    _add_editing_flags(s)
    _add_bool(s_speed, "compile", False, "run each reverse step through torch.compile (CUDA graphs on CUDA)")
    s_speed.add_argument(
        "--compile_backend",
        default="inductor",
        help="torch.compile backend of --compile: inductor, aot_eager, eager or cudagraphs",
    )
    _add_classifier_guidance_flags(s)
    _add_guidance_free_flags(s)

    enc = sub.add_parser("encode", help="DDIM inversion of images (.npz) to their latents x_T (.npz)")
    _add_model_source(enc)
    enc.add_argument(
        "--images", required=True, help=".npz with arr_0 = uint8 NHWC images of the model's size"
    )
    _add_bool(enc, "overwrite", False, "replace an existing --output file")

    it = sub.add_parser(
        "interpolate",
        help="slerp between the DDIM-inverted latents of two images, decoded with DDIM, to an .npz",
    )
    _add_model_source(it)
    it.add_argument("a", metavar="A", help=".npz holding one image (arr_0 of shape (1, H, W, C))")
    it.add_argument("b", metavar="B", help=".npz holding one image")
    it.add_argument("--steps", type=int, default=8, help="frames, A and B included (>= 2)")
    _add_bool(it, "overwrite", False, "replace an existing --output file")

    n = sub.add_parser("nll", help="NLL bound in bits/dim over a data split, as JSON")
    n_speed = _add_model_source(n)
    n.add_argument(
        "--data",
        default="digits:held_out",
        help="any 'iddpm train --data' spec (digits, .npz, image folder, .npy, prepared folder, tar shards), "
        "read in stored order; .npy and shards are streamed; see docs/data.md",
    )
    n.add_argument("--num_samples", type=int, default=0, help="images to evaluate; 0: all")
    _add_bool(
        n,
        "resize",
        False,
        "convert data of another size or channel count to the model's (recorded in the JSON)",
    )
    n_speed.add_argument(
        "--timestep_batch",
        type=int,
        default=1,
        help="timesteps per network call (a speed option; same values)",
    )

    e = sub.add_parser(
        "evaluate",
        help="FID, sFID, IS, precision/recall, KID of a samples .npz (digits: classifier metrics)",
        description="Sample quality; see docs/evaluation.md for the paper's CIFAR-10 protocol.",
    )
    e.add_argument("samples", help=".npz with arr_0 = uint8 NHWC images")
    e.add_argument(
        "--reference",
        default="",
        help="reference images (.npz batch, image folder, digits spec) or an `iddpm stats` file",
    )
    e.add_argument(
        "--metrics",
        default="",
        help="comma-separated fid,sfid,is,prc,kid, or digits (default: digits for 8x8 greyscale samples "
        "without --reference, else all five; without --reference only is)",
    )
    e.add_argument("--output", default="", help="also write the JSON report here")
    _add_inception_flags(e)

    st = sub.add_parser(
        "stats",
        help="write reference statistics (Inception mean, covariance, features) to an .npz",
        description="Reference statistics for `iddpm evaluate --reference`; see docs/evaluation.md.",
    )
    st.add_argument("reference", help="reference images: .npz batch, image folder or digits spec")
    st.add_argument("--out", required=True, help="statistics .npz to write")
    st.add_argument("--image_size", type=int, default=0, help="resize an image folder to this size")
    _add_bool(st, "overwrite", False, "replace an existing --out file")
    _add_inception_flags(st)
    _add_prepare_parser(sub)
    return parser


def _add_inception_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--inception_weights",
        default="",
        help="local Inception weights (.pth/.safetensors); default: $IDDPM_INCEPTION_WEIGHTS, else the "
        "package cache (downloaded once)",
    )
    p.add_argument("--batch_size", type=int, default=100, help="images per Inception forward pass")
    p.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu, cuda or cuda:N")
    _add_bool(p, "progress", True, "show a progress bar")


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
