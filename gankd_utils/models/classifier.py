"""The project's own evaluator classifiers (MNIST, CIFAR-10).

They give offline, reproducible metrics: classifier-feature FID / KID on
their penultimate features and the class accuracy of generated images. These
numbers are *not* comparable with published Inception FIDs and are always
named by protocol (``fid10k_mnistcls``), never plain "FID".
"""
from __future__ import annotations

import torch
import torch.nn as nn


class ConvClassifier(nn.Module):
    """A small VGG-style CNN: (N, C, H, W) in [-1, 1] -> logits (N, n_classes).

    ``features(x)`` returns the (N, feature_dim) penultimate activations used
    for classifier-feature FID and KID.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 32, feature_dim: int = 256,
                 dropout: float = 0.3):
        super().__init__()
        self.hparams = {"in_channels": in_channels, "n_classes": n_classes, "width": width,
                        "feature_dim": feature_dim, "dropout": dropout}
        w = width

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.MaxPool2d(2))

        self.body = nn.Sequential(block(in_channels, w), block(w, 2 * w), block(2 * w, 4 * w),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.neck = nn.Sequential(nn.Linear(4 * w, feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, n_classes))
        self.n_classes, self.feature_dim = n_classes, feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
