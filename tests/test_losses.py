import math

import pytest
import torch

from gankd_utils import losses


def test_bce_values_by_hand():
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([0.0, -1.0])
    # -log sigmoid(0) = log 2; -log sigmoid(2) = log(1 + e^-2); -log(1 - sigmoid(-1)) = log(1 + e^-1)
    expected = (math.log(2) + math.log(1 + math.exp(-2))) / 2 + (math.log(2) + math.log(1 + math.exp(-1))) / 2
    assert losses.d_bce(real, fake).item() == pytest.approx(expected, rel=1e-6)
    assert losses.g_bce(torch.tensor([0.0])).item() == pytest.approx(math.log(2), rel=1e-6)


def test_hinge_values_by_hand():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.0])
    # relu(1 - r): 0, 0.5, 2 -> mean 5/6; relu(1 + f): 0, 1, 2 -> mean 1
    assert losses.d_hinge(real, fake).item() == pytest.approx(5 / 6 + 1, rel=1e-6)
    assert losses.g_hinge(fake).item() == pytest.approx(1 / 3, rel=1e-6)


def test_pixel_losses_by_hand():
    a = torch.tensor([[1.0, -1.0], [0.5, 0.0]])
    b = torch.tensor([[0.0, -1.0], [-0.5, 1.0]])
    assert losses.pixel_l1(a, b).item() == pytest.approx((1 + 0 + 1 + 1) / 4)
    assert losses.pixel_mse(a, b).item() == pytest.approx((1 + 0 + 1 + 1) / 4)
    assert losses.pixel_mse(2 * a, 0 * b).item() == pytest.approx((4 + 4 + 1 + 0) / 4)
    with pytest.raises(ValueError, match="differ in shape"):
        losses.pixel_l1(a, b[:1])


def test_feature_mse_with_adapter():
    s = torch.ones(1, 2, 1, 1)
    t = torch.full((1, 3, 1, 1), 3.0)
    adapter = torch.nn.Conv2d(2, 3, 1, bias=False)
    torch.nn.init.constant_(adapter.weight, 0.5)  # each output channel = 0.5 * (1 + 1) = 1
    assert losses.feature_mse(s, t, adapter).item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="adapter"):
        losses.feature_mse(s, t)
    # the teacher side is constant: no gradient reaches it
    t.requires_grad_(True)
    losses.feature_mse(s, t, adapter).backward()
    assert t.grad is None and adapter.weight.grad is not None


def test_d_feature_l1_geometric_weights():
    s = [torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(2, 2)]
    t = [torch.ones(2, 2), torch.full((2, 2), 2.0), torch.full((2, 2), 4.0)]
    # weights 0.25, 0.5, 1 (deepest last): 0.25 * 1 + 0.5 * 2 + 1 * 4
    assert losses.d_feature_l1(s, t, decay=0.5).item() == pytest.approx(5.25)


def test_unknown_adversarial_loss():
    with pytest.raises(ValueError, match="unknown adversarial loss"):
        losses.adversarial("wasserstein-ish")
