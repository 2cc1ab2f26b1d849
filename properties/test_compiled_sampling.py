"""`CompiledStepRunner`: a loop whose steps run through `torch.compile` equals the eager loop bit for bit
for the same generator (ancestral and DDIM, plain and respaced), and one step traces into one graph.

On CPU the runner is exercised with backend="eager": dynamo traces the whole step (network,
p_mean_variance, noise add) but runs the traced graph with the eager kernels, so any difference from the
eager loop would come from the runner's wiring (noise order, dtype, kwargs, timesteps), which is what is
under test.  Code generation (inductor) and CUDA graphs are tested on CUDA only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import impl
from impl.sampling.compiled import CompiledStepRunner
from properties import strategies as sp
from properties.marshal import impl_diffusion, toy_model_torch
from testing.assertions import assert_close
from testing.tolerances import Sampling, tolerance

LOOP_CASES = sp.step_cases(max_steps=10)
# A respaced process: a 40-step base kept at 10 steps ("ddim10": stride 4), the network called at the
# base's timesteps rescaled to 1000/40 per step.
RESPACED = sp.ProcessSpec(
    "cosine",
    40,
    tuple(sorted(impl.space_timesteps(40, "ddim10"))),
    "EPSILON",
    "LEARNED_RANGE",
    "RESCALED_MSE",
    True,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


class ToyNet(torch.nn.Module):
    """A per-sample network with a parameter, a timestep input and a class label (eval-mode safe)."""

    def __init__(self, learned: bool, var_type: str) -> None:
        super().__init__()
        self.learned = learned
        self.var_type = var_type
        self.gain = torch.nn.Parameter(torch.tensor(0.9, dtype=torch.float64))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        shift = 1e-3 * t.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        if y is not None:
            shift = shift + 0.1 * y.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        return toy_model_torch(self.gain.to(x.dtype) * x + shift, self.learned, self.var_type)


def _run(
    spec: sp.ProcessSpec,
    shape: tuple[int, ...],
    seed: int,
    *,
    ddim: bool,
    eta: float,
    clip: bool,
    dtype: torch.dtype,
    runner: CompiledStepRunner | None,
) -> list[dict[str, torch.Tensor]]:
    diffusion = impl_diffusion(spec)
    model = _net(spec)
    kwargs = {"y": torch.arange(shape[0]) % 3}
    x_t = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    generator = torch.Generator().manual_seed(seed + 1)
    if ddim:
        steps = diffusion.ddim_sample_loop_progressive(
            model, shape, x_t, clip, None, None, kwargs, eta=eta, generator=generator, step_runner=runner
        )
    else:
        steps = diffusion.p_sample_loop_progressive(
            model, shape, x_t, clip, None, None, kwargs, generator=generator, step_runner=runner
        )
    return list(steps)


_NETS: dict[tuple[bool, str], ToyNet] = {}


def _net(spec: sp.ProcessSpec) -> ToyNet:
    # One network per variance kind, so that a runner's compiled steps are reused across examples.
    key = (spec.learned_variance, spec.var_type)
    if key not in _NETS:
        _NETS[key] = ToyNet(*key).eval()
    return _NETS[key]


Chain = list[dict[str, torch.Tensor]]


def _assert_same_chain(actual: Chain, expected: Chain) -> None:
    assert len(actual) == len(expected)
    for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
        for key in ("sample", "pred_xstart"):
            assert a[key].dtype == e[key].dtype, (index, key)
            assert torch.equal(a[key], e[key]), (index, key, (a[key] - e[key]).abs().max())


EAGER_RUNNER = CompiledStepRunner(backend="eager")


@given(
    case=LOOP_CASES,
    ddim=st.booleans(),
    respaced=st.booleans(),
    double=st.booleans(),
)
@settings(max_examples=6)
def test_compiled_loop_equals_eager_loop(case: sp.StepCase, ddim: bool, respaced: bool, double: bool) -> None:
    """Every yielded step of the runner's loop equals the eager loop's bit for bit (same generator seed):
    the noise is drawn outside the compiled step in the eager order and dtype, DDIM with η = 0 draws
    nothing, and the step runs the eager functions."""
    spec = RESPACED if respaced else case.process
    options: dict[str, Any] = {
        "ddim": ddim,
        "eta": case.eta,
        "clip": case.clip_denoised,
        "dtype": torch.float64 if double else torch.float32,
    }
    eager = _run(spec, case.shape, case.seed, runner=None, **options)
    compiled = _run(spec, case.shape, case.seed, runner=EAGER_RUNNER, **options)
    _assert_same_chain(compiled, eager)


def _recording_runner() -> tuple[CompiledStepRunner, list[torch.fx.GraphModule]]:
    graphs: list[torch.fx.GraphModule] = []

    def backend(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Callable[..., Any]:
        graphs.append(gm)
        return gm.forward

    return CompiledStepRunner(backend=backend, fullgraph=True), graphs


@pytest.mark.parametrize("ddim", [False, True])
def test_whole_step_traces_into_one_graph_for_the_whole_loop(ddim: bool) -> None:
    """fullgraph=True traces network + p_mean_variance + noise add without a break (a break raises), and
    the loop compiles exactly one graph: the timestep is a tensor input, so no step recompiles (a CUDA
    graph of the step is then replayed for every t).  The graph contains the network (its parameter).
    Dynamo's caches are process-wide, so they are cleared first: earlier tests must not count here."""
    torch._dynamo.reset()
    runner, graphs = _recording_runner()
    options: dict[str, Any] = {"ddim": ddim, "eta": 0.5, "clip": True, "dtype": torch.float32}
    compiled = _run(RESPACED, (2, 1, 2, 2), 11, runner=runner, **options)
    eager = _run(RESPACED, (2, 1, 2, 2), 11, runner=None, **options)
    _assert_same_chain(compiled, eager)
    assert len(graphs) == 1, [str(g.graph)[:400] for g in graphs]
    assert any("gain" in str(node.target) for node in graphs[0].graph.nodes)


