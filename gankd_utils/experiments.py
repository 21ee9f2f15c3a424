"""The model zoo of each chapter and the train-or-load step the notebooks share.

A chapter lists its models once (generator, discriminator, teacher, recipe);
``train_or_load`` trains a model in the current profile or, when its run
folder already holds a finished generator of the same settings, loads it.
``table`` / ``write_table`` turn per-model results into the CSV + Markdown
tables a report needs.
"""
from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn

from . import checkpoint
from .config import COLUMBIA, IITGN, SNGAN, TINYGAN, TrainConfig
from .models import (CGAN_PRESETS, CondDCGANDiscriminator, CondDCGANGenerator, IITGNDiscriminator, IITGNGenerator,
                     ProjectionDiscriminator, ResNetGenerator)


@dataclass(frozen=True)
class Spec:
    """One model of a chapter: how to build it and how to train it."""

    name: str
    family: str
    role: str  # teacher | scratch | kd
    make_g: Callable[[], nn.Module]
    make_d: Callable[[], nn.Module]
    recipe: Mapping[str, Any] = field(default_factory=dict)  # TrainConfig overrides
    teacher: str | None = None  # name of the teacher Spec for KD students
    label: str = ""
    init: str = "dcgan"  # dcgan: N(0, 0.02) (DCGAN family) | xavier: models.layers.init_weights (SN / cBN models)


