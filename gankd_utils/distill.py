"""TinyGAN-style black-box distillation from a teacher's shard folder (Chang & Lu, ACCV 2020).

The student never calls the teacher: it learns from the teacher's exported
(z, y, image) triples (notebook 02, ``python -m gankd_utils export``), with the
losses of :func:`recipes.blackbox_kd_step` and the weights of ``config.TINYGAN``.

``python -m gankd_utils distill --config FILE [key=value ...]`` calls :func:`run`:
the long run, streamed from disk when the set is large, on one GPU or several.
The notebooks train the same student as a zoo entry (``zoo.tinygan_entry``)
through ``runs.train_or_load``. The command runs on several GPUs unchanged::

    torchrun --nproc_per_node 4 -m gankd_utils distill --config run.json
    accelerate launch --num_processes 4 -m gankd_utils distill --config run.json

(``batch_size`` is per process; the global batch is ``batch_size * processes``.)

Config file (JSON; every key optional except ``teacher_set``; see config.DistillConfig)::

    {"name": "tinygan_student", "teacher_set": "data/teachers/cifar10_cgan_teacher_full_s0_ab12cd34",
     "real": "cifar10", "generator": {"ch": 32}, "discriminator": {"ch": 32},
     "train": {"epochs": 50, "batch_size": 64}}
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import config as _config
from . import data, dist, paths, runs, shards
from .train import train_blackbox
from .zoo import build, tinygan_entry

CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(_config.DistillConfig))


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare string, e.g. a path


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (), **kwargs: Any) -> _config.DistillConfig:
    """A :class:`config.DistillConfig` from a JSON file, then ``key=value`` overrides, then ``kwargs``.

    Overrides use dotted keys for the nested tables: ``train.epochs=3``,
    ``generator.ch=16``, ``teacher_set=PATH``; values are read as JSON where they
    parse (numbers, true/false, null, lists), else as strings.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"config file {p} does not exist")
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{p} is not valid JSON ({e}); the config is a JSON object of DistillConfig keys") from e
        if not isinstance(data, dict):
            raise ValueError(f"{p} must hold a JSON object (keys: {', '.join(CONFIG_KEYS)})")
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value (e.g. train.epochs=3 or generator.ch=16)")
        key, value = item.split("=", 1)
        head, _, rest = key.partition(".")
        if rest:
            if head not in ("generator", "discriminator", "train"):
                raise ValueError(f"only generator.*, discriminator.* and train.* take dotted keys, got {key!r}")
            table = dict(data.get(head) or {})
            table[rest] = _parse_value(value)
            data[head] = table
        else:
            data[key] = _parse_value(value)
    data.update(kwargs)
    unknown = set(data) - set(CONFIG_KEYS)
    if unknown:
        raise ValueError(f"unknown distill setting(s) {sorted(unknown)}; known: {', '.join(CONFIG_KEYS)}")
    base = _config.DistillConfig()
    for table in ("generator", "discriminator"):  # merge tables over the defaults, key by key
        if table in data:
            data[table] = {**getattr(base, table), **data[table]}
    cfg = dataclasses.replace(base, **data)
    cfg.train_config()  # unknown train keys fail now, not after the data is loaded
    if cfg.stream not in ("auto", "memory", "stream"):
        raise ValueError(f"stream must be auto, memory or stream, got {cfg.stream!r}")
    return cfg


def run_dir_of(cfg: _config.DistillConfig) -> Path:
    """The run folder of ``cfg``: its ``out``, else ``results/05_tinygan/runs/<name>``."""
    return Path(cfg.out) if cfg.out else paths.results_dir("05_tinygan", "runs", cfg.name)


def load_real(cfg: _config.DistillConfig, info: dict[str, Any]):
    """The real-image set of the ``w_real`` branch, or None."""
    if not cfg.real:
        return None
    if cfg.real in ("cifar10", "mnist"):
        real = data.load_dataset(cfg.real, train=True)
        if real.shape[1] != info["resolution"]:
            raise ValueError(f"real={cfg.real!r} images are {real.shape[1]} px but the teacher set is "
                             f"{info['resolution']} px; give an ImageFolder instead")
        return real
    return data.load_image_folder(cfg.real, info["resolution"], class_ids=info["classes"],
                                  max_per_class=cfg.real_per_class)


def run(cfg: _config.DistillConfig, real=None, progress: bool = True, resume: bool = True) -> runs.Trained:
    """Train (or resume) the student of ``cfg`` from its teacher set; returns a :class:`runs.Trained`.

    Data parallel when launched by torchrun / accelerate (see the module docstring).
    ``real``: an in-memory real set that overrides ``cfg.real``.
    """
    info = shards.teacher_info(cfg.teacher_set)
    tcfg = cfg.train_config()
    d, device = dist.setup(cfg.device)
    try:
        stream = cfg.stream == "stream" or (cfg.stream == "auto" and info["bytes"] > cfg.memory_limit_gb * 2 ** 30)
        if stream:
            source = shards.ShardBatches(shards.ShardDataset(cfg.teacher_set), tcfg.batch_size, seed=tcfg.seed,
                                         device=device, rank=d.rank, world=d.world)
        else:
            source = shards.load_shards(cfg.teacher_set)
        if real is None:
            real = load_real(cfg, info)
        entry = tinygan_entry(info["resolution"], info["z_dim"], info["n_classes"], name=cfg.name)
        settings = _config.Settings("teacher_set", "custom", tcfg.seed, None, None, None, None,
                                    distill={"generator": cfg.generator, "discriminator": cfg.discriminator})
        G, D = build(entry, settings)
        out = run_dir_of(cfg)
        if d.is_main:
            out.mkdir(parents=True, exist_ok=True)
            _config.save_json({**cfg.to_dict(), "teacher": info, "world_size": d.world, "streamed": stream},
                              out / "distill.json")
        res = train_blackbox(G, D, source, tcfg, out, device, real=real, resume=resume, progress=progress, dist=d)
    finally:
        dist.teardown(d)
    return runs.Trained(G, cfg.name, out, False, res["steps"], res["finished"], tcfg, res["history"], res["seconds"])
