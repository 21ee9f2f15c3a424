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
from . import checkpoint, data, dist, paths, runs, shards
from .train import _refuse_weights_folder, train_blackbox
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
    for key in ("generator", "discriminator", "train"):
        if key in data and not isinstance(data[key], dict):
            raise ValueError(f"{key} must be a table of settings (a JSON object), got {data[key]!r}")
    base = _config.DistillConfig()
    for table in ("generator", "discriminator"):  # merge tables over the defaults, key by key
        if table in data:
            data[table] = {**getattr(base, table), **data[table]}
    if not isinstance(data.get("train", {}).get("betas", []), (list, tuple)):
        raise ValueError(f"train.betas must be two numbers in [0, 1), e.g. [0.0, 0.9], got {data['train']['betas']!r}")
    cfg = dataclasses.replace(base, **data)
    check_train(cfg.train_config())  # unknown train keys and bad values fail now, not after the data is loaded
    for key in ("name", "teacher_set", "out", "real", "device"):
        if not isinstance(getattr(cfg, key), str):
            raise ValueError(f"{key} must be a string, got {getattr(cfg, key)!r}")
    if not cfg.name:
        raise ValueError("name must not be empty: it names the run folder")
    if cfg.real_per_class is not None and (not _is_int(cfg.real_per_class) or cfg.real_per_class < 1):
        raise ValueError(f"real_per_class must be a whole number >= 1 (or null: every image), "
                         f"got {cfg.real_per_class!r}")
    if not _is_number(cfg.memory_limit_gb) or not cfg.memory_limit_gb > 0:
        raise ValueError(f"memory_limit_gb must be a number > 0, got {cfg.memory_limit_gb!r}")
    if cfg.stream not in ("auto", "memory", "stream"):
        raise ValueError(f"stream must be auto, memory or stream, got {cfg.stream!r}")
    return cfg


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # JSON's true is no number of epochs


def _is_number(v: Any) -> bool:
    return _is_int(v) or isinstance(v, float)


# TrainConfig values a distill run takes: the smallest whole number of each count ...
_TRAIN_INTS = {"epochs": 1, "batch_size": 1, "n_critic": 1, "ckpt_every": 1, "log_every": 1, "sample_every": 0,
               "snapshots": 0, "n_fixed": 1, "seed": 0}
_TRAIN_OPTIONAL_INTS = {"n_train": 1, "max_steps": 1}  # ... or null
# ... the numbers > 0 and >= 0 (a NaN is neither) ...
_TRAIN_POSITIVE = ("lr_g", "lr_d")
_TRAIN_NONNEGATIVE = ("w_adv", "w_feat", "w_pixel", "pixel_decay", "w_dfeat", "dfeat_decay", "w_real")
# ... and the words
_TRAIN_CHOICES = {"loss": ("bce", "hinge"), "fast": _config.SPEED["fast"], "compile": _config.SPEED["compile"]}


def check_train(t: _config.TrainConfig) -> None:
    """Refuse (ValueError naming the ``train.`` key and what it takes) a training value of the wrong type or
    range: ``epochs=-1`` would save an untrained generator marked finished, ``epochs="abc"`` fail deep inside."""
    for key, low in _TRAIN_INTS.items():
        v = getattr(t, key)
        if not _is_int(v) or v < low:
            raise ValueError(f"train.{key} must be a whole number >= {low}, got {v!r}")
    for key, low in _TRAIN_OPTIONAL_INTS.items():
        v = getattr(t, key)
        if v is not None and (not _is_int(v) or v < low):
            raise ValueError(f"train.{key} must be a whole number >= {low} or null (no limit), got {v!r}")
    for key in _TRAIN_POSITIVE + _TRAIN_NONNEGATIVE:
        v = getattr(t, key)
        if not _is_number(v) or not (v > 0 if key in _TRAIN_POSITIVE else v >= 0):
            raise ValueError(f"train.{key} must be a number {'>' if key in _TRAIN_POSITIVE else '>='} 0, got {v!r}")
    if not _is_number(t.ema_decay) or not 0 <= t.ema_decay < 1:
        raise ValueError(f"train.ema_decay must be a number in [0, 1) (0: no weight average), got {t.ema_decay!r}")
    if (not isinstance(t.betas, tuple) or len(t.betas) != 2
            or not all(_is_number(b) and 0 <= b < 1 for b in t.betas)):
        raise ValueError(f"train.betas must be two numbers in [0, 1), e.g. [0.0, 0.9], got {t.betas!r}")
    for key, choices in _TRAIN_CHOICES.items():
        if getattr(t, key) not in choices or isinstance(getattr(t, key), bool):
            raise ValueError(f"train.{key} must be one of {', '.join(map(str, choices))}, got {getattr(t, key)!r}")
    if not isinstance(t.channels_last, bool):
        raise ValueError(f"train.channels_last must be true or false, got {t.channels_last!r}")
    for key in ("name", "dataset", "kd", "diffaug"):
        if not isinstance(getattr(t, key), str):
            raise ValueError(f"train.{key} must be a string, got {getattr(t, key)!r}")


def run_dir_of(cfg: _config.DistillConfig) -> Path:
    """The run folder of ``cfg``: its ``out``, else ``results/05_tinygan/runs/<name>``."""
    return Path(cfg.out) if cfg.out else paths.results_dir("05_tinygan", "runs", cfg.name)


def check_run_folder(out: Path, tcfg: _config.TrainConfig, world: int) -> None:
    """Refuse, as the training's resume would (``checkpoint.load_resume``), a run folder that holds a run of
    other settings or of another number of processes, or one in the shipped weights folder.

    Called before the run writes its ``distill.json``: the training itself refuses only after it started,
    and the refused run's description would then have replaced the folder's own.
    """
    _refuse_weights_folder(out)
    sd = checkpoint.state_dir(out)
    if not (sd / "state.pt").exists():
        return
    prog = checkpoint._progress(sd / "progress.json")
    if checkpoint.resume_key(prog.get("config", {})) != checkpoint.resume_key(tcfg):
        raise ValueError(f"{out} holds a run with other settings; resume it with the same config, start afresh "
                         "(--restart) or use another run folder (out=DIR)")
    saved_world = int(checkpoint.load_state(sd / "state.pt").get("world", 1))
    if saved_world != world:
        raise ValueError(f"{out} was saved by a run of {saved_world} process(es), this one has {world}: resume "
                         "with the same number of processes (an exact resume needs every rank's noise stream), "
                         "or start afresh in another folder (out=DIR)")


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
    out = run_dir_of(cfg)
    if resume:  # before anything is written: a refused run leaves the folder's run (its distill.json too) as it was
        check_run_folder(out, tcfg, dist.from_env().world)
    d, device = dist.setup(cfg.device)
    ok = False
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
        if d.is_main:
            out.mkdir(parents=True, exist_ok=True)
            _config.save_json({**cfg.to_dict(), "teacher": info, "world_size": d.world, "streamed": stream},
                              out / "distill.json")
        res = train_blackbox(G, D, source, tcfg, out, device, real=real, resume=resume, progress=progress, dist=d)
        ok = True
    finally:
        dist.teardown(d, ok)  # a failed rank leaves without the final barrier, so it exits with its error
    return runs.Trained(G, cfg.name, out, False, res["steps"], res["finished"], tcfg, res["history"], res["seconds"])