def mnist_zoo() -> dict[str, Spec]:
    """The MNIST chapter: the IITGN family (unconditional) and the Columbia family (conditional)."""
    specs = [
        Spec("iitgn_teacher", "iitgn", "teacher", lambda: IITGNGenerator("teacher"), IITGNDiscriminator,
             label="IITGN teacher"),
        Spec("iitgn_student_scratch", "iitgn", "scratch", lambda: IITGNGenerator("student"), IITGNDiscriminator,
             label="IITGN student (scratch)"),
        Spec("iitgn_student_kd", "iitgn", "kd", lambda: IITGNGenerator("student"), IITGNDiscriminator,
             IITGN, teacher="iitgn_teacher", label="IITGN student (KD: feature MSE)"),
        Spec("cdcgan_c512_teacher", "columbia", "teacher", lambda: CondDCGANGenerator(512),
             lambda: CondDCGANDiscriminator(64), {}, label="cDCGAN c=512 teacher"),
    ]
    for c in (64, 32):
        specs += [
            Spec(f"cdcgan_c{c}_scratch", "columbia", "scratch", lambda c=c: CondDCGANGenerator(c),
                 lambda c=c: CondDCGANDiscriminator(c // 8), {}, label=f"cDCGAN c={c} (scratch)"),
            Spec(f"cdcgan_c{c}_kd", "columbia", "kd", lambda c=c: CondDCGANGenerator(c),
                 lambda c=c: CondDCGANDiscriminator(c // 8), COLUMBIA, teacher="cdcgan_c512_teacher",
                 label=f"cDCGAN c={c} (KD: pixel L1)"),
        ]
    return {s.name: s for s in specs}


def cifar10_zoo(diffaug: str = "translation,cutout") -> dict[str, Spec]:
    """The CIFAR-10 chapter: an SNGAN/BigGAN-style teacher and two lightweight students.

    Each student is trained from scratch on CIFAR-10 and, with the same D and
    budget, by black-box KD from the teacher's exported (z, y, image) set
    (``config.TINYGAN`` losses plus the real-data branch on CIFAR-10).
    """
    gan = {**SNGAN, "diffaug": diffaug}
    kd = {**TINYGAN, "diffaug": diffaug}
    specs = [Spec("cgan_teacher", "cifar10", "teacher", lambda: ResNetGenerator(**CGAN_PRESETS["teacher"]),
                  lambda: ProjectionDiscriminator(ch=128), gan, label="ResNet cGAN teacher", init="xavier")]
    for preset in ("student_s", "student_xs"):
        for role, recipe in (("scratch", gan), ("kd", kd)):
            specs.append(Spec(f"cgan_{preset}_{role}", "cifar10", role,
                              lambda p=preset: ResNetGenerator(**CGAN_PRESETS[p]),
                              lambda: ProjectionDiscriminator(ch=64), recipe,
                              teacher="cgan_teacher" if role == "kd" else None,
                              label=f"{preset} ({'black-box KD' if role == 'kd' else 'scratch'})", init="xavier"))
    return {s.name: s for s in specs}


def _initialised(spec: Spec, seed: int) -> tuple[nn.Module, nn.Module]:
    from . import repro
    from .models.layers import init_weights
    from .train import dcgan_init

    G, D = spec.make_g(), spec.make_d()
    if spec.init == "xavier":
        return init_weights(G, repro.generator(seed, "init")), init_weights(D, repro.generator(seed + 1, "init"))
    return dcgan_init(G, seed), dcgan_init(D, seed + 1)


def train_or_load(spec: Spec, base: TrainConfig, data, run_root: str | Path, teachers: Mapping[str, nn.Module],
                  device="auto", retrain: bool = False, progress: bool = True,
                  teacher_sets: Mapping[str, Any] | None = None) -> tuple[nn.Module, dict]:
    """Train ``spec`` with ``base`` settings + its recipe, or load its finished generator.

    The recipe's ``kd`` picks the trainer: none (from scratch on ``data``),
    feature / pixel (online KD from ``teachers[spec.teacher]``), blackbox (from
    the exported ``teacher_sets[spec.teacher]``, with ``data`` as the real branch).
    Returns (generator in eval mode, info) where info holds the history, whether
    it was loaded or trained, and the run folder.
    """
    from .repro import get_device
    from .train import _resumable_settings, is_finished, train_blackbox, train_distill, train_gan

    cfg = dataclasses.replace(base, name=spec.name, **spec.recipe)
    run_dir = Path(run_root) / spec.name
    device = get_device(device)
    if not retrain and is_finished(run_dir):
        side = checkpoint.read_sidecar(run_dir / "G")
        if _resumable_settings(side.get("config", {})) == _resumable_settings(cfg.to_dict()):
            G = checkpoint.load_model(run_dir / "G", device)
            hist_file = run_dir / "history.json"
            import json

            history = json.loads(hist_file.read_text()) if hist_file.exists() else {}
            return G, {"loaded": True, "history": history, "run_dir": str(run_dir), "config": cfg}
    G, D = _initialised(spec, cfg.seed)
    if cfg.kd == "none":
        res = train_gan(G, D, data, cfg, run_dir, device, resume=not retrain, progress=progress)
    elif cfg.kd == "blackbox":
        if not teacher_sets or spec.teacher not in teacher_sets:
            raise ValueError(f"{spec.name} learns from {spec.teacher}'s exported set: pass it in teacher_sets")
        res = train_blackbox(G, D, teacher_sets[spec.teacher], cfg, run_dir, device, real=data,
                             resume=not retrain, progress=progress)
    else:
        res = train_distill(G, D, teachers[spec.teacher], data, cfg, run_dir, device, resume=not retrain,
                            progress=progress)
    return G.eval(), {"loaded": False, **res, "config": cfg}


def export_cifar10_teacher(checkpoint_path: str | Path, profile: str, seed: int = 0, device="auto",
                           progress: bool = True) -> dict[str, Any]:
    """Export chapter 04's teacher (a G checkpoint) to its shard folder under ``paths.teachers_dir()``.

    The folder name carries the profile, seed and the checkpoint's hash, so a
    retrained teacher never mixes with an old export; a rerun keeps whole shards.
    Returns the export summary plus ``folder``.
    """
    from . import config, data, paths, teachers

    checkpoint_path = Path(checkpoint_path)
    sizes = config.chapter_sizes("cifar10", profile, "export")
    teacher = teachers.TorchTeacher.from_checkpoint(checkpoint_path, device)
    folder = paths.teachers_dir() / f"cifar10_cgan_teacher_{profile}_s{seed}_{data.sha256_file(checkpoint_path)[:8]}"
    info = teachers.export(teacher, folder, classes=list(range(10)), per_class=sizes["per_class"], seed=seed,
                           shard_size=sizes["shard_size"], batch_size=256, progress=progress)
    return {**info, "folder": folder}


def cifar10_teacher_set(profile: str, seed: int = 0, device="auto", retrain: bool = False,
                        progress: bool = True, diffaug: str = "translation,cutout") -> dict[str, Any]:
    """Chapter 04's teacher and its exported set, for the chapters that distil it (05, 06, 07).

    Loads the finished teacher of ``profile`` / ``seed`` (or trains it now, in that
    profile, when chapter 04 has not) and exports it unless the export exists.
    Returns ``{"teacher": G, "checkpoint", "folder", "trained": bool, "export": {...}}``.
    """
    from . import config, data

    spec = cifar10_zoo(diffaug)["cgan_teacher"]
    cfg = config.get("train", profile, chapter="cifar10", seed=seed)
    root = run_root("cifar10", profile, seed)
    G, info = train_or_load(spec, cfg, data.load_cifar10(train=True), root, {}, device, retrain, progress)
    ckpt = root / spec.name / "G.safetensors"
    exported = export_cifar10_teacher(ckpt, profile, seed, device, progress)
    return {"teacher": G, "checkpoint": ckpt, "folder": exported["folder"], "trained": not info["loaded"],
            "export": exported}


CHAPTER_DIRS = {"mnist": "03_mnist", "cifar10": "04_cifar10"}
ZOOS = {"mnist": mnist_zoo, "cifar10": cifar10_zoo}


def run_root(chapter: str, profile: str, seed: int = 0) -> Path:
    """``results/<chapter folder>/runs/<profile>-seed<seed>``: where the notebook and the ``train`` command keep runs."""
    from . import paths

    return paths.results_dir(CHAPTER_DIRS[chapter], "runs", f"{profile}-seed{seed}")


def write_table(rows: Sequence[Mapping[str, Any]], stem: str | Path, floatfmt: str = "{:.4g}") -> tuple[Path, Path]:
    """Write ``rows`` (dicts with the same keys) as ``stem.csv`` and ``stem.md``."""
    from .io import atomic_write_text

    stem = Path(stem)
    cols = list(rows[0].keys()) if rows else []
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in cols})
    csv_path = atomic_write_text(stem.with_suffix(".csv"), buf.getvalue())
    md_path = atomic_write_text(stem.with_suffix(".md"), markdown_table(rows, floatfmt))
    return csv_path, md_path


def markdown_table(rows: Sequence[Mapping[str, Any]], floatfmt: str = "{:.4g}") -> str:
    if not rows:
        return "(no rows)\n"
    cols = list(rows[0].keys())

    def fmt(v):
        if v is None or v == "":
            return "n/a"
        if isinstance(v, float):
            return floatfmt.format(v)
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def family_teacher(specs: Mapping[str, Spec], name: str) -> str | None:
    """Name of the teacher of ``name``'s family (itself for a teacher)."""
    fam = specs[name].family
    return next((n for n, s in specs.items() if s.family == fam and s.role == "teacher"), None)


def evaluate_models(models: Mapping[str, nn.Module], specs: Mapping[str, Spec], evaluators: Sequence,
                    speed_batch: int = 64, speed_repeats: int = 10, progress: bool = True) -> list[dict[str, Any]]:
    """One row per model: size, compression against its family's teacher, every evaluator's metrics, speed.

    Every model is scored by the same evaluators (same samples, features and
    reference); CPU speed is measured on the CPU, GPU speed where CUDA is present.
    """
    import copy

    from tqdm.auto import tqdm

    from .metrics import count_params, generator_speed, size_report

    rows = []
    metric_cols: list[str] = []
    for ev in evaluators:
        metric_cols += [v for k, v in ev.names().items() if k != "acc" or ev.extractor.name != "inception"]
    for name, G in tqdm(list(models.items()), desc="evaluate", disable=not progress, leave=False):
        spec = specs[name]
        t_name = family_teacher(specs, name)
        size = size_report(G)
        row: dict[str, Any] = {"model": name, "family": spec.family, "role": spec.role,
                               "params": size["params"], "nonzero_params": size["nonzero_params"],
                               "mb_fp32": size["mb_fp32"], "mb_fp16": size["mb_fp16"], "mb_int8": size["mb_int8"],
                               "compression_x": (count_params(models[t_name]) / size["params"]
                                                 if t_name in models else None),
                               "macs_m": size["macs"] / 1e6}
        row.update({c: None for c in metric_cols})
        for ev in evaluators:
            got = ev(G)
            if not getattr(G, "n_classes", 0):
                got = {k: v for k, v in got.items() if not k.startswith("acc")}
            row.update(got)
        cpu = generator_speed(copy.deepcopy(G).cpu(), "cpu", speed_batch, speed_repeats)
        row["cpu_img_per_s"], row["cpu_latency_ms_b1"] = cpu["images_per_s"], cpu["latency_ms_b1"]
        dev = next(G.parameters()).device
        if dev.type == "cuda":
            gpu = generator_speed(G, dev, 1024, speed_repeats)
            row["gpu_img_per_s"] = gpu["images_per_s"]
        else:
            row["gpu_img_per_s"] = None
        rows.append(row)
    return rows


def kd_gap_closed(rows: Sequence[Mapping[str, Any]], metric: str) -> list[dict[str, Any]]:
    """For each KD student: the share of its scratch twin's gap to the teacher that KD closed.

    ``(scratch - kd) / (scratch - teacher)`` on ``metric`` (lower is better): 1 means
    as good as the teacher, 0 no better than scratch, negative worse.
    """
    by = {r["model"]: r for r in rows}
    teacher = {r["family"]: r for r in rows if r["role"] == "teacher"}
    out = []
    for r in rows:
        if r["role"] != "kd" or not r["model"].endswith("_kd"):
            continue
        twin = by.get(r["model"][: -len("_kd")] + "_scratch")
        t = teacher.get(r["family"])
        if twin is None or t is None or r.get(metric) is None:
            continue
        gap = twin[metric] - t[metric]
        out.append({"student": r["model"], "compression_x": r.get("compression_x"), "teacher": t[metric],
                    "scratch": twin[metric], "kd": r[metric],
                    "gap_closed": (twin[metric] - r[metric]) / gap if gap else None})
    return out


# ------------------------------------------------------------------ chapter 07

def finetune_inputs(name: str, part: Mapping[str, Any], profile: str, seed: int, device="auto",
                    progress: bool = True) -> dict[str, Any]:
    """What a KD fine-tune of student ``name`` learns from, loaded once for every fine-tune of that student.

    ``{"cfg": its TrainConfig, "real": the real training set, "teacher_set": the exported CIFAR-10 teacher set
    (black-box KD) or None, "teacher": its family's teacher (online KD) or None}``.
    """
    from . import config, data, distill

    spec = part["specs"][name]
    if spec.role != "kd":
        raise ValueError(f"{name} is a {spec.role} model: only KD students get a KD fine-tune")
    dataset = "mnist" if spec.family in ("iitgn", "columbia") else "cifar10"
    blackbox = name == "tinygan_student" or spec.recipe.get("kd") == "blackbox"
    folder = cifar10_teacher_set(profile, seed, device, progress=progress)["folder"] if blackbox else None
    if name == "tinygan_student":
        cfg = distill.profile_config(profile, folder, train={"seed": seed}).train_config()
    else:
        base = config.get("train", profile, chapter=dataset if dataset in config.CHAPTERS else None, seed=seed)
        cfg = dataclasses.replace(base, **spec.recipe)
    return {"cfg": cfg, "real": data.load_dataset(dataset, train=True),
            "teacher_set": data.load_shards(folder) if blackbox else None,
            "teacher": None if blackbox else part["models"][family_teacher(part["specs"], name)]}


def kd_finetune(G: nn.Module, name: str, part: Mapping[str, Any], profile: str, seed: int, steps: int,
                run_dir: str | Path, device="auto", progress: bool = True,
                inputs: Mapping[str, Any] | None = None) -> nn.Module:
    """A short KD fine-tune of a compressed student ``G`` (e.g. channel-pruned), in place; returns G.

    The student keeps the recipe it was distilled with: pixel / feature KD from
    its family's teacher (MNIST), black-box KD from the exported CIFAR-10 teacher
    set (chapter 04 students, TinyGAN); its discriminator continues from the
    student's own run (``part["run_dirs"][name]/D``). ``part`` is one dataset of
    :func:`gankd_utils.report.collect_models`; ``inputs`` is :func:`finetune_inputs`'s
    result (loaded here when not given).
    """
    import math

    from .repro import get_device
    from .train import train_blackbox, train_distill

    device = get_device(device)
    inputs = inputs or finetune_inputs(name, part, profile, seed, device, progress)
    D = checkpoint.load_model(Path(part["run_dirs"][name]) / "D", device)
    cfg = inputs["cfg"]
    # stop after `steps`; epochs only need to be enough to get there
    cfg = dataclasses.replace(cfg, name=f"{name}_finetune", max_steps=steps, n_train=None,
                              epochs=max(cfg.epochs, math.ceil(steps / 10)), ckpt_every=max(steps, 1))
    if inputs["teacher_set"] is not None:
        train_blackbox(G, D, inputs["teacher_set"], cfg, run_dir, device, real=inputs["real"], resume=False,
                       progress=progress)
    else:
        train_distill(G, D, inputs["teacher"], inputs["real"], cfg, run_dir, device, resume=False,
                      progress=progress)
    return G.eval()


def compression_study(name: str, G: nn.Module, part: Mapping[str, Any], evaluator, out_dir: str | Path,
                      profile: str, seed: int = 0, device="auto", amounts: Sequence[float] = (0.3, 0.5),
                      finetune_steps: int = 200, repeats: int = 5, threads: int | None = None,
                      progress: bool = True) -> dict[str, Any]:
    """Every compression step of one KD student, each scored by the same ``evaluator`` and timed on the CPU.

    Steps: fp32 torch (the baseline); the fp16 file; fp32 ONNX (ONNX Runtime, max |difference| to torch);
    int8 ONNX (static QDQ); for each pruning ``amount``: channel-pruned, then a KD fine-tune of
    ``finetune_steps`` steps, then that model as int8 ONNX; unstructured 50% zeros (reported with its
    dense bytes, honestly). The files (fp16, ONNX, int8, pruned checkpoints) go to ``out_dir/runs/name/``.
    Returns ``{"rows", "targets", "variants", "onnx_max_abs_diff", "fid", "files"}``.
    """
    import copy

    from . import compress

    out = Path(out_dir) / "runs" / name  # model files and fine-tune runs: kept locally, not committed
    out.mkdir(parents=True, exist_ok=True)
    G = copy.deepcopy(G).cpu().eval()
    fid_key = evaluator.names()["fid"]
    rows: list[dict[str, Any]] = []
    variants: dict[str, nn.Module] = {}
    timing = dict(repeats=repeats, threads=threads)

    def add(step: str, runtime: str, model_for_quality: nn.Module, **row_kw) -> dict[str, Any]:
        row = compress.compression_row(step, **row_kw, **timing)
        q = evaluator(model_for_quality)
        row.update(step=step, runtime=runtime, fid=q[fid_key], **q)
        row["ms_b1"] = row["onnx_ms_b1"] if runtime == "onnxruntime" else row["torch_ms_b1"]
        row["img_s_b64"] = row["onnx_img_s"] if runtime == "onnxruntime" else row["torch_img_s"]
        rows.append(row)
        variants[step] = model_for_quality
        return row

    compress.torch_speed(G, repeats=3, warmup=3)  # warm torch's thread pool: the baseline is timed first
    base = add("fp32 torch", "torch", G, G=G)
    fp16 = compress.to_fp16_safetensors(G, out / "G_fp16")
    G16 = compress.load_fp16_safetensors(fp16)
    add("fp16 file", "torch (fp32 compute)", G16, G=G16, file_path=fp16)
    onnx32 = compress.export_onnx(G, out / "G_fp32.onnx")
    diff = compress.onnx_max_abs_diff(G, onnx32)
    add("fp32 ONNX", "onnxruntime", compress.OnnxGenerator(onnx32, G), G=G, onnx_path=onnx32)
    cal = compress.calibration_batches(G, seed=seed)
    int8 = compress.quantize_onnx_int8(onnx32, out / "G_int8.onnx", cal)
    q8 = add("int8 ONNX", "onnxruntime", compress.OnnxGenerator(int8, G), G=G, onnx_path=int8)
    prune_rows = []
    ft_inputs = finetune_inputs(name, part, profile, seed, device, progress) if amounts else None
    for a in amounts:
        P = compress.prune_channels(G, a)
        add(f"pruned {a:.0%}", "torch", P, G=P)
        P = kd_finetune(P, name, part, profile, seed, finetune_steps, out / f"finetune_{int(a * 100)}", device,
                        progress, ft_inputs).cpu().eval()
        ft = add(f"pruned {a:.0%} + KD fine-tune", "torch", P, G=P)
        checkpoint.save_model(out / f"G_pruned{int(a * 100)}_ft", P, amount=a, finetune_steps=finetune_steps)
        p32 = compress.export_onnx(P, out / f"G_pruned{int(a * 100)}_ft.onnx")
        p8 = compress.quantize_onnx_int8(p32, out / f"G_pruned{int(a * 100)}_ft_int8.onnx", cal)
        add(f"pruned {a:.0%} + KD fine-tune, int8 ONNX", "onnxruntime", compress.OnnxGenerator(p8, P), G=P,
            onnx_path=p8)
        prune_rows.append((a, ft))
    U = compress.prune_unstructured(G, 0.5)
    add("unstructured 50% zeros (dense file)", "torch", U, G=U)
    for r in rows:
        r["fid_change_pct"] = 100.0 * (r["fid"] - base["fid"]) / base["fid"] if base["fid"] else None
        r["macs_m"] = r["macs"] / 1e6 if r.get("macs") else None
    sp_b1 = base["torch_ms_b1"] / q8["onnx_ms_b1"] if q8.get("onnx_ms_b1") else None
    sp_b64 = q8["onnx_img_s"] / base["torch_img_s"] if base.get("torch_img_s") else None
    targets = {"int8": {"speedup_b1": sp_b1, "speedup_b64": sp_b64, "fid_change_pct": q8["fid_change_pct"],
                        "met": bool(sp_b1 and sp_b64 and min(sp_b1, sp_b64) >= 2 and q8["fid_change_pct"] <= 10)},
               "pruning": [{"amount": a, "macs_removed_pct": 100 * (1 - r["macs"] / base["macs"]),
                            "fid_change_pct": r["fid_change_pct"],
                            "met": bool(1 - r["macs"] / base["macs"] >= 0.30 and r["fid_change_pct"] <= 10)}
                           for a, r in prune_rows]}
    return {"rows": rows, "targets": targets, "variants": variants, "onnx_max_abs_diff": diff, "fid": fid_key,
            "files": str(out)}
