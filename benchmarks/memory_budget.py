"""The activation-memory budget of a training step, counted without a GPU.

Run ``python -m benchmarks.memory_budget``.

Autograd keeps, between the forward and the backward pass, exactly the tensors that
``torch.autograd.graph.saved_tensors_hooks`` sees being packed.  Summing their storages (each storage once,
parameters excluded) gives the activation memory of a step, which is what grows with the batch.  The ops of
the U-Net save the same tensors on CPU and on CUDA (convolutions: input and weight; GroupNorm: input, mean,
rstd; SiLU: input; SDPA: q, k, v, output and log-sum-exp), except dropout, which saves a 1-byte mask on
CUDA and a mask in the activation dtype on CPU, so the CPU count is an upper bound for CUDA.

The projected peak adds the per-step state of the paper's recipe (float32 parameters, gradients, two AdamW
moments, one EMA copy, and under autocast the cached low-precision weight copies).  It leaves out the
transient buffers of the backward pass and the allocator's fragmentation, so it is an estimate to plan
with; the benchmark suite's ``peak_memory_gib`` on the GPU is the measurement.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from benchmarks import configs
from benchmarks.configs import ModelConfig
from impl.factory import create_model_and_diffusion
from impl.nn import set_norm_recompute
from impl.train import AutocastModel, PrecisionPolicy

GIB = float(2**30)
MIB = float(2**20)


def saved_tensor_bytes(fn: Callable[[], object], exclude: nn.Module | None = None) -> dict[torch.dtype, int]:
    """Bytes autograd saves for the backward pass while ``fn()`` runs, by dtype (each storage counted once;
    the storages of ``exclude``'s parameters left out)."""
    excluded = set() if exclude is None else {p.untyped_storage().data_ptr() for p in exclude.parameters()}
    storages: dict[int, tuple[int, torch.dtype]] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in excluded:
            storages[storage.data_ptr()] = (storage.nbytes(), tensor.dtype)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    totals: Counter[torch.dtype] = Counter()
    for nbytes, dtype in storages.values():
        totals[dtype] += nbytes
    return dict(totals)


@dataclass(frozen=True)
class ActivationBudget:
    """Saved activations of one training forward (L_hybrid): per image, and the batch-independent rest."""

    precision: str
    recompute_norms: bool
    per_image_bytes: int
    per_image_float32_bytes: int
    fixed_bytes: int


def activation_budget(config: ModelConfig, precision: str, recompute_norms: bool) -> ActivationBudget:
    """Count ``config``'s training forward at batch 1 and 2; the difference is the per-image cost (the
    batch-independent part, e.g. autocast's low-precision weight copies, cancels)."""
    torch.manual_seed(0)
    model, diffusion = create_model_and_diffusion(**config.flags)
    model.train()
    set_norm_recompute(model, recompute_norms)
    net = AutocastModel(model, PrecisionPolicy.create(precision, torch.device("cpu")))
    size = config.image_size

    def forward(batch: int) -> Callable[[], object]:
        x = torch.rand(batch, config.channels, size, size) * 2 - 1
        t = torch.randint(0, diffusion.num_timesteps, (batch,))
        return lambda: diffusion.training_losses(net, x, t)

    one = saved_tensor_bytes(forward(1), exclude=model)
    two = saved_tensor_bytes(forward(2), exclude=model)
    per_image = sum(two.values()) - sum(one.values())
    per_image_f32 = two.get(torch.float32, 0) - one.get(torch.float32, 0)
    fixed = sum(one.values()) - per_image
    return ActivationBudget(precision, recompute_norms, per_image, per_image_f32, fixed)


def state_bytes(parameters: int, precision: str) -> int:
    """float32 parameters + gradients + AdamW's two moments + one EMA copy (5 × 4 bytes per parameter),
    plus autocast's cached 2-byte weight copies under bf16/fp16."""
    low_precision_copy = 2 * parameters if precision in ("bf16", "fp16") else 0
    return 5 * 4 * parameters + low_precision_copy


def projected_peak_gib(budget: ActivationBudget, parameters: int, batch: int) -> float:
    """state + batch × per-image activations (transient backward buffers not included)."""
    return (state_bytes(parameters, budget.precision) + batch * budget.per_image_bytes) / GIB


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--batch", type=int, default=configs.PAPER_SIZES.train_batch)
    parser.add_argument("--precisions", default="fp32,bf16")
    args = parser.parse_args(argv)
    config = configs.cifar10("paper")
    with torch.device("meta"):
        parameters = sum(p.numel() for p in create_model_and_diffusion(**config.flags)[0].parameters())
    print(f"CIFAR-10 U-Net, {parameters:,} parameters, batch {args.batch} (CPU count, see docstring)")
    print(
        f"{'precision':<10} {'recompute':<10} {'MiB/img':>8} {'f32 MiB/img':>11} {'act GiB':>8} "
        f"{'peak GiB':>9}"
    )
    for precision in args.precisions.split(","):
        for recompute in (False, True):
            budget = activation_budget(config, precision, recompute)
            print(
                f"{precision:<10} {recompute!s:<10} {budget.per_image_bytes / MIB:>8.2f} "
                f"{budget.per_image_float32_bytes / MIB:>11.2f} "
                f"{args.batch * budget.per_image_bytes / GIB:>8.2f} "
                f"{projected_peak_gib(budget, parameters, args.batch):>9.2f}"
            )


if __name__ == "__main__":
    main()
