"""The oracle's own budgets: the float64 reference against independent mathematics (quadrature, scipy,
closed forms, Monte Carlo), used by tests/reference.

Never widen an entry to make a test pass without rewriting its reason as an error budget.
"""

from __future__ import annotations

import enum

from testing.tolerances.base import Tolerance


class Oracle(enum.Enum):
    """Budgets of the reference against independent mathematics."""

    NORMAL_KL_QUADRATURE = "normal_kl_quadrature"
    APPROX_CDF_MAX_DEVIATION = "approx_cdf_max_deviation"
    DISCRETIZED_SUM_TO_ONE = "discretized_sum_to_one"
    DISCRETIZED_BIN_ROUNDING = "discretized_bin_rounding"
    POSTERIOR_PRODUCT_FORMULA = "posterior_product_formula"
    MONTE_CARLO_SIGMAS = "monte_carlo_sigmas"
    ONE_JUMP_COMPOSITION = "one_jump_composition"
    POSTERIOR_VARIANCE_LE_BETA = "posterior_variance_le_beta"
    IMPORTANCE_IDENTITY = "importance_identity"
    RESPACED_ALPHA_BAR_PER_STEP = "respaced_alpha_bar_per_step"
    DDIM_ROUNDTRIP_PER_STEP = "ddim_roundtrip_per_step"
    INVERSE_PAIR_PER_UNIT = "inverse_pair_per_unit"
    REASSOCIATED_FORMULA = "reassociated_formula"
    CANCELLING_CLOSED_FORM = "cancelling_closed_form"
    DDIM_SIGMA_IDENTITY = "ddim_sigma_identity"
    PERFECT_MODEL_KL = "perfect_model_kl"
    VELOCITY_ROUND_TRIP = "velocity_round_trip"
    VELOCITY_VS_EPS_MODEL = "velocity_vs_eps_model"
    LINEAR_SOFTMAX_GRADIENT_FD = "linear_softmax_gradient_fd"


