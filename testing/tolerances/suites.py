"""The suites' own budgets outside the catalogue: the U-Net (tests/nn), compiled sampling
(properties/test_compiled_sampling), training (tests/train, tests/e2e), torch.compile scopes
(tests/train), evaluation (tests/evaluate) and the CLI's fast paths (tests/cli).

Each compares one impl path with another (or with hand-computed numbers); the reason names the unit the
tolerance is stated in where it is not |expected|.  Never widen an entry to make a test pass without
rewriting its reason as an error budget.
"""

from __future__ import annotations

import enum

from testing.tolerances.base import FLOAT32_EPS, Tolerance


class UNet(enum.Enum):
    """impl.nn U-Net against an independent forward or against itself in another evaluation order."""

    FORWARD_FLOAT64 = "unet_forward"
    TIMESTEP_EMBEDDING_FLOAT64 = "unet_timestep_embedding"
    REASSOCIATION_FLOAT32 = "unet_reassociation"
    AUTOCAST_BFLOAT16 = "unet_autocast"
    CLASSIFIER_FORWARD_FLOAT64 = "classifier_forward"
    CLASSIFIER_AUTOCAST_FLOAT16 = "classifier_autocast_fp16"


class Sampling(enum.Enum):
    """Compiled reverse steps against eager ones; sampling-side invariants (loops, guidance gradients)."""

    COMPILED_STEP_CHAIN_FLOAT64 = "compiled_step_chain"
    VELOCITY_VS_EPS_LOOPS = "velocity_vs_eps_loops"
    POINT_MASS_ROUND_TRIP_FLOAT64 = "point_mass_round_trip"
    CLASSIFIER_GRADIENT_FD_FLOAT64 = "classifier_gradient_fd"


class Train(enum.Enum):
    """Trainer invariants: EMA, microbatching, DDP, optimizer kernels, memory layouts, data scaling."""

    EMA_UPDATE = "ema_update"
    MICROBATCH_GRAD = "microbatch_grad"
    DDP_GRAD = "ddp_grad"
    DDP_PARAMS = "ddp_params"
    UINT8_TO_MODEL_RANGE = "uint8_to_model_range"
    OPTIMIZER_IMPL_PARAMS = "optimizer_impl_params"
    CHANNELS_LAST_GRAD = "channels_last_grad"
    CHANNELS_LAST_PARAMS = "channels_last_params"
    HELD_OUT_LOSS_REBUILT = "held_out_loss_rebuilt"


class CompileScope(enum.Enum):
    """TrainConfig.compile_scope under inductor against eager (eager and aot_eager are compared bit for
    bit: they run the captured aten ops as they are)."""

    INDUCTOR_LOSSES = "inductor_losses"
    INDUCTOR_GRADS = "inductor_grads"


class Evaluate(enum.Enum):
    """NLL summaries, the Fréchet distance, the digits classifier."""

    SUMMARY_MEAN_STDERR = "summary_mean_stderr"
    FRECHET_DISTANCE = "frechet_distance"
    MLP_FORWARD = "mlp_forward"
    FLOAT32_BOUND_SUM = "float32_bound_sum"
    METRIC_LOOP_SUM = "metric_loop_sum"
    METRIC_LOOP_STD = "metric_loop_std"
    METRIC_HAND_VALUES = "metric_hand_values"


class Cli(enum.Enum):
    """Speed flags of iddpm sample / nll against their plain paths."""

    NLL_TIMESTEP_BATCH = "nll_timestep_batch"
    BF16_GUIDED_SAMPLES = "bf16_guided_samples"


