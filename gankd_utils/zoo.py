"""Every model of the walk, listed once: how to build it, how to train it, where its run lives.

An :class:`Entry` names a generator with its discriminator, its role (teacher,
scratch student, KD student), its recipe (``TrainConfig`` overrides; the KD
recipes are ``config.IITGN``, ``config.COLUMBIA`` and ``config.TINYGAN``), its
teacher and the chapter whose results folder holds its run. Every model,
the TinyGAN student included, is built the same way (:func:`build`) and
trained or loaded the same way (:func:`gankd_utils.runs.train_or_load`).

- :func:`mnist_zoo`: chapter 03, the IITGN family (unconditional, feature-MSE KD) and
  the Columbia family (conditional DCGAN, pixel-L1 KD; the c=64 and c=32 students also by distillation
  alone, ``config.DISTILL``: the recipe without its adversarial term).
- :func:`cifar10_zoo`: chapter 04's ResNet cGAN teacher and two lightweight students
  (scratch and black-box KD), plus chapter 05's TinyGAN student.
- :func:`tinygan_entry`: a TinyGAN student for any teacher export (e.g. BigGAN at 128 px).
- :func:`mnist_ablations`: variants of chapter 03's students outside the walk (``zoo(dataset,
  ablations=True)``; the ``train`` and ``score`` commands take them, the chapter and the stages do not).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from . import repro
from .config import COLUMBIA, DISTILL, IITGN, MNIST_MEAN_PIXEL, SNGAN, TINYGAN, DistillConfig, Settings, TrainConfig
from .models import (CGAN_PRESETS, CondDCGANDiscriminator, CondDCGANGenerator, IITGNDiscriminator, IITGNGenerator,
                     ProjectionDiscriminator, ResNetGenerator, TinyGANDiscriminator, TinyGANGenerator)
from .models.layers import dcgan_init, fan_in_init, init_weights

DIFFAUG = "translation,cutout"  # chapter 04's DiffAugment policy on D's inputs
DISTILL_WIDTHS = (64, 32)  # the Columbia students that also train by distillation alone (config.DISTILL)
KD_SUFFIXES = ("_kd", "_distill")  # a KD student's name ends so; its scratch twin's ends in _scratch


@dataclass(frozen=True)
class Entry:
    """One model of a chapter: how to build it and how to train it.

    ``make_g`` / ``make_d`` take the :class:`Settings` (most ignore them; the TinyGAN
    student takes its widths from ``settings.distill``). ``base``: which settings the
    recipe goes over, ``"train"`` (the dataset's training settings) or ``"distill"``
    (the TinyGAN run's, ``settings.distill`` over ``config.TINYGAN``).
    """

    name: str
    dataset: str
    family: str
    role: str  # teacher | scratch | kd
    make_g: Callable[[Settings], nn.Module]
    make_d: Callable[[Settings], nn.Module]
    recipe: Mapping[str, Any] = field(default_factory=dict)  # TrainConfig overrides
    teacher: str | None = None  # name of the teacher entry (KD students)
    label: str = ""
    init: str = "dcgan"  # dcgan: N(0, 0.02) (DCGAN family) | dcgan_out_fanin: dcgan, but G's output conv
    # starts from layers.fan_in_init | xavier: layers.init_weights (SN / cBN models) | tinygan
    chapter: str = "03_mnist"  # results folder of the chapter that trains it
    base: str = "train"  # train | distill
    out_bias_start: float | None = None  # where G's output-conv bias starts (models with one); None: the init's 0

    @property
    def kd(self) -> str:
        return str(self.recipe.get("kd", "none"))


def train_config(entry: Entry, settings: Settings) -> TrainConfig:
    """The full training config of ``entry`` in ``settings``: the base settings, its recipe, then (students
    only) its family's settings of the profile (``settings.students``), then ``settings.speed``."""
    if entry.base == "distill":
        cfg = DistillConfig(name=entry.name, **{k: v for k, v in settings.distill.items()
                                                if k in ("generator", "discriminator", "train")}).train_config()
        return dataclasses.replace(cfg, **{**{k: v for k, v in entry.recipe.items() if k not in TINYGAN},
                                           **settings.speed})
    if settings.train is None:
        raise ValueError(f"settings of {settings.dataset!r} have no training part")
    own = settings.students.get(entry.family, {}) if entry.role != "teacher" else {}
    return dataclasses.replace(settings.train, name=entry.name, **{**entry.recipe, **own, **settings.speed})


def build(entry: Entry, settings: Settings) -> tuple[nn.Module, nn.Module]:
    """``entry``'s G and D, initialised from ``settings.seed`` (G from the seed, D from seed + 1)."""
    seed = settings.seed
    G, D = entry.make_g(settings), entry.make_d(settings)
    if entry.init in ("dcgan", "dcgan_out_fanin"):
        G, D = dcgan_init(G, seed), dcgan_init(D, seed + 1)
        if entry.init == "dcgan_out_fanin":
            fan_in_init(G.out, repro.generator(seed, "init-out"))
    elif entry.init == "tinygan":
        G.reset_parameters(repro.generator(seed, "init"))
        D = init_weights(D, repro.generator(seed + 1, "init"))
    else:
        G, D = init_weights(G, repro.generator(seed, "init")), init_weights(D, repro.generator(seed + 1, "init"))
    if entry.out_bias_start is not None:  # after whichever init the entry names
        if getattr(getattr(G, "out", None), "bias", None) is None:
            raise ValueError(f"{entry.name}: out_bias_start is set but its generator's output conv has no bias")
        with torch.no_grad():
            G.out.bias.fill_(entry.out_bias_start)
    return G, D


def mnist_zoo() -> dict[str, Entry]:
    """Chapter 03: the IITGN family (unconditional) and the Columbia family (conditional)."""
    entries = [
        Entry("iitgn_teacher", "mnist", "iitgn", "teacher", lambda s: IITGNGenerator("teacher"),
              lambda s: IITGNDiscriminator(), label="IITGN teacher"),
        Entry("iitgn_student_scratch", "mnist", "iitgn", "scratch", lambda s: IITGNGenerator("student"),
              lambda s: IITGNDiscriminator(), label="IITGN student (scratch)"),
        Entry("iitgn_student_kd", "mnist", "iitgn", "kd", lambda s: IITGNGenerator("student"),
              lambda s: IITGNDiscriminator(), IITGN, teacher="iitgn_teacher", label="IITGN student (KD: feature MSE)"),
        Entry("cdcgan_c512_teacher", "mnist", "columbia", "teacher", lambda s: CondDCGANGenerator(512),
              lambda s: CondDCGANDiscriminator(64), label="cDCGAN c=512 teacher"),
    ]
    for c in (64, 32):
        entries += [
            Entry(f"cdcgan_c{c}_scratch", "mnist", "columbia", "scratch", lambda s, c=c: CondDCGANGenerator(c),
                  lambda s, c=c: CondDCGANDiscriminator(c // 8), label=f"cDCGAN c={c} (scratch)",
                  init="dcgan_out_fanin"),
            Entry(f"cdcgan_c{c}_kd", "mnist", "columbia", "kd", lambda s, c=c: CondDCGANGenerator(c),
                  lambda s, c=c: CondDCGANDiscriminator(c // 8), COLUMBIA, teacher="cdcgan_c512_teacher",
                  label=f"cDCGAN c={c} (KD: pixel L1)", init="dcgan_out_fanin"),
        ]
        if c in DISTILL_WIDTHS:  # the ablation: the KD twin (same student, data, noise, budget), no adversarial term
            entries.append(dataclasses.replace(entries[-1], name=f"cdcgan_c{c}_distill", recipe=DISTILL,
                                               label=f"cDCGAN c={c} (KD: pixel L1 alone)"))
    return {e.name: e for e in entries}


def mnist_ablations() -> dict[str, Entry]:
    """Variants of chapter 03's students that are not part of the walk: trained one at a time
    (``python -m gankd_utils train --dataset mnist --model NAME``), each in a run folder of its own.

    ``cdcgan_c32bias_*``: the three c=32 Columbia students (scratch, KD, distillation alone)
    with a bias on the 1x1 output conv (starting at 0; every other weight starts as the walk's
    student of the same seed does, and the data order and noise are the same), to test
    whether the four-channel last layer without a bias is what collapses a c=32 student's seed.

    ``cdcgan_c32meanbias_*``: the same, with the bias starting where the image's mean is the
    training set's mean pixel (``tanh(b) = config.MNIST_MEAN_PIXEL``, b = -0.948) instead of
    at 0: the background is dark from the first step and the four weights need not make it.
    """
    walk = mnist_zoo()
    out = {}
    for tag, start, what in (("bias", None, "output bias"),
                             ("meanbias", math.atanh(MNIST_MEAN_PIXEL), "output bias at the mean pixel")):
        for suffix in ("_scratch", "_kd", "_distill"):
            base = walk[f"cdcgan_c32{suffix}"]
            out[f"cdcgan_c32{tag}{suffix}"] = dataclasses.replace(
                base, name=f"cdcgan_c32{tag}{suffix}", make_g=lambda s: CondDCGANGenerator(32, out_bias=True),
                label=base.label.replace("c=32", f"c=32, {what}"), out_bias_start=start)
    return out


def tinygan_entry(resolution: int = 32, z_dim: int = 128, n_classes: int = 10, dataset: str = "cifar10",
                  teacher: str = "cgan_teacher", name: str = "tinygan_student") -> Entry:
    """A TinyGAN student (Chang & Lu 2020) for a teacher export of this resolution, z size and class count."""
    def make_g(s: Settings) -> nn.Module:
        return TinyGANGenerator(resolution=resolution, z_dim=z_dim, n_classes=n_classes,
                                **{**DistillConfig().generator, **s.distill.get("generator", {})})

    def make_d(s: Settings) -> nn.Module:
        return TinyGANDiscriminator(resolution=resolution, n_classes=n_classes,
                                    **{**DistillConfig().discriminator, **s.distill.get("discriminator", {})})

    return Entry(name, dataset, dataset, "kd", make_g, make_d, TINYGAN, teacher=teacher,
                 label="TinyGAN student (black-box KD)", init="tinygan", chapter="05_tinygan", base="distill")


def cifar10_zoo(diffaug: str = DIFFAUG) -> dict[str, Entry]:
    """Chapters 04 and 05: an SNGAN/BigGAN-style teacher, two lightweight students, and the TinyGAN student.

    Each chapter-04 student is trained from scratch on CIFAR-10 and, with the same D, budget and
    weight average (the scratch recipe's EMA; TinyGAN's recipe has none), by black-box KD from the
    teacher's exported (z, y, image) set (``config.TINYGAN`` losses plus the real-data branch on
    CIFAR-10): the twins differ in what G learns from, not in which of its weights are sampled.
    """
    gan = {**SNGAN, "diffaug": diffaug}
    kd = {**TINYGAN, "diffaug": diffaug, "ema_decay": SNGAN["ema_decay"]}
    entries = [Entry("cgan_teacher", "cifar10", "cifar10", "teacher",
                     lambda s: ResNetGenerator(**CGAN_PRESETS["teacher"]), lambda s: ProjectionDiscriminator(ch=128),
                     gan, label="ResNet cGAN teacher", init="xavier", chapter="04_cifar10")]
    for preset in ("student_s", "student_xs"):
        for role, recipe in (("scratch", gan), ("kd", kd)):
            entries.append(Entry(f"cgan_{preset}_{role}", "cifar10", "cifar10", role,
                                 lambda s, p=preset: ResNetGenerator(**CGAN_PRESETS[p]),
                                 lambda s: ProjectionDiscriminator(ch=64), recipe,
                                 teacher="cgan_teacher" if role == "kd" else None,
                                 label=f"{preset} ({'black-box KD' if role == 'kd' else 'scratch'})", init="xavier",
                                 chapter="04_cifar10"))
    entries.append(tinygan_entry())
    return {e.name: e for e in entries}


ZOOS: dict[str, Callable[[], dict[str, Entry]]] = {"mnist": mnist_zoo, "cifar10": cifar10_zoo}
ABLATIONS: dict[str, Callable[[], dict[str, Entry]]] = {"mnist": mnist_ablations}


def zoo(dataset: str, ablations: bool = False) -> dict[str, Entry]:
    """Every entry of ``dataset`` (``mnist`` or ``cifar10``): the walk's models, and with
    ``ablations`` the variants outside the walk too (:func:`mnist_ablations`)."""
    if dataset not in ZOOS:
        raise ValueError(f"no models for dataset {dataset!r}: choose one of {sorted(ZOOS)}")
    entries = ZOOS[dataset]()
    if ablations and dataset in ABLATIONS:
        entries.update(ABLATIONS[dataset]())
    return entries


def is_kd_name(name: str) -> bool:
    """Whether ``name`` (or a seed key ``name@seed``) names a KD student (:data:`KD_SUFFIXES`)."""
    return name.split("@", 1)[0].endswith(KD_SUFFIXES)


def scratch_twin(name: str) -> str | None:
    """The scratch student a KD student ``name`` is compared with (same architecture, data, noise and budget)."""
    for suffix in KD_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)] + "_scratch"
    return None


def chapter_entries(chapter: str, entries: Mapping[str, Entry]) -> dict[str, Entry]:
    """The entries a chapter trains (``"04_cifar10"``: the cGAN teacher and its students)."""
    return {n: e for n, e in entries.items() if e.chapter == chapter}


def family_teacher(entries: Mapping[str, Entry], name: str) -> str | None:
    """Name of the teacher of ``name``'s family (itself for a teacher)."""
    fam = entries[name].family
    return next((n for n, e in entries.items() if e.family == fam and e.role == "teacher"), None)
