"""impl against reference: the budgets of the property catalogue (`properties/`), per precision and op.

Comparisons there pass when ``|impl − ref| <= atol + rtol·S`` elementwise, S = max(|ref|, sensitivity),
the sensitivity being Σ_i |∂f/∂v_i|·|v_i| over every input and table entry v_i (estimated by perturbing
them by relative eps32, see `properties.compare`): the magnitude rounding errors are multiplied by,
condition number included (e.g. √(1/ᾱ_t) ~ 1e4 at t = T − 1 of the cosine schedule, 1/c1 in [S10]).  So
each rtol below is (ops in the formula) × (ulp per op) × a safety factor, with no hidden condition number.

- ``"float64"``: impl computing in float64.  Both sides evaluate the same formulas in the same precision,
  so only reassociation differs: a few ulps (FLOAT64_EPS) per op.
- ``"float32"``: impl computing in float32.  Tables are built in float64 and rounded once, so each op
  contributes ~FLOAT32_EPS relative error and a formula of k ops stays within a small multiple of k·eps.

Never widen an entry to make a test pass without rewriting its reason as an error budget.
"""

from __future__ import annotations

import enum
from typing import Literal

from testing.tolerances.base import FLOAT32_EPS, FLOAT64_EPS, Tolerance

Precision = Literal["float64", "float32"]


class ReferenceOp(enum.Enum):
    """The kind of formula a catalogue entry compares (an entry's ``op``)."""

    SCHEDULE = "schedule"
    TABLES = "tables"
    EXACT = "exact"
    RESPACED_BETAS = "respaced_betas"
    AFFINE_STEP = "affine_step"
    REVERSE_STEP = "reverse_step"
    LIKELIHOOD = "likelihood"
    BOUND = "bound"
    TIMESTEP_PROBS = "timestep_probs"


