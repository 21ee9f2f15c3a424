"""Chapter 07's study: each KD student through every compression step, each step scored and timed alike.

The mechanics (ONNX export, int8, fp16 files, channel pruning) live in
:mod:`gankd_utils.compress`; this module runs them on one student, fine-tunes
the pruned students with the KD recipe they were distilled with
(:func:`kd_finetune`), scores every variant with the same evaluator, and times
them all together on the CPU (:func:`metrics.speed_table`).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch.nn as nn

from . import checkpoint, compress, data, metrics, recipes, repro, runs, shards
from .train import fit
from .zoo import family_teacher, train_config


def finetune_inputs(name: str, part: Mapping[str, Any], device="auto", progress: bool = True) -> dict[str, Any]:
    """What a KD fine-tune of student ``name`` learns from, loaded once for every fine-tune of that student.

    ``part``: one dataset of :func:`runs.collect`. Returns ``{"cfg": its TrainConfig, "real": the real
    training set, "teacher_set": the exported teacher set (black-box KD) or None, "teacher": its family's
    teacher (online KD) or None}``. The fine-tune's learning rates are the student's own (:func:`trained_rates`).
    """
    entry, settings = part["entries"][name], part["settings"]
    if entry.role != "kd":
        raise ValueError(f"{name} is a {entry.role} model: only KD students get a KD fine-tune")
    real = data.load_dataset(entry.dataset, train=True)
    teacher = family_teacher(part["entries"], name)
    teacher_set = None
    if entry.kd == "blackbox":  # the set of the very teacher `part` holds (shipped or trained): chapter 04's export
        ckpt = Path(part["run_dirs"][teacher]) / "G.safetensors"
        teacher_set = shards.load_shards(runs.export_teacher(ckpt, settings, device, progress)["folder"])
    cfg = dataclasses.replace(train_config(entry, settings), **trained_rates(part["run_dirs"][name]))
    return {"cfg": cfg, "real": real, "teacher_set": teacher_set,
            "teacher": None if teacher_set is not None else part["models"][teacher]}


def trained_rates(folder: str | Path) -> dict[str, float]:
    """The learning rates the generator in ``folder`` was trained with (its ``G.json``), ``{}`` where unrecorded.

    A fine-tune keeps them: a shipped ``full`` student (trained at 2e-4) is not fine-tuned at the 10x
    rate the ``quick`` profile gives students trained for only a few hundred steps.
    """
    try:
        trained = checkpoint.read_sidecar(Path(folder) / "G").get("config") or {}
    except checkpoint.CheckpointError:
        return {}
    return {k: float(trained[k]) for k in ("lr_g", "lr_d") if k in trained}


FINETUNED = "finetuned"
"""A fine-tune's result in its run folder (``finetuned.safetensors`` + ``.json``), with the fingerprint of what it
started from: a later fine-tune that starts alike loads it instead of training again (:func:`kd_finetune`)."""


def start_fingerprint(G: nn.Module, cfg: Any, D: nn.Module | None = None, teacher: nn.Module | None = None) -> str:
    """sha256 of a fine-tune's starting point: ``G``'s weights and buffers, the critic ``D`` it continues (None:
    a recipe that never calls one), the online KD ``teacher`` it learns from (None: black-box KD), and the
    settings that define the training (:func:`checkpoint.resume_key`, with its step count). How it computes
    (fast path, compile, channels-last) is not part of it: that never changes what a run learns. Nor are the
    images it learns from (a class-balanced subset on a GPU lent for minutes): its sidecar records how many."""
    h = hashlib.sha256(json.dumps({"config": checkpoint.resume_key(cfg), "steps": cfg.max_steps},
                                  sort_keys=True).encode())
    for prefix, model in (("G.", G), ("D.", D), ("T.", teacher)):
        for k, v in sorted(model.state_dict().items()) if model is not None else ():
            h.update((prefix + k).encode())
            h.update(checkpoint.tensor_bytes(v))
    return h.hexdigest()


def finished_finetune(run_dir: str | Path, fingerprint: str) -> dict[str, Any] | None:
    """The sidecar of ``run_dir``'s fine-tune result (``run_dir/FINETUNED``) when it says it started from
    ``fingerprint``, else None (none there, another start, or a damaged sidecar: the fine-tune then runs again and
    replaces it)."""
    try:
        side = checkpoint.read_sidecar(Path(run_dir) / FINETUNED)
    except checkpoint.CheckpointError:
        return None
    return side if side.get("start") == fingerprint else None


def kd_finetune(G: nn.Module, name: str, part: Mapping[str, Any], steps: int, run_dir: str | Path, device="auto",
                progress: bool = True, inputs: Mapping[str, Any] | None = None,
                adversarial: bool = True) -> nn.Module:
    """A short KD fine-tune of a compressed student ``G`` (e.g. channel-pruned), in place; returns G.

    The student keeps the recipe it was distilled with: pixel / feature KD from its
    family's teacher (MNIST), black-box KD from the exported CIFAR-10 teacher set
    (chapter 04 students, TinyGAN); its discriminator continues from the student's own
    run (``part["run_dirs"][name]/D``). ``adversarial=False`` drops the adversarial term
    from the generator's loss (``w_adv = 0``): distillation alone (the discriminator still
    trains, and TinyGAN's feature term still reads it). A student trained by distillation alone
    (``recipes.NO_CRITIC``) has no critic to continue, and ships none: its step never calls one, so a
    new one only fills the trainer's slot. ``inputs``: :func:`finetune_inputs`'s result. The recipe starts again at
    its first epoch: a weight decayed per epoch has its starting value (TinyGAN's pixel term 0.2, which its
    distillation had brought to 0), so the fine-tune distils the teacher's images as the student began to.

    The result is saved in ``run_dir`` (:data:`FINETUNED`) with the fingerprint of its start
    (:func:`start_fingerprint`); a fine-tune that starts alike (the same weights, recipe and steps) loads it
    instead of training again, e.g. chapter 07 on a CPU after the ``compress`` stage fine-tuned on a GPU.
    """
    device = repro.get_device(device)
    inputs = inputs or finetune_inputs(name, part, device, progress)
    # stop after `steps`; epochs only need to be enough to get there. It saves its raw weights: a weight average
    # begins as a copy of the start, and at 0.999 still holds 0.999^1000 = 37% of it after 1,000 steps, which for
    # a pruned student are the damaged weights the fine-tune is meant to repair.
    cfg = dataclasses.replace(inputs["cfg"], name=f"{name}_finetune", max_steps=steps, n_train=None,
                              epochs=max(inputs["cfg"].epochs, math.ceil(steps / 10)), ckpt_every=max(steps, 1),
                              snapshots=0,  # a short fine-tune: no quality-over-training snapshots
                              ema_decay=0.0,
                              **({} if adversarial else {"w_adv": 0.0}))
    critic = inputs["cfg"].kd not in recipes.NO_CRITIC
    if critic:
        D = checkpoint.load_model(Path(part["run_dirs"][name]) / "D", device)
    start = start_fingerprint(G, cfg, D if critic else None, inputs["teacher"])
    side = finished_finetune(run_dir, start)
    if side is not None:
        try:
            checkpoint.load_into(G, Path(run_dir) / FINETUNED)
        except checkpoint.CheckpointError as e:  # cut off or damaged: it trains again and replaces it
            print(f"{name}: {e}; fine-tuning again")
        else:
            if progress:
                print(f"{name}: {Path(run_dir).name} loaded ({side.get('steps')} steps, fine-tuned on "
                      f"{side.get('device')}, {side.get('images')} images) instead of training again")
            return G.eval()
    if not critic:
        D = part["entries"][name].make_d(part["settings"]).to(device)
    if inputs["teacher_set"] is not None:
        fit(G, D, inputs["teacher_set"], cfg, run_dir, device, real=inputs["real"], resume=False, progress=progress)
    else:
        fit(G, D, inputs["real"], cfg, run_dir, device, teacher=inputs["teacher"], resume=False, progress=progress)
    images = {"real": len(inputs["real"]),
              **({} if inputs["teacher_set"] is None else {"teacher_set": len(inputs["teacher_set"])})}
    checkpoint.save_model(Path(run_dir) / FINETUNED, G, start=start, steps=steps, adversarial=adversarial,
                          device=repro.describe_device(device), images=images)
    return G.eval()


def _tuner(name: str, part: Mapping[str, Any], steps: int, out: Path, device, progress: bool, adversarial: bool):
    """``tune(model, percent)``: the KD fine-tune of ``model`` in ``out/finetune_<percent>``, returned on the CPU in
    eval mode; every fine-tune of one student alike (the pruned ones and the control), its inputs loaded once."""
    inputs = finetune_inputs(name, part, device, progress)

    def tune(model: nn.Module, percent: int) -> nn.Module:
        return kd_finetune(model, name, part, steps, out / f"finetune_{percent}", device, progress, inputs,
                           adversarial=adversarial).cpu().eval()
    return tune


def finetunes(name: str, G: nn.Module, part: Mapping[str, Any], out_dir: str | Path, device="auto",
              amounts: Sequence[float] = (0.3, 0.5), finetune_steps: int = 200, progress: bool = True,
              min_channels: int = 1, finetune_adversarial: bool = True) -> list[Path]:
    """:func:`compression_study`'s fine-tunes alone, with the same arguments: the control and each pruned
    student, nothing scored or timed. Where a GPU is lent for minutes, they train there (the ``compress`` stage
    without its notebook), and the study run later on a CPU loads them. Returns their run folders."""
    out = Path(out_dir) / "runs" / name
    G = copy.deepcopy(G).cpu().eval()
    tune = _tuner(name, part, finetune_steps, out, device, progress, finetune_adversarial)
    tune(copy.deepcopy(G), 0)
    for a in amounts:
        tune(compress.prune_channels(G, a, min_channels=min_channels), int(a * 100))
    return [out / f"finetune_{p}" for p in (0, *(int(a * 100) for a in amounts))]


CONTROL = "unpruned + KD fine-tune"  # compression_study's control row: the student fine-tuned as the pruned ones


def _change(fid: float, ref: float) -> float | None:
    """FID change in percent against ``ref`` (positive: worse)."""
    return 100.0 * (fid - ref) / ref if ref else None


def compression_study(name: str, G: nn.Module, part: Mapping[str, Any], evaluator, out_dir: str | Path,
                      device="auto", amounts: Sequence[float] = (0.3, 0.5), finetune_steps: int = 200,
                      rounds: int = 5, threads: int | None = None, progress: bool = True,
                      min_channels: int = 1, finetune_adversarial: bool = True) -> dict[str, Any]:
    """Every compression step of one KD student, each scored by the same ``evaluator`` and timed on the CPU.

    Steps: fp32 torch (the baseline); the fp16 file; fp32 ONNX (ONNX Runtime, max |difference| to torch);
    int8 ONNX (static QDQ); the unpruned student after the same KD fine-tune (the control: a fine-tune
    is more training, which alone can change the score); for each pruning ``amount``: channel-pruned
    (every layer keeping at least ``min_channels``, :func:`compress.prune_channels`), then a KD fine-tune of
    ``finetune_steps`` steps (``finetune_adversarial=False``: distillation alone, :func:`kd_finetune`),
    then that model as int8 ONNX; unstructured 50% zeros (reported with its dense bytes, honestly). The
    pruning target compares each pruned + fine-tuned student with the control, so that it prices the
    pruning, not the extra training. Every variant is timed in the same interleaved rounds. The files
    (fp16, ONNX, int8, pruned checkpoints) go to ``out_dir/runs/name/``.
    Returns ``{"rows", "targets", "variants", "onnx_max_abs_diff", "fid", "files"}``.
    """
    out = Path(out_dir) / "runs" / name  # model files and fine-tune runs: kept locally, not committed
    out.mkdir(parents=True, exist_ok=True)
    G = copy.deepcopy(G).cpu().eval()
    fid_key = evaluator.names()["fid"]
    rows: list[dict[str, Any]] = []
    variants: dict[str, nn.Module] = {}

    def add(step: str, runtime: str, model: nn.Module, **row_kw) -> dict[str, Any]:
        row = compress.compression_row(step, **row_kw)
        q = evaluator(model)
        row.update(step=step, runtime=runtime, fid=q[fid_key], **q)
        rows.append(row)
        variants[step] = model
        return row

    base = add("fp32 torch", "torch", G, G=G)
    fp16 = compress.to_fp16_safetensors(G, out / "G_fp16")
    G16 = compress.load_fp16_safetensors(fp16)
    add("fp16 file", "torch (fp32 compute)", G16, G=G16, file_path=fp16)
    onnx32 = compress.export_onnx(G, out / "G_fp32.onnx")
    diff = compress.onnx_max_abs_diff(G, onnx32)
    add("fp32 ONNX", "onnxruntime", compress.OnnxGenerator(onnx32, G, threads), G=G, onnx_path=onnx32)
    cal = compress.calibration_batches(G, seed=part["settings"].seed)
    int8 = compress.quantize_onnx_int8(onnx32, out / "G_int8.onnx", cal)
    q8 = add("int8 ONNX", "onnxruntime", compress.OnnxGenerator(int8, G, threads), G=G, onnx_path=int8)
    prune_rows = []
    if amounts:
        tune = _tuner(name, part, finetune_steps, out, device, progress, finetune_adversarial)
        C = tune(copy.deepcopy(G), 0)
        control = add(CONTROL, "torch", C, G=C)
    for a in amounts:
        P = compress.prune_channels(G, a, min_channels=min_channels)
        add(f"pruned {a:.0%}", "torch", P, G=P)
        P = tune(copy.deepcopy(P), int(a * 100))  # the fine-tune works in place: the row above keeps its model
        ft = add(f"pruned {a:.0%} + KD fine-tune", "torch", P, G=P)
        checkpoint.save_model(out / f"G_pruned{int(a * 100)}_ft", P, amount=a, finetune_steps=finetune_steps,
                              min_channels=min_channels, finetune_adversarial=finetune_adversarial)
        p32 = compress.export_onnx(P, out / f"G_pruned{int(a * 100)}_ft.onnx")
        p8 = compress.quantize_onnx_int8(p32, out / f"G_pruned{int(a * 100)}_ft_int8.onnx", cal)
        add(f"pruned {a:.0%} + KD fine-tune, int8 ONNX", "onnxruntime", compress.OnnxGenerator(p8, P, threads),
            G=P, onnx_path=p8)
        prune_rows.append((a, ft))
    U = compress.prune_unstructured(G, 0.5)
    add("unstructured 50% zeros (dense file)", "torch", U, G=U)
    speed = metrics.speed_table(variants, "cpu", 64, rounds, threads=threads)  # every variant is a CPU copy
    for r in rows:
        s = speed[r["step"]]
        r.update(ms_b1=s["ms_b1"], ms_b1_spread_pct=s["ms_b1_spread_pct"], img_s_b64=s["img_per_s"],
                 img_s_b64_spread_pct=s["img_per_s_spread_pct"])
        r["fid_change_pct"] = _change(r["fid"], base["fid"])
        r["macs_m"] = r["macs"] / 1e6 if r.get("macs") else None
    sp_b1 = base["ms_b1"] / q8["ms_b1"] if q8.get("ms_b1") else None
    sp_b64 = q8["img_s_b64"] / base["img_s_b64"] if base.get("img_s_b64") else None
    targets = {"int8": {"speedup_b1": sp_b1, "speedup_b64": sp_b64, "fid_change_pct": q8["fid_change_pct"],
                        "met": bool(sp_b1 and sp_b64 and min(sp_b1, sp_b64) >= 2 and q8["fid_change_pct"] <= 10)},
               "pruning": []}
    for a, r in prune_rows:
        removed, vs = 100 * (1 - r["macs"] / base["macs"]), _change(r["fid"], control["fid"])
        targets["pruning"].append({"amount": a, "macs_removed_pct": removed, "fid_change_pct": r["fid_change_pct"],
                                   "fid_change_vs_control_pct": vs, "control_fid": control["fid"],
                                   "met": bool(removed >= 30 and vs is not None and vs <= 10)})
    return {"rows": rows, "targets": targets, "variants": variants, "onnx_max_abs_diff": diff, "fid": fid_key,
            "files": str(out)}


INT8_TARGET = "int8 ONNX >= 2x faster than fp32 torch at batch 1 and at batch 64, FID change <= 10%"
"""The int8 target as :func:`study` checks it (``met``): both speedups at least 2x, not either one."""


def target_rows(studies: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chapter 07's verdict, one row per target and student (``studies``: ``{student key: study(...)}``):
    ``{"student", "target", "measured", "met"}``, ``met`` said as "met" or "missed" (a table reads
    True / False as data, not as a verdict)."""
    rows = []
    for key, st in studies.items():
        t = st["targets"]
        q8 = t["int8"]
        rows.append({"student": key, "target": INT8_TARGET,
                     "measured": f"{q8['speedup_b1']:.2f}x (b=1), {q8['speedup_b64']:.2f}x (b=64), "
                                 f"FID {q8['fid_change_pct']:+.1f}%", "met": "met" if q8["met"] else "missed"})
        for p in t["pruning"]:
            rows.append({"student": key,
                         "target": f"pruning {p['amount']:.0%} + KD: >= 30% MACs removed, FID <= +10% against the "
                                   "unpruned student fine-tuned alike",
                         "measured": f"{p['macs_removed_pct']:.0f}% MACs removed, FID "
                                     f"{p['fid_change_vs_control_pct']:+.1f}% (control {p['control_fid']:.3g}; "
                                     f"{p['fid_change_pct']:+.1f}% against the student as trained)",
                         "met": "met" if p["met"] else "missed"})
    return rows
