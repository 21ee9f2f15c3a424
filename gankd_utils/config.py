"""Experiment settings as frozen dataclasses, and the three profiles.

Every default is stated once, here, with a one-line reason (the habit of
StudioGAN's ``src/config.py``); a profile is a small diff applied with
``dataclasses.replace``; each run saves its settings as ``config.json``.

Profiles:
- ``smoke``: every code path in seconds on 2 CPU cores; numbers are meaningless.
- ``quick``: a laptop CPU; the whole walk in about half an hour, recognisable digits.
- ``full``: one GPU; the numbers that go into the report.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROFILE_NAMES = ("smoke", "quick", "full")


@dataclass(frozen=True)
class TrainConfig:
    """One GAN training run, from scratch or distilled from a teacher."""

    name: str = "run"  # folder name of the run under the chapter's results
    dataset: str = "mnist"  # mnist | cifar10
    n_train: int | None = None  # None: whole training set; n: a class-balanced subset of n images
    epochs: int = 25  # Columbia project: 25 epochs of MNIST
    batch_size: int = 128  # Columbia project and the DCGAN paper
    lr_g: float = 2e-4  # DCGAN paper (Radford et al. 2016)
    lr_d: float = 2e-4  # DCGAN paper
    betas: tuple[float, float] = (0.5, 0.999)  # DCGAN paper: beta1 = 0.5 steadies training
    loss: str = "bce"  # bce (DCGAN) | hinge (SNGAN / BigGAN)
    n_critic: int = 1  # D steps per G step
    kd: str = "none"  # none | feature (IITGN) | pixel (Columbia) | blackbox (TinyGAN / GSoC: from a teacher set)
    w_adv: float = 1.0  # weight of G's adversarial term
    w_feat: float = 0.0  # weight of the feature-MSE KD term
    w_pixel: float = 0.0  # weight of the pixel-L1 KD term (its value in epoch 0)
    pixel_decay: float = 0.0  # subtracted from w_pixel after every epoch, floored at 0 (TinyGAN: 0.01)
    w_dfeat: float = 0.0  # weight of the discriminator-feature L1 KD term (TinyGAN: 1.0)
    dfeat_decay: float = 0.5  # geometric weight per D layer, deepest layer weighs 1
    w_real: float = 0.0  # weight of the real-image GAN branch of black-box KD (TinyGAN: 0.2)
    ema_decay: float = 0.0  # 0: off; else G's weights are averaged (BigGAN: 0.9999) and the average is saved
    diffaug: str = ""  # DiffAugment policy applied to D's inputs, e.g. "color,translation,cutout"
    ckpt_every: int = 500  # steps between resumable checkpoints (and one at every epoch end)
    log_every: int = 50  # steps between lines of metrics.jsonl (history.json keeps every step)
    sample_every: int = 0  # steps between fixed-z sample sheets (0: only one per epoch)
    n_fixed: int = 100  # fixed-z sample sheet size (10 per class for conditional models)
    max_steps: int | None = None  # stop early after this many G steps (tests, smoke runs)
    seed: int = 0  # seeds data order, noise and initial weights

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The two KD recipes the MNIST chapter reproduces.
IITGN = dict(kd="feature", w_adv=0.5, w_feat=0.5)
"""IITGN project: G loss = 0.5 adversarial + 0.5 MSE to the teacher's intermediate
features. The optimizer is the DCGAN paper's (Adam 2e-4, beta1 0.5) for every MNIST
model: with the TF tutorial's Adam(1e-4, beta1 0.9) our teacher still drew only a
checkerboard after 312 steps of 64 images, where these settings drew digit strokes
after 200."""
COLUMBIA = dict(kd="pixel", w_adv=1.0, w_pixel=1.0)
"""Columbia project: G loss = adversarial + 1.0 x L1(student(z, y), teacher(z, y))."""
TINYGAN = dict(kd="blackbox", loss="hinge", w_adv=0.01, w_pixel=0.2, pixel_decay=0.01, w_dfeat=1.0, w_real=0.2,
               n_critic=5, lr_g=2e-4, lr_d=2e-4, betas=(0.0, 0.9))
"""TinyGAN (Chang & Lu, ACCV 2020), values of the authors' code: D hinge on teacher images
against student images + 0.2 x hinge on real images; G: D-feature L1 + pixel L1 whose weight
starts at 0.2 and drops by 0.01 after every epoch, and every 5th step 0.01 x the adversarial
terms (teacher branch + 0.2 x real branch); Adam(2e-4, betas (0, 0.9))."""
SNGAN = dict(loss="hinge", n_critic=1, lr_g=2e-4, lr_d=2e-4, betas=(0.0, 0.999), ema_decay=0.999)
"""Class-conditional CIFAR-10 teacher: hinge loss, Adam(2e-4, (0, 0.999)) as BigGAN-PyTorch's
CIFAR script, and an exponential moving average of G's weights."""


