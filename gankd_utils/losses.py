"""GAN and distillation losses: pure functions of tensors, no state, no modules.

Adversarial terms take discriminator logits; the non-saturating BCE form is
the DCGAN paper's (Goodfellow et al. 2014, sec. 3), hinge is SNGAN's / BigGAN's
(Miyato et al. 2018). KD terms follow the two MNIST seed projects and TinyGAN
(Chang & Lu, ACCV 2020).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def d_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))), averaged; D(.) = sigmoid(logits)."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def g_bce(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: -log D(G(z)), averaged."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def d_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def g_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """-mean(D(G(z)))."""
    return -fake_logits.mean()


ADVERSARIAL = {"bce": (d_bce, g_bce), "hinge": (d_hinge, g_hinge)}


def adversarial(kind: str):
    """``(d_loss, g_loss)`` for ``'bce'`` or ``'hinge'``."""
    if kind not in ADVERSARIAL:
        raise ValueError(f"unknown adversarial loss {kind!r}: choose one of {sorted(ADVERSARIAL)}")
    return ADVERSARIAL[kind]


def pixel_l1(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of two image batches of the same shape."""
    _same_shape(student, teacher)
    return (student - teacher).abs().mean()


def pixel_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of two image batches of the same shape."""
    _same_shape(student, teacher)
    return (student - teacher).pow(2).mean()


def feature_mse(student_feat: torch.Tensor, teacher_feat: torch.Tensor, adapter=None) -> torch.Tensor:
    """MSE between intermediate feature maps (IITGN's KD term).

    Where the widths differ, ``adapter`` (a learned 1x1 conv from the student's
    channels to the teacher's, trained with the student) maps the student's
    map first; the teacher's features are treated as constants.
    """
    s = adapter(student_feat) if adapter is not None else student_feat
    _same_shape(s, teacher_feat, "feature maps (pass a 1x1 adapter when widths differ)")
    return (s - teacher_feat.detach()).pow(2).mean()


def d_feature_l1(student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor],
                 decay: float = 0.5) -> torch.Tensor:
    """Discriminator-feature distillation (TinyGAN eq. 4): sum_i w_i * L1(D_i(student), D_i(teacher)).

    Layer i of L gets weight ``decay ** (L - 1 - i)``: the deepest layer weighs
    1, each shallower one ``decay`` times less (geometric weights).
    """
    if len(student_feats) != len(teacher_feats) or not student_feats:
        raise ValueError(f"need the same non-zero number of feature maps, got {len(student_feats)} and {len(teacher_feats)}")
    n = len(student_feats)
    total = student_feats[0].new_zeros(())
    for i, (s, t) in enumerate(zip(student_feats, teacher_feats)):
        _same_shape(s, t, f"D feature {i}")
        total = total + decay ** (n - 1 - i) * (s - t.detach()).abs().mean()
    return total


def _same_shape(a: torch.Tensor, b: torch.Tensor, what: str = "images") -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what} differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
