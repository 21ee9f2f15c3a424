"""TinyGAN student generator and discriminator (Chang & Lu, "TinyGAN: Distilling BigGAN for Conditional
Image Generation", ACCV 2020).

Generator: a BigGAN-shaped ResNet made small. z (N, 128) goes through one
linear layer to a (16 ch, 4, 4) map; residual up-blocks (bilinear x2,
depthwise 3x3 + pointwise 1x1 convs, a 1x1 shortcut) double the size and,
after the first, halve the width; BN - ReLU - conv3x3 - tanh gives the image.
Every BatchNorm in the blocks is class-conditional, driven by one shared
``embed_dim``-d class embedding through a per-BN linear layer.

Conditioning choice: as TinyGAN, z enters only through the first linear layer
and the conditional BNs see the class embedding alone (``cond="embed"``).
BigGAN-deep instead feeds [embedding, z] to every BN; ``cond="embed+z"``
does that (it adds z_dim * 2 * C parameters per BN). BigGAN's hierarchical
split of z into per-block chunks is not offered.

Widths at 128x128 (TinyGAN's, ``ch=32``): 512 (4x4) -> 512 (8) -> 256 (16)
-> 128 (32) -> 64 (64) -> 32 (128) -> 3. The same rule (first width
ch * 2 ** (blocks - 1), the first block keeps it, each later one halves it)
gives 256 (4x4) -> 256 -> 128 -> 64 -> 32 at 64 px (4 blocks) and
128 (4x4) -> 128 -> 64 -> 32 at 32 px (3 blocks).

Parameter count: the paper's "3.07M" (16x fewer than BigGAN's generator) is
the 128x128 student with a 1000-row class table, the embedding of every
ImageNet class, although TinyGAN distils only the 398 animal classes: this
module has exactly 3,070,659 parameters with ``n_classes=1000`` and
2,993,603 with ``n_classes=398`` (64 px: 1,280,195; 32 px: 614,339, with
1000 classes). The animal classes are ImageNet ids 0..397, so either table
is indexed by ImageNet class ids. Multiply-adds per image: 315.6M at 128 px,
64.3M at 64 px, 12.5M at 32 px.

Discriminator: the TinyGAN critic, spectral-norm strided 4x4 convs with
LeakyReLU, global sum pooling and a projection head; it also returns the
post-activation maps for TinyGAN's discriminator-feature loss.

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
from .layers import SNConv2d, SNEmbedding, SNLinear, UpBlock, check_images, init_weights

N_BLOCKS = {32: 3, 64: 4, 128: 5}  # 4x4 doubled once per block


def _n_blocks(resolution: int) -> int:
    if resolution not in N_BLOCKS:
        raise ValueError(f"resolution must be one of {sorted(N_BLOCKS)}, got {resolution}")
    return N_BLOCKS[resolution]


class TinyGANGenerator(nn.Module):
    """TinyGAN student: z (N, z_dim), y (N,) int64 ImageNet ids -> (N, 3, resolution, resolution) in [-1, 1].

    ``resolution`` 32, 64 or 128 (3, 4 or 5 up-blocks); ``ch`` is the last
    block's width (TinyGAN: 32); the first map has ch * 2 ** (blocks - 1)
    channels. ``embed_dim``: the shared class embedding (N, embed_dim) that
    drives every conditional BN; ``cond``: 'embed' (TinyGAN) or 'embed+z'
    (BigGAN-deep). 3,070,659 parameters at the defaults (128 px, 1000 classes).
    ``inner``: each block's width between its two convs (one int per block),
    when channel pruning (:func:`gankd_utils.compress.prune_channels`)
    narrowed it; None keeps each block's output width.

    ``forward(z, y, return_features=True)`` also returns the last block's
    output (N, ch, resolution, resolution). :meth:`from_embedding` takes class
    embeddings instead of ids (class interpolation); :meth:`set_class_embedding`
    loads a table, e.g. the teacher's, as TinyGAN initialises from BigGAN's.
    """

    def __init__(self, resolution: int = 128, z_dim: int = 128, n_classes: int = 1000, embed_dim: int = 128,
                 ch: int = 32, cond: str = "embed", inner: list[int] | None = None):
        super().__init__()
        n = _n_blocks(resolution)
        if cond not in ("embed", "embed+z"):
            raise ValueError(f"cond must be 'embed' or 'embed+z', got {cond!r}")
        if ch < 1 or z_dim < 1 or embed_dim < 1 or n_classes < 1:
            raise ValueError(f"ch, z_dim, embed_dim and n_classes must be positive, got ch={ch}, z_dim={z_dim}, "
                             f"embed_dim={embed_dim}, n_classes={n_classes}")
        self.hparams = {"resolution": resolution, "z_dim": z_dim, "n_classes": n_classes, "embed_dim": embed_dim,
                        "ch": ch, "cond": cond}
        self.z_dim, self.n_classes, self.embed_dim, self.cond = z_dim, n_classes, embed_dim, cond
        self.img_shape = (3, resolution, resolution)
        self.widths = [ch * 2 ** (n - 1)] + [ch * 2 ** (n - 1 - i) for i in range(n)]
        if inner is None:
            inner = self.widths[1:]
        else:
            inner = [int(w) for w in inner]
            if len(inner) != n or min(inner) < 1:
                raise ValueError(f"inner must be {n} positive widths (one per block), got {inner}")
            # only a non-default layout is recorded: sidecars of unpruned models stay as they were
            self.hparams["inner"] = inner
        self.feature_channels = ch
        cond_dim = embed_dim + (z_dim if cond == "embed+z" else 0)
        self.embed = nn.Embedding(n_classes, embed_dim)
        self.linear = nn.Linear(z_dim, 4 * 4 * self.widths[0])
        self.blocks = nn.ModuleList(UpBlock(cin, cout, cond_dim=cond_dim, separable=True, upsample="bilinear",
                                            hidden=hidden)
                                    for cin, cout, hidden in zip(self.widths[:-1], self.widths[1:], inner))
        self.bn = nn.BatchNorm2d(ch)
        self.out = nn.Conv2d(ch, 3, 3, 1, 1)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Xavier layers (:func:`layers.init_weights`) and a N(0, 1) class embedding, from ``generator``."""
        init_weights(self, generator)
        with torch.no_grad():
            # unit-variance rows (BigGAN's scale) with the N(0, 0.02) BN projections give gain and bias offsets of ~0.2
            self.embed.weight.copy_(torch.randn(self.embed.weight.shape, generator=generator))

    @torch.no_grad()
    def set_class_embedding(self, weight: torch.Tensor) -> None:
        """Load a class table (n_classes, embed_dim), e.g. rows of the teacher's shared embedding."""
        if tuple(weight.shape) != tuple(self.embed.weight.shape):
            raise ValueError(f"class embedding must have shape {tuple(self.embed.weight.shape)}, "
                             f"got {tuple(weight.shape)}")
        self.embed.weight.copy_(weight)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, return_features: bool = False):
        check_inputs(z, y, self.z_dim, self.n_classes)
        return self.from_embedding(z, self.embed(y), return_features)

    def from_embedding(self, z: torch.Tensor, e: torch.Tensor, return_features: bool = False):
        """Images for noise z (N, z_dim) and class embeddings e (N, embed_dim), e.g. a blend of two classes."""
        if e.ndim != 2 or e.shape != (z.shape[0], self.embed_dim):
            raise ValueError(f"class embeddings must have shape ({z.shape[0]}, {self.embed_dim}), got {tuple(e.shape)}")
        check_inputs(z, None, self.z_dim, 0)
        c = torch.cat([e, z], 1) if self.cond == "embed+z" else e
        h = self.linear(z).view(-1, self.widths[0], 4, 4)
        for block in self.blocks:
            h = block(h, c)
        x = torch.tanh(self.out(F.relu(self.bn(h))))
        return (x, h) if return_features else x