UNET: dict[UNet, Tolerance] = {
    UNet.FORWARD_FLOAT64: Tolerance(
        rtol=1e-12,
        atol=1e-12,
        reason="impl.nn U-Net vs an independent functional float64 forward, outputs O(1): ~40 layers in "
        "series, each a dot product of length <= 9·256 whose rounding error is ~sqrt(n)·eps ≈ "
        "50·1.1e-16 ≈ 6e-15 relative; GroupNorm keeps activations O(1), so errors add over layers "
        "to <= 40·6e-15 ≈ 2.4e-13 (observed 4e-15); 1e-12 leaves a factor 4 above that worst case",
    ),
    UNet.CLASSIFIER_FORWARD_FLOAT64: Tolerance(
        rtol=1e-12,
        atol=1e-12,
        reason="impl.nn classifier vs an independent functional float64 forward, logits O(1): <= ~20 "
        "layers in series (encoder half, head), each a dot product of length <= 9·64 or 2048 whose "
        "rounding error is ~sqrt(n)·eps ≈ 45·1.1e-16 ≈ 5e-15 relative; GroupNorm keeps activations "
        "O(1), so errors add to <= 20·5e-15 = 1e-13; 1e-12 leaves a factor 10 above that worst case",
    ),
    UNet.TIMESTEP_EMBEDDING_FLOAT64: Tolerance(
        rtol=0.0,
        atol=1e-12,
        reason="cos/sin of t·exp(-ln(1e4)·k/half) vs t·1e4^(-k/half) in float64, t < 1000: the argument "
        "differs by a few ulps of 1000 (~1e-13 · 2), and |d cos| <= |d arg|, so <= 1e-12",
    ),
    UNet.REASSOCIATION_FLOAT32: Tolerance(
        rtol=1e-4,
        atol=1e-4,
        reason="one float32 U-Net, two evaluation orders of the same function (SDPA vs einsum attention, "
        "channels-last vs contiguous kernels, batch of 1 vs B, compiled vs eager), or the float32 U-Net "
        "against the float64 independent forward of the same weights and inputs, outputs O(1): "
        "each of ~40 layers reassociates dot products of length <= 2304, ~sqrt(n)·eps32 ≈ 48·6e-8 "
        "≈ 3e-6 relative, summed over the layers <= 40·3e-6 ≈ 1.2e-4 in the worst case, "
        "random-walk ~2e-5 (observed ~5e-6); a float32 forward against float64 carries one such "
        "rounding path instead of two",
    ),
    UNet.CLASSIFIER_AUTOCAST_FLOAT16: Tolerance(
        rtol=1e-2,
        atol=1e-2,
        reason="classifier_use_fp16 (float16 autocast of the trunk on CUDA) vs float32, the small test "
        "classifier (~12 convs/linears in the trunk, logits O(1), norms and softmax in float32, head "
        "in float32): each layer rounds to float16, unit roundoff 2^-11 ≈ 4.9e-4, errors random-walk "
        "over ~12 layers to ~sqrt(12)·4.9e-4 ≈ 1.7e-3 per logit (std); the max over 10 logits is ~3 "
        "std ≈ 5e-3; 1e-2 leaves a factor 2 (not yet observed: no CUDA machine when written)",
    ),
    UNet.AUTOCAST_BFLOAT16: Tolerance(
        rtol=0.06,
        atol=0.06,
        reason="bf16 autocast vs float32 of the tiny test U-Net (~20 convs/linears, outputs O(1), norms "
        "and softmax in float32): each layer rounds its inputs and weights to bf16, unit roundoff "
        "2^-8 ≈ 3.9e-3, errors random-walk over ~20 layers to ~sqrt(20)·3.9e-3 ≈ 1.7e-2 per "
        "element (std), and the max over ~1000 outputs is ~3.5 std ≈ 6e-2 (observed 3.5e-2 "
        "relative to 1 + |ref|)",
    ),
}

