"""Tiny data sets, configs and model pairs that the training tests share (CPU, seconds)."""
from __future__ import annotations

import torch

from gankd_utils import config, data, repro
from gankd_utils.models import (
    CondDCGANDiscriminator,
    CondDCGANGenerator,
    ProjectionDiscriminator,
    ResNetGenerator,
)
from gankd_utils.models.layers import dcgan_init, init_weights


def tiny_set(n=96, seed=0) -> data.ImageSet:
    g = torch.Generator().manual_seed(seed)
    return data.ImageSet(torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g),
                         torch.arange(n) % 10, data.MNIST_CLASSES, "tiny")


def cfg(**kw):
    return config.settings("mnist", "smoke", train={"n_train": None, "batch_size": 16, "ckpt_every": 2,
                                                    "n_fixed": 10, **kw}).train


def cond_pair(seed=0):
    return dcgan_init(CondDCGANGenerator(32), seed), dcgan_init(CondDCGANDiscriminator(4), seed + 1)


def teacher_set(n=24, z_dim=128, seed=0) -> data.ImageSet:
    g = torch.Generator().manual_seed(seed)
    return data.ImageSet(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(n) % 10,
                         data.CIFAR10_CLASSES, "teacher-set", torch.randn(n, z_dim, generator=g))


def bb_pair(seed=0):
    G = init_weights(ResNetGenerator(ch=4), repro.generator(seed, "init"))
    D = init_weights(ProjectionDiscriminator(ch=8), repro.generator(seed + 1, "init"))
    return G, D


def bb_cfg(**kw):
    return config.settings("cifar10", "smoke", train={**config.TINYGAN, "n_train": None, "batch_size": 8,
                                                      "ckpt_every": 2, "n_fixed": 10, "w_pixel": 0.2, **kw}).train
