"""Flags of a tiny U-Net run on digits that trains a step in well under a second on a CPU."""

from __future__ import annotations

TINY_MODEL = [
    "--num_channels",
    "32",
    "--num_res_blocks",
    "1",
    "--attention_resolutions",
    "",
    "--diffusion_steps",
    "20",
    "--batch_size",
    "8",
    "--log_interval",
    "2",
    "--num_grid_samples",
    "4",
    "--progress",
    "False",
    "--ema_rate",
    "0.9999",
]


def tiny_train(out_dir: str, *extra: str) -> list[str]:
    return ["train", "--out_dir", out_dir, *TINY_MODEL, *extra]