SAMPLING: dict[Sampling, Tolerance] = {
    Sampling.CLASSIFIER_GRADIENT_FD_FLOAT64: Tolerance(
        rtol=1e-9,
        atol=5e-9,
        reason="classifier_cond_fn's autograd gradient of log p(y|x_t) through the real EncoderUNetModel "
        "(tests/sampling/test_classifier_guidance.py: 8 px, every pool, parameters perturbed by 0.1·N(0, 1)) "
        "along unit directions v against the float64 central difference (log p(x + hv) − log p(x − hv))/2h "
        "at h = 1e-4; scale = L, the larger |log p| of the two points.  Rounding: each forward (~20 layers) "
        "within ~100 eps of L, the difference of two over 2h: 100 × 2.2e-16 × L / 1e-4 = 2.2e-10·L, rtol "
        "1e-9 (4.5x).  Truncation: h²·|f‴|/6 with |f‴|/6 <= 0.05 for these networks (measured from the "
        "h = 1e-3 difference: <= 5e-8 / 1e-6), 5e-10 at h = 1e-4, atol 5e-9 (10x)",
    ),
    Sampling.POINT_MASS_ROUND_TRIP_FLOAT64: Tolerance(
        rtol=0.0,
        atol=1e-10,
        reason="float64 DDIM inversion then DDIM sampling (<= 10 + 10 steps) with ε̂ exact for a point mass "
        "x₀* in [-1, 1] (properties/test_loops.py), and the inversion's latent against reference "
        "ddim_inversion.  In exact arithmetic x̂_0 = x₀* at every step whatever x_t, so an error in x_t is "
        "not carried into x̂_0: it enters only through ε̂ = (x_t − √ᾱ x̂_0)/√(1 − ᾱ), amplified by "
        "1/√(1 − ᾱ_t) <= 1/√β_1 (<= ~100 for the drawn schedules) and damped by the next step's "
        "√(1 − ᾱ_next) factor; values stay <= ~10 (x_t = √ᾱ x₀* + √(1 − ᾱ) ε, |ε| <= 1/√β_1·2).  "
        "Each step rounds ~10 ops of values <= 10 (2.2e-16 × 10 × 10 = 2e-14), amplified <= 100: "
        "2e-12 per step, 20 steps: <= 4e-11; 1e-10 leaves a 2.5x margin.  The decoded x_0 at t = 0 is "
        "x̂_0 itself (ᾱ_prev = 1), so the round trip is within a few ulps of x₀* plus that carried error",
    ),
    Sampling.VELOCITY_VS_EPS_LOOPS: Tolerance(
        rtol=1e-9,
        atol=1e-9,
        reason="float64 ancestral / DDIM chains and calc_bpd_loop of a v-model built from an ε-model against "
        "the ε-model (properties/test_objective_options.py; the 40→10 respaced cosine process, no "
        "clipping): per step both reach x̂_0 through one division by √ᾱ_t (>= 0.02 here, amplification "
        "<= 50 of a few ulps of values <= ~10, i.e. <= 1e-13), carried through 10 steps whose maps are "
        "contractions or mild expansions (DDIM's ε̂ recombination, factor <= ~3 per step): < 1e-10",
    ),
    Sampling.COMPILED_STEP_CHAIN_FLOAT64: Tolerance(
        rtol=0.0,
        atol=1e-9,
        reason="CUDA only: a 10-step float64 ancestral chain through inductor's fused kernels vs the "
        "eager kernels (test_compiled_sampling, toy network, the 40→10 respaced cosine process).  "
        "Each of the ~20 ops of a step may round differently (FMA contraction, other exp/tanh "
        "code): <= 2 ulp (4.4e-16) of values <= 50 (x̂_0 before clipping: |x_t| <= 6 times √(1/ᾱ) "
        "<= 8.6), amplified by <= 8.6 through x̂_0: 20 × 4.4e-16 × 50 × 8.6 = 3.8e-12 per step; "
        "the posterior mean weights (coef1 + coef2 <= 1.4) carry earlier errors, <= 10 steps: <= "
        "5e-11 in all.  1e-9 is a 20x margin",
    ),
}