class TinyGANDiscriminator(nn.Module):
    """TinyGAN discriminator: x (N, 3, resolution, resolution), y (N,) -> logits (N,).

    3, 4 or 5 spectral-norm 4x4 stride-2 convs (32, 64, 128 px) of widths ch,
    2 ch, 4 ch, ... each followed by LeakyReLU(``negative_slope``); sum over
    positions -> h (N, C); logit = linear(h) + <embed(y), h>. TinyGAN's code
    uses slope 0.01; 0.1 here (the usual SNGAN-critic value), set it as needed.
    ch=32 with 1000 classes: 3,300,321 parameters at 128 px (946,401 at 64, 293,729 at 32).

    ``return_features=True`` also returns the list of the post-LeakyReLU maps,
    [(N, ch, R/2, R/2), (N, 2 ch, R/4, R/4), ...], deepest last: the
    activations TinyGAN's feature loss compares (losses.d_feature_l1).
    """

    def __init__(self, resolution: int = 128, n_classes: int = 1000, ch: int = 32, negative_slope: float = 0.1):
        super().__init__()
        n = _n_blocks(resolution)
        if ch < 1 or n_classes < 1:
            raise ValueError(f"ch and n_classes must be positive, got ch={ch}, n_classes={n_classes}")
        self.hparams = {"resolution": resolution, "n_classes": n_classes, "ch": ch, "negative_slope": negative_slope}
        self.resolution, self.n_classes, self.negative_slope = resolution, n_classes, negative_slope
        widths = [3] + [ch * 2 ** i for i in range(n)]
        self.convs = nn.ModuleList(SNConv2d(cin, cout, 4, 2, 1) for cin, cout in zip(widths[:-1], widths[1:]))
        self.linear = SNLinear(widths[-1], 1)
        self.embed = SNEmbedding(n_classes, widths[-1])
        init_weights(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, return_features: bool = False):
        check_images(x, 3, self.resolution)
        check_labels(y, x.shape[0], self.n_classes)
        feats = []
        h = x
        for conv in self.convs:
            h = F.leaky_relu(conv(h), self.negative_slope)
            feats.append(h)
        h = h.sum(dim=(2, 3))
        logits = self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)
        return (logits, feats) if return_features else logits
