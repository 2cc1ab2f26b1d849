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
    FEATURE_STATISTICS = "feature_statistics"
    FRECHET_DISTANCE = "frechet_distance"
    INCEPTION_SCORE = "inception_score"
    KNN_SQUARED_RADII = "knn_squared_radii"
    MANIFOLD_COVERAGE = "manifold_coverage"
    KERNEL_INCEPTION_DISTANCE = "kernel_inception_distance"
    CLASSIFIER_ACCURACY = "classifier_accuracy"
    CLASSIFIER_CROSS_ENTROPY = "classifier_cross_entropy"
    CLASSIFIER_GRADIENT = "classifier_gradient"
    GUIDED_OUTPUT = "guided_output"


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
    ("float32", ReferenceOp.EXACT): Tolerance(
        rtol=0.0,
        atol=0.0,
        reason="results that only select among float32 inputs (the inpainting replacement [S55] is a "
        "select, m ∈ {0, 1}): both sides see the same float32-rounded values, so they must match",
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
    # ---- the evaluation metrics [S32]–[S39] (properties/catalogue/metrics.py): float64 NumPy on both
    # sides, float64 only.  Each entry's `magnitude` adds the size of the terms its sums round against to
    # S (named below as M), so S >= M; n <= 40 rows and d <= 8 columns throughout.
    ("float64", ReferenceOp.FEATURE_STATISTICS): Tolerance(
        rtol=1024 * FLOAT64_EPS,
        atol=0.0,
        reason="[S32] μ and Σ, M = (1/n) Σ_i |f_ij| for μ and (1/(n−1)) Σ_i (|f_ij| + |μ_j|)(|f_ik| + "
        "|μ_k|) for Σ: a sum of n <= 40 terms in another order (<= (n+1) ulps of M), the centring f − μ "
        "(<= (n+2) ulps of |f| + |μ| each factor): <= (3n+5)·eps·M ~ 125 eps per side, 250 for both; "
        "4x margin (the former table's 1e-12 ~ 4500 eps relative to the scale s², tightened)",
    ),
    ("float64", ReferenceOp.FRECHET_DISTANCE): Tolerance(
        rtol=65536 * FLOAT64_EPS,
        atol=0.0,
        reason="[S33] d², M = tr Σ1 + tr Σ2 (the terms that cancel against 2 tr √(Σ1^½ Σ2 Σ1^½) for close "
        "Gaussians): both sides take the same symmetric route (eigh, two products, eigvalsh), so they "
        "differ by reduction order only; eigenvalues of M' = Σ1^½ Σ2 Σ1^½ are within d·eps·‖M'‖, the root "
        "amplifies each by 1/(2√λ_min): d terms give (d²/2)·eps·√‖M'‖·√cond(M'), with √‖M'‖ <= M/2, d <= "
        "8 and cond(M') <= cond Σ1 · cond Σ2 <= ~1e6 (n >= 3d rows): <= 1.6e4 eps·M, ×2 for the factor "
        "2, ×2 for both sides: the worst case, no further margin (observed: equal)",
    ),
    ("float64", ReferenceOp.INCEPTION_SCORE): Tolerance(
        rtol=4096 * FLOAT64_EPS,
        atol=0.0,
        reason="[S34] IS = exp(x), x a mean over <= 60 rows of K <= 20-term sums p·(log p − log p̄) with "
        "Σ_k p(|log p| + |log p̄|) <= 2 log K + log 60 ~ 10: x within (K+2)·eps·10 + 60·eps·x ~ 400 "
        "ulps, kept as relative error by exp; S >= |IS| for the mean; the std of <= 10 split scores gets "
        "M = mean + 3·std >= max_i IS_i and moves by <= 2·max_i |δIS_i|: <= 1600 eps·M for both sides; "
        "2.5x margin (the former 1e-12 ~ 4500 eps, tightened)",
    ),
    ("float64", ReferenceOp.KNN_SQUARED_RADII): Tolerance(
        rtol=1024 * FLOAT64_EPS,
        atol=0.0,
        reason="[S35] ρ_k², M = 4·max_i ‖f_i‖² >= (‖a‖ + ‖b‖)²: the impl's ‖a‖² + ‖b‖² − 2a·b over d <= 8 "
        "columns is within (d+1)·eps·(‖a‖ + ‖b‖)², the oracle's squared explicit differences within "
        "(d+3)·eps·‖a − b‖² (sqrt, then squared here); the k-th order statistic moves by no more than the "
        "largest distance error: <= (2d+4)·eps·M = 20 eps·M; 50x margin (the former 1e-12·max‖f‖² ~ "
        "1100 eps·M)",
    ),
    ("float64", ReferenceOp.MANIFOLD_COVERAGE): Tolerance(
        rtol=0.0,
        atol=0.0,
        reason="[S36] precision and recall are counts / n of ball memberships (comparisons): the impl's "
        "expanded squared distances differ from the oracle's explicit ones by <= ~4·d·eps·(‖a‖² + ‖b‖²), "
        "so cases with a pair within 1e-9 relative of its ball's radius are discarded as ties (not "
        "disagreements); the counts must then be equal, and the sensitivity is not used (zero tolerance)",
    ),
    ("float64", ReferenceOp.KERNEL_INCEPTION_DISTANCE): Tolerance(
        rtol=8192 * FLOAT64_EPS,
        atol=0.0,
        reason="[S37]–[S39] M = k̄ = max |k(x, y)| over all rows (Cauchy–Schwarz: >= every (Σ|x_i y_i|/d "
        "+ 1)³): a kernel value within (3(d+2)+2)·eps·k̄ <= 32 eps·k̄, each of the 3 means of m² <= 121 "
        "terms within ~133 eps·k̄ (recursive-summation bound), the cross mean counted twice: ~660 eps·k̄ "
        "per side, ~1320 for both; the std over <= 5 subsets moves by <= 2x that: 2640 eps·k̄; 3x margin "
        "(the former 1e-10·k̄ ~ 4.5e5 eps, tightened)",
    ),
    # ---- the noisy-image classifier [S58]–[S59] (properties/catalogue/classifier_training.py): logits on
    # a grid of multiples of 1/4 in [−30, 30], exact in float32 and float64, K <= 20 classes.
    ("float64", ReferenceOp.CLASSIFIER_ACCURACY): Tolerance(
        rtol=0.0,
        atol=0.0,
        reason="[S58] per-quarter top-k accuracy is a count of exact comparisons between grid values "
        "(representable in both tiers) divided by a count, both sides dividing the same two integers in "
        "float64: must be equal",
    ),
    ("float32", ReferenceOp.CLASSIFIER_ACCURACY): Tolerance(
        rtol=0.0,
        atol=0.0,
        reason="[S58] as for float64: the float32 logits are the same grid values, the comparisons are exact "
        "and the impl sums hits and counts in float64: must be equal",
    ),
    ("float64", ReferenceOp.CLASSIFIER_CROSS_ENTROPY): Tolerance(
        rtol=64 * FLOAT64_EPS,
        atol=0.0,
        reason="[S59] ℓ = m + log Σ_k exp(z_k − m) − z_y, M = 1 + 2·max|z| (the entry's magnitude): the K "
        "differences z − m (each <= eps/2 of 2·max|z|), K exps (1 ulp each), a K-term sum (<= K·eps/2 "
        "relative, the sum >= 1), the log (1 ulp, plus the sum's relative error as absolute error) and the "
        "two subtractions: <= (K/2 + 3)·eps·M = 13 eps·M for K <= 20 per side, 26 for both; 2.5x margin",
    ),
    ("float32", ReferenceOp.CLASSIFIER_CROSS_ENTROPY): Tolerance(
        rtol=32 * FLOAT32_EPS,
        atol=0.0,
        reason="[S59] the same <= (K/2 + 3)·eps·M = 13 eps·M (K <= 20) of the float32 log-softmax on exact "
        "grid inputs, the float64 oracle's error negligible beside it; 2.5x margin",
    ),
    # ---- classifier guidance [S48], [S49] (properties/catalogue/classifier_guidance.py): autograd through
    # a linear-softmax classifier against the closed form; the entry's magnitude adds to S the term sizes
    # M = s·[L·Σ_k p_k|W_kd| + Σ_k |W_kd|(1[k=y] + p_k)], L the largest logit sum Σ_d |W_kd x_d| + |b_k|.
    ("float64", ReferenceOp.CLASSIFIER_GRADIENT): Tolerance(
        rtol=128 * FLOAT64_EPS,
        atol=0.0,
        reason="[S48]/[S49] logits are sums of D + 1 <= 28 terms (<= 28 ulps of L each, in any order), which "
        "move p_k by <= 2·p_k·max δf: <= 56 ulps of the first term of M; the softmax (exp, sum over K <= 10, "
        "division) and the backward contraction Σ_k W_kd (1[k=y] − p_k) over K terms and the product by s "
        "add <= K + 6 = 16 ulps of the second: <= 56 eps·M in all; 2x margin",
    ),
    ("float32", ReferenceOp.CLASSIFIER_GRADIENT): Tolerance(
        rtol=128 * FLOAT32_EPS,
        atol=0.0,
        reason="the same float32 operations (inputs rounded to float32 on both sides): <= 2(D + 1) = 56 eps "
        "of L·Σ p_k|W_kd| through the logits and <= K + 6 = 16 eps of the contraction's terms: <= 56 eps·M; "
        "2x margin",
    ),
    ("float64", ReferenceOp.GUIDED_OUTPUT): Tolerance(
        rtol=4 * FLOAT64_EPS,
        atol=0.0,
        reason="[S50] ε̂(∅) + w·(ε̂(y) − ε̂(∅)): 3 rounded ops (difference, product, sum), each within "
        "1 ulp of a term bounded by the entry's magnitude |w|·(|ε̂(y)| + |ε̂(∅)|) + |ε̂(∅)| (added to S); "
        "the variance channels of [S52] are copied (exact): 3 ops × 1 ulp, rounded up to 4",
    ),
    ("float32", ReferenceOp.GUIDED_OUTPUT): Tolerance(
        rtol=4 * FLOAT32_EPS,
        atol=0.0,
        reason="the inputs (and w, a float32-exact number) reach both sides rounded alike to float32; the "
        "3 float32 ops of [S50] each round within eps/2 of a term bounded by the magnitude in S: "
        "3 × eps/2 = 1.5 eps, ~2.7x margin; copied variance channels exact",
    ),
}
