"""Improved precision and recall (Kynkaanniemi et al., NeurIPS 2019).

Each set's manifold is the union of balls around its feature vectors, of
radius the distance to the k-th nearest neighbour within the set. Precision:
the share of generated samples inside the real manifold (quality); recall:
the share of real samples inside the generated manifold (coverage).
"""
from __future__ import annotations

import numpy as np
import torch


def _kth_radius(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    radii = []
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i:i + chunk], x)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # +1: the point itself is at distance 0
    return torch.cat(radii)


def _inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int) -> float:
    hits = 0
    for i in range(0, len(points), chunk):
        d = torch.cdist(points[i:i + chunk], centres)
        hits += (d <= radii[None]).any(1).sum().item()
    return hits / len(points)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3, chunk: int = 1000) -> tuple[float, float]:
    """(precision, recall) of ``fake`` features (N, D) against ``real`` features (M, D), both in [0, 1]."""
    r = torch.as_tensor(np.asarray(real), dtype=torch.float32)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float32)
    if r.ndim != 2 or f.ndim != 2 or r.shape[1] != f.shape[1]:
        raise ValueError(f"need (N, D) features with the same D, got {tuple(r.shape)} and {tuple(f.shape)}")
    if min(len(r), len(f)) <= k:
        raise ValueError(f"need more than k={k} samples in each set, got {len(r)} and {len(f)}")
    precision = _inside(f, r, _kth_radius(r, k, chunk), chunk)
    recall = _inside(r, f, _kth_radius(f, k, chunk), chunk)
    return precision, recall