ORACLE: dict[Oracle, Tolerance] = {
    Oracle.NORMAL_KL_QUADRATURE: Tolerance(
        rtol=1e-8,
        atol=1e-10,
        reason="scipy.integrate.quad of p·(log p − log q) over the real line, asked for epsabs=1e-12, "
        "epsrel=1e-10; the test also asserts quad's own error estimate is below atol.  The closed "
        "form [S15] is ~10 float64 ops (relative error ~1e-15).  rtol 1e-8 covers quad's relative "
        "error on the larger KLs (values up to ~50 nats) with a 100x margin over epsrel.",
    ),
    Oracle.APPROX_CDF_MAX_DEVIATION: Tolerance(
        rtol=0.0,
        atol=1.8e-4,
        reason="Measured max |Φ_tanh(x) − ndtr(x)| = 1.7893e-4 at |x| ≈ 2.592 on a 1e-5 grid of [-12, "
        "12]; between grid points the difference moves by at most step·max|φ_tanh − φ| < "
        "1e-5·1e-3 = 1e-8, so 1.8e-4 bounds the true maximum.  It is the bias SPEC [S16] keeps on "
        "purpose.",
    ),
    Oracle.DISCRETIZED_SUM_TO_ONE: Tolerance(
        rtol=0.0,
        atol=3e-10,
        reason="Over the 256 bins the probabilities telescope: Φ̃(u_0) + Σ(Φ̃(u_k) − Φ̃(u_{k−1})) + 1 − "
        "Φ̃(u_254) = 1 exactly, so the CDF bias (approx_cdf_max_deviation) cancels.  What "
        "remains: the 1e-12 floor can raise each of 256 bins by ≤ 1e-12 (2.56e-10); the upper "
        "edge x_k + 1/255 and the next lower edge x_{k+1} − 1/255 differ by ≤ 2 ulp(1) = 4.4e-16, "
        "moving Φ̃ by ≤ 0.4/σ·4.4e-16 per edge, i.e. ≤ 255·1.8e-14 = 4.5e-12 for σ ≥ 0.01 (the "
        "test's range); subtraction and exp∘log rounding ≤ 256·4·eps = 2.3e-13.  Total 2.61e-10, "
        "rounded up to 3e-10.",
    ),
    Oracle.DISCRETIZED_BIN_ROUNDING: Tolerance(
        rtol=0.0,
        atol=1e-12,
        reason="Per-bin probability with Φ_tanh vs with the exact ndtr: the bias is ≤ "
        "2·approx_cdf_max_deviation (a difference of two CDF values; one value at the open-ended "
        "edge bins); this entry is the extra allowance on top: the 1e-12 floor (≤ 1e-12) plus "
        "float64 rounding (~1e-16).",
    ),
    Oracle.POSTERIOR_PRODUCT_FORMULA: Tolerance(
        rtol=1e-9,
        atol=1e-13,
        reason="[S7]/[S8] vs the precision-weighted product of q(x_t|x_{t−1}) and q(x_{t−1}|x_0), both "
        "in float64 from the same betas.  1 − ᾱ_{t−1} is formed by subtraction in both: condition "
        "number 1/(1 − ᾱ_0) ≤ 1/β_0 ≤ 1e4 (linear T=1000 has β_0 = 1e-4; cosine T=50 has 1.7e-3), "
        "so ~20 ops give ≤ 20·eps·1e4 = 4.4e-11 relative; rtol 1e-9 is 20x that.  atol covers "
        "values that cancel to ~0 (means of O(1) terms: ≤ 1e4·eps·|terms| ≈ 2e-12 relative to "
        "terms, stated against |expected|).",
    ),
    Oracle.MONTE_CARLO_SIGMAS: Tolerance(
        rtol=0.0,
        atol=5.0,
        reason="Monte-Carlo checks compare (estimate − exact)/standard_error against this many standard "
        "errors.  |z| > 5 has a two-sided probability 5.7e-7 per check under the null (the seeds "
        "are fixed, so the suite is deterministic; the bound says a wrong formula would have to "
        "hide within 5 SE).",
    ),
    Oracle.ONE_JUMP_COMPOSITION: Tolerance(
        rtol=1e-11,
        atol=0.0,
        reason="[S5] mean/variance vs composing T one-step Gaussians (m ← √α_s m, v ← α_s v + β_s).  "
        "Each composed step adds ≤ 3 eps relative, so T ≤ 1000 steps give ≤ 3000·eps = 6.7e-13; "
        "the table side is a cumprod of the same α (≤ T·eps) and a sqrt.  1e-11 is ~10x the sum.",
    ),
    Oracle.POSTERIOR_VARIANCE_LE_BETA: Tolerance(
        rtol=4.5e-16,
        atol=0.0,
        reason="β̃ = β·(1 − ᾱ_prev)/(1 − ᾱ_t) ≤ β exactly in real arithmetic; the float64 product and "
        "division round twice, so β̃ may exceed β by at most 2 ulp, i.e. 2·2.2e-16 relative.",
    ),
    Oracle.IMPORTANCE_IDENTITY: Tolerance(
        rtol=1e-13,
        atol=0.0,
        reason="Σ_t p_t·w_t·L_t vs mean_t L_t with w_t = 1/(T p_t) and L_t ≥ 0: each term has ≤ 3 eps "
        "relative error and the sum of T ≤ 100 non-negative terms adds ≤ T·eps, so ≤ 103·eps = "
        "2.3e-14 relative to the mean; 1e-13 is ~4x.",
    ),
    Oracle.RESPACED_ALPHA_BAR_PER_STEP: Tolerance(
        rtol=4.5e-16,
        atol=0.0,
        reason="Per kept step, relative error units for cumprod(1 − β') vs ᾱ[S]: β' = 1 − r (r = ᾱ "
        "ratio) then α' = 1 − β' recovers r with absolute error ≤ eps, i.e. relative ≤ eps/r, "
        "plus ≤ eps for the product.  The test's bound is rtol·Σ_i (2 + 1/r_i) with rtol = 2 eps "
        "= 4.5e-16 per unit.",
    ),
    Oracle.DDIM_ROUNDTRIP_PER_STEP: Tolerance(
        rtol=0.0,
        atol=3.6e-15,
        reason="DDIM (η=0) down from level k then inversion back, perfect ε-model: each step rebuilds "
        "x̂_0 = x_t/√ᾱ_t − …, so a few ulps of x_t (|x_t| ≤ M) become ≈ 4·eps·M/√ᾱ_t in x̂_0, and "
        "two steps per level (there and back) give ≤ 16·eps·M/√ᾱ_t = 3.6e-15·M/√ᾱ_t.  The test's "
        "bound is atol·M·Σ_t 1/√ᾱ_t (measured: 7.7e-14 vs a bound of ~1.3e-11 for cosine T=50, M "
        "≈ 3).",
    ),
    Oracle.INVERSE_PAIR_PER_UNIT: Tolerance(
        rtol=0.0,
        atol=1.8e-15,
        reason="An inverse pair ([S9] after [S6]; [S10] after [S7]) rebuilds a value by dividing by a "
        "small coefficient c (√ᾱ_t or √(1 − ᾱ_t) for [S9], c1_t for [S10]): the forward side's ≤ "
        "2 ulp on values of size ≤ M come back as ≤ 2·eps·M/c.  The tables' own coefficients "
        "carry the rounding of the subtractions 1 − ᾱ_t and 1/ᾱ_t − 1, relative error ≤ 2·eps·κ "
        "with κ = 1/(1 − ᾱ_t).  With ≤ 4 eps·M for the remaining ops: ≤ 8·eps = 1.8e-15 per unit "
        "of M·(1 + 1/c + κ); the test's bound is atol·M·(1 + 1/c + κ) elementwise (measured ≤ 0.3 "
        "eps per unit on cosine/linear T=1000).",
    ),
    Oracle.REASSOCIATED_FORMULA: Tolerance(
        rtol=1e-12,
        atol=1e-15,
        reason="The oracle and the test evaluate the same closed form written differently (≤ ~20 float64 "
        "ops on inputs of magnitude ≤ ~10): each side is within 20·eps = 4.4e-15 relative for a "
        "well-conditioned formula; rtol 1e-12 admits condition numbers up to ~100 (log near 1, "
        "e^{±2}, bin differences of the CDF).  atol 1e-15 covers results that are 0 in exact "
        "arithmetic built from terms of size ≤ 1 (≤ 4 eps).",
    ),
    Oracle.CANCELLING_CLOSED_FORM: Tolerance(
        rtol=0.0,
        atol=1e-14,
        reason="Prior KL ½(σ² + μ² − 1 − ln σ²)/ln 2 with σ² ≈ 1: O(1) terms cancel to a result ~1e-7, "
        "so only an absolute bound is meaningful: ≤ 5 terms of size ≤ 2 each rounded to eps, plus "
        "the sum's roundings: ≤ 10·2·eps/ln 2 = 6.4e-15.",
    ),
    Oracle.DDIM_SIGMA_IDENTITY: Tolerance(
        rtol=1e-11,
        atol=0.0,
        reason="DDIM σ(η=1)² = β̃_t ([S30] vs [S8]): 1 − ᾱ_t/ᾱ_prev recovers β_t with absolute error ≤ 2 "
        "eps, relative ≤ 2 eps/β_t ≤ 2.5e-13 for β_t ≥ 1.7e-3 (cosine T = 50, the test's "
        "schedule); the other ~8 ops add ≤ 8 eps.  1e-11 is ~40x that.",
    ),
    Oracle.PERFECT_MODEL_KL: Tolerance(
        rtol=0.0,
        atol=1e-12,
        reason="With a perfect ε-model and FIXED_SMALL, p_θ and q posterior share the clipped log "
        "variance exactly and their means agree up to rounding δ ≤ 1e4·eps·|x| ≈ 1e-11 (x̂_0 "
        "amplified by 1/√ᾱ ≤ 1e3); the KL is δ²/(2β̃)/ln 2 ≤ (1e-11)²/(2·1e-5) ≈ 5e-18 bits/dim.  "
        "atol 1e-12 is a loose bound on rounding of a quantity that is exactly 0 in real "
        "arithmetic.",
    ),
    Oracle.VELOCITY_ROUND_TRIP: Tolerance(
        rtol=0.0,
        atol=1e-13,
        reason="[S40]/[S41] applied to x_t = q_sample(x_0, ε): two products and a sum per side, coefficients "
        "√ᾱ, √(1 − ᾱ) <= 1, values |x_0| <= 1, |ε| <= 5, |x_t| + |v| <= ~10: a few ulps (2.2e-16) of 10 "
        "per formula, two formulas chained: < 1e-14; 1e-13 leaves a factor of ~10",
    ),
    Oracle.VELOCITY_VS_EPS_MODEL: Tolerance(
        rtol=1e-11,
        atol=1e-11,
        reason="a v-model built from an ε-model (v̂ = √ᾱ ε̂ − √(1 − ᾱ) x̂_0(ε̂)) against the ε-model itself: "
        "x̂_0 = (x_t − √(1 − ᾱ) ε̂)/√ᾱ divides by √ᾱ_T, which is 0.016 for the T = 50 cosine schedule "
        "(amplification ~60 of a few ulps of |x_t| + |ε̂| <= ~10, then the √ᾱ-weighted recombination): "
        "< 1e-12; 1e-11 leaves a factor of ~10",
    ),
    Oracle.LINEAR_SOFTMAX_GRADIENT_FD: Tolerance(
        rtol=0.0,
        atol=1e-8,
        reason="[S49] ∇ log p_y against a float64 central difference of an independent NumPy log-softmax at "
        "h = 1e-5 along unit directions v (tests/reference/test_classifier_guidance.py: W entries in "
        "[-0.5, 0.5], D <= 12, so |(W v)_k| <= 1.8 and their range R <= 3.5).  Truncation: h²·|f‴|/6 with "
        "|f‴| <= R³ (the third cumulant of the logits along v) = 43: <= 7.2e-10.  Rounding: log p is <= ~10 "
        "(|b| <= 1, |W x| <= 1.8·‖x‖ with ‖x‖ <= ~5, plus log K), each evaluation within ~10 ulps: "
        "10 × 2.2e-16 × 10 / 1e-5 = 2.2e-9.  Sum 2.9e-9; atol 1e-8 (3x)",
    ),
}
