"""The parameterisation enums of improved-diffusion: what the network predicts, which loss trains it."""

from __future__ import annotations

import enum

__all__ = ["LOSS_WEIGHTINGS", "LossType", "ModelMeanType", "ModelVarType"]

#: How the MSE term is weighted per timestep: not at all, or by min-SNR-γ [S43].
LOSS_WEIGHTINGS: tuple[str, ...] = ("none", "min_snr")


class ModelMeanType(enum.Enum):
    """What the mean channels of the network output predict (SPEC §3)."""

    PREVIOUS_X = enum.auto()  # the posterior mean x_{t-1} itself
    START_X = enum.auto()  # x_0
    EPSILON = enum.auto()  # the noise ε of [S6]
    VELOCITY = enum.auto()  # v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 [S40] (v-prediction; not in the original)


class ModelVarType(enum.Enum):
    """How the reverse-process variance Σ_θ is obtained ([S11]–[S14])."""

    LEARNED = enum.auto()  # the variance channels are log Σ
    FIXED_SMALL = enum.auto()  # Σ = β̃_t (posterior variance)
    FIXED_LARGE = enum.auto()  # Σ = β_t (β̃_1 at t = 0)
    LEARNED_RANGE = enum.auto()  # interpolate log β_t and log β̃_t with v ∈ [-1, 1]


class LossType(enum.Enum):
    """The training objective ([S21]–[S23])."""

    MSE = enum.auto()  # L_simple (+ L_vlb with weight 1 when the variance is learned)
    RESCALED_MSE = enum.auto()  # L_simple + (T/1000)·L_vlb: the paper's L_hybrid
    KL = enum.auto()  # L_t, the variational bound term
    RESCALED_KL = enum.auto()  # T·L_t, an estimate of the whole bound

    def is_vb(self) -> bool:
        """True for the pure variational-bound objectives (KL, RESCALED_KL)."""
        return self in (LossType.KL, LossType.RESCALED_KL)
