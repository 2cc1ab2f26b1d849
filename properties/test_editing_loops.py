"""The editing loop against the reference, step by step: the start [S53]–[S54], every reverse step followed
by the replacement [S55], the ascents of the forward kernel [S56] along RePaint's schedule [S57], with the
noise drawn from the generator in the documented order."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from impl.diffusion.types import SamplingOptions
from impl.sampling.editing import edit_sample_loop_progressive
from properties import strategies as sp
from properties.compare import Perturb, assert_outputs_close, identity, reference_sensitivity
from properties.marshal import impl_diffusion, reference_tables, to_numpy, toy_model_numpy, toy_model_torch
from reference.editing import forward_step, jump_schedule, noised_to_level, replace_known, start_level
from reference.process import p_mean_variance
from reference.steps import ddim_step, p_sample_step
from testing.tolerances import ReferenceOp, impl_vs_reference

LOOP_CASES = sp.step_cases(max_steps=10)
FloatArray = NDArray[np.float64]


def _recording_model(spec: sp.ProcessSpec) -> tuple[Callable[..., torch.Tensor], list[torch.Tensor]]:
    """The toy network, recording the x of every call (the input of each reverse step)."""
    inputs: list[torch.Tensor] = []

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        inputs.append(x.clone())
        return toy_model_torch(x, spec.learned_variance, spec.var_type)

    return model, inputs


def _levels(top: int, jump_length: int, resample_jumps: int) -> list[int]:
    return [0] if top == 0 else jump_schedule(top, jump_length, resample_jumps)


@given(case=LOOP_CASES, ddim=st.booleans(), strength=st.sampled_from((1.0, 0.6, 0.25, 0.0)))
@settings(max_examples=8, deadline=None)
def test_img2img_loop_chains_reference_steps(case: sp.StepCase, ddim: bool, strength: float) -> None:
    """img2img: the reference start x_{ℓ₀} [S53]–[S54], then the reference steps (see below)."""
    check_edit_loop(case, ddim, False, strength, (10, 1))


@given(
    case=LOOP_CASES,
    ddim=st.booleans(),
    strength=st.sampled_from((1.0, 0.7)),
    jumps=st.sampled_from(((1, 2), (2, 2), (1, 3), (10, 1))),
)
@settings(max_examples=12, deadline=None)
def test_inpainting_loop_chains_reference_steps(
    case: sp.StepCase, ddim: bool, strength: float, jumps: tuple[int, int]
) -> None:
    """Inpainting with RePaint's resampling: replacement [S55] after every step, ascents [S56] along the
    jump schedule [S57] (see below)."""
    check_edit_loop(case, ddim, True, strength, jumps)


def check_edit_loop(
    case: sp.StepCase, ddim: bool, masked: bool, strength: float, jumps: tuple[int, int]
) -> None:
    """Each reverse step the loop yields equals the reference step from the same input, then the
    replacement with the known image at the level it arrives at; each step's input is the reference start
    (first) or the previous yielded sample carried up by the forward kernel (after a jump)."""
    spec = case.process
    diffusion = impl_diffusion(spec)
    model, inputs = _recording_model(spec)
    arrays = sp.case_arrays(case)
    x0 = arrays.x_start
    mask = (arrays.grad[:, :1] > 0.0).astype(np.float64) if masked else None
    jump_length, resample_jumps = jumps if masked else (10, 1)
    options = SamplingOptions(
        clip_denoised=case.clip_denoised,
        eta=case.eta if ddim else 0.0,
        generator=torch.Generator().manual_seed(case.seed),
    )
    top = start_level(strength, spec.num_timesteps)

    def run() -> list[dict[str, torch.Tensor]]:
        return list(
            edit_sample_loop_progressive(
                diffusion,
                model,
                torch.from_numpy(x0),
                strength=strength,
                keep=None if mask is None else torch.from_numpy(mask),
                jump_length=jump_length,
                resample_jumps=resample_jumps,
                use_ddim=ddim,
                options=options,
            )
        )

    if resample_jumps > 1 and jump_length >= top:  # the schedule [S57] has no jump level 1 + a·j
        with pytest.raises(ValueError, match="jump_length"):
            run()
        assert inputs == []  # refused before the first network call
        return
    outputs = run()
    twin = torch.Generator().manual_seed(case.seed)

    def draw() -> FloatArray:
        return to_numpy(torch.randn(case.shape, generator=twin, dtype=torch.float64))

    batch = case.shape[0]
    levels = _levels(top, jump_length, resample_jumps)
    assert len(outputs) == sum(1 for a, b in itertools.pairwise(levels) if b < a)
    if levels[0] == 0:
        return
    eps = draw()

    def begin(perturb: Perturb) -> dict[str, FloatArray]:
        tab = reference_tables(spec, perturb)
        return {"x": noised_to_level(tab, perturb(x0, "x_start"), np.full(batch, levels[0]), eps)}

    carried = begin(identity)
    ascents: list[tuple[int, FloatArray]] = []  # (code index, z) since the last reverse step
    previous: FloatArray | None = None
    index = 0
    for here, there in itertools.pairwise(levels):
        if there > here:
            ascents.append((here, draw()))
            continue
        seed = zlib.crc32(repr((case, index)).encode())
        if previous is not None:  # the input: the last sample, carried up by the ascents since

            def carry(
                perturb: Perturb, start: FloatArray = previous, steps: list[tuple[int, FloatArray]] = ascents
            ) -> dict[str, FloatArray]:
                tab = reference_tables(spec, perturb)
                x = perturb(start, "x_t")
                for code, z in steps:
                    x = forward_step(tab, x, np.full(batch, code), z)
                return {"x": x}

            carried = carry(identity)
            # the composed kernels are <= 3 affine steps of <= 4 ops: inside the 16-op AFFINE budget
            assert_outputs_close(
                {"x": to_numpy(inputs[index])},
                carried,
                impl_vs_reference("float64", ReferenceOp.AFFINE_STEP),
                sensitivity=reference_sensitivity(carry, carried, seed),
                inputs=(case, here),
                label="edit step input",
            )
        else:
            assert_outputs_close(
                {"x": to_numpy(inputs[index])},
                carried,
                impl_vs_reference("float64", ReferenceOp.AFFINE_STEP),
                sensitivity=reference_sensitivity(begin, carried, seed),
                inputs=case,
                label="edit start",
            )
        ascents = []
        t = np.full(batch, there, dtype=np.int64)
        z = draw() if not ddim or case.eta != 0.0 else None
        known_eps = draw() if mask is not None else None
        x_in = to_numpy(inputs[index])

        def step(
            perturb: Perturb,
            x_in: FloatArray = x_in,
            z: FloatArray | None = z,
            known_eps: FloatArray | None = known_eps,
            t: NDArray[np.int64] = t,
        ) -> dict[str, FloatArray]:
            tab = reference_tables(spec, perturb)
            xp = perturb(x_in, "x_t")
            pmv = p_mean_variance(
                tab,
                toy_model_numpy(xp, spec.learned_variance, spec.var_type),
                xp,
                t,
                model_mean_type=spec.mean_type,
                model_var_type=spec.var_type,
                clip_denoised=case.clip_denoised,
            )
            noise = np.zeros(case.shape) if z is None else z
            sample = ddim_step(tab, pmv, xp, t, noise, case.eta) if ddim else p_sample_step(pmv, t, noise)
            if mask is not None and known_eps is not None:
                sample = replace_known(
                    sample, noised_to_level(tab, perturb(x0, "x_start"), t, known_eps), mask
                )
            return {"sample": np.asarray(sample), "pred_xstart": np.asarray(pmv["pred_xstart"])}

        expected = step(identity)
        actual = {key: to_numpy(outputs[index][key]) for key in ("sample", "pred_xstart")}
        assert_outputs_close(
            actual,
            expected,
            impl_vs_reference("float64", ReferenceOp.REVERSE_STEP),
            sensitivity=reference_sensitivity(step, expected, seed),
            inputs=(case, ddim, masked, there),
            label="edit step",
        )
        if mask is not None and there == 0:
            assert np.array_equal(actual["sample"] * mask, x0 * mask)
        previous = actual["sample"]
        index += 1
