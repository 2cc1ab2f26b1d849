"""The speed flags of ``iddpm sample`` / ``iddpm nll`` give the plain path's results.

``--compile`` (eager / aot_eager backends) reproduces the eager sampler bit for bit; ``--channels_last``
and ``--precision bf16`` change only float rounding, bounded on a one-step process where the image is an
explicit function of one network call; ``nll --timestep_batch`` changes the reported numbers only by the
network's float32 summation order (tolerance Cli.NLL_TIMESTEP_BATCH);
bad values exit 2 with one line naming the flag.

The checkpoint is a bare state dict of a tiny class-conditional U-Net whose zero-initialised layers are
re-drawn (std 1/sqrt(fan_in)): a freshly trained tiny run predicts ε ≈ 0 (|ε| < 4e-5), which would make every
network-side speed flag invisible in the images.  Here ε is O(1) (max |ε| ≈ 1.8).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from impl.cli import main
from impl.factory import build_model_and_diffusion, model_and_diffusion_defaults
from impl.runtime.seeding import derive_seed, seeded_generator
from testing.assertions import assert_close
from testing.tolerances import Cli, UNet, tolerance

MODEL = {
    "image_size": 8,
    "in_channels": 1,
    "num_channels": 32,
    "num_res_blocks": 1,
    "attention_resolutions": "4",
    "channel_mult": "1,2",
    "learn_sigma": True,
    "diffusion_steps": 20,
    "noise_schedule": "cosine",
    "class_cond": True,
}
MODEL_FLAGS = [token for name, value in MODEL.items() for token in (f"--{name}", str(value))]
NUM, SEED, LABEL = 4, 3, 7  # one batch of 4 images of class 7 (no label draw: x_T is the first draw)
U8 = np.ndarray[Any, np.dtype[np.uint8]]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    with torch.random.fork_rng():  # the default initialisation draws from the global generator
        torch.manual_seed(0)
        model, _ = build_model_and_diffusion({**model_and_diffusion_defaults(), **MODEL})
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1 and not param.any():
                param.copy_(torch.randn(param.shape, generator=gen) / math.sqrt(param[0].numel()))
    path = tmp_path_factory.mktemp("fast") / "model.pt"
    torch.save(model.state_dict(), path)
    return str(path)


def _model(checkpoint: str) -> torch.nn.Module:
    model, _ = build_model_and_diffusion({**model_and_diffusion_defaults(), **MODEL})
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    return model.eval()


def sample(checkpoint: str, out: Path, *extra: str) -> U8:
    argv = [
        "sample",
        "--checkpoint",
        checkpoint,
        *MODEL_FLAGS,
        "--num_samples",
        str(NUM),
        "--batch_size",
        str(NUM),
        "--seed",
        str(SEED),
        "--class_label",
        str(LABEL),
        "--progress",
        "False",
        "--output",
        str(out),
        *extra,
    ]
    assert main(argv) == 0
    with np.load(out) as f:
        images: U8 = f["arr_0"]
    assert images.shape == (NUM, 8, 8, 1) and images.dtype == np.uint8
    return images


def nll(checkpoint: str, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    capsys.readouterr()
    argv = [
        "nll",
        "--checkpoint",
        checkpoint,
        *MODEL_FLAGS,
        "--num_samples",
        "4",
        "--batch_size",
        "2",
        "--seed",
        "1",
        *extra,
    ]
    assert main(argv) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


# ------------------------------------------------------------------------------------ --compile
@pytest.mark.parametrize(
    ("backend", "extra"),
    [
        ("eager", []),  # ancestral, 20 steps
        ("aot_eager", ["--use_ddim", "True", "--timestep_respacing", "ddim5", "--eta", "0.5"]),
        ("eager", ["--precision", "bf16", "--channels_last", "True", "--timestep_respacing", "5"]),
    ],
)
def test_compiled_steps_write_the_eager_images_bit_for_bit(
    checkpoint: str, tmp_path: Path, backend: str, extra: list[str]
) -> None:
    """CompiledStepRunner draws each step's noise outside the compiled region in the eager order, and the
    eager/aot_eager backends run the traced step with the eager kernels: same uint8 images, same seed
    (also under bf16 autocast with channels-last weights, the combination recommended on a GPU)."""
    plain = sample(checkpoint, tmp_path / "plain.npz", *extra)
    compiled = sample(
        checkpoint, tmp_path / "compiled.npz", *extra, "--compile", "True", "--compile_backend", backend
    )
    assert np.array_equal(compiled, plain)


# ----------------------------------------------------------- one-step process: images = f(one ε call)
def _one_step_pixel_bound(checkpoint: str, key: UNet) -> U8:
    """The largest |Δ uint8| a network-output error within tolerance(key) can cause, per pixel.

    With ``--timestep_respacing 1`` the respaced process keeps only t = 0, so x_0 = the posterior mean at
    t = 0 = clip(x̂_0), x̂_0 = x_T/√ᾱ_0 − √(1/ᾱ_0 − 1)·ε(x_T, 0) ([S10]/[S29]: coef1 = 1, coef2 = 0, no noise
    at t = 0).  So |Δx_0| <= b·|Δε| with b = √(1/ᾱ_0 − 1) (clip is 1-Lipschitz; the learned-σ channel is
    unused), and pixels u = 127.5·(x_0 + 1) rounded differ by <= floor(127.5·b·|Δε|) + 1.  ᾱ_0 comes from
    the cosine formula here, not from the code under test.  The 1e-3 level added covers float32 rounding of
    the other ~10 operations of the step, identical in both runs up to <= 10·eps32·127.5·2 ≈ 3e-4 levels.
    """
    s, steps = 0.008, MODEL["diffusion_steps"]
    assert isinstance(steps, int)

    def f(t: float) -> float:
        return math.cos((t / steps + s) / (1 + s) * math.pi / 2) ** 2

    b = math.sqrt(f(0) / f(1) - 1.0)
    gen = seeded_generator(derive_seed(SEED, 0), torch.device("cpu"))  # batch 0 of generate_samples
    x_t = torch.randn((NUM, 1, 8, 8), generator=gen)
    y = torch.full((NUM,), LABEL, dtype=torch.int64)
    with torch.no_grad():
        eps = _model(checkpoint)(x_t, torch.zeros(NUM), y=y)[:, :1].double()
    assert eps.abs().max() > 0.5  # the network matters (see the module docstring)
    tol = tolerance(key)
    levels = 127.5 * b * (tol.atol + tol.rtol * eps.abs())
    bound: U8 = (torch.floor(levels + 1e-3) + 1).permute(0, 2, 3, 1).numpy().astype(np.uint8)
    return bound


def _abs_diff(a: U8, b: U8) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.abs(a.astype(np.int64) - b.astype(np.int64))


def test_channels_last_changes_pixels_only_by_kernel_rounding(checkpoint: str, tmp_path: Path) -> None:
    """NHWC kernels reassociate float32 sums: |Δε| <= unet_reassociation, i.e. <= 1.2e-3·(1 + |ε|) levels
    after the one-step map, so a pixel can move by at most 1 level (and only next to a rounding boundary).
    Measured on the CPU: no pixel differs, in the one-step process nor in the 20-step chain (whose float
    samples differ by <= 1.4e-3 levels there); the chain is checked against the same 1-level allowance."""
    one = ["--timestep_respacing", "1"]
    plain = sample(checkpoint, tmp_path / "plain.npz", *one)
    nhwc = sample(checkpoint, tmp_path / "nhwc.npz", *one, "--channels_last", "True")
    bound = _one_step_pixel_bound(checkpoint, UNet.REASSOCIATION_FLOAT32)
    assert bound.max() == 1
    assert np.all(_abs_diff(nhwc, plain) <= bound)
    chain_plain = sample(checkpoint, tmp_path / "chain_plain.npz")
    chain_nhwc = sample(checkpoint, tmp_path / "chain_nhwc.npz", "--channels_last", "True")
    assert _abs_diff(chain_nhwc, chain_plain).max() <= 1


def test_bf16_changes_pixels_only_as_bf16_rounding_explains(checkpoint: str, tmp_path: Path) -> None:
    """bf16 autocast moves ε by <= unet_autocast (0.06·(1 + |ε|); the diffusion math stays float32, so
    nothing else changes): on the one-step process each pixel stays within the 1-2 levels that error allows
    (measured: 14 of 256 pixels move, by 1).  On the 20-step chain the flag must take effect (measured: 85
    of 256 pixels move, mean 0.6 levels, at most 19 where the chain amplifies; another seed: mean 111)."""
    one = ["--timestep_respacing", "1"]
    plain = sample(checkpoint, tmp_path / "plain.npz", *one)
    bf16 = sample(checkpoint, tmp_path / "bf16.npz", *one, "--precision", "bf16")
    bound = _one_step_pixel_bound(checkpoint, UNet.AUTOCAST_BFLOAT16)
    assert np.all(_abs_diff(bf16, plain) <= bound)
    chain_plain = sample(checkpoint, tmp_path / "chain_plain.npz")
    chain_bf16 = sample(checkpoint, tmp_path / "chain_bf16.npz", "--precision", "bf16")
    assert _abs_diff(chain_bf16, chain_plain).max() > 0


def test_cuda_switches_are_accepted_and_change_nothing_on_the_cpu(checkpoint: str, tmp_path: Path) -> None:
    before = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    one = ["--timestep_respacing", "3"]
    plain = sample(checkpoint, tmp_path / "plain.npz", *one)
    switched = sample(
        checkpoint, tmp_path / "switched.npz", *one, "--allow_tf32", "True", "--cudnn_benchmark", "True"
    )
    assert np.array_equal(switched, plain)
    after = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    assert after == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_switches_are_restored_after_the_command(checkpoint: str, tmp_path: Path) -> None:
    before = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    sample(
        checkpoint,
        tmp_path / "cuda.npz",
        "--device",
        "cuda",
        "--timestep_respacing",
        "3",
        "--allow_tf32",
        str(not before[0]),
        "--cudnn_benchmark",
        str(not before[2]),
    )
    after = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    assert after == before


# ------------------------------------------------------------------------------------------- nll
def test_nll_timestep_batch_gives_the_same_bits_per_dim(
    checkpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """3 timesteps per network call stack 3 copies of the batch; the noise stream is drawn in the same order
    and the bound's float32 arithmetic is unchanged (bit-exact for an elementwise model, see
    tests/evaluate/test_nll_bound.py), so only the U-Net's kernel blocking on 6 rows instead of 2 differs:
    the numbers agree to the nll_timestep_batch budget, while another seed moves them far beyond it."""
    tol = tolerance(Cli.NLL_TIMESTEP_BATCH)
    one = nll(checkpoint, capsys)
    three = nll(checkpoint, capsys, "--timestep_batch", "3")
    assert three["config"]["timestep_batch"] == 3 and one["config"]["timestep_batch"] == 1
    for key in ("total_bpd", "prior_bpd", "decoder_bpd", "vb_terms_bpd", "xstart_mse", "eps_mse"):
        assert_close(three[key], one[key], tol=tol, label=key)
    other_seed = nll(checkpoint, capsys, "--seed", "2")
    vb_seed, vb_one = np.array(other_seed["vb_terms_bpd"]), np.array(one["vb_terms_bpd"])
    assert np.max(np.abs(vb_seed - vb_one) / (tol.atol + tol.rtol * np.abs(vb_one))) > 10  # measured 230


def test_nll_precision_and_layout_flags_run_and_are_recorded(
    checkpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = nll(
        checkpoint,
        capsys,
        "--precision",
        "bf16",
        "--channels_last",
        "True",
        "--timestep_batch",
        "2",
        "--allow_tf32",
        "True",
    )
    assert result["config"]["precision"] == "bf16" and result["config"]["channels_last"] is True
    assert math.isfinite(result["total_bpd"]) and len(result["vb_terms_bpd"]) == 20


# ----------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("command", "extra", "needle"),
    [
        ("nll", ["--timestep_batch", "0"], "--timestep_batch"),
        ("sample", ["--compile", "True", "--compile_backend", "foo"], "--compile_backend"),
        ("sample", ["--precision", "fp8"], "--precision"),
        ("nll", ["--precision", "fp8"], "--precision"),
    ],
)
def test_bad_speed_flag_values_exit_2_with_one_line(
    checkpoint: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    extra: list[str],
    needle: str,
) -> None:
    out = tmp_path / ("s.npz" if command == "sample" else "n.json")
    code = main([command, "--checkpoint", checkpoint, *MODEL_FLAGS, "--output", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and needle in errors[0], err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert not out.exists()
