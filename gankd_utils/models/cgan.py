"""Class-conditional ResNet GAN for CIFAR-10: SNGAN / BigGAN generator and projection discriminator.

Follows Miyato & Koyama, "cGANs with Projection Discriminator" (ICLR 2018) and
Miyato et al., "Spectral Normalization for GANs" (ICLR 2018), with the
CIFAR-10 layout of Brock et al., "Large Scale GAN Training for High Fidelity
Natural Image Synthesis" (BigGAN, ICLR 2019):

- :class:`ResNetGenerator`: z -> linear -> (4 ch, 4, 4) -> three residual
  up-blocks at a constant width of 4 ch, each with class-conditional BatchNorm
  (a one-hot class times a learned gain / bias table per BN: never the raw
  class id) -> BN - ReLU - conv3x3 - tanh -> (N, 3, 32, 32) in [-1, 1].
- :class:`ProjectionDiscriminator`: spectrally normalised ResNet (an
  "optimized" first block on the image, then down-blocks), ReLU, global sum
  pooling, then logit = linear(h) + <embed(y), h> (the projection term).

The lightweight students of the KD chapter are the same generator, narrower
(``student_s``) or narrower still with depthwise-separable 3x3 convs
(``student_xs``, TinyGAN's trick): see :data:`CGAN_PRESETS`.

Initialisation: every model is initialised at construction by
:func:`gankd_utils.models.layers.init_weights` (Xavier, from torch's global
RNG); call it again with a seeded CPU generator for a model that is a
function of the seed. DCGAN's N(0, 0.02) initialiser does not suit these
models: it cannot reach spectrally normalised weights.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..classes import check_labels
from .dcgan import check_inputs
from .layers import DownBlock, SNEmbedding, SNLinear, UpBlock, check_images, init_weights

# generator parameters as torch counts them (metrics.count_params), n_classes=10, z_dim=128;
# multiply-adds per image (metrics.count_macs): teacher 1,615M, student_s 102.4M, student_xs 7.0M
CGAN_PRESETS: dict[str, dict] = {
    "teacher": dict(ch=64),                     # 4,304,387 params, 256 channels: SNGAN's / BigGAN's CIFAR-10 width
    "student_s": dict(ch=16),                   # 375,683 params (11.5x fewer): a quarter of the width, full 3x3 convs
    "student_xs": dict(ch=10, separable=True),  # 105,683 params (40.7x fewer): 40 channels, depthwise-separable convs
}


class ResNetGenerator(nn.Module):
    """Class-conditional ResNet generator: z (N, z_dim), y (N,) int64 -> (N, 3, 8 bottom, 8 bottom) in [-1, 1].

    ``ch``: width unit; every block has 4 ch channels (the teacher's ch=64 gives
    256 channels and 4,304,387 parameters at z_dim=128, n_classes=10).
    ``bottom``: side of the first feature map (4 gives 32x32 images).
    ``separable``: depthwise-separable 3x3 convs in the blocks.
    ``inner``: each block's width between its two 3x3 convs (3 ints), when
    channel pruning (:func:`gankd_utils.compress.prune_channels`) narrowed
    it; None keeps 4 ch. The residual stream stays 4 ch wide either way.
    Class-conditional BN in every block (both BNs) from one-hot classes.
    ``forward(z, y, return_features=True)`` also returns the last block's
    output (N, feature_channels, 8 bottom, 8 bottom), the map feature KD compares.
    """

    def __init__(self, ch: int = 64, z_dim: int = 128, n_classes: int = 10, bottom: int = 4,
                 separable: bool = False, inner: list[int] | None = None):
        super().__init__()
        if ch < 1 or z_dim < 1 or bottom < 1:
            raise ValueError(f"ch, z_dim and bottom must be positive, got ch={ch}, z_dim={z_dim}, bottom={bottom}")
        if n_classes < 1:
            raise ValueError(f"ResNetGenerator is class-conditional: n_classes must be >= 1, got {n_classes}")
        self.hparams = {"ch": ch, "z_dim": z_dim, "n_classes": n_classes, "bottom": bottom, "separable": separable}
        width = 4 * ch
        if inner is None:
            inner = [width] * 3
        else:
            inner = [int(w) for w in inner]
            if len(inner) != 3 or min(inner) < 1:
                raise ValueError(f"inner must be 3 positive widths (one per block), got {inner}")
            # only a non-default layout is recorded: sidecars of unpruned models stay as they were
            self.hparams["inner"] = inner
        self.z_dim, self.n_classes, self.bottom, self.width = z_dim, n_classes, bottom, width
        self.img_shape = (3, 8 * bottom, 8 * bottom)
        self.feature_channels = width
        self.linear = nn.Linear(z_dim, bottom * bottom * width)
        self.blocks = nn.ModuleList(UpBlock(width, width, n_classes=n_classes, separable=separable,
                                            upsample="nearest", hidden=hidden) for hidden in inner)
        self.bn = nn.BatchNorm2d(width)
        self.out = nn.Conv2d(width, 3, 3, 1, 1)
        init_weights(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, return_features: bool = False):
        check_inputs(z, y, self.z_dim, self.n_classes)
        h = self.linear(z).view(-1, self.width, self.bottom, self.bottom)
        for block in self.blocks:
            h = block(h, y)
        x = torch.tanh(self.out(F.relu(self.bn(h))))
        return (x, h) if return_features else x


class ProjectionDiscriminator(nn.Module):
    """Spectral-norm ResNet projection discriminator: x (N, 3, H, W), y (N,) -> logits (N,).

    Blocks at width ``ch``: optimized block (H -> H/2), then ``n_down - 1``
    down-blocks (halving each time), then ``n_plain`` blocks at that size;
    ReLU; sum over positions -> h (N, ch); logit = linear(h) + <embed(y), h>.
    H and W must be multiples of 2 ** n_down (32x32 CIFAR-10 images with the
    defaults: 16, 8, 4). ch=128 (the default) has 776,449 parameters and 254M
    multiply-adds per image.

    ``return_features=True`` also returns the list of every block's output
    [(N, ch, H/2, W/2), (N, ch, H/4, W/4), ...], deepest last, for
    discriminator-feature distillation (:func:`gankd_utils.losses.d_feature_l1`).
    """

    def __init__(self, ch: int = 128, n_classes: int = 10, n_down: int = 3, n_plain: int = 0):
        super().__init__()
        if ch < 1 or n_down < 1 or n_plain < 0:
            raise ValueError(f"need ch >= 1, n_down >= 1, n_plain >= 0; "
                             f"got ch={ch}, n_down={n_down}, n_plain={n_plain}")
        if n_classes < 1:
            raise ValueError(f"ProjectionDiscriminator is class-conditional: n_classes must be >= 1, got {n_classes}")
        self.hparams = {"ch": ch, "n_classes": n_classes, "n_down": n_down, "n_plain": n_plain}
        self.n_classes, self.n_down = n_classes, n_down
        blocks = [DownBlock(3, ch, first=True)]
        blocks += [DownBlock(ch, ch) for _ in range(n_down - 1)]
        blocks += [DownBlock(ch, ch, downsample=False) for _ in range(n_plain)]
        self.blocks = nn.ModuleList(blocks)
        self.linear = SNLinear(ch, 1)
        self.embed = SNEmbedding(n_classes, ch)
        init_weights(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, return_features: bool = False):
        check_images(x, 3, multiple=2 ** self.n_down)
        check_labels(y, x.shape[0], self.n_classes)
        feats = []
        h = x
        for block in self.blocks:
            h = block(h)
            feats.append(h)
        h = F.relu(h).sum(dim=(2, 3))
        logits = self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)
        return (logits, feats) if return_features else logits