IMPL_VS_REFERENCE: dict[tuple[Precision, ReferenceOp], Tolerance] = {
    ("float64", ReferenceOp.SCHEDULE): Tolerance(
        rtol=8 * FLOAT64_EPS,
        atol=0.0,
        reason="β by the same closed forms ([S1] linspace; [S2] 1 − ᾱ(τ2)/ᾱ(τ1) with each ᾱ evaluation "
        "within 2 ulps): <= 4 rounded ops relative to S, whose sensitivity part (ᾱ evaluations "
        "perturbed) carries the 1/β amplification of 1 − ratio; 4 ops × 1 ulp × 2 margin",
    ),
    ("float64", ReferenceOp.TABLES): Tolerance(
        rtol=4 * FLOAT64_EPS,
        atol=0.0,
        reason="[S4]–[S9] tables are built by the impl in NumPy float64 from β with the same operations "
        "(cumprod in order, then <= 4 elementwise ops per table), so only a different association "
        "could move a table; S = |ref| here (tables are compared directly): 4 ulps",
    ),
    ("float32", ReferenceOp.TABLES): Tolerance(
        rtol=0.5 * FLOAT32_EPS,
        atol=0.0,
        reason="each float64 table is rounded once to float32 (round to nearest: <= eps/2 relative, no "
        "subnormals: every table entry used is > 1e-30), which is all the float32 path does to a "
        "table",
    ),
    ("float64", ReferenceOp.EXACT): Tolerance(
        rtol=0.0,
        atol=0.0,
        reason="integer results (kept timesteps, counts) and loss histories that only copy values: must "
        "match",
    ),
    ("float64", ReferenceOp.RESPACED_BETAS): Tolerance(
        rtol=8 * FLOAT64_EPS,
        atol=0.0,
        reason="β'_i = 1 − ᾱ_{S_i}/ᾱ_{S_{i−1}} [S28]: ᾱ from the same cumprod, then a division and a "
        "subtraction; the subtraction cancels when the ratio is near 1, and S = |β'| here; the "
        "tables entry shows ᾱ equal to 4 ulps, so 2 ops + 4 ulps of ᾱ, doubled",
    ),
    ("float64", ReferenceOp.AFFINE_STEP): Tolerance(
        rtol=16 * FLOAT64_EPS,
        atol=0.0,
        reason="[S5]–[S10]: gathers plus <= 4 ops (2 products, a sum, a division): each <= 1 ulp of its "
        "term, terms bounded by S; torch vs NumPy may associate differently: 4 ops × 1 ulp × 4 "
        "margin",
    ),
    ("float32", ReferenceOp.AFFINE_STEP): Tolerance(
        rtol=16 * FLOAT32_EPS,
        atol=0.0,
        reason="tables rounded once (<= eps/2 each, their amplification inside S) plus <= 4 float32 ops "
        "of <= eps/2 of a term each; inputs are compared after the same float32 rounding on both "
        "sides: 4 ops × 1 eps × 4 margin",
    ),
    ("float64", ReferenceOp.REVERSE_STEP): Tolerance(
        rtol=64 * FLOAT64_EPS,
        atol=0.0,
        reason="p_mean_variance and one step chain ~25 ops (x̂_0 4, denoised_fn 2, clip, μ̃ 4, variance "
        "interpolation + exp 5, the step <= 10 incl. 3 sqrt) each <= 1 ulp of its term (exp/sqrt "
        "<= 1 ulp in both libraries); S carries √(1/ᾱ) and 1/c1 amplification: 25 ops × 1 ulp, "
        "×2.5 margin",
    ),
    ("float32", ReferenceOp.REVERSE_STEP): Tolerance(
        rtol=64 * FLOAT32_EPS,
        atol=0.0,
        reason="the same ~25 float32 ops of <= eps/2..1 eps each, plus tables rounded once (inside S); S "
        "carries the condition numbers (√(1/ᾱ_{T−1}) ~ 1e4 cosine, 1 − ᾱ_prev − σ² cancellation "
        "in DDIM): 25 × 1 eps × 2.5 margin",
    ),
    ("float64", ReferenceOp.LIKELIHOOD): Tolerance(
        rtol=64 * FLOAT64_EPS,
        atol=0.0,
        reason="[S15] 8 ops + 2 exp, [S16] 5 ops + tanh, [S17] 2 CDFs + 3 logs + clamps: <= 20 ops, "
        "transcendentals within 2 ulps in torch and NumPy; exp and log(cdf⁺ − cdf⁻) amplification "
        "is in S: 20 ops × 2 ulps × 1.6 margin",
    ),
    ("float32", ReferenceOp.LIKELIHOOD): Tolerance(
        rtol=64 * FLOAT32_EPS,
        atol=0.0,
        reason="the same <= 20 float32 ops (transcendentals <= 2 ulps); the bin-probability difference "
        "cdf⁺ − cdf⁻ loses relative accuracy as 1/(cdf⁺ − cdf⁻), which S includes: 20 × 2 eps × "
        "1.6",
    ),
    ("float64", ReferenceOp.BOUND): Tolerance(
        rtol=256 * FLOAT64_EPS,
        atol=0.0,
        reason="vb term = posterior (8 ops) + p_mean_variance (25) + KL or decoder NLL (20) + a mean "
        "over <= 27 elements (27 ulps) + rescaling; the loop adds <= 10 terms: ~100 ops × 1 ulp "
        "of S, ×2.5 margin",
    ),
    ("float32", ReferenceOp.BOUND): Tolerance(
        rtol=256 * FLOAT32_EPS,
        atol=0.0,
        reason="the same ~100 float32 ops (each <= 1 eps of a term bounded by S; KL's exp(−log Σ) ~ 1e6 "
        "at small t and the decoder's bin probabilities are inside S): 100 × 1 eps × 2.5 margin",
    ),
    ("float64", ReferenceOp.TIMESTEP_PROBS): Tolerance(
        rtol=32 * FLOAT64_EPS,
        atol=0.0,
        reason="[S24]–[S26] in float64 on the device: a mean of K <= 4 squares, a sqrt, a sum over T <= "
        "8, a normalisation and the uniform mix (<= 16 ops), or 1/(T·p_t) (2 ops); inverse-CDF "
        "indices are integers and must agree (an ulp-level CDF difference flips one only if u "
        "lands within an ulp of a boundary, probability ~1e-15 per draw): 16 ops × 1 ulp × 2",
    ),
}
