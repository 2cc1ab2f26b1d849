"""What the ``iddpm`` commands share: model flags, device, loading a run, backend flags, checks, output."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def model_flag_values(args: argparse.Namespace) -> dict[str, Any]:
    from impl.factory import model_and_diffusion_defaults

    return {k: getattr(args, k) for k in model_and_diffusion_defaults()}


def device(name: str) -> Any:
    from impl.runtime.device import device_from_flag

    return device_from_flag(name)


def load(args: argparse.Namespace, explicit: set[str]) -> Any:
    from impl.commands.loading import load_for_inference
    from impl.factory import model_and_diffusion_defaults

    return load_for_inference(
        args.checkpoint,
        cli_flags=model_flag_values(args),
        explicit_model=explicit & set(model_and_diffusion_defaults()),
        use_ema=args.use_ema,
        ema_rate=args.ema_rate,
        device=device(args.device),
    )


def backend_flags(args: argparse.Namespace, device: Any) -> Any:
    """``--allow_tf32`` / ``--cudnn_benchmark`` for the duration of a command (CUDA only)."""
    from impl.runtime.backend_flags import backend_flags_scope

    return backend_flags_scope(device, allow_tf32=args.allow_tf32, cudnn_benchmark=args.cudnn_benchmark)


def check_choice(flag: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"--{flag} must be one of {', '.join(allowed)}, got {value!r}")


def check_output_folder(output: str) -> None:
    """``--output`` must name a file (not a folder) in a folder that exists; checked before the work."""
    if output and Path(output).is_dir():
        raise ValueError(f"--output {output!r} is a folder; give a file name in it")
    if output and not Path(output).parent.is_dir():
        raise FileNotFoundError(f"output folder {str(Path(output).parent)!r} does not exist")


def emit(result: dict[str, Any], output: str) -> None:
    from impl.atomic import write_json

    if output:
        write_json(output, result)
    print(json.dumps(result, indent=2, sort_keys=True))


def report_training_end(result: Any, command: str, trained: str, contents: str, then: str = "") -> None:
    """The last line of ``iddpm train`` / ``train_classifier`` on stderr: where a stopped run resumes from,
    or what a finished one ``trained`` (e.g. "trained" / "trained the classifier") and its run folder's
    ``contents``, followed by ``then`` (a hint; ``{run_dir}`` in it names the run folder); nothing when no
    checkpoint was written."""
    import sys

    from impl.commands import PROG

    if result.checkpoint is None:
        return
    run_dir = result.checkpoint.parent.parent
    if result.stopped_early:
        print(
            f"{PROG}: stopped at step {result.step}; checkpoint saved to {result.checkpoint}; "
            f"continue with: {PROG} {command} --resume {run_dir}",
            file=sys.stderr,
        )
        return
    done = result.step if result.steps_this_run is None else result.steps_this_run
    total = "" if done == result.step else f" (step {result.step} in total)"
    print(
        f"{PROG}: {trained} {done} steps{total}; run directory {run_dir} ({contents})"
        f"{then.format(run_dir=run_dir)}",
        file=sys.stderr,
    )