TRAIN: dict[Train, Tolerance] = {
    Train.EMA_UPDATE: Tolerance(
        rtol=0.0,
        atol=4 * FLOAT32_EPS,
        reason="one float32 lerp e + w·(p − e) vs r·e + (1 − r)·p computed in float64: two rounded "
        "float32 ops on operands of magnitude <= 1 (the test draws values in [-1, 1]) give <= "
        "2·eps; 4·eps bound",
    ),
    Train.MICROBATCH_GRAD: Tolerance(
        rtol=1e-5,
        atol=1e-6,
        reason="the full-batch gradient is a float32 sum of B = 8 per-sample terms; microbatching "
        "regroups the sum (and the GEMMs block differently), each regrouping moving it by <= "
        "B·eps·max|term| ~ 1e-6 for O(1) terms; rtol 1e-5 covers the relative part of the same "
        "bound with a 10x margin",
    ),
    Train.DDP_GRAD: Tolerance(
        rtol=0.0,
        atol=1e-4,
        reason="unit: max |g| of the tensor.  Each gradient entry is a float32 sum of <= n = B·H·W = 512 "
        "products; the 2-rank all-reduce regroups it, moving it by <= n·eps·Σ|terms| = "
        "6.1e-5·Σ|terms|; Σ|terms| of an entry is taken <= 1.6·max|g| of its tensor (little "
        "cancellation at initialisation)",
    ),
    Train.DDP_PARAMS: Tolerance(
        rtol=0.0,
        atol=1e-4,
        reason="unit: lr, after ONE AdamW step from identical weights.  The step lr·g/(|g|+1e-8) is "
        "scale-free in g: a relative gradient error r (<= ddp_grad) moves it by <= lr·2r·1e-8/|g| "
        "~ 0 unless |g| is at its own rounding level (sign flip of a cancelled entry, up to "
        "2·lr).  Over several steps the moment history amplifies such entries (zero-initialised "
        "paths reached 6% of lr by step 3), so the test takes one step; a real mismatch (other "
        "data or noise) moves entries by ~lr",
    ),
    Train.UINT8_TO_MODEL_RANGE: Tolerance(
        rtol=0.0,
        atol=2 * FLOAT32_EPS,
        reason="p/127.5 − 1 in float32: a rounded division (result <= 2) and a rounded subtraction, each "
        "<= eps/2 of a magnitude <= 2, so <= 2·eps absolute; the subtraction cancels, so no rtol",
    ),
    Train.OPTIMIZER_IMPL_PARAMS: Tolerance(
        rtol=0.0,
        atol=1e-6,
        reason="TinyMLP (|θ| <= 0.2), 3 AdamW steps, lr 1e-3: the fused kernel evaluates the same update "
        "m̂/(√v̂ + ε) in another operation order (<= 4 ulp of an update <= lr: 5e-10) and rounds "
        "θ − lr·u (<= 1 ulp of |θ|: 1.2e-8); later steps see weights differing by that much, "
        "which moves gradients relatively by ~1e-7 (no cancelled entries in this net): 3 × "
        "(1.3e-8 + 1e-10) = 4e-8; 1e-6 is a 25x margin.  foreach and for-loop run the same "
        "per-tensor ops on the CPU (bitwise equal here)",
    ),
    Train.CHANNELS_LAST_GRAD: Tolerance(
        rtol=0.0,
        atol=2e-4,
        reason="unit: max |g| of the tensor, one step of a U-Net (64 channels, 8x8, B = 8).  NHWC "
        "convolutions, GroupNorm and attention regroup every float32 sum: each gradient entry "
        "sums <= n = max(B·H·W, C_in·9) = 576 products, moving it by <= n·eps·Σ|terms| = "
        "6.9e-5·Σ|terms|, Σ|terms| taken <= 2·max|g| of its tensor (initialisation, little "
        "cancellation): 1.4e-4; 2e-4 bound",
    ),
    Train.CHANNELS_LAST_PARAMS: Tolerance(
        rtol=0.0,
        atol=1e-2,
        reason="unit: the ℓ2 norm of the tensor's own movement over 3 AdamW steps.  Adam's step m̂/(√v̂ "
        "+ ε) is scale-free, so the gradient regrouping error (channels_last_grad) reaches the "
        "weights unamplified except at entries whose gradient is itself at rounding level, where "
        "the step may flip (<= 2·lr each).  Such entries are few: measured ratio 7e-4 (worst "
        "tensor); a real layout bug (mixed pixels, other noise) moves every entry by ~lr, ratio ~1",
    ),
    Train.HELD_OUT_LOSS_REBUILT: Tolerance(
        rtol=0.0,
        atol=2e-6,
        reason="unit: nats, the mean cross-entropy of one quarter of t.  iddpm train_classifier's "
        "logged val_loss_q<b> vs the same held-out rows rebuilt by hand (tests/cli/"
        "test_cli_train_classifier.py: t per quarter written out, x_t by the float64 oracle's q_sample "
        "rounded to float32, the float64 oracle's cross-entropy of the float32 logits).  The run's "
        "per-sample losses are float32 log-sum-exps of 10 O(1) logits: <= ~4 ulp of a loss <= 4, i.e. "
        "<= 4·4.8e-7 = 1.9e-6 even if every row's rounding had one sign; its x_t (float32 arithmetic) "
        "and the rebuilt one differ by ~1 ulp, moving the logits by ~1e-7.  Measured 2.4e-8; shifting "
        "the quarters' t by one, or never drawing t = 0, moves a quarter by 1.4e-4 … 9.4e-4 (70x the "
        "budget)",
    ),
}

