"""Uncertainty for the health metrics: Wilson intervals for shares, a paired bootstrap for changes,
and McNemar's exact test for a change in a share (paired yes/no outcomes)."""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0  # fixed, so a metrics file is a pure function of the answers


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval of a share; (0, 1) when there is nothing to count."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    # exactly 0 and 1 at the edges, where rounding would leave them a hair inside
    return (0.0 if successes == 0 else low), (1.0 if successes == n else high)


def mcnemar_exact(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value: of the prompts whose flag differs between two models, how
    unlikely a split this uneven is if each side were equally likely (binomial, p = 1/2)."""
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(gained, lost) + 1)) / 2**n
    return min(1.0, 2 * tail)


def resample_indices(n: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(resamples, n) indices drawn with replacement: one row per bootstrap sample of the n prompts."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def centred_interval(estimate: float, samples: np.ndarray) -> tuple[float, float]:
    """95 % interval: the spread of the bootstrap samples around their mean, centred on the estimate.

    Resampling with replacement repeats answers, which lowers corpus-level ratios such as distinct-n
    in every sample; centring keeps that shift out of the interval. For shares and means it is the
    plain percentile interval, since their samples centre on the estimate anyway."""
    low, high = np.percentile(samples - samples.mean(), [2.5, 97.5])
    return float(estimate + low), float(estimate + high)