@dataclass(frozen=True)
class DistillConfig:
    """One TinyGAN-style distillation run (``python -m gankd_utils distill --config FILE``, notebook 05).

    A JSON file sets any of these keys; ``train`` holds :class:`TrainConfig` settings
    applied over :data:`TINYGAN` (the losses' weights and their source live there).
    """

    name: str = "tinygan_student"  # run folder name under results/05_tinygan/runs/
    teacher_set: str = ""  # shard folder of the teacher's (z, y, image) triples (notebook 02 / `export`)
    out: str = ""  # run folder; "" -> results/05_tinygan/runs/<name>
    real: str = ""  # real images for the real branch: an ImageFolder path, "cifar10", or "" (none)
    real_per_class: int | None = None  # cap on real images per class read from an ImageFolder
    generator: dict = field(default_factory=lambda: {"ch": 32, "embed_dim": 128})  # TinyGAN's widths
    discriminator: dict = field(default_factory=lambda: {"ch": 32})  # TinyGAN's critic width
    train: dict = field(default_factory=dict)  # TrainConfig settings over TINYGAN (epochs, batch_size, ...)
    stream: str = "auto"  # memory | stream | auto: stream the teacher set when it exceeds memory_limit_gb
    memory_limit_gb: float = 4.0  # teacher sets larger than this are streamed shard by shard (auto)
    device: str = "auto"  # auto | cpu | cuda (each rank takes GPU LOCAL_RANK)

    def train_config(self) -> TrainConfig:
        """TINYGAN's settings, then this run's ``train`` entries (unknown keys are an error)."""
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = set(self.train) - known
        if unknown:
            raise ValueError(f"train settings {sorted(unknown)} do not exist; known: {sorted(known)}")
        merged = {**TINYGAN, "name": self.name, "dataset": "teacher_set", **self.train}
        if "betas" in merged:
            merged["betas"] = tuple(merged["betas"])
        return TrainConfig(**merged)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class EvalConfig:
    """How generated images are scored (one protocol for every model of a chapter)."""

    n_samples: int = 10_000  # fid10k: 10k generated images against the reference set
    n_ref: int | None = None  # real images in the reference statistics (None: the whole training set)
    batch_size: int = 500  # generation / feature batch
    cls_epochs: int = 4  # evaluator classifier: epochs over the training set (MNIST: 1 epoch gave 99.0%)
    cls_width: int = 16  # evaluator classifier: channels of its first block
    cls_n_train: int | None = None  # evaluator classifier: training images (None: all)
    timing_repeats: int = 30  # latency: timed batch-1 calls (after warm-up)
    speed_batch: int = 64  # throughput: images per generator call on the CPU


PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        "train": dict(n_train=512, epochs=1, batch_size=64, ckpt_every=4, n_fixed=20),
        "eval": dict(n_samples=500, n_ref=2000, batch_size=250, cls_epochs=2, cls_n_train=3000, cls_width=8,
                     timing_repeats=3),
    },
    "quick": {
        # measured on 2 CPU cores: the eight MNIST models take about 2.5 s per step together
        "train": dict(n_train=20_000, epochs=1, batch_size=64, ckpt_every=100),
        "eval": dict(n_samples=2_000, n_ref=10_000, batch_size=500, cls_epochs=1, cls_n_train=None,
                     timing_repeats=10),
    },
    "full": {"train": dict(), "eval": dict()},
}


