"""Kernel Inception Distance (Binkowski et al., ICLR 2018): unbiased MMD^2 with a cubic kernel.

k(x, y) = (x.y / D + 1)^3, averaged over random subsets; unlike FID it is
unbiased, so small sample counts compare fairly.
"""
from __future__ import annotations

import numpy as np


def kid(feat_a: np.ndarray, feat_b: np.ndarray, n_subsets: int = 50, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over ``n_subsets`` subsets of both feature sets (N, D)."""
    a, b = np.asarray(feat_a, np.float64), np.asarray(feat_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, D) feature arrays with the same D, got {a.shape} and {b.shape}")
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("KID needs at least 2 samples per set")
    d = a.shape[1]

    def kernel_sum(x: np.ndarray, y: np.ndarray, off_diagonal: bool) -> float:
        k = x @ y.T  # the cubic kernel, in place: a third of the time of ``(x @ y.T / d + 1) ** 3``
        k /= d
        k += 1
        k3 = k * k
        k3 *= k
        return float(k3.sum() - np.trace(k3)) if off_diagonal else float(k3.sum())

    rng = np.random.default_rng(seed)
    whole_a, whole_b = m == len(a), m == len(b)  # such a subset is its whole set reordered: one kernel sum serves
    sum_aa = kernel_sum(a, a, True) if whole_a else None
    sum_bb = kernel_sum(b, b, True) if whole_b else None
    vals = []
    for _ in range(n_subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = sum_aa if whole_a else kernel_sum(x, x, True)
        kyy = sum_bb if whole_b else kernel_sum(y, y, True)
        vals.append((kxx + kyy) / (m * (m - 1)) - 2 * kernel_sum(x, y, False) / (m * m))
    return float(np.mean(vals)), float(np.std(vals))
