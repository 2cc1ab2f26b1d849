"""Flag helpers every ``iddpm`` parser shares: booleans spelled the original's way, the model-source flags
of ``sample`` and ``nll``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from impl.commands import PROG

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "PROG", "normalize_flag_spelling"]

EXIT_USAGE = 2  # a refusal: bad flags, paths or checkpoints; nothing was written
EXIT_FAILURE = 1  # the work failed: the run diverged, or the operating system refused a write


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


def _add_model_source(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The flags ``sample`` and ``nll`` share; returns the "speed" group for command-specific switches."""
    from impl.factory import add_dict_to_argparser, model_and_diffusion_defaults
    from impl.runtime.precision import PRECISIONS

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


def _add_resume_flag(group: argparse._ActionsContainer, help_text: str) -> None:
    """``--resume [PATH]`` (alias ``--resume_checkpoint``): bare, it continues the run in ``--out_dir``."""
    group.add_argument(
        "--resume",
        "--resume_checkpoint",
        dest="resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="PATH",
        help=help_text,
    )
