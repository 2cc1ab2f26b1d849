"""The classifier-free guidance oracle [S50]–[S52] against independent mathematics and its bad input."""

from __future__ import annotations

import numpy as np
import pytest

from reference.guidance_free import drop_labels, guided_eps, guided_model_output
from testing.assertions import assert_close
from testing.tolerances import Oracle, tolerance


def _pair(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.standard_normal(shape)


def test_scale_one_is_the_conditional_and_zero_the_unconditional_prediction() -> None:
    cond, uncond = _pair((3, 2, 4, 4))
    assert np.array_equal(guided_eps(cond, uncond, 0.0), uncond)
    # uncond + 1·(cond − uncond) rounds: equal to cond within one reassociation, not bit for bit
    assert_close(guided_eps(cond, uncond, 1.0), cond, tol=tolerance(Oracle.REASSOCIATED_FORMULA))


def test_the_papers_convention_is_scale_one_plus_w_prime() -> None:
    """Ho & Salimans: (1 + w′)ε(y) − w′ε(∅); the same prediction at w = 1 + w′."""
    cond, uncond = _pair((2, 3, 2, 2), seed=1)
    for w_prime in (0.5, 2.0, 7.0):
        papers = (1.0 + w_prime) * cond - w_prime * uncond
        assert_close(
            guided_eps(cond, uncond, 1.0 + w_prime), papers, tol=tolerance(Oracle.REASSOCIATED_FORMULA)
        )


def test_guidance_is_affine_in_the_scale() -> None:
    """ε̂_w lies on the line through ε̂(∅) (w = 0) and ε̂(y) (w = 1): the mean of w = a and b is w = (a+b)/2."""
    cond, uncond = _pair((2, 1, 3, 3), seed=2)
    a, b = -1.5, 4.0
    midpoint = 0.5 * (guided_eps(cond, uncond, a) + guided_eps(cond, uncond, b))
    assert_close(guided_eps(cond, uncond, (a + b) / 2), midpoint, tol=tolerance(Oracle.REASSOCIATED_FORMULA))


def test_a_learned_variance_comes_from_the_conditional_branch() -> None:
    cond, uncond = _pair((2, 6, 4, 4), seed=3)  # C = 3: mean channels 0..2, variance channels 3..5
    out = guided_model_output(cond, uncond, 3.0, channels=3)
    assert out.shape == cond.shape
    assert np.array_equal(out[:, 3:], cond[:, 3:])
    assert np.array_equal(out[:, :3], guided_eps(cond[:, :3], uncond[:, :3], 3.0))
    fixed = guided_model_output(cond[:, :3], uncond[:, :3], 3.0, channels=3)  # no variance channels
    assert np.array_equal(fixed, out[:, :3])


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"guidance_scale": float("nan")}, "guidance_scale"),
        ({"guidance_scale": float("inf")}, "guidance_scale"),
        ({"guidance_scale": True}, "guidance_scale"),
        ({"channels": 4}, "cond_output: expected 4 or 8 channels"),
        ({"channels": 0}, "channels"),
    ],
)
def test_guided_output_rejects_bad_input(kwargs: dict[str, object], needle: str) -> None:
    cond, uncond = _pair((1, 6, 2, 2))
    args: dict[str, object] = {"guidance_scale": 2.0, "channels": 3, **kwargs}
    with pytest.raises(ValueError, match=needle):
        guided_model_output(cond, uncond, args["guidance_scale"], args["channels"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uncond_output: expected shape"):
        guided_model_output(cond, uncond[:, :3], 2.0, 3)


def test_label_dropout_keeps_labels_at_p_zero_and_drops_exactly_below_p() -> None:
    labels = np.array([0, 1, 2, 3, 4, 0], dtype=np.int64)
    uniforms = np.array([0.0, 0.09, 0.1, 0.11, 0.5, 0.999])
    assert np.array_equal(drop_labels(labels, uniforms, 0.0, 5), labels)  # u < 0 never holds
    assert drop_labels(labels, uniforms, 0.1, 5).tolist() == [5, 5, 2, 3, 4, 0]  # u = p is kept: strict <


def test_label_dropout_rate_is_p() -> None:
    """Over n = 200 000 uniform draws the dropped fraction is within 5 binomial standard deviations of p."""
    rng = np.random.default_rng(0)
    n, p = 200_000, 0.2
    labels = rng.integers(0, 10, size=n)
    dropped = drop_labels(labels, rng.random(n), p, 10)
    fraction = float(np.mean(dropped == 10))
    assert abs(fraction - p) < 5 * np.sqrt(p * (1 - p) / n)
    kept = dropped != 10
    assert np.array_equal(dropped[kept], labels[kept])  # the rest keep their own label


@pytest.mark.parametrize(
    ("labels", "uniforms", "p", "null", "needle"),
    [
        ([0, 1], [0.5, 0.5], 1.0, 5, "drop_prob: expected a number in \\[0, 1\\)"),
        ([0, 1], [0.5, 0.5], -0.1, 5, "drop_prob"),
        ([0, 5], [0.5, 0.5], 0.1, 5, "labels: expected class indices in \\[0, 5\\)"),
        ([0, 1], [0.5], 0.1, 5, "uniforms: expected shape"),
        ([0, 1], [0.5, 0.5], 0.1, 0, "null_label"),
        ([0.0, 1.0], [0.5, 0.5], 0.1, 5, "labels: expected a 1-D integer array"),
    ],
)
def test_label_dropout_rejects_bad_input(
    labels: list[float], uniforms: list[float], p: float, null: int, needle: str
) -> None:
    with pytest.raises(ValueError, match=needle):
        drop_labels(np.asarray(labels), np.asarray(uniforms), p, null)