# Per-chapter diffs on top of a profile (CIFAR-10 needs other sizes than MNIST).
CHAPTERS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "cifar10": {
        # the 4.3M teacher costs 1.6 GMAC per image: smoke keeps every batch tiny
        "smoke": {"train": dict(dataset="cifar10", n_train=64, batch_size=8, epochs=1, ckpt_every=4),
                  "eval": dict(n_samples=100, n_ref=500, batch_size=100, cls_epochs=1, cls_n_train=2000,
                               cls_width=8, speed_batch=8, timing_repeats=2),
                  "export": dict(per_class=8, shard_size=40)},
        "quick": {"train": dict(dataset="cifar10", n_train=5_000, batch_size=64, epochs=1, ckpt_every=100),
                  "eval": dict(n_samples=1_000, n_ref=5_000, cls_epochs=2, cls_n_train=20_000, cls_width=16),
                  "export": dict(per_class=250, shard_size=1000)},
        # one GPU: about 47k teacher steps at batch 64 (DESIGN.md: 19 ms per D+G step on the lent H200)
        "full": {"train": dict(dataset="cifar10", batch_size=64, epochs=60, ckpt_every=2000),
                 "eval": dict(n_samples=10_000, cls_epochs=30, cls_width=64),
                 "export": dict(per_class=5_000, shard_size=5_000)},
    },
}


# Notebook 05 / the distill command: TinyGAN student sizes per profile (CIFAR-10 teacher set, 32x32 student).
DISTILL_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(generator={"ch": 8, "embed_dim": 16}, discriminator={"ch": 8},
                  train=dict(epochs=1, batch_size=8, ckpt_every=4, log_every=1, n_fixed=20, n_critic=2)),
    "quick": dict(train=dict(epochs=8, batch_size=32, ckpt_every=100, log_every=10)),
    # TinyGAN's widths; 50 epochs over a 50k-image teacher set = 39k steps of 64 (pixel weight 0 after epoch 20)
    "full": dict(train=dict(epochs=50, batch_size=64, ckpt_every=2000, log_every=50, sample_every=5000)),
}


# Notebook 07: compression steps per profile (KD fine-tune after channel pruning, timing repeats)
COMPRESS_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(amounts=(0.5,), finetune_steps=3, repeats=2),
    "quick": dict(amounts=(0.3, 0.5), finetune_steps=150, repeats=5),
    "full": dict(amounts=(0.3, 0.5), finetune_steps=3000, repeats=20),
}


def get(kind: str, profile: str, chapter: str | None = None, **overrides: Any):
    """A config of ``kind`` ('train' or 'eval') for ``profile`` (and ``chapter``'s diffs), then ``overrides``.

    >>> get("train", "smoke", name="teacher").epochs
    1
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILE_NAMES)}")
    if chapter is not None and chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}: known {sorted(CHAPTERS)}")
    cls = {"train": TrainConfig, "eval": EvalConfig}[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(overrides) - names
    if unknown:
        raise TypeError(f"{cls.__name__} has no setting(s) {sorted(unknown)}; known: {sorted(names)}")
    diff = CHAPTERS[chapter][profile].get(kind, {}) if chapter else {}
    return dataclasses.replace(cls(), **{**PROFILES[profile][kind], **diff, **overrides})


def chapter_sizes(chapter: str, profile: str, part: str) -> dict[str, Any]:
    """Other per-profile sizes of a chapter, e.g. ``chapter_sizes('cifar10', 'full', 'export')``."""
    return dict(CHAPTERS[chapter][profile][part])


def save_json(cfg: Any, path: str | Path) -> None:
    """Write a config (dataclass or dict) as JSON, atomically."""
    from .io import atomic_write_text

    data = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))


def default_profile() -> str:
    """``full`` where CUDA is present, else ``quick`` (the notebooks' default)."""
    import torch

    return "full" if torch.cuda.is_available() else "quick"
