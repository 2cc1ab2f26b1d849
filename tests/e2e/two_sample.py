"""Energy-distance two-sample permutation test (Székely & Rizzo), NumPy only.

Under H0 (same distribution) a permutation test with m permutations rejects at level α with probability at
most α exactly (the observed statistic is exchangeable with the permuted ones), whatever the distribution.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


def _pairwise(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    diff = a[:, None, :] - b[None, :, :]
    out: NDArray[np.float64] = np.sqrt((diff**2).sum(-1))
    return out


def energy_statistic(dist: NDArray[np.float64], n: int) -> float:
    """``2·E|X−Y| − E|X−X'| − E|Y−Y'|`` from the pooled distance matrix whose first ``n`` rows are X."""
    xx, yy, xy = dist[:n, :n], dist[n:, n:], dist[:n, n:]
    return float(2 * xy.mean() - xx.mean() - yy.mean())


def energy_test(
    x: NDArray[np.float64], y: NDArray[np.float64], *, permutations: int = 199, seed: int = 0
) -> dict[str, Any]:
    """Statistic and permutation p-value ``(1 + #{perm >= obs}) / (1 + permutations)``."""
    pooled = np.concatenate([x, y])
    dist = _pairwise(pooled, pooled)
    n = x.shape[0]
    observed = energy_statistic(dist, n)
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(permutations):
        idx = rng.permutation(pooled.shape[0])
        if energy_statistic(dist[np.ix_(idx, idx)], n) >= observed:
            exceed += 1
    return {"statistic": observed, "p_value": (1 + exceed) / (1 + permutations)}