def test_runner_rejects_a_model_that_promotes_the_compute_dtype() -> None:
    """A float64 network output with float32 x makes the eager step draw float64 noise: the runner, which
    draws in the compute dtype before the step, refuses rather than silently differ."""
    spec = sp.ProcessSpec("cosine", 4, None, "EPSILON", "FIXED_SMALL", "MSE", False)
    diffusion = impl_diffusion(spec)

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x.double()

    with pytest.raises(ValueError, match="dtype"):
        diffusion.p_sample_loop(
            model, (1, 1, 2, 2), generator=torch.Generator().manual_seed(0), step_runner=EAGER_RUNNER
        )


@needs_cuda
def test_cuda_graph_loop_equals_eager_loop_on_cuda() -> None:
    """On CUDA the "cudagraphs" backend replays the eager kernels as a CUDA graph: the loop equals the
    eager CUDA loop bit for bit, and yielded steps stay valid after later replays (they are cloned)."""
    diffusion = impl_diffusion(RESPACED)
    model = ToyNet(RESPACED.learned_variance, RESPACED.var_type).cuda().eval()
    shape = (4, 3, 8, 8)
    runner = CompiledStepRunner(backend="cudagraphs")
    for ddim in (False, True):
        chains = []
        for step_runner in (None, runner):
            generator = torch.Generator(device="cuda").manual_seed(5)
            loop = diffusion.ddim_sample_loop_progressive if ddim else diffusion.p_sample_loop_progressive
            kwargs: dict[str, Any] = {"eta": 0.5} if ddim else {}
            chains.append(list(loop(model, shape, generator=generator, step_runner=step_runner, **kwargs)))
        _assert_same_chain(chains[1], chains[0])


@needs_cuda
def test_reduce_overhead_loop_matches_eager_on_cuda() -> None:
    """The default CUDA configuration (inductor, "reduce-overhead": CUDA graphs) samples the eager chain up
    to the rounding of inductor's fused kernels, in float64 (the budget
    Sampling.COMPILED_STEP_CHAIN_FLOAT64 of testing/tolerances)."""
    diffusion = impl_diffusion(RESPACED)
    model = ToyNet(RESPACED.learned_variance, RESPACED.var_type).cuda().eval()
    shape = (4, 3, 8, 8)
    x_t = torch.randn(shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64).cuda()
    runs = []
    for step_runner in (None, CompiledStepRunner()):
        generator = torch.Generator(device="cuda").manual_seed(5)
        runs.append(diffusion.p_sample_loop(model, shape, x_t, generator=generator, step_runner=step_runner))
    budget = tolerance(Sampling.COMPILED_STEP_CHAIN_FLOAT64)
    assert runs[1].dtype == torch.float64
    assert_close(runs[1], runs[0], tol=budget)
