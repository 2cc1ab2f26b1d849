"""Fast paths compute the plain path's function: SDPA, channels-last, autocast, checkpointing, compile."""

from __future__ import annotations

import copy
import os
import time
from typing import Any

import pytest
import torch
from torch.nn import functional as nnf

from impl.nn import AttentionBlock, GroupNorm32, UNetModel, naive_attention, sdpa_attention
from impl.runtime.backend_flags import backend_flags_scope
from testing.assertions import assert_close
from testing.tolerances import UNet, tolerance
from tests.nn._helpers import inputs, perturb_zero_parameters, randomize_all_parameters, tiny_unet

REASSOCIATION = tolerance(UNet.REASSOCIATION_FLOAT32)
AUTOCAST = tolerance(UNet.AUTOCAST_BFLOAT16)


def _model(**overrides: Any) -> UNetModel:
    model = tiny_unet(num_classes=3, **overrides).eval()
    randomize_all_parameters(model, seed=5)
    return model


def _batch(size: tuple[int, int] = (8, 8)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x, t = inputs(batch=2, size=size, seed=7)
    return x, t, torch.tensor([2, 0])


# ---- attention backends -------------------------------------------------------------------------------


@pytest.mark.parametrize(("heads", "head_channels", "tokens"), [(1, 8, 5), (4, 16, 64), (3, 2, 9)])
def test_float64_naive_attention_equals_sdpa(heads: int, head_channels: int, tokens: int) -> None:
    gen = torch.Generator().manual_seed(heads)
    qkv = torch.randn(2, tokens, 3 * heads * head_channels, generator=gen, dtype=torch.float64) * 2
    assert_close(sdpa_attention(qkv, heads), naive_attention(qkv, heads), tol=tolerance(UNet.FORWARD_FLOAT64))


def test_attention_backends_agree_in_float32_model() -> None:
    model = _model()
    x, t, y = _batch()
    with torch.no_grad():
        model.attention_backend = "naive"
        naive = model(x, t, y)
        model.attention_backend = "sdpa"
        fast = model(x, t, y)
    assert_close(fast, naive, tol=REASSOCIATION)
    assert model.attention_backend == "sdpa"
    with pytest.raises(ValueError, match="attention_backend"):
        model.attention_backend = "flash"


# ---- channels-last --------------------------------------------------------------------------------------


def test_channels_last_model_equals_plain_and_stays_channels_last() -> None:
    model = _model()
    x, t, y = _batch()
    with torch.no_grad():
        plain = model(x, t, y)
        fast_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        fast = fast_model(x.to(memory_format=torch.channels_last), t, y)
    assert_close(fast, plain, tol=REASSOCIATION)
    assert fast.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("backend", ["sdpa", "naive"])
def test_attention_block_keeps_the_memory_format(backend: str) -> None:
    block = next(m for m in _model(attention_backend=backend).modules() if isinstance(m, AttentionBlock))
    x = torch.randn(2, 64, 4, 4)
    with torch.no_grad():
        contiguous = block(x)
        channels_last = block(x.to(memory_format=torch.channels_last))
    assert contiguous.is_contiguous()
    assert channels_last.is_contiguous(memory_format=torch.channels_last)
    assert_close(channels_last, contiguous, tol=REASSOCIATION)


# ---- autocast ---------------------------------------------------------------------------------------------


def test_bf16_autocast_is_within_the_bf16_budget_and_returns_the_input_dtype() -> None:
    model = _model()
    x, t, y = _batch()
    with torch.no_grad():
        reference = model(x, t, y)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(x, t, y)
    assert mixed.dtype == torch.float32
    assert_close(mixed, reference, tol=AUTOCAST)


def test_group_norm_runs_in_float32_under_autocast() -> None:
    norm = GroupNorm32(32, 64)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    h = torch.randn(2, 64, 4, 4).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        out = norm(h)
    expected = nnf.group_norm(h.float(), 32, norm.weight, norm.bias, norm.eps).to(torch.bfloat16)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, expected)  # one rounding of the float32 result, nothing computed in bf16


def test_float64_model_stays_float64() -> None:
    model = _model().double()
    x, t, y = _batch()
    with torch.no_grad():
        assert model(x.double(), t, y).dtype == torch.float64


# ---- gradient checkpointing ------------------------------------------------------------------------------


