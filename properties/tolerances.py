"""The one table of numerical tolerances used by the test suites, each with the reason it is what it is.

Keys are ``(tier, operation)``.  Tiers:
- ``"oracle"``: the float64 reference against independent mathematics (quadrature, scipy, Monte Carlo).
- ``"float64"``: impl computing in float64 against the reference.  Both evaluate the same formulas in the
  same precision, so only reassociation differs: a few ulps (2.2e-16) times the condition number of the
  formula.
- ``"float32"``: impl computing in float32 against the reference.  float32 has eps = 1.19e-7; tables are
  built in float64 and rounded once, so each op contributes ~eps relative error and a formula of k ops
  stays within a small multiple of k·eps, scaled by the magnitude of its inputs.

Never widen an entry to make a test pass without rewriting its reason as an error budget.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """``|actual - expected| <= atol + rtol * |expected|`` elementwise."""

    rtol: float
    atol: float
    reason: str


TOLERANCES: dict[tuple[str, str], Tolerance] = {
    # ---- section "oracle": reference vs independent mathematics (owned by tests/reference) ----
    ("oracle", "normal_kl_quadrature"): Tolerance(
        rtol=1e-8,
        atol=1e-10,
        reason="scipy.integrate.quad of p·(log p − log q) over the real line, asked for epsabs=1e-12, "
        "epsrel=1e-10; the test also asserts quad's own error estimate is below atol.  The closed form "
        "[S15] is ~10 float64 ops (relative error ~1e-15).  rtol 1e-8 covers quad's relative error on "
        "the larger KLs (values up to ~50 nats) with a 100x margin over epsrel.",
    ),
    ("oracle", "approx_cdf_max_deviation"): Tolerance(
        rtol=0.0,
        atol=1.8e-4,
        reason="Measured max |Φ_tanh(x) − ndtr(x)| = 1.7893e-4 at |x| ≈ 2.592 on a 1e-5 grid of [-12, "
        "12]; between grid points the difference moves by at most step·max|φ_tanh − φ| < 1e-5·1e-3 = "
        "1e-8, so 1.8e-4 bounds the true maximum.  It is the bias SPEC [S16] keeps on purpose.",
    ),
    ("oracle", "discretized_sum_to_one"): Tolerance(
        rtol=0.0,
        atol=3e-10,
        reason="Over the 256 bins the probabilities telescope: Φ̃(u_0) + Σ(Φ̃(u_k) − Φ̃(u_{k−1})) + 1 − "
        "Φ̃(u_254) = 1 exactly, so the CDF bias (approx_cdf_max_deviation) cancels.  What remains: the "
        "1e-12 floor can raise each of 256 bins by ≤ 1e-12 (2.56e-10); the upper edge x_k + 1/255 and "
        "the next lower edge x_{k+1} − 1/255 differ by ≤ 2 ulp(1) = 4.4e-16, moving Φ̃ by ≤ "
        "0.4/σ·4.4e-16 per edge, i.e. ≤ 255·1.8e-14 = 4.5e-12 for σ ≥ 0.01 (the test's range); "
        "subtraction and exp∘log rounding ≤ 256·4·eps = 2.3e-13.  Total 2.61e-10, rounded up to 3e-10.",
    ),
    ("oracle", "discretized_bin_rounding"): Tolerance(
        rtol=0.0,
        atol=1e-12,
        reason="Per-bin probability with Φ_tanh vs with the exact ndtr: the bias is ≤ "
        "2·approx_cdf_max_deviation (a difference of two CDF values; one value at the open-ended edge "
        "bins); this entry is the extra allowance on top: the 1e-12 floor (≤ 1e-12) plus float64 "
        "rounding (~1e-16).",
    ),
    ("oracle", "posterior_product_formula"): Tolerance(
        rtol=1e-9,
        atol=1e-13,
        reason="[S7]/[S8] vs the precision-weighted product of q(x_t|x_{t−1}) and q(x_{t−1}|x_0), both "
        "in float64 from the same betas.  1 − ᾱ_{t−1} is formed by subtraction in both: condition number "
        "1/(1 − ᾱ_0) ≤ 1/β_0 ≤ 1e4 (linear T=1000 has β_0 = 1e-4; cosine T=50 has 1.7e-3), so ~20 ops "
        "give ≤ 20·eps·1e4 = 4.4e-11 relative; rtol 1e-9 is 20x that.  atol covers values that cancel to "
        "~0 (means of O(1) terms: ≤ 1e4·eps·|terms| ≈ 2e-12 relative to terms, stated against "
        "|expected|).",
    ),
    ("oracle", "monte_carlo_sigmas"): Tolerance(
        rtol=0.0,
        atol=5.0,
        reason="Monte-Carlo checks compare (estimate − exact)/standard_error against this many standard "
        "errors.  |z| > 5 has a two-sided probability 5.7e-7 per check under the null (the seeds are "
        "fixed, so the suite is deterministic; the bound says a wrong formula would have to hide within "
        "5 SE).",
    ),
    ("oracle", "one_jump_composition"): Tolerance(
        rtol=1e-11,
        atol=0.0,
        reason="[S5] mean/variance vs composing T one-step Gaussians (m ← √α_s m, v ← α_s v + β_s).  "
        "Each composed step adds ≤ 3 eps relative, so T ≤ 1000 steps give ≤ 3000·eps = 6.7e-13; the "
        "table side is a cumprod of the same α (≤ T·eps) and a sqrt.  1e-11 is ~10x the sum.",
    ),
    ("oracle", "posterior_variance_le_beta"): Tolerance(
        rtol=4.5e-16,
        atol=0.0,
        reason="β̃ = β·(1 − ᾱ_prev)/(1 − ᾱ_t) ≤ β exactly in real arithmetic; the float64 product and "
        "division round twice, so β̃ may exceed β by at most 2 ulp, i.e. 2·2.2e-16 relative.",
    ),
    ("oracle", "importance_identity"): Tolerance(
        rtol=1e-13,
        atol=0.0,
        reason="Σ_t p_t·w_t·L_t vs mean_t L_t with w_t = 1/(T p_t) and L_t ≥ 0: each term has ≤ 3 eps "
        "relative error and the sum of T ≤ 100 non-negative terms adds ≤ T·eps, so ≤ 103·eps = 2.3e-14 "
        "relative to the mean; 1e-13 is ~4x.",
    ),
    ("oracle", "respaced_alpha_bar_per_step"): Tolerance(
        rtol=4.5e-16,
        atol=0.0,
        reason="Per kept step, relative error units for cumprod(1 − β') vs ᾱ[S]: β' = 1 − r (r = ᾱ "
        "ratio) then α' = 1 − β' recovers r with absolute error ≤ eps, i.e. relative ≤ eps/r, plus ≤ eps "
        "for the product.  The test's bound is rtol·Σ_i (2 + 1/r_i) with rtol = 2 eps = 4.5e-16 per unit.",
    ),
    ("oracle", "ddim_roundtrip_per_step"): Tolerance(
        rtol=0.0,
        atol=3.6e-15,
        reason="DDIM (η=0) down from level k then inversion back, perfect ε-model: each step rebuilds "
        "x̂_0 = x_t/√ᾱ_t − …, so a few ulps of x_t (|x_t| ≤ M) become ≈ 4·eps·M/√ᾱ_t in x̂_0, and two "
        "steps per level (there and back) give ≤ 16·eps·M/√ᾱ_t = 3.6e-15·M/√ᾱ_t.  The test's bound is "
        "atol·M·Σ_t 1/√ᾱ_t (measured: 7.7e-14 vs a bound of ~1.3e-11 for cosine T=50, M ≈ 3).",
    ),
    ("oracle", "inverse_pair_per_unit"): Tolerance(
        rtol=0.0,
        atol=1.8e-15,
        reason="An inverse pair ([S9] after [S6]; [S10] after [S7]) rebuilds a value by dividing by a "
        "small coefficient c (√ᾱ_t or √(1 − ᾱ_t) for [S9], c1_t for [S10]): the forward side's ≤ 2 ulp "
        "on values of size ≤ M come back as ≤ 2·eps·M/c.  The tables' own coefficients carry the "
        "rounding of the subtractions 1 − ᾱ_t and 1/ᾱ_t − 1, relative error ≤ 2·eps·κ with κ = 1/(1 − "
        "ᾱ_t).  With ≤ 4 eps·M for the remaining ops: ≤ 8·eps = 1.8e-15 per unit of M·(1 + 1/c + κ); the "
        "test's bound is atol·M·(1 + 1/c + κ) elementwise (measured ≤ 0.3 eps per unit on cosine/linear "
        "T=1000).",
    ),
    ("oracle", "reassociated_formula"): Tolerance(
        rtol=1e-12,
        atol=1e-15,
        reason="The oracle and the test evaluate the same closed form written differently (≤ ~20 "
        "float64 ops on inputs of magnitude ≤ ~10): each side is within 20·eps = 4.4e-15 relative for a "
        "well-conditioned formula; rtol 1e-12 admits condition numbers up to ~100 (log near 1, e^{±2}, "
        "bin differences of the CDF).  atol 1e-15 covers results that are 0 in exact arithmetic built "
        "from terms of size ≤ 1 (≤ 4 eps).",
    ),
    ("oracle", "cancelling_closed_form"): Tolerance(
        rtol=0.0,
        atol=1e-14,
        reason="Prior KL ½(σ² + μ² − 1 − ln σ²)/ln 2 with σ² ≈ 1: O(1) terms cancel to a result ~1e-7, "
        "so only an absolute bound is meaningful: ≤ 5 terms of size ≤ 2 each rounded to eps, plus the "
        "sum's roundings: ≤ 10·2·eps/ln 2 = 6.4e-15.",
    ),
    ("oracle", "ddim_sigma_identity"): Tolerance(
        rtol=1e-11,
        atol=0.0,
        reason="DDIM σ(η=1)² = β̃_t ([S30] vs [S8]): 1 − ᾱ_t/ᾱ_prev recovers β_t with absolute error ≤ "
        "2 eps, relative ≤ 2 eps/β_t ≤ 2.5e-13 for β_t ≥ 1.7e-3 (cosine T = 50, the test's schedule); "
        "the other ~8 ops add ≤ 8 eps.  1e-11 is ~40x that.",
    ),
    ("oracle", "perfect_model_kl"): Tolerance(
        rtol=0.0,
        atol=1e-12,
        reason="With a perfect ε-model and FIXED_SMALL, p_θ and q posterior share the clipped log "
        "variance exactly and their means agree up to rounding δ ≤ 1e4·eps·|x| ≈ 1e-11 (x̂_0 amplified "
        "by 1/√ᾱ ≤ 1e3); the KL is δ²/(2β̃)/ln 2 ≤ (1e-11)²/(2·1e-5) ≈ 5e-18 bits/dim.  atol 1e-12 is a "
        "loose bound on rounding of a quantity that is exactly 0 in real arithmetic.",
    ),
    # ---- end of section "oracle" ----
    # ---- section "float64" / "float32": impl vs reference (owned by properties/) ----
    # -- U-Net entries (used by tests/nn) --
    ("float64", "unet_forward"): Tolerance(
        rtol=1e-12,
        atol=1e-12,
        reason="impl.nn U-Net vs an independent functional float64 forward, outputs O(1): ~40 layers "
        "in series, each a dot product of length <= 9·256 whose rounding error is ~sqrt(n)·eps "
        "≈ 50·1.1e-16 ≈ 6e-15 relative; GroupNorm keeps activations O(1), so errors add over layers "
        "to <= 40·6e-15 ≈ 2.4e-13 (observed 4e-15); 1e-12 leaves a factor 4 above that worst case",
    ),
    ("float64", "unet_timestep_embedding"): Tolerance(
        rtol=0.0,
        atol=1e-12,
        reason="cos/sin of t·exp(-ln(1e4)·k/half) vs t·1e4^(-k/half) in float64, t < 1000: the argument "
        "differs by a few ulps of 1000 (~1e-13 · 2), and |d cos| <= |d arg|, so <= 1e-12",
    ),
    ("float32", "unet_reassociation"): Tolerance(
        rtol=1e-4,
        atol=1e-4,
        reason="one float32 U-Net, two evaluation orders of the same function (SDPA vs einsum attention, "
        "channels-last vs contiguous kernels, batch of 1 vs B, compiled vs eager), outputs O(1): each of ~40 "
        "layers reassociates dot products of length <= 2304, ~sqrt(n)·eps32 ≈ 48·6e-8 ≈ 3e-6 relative, "
        "summed over the layers <= 40·3e-6 ≈ 1.2e-4 in the worst case, random-walk ~2e-5 (observed ~5e-6)",
    ),
    ("bfloat16", "unet_autocast"): Tolerance(
        rtol=0.06,
        atol=0.06,
        reason="bf16 autocast vs float32 of the tiny test U-Net (~20 convs/linears, outputs O(1), norms and "
        "softmax in float32): each layer rounds its inputs and weights to bf16, unit roundoff 2^-8 ≈ 3.9e-3, "
        "errors random-walk over ~20 layers to ~sqrt(20)·3.9e-3 ≈ 1.7e-2 per element (std), and the max "
        "over ~1000 outputs is ~3.5 std ≈ 6e-2 (observed 3.5e-2 relative to 1 + |ref|)",
    ),
    # -- diffusion entries (used by properties/: the catalogue, see properties/compare.py) --
    # Comparisons there pass when |impl − ref| <= atol + rtol·S elementwise, S = max(|ref|, sensitivity),
    # the sensitivity being Σ_i |∂f/∂v_i|·|v_i| over every input and table entry v_i (estimated by
    # perturbing them by relative eps32): the magnitude rounding errors are multiplied by, condition number
    # included (e.g. √(1/ᾱ_t) ~ 1e4 at t = T − 1 of the cosine schedule, 1/c1 in [S10]).  So each rtol below
    # is (ops in the formula) × (ulp per op) × a safety factor, with no hidden condition number.
    ("float64", "schedule"): Tolerance(
        rtol=8 * 2.22e-16,
        atol=0.0,
        reason="β by the same closed forms ([S1] linspace; [S2] 1 − ᾱ(τ2)/ᾱ(τ1) with each ᾱ evaluation "
        "within "
        "2 ulps): <= 4 rounded ops relative to S, whose sensitivity part (ᾱ evaluations perturbed) "
        "carries the "
        "1/β amplification of 1 − ratio; 4 ops × 1 ulp × 2 margin",
    ),
    ("float64", "tables"): Tolerance(
        rtol=4 * 2.22e-16,
        atol=0.0,
        reason="[S4]–[S9] tables are built by the impl in NumPy float64 from β with the same operations "
        "(cumprod "
        "in order, then <= 4 elementwise ops per table), so only a different association could move a table; "
        "S = |ref| here (tables are compared directly): 4 ulps",
    ),
    ("float32", "tables"): Tolerance(
        rtol=0.5 * 1.19e-7,
        atol=0.0,
        reason="each float64 table is rounded once to float32 (round to nearest: <= eps/2 relative, no "
        "subnormals: every table entry used is > 1e-30), which is all the float32 path does to a table",
    ),
    ("float64", "exact"): Tolerance(
        rtol=0.0,
        atol=0.0,
        reason="integer results (kept timesteps, counts) and loss histories that only copy values: must "
        "match",
    ),
    ("float64", "respaced_betas"): Tolerance(
        rtol=8 * 2.22e-16,
        atol=0.0,
        reason="β'_i = 1 − ᾱ_{S_i}/ᾱ_{S_{i−1}} [S28]: ᾱ from the same cumprod, then a division and a "
        "subtraction; the subtraction cancels when the ratio is near 1, and S = |β'| here; the tables entry "
        "shows ᾱ equal to 4 ulps, so 2 ops + 4 ulps of ᾱ, doubled",
    ),
    ("float64", "affine_step"): Tolerance(
        rtol=16 * 2.22e-16,
        atol=0.0,
        reason="[S5]–[S10]: gathers plus <= 4 ops (2 products, a sum, a division): each <= 1 ulp of its "
        "term, "
        "terms bounded by S; torch vs NumPy may associate differently: 4 ops × 1 ulp × 4 margin",
    ),
    ("float32", "affine_step"): Tolerance(
        rtol=16 * 1.19e-7,
        atol=0.0,
        reason="tables rounded once (<= eps/2 each, their amplification inside S) plus <= 4 float32 ops of "
        "<= eps/2 of a term each; inputs are compared after the same float32 rounding on both sides: "
        "4 ops × 1 eps × 4 margin",
    ),
    ("float64", "reverse_step"): Tolerance(
        rtol=64 * 2.22e-16,
        atol=0.0,
        reason="p_mean_variance and one step chain ~25 ops (x̂_0 4, denoised_fn 2, clip, μ̃ 4, variance "
        "interpolation + exp 5, the step <= 10 incl. 3 sqrt) each <= 1 ulp of its term (exp/sqrt <= 1 ulp in "
        "both libraries); S carries √(1/ᾱ) and 1/c1 amplification: 25 ops × 1 ulp, ×2.5 margin",
    ),
    ("float32", "reverse_step"): Tolerance(
        rtol=64 * 1.19e-7,
        atol=0.0,
        reason="the same ~25 float32 ops of <= eps/2..1 eps each, plus tables rounded once (inside S); S "
        "carries "
        "the condition numbers (√(1/ᾱ_{T−1}) ~ 1e4 cosine, 1 − ᾱ_prev − σ² cancellation in DDIM): 25 × 1 eps "
        "× 2.5 margin",
    ),
    ("float64", "likelihood"): Tolerance(
        rtol=64 * 2.22e-16,
        atol=0.0,
        reason="[S15] 8 ops + 2 exp, [S16] 5 ops + tanh, [S17] 2 CDFs + 3 logs + clamps: <= 20 ops, "
        "transcendentals within 2 ulps in torch and NumPy; exp and log(cdf⁺ − cdf⁻) amplification is in S: "
        "20 ops × 2 ulps × 1.6 margin",
    ),
    ("float32", "likelihood"): Tolerance(
        rtol=64 * 1.19e-7,
        atol=0.0,
        reason="the same <= 20 float32 ops (transcendentals <= 2 ulps); the bin-probability difference "
        "cdf⁺ − cdf⁻ loses relative accuracy as 1/(cdf⁺ − cdf⁻), which S includes: 20 × 2 eps × 1.6",
    ),
    ("float64", "bound"): Tolerance(
        rtol=256 * 2.22e-16,
        atol=0.0,
        reason="vb term = posterior (8 ops) + p_mean_variance (25) + KL or decoder NLL (20) + a mean "
        "over <= 27 "
        "elements (27 ulps) + rescaling; the loop adds <= 10 terms: ~100 ops × 1 ulp of S, ×2.5 margin",
    ),
    ("float32", "bound"): Tolerance(
        rtol=256 * 1.19e-7,
        atol=0.0,
        reason="the same ~100 float32 ops (each <= 1 eps of a term bounded by S; KL's exp(−log Σ) ~ 1e6 "
        "at small "
        "t and the decoder's bin probabilities are inside S): 100 × 1 eps × 2.5 margin",
    ),
    ("float64", "timestep_probs"): Tolerance(
        rtol=32 * 2.22e-16,
        atol=0.0,
        reason="[S24]–[S26] in float64 on the device: a mean of K <= 4 squares, a sqrt, a sum over T <= 8, a "
        "normalisation and the uniform mix (<= 16 ops), or 1/(T·p_t) (2 ops); inverse-CDF indices are "
        "integers and must agree (an ulp-level CDF difference flips one only if u lands within an ulp of a "
        "boundary, probability ~1e-15 per draw): 16 ops × 1 ulp × 2",
    ),
    ("float64", "compiled_step_chain"): Tolerance(
        rtol=0.0,
        atol=1e-9,
        reason="CUDA only: a 10-step float64 ancestral chain through inductor's fused kernels vs the eager "
        "kernels (test_compiled_sampling, toy network, the 40→10 respaced cosine process).  Each of the "
        "~20 ops of a step may round differently (FMA contraction, other exp/tanh code): <= 2 ulp "
        "(4.4e-16) of values <= 50 (x̂_0 before clipping: |x_t| <= 6 times √(1/ᾱ) <= 8.6), amplified by "
        "<= 8.6 through x̂_0: 20 × 4.4e-16 × 50 × 8.6 = 3.8e-12 per step; the posterior mean weights "
        "(coef1 + coef2 <= 1.4) carry earlier errors, <= 10 steps: <= 5e-11 in all.  1e-9 is a 20x margin",
    ),
    # ---- end of section "float64" / "float32" ----
    # ---- section "train": trainer invariants (owned by tests/train, tests/e2e) ----
    ("train", "ema_update"): Tolerance(
        rtol=0.0,
        atol=4 * 1.19e-7,
        reason="one float32 lerp e + w·(p − e) vs r·e + (1 − r)·p computed in float64: two rounded float32 "
        "ops on operands of magnitude <= 1 (the test draws values in [-1, 1]) give <= 2·eps; 4·eps bound",
    ),
    ("train", "microbatch_grad"): Tolerance(
        rtol=1e-5,
        atol=1e-6,
        reason="the full-batch gradient is a float32 sum of B = 8 per-sample terms; microbatching regroups "
        "the sum (and the GEMMs block differently), each regrouping moving it by <= B·eps·max|term| ~ 1e-6 "
        "for O(1) terms; rtol 1e-5 covers the relative part of the same bound with a 10x margin",
    ),
    ("train", "ddp_grad"): Tolerance(
        rtol=0.0,
        atol=1e-4,
        reason="unit: max |g| of the tensor.  Each gradient entry is a float32 sum of <= n = B·H·W = 512 "
        "products; the 2-rank all-reduce regroups it, moving it by <= n·eps·Σ|terms| = 6.1e-5·Σ|terms|; "
        "Σ|terms| of an entry is taken <= 1.6·max|g| of its tensor (little cancellation at initialisation)",
    ),
    ("train", "ddp_params"): Tolerance(
        rtol=0.0,
        atol=1e-4,
        reason="unit: lr, after ONE AdamW step from identical weights.  The step lr·g/(|g|+1e-8) is "
        "scale-free in g: a relative gradient error r (<= ddp_grad) moves it by <= lr·2r·1e-8/|g| ~ 0 "
        "unless |g| is at its own rounding level (sign flip of a cancelled entry, up to 2·lr).  Over several "
        "steps the moment history amplifies such entries (zero-initialised paths reached 6% of lr by step "
        "3), so the test takes one step; a real mismatch (other data or noise) moves entries by ~lr",
    ),
    ("train", "uint8_to_model_range"): Tolerance(
        rtol=0.0,
        atol=2 * 1.19e-7,
        reason="p/127.5 − 1 in float32: a rounded division (result <= 2) and a rounded subtraction, each "
        "<= eps/2 of a magnitude <= 2, so <= 2·eps absolute; the subtraction cancels, so no rtol",
    ),
    ("train", "optimizer_impl_params"): Tolerance(
        rtol=0.0,
        atol=1e-6,
        reason="TinyMLP (|θ| <= 0.2), 3 AdamW steps, lr 1e-3: the fused kernel evaluates the same update "
        "m̂/(√v̂ + ε) in another operation order (<= 4 ulp of an update <= lr: 5e-10) and rounds θ − lr·u "
        "(<= 1 ulp of |θ|: 1.2e-8); later steps see weights differing by that much, which moves gradients "
        "relatively by ~1e-7 (no cancelled entries in this net): 3 × (1.3e-8 + 1e-10) = 4e-8; 1e-6 is a 25x "
        "margin.  foreach and for-loop run the same per-tensor ops on the CPU (bitwise equal here)",
    ),
    ("train", "channels_last_grad"): Tolerance(
        rtol=0.0,
        atol=2e-4,
        reason="unit: max |g| of the tensor, one step of a U-Net (64 channels, 8x8, B = 8).  NHWC "
        "convolutions, GroupNorm and attention regroup every float32 sum: each gradient entry sums <= "
        "n = max(B·H·W, C_in·9) = 576 products, moving it by <= n·eps·Σ|terms| = 6.9e-5·Σ|terms|, Σ|terms| "
        "taken <= 2·max|g| of its tensor (initialisation, little cancellation): 1.4e-4; 2e-4 bound",
    ),
    ("train", "channels_last_params"): Tolerance(
        rtol=0.0,
        atol=1e-2,
        reason="unit: the ℓ2 norm of the tensor's own movement over 3 AdamW steps.  Adam's step "
        "m̂/(√v̂ + ε) is scale-free, so the gradient regrouping error (channels_last_grad) reaches the weights "
        "unamplified except at entries whose gradient is itself at rounding level, where the step may flip "
        "(<= 2·lr each).  Such entries are few: measured ratio 7e-4 (worst tensor); a real layout bug (mixed "
        "pixels, other noise) moves every entry by ~lr, ratio ~1",
    ),
    # ---- end of section "train" ----
    # ---- section "compile scope": TrainConfig.compile_scope="loss" under inductor (tests/train) ----
    # (The eager and aot_eager backends are compared bit for bit: they run the captured aten ops as they are.)
    ("compile scope", "inductor_losses"): Tolerance(
        rtol=2e-4,
        atol=1e-6,
        reason="per-sample L_hybrid (mse + vb) of the tiny U-Net (64 channels, 8x8, B = 4, T = 20, t = 0, "
        "1, 10, 19), inductor-compiled loss vs eager, float32.  Inductor keeps the aten convolutions and "
        "matmuls but regroups the reductions it generates (GroupNorm statistics, softmax, mean_flat) and "
        "evaluates exp/log/tanh with its own vectorised kernels (<= 2 ulp each): the network output moves "
        "like unet_reassociation, δ <= 1.2e-4 absolute on O(1) outputs.  mse = mean((ε − out)²) with "
        "m ~ 1 moves by <= 2√m·δ + δ², i.e. <= 2δ/√m ≈ 2.4e-4 relative; vb sees the variance channel "
        "only (the mean is detached): log σ² = v·log β + (1 − v)·log β̃ moves by ½|log β − log β̃|·δ, "
        "which the KL's exp(Δ log σ²) − Δ log σ² − 1 turns into a relative change of the same order.  "
        "rtol 2e-4 is that worst case; atol covers a sample whose loss cancels to ~0.  Observed 3.6e-7 "
        "relative on the CPU; another t or ε moves a loss by O(1) relative",
    ),
    ("compile scope", "inductor_grads"): Tolerance(
        rtol=0.0,
        atol=3e-4,
        reason="unit: max |g| of the tensor, one backward of the loss above.  Inductor regroups the "
        "float32 sums of the backward (GroupNorm and attention backward, bias gradients) as "
        "channels_last_grad does: each entry sums <= n = max(B·H·W, C_in·9) = 576 products, moving it by "
        "<= n·eps·Σ|terms| = 6.9e-5·Σ|terms|, Σ|terms| <= 2·max|g| (random weights, little "
        "cancellation): 1.4e-4.  The loss gradient ∂mse/∂out = 2(out − ε)/N moves by 2δ/N per entry "
        "(δ as in inductor_losses), <= 1.2e-4 relative to its largest entry for O(1) residuals, and is "
        "carried linearly back: 2.6e-4 in all, 3e-4 bound.  It needs every tensor to have a gradient "
        "above rounding level: with 1 channel per GroupNorm group a conv bias feeding a GroupNorm has a "
        "pure rounding-noise gradient (~1e-8), so the test model has 2 channels per group.  Observed "
        "1.9e-5 (time_embed.0.weight) on the CPU",
    ),
    # ---- end of section "compile scope" ----
    # ---- section "evaluate": NLL summaries and Fréchet distance (owned by tests/evaluate) ----
    ("evaluate", "summary_mean_stderr"): Tolerance(
        rtol=1e-12,
        atol=1e-12,
        reason="means and ddof=1 standard deviations of <= 8 float64 numbers of magnitude <= 10, against "
        "hand-computed decimals: summation and sqrt add <= 8·eps·10 ~ 2e-14 absolute; 1e-12 is a 50x margin",
    ),
    ("evaluate", "frechet_distance"): Tolerance(
        rtol=1e-8,
        atol=1e-8,
        reason="two symmetric eigendecompositions (float64) with d <= 16, entries <= 1e2 and condition "
        "number <= 1e3 by construction in the tests: eigenvalue errors <= d·eps·‖A‖ ~ 16·2.2e-16·1e4 ~ 4e-11 "
        "(M = Σ1^½Σ2Σ1^½ has norm <= 1e4), and the root of eigenvalues >= 1e-2 amplifies that by "
        "<= 1/(2·0.1) = 5; the closed forms and scipy's sqrtm (backward error ~ d·cond·eps·‖A‖ ~ 4e-10) "
        "are exact to that level; 1e-8 leaves a >= 25x margin",
    ),
    ("evaluate", "mlp_forward"): Tolerance(
        rtol=1e-10,
        atol=1e-12,
        reason="the digits MLP's probabilities recomputed from its weights (tanh, 64-term dot products, "
        "softmax of 10) in float64 vs scikit-learn's own float64 forward pass: only summation order differs, "
        "<= 64·eps·Σ|terms| ~ 1e-13 on logits of magnitude <= 10; 1e-10 relative leaves a 100x margin",
    ),
    ("evaluate", "float32_bound_sum"): Tolerance(
        rtol=1e-5,
        atol=0.0,
        reason="calc_bpd_loop returns the float32 total Σ_t vb_t + prior of T + 1 = 5 non-negative terms "
        "(the test uses T = 4); a float32 sum of k non-negative terms is within (k − 1)·eps32 = 4.8e-7 of "
        "the exact sum, relative; the float64 means over images add ~1e-16.  So mean(total) and "
        "mean(prior) + Σ_t mean(vb_t) agree to 4.8e-7 relative; 1e-5 leaves a 20x margin",
    ),
    # ---- end of section "evaluate" ----
    # ---- section "cli fast paths": speed flags of iddpm sample / nll (owned by tests/cli) ----
    ("cli", "nll_timestep_batch"): Tolerance(
        rtol=1e-3,
        atol=1e-4,
        reason="unit: bits/dim (and the MSEs).  iddpm nll, timestep_batch 3 vs 1 (tests/cli/"
        "test_cli_fast_paths.py: random-weight tiny U-Net, T = 20, 4 images, batch 2).  The noise and "
        "the float32 bound arithmetic are the same (bit-exact for a per-sample elementwise model, "
        "tests/evaluate); only the U-Net sees 6 rows instead of 2 and its CPU kernels block differently: "
        "outputs moved by <= 3.5e-6 (measured, O(1) outputs); the budget takes δ = 1e-5.  A mean square "
        "m = mean(d²) of an O(1) error d (eps_mse, xstart_mse, the KL's mean part K_t·mean(d²)) moves by "
        "<= 2√m·δ + δ², i.e. <= 2δ/√m = 2e-4 relative where m >= 9.9e-3 (every per-t eps_mse here but "
        "t = T − 1); the log-variance part moves by <= ½|log β_t − log β̃_t|·δ·O(1), also ~1e-4 relative.  "
        "At t = T − 1 (m = 1e-5, K = β²/(2α(1 − ᾱ)σ²) <= 500) the KL moves by <= 500·2·3.2e-3·1e-5/ln 2 = "
        "4.6e-5 bits: atol.  Totals (~7 bits) move by <= 1e-4 + 2e-4·7 = 1.5e-3 <= atol + rtol·7.  Observed "
        "3.5e-7 relative; another seed moves a per-t term by ~230x this tolerance (the test checks > 10x)",
    ),
    # ---- end of section "cli fast paths" ----
}


def tolerance(tier: str, operation: str) -> Tolerance:
    """Look up a tolerance; a missing key is a test-suite bug, so fail loudly."""
    try:
        return TOLERANCES[(tier, operation)]
    except KeyError:
        raise KeyError(
            f"no tolerance for tier={tier!r} operation={operation!r}; add it to TOLERANCES"
        ) from None
