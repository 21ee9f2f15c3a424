"""DCGAN generators and discriminators for MNIST (Radford et al., ICLR 2016).

Two families, each reproducing one KD project:

- IITGN (unconditional): the TensorFlow DCGAN tutorial's generator as the
  teacher (dense 7x7x256, two stride-2 transposed convs, a 4x4 output conv) and
  a student with half the dense width and one transposed conv. Counted as Keras
  counts them (BatchNorm's moving mean and variance included) they have the
  seed project's 1,961,728 and 784,640 parameters; torch counts only trainable
  tensors, 25,472 and 12,672 fewer. KD matches the student's 14x14 feature
  map to the teacher's through a learned 1x1 adapter.
- Columbia (class-conditional): the PyTorch DCGAN generator with width ``c``
  channels in its first layer (teacher c=512, students c=64 and c=32),
  conditioned by a one-hot class vector concatenated to z (the seed project
  repeated the raw class index over channels, which orders classes as if 9
  were "more" than 1). KD is pixel L1 to the teacher's image for the same
  (z, y).

Every generator maps z (N, z_dim) and, when conditional, y (N,) int64 class
ids to images (N, 1, 28, 28) in [-1, 1]. Discriminators return logits (N,).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..classes import check_labels


def check_inputs(z: torch.Tensor, y: torch.Tensor | None, z_dim: int, n_classes: int) -> None:
    """A generator's inputs: z (N, z_dim), and for a conditional model y (N,) class ids (:func:`classes.check_labels`)."""
    if z.ndim != 2 or z.shape[1] != z_dim:
        raise ValueError(f"z must have shape (N, {z_dim}), got {tuple(z.shape)}")
    if n_classes:
        check_labels(y, z.shape[0], n_classes)


class IITGNGenerator(nn.Module):
    """IITGN DCGAN generator: z (N, 100) -> (N, 1, 28, 28) in [-1, 1].

    ``role="teacher"``: dense 7x7x256 -> convT 128 (14x14) -> convT 64 (28x28) -> conv 1.
    ``role="student"``: dense 7x7x128 -> convT 64 (14x14) -> convT 1 (28x28).
    ``features`` is the 14x14 map KD compares (teacher 128 channels, student 64).
    """

    def __init__(self, role: str = "teacher", z_dim: int = 100):
        super().__init__()
        if role not in ("teacher", "student"):
            raise ValueError(f"role must be 'teacher' or 'student', got {role!r}")
        self.hparams = {"role": role, "z_dim": z_dim}
        self.z_dim, self.n_classes, self.img_shape = z_dim, 0, (1, 28, 28)
        w = 256 if role == "teacher" else 128
        self.w0 = w
        self.fc = nn.Sequential(nn.Linear(z_dim, 7 * 7 * w, bias=False), nn.BatchNorm1d(7 * 7 * w), nn.LeakyReLU(0.2))

        def up(cin, cout):
            return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))

        if role == "teacher":
            self.block1 = up(256, 128)  # 14x14: the KD feature map
            # Keras 'same' padding for an even kernel: one pixel before, two after
            self.head = nn.Sequential(up(128, 64), nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(64, 1, 4, bias=False))
            self.feature_channels = 128
        else:
            self.block1 = up(128, 64)  # 14x14: the KD feature map
            self.head = nn.ConvTranspose2d(64, 1, 4, 2, 1, bias=False)
            self.feature_channels = 64

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, return_features: bool = False):
        check_inputs(z, None, self.z_dim, 0)
        h = self.fc(z).view(-1, self.w0, 7, 7)
        f = self.block1(h)
        x = torch.tanh(self.head(f))
        return (x, f) if return_features else x


class IITGNDiscriminator(nn.Module):
    """TF-tutorial DCGAN discriminator: (N, 1, 28, 28) -> logits (N,)."""

    def __init__(self, width: int = 64, dropout: float = 0.3):
        super().__init__()
        self.hparams = {"width": width, "dropout": dropout}
        self.n_classes = 0
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 5, 2, 2), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Conv2d(width, 2 * width, 5, 2, 2), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).flatten()


class CondDCGANGenerator(nn.Module):
    """Columbia conditional DCGAN generator: (z, y) -> (N, 1, 28, 28) in [-1, 1].

    ``c`` is the first layer's width (the teacher's 512; students 64, 32); the
    widths then halve: c (4x4), c/2 (8x8), c/4 (16x16), c/8 (32x32), and a 1x1
    conv on the centre 28x28 crop gives the image (the seed's final transposed
    conv with padding 2 does the same crop).

    ``widths``: the four hidden widths, when they are not c, c/2, c/4, c/8
    (a channel-pruned model, :func:`gankd_utils.compress.prune_channels`);
    None keeps the layout above.

    ``out_bias``: give the 1x1 output conv a bias (starting at 0). The walk's
    models have none, as in the seed project; with c=32 that conv reads only four
    ReLU channels, and a student whose four weights settle mostly positive cannot
    darken a pixel (``zoo.mnist_ablations`` trains the c=32 students with one).
    """

    def __init__(self, c: int = 512, z_dim: int = 100, n_classes: int = 10, out_channels: int = 1,
                 widths: list[int] | None = None, out_bias: bool = False):
        super().__init__()
        if c % 8 or c < 8:
            raise ValueError(f"width c must be a multiple of 8 (>= 8), got {c}")
        self.hparams = {"c": c, "z_dim": z_dim, "n_classes": n_classes, "out_channels": out_channels}
        self.z_dim, self.n_classes, self.img_shape = z_dim, n_classes, (out_channels, 28, 28)
        if widths is None:
            widths = [c, c // 2, c // 4, c // 8]
        else:
            widths = [int(w) for w in widths]
            if len(widths) != 4 or min(widths) < 1:
                raise ValueError(f"widths must be 4 positive hidden widths, got {widths}")
            # only a non-default layout is recorded: sidecars of unpruned models stay as they were
            self.hparams["widths"] = widths
        if out_bias:  # recorded only when set: the sidecars of the walk's models stay as they were
            self.hparams["out_bias"] = True
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim + n_classes, widths[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(widths[-1], out_channels, 1, bias=bool(out_bias))
        self.feature_channels = widths[-1]

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, return_features: bool = False):
        check_inputs(z, y, self.z_dim, self.n_classes)
        h = torch.cat([z, F.one_hot(y, self.n_classes).to(z.dtype)], 1)[:, :, None, None]
        f = self.body(h)[:, :, 2:30, 2:30]
        x = torch.tanh(self.out(f))
        return (x, f) if return_features else x


class CondDCGANDiscriminator(nn.Module):
    """Conditional DCGAN discriminator: image (N, C, 28, 28) + one-hot class maps -> logits (N,)."""

    def __init__(self, width: int = 64, n_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.hparams = {"width": width, "n_classes": n_classes, "in_channels": in_channels}
        self.n_classes = n_classes
        d = width
        self.net = nn.Sequential(
            nn.Conv2d(in_channels + n_classes, d, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),  # 14x14
            nn.Conv2d(d, 2 * d, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * d), nn.LeakyReLU(0.2),  # 7x7
            nn.Conv2d(2 * d, 4 * d, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * d), nn.LeakyReLU(0.2),  # 3x3
            nn.Conv2d(4 * d, 1, 3, 1, 0, bias=False),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            raise ValueError("this discriminator is class-conditional: pass y")
        maps = F.one_hot(y, self.n_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return self.net(torch.cat([x, maps], 1)).flatten()
