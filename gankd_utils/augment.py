"""Differentiable augmentation for GAN training (Zhao et al., "Differentiable Augmentation for
Data-Efficient GAN Training", NeurIPS 2020).

The same random transformations are applied to real and generated images
before the discriminator sees them, in D's and in G's step; every operation is
differentiable in the pixels, so G's gradient flows through the augmentation.
That keeps D from memorising a small training set (CIFAR-10 at 10-20% of the
data, or a few thousand teacher images) without the augmentations leaking
into the generated images.

Policies (comma-separated, applied in the order given):

- ``color``: brightness (add U[-0.5, 0.5)), saturation (scale the distance to
  the per-pixel channel mean by U[0, 2)), contrast (scale the distance to the
  per-image mean by U[0.5, 1.5)), one draw per image each.
- ``translation``: shift by whole pixels, up to 1/8 of the size each way,
  filling with zeros.
- ``cutout``: zero a square of half the image side at a random centre (the
  square may hang over the border).

Images are (N, C, H, W), nominally in [-1, 1]; the output has the same
shape, dtype and device and is not clipped (the paper does not clip).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def diff_augment(x: torch.Tensor, policy: str | Sequence[str] = "color,translation,cutout",
                 generator: torch.Generator | None = None, translation_ratio: float = 0.125,
                 cutout_ratio: float = 0.5) -> torch.Tensor:
    """DiffAugment of a batch: (N, C, H, W) -> (N, C, H, W), differentiable in ``x``.

    ``generator``: a torch.Generator (on the CPU, or on x's device) from which
    every random draw comes, so a seeded generator reproduces the same
    augmentation on any device; None uses torch's global RNG. An empty policy
    returns ``x`` itself.
    """
    names = [p.strip() for p in (policy.split(",") if isinstance(policy, str) else policy) if p.strip()]
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown}: choose from {list(POLICIES)}")
    if names and x.ndim != 4:
        raise ValueError(f"DiffAugment takes images (N, C, H, W), got shape {tuple(x.shape)}")
    for name in names:
        if name == "color":
            x = _color(x, generator)
        elif name == "translation":
            x = _translation(x, translation_ratio, generator)
        else:
            x = _cutout(x, cutout_ratio, generator)
    return x


def _rand(shape, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    dev = generator.device if generator is not None else x.device
    return torch.rand(shape, generator=generator, device=dev).to(device=x.device, dtype=x.dtype)


def _randint(low: int, high: int, n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    dev = generator.device if generator is not None else x.device
    return torch.randint(low, high, (n,), generator=generator, device=dev).to(x.device)


def _color(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    n = x.shape[0]
    x = x + (_rand((n, 1, 1, 1), x, g) - 0.5)
    m = x.mean(dim=1, keepdim=True)
    x = (x - m) * (_rand((n, 1, 1, 1), x, g) * 2) + m
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * (_rand((n, 1, 1, 1), x, g) + 0.5) + m


def _translation(x: torch.Tensor, ratio: float, g: torch.Generator | None) -> torch.Tensor:
    n, c, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if sy == 0 and sx == 0:
        return x
    dy = _randint(-sy, sy + 1, n, x, g)
    dx = _randint(-sx, sx + 1, n, x, g)
    # output pixel (i, j) reads input (i - dy, j - dx); the zero border of the
    # padded copy supplies whatever was shifted in from outside
    padded = F.pad(x, (sx, sx, sy, sy))
    rows = torch.arange(h, device=x.device)[None] - dy[:, None] + sy  # (N, H)
    cols = torch.arange(w, device=x.device)[None] - dx[:, None] + sx  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def _cutout(x: torch.Tensor, ratio: float, g: torch.Generator | None) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if ch == 0 or cw == 0:
        return x
    top = _randint(0, h, n, x, g) - ch // 2  # centre anywhere in the image
    left = _randint(0, w, n, x, g) - cw // 2
    rows = torch.arange(h, device=x.device)[None] - top[:, None]  # (N, H): row index inside the square
    cols = torch.arange(w, device=x.device)[None] - left[:, None]
    inside = ((rows >= 0) & (rows < ch))[:, :, None] & ((cols >= 0) & (cols < cw))[:, None, :]
    return x * (~inside).to(x.dtype)[:, None]
