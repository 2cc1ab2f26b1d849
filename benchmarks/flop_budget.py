"""The paper-scale FLOP budget of each workload, counted without a GPU (``python -m benchmarks.flop_budget``).

The networks are built on PyTorch's ``meta`` device (shapes only, no memory, no arithmetic) and run under
``FlopCounterMode``, which counts matmul / convolution / attention FLOPs from shapes alone.  With a peak
rate this gives each workload's compute floor (the time at 100 % MFU) and the MFU a target implies: the
first of the two numbers docs/performance.md asks for before measuring on the device.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import configs
from benchmarks.configs import ModelConfig
from impl.factory import create_model_and_diffusion

# dense bf16 datasheet peak of the H200 (the target device) and of the H100 SXM: the same compute
H200_BF16_DENSE = 989.4e12


@dataclass(frozen=True)
class ModelFlops:
    """Parameter count and FLOPs per image of one network, forward and forward + backward."""

    name: str
    parameters: int
    forward_per_image: int
    train_per_image: int


def count_model_flops(config: ModelConfig) -> ModelFlops:
    """Count ``config``'s U-Net on the meta device at batch 1 (FLOPs scale linearly with the batch)."""
    with torch.device("meta"):
        model, _ = create_model_and_diffusion(**config.flags, attention_backend="naive")
        size = config.image_size
        x = torch.empty(1, config.channels, size, size)
        t = torch.zeros(1)
        forward = FlopCounterMode(display=False)
        with forward:
            model(x, t)
        train = FlopCounterMode(display=False)
        with train:
            model(x, t).sum().backward()
    parameters = sum(p.numel() for p in model.parameters())
    return ModelFlops(config.name, parameters, forward.get_total_flops(), train.get_total_flops())


@dataclass(frozen=True)
class Budget:
    """One workload: FLOPs per image, the floor at ``peak``, and the MFU its target implies."""

    workload: str
    flops_per_image: float
    ceiling_images_per_s: float
    target_images_per_s: float | None

    @property
    def target_mfu(self) -> float | None:
        """MFU needed to reach the target = target / ceiling."""
        if self.target_images_per_s is None:
            return None
        return self.target_images_per_s / self.ceiling_images_per_s


def budgets(cifar: ModelFlops, imagenet: ModelFlops, peak: float) -> list[Budget]:
    """Workload rows: images/s at 100 % MFU = peak / FLOPs per image."""
    paper = configs.PAPER_SIZES
    per_image = {
        "train_step/cifar10 (fwd+bwd)": (float(cifar.train_per_image), 4000.0),
        "train_step/imagenet64 (fwd+bwd)": (float(imagenet.train_per_image), 1300.0),
        "unet_forward/cifar10": (float(cifar.forward_per_image), None),
        f"sample_loop_{paper.sample_steps}_steps/cifar10": (
            float(paper.sample_steps * cifar.forward_per_image),
            300.0,
        ),
        "calc_bpd_loop full chain/cifar10 (T=4000)": (float(4000 * cifar.forward_per_image), None),
    }
    return [Budget(name, flops, peak / flops, target) for name, (flops, target) in per_image.items()]


def format_table(rows: list[Budget], peak: float) -> str:
    """A Markdown table of the budget rows."""
    lines = [
        f"| workload | GFLOP per image | img/s at 100 % MFU ({peak / 1e12:.1f} TFLOP/s) | target img/s | "
        "MFU the target needs |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        target = "" if row.target_images_per_s is None else f"{row.target_images_per_s:,.0f}"
        mfu = "" if row.target_mfu is None else f"{100 * row.target_mfu:.1f} %"
        lines.append(
            f"| {row.workload} | {row.flops_per_image / 1e9:,.1f} | {row.ceiling_images_per_s:,.2f} | "
            f"{target} | {mfu} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--peak-tflops", type=float, default=H200_BF16_DENSE / 1e12)
    args = parser.parse_args(argv)
    if args.peak_tflops <= 0:
        raise ValueError(f"--peak-tflops must be positive, got {args.peak_tflops}")
    peak = args.peak_tflops * 1e12
    cifar = count_model_flops(configs.CIFAR10_PAPER)
    imagenet = count_model_flops(configs.IMAGENET64_PAPER)
    for m in (cifar, imagenet):
        print(
            f"{m.name}: {m.parameters:,} parameters, {m.forward_per_image / 1e9:.2f} GFLOP forward, "
            f"{m.train_per_image / 1e9:.2f} GFLOP forward+backward per image"
        )
    print(format_table(budgets(cifar, imagenet, peak), peak))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
