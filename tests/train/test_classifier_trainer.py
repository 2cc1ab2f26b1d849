"""The classifier trainer's pieces: noising at the model's timesteps (a respaced chain included), the
stratified held-out timesteps, the held-out accumulator's bins, and the run config's checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from impl.factory import build_diffusion
from impl.factory.classifier_run_flags import (
    classifier_flag_defaults,
    classifier_noising_flags,
    resolve_classifier_flags,
)
from impl.train.classifier_config import ClassifierTrainConfig, default_held_out
from impl.train.classifier_metrics import HeldOutAccumulator, per_sample_cross_entropy
from impl.train.classifier_metrics import binned_topk_accuracy as impl_binned_topk_accuracy
from impl.train.classifier_trainer import classifier_loss_fn, stratified_timesteps
from impl.train.distributed import DistContext
from reference.classifier_training import binned_topk_accuracy, timestep_quarter
from reference.respacing import model_timesteps, space_timesteps


class RecordingClassifier(torch.nn.Module):
    """Returns fixed logits and records what it was called with."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.detach().clone(), t.detach().clone()))
        return self.logits


@pytest.mark.parametrize("rescale", [False, True])
@pytest.mark.parametrize("respacing", ["", "10", "ddim5"])
def test_loss_noises_at_the_diffusions_steps_and_calls_the_classifier_at_the_model_timesteps(
    respacing: str, rescale: bool
) -> None:
    T = 100
    flags = classifier_noising_flags(
        {"diffusion_steps": T, "timestep_respacing": respacing, "rescale_timesteps": rescale}
    )
    diffusion = build_diffusion(flags)
    gen = torch.Generator().manual_seed(0)
    batch = 6
    x0 = torch.rand(batch, 1, 8, 8, generator=gen) * 2 - 1
    noise = torch.randn(x0.shape, generator=gen)
    t = torch.randint(0, diffusion.num_timesteps, (batch,), generator=gen)
    labels = torch.randint(0, 10, (batch,), generator=gen)
    logits = torch.randint(-8, 9, (batch, 10), generator=gen).float() / 4
    model = RecordingClassifier(logits)
    losses = classifier_loss_fn(diffusion, model)(x0, t, noise, {"y": labels})
    ((x_seen, t_seen),) = model.calls
    # the oracle's kept steps and time input [S27], [S28], §5 (all steps when not respaced)
    kept = np.array(sorted(space_timesteps(T, respacing or str(T))))
    expected_t = model_timesteps(t.numpy(), kept, T, rescale)
    np.testing.assert_array_equal(t_seen.numpy().astype(np.float64), expected_t)
    assert t_seen.dtype == (torch.float32 if rescale else torch.int64)
    # x_t is the diffusion's own q_sample at the chain index t (held to the oracle by the catalogue)
    assert torch.equal(x_seen, diffusion.q_sample(x0, t, noise))
    assert not torch.equal(x_seen, x0)
    assert torch.equal(losses["loss"], per_sample_cross_entropy(logits, labels))


@pytest.mark.parametrize("T", [1, 2, 3, 4, 7, 10, 1000, 4000])
def test_stratified_timesteps_fill_each_quarter_in_turn(T: int) -> None:
    count = 50
    gen = torch.Generator().manual_seed(1)
    t = stratified_timesteps(count, T, gen, torch.device("cpu")).numpy()
    bins = timestep_quarter(t, T)
    # quarter b holds the integers [⌈bT/4⌉, ⌈(b+1)T/4⌉); with T < 4 some hold none and are left out
    present = [b for b in range(4) if -(-(b + 1) * T // 4) > -(-b * T // 4)]
    assert len(present) == min(T, 4)
    assert t.shape == (count * len(present),)
    for i, b in enumerate(present):  # block i holds `count` draws, all in quarter b
        np.testing.assert_array_equal(bins[i * count : (i + 1) * count], b)
    if T >= 40:  # the draws spread over the quarter (not one value)
        for i in range(len(present)):
            assert len(set(t[i * count : (i + 1) * count])) > 1


def test_held_out_accumulator_bins_equal_the_oracle_over_several_batches() -> None:
    gen = np.random.default_rng(3)
    T, n, k = 1000, 64, 10
    logits = gen.integers(-8, 9, size=(n, k)) / 4.0
    labels = gen.integers(0, k, size=n)
    t = gen.integers(0, T, size=n)
    acc = HeldOutAccumulator(T, torch.device("cpu"))
    for lo in range(0, n, 16):
        sl = slice(lo, lo + 16)
        acc.add(torch.tensor(logits[sl]), torch.tensor(labels[sl]), torch.tensor(t[sl]))
    record = acc.reduce(DistContext())
    assert record["val_num_samples"] == n
    for topk in (1, 5):
        expected = binned_topk_accuracy(logits, labels, t, T, topk)
        got = [record[f"val_acc{topk}_q{b}"] for b in range(4)]
        np.testing.assert_array_equal(got, expected)
        whole = binned_topk_accuracy(logits, labels, np.zeros(n, dtype=np.int64), T, topk)[0]
        assert record[f"val_acc{topk}"] == pytest.approx(whole, abs=0.0)


def test_classifier_flags_resolve_to_the_full_create_classifier_dict() -> None:
    defaults: dict[str, Any] = classifier_flag_defaults()
    resolved = resolve_classifier_flags(
        {**defaults, "image_size": 8, "in_channels": 0, "num_classes": 0}, channels=1, num_classes=10
    )
    assert set(resolved) == set(defaults)
    assert (resolved["in_channels"], resolved["num_classes"], resolved["channel_mult"]) == (1, 10, "1,2")
    with pytest.raises(ValueError, match="unknown classifier flags"):
        resolve_classifier_flags({"classifier_widht": 3}, 1, 10)
    with pytest.raises(ValueError, match="--channel_mult"):
        resolve_classifier_flags({"image_size": 12}, 1, 10)


def test_classifier_config_checks_name_the_field() -> None:
    ClassifierTrainConfig(val_data="digits:held_out", eval_interval=10).validate()
    assert ClassifierTrainConfig().ema_rates == ()
    assert ClassifierTrainConfig(ema_rate="0.99").ema_rates == (0.99,)
    with pytest.raises(ValueError, match="val_data"):
        ClassifierTrainConfig(eval_interval=10).validate()
    with pytest.raises(ValueError, match="val_samples"):
        ClassifierTrainConfig(val_samples=0).validate()
    with pytest.raises(ValueError, match="eval_interval"):
        ClassifierTrainConfig(eval_interval=-1).validate()
    assert default_held_out("digits") == "digits:held_out"
    assert default_held_out("my.npz") == ""


def test_all_equal_logits_score_chance_not_one() -> None:
    """A zero-initialised head gives equal logits: ties by class index put label y at rank y."""
    labels = torch.arange(10).repeat(3)
    logits = torch.zeros(30, 10)
    t = torch.zeros(30, dtype=torch.long)
    for k, expected in ((1, 0.1), (5, 0.5), (10, 1.0)):
        got = impl_binned_topk_accuracy(logits, labels, t, 1000, k)[0].item()
        assert got == pytest.approx(expected, abs=1e-15)
        assert binned_topk_accuracy(logits.numpy(), labels.numpy(), t.numpy(), 1000, k)[0] == pytest.approx(
            expected, abs=1e-15
        )
