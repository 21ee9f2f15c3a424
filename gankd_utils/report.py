"""Notebook 06's plumbing: every trained model of the suite, and ``results/REPORT.md``.

:func:`collect_models` finds the generators chapters 03-05 trained for a
profile and seed (training, in that profile, whatever is missing, and saying
so); :func:`write_report` gathers every chapter's ``metrics.json``, tables and
figures into one Markdown page with a paragraph per chapter that says what ran,
in which profile and on which device. A profile other than ``full`` is flagged
on the page: smoke and quick numbers show the pipeline, not results.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.nn as nn

from . import checkpoint, config, experiments, paths

# the reference set of each dataset's table (real training images)
DATASETS = ("mnist", "cifar10")


def _load_finished(run_dir: Path, device) -> nn.Module | None:
    """A chapter's finished generator, whatever settings it was trained with (06 compares what exists)."""
    side = run_dir / "G.json"
    if side.exists() and json.loads(side.read_text()).get("finished"):
        return checkpoint.load_model(run_dir / "G", device).eval()
    return None


def collect_models(profile: str, seed: int = 0, device="auto", train_missing: bool = True, progress: bool = True,
                   say: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """Every model of chapters 03-05 for ``profile`` / ``seed``: ``{dataset: {"models", "specs", "sources"}}``.

    A model is loaded from its chapter's run folder when finished there; otherwise,
    with ``train_missing``, it is trained now in ``profile`` (and ``say`` tells the
    user), else left out. ``sources[name]`` says which happened.
    """
    from . import data, distill
    from .repro import get_device

    device = get_device(device)
    out: dict[str, dict[str, Any]] = {}
    for chapter in DATASETS:
        zoo = experiments.ZOOS[chapter]()
        root = experiments.run_root(chapter, profile, seed)
        cfg = config.get("train", profile, chapter=chapter if chapter in config.CHAPTERS else None, seed=seed)
        models: dict[str, nn.Module] = {}
        sources: dict[str, str] = {}
        run_dirs: dict[str, Path] = {name: root / name for name in zoo}
        real = None
        teacher_sets: dict[str, Any] = {}
        for name, spec in zoo.items():
            G = _load_finished(root / name, device)
            if G is not None:
                models[name], sources[name] = G, f"loaded from {root / name}"
                continue
            if not train_missing:
                say(f"{name}: no finished checkpoint in {root / name}; left out")
                continue
            say(f"{name}: no finished checkpoint in {root / name}; training it now ({profile} profile)")
            real = real if real is not None else data.load_dataset(chapter, train=True)
            if spec.recipe.get("kd") == "blackbox" and spec.teacher not in teacher_sets:
                ckpt = root / spec.teacher / "G.safetensors"
                teacher_sets[spec.teacher] = data.load_shards(
                    experiments.export_cifar10_teacher(ckpt, profile, seed, device, progress)["folder"])
            G, _ = experiments.train_or_load(spec, cfg, real, root, models, device, progress=progress,
                                             teacher_sets=teacher_sets)
            models[name], sources[name] = G, f"trained now ({profile} profile)"
        specs = dict(zoo)
        if chapter == "cifar10" and "cgan_teacher" in models:
            name = "tinygan_student"
            specs[name] = experiments.Spec(name, "cifar10", "kd", None, None, label="TinyGAN student (KD)")
            run_dir = paths.results_dir("05_tinygan", "runs", f"{profile}-seed{seed}", "tinygan_cifar10")
            run_dirs[name] = run_dir
            G = _load_finished(run_dir, device)
            if G is not None:
                models[name], sources[name] = G, f"loaded from {run_dir}"
            elif train_missing:
                say(f"{name}: no finished checkpoint in {run_dir}; distilling it now ({profile} profile)")
                ts = experiments.cifar10_teacher_set(profile, seed, device, progress=progress)
                cfg5 = distill.profile_config(profile, ts["folder"], name="tinygan_cifar10", device=str(device),
                                              train={"seed": seed}, out=str(run_dir))
                real = real if real is not None else data.load_dataset(chapter, train=True)
                models[name] = distill.train_or_load(cfg5, real=real, progress=progress, device=str(device))["G"]
                sources[name] = f"trained now ({profile} profile)"
        out[chapter] = {"models": models, "specs": specs, "sources": sources, "run_dirs": run_dirs}
    return out


# ------------------------------------------------------------------ REPORT.md

CHAPTERS: tuple[tuple[str, str, str], ...] = (
    ("01_biggan", "01 · BigGAN-deep from TF-Hub", "BigGAN-deep 128 samples, truncation sweep and interpolation."),
    ("03_mnist", "03 · MNIST: DCGAN teachers and students",
     "IITGN pair (feature-MSE KD) and Columbia conditional DCGAN (pixel-L1 KD); students from scratch and with KD."),
    ("04_cifar10", "04 · CIFAR-10: class-conditional teacher and lightweight students",
     "ResNet cGAN teacher (hinge, EMA, DiffAugment); students from scratch and by black-box KD from the "
     "exported teacher set."),
    ("05_tinygan", "05 · TinyGAN distillation",
     "TinyGAN student distilled from a teacher's exported set (pixel, adversarial and D-feature losses)."),
    ("06_compare", "06 · Every model, one evaluation pipeline",
     "Size, speed and quality of every model of chapters 03-05 under the same protocol."),
    ("07_compress", "07 · Beyond KD: pruning, quantization, ONNX",
     "Structured pruning with a KD fine-tune, fp16 and int8 files, ONNX Runtime against torch."),
)


def _rel(p: Path, base: Path) -> str:
    return p.relative_to(base).as_posix() if p.is_relative_to(base) else p.as_posix()


def _paragraph(folder: Path, metrics: dict[str, Any]) -> str:
    prof = metrics.get("profile", "?")
    bits = [f"Run in the **{prof}** profile on **{metrics.get('device', '?')}** (seed {metrics.get('seed', '?')})."]
    if prof != "full":
        bits.append(f"**Not a result:** the {prof} profile only shows that the pipeline runs; "
                    "rerun with `PROFILE = \"full\"` on a GPU for the report's numbers.")
    for proto in metrics.get("protocols", []):
        note = proto.get("note")
        desc = (f"Protocol `{proto['metrics'].get('fid', '?')}`: {proto.get('n_samples')} samples, "
                f"{proto.get('extractor')} features, reference {proto.get('reference')} "
                f"({proto.get('n_reference')} images)")
        if proto.get("classifier_test_accuracy") is not None:
            desc += f", evaluator classifier test accuracy {proto['classifier_test_accuracy']:.2%}"
        bits.append(desc + "." + (f" {note}." if note else ""))
    skipped = metrics.get("skipped") or []
    for s in skipped:
        bits.append(f"Skipped: {s.get('what')} ({s.get('why')}).")
    return " ".join(bits)


def write_report(results: str | Path | None = None) -> Path:
    """Write ``results/REPORT.md`` from what the chapters saved; returns its path.

    Each chapter with a ``metrics.json`` gets a paragraph (what ran, profile,
    device, protocol, skips), its tables and its figures (PNG links; the PDFs sit
    beside them). Chapters that did not run are listed as such.
    """
    base = Path(results) if results is not None else paths.results_root()
    lines = ["# gankd report", "",
             f"Written by notebooks 06 and 07 (`report.write_report`) on {time.strftime('%Y-%m-%d %H:%M')} from "
             "the files under `results/`. "
             "Every FID-like number is named by its protocol: `*_mnistcls` / `*_cifar10cls` use the project's own "
             "classifiers (not comparable with published FIDs); `*_inception_*` uses pytorch-fid's Inception "
             "weights.", ""]
    profiles = set()
    for folder_name, title, what in CHAPTERS:
        folder = base / folder_name
        lines += [f"## {title}", "", what, ""]
        mfile = folder / "metrics.json"
        if not mfile.exists():
            lines += ["_Not run (no `metrics.json`)._" if not folder.exists() else
                      "_Ran without writing `metrics.json` (see the executed notebook)._", ""]
            if folder.exists():
                lines += [f"![{p.stem}]({_rel(p, base)})" for p in sorted(folder.glob("*.png"))] + [""]
            continue
        m = json.loads(mfile.read_text())
        profiles.add(m.get("profile"))
        lines += [_paragraph(folder, m), ""]
        for table in sorted(folder.glob("table*.md")):
            lines += [f"**{table.stem}** ([CSV]({_rel(table.with_suffix('.csv'), base)}))", "",
                      table.read_text().strip(), ""]
        figs = sorted(folder.glob("*.png"))
        lines += [f"![{p.stem}]({_rel(p, base)})" for p in figs] + [""]
    if profiles - {"full"}:
        lines.insert(2, f"> **Profiles in this report: {', '.join(sorted(p for p in profiles if p))}.** Only "
                        "`full`-profile numbers are results; the others show the pipeline.")
        lines.insert(3, "")
    out = base / "REPORT.md"
    from .io import atomic_write_text

    atomic_write_text(out, "\n".join(lines).rstrip() + "\n")
    return out