def _loss_and_grads(model: UNetModel, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    x, t, y = _batch()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # dropout masks
    out = model(x, t, y)
    out.square().mean().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _with_checkpointing(model: UNetModel) -> UNetModel:
    ckpt = tiny_unet(num_classes=3, dropout=0.2, use_checkpoint=True)
    ckpt.load_state_dict(model.state_dict())
    return ckpt


def test_gradient_checkpointing_gives_identical_outputs_and_gradients() -> None:
    model = tiny_unet(num_classes=3, dropout=0.2).train()
    perturb_zero_parameters(model, seed=4)
    ckpt = _with_checkpointing(model).train()
    out, grads = _loss_and_grads(model, seed=11)
    ckpt_out, ckpt_grads = _loss_and_grads(ckpt, seed=11)
    assert torch.equal(ckpt_out, out)  # same dropout masks: the RNG state is replayed on recomputation
    assert grads.keys() == ckpt_grads.keys() == {n for n, _ in model.named_parameters()}
    for name, grad in grads.items():
        assert_close(ckpt_grads[name], grad, tol=REASSOCIATION, label=name)


# ---- torch.compile ---------------------------------------------------------------------------------------


def test_compiles_without_graph_breaks() -> None:
    """``fullgraph=True`` fails on any graph break, data-dependent branch or host sync (``.item()``)."""
    torch._dynamo.reset()
    model = _model()
    x, t, y = _batch()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        assert torch.equal(compiled(x, t, y), model(x, t, y))


def test_compiles_with_checkpointing_in_training() -> None:
    torch._dynamo.reset()
    model = tiny_unet(num_classes=3, use_checkpoint=True).train()
    perturb_zero_parameters(model, seed=4)
    x, t, y = _batch()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    compiled(x, t, y).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


INDUCTOR_REASON = (
    "inductor codegen of even the tiniest U-Net takes > 60 s on a 2-core CPU (measured ~80 s for the test "
    "model); set IDDPM_RUN_INDUCTOR=1 (or run on CUDA) to run it"
)


@pytest.mark.slow
@pytest.mark.cuda(optional=True)
@pytest.mark.skipif(
    not (os.environ.get("IDDPM_RUN_INDUCTOR") or torch.cuda.is_available()), reason=INDUCTOR_REASON
)
def test_inductor_fullgraph_equals_eager() -> None:
    torch._dynamo.reset()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = _model().to(device)
    x, t, y = (v.to(device) for v in _batch())
    start = time.perf_counter()
    compiled = torch.compile(model, fullgraph=True, backend="inductor")
    with torch.no_grad():
        assert_close(compiled(x, t, y), model(x, t, y), tol=REASSOCIATION)
    assert time.perf_counter() - start < 600


# ---- CUDA -----------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("use_new_attention_order", [False, True])
def test_cuda_autocast_channels_last_sdpa_without_host_syncs(
    dtype: torch.dtype, use_new_attention_order: bool
) -> None:
    model = _model(use_new_attention_order=use_new_attention_order).cuda()
    x, t, y = (v.cuda() for v in _batch())
    with torch.no_grad():
        reference = model(x, t, y)
        fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
        x_cl = x.to(memory_format=torch.channels_last)
        fast(x_cl, t, y)  # warm-up (lazy CUDA initialisation may synchronise)
        torch.cuda.set_sync_debug_mode("error")
        try:
            with torch.autocast("cuda", dtype=dtype):
                mixed = fast(x_cl, t, y)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert mixed.dtype == torch.float32
    assert_close(mixed, reference, tol=AUTOCAST)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_sdpa_new_attention_order_equals_cpu_einsum() -> None:
    """The new order's strided q/k/v views through CUDA's SDPA kernels compute the CPU einsum's function
    (TF32 off: float32 convolutions and matmuls on both sides)."""
    model = _model(use_new_attention_order=True, attention_backend="naive")
    x, t, y = _batch()
    device = torch.device("cuda")
    with torch.no_grad(), backend_flags_scope(device, allow_tf32=False, cudnn_benchmark=False):
        expected = model(x, t, y)
        cuda_model = copy.deepcopy(model).to(device)
        cuda_model.attention_backend = "sdpa"
        actual = cuda_model(x.to(device), t.to(device), y.to(device)).cpu()
    assert_close(actual, expected, tol=REASSOCIATION)
