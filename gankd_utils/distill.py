"""TinyGAN-style black-box distillation from a teacher's shard folder (Chang & Lu, ACCV 2020).

The student never calls the teacher: it learns from the teacher's exported
(z, y, image) triples (notebook 02, ``python -m gankd_utils export``), with the
losses of ``train.Run.blackbox_step`` and the weights of ``config.TINYGAN``.

``python -m gankd_utils distill --config FILE [key=value ...]`` and notebook 05
both call :func:`run`. The same command runs on several GPUs unchanged::

    torchrun --nproc_per_node 4 -m gankd_utils distill --config run.json
    accelerate launch --num_processes 4 -m gankd_utils distill --config run.json

(``batch_size`` is per process; the global batch is ``batch_size * processes``.)

Config file (JSON; every key optional except ``teacher_set``; see config.DistillConfig)::

    {"name": "tinygan_cifar10", "teacher_set": "data/teachers/cifar10_cgan_teacher_full_s0_ab12cd34",
     "real": "cifar10", "generator": {"ch": 32}, "discriminator": {"ch": 32},
     "train": {"epochs": 50, "batch_size": 64}}
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn as nn

from . import config as _config

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


def profile_config(profile: str, teacher_set: str | Path, **kwargs: Any) -> _config.DistillConfig:
    """Notebook 05's settings for ``profile`` (config.DISTILL_PROFILES) on ``teacher_set``, then ``kwargs``."""
    if profile not in _config.DISTILL_PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(_config.PROFILE_NAMES)}")
    base = {k: dict(v) if isinstance(v, dict) else v for k, v in _config.DISTILL_PROFILES[profile].items()}
    train = {**base.pop("train", {}), **kwargs.pop("train", {})}
    return load_config(None, (), **{**base, "teacher_set": str(teacher_set), "train": train, **kwargs})


def run_dir_of(cfg: _config.DistillConfig) -> Path:
    from . import paths

    return Path(cfg.out) if cfg.out else paths.results_dir("05_tinygan", "runs", cfg.name)


def teacher_info(folder: str | Path) -> dict[str, Any]:
    """What the student must match: resolution, z_dim, n_classes, classes, count, bytes (from the manifest)."""
    from .data import read_manifest

    folder = Path(folder)
    if not str(folder) or not folder.is_dir():
        raise FileNotFoundError(f"teacher set {folder} does not exist: export one first (notebook 02, or "
                                "`python -m gankd_utils export ...`) and set teacher_set to its folder")
    m = read_manifest(folder)
    missing = [k for k in ("resolution", "z_dim", "n_classes", "count") if k not in m]
    if missing:
        raise ValueError(f"{folder}/manifest.json lacks {missing}: it is not a teacher export (real-data shards "
                         "carry no z); export the teacher with gankd_utils' exporter")
    if not m.get("complete", False):
        raise ValueError(f"{folder}: the export is incomplete; run the same export command again to finish it")
    if int(m["n_classes"]) < 1:
        raise ValueError(f"{folder} comes from an unconditional teacher; the TinyGAN student is class-conditional")
    side = int(m["resolution"])
    return {"resolution": side, "z_dim": int(m["z_dim"]), "n_classes": int(m["n_classes"]),
            "classes": [int(c) for c in m["classes"]], "count": int(m["count"]),
            "bytes": int(m["count"]) * side * side * int(m.get("channels", 3)), "teacher": m.get("teacher", "?")}


