"""DiffAugment (gankd_utils.augment): differentiable, seeded, each policy what it says."""
import pytest
import torch

from gankd_utils.augment import diff_augment


def test_diff_augment_shape_grad_and_seed():
    x = (torch.rand(6, 3, 32, 32) * 2 - 1).requires_grad_(True)
    out = diff_augment(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    again = diff_augment(x.detach(), generator=torch.Generator().manual_seed(0))
    other = diff_augment(x.detach(), generator=torch.Generator().manual_seed(1))
    assert torch.equal(out.detach(), again)
    assert not torch.equal(again, other)
    assert diff_augment(x, policy="") is x
    with pytest.raises(ValueError, match="unknown DiffAugment policy"):
        diff_augment(x, policy="color,flip")


def test_diff_augment_each_policy():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 32, 32) + 1  # strictly positive, so zeros mark shifted-in or cut-out pixels
    t = diff_augment(x, "translation", g)
    for i in range(8):  # a translated image is the original shifted by at most 4 pixels, zeros elsewhere
        found = any(torch.equal(t[i], _shift(x[i], dy, dx)) for dy in range(-4, 5) for dx in range(-4, 5))
        assert found
    c = diff_augment(x, ["cutout"], g)
    cut = (c == 0).all(1).float().mean((1, 2))
    assert (cut > 0).all() and (cut <= 0.25 + 1e-6).all()
    assert torch.equal(c[c != 0], x[c != 0])
    col = diff_augment(x, "color", g)
    assert col.shape == x.shape and not torch.equal(col, x)


def _shift(img, dy, dx):
    out = torch.zeros_like(img)
    h, w = img.shape[1:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = img[:, max(-dy, 0):h + min(-dy, 0),
                                                                       max(-dx, 0):w + min(-dx, 0)]
    return out
