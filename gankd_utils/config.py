"""Experiment settings as frozen dataclasses, and the three profiles.

Every default is stated once, here, with a one-line reason (the habit of
StudioGAN's ``src/config.py``); a profile is a small diff applied with
``dataclasses.replace``; each run saves its settings as ``config.json``.

Profiles (one table per dataset: :data:`MNIST`, :data:`CIFAR10`, :data:`IMAGENET`), resolved
once into a :class:`Settings` object by :func:`settings` and passed down:

- ``smoke``: every code path in seconds on 2 CPU cores; numbers are meaningless.
- ``quick``: a laptop CPU; the pipeline end to end.
- ``full``: one GPU; the numbers that go into the report.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io import atomic_write_text

PROFILE_NAMES = ("smoke", "quick", "full")

# How a training computes, never what it learns: the values each TrainConfig setting takes (``Settings.speed``,
# the command lines' --fast / --compile / --channels-last). A run resumes whatever they are.
SPEED: dict[str, tuple[Any, ...]] = {"fast": ("auto", "on", "off"), "compile": ("on", "off"),
                                     "channels_last": (True, False)}


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
    kd: str = "none"  # none | feature (IITGN) | pixel (Columbia) | distill (pixel L1 alone) | blackbox (TinyGAN)
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
    fast: str = "auto"  # auto: the fast path (bf16 autocast, TF32, fused Adam, noise on the device) on CUDA | on | off
    compile: str = "off"  # on: torch.compile G and D (eager again if compiling fails) | off; benchmarks/train_speed.py
    channels_last: bool = False  # True: G, D (and a teacher) in channels_last memory format (CPU and GPU)
    log_every: int = 50  # steps between lines of metrics.jsonl (history.json keeps every step)
    sample_every: int = 0  # steps between fixed-z sample sheets (0: only one per epoch)
    snapshots: int = 0  # generators kept at evenly spaced steps (the last is the finished G): quality over training
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
DISTILL = dict(kd="distill", w_adv=0.0, w_pixel=1.0)
"""The Columbia recipe without its adversarial term (an ablation of chapter 03): G loss = 1.0 x
L1(student(z, y), teacher(z, y)) alone; no discriminator takes part (D keeps its initial weights).
Its student regresses the teacher's images, so it can only be as good as the teacher, and no
discriminator can overpower it."""
MNIST_MEAN_PIXEL = -0.7387
"""The mean pixel of MNIST's 60,000 training images in [-1, 1] (0.1307 in [0, 1]; 81% of pixels are -1).
``zoo.mnist_ablations`` starts a generator's output bias at its atanh, so the image starts at the data's mean."""
TINYGAN = dict(kd="blackbox", loss="hinge", w_adv=0.01, w_pixel=0.2, pixel_decay=0.01, w_dfeat=1.0, w_real=0.2,
               n_critic=5, lr_g=2e-4, lr_d=2e-4, betas=(0.0, 0.9))
"""TinyGAN (Chang & Lu, ACCV 2020), values of the authors' code: D hinge on teacher images
against student images + 0.2 x hinge on real images; G: D-feature L1 + pixel L1 whose weight
starts at 0.2 and drops by 0.01 after every epoch, and every 5th step 0.01 x the adversarial
terms (teacher branch + 0.2 x real branch); Adam(2e-4, betas (0, 0.9))."""
SNGAN = dict(loss="hinge", n_critic=1, lr_g=2e-4, lr_d=2e-4, betas=(0.0, 0.999), ema_decay=0.999)
"""Class-conditional CIFAR-10 teacher: hinge loss, Adam(2e-4, (0, 0.999)) as BigGAN-PyTorch's
CIFAR script, and an exponential moving average of G's weights, which is the model the run samples and saves,
with BatchNorm statistics re-estimated for its own weights (``runstate.standing_model``)."""


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
    timing_budget_s: float | None = None  # a model's timing stops after 3 rounds once its timed calls took this
    # long (None: every round): the CIFAR-10 teacher's round takes ~2 s on 2 CPU cores (metrics.speed_table)
    speed_batch: int = 64  # throughput: images per generator call on the CPU


@dataclass(frozen=True)
class ExportConfig:
    """How much of a teacher a profile exports to shards (chapters 02 and 04)."""

    per_class: int = 5_000  # images per class (CIFAR-10 full: 50k images, the size of its training set)
    shard_size: int = 5_000  # images per shard file
    batch_size: int = 256  # teacher batch while exporting
    classes: tuple[int, ...] | None = None  # None: every class of the teacher (BigGAN: its 398 animals)


@dataclass(frozen=True)
class CompressConfig:
    """Chapter 07: pruning amounts, the KD fine-tune after pruning, and timing repeats."""

    amounts: tuple[float, ...] = (0.3, 0.5)  # channel-pruning amounts (share of channels removed)
    finetune_steps: int = 3000  # KD fine-tune steps after each pruning
    # the fewest channels a pruned layer keeps: the c=32 MNIST student's last hidden layer has 4; cut to 3 (30%)
    # or 2 (50%), its KD fine-tunes collapsed (FID 140 against 33.9 unpruned); kept at 4, 30% fine-tunes to 30.6
    min_channels: int = 4
    repeats: int = 20  # timed rounds of every CPU speed figure (the median is reported)


@dataclass(frozen=True)
class Settings:
    """Everything one profile of one dataset sets: resolved once (a notebook's parameters, the CLI) and passed down.

    ``distill``: :class:`DistillConfig` keys of the TinyGAN student (generator / discriminator
    widths and ``train`` settings over :data:`TINYGAN`); ``view``: figure sizes of notebook 01;
    ``students``: per model family, settings over ``train`` for its students only (the scratch
    and the KD twin get the same, so the comparison stays fair; teachers keep ``train``).
    ``speed``: :data:`SPEED` settings over every model's training config, the TinyGAN student's
    included (:func:`zoo.train_config` applies them last). They say how a run computes, never what it
    learns, so a run resumes and a finished one is reused whatever they are (``checkpoint.BOOKKEEPING``).
    """

    dataset: str
    profile: str
    seed: int
    train: TrainConfig | None
    eval: EvalConfig | None
    export: ExportConfig | None
    compress: CompressConfig | None
    distill: dict = field(default_factory=dict)
    view: dict = field(default_factory=dict)
    student_seeds: int = 1  # students train with this many seeds (seed, seed + 1, ...): KD vs scratch with a spread
    students: dict = field(default_factory=dict)  # {family: TrainConfig settings of its students, scratch and KD alike}
    speed: dict = field(default_factory=dict)  # {SPEED key: value} over every model's training config (how fast, not what)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def for_seed(self, seed: int) -> "Settings":
        """The same settings with another seed (training data order, noise and initial weights)."""
        distill = {**self.distill, "train": {**self.distill.get("train", {}), "seed": seed}} if self.distill else {}
        return dataclasses.replace(self, seed=seed, distill=distill,
                                   train=dataclasses.replace(self.train, seed=seed) if self.train else None)

    def paused_at(self, step: int) -> "Settings":
        """The same settings with training paused after ``step`` steps (``max_steps``: bookkeeping, resumable)."""
        distill = {**self.distill, "train": {**self.distill.get("train", {}), "max_steps": step}} if self.distill else {}
        return dataclasses.replace(self, distill=distill,
                                   train=dataclasses.replace(self.train, max_steps=step) if self.train else None)

    def seeds(self, role: str) -> tuple[int, ...]:
        """The seeds a model of ``role`` trains with: a teacher once, students ``student_seeds`` times."""
        return (self.seed,) if role == "teacher" else tuple(self.seed + k for k in range(self.student_seeds))


# One table per dataset: each profile lists what it changes from the dataclass defaults above.
MNIST: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {"train": dict(n_train=512, epochs=1, batch_size=64, ckpt_every=4, n_fixed=20, snapshots=2),
              "eval": dict(n_samples=500, n_ref=2000, batch_size=250, cls_epochs=2, cls_n_train=3000, cls_width=8,
                           timing_repeats=3),
              "export": dict(per_class=4, shard_size=16),
              "compress": dict(amounts=(0.5,), finetune_steps=3, repeats=2)},
    # The laptop walk (every notebook in at most 30 minutes on 2 CPU cores, teachers and classifiers shipped).
    # Measured on 2 cores (fp32): the six MNIST students take 0.79 s per step together, so 312 steps of 64 are
    # about 4 minutes (two more, c=64 and c=32 by distillation alone, cost about what a Columbia KD student does); one
    # scoring of 2,000 samples 2 s (the c512 teacher 6 s). Chapter 07 prunes once (50%), fine-tuned 100 steps: the
    # shipped students' table, recomputed small.
    # The Columbia students' G learns at 5x the DCGAN rate here (1e-3, D keeps 2e-4), scratch and KD alike: at 2e-4
    # every one of them still drew noise after 312 steps (seed 0, class accuracy 8.7-10.3%, KD or not). Of the
    # generator rates tried for the two students from scratch (2e-4, 1e-3, 2e-3; seeds 0-2), 1e-3 was their best on
    # average (c=64 37.5% and c=32 31.6%, against 40.6% and 16.4% at 2e-3): the rate is the baselines' best, not
    # KD's. The full run keeps the paper's 2e-4 over its 15x longer training.
    "quick": {"train": dict(n_train=20_000, epochs=1, batch_size=64, ckpt_every=100),
              "students": {"columbia": dict(lr_g=1e-3)},
              "eval": dict(n_samples=2_000, n_ref=10_000, batch_size=500, cls_epochs=1, cls_n_train=None,
                           timing_repeats=10, timing_budget_s=5.0),
              "export": dict(per_class=100, shard_size=250),
              "compress": dict(amounts=(0.5,), finetune_steps=100, repeats=5)},
    # One GPU, the whole walk in 25 minutes (planned from DESIGN.md's measured 3.7-4.4 ms per D+G step on an
    # H200, to be confirmed by benchmarks/train_speed.py): 10 epochs over all 60k images at batch 128
    # (4,680 steps; the Columbia project ran 25), students with 3 seeds so that KD vs scratch has a spread.
    # The Columbia students of seed 0 were trained so on one CPU thread and ship (README): class accuracy from scratch
    # / with KD, c=64 85.4% / 92.6%, c=32 65.7% / 80.0%. Run on to 25 epochs, the c=32 scratch student fell back to
    # 40.9%, so the budget stays at 10 epochs.
    # Every run keeps its generator at 25/50/75% (snapshots): the report says which runs had converged.
    "full": {"train": dict(epochs=10, snapshots=4), "eval": dict(), "export": dict(per_class=1_000, shard_size=1_000),
             "compress": dict(finetune_steps=1000), "student_seeds": 3},
}

CIFAR10: dict[str, dict[str, dict[str, Any]]] = {
    # the 4.3M teacher costs 1.6 GMAC per image: smoke keeps every batch tiny
    "smoke": {"train": dict(n_train=64, epochs=1, batch_size=8, ckpt_every=4, n_fixed=20, snapshots=2,
                            channels_last=True),
              "eval": dict(n_samples=100, n_ref=500, batch_size=100, cls_epochs=1, cls_n_train=2000, cls_width=8,
                           timing_repeats=2, speed_batch=8),
              "export": dict(per_class=8, shard_size=40),
              "distill": dict(generator={"ch": 8, "embed_dim": 16}, discriminator={"ch": 8},
                              train=dict(epochs=1, batch_size=8, ckpt_every=4, log_every=1, n_fixed=20, n_critic=2,
                                         snapshots=2, channels_last=True)),
              "compress": dict(amounts=(0.5,), finetune_steps=3, repeats=2)},
    # Measured on 2 cores (fp32, batch 64): a step of the four students takes 5.3 s together, the shipped
    # teacher draws an image in 33 ms, one scoring of 1,000 samples 5 s (the teacher's 33 s). So the laptop
    # walk trains at batch 32: every student 80 steps, 2 epochs over 1,280 images (scratch: real ones; KD: the
    # 1,280-image teacher set, so that KD and scratch get the same budget), and the TinyGAN student 8 epochs
    # of the teacher set (320 steps). Channels-last memory format: a CIFAR-10 training step on 2 cores took
    # 1.3-1.6x less time so (fp32, batch 128: the teacher 12.6 s instead of 18.3-19.4 s, the s student 1.3-1.8 s
    # instead of 2.2-2.3 s); the small MNIST DCGANs gain nothing, so MNIST keeps the default layout.
    # The students sample their raw weights here, scratch and KD alike: the weight average (EMA 0.999) keeps
    # 0.999^80 = 92% of a generator's starting weights after 80 steps, so a student would show its initial noise,
    # not what 80 steps taught it (the teacher, shipped, keeps its average).
    "quick": {"train": dict(n_train=1_280, epochs=2, batch_size=32, ckpt_every=100, channels_last=True),
              "students": {"cifar10": dict(ema_decay=0.0)},
              "eval": dict(n_samples=1_000, n_ref=5_000, cls_epochs=2, cls_n_train=20_000, cls_width=16,
                           timing_repeats=10, timing_budget_s=5.0),
              "export": dict(per_class=128, shard_size=640),
              "distill": dict(train=dict(epochs=8, batch_size=32, ckpt_every=100, log_every=10, channels_last=True)),
              "compress": dict(amounts=(0.5,), finetune_steps=100, repeats=5)},
    # One GPU, the whole walk in 25 minutes (planned from DESIGN.md's measured 29 ms per bf16 D+G step of the
    # teacher at batch 256 and 19 ms at 64 on an H200, to be confirmed by benchmarks/train_speed.py):
    # 30 epochs at batch 128 = 11.7k steps per model, teacher and students alike (about 5 min for the teacher);
    # TinyGAN's widths, 20 epochs over the 50k-image teacher set at batch 128 = 7.8k steps (the pixel weight
    # reaches 0 after epoch 20, as in TinyGAN's schedule); one seed per CIFAR-10 student (the budget).
    "full": {"train": dict(epochs=30, batch_size=128, ckpt_every=2000, snapshots=4),
             "eval": dict(n_samples=10_000, cls_epochs=30, cls_width=64),
             "export": dict(per_class=5_000, shard_size=5_000),
             "distill": dict(train=dict(epochs=20, batch_size=128, ckpt_every=2000, log_every=50, sample_every=2000,
                                        snapshots=4)),
             "compress": dict(finetune_steps=1000)},
}

# ImageNet (BigGAN-deep, chapters 01 and 02): what the notebooks draw and export
IMAGENET: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {"view": dict(per_class=2, steps=4, sweep_n=3, explorer_n=4),
              "export": dict(classes=(0, 1, 2), per_class=2, shard_size=4, batch_size=4)},
    "quick": {"view": dict(per_class=4, steps=8, sweep_n=5, explorer_n=8),
              "export": dict(classes=tuple(range(10)), per_class=4, shard_size=16, batch_size=8)},
    "full": {"view": dict(per_class=8, steps=12, sweep_n=8, explorer_n=16),
             "export": dict(classes=tuple(range(398)), per_class=50, shard_size=1000, batch_size=64)},
}

DATASETS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {"mnist": MNIST, "cifar10": CIFAR10, "imagenet": IMAGENET}


def settings(dataset: str, profile: str, seed: int = 0, **overrides: dict[str, Any]) -> Settings:
    """The :class:`Settings` of ``dataset`` in ``profile``, then ``overrides`` per part.

    >>> settings("mnist", "smoke", train={"epochs": 2}).train.epochs
    2
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {sorted(DATASETS)}")
    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILE_NAMES)}")
    table = DATASETS[dataset][profile]
    parts = {"train": TrainConfig, "eval": EvalConfig, "export": ExportConfig, "compress": CompressConfig}
    takes = {*parts, "distill", "view", "student_seeds", "students", "speed"}
    unknown = set(overrides) - takes
    if unknown:
        raise TypeError(f"settings() takes overrides for {sorted(takes)}, not {sorted(unknown)}")
    built: dict[str, Any] = {}
    for part, cls in parts.items():
        if part not in table and part not in overrides:
            built[part] = None
            continue
        values = {**table.get(part, {}), **(overrides.get(part) or {})}
        if part == "train":
            values = {"dataset": dataset, **values, "seed": seed}
        if part in ("train", "eval") and "seed" in (overrides.get(part) or {}):
            raise TypeError(f"the {part} seed is the settings' seed: pass seed=..., not {part}={{'seed': ...}}")
        names = {f.name for f in dataclasses.fields(cls)}
        bad = set(values) - names
        if bad:
            raise TypeError(f"{cls.__name__} has no setting(s) {sorted(bad)}; known: {sorted(names)}")
        built[part] = cls(**values)
    distill = {k: dict(v) if isinstance(v, dict) else v for k, v in table.get("distill", {}).items()}
    for key, value in (overrides.get("distill") or {}).items():
        distill[key] = {**distill.get(key, {}), **value} if isinstance(value, dict) else value
    if "distill" in table or overrides.get("distill"):
        distill["train"] = {**distill.get("train", {}), "seed": seed}
    view = {**table.get("view", {}), **(overrides.get("view") or {})}
    seeds = int(overrides.get("student_seeds") or table.get("student_seeds", 1))
    students = {fam: dict(v) for fam, v in table.get("students", {}).items()}
    for fam, value in (overrides.get("students") or {}).items():
        students[fam] = {**students.get(fam, {}), **value}
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"name", "dataset", "seed", "kd"}
    for fam, value in students.items():
        bad = set(value) - known
        if bad:
            raise TypeError(f"students[{fam!r}] sets {sorted(bad)}, which are not TrainConfig settings of a student; "
                            f"known: {sorted(known)}")
    speed = dict(overrides.get("speed") or {})
    for key, value in speed.items():
        if key not in SPEED or value not in SPEED[key] or type(value) is not type(SPEED[key][0]):
            raise ValueError(f"speed setting {key}={value!r}: choose {key} from {SPEED[key]}" if key in SPEED else
                             f"speed setting {key!r}: the speed settings are {', '.join(SPEED)}")
    return Settings(dataset, profile, seed, distill=distill, view=view, student_seeds=seeds, students=students,
                    speed=speed, **built)


SWITCH = {"on": True, "off": False}
"""The words that spell a boolean speed setting (channels_last) on the command line."""


def speed_of(args: Any) -> dict[str, Any]:
    """The ``speed`` settings a command line asked for (``--fast``, ``--compile``, ``--channels-last``; the rest: the
    profile's)."""
    speed: dict[str, Any] = {}
    for key, choices in SPEED.items():
        word = getattr(args, key, None)
        if word is not None:
            speed[key] = SWITCH[word] if isinstance(choices[0], bool) else word
    return speed


def speed_flags(speed: dict[str, Any]) -> list[str]:
    """The command-line flags that give ``speed`` to another process (the inverse of :func:`speed_of`)."""
    flags: list[str] = []
    for key, value in speed.items():
        word = next(w for w, v in SWITCH.items() if v is value) if isinstance(value, bool) else value
        flags += [f"--{key.replace('_', '-')}", word]
    return flags


def save_json(cfg: Any, path: str | Path) -> None:
    """Write a config (dataclass or dict) as JSON, atomically."""
    data = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else cfg
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))


def default_profile() -> str:
    """``full`` where CUDA is present, else ``quick`` (the notebooks' default)."""
    import torch

    return "full" if torch.cuda.is_available() else "quick"