def build_models(cfg: _config.DistillConfig, info: dict[str, Any], seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """The TinyGAN student G and its discriminator for the teacher set ``info``, initialised from ``seed``."""
    from . import repro
    from .models import TinyGANDiscriminator, TinyGANGenerator
    from .models.layers import init_weights

    G = TinyGANGenerator(resolution=info["resolution"], z_dim=info["z_dim"], n_classes=info["n_classes"],
                         **cfg.generator)
    D = TinyGANDiscriminator(resolution=info["resolution"], n_classes=info["n_classes"], **cfg.discriminator)
    G.reset_parameters(repro.generator(seed, "init"))
    init_weights(D, repro.generator(seed + 1, "init"))
    return G, D


def load_real(cfg: _config.DistillConfig, info: dict[str, Any]):
    """The real-image set of the ``w_real`` branch, or None."""
    from . import data

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


def run(cfg: _config.DistillConfig, real=None, progress: bool = True, resume: bool = True) -> dict[str, Any]:
    """Train (or resume) the student of ``cfg``; returns train_blackbox's info plus ``G``, ``run_dir``, ``world``.

    Data parallel when launched by torchrun / accelerate (see the module docstring).
    ``real``: an in-memory real set that overrides ``cfg.real`` (the notebook passes CIFAR-10).
    """
    from . import data, dist
    from .teachers.dataset import ShardBatches, ShardDataset
    from .train import train_blackbox

    info = teacher_info(cfg.teacher_set)
    tcfg = cfg.train_config()
    d, device = dist.setup(cfg.device)
    try:
        stream = cfg.stream == "stream" or (cfg.stream == "auto" and info["bytes"] > cfg.memory_limit_gb * 2 ** 30)
        if stream:
            source = ShardBatches(ShardDataset(cfg.teacher_set), tcfg.batch_size, seed=tcfg.seed, device=device,
                                  rank=d.rank, world=d.world)
        else:
            source = data.load_shards(cfg.teacher_set)
        if real is None:
            real = load_real(cfg, info)
        G, D = build_models(cfg, info, tcfg.seed)
        out = run_dir_of(cfg)
        if d.is_main:
            out.mkdir(parents=True, exist_ok=True)
            _config.save_json({**cfg.to_dict(), "teacher": info, "world_size": d.world, "streamed": stream},
                              out / "distill.json")
        res = train_blackbox(G, D, source, tcfg, out, device, real=real, resume=resume, progress=progress, dist=d)
    finally:
        dist.teardown(d)
    return {**res, "G": G, "teacher": info, "world": d.world, "streamed": stream}


def train_or_load(cfg: _config.DistillConfig, real=None, retrain: bool = False, progress: bool = True,
                  device: str = "auto") -> dict[str, Any]:
    """The finished student of ``cfg`` when its run folder holds one with the same settings, else :func:`run`.

    Returns ``{"G", "history", "run_dir", "loaded", "steps", "finished", ...}``.
    """
    from . import checkpoint, repro
    from .train import _resumable_settings, is_finished

    out = run_dir_of(cfg)
    if not retrain and is_finished(out):
        side = checkpoint.read_sidecar(out / "G")
        if _resumable_settings(side.get("config", {})) == _resumable_settings(cfg.train_config().to_dict()):
            return {**load_run(out, repro.get_device(device)), "loaded": True}
    return {**run(cfg, real=real, progress=progress, resume=not retrain), "loaded": False}


def load_run(folder: str | Path, device="cpu") -> dict[str, Any]:
    """The student of a run folder written by ``distill`` (e.g. a long multi-GPU run), finished or paused.

    A finished run gives its final G; a paused one the G of its last checkpoint
    (``state/G``). Returns ``{"G", "history", "run_dir", "steps", "finished", "settings"}``.
    """
    from . import checkpoint

    folder = Path(folder)
    final, paused = folder / "G.safetensors", folder / "state" / "G.safetensors"
    if final.exists():
        side = checkpoint.read_sidecar(folder / "G")
        G, finished, steps = checkpoint.load_model(folder / "G", device), bool(side.get("finished")), side.get("step")
    elif paused.exists():
        side = checkpoint.read_sidecar(folder / "state" / "G")
        G, finished, steps = checkpoint.load_model(folder / "state" / "G", device), False, side.get("step")
    else:
        raise FileNotFoundError(f"{folder} holds no student checkpoint (G.safetensors or state/G.safetensors): "
                                "give the folder a distill run wrote (its `out`)")
    hist = folder / "history.json"
    settings = folder / "distill.json"
    return {"G": G.eval(), "history": json.loads(hist.read_text()) if hist.exists() else {}, "run_dir": str(folder),
            "steps": steps, "finished": finished,
            "settings": json.loads(settings.read_text()) if settings.exists() else {}}


def main_from_args(args) -> int:
    """``python -m gankd_utils distill``: the command line around :func:`run`."""
    cfg = load_config(args.config, args.overrides)
    if not cfg.teacher_set:
        raise ValueError("teacher_set is not set: put it in the config file or pass teacher_set=PATH")
    res = run(cfg, progress=not args.quiet, resume=not args.restart)
    from .dist import from_env

    if from_env().is_main:
        state = "finished" if res["finished"] else "paused"
        print(f"{cfg.name}: {state} at step {res['steps']} ({res['world']} process(es), "
              f"{res['seconds']:.0f} s) -> {res['run_dir']}")
    return 0