COMPILE_SCOPE: dict[CompileScope, Tolerance] = {
    CompileScope.INDUCTOR_LOSSES: Tolerance(
        rtol=2e-4,
        atol=1e-6,
        reason="per-sample L_hybrid (mse + vb) of the tiny U-Net (64 channels, 8x8, B = 4, T = 20, t = "
        "0, 1, 10, 19), inductor-compiled loss vs eager, float32.  Inductor keeps the aten "
        "convolutions and matmuls but regroups the reductions it generates (GroupNorm statistics, "
        "softmax, mean_flat) and evaluates exp/log/tanh with its own vectorised kernels (<= 2 ulp "
        "each): the network output moves like unet_reassociation, δ <= 1.2e-4 absolute on O(1) "
        "outputs.  mse = mean((ε − out)²) with m ~ 1 moves by <= 2√m·δ + δ², i.e. <= 2δ/√m ≈ "
        "2.4e-4 relative; vb sees the variance channel only (the mean is detached): log σ² = "
        "v·log β + (1 − v)·log β̃ moves by ½|log β − log β̃|·δ, which the KL's exp(Δ log σ²) − Δ "
        "log σ² − 1 turns into a relative change of the same order.  rtol 2e-4 is that worst "
        "case; atol covers a sample whose loss cancels to ~0.  Observed 3.6e-7 relative on the "
        "CPU; another t or ε moves a loss by O(1) relative",
    ),
    CompileScope.INDUCTOR_GRADS: Tolerance(
        rtol=0.0,
        atol=3e-4,
        reason="unit: max |g| of the tensor, one backward of the loss above.  Inductor regroups the "
        "float32 sums of the backward (GroupNorm and attention backward, bias gradients) as "
        "channels_last_grad does: each entry sums <= n = max(B·H·W, C_in·9) = 576 products, "
        "moving it by <= n·eps·Σ|terms| = 6.9e-5·Σ|terms|, Σ|terms| <= 2·max|g| (random weights, "
        "little cancellation): 1.4e-4.  The loss gradient ∂mse/∂out = 2(out − ε)/N moves by 2δ/N "
        "per entry (δ as in inductor_losses), <= 1.2e-4 relative to its largest entry for O(1) "
        "residuals, and is carried linearly back: 2.6e-4 in all, 3e-4 bound.  It needs every "
        "tensor to have a gradient above rounding level: with 1 channel per GroupNorm group a "
        "conv bias feeding a GroupNorm has a pure rounding-noise gradient (~1e-8), so the test "
        "model has 2 channels per group.  Observed 1.9e-5 (time_embed.0.weight) on the CPU",
    ),
}

EVALUATE: dict[Evaluate, Tolerance] = {
    Evaluate.SUMMARY_MEAN_STDERR: Tolerance(
        rtol=1e-12,
        atol=1e-12,
        reason="means and ddof=1 standard deviations of <= 8 float64 numbers of magnitude <= 10, against "
        "hand-computed decimals: summation and sqrt add <= 8·eps·10 ~ 2e-14 absolute; 1e-12 is a "
        "50x margin",
    ),
    Evaluate.FRECHET_DISTANCE: Tolerance(
        rtol=1e-8,
        atol=1e-8,
        reason="two symmetric eigendecompositions (float64) with d <= 16, entries <= 1e2 and condition "
        "number <= 1e3 by construction in the tests: eigenvalue errors <= d·eps·‖A‖ ~ 16·2.2e-16·1e4 ~ 4e-11 "
        "(M = Σ1^½Σ2Σ1^½ has norm <= 1e4), and the root of eigenvalues >= 1e-2 amplifies that by "
        "<= 1/(2·0.1) = 5; the closed forms and scipy's sqrtm (backward error ~ d·cond·eps·‖A‖ ~ 4e-10) "
        "are exact to that level; 1e-8 leaves a >= 25x margin",
    ),
    Evaluate.METRIC_LOOP_SUM: Tolerance(
        rtol=1e-11,
        atol=0.0,
        reason="IS and KID means against Python-loop versions (tests/evaluate/test_feature_metrics.py): the "
        "same <= 400 float64 terms summed in another order, <= 400·eps ~ 1e-13 relative; a 100x margin",
    ),
    Evaluate.METRIC_LOOP_STD: Tolerance(
        rtol=1e-9,
        atol=0.0,
        reason="the standard deviation over 3–4 splits/subsets of values that agree to 1e-13 relative "
        "(METRIC_LOOP_SUM): the std's relative error is that times mean/std, <= ~1e3 in these cases, "
        "so ~1e-10; a 10x margin",
    ),
    Evaluate.METRIC_HAND_VALUES: Tolerance(
        rtol=1e-12,
        atol=1e-12,
        reason="metrics of hand-made inputs against exact decimals (IS of one-hot rows = 2, MMD² = 0.5, k-NN "
        "radii on a line): a handful of float64 operations (exp/log of exact values, means of <= 10 "
        "terms), each <= 1 ulp: < 1e-14; a 100x margin",
    ),
    Evaluate.MLP_FORWARD: Tolerance(
        rtol=1e-10,
        atol=1e-12,
        reason="the digits MLP's probabilities recomputed from its weights (tanh, 64-term dot products, "
        "softmax of 10) in float64 vs scikit-learn's own float64 forward pass: only summation "
        "order differs, <= 64·eps·Σ|terms| ~ 1e-13 on logits of magnitude <= 10; 1e-10 relative "
        "leaves a 100x margin",
    ),
    Evaluate.FLOAT32_BOUND_SUM: Tolerance(
        rtol=1e-5,
        atol=0.0,
        reason="calc_bpd_loop returns the float32 total Σ_t vb_t + prior of T + 1 = 5 non-negative terms "
        "(the test uses T = 4); a float32 sum of k non-negative terms is within (k − 1)·eps32 = "
        "4.8e-7 of the exact sum, relative; the float64 means over images add ~1e-16.  So "
        "mean(total) and mean(prior) + Σ_t mean(vb_t) agree to 4.8e-7 relative; 1e-5 leaves a 20x "
        "margin",
    ),
}

CLI: dict[Cli, Tolerance] = {
    Cli.NLL_TIMESTEP_BATCH: Tolerance(
        rtol=1e-3,
        atol=1e-4,
        reason="unit: bits/dim (and the MSEs).  iddpm nll, timestep_batch 3 vs 1 "
        "(tests/cli/test_cli_fast_paths.py: random-weight tiny U-Net, T = 20, 4 images, batch 2). "
        " The noise and the float32 bound arithmetic are the same (bit-exact for a per-sample "
        "elementwise model, tests/evaluate); only the U-Net sees 6 rows instead of 2 and its CPU "
        "kernels block differently: outputs moved by <= 3.5e-6 (measured, O(1) outputs); the "
        "budget takes δ = 1e-5.  A mean square m = mean(d²) of an O(1) error d (eps_mse, "
        "xstart_mse, the KL's mean part K_t·mean(d²)) moves by <= 2√m·δ + δ², i.e. <= 2δ/√m = "
        "2e-4 relative where m >= 9.9e-3 (every per-t eps_mse here but t = T − 1); the "
        "log-variance part moves by <= ½|log β_t − log β̃_t|·δ·O(1), also ~1e-4 relative.  At t = "
        "T − 1 (m = 1e-5, K = β²/(2α(1 − ᾱ)σ²) <= 500) the KL moves by <= 500·2·3.2e-3·1e-5/ln 2 "
        "= 4.6e-5 bits: atol.  Totals (~7 bits) move by <= 1e-4 + 2e-4·7 = 1.5e-3 <= atol + "
        "rtol·7.  Observed 3.5e-7 relative; another seed moves a per-t term by ~230x this "
        "tolerance (the test checks > 10x)",
    ),
    Cli.BF16_GUIDED_SAMPLES: Tolerance(
        rtol=0.0,
        atol=2.0,
        reason="unit: uint8 levels, the mean |Δ| over every pixel of the batch.  iddpm sample "
        "--guidance_scale 3, --precision bf16 vs fp32 (tests/cli/test_cli_guidance_free.py: the 2-step "
        "p = 0.2 digits run, 4 samples, 5 ancestral steps, same seed, so the same noise).  bf16 rounds "
        "the network's inputs and weights to 8 mantissa bits (2^-9 ≈ 2e-3 relative); each branch's ε̂ "
        "moves by ~1e-2 of its O(1) size, the combination −2·ε̂(∅) + 3·ε̂(y) by <= 5x that, and the "
        "x̂_0 of the last steps by <= ~0.05 of [-1, 1], i.e. a few levels where it is not clipped: a "
        "bound of a few levels per pixel, most pixels far less (measured mean 0.20 level, per sample "
        "<= 0.30; unguided bf16 vs fp32 0.15; over 16 samples 0.31, a single diverged path 2.4).  The "
        "guidance itself moves the mean by 6.8 levels (bf16 guided vs unguided), so 2.0 sits 10x above "
        "the measured error and 3.4x below a run whose bf16 path dropped the guidance",
    ),
}
