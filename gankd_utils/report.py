"""``results/REPORT.md``: every chapter's tables and figures on one page (it reads files; it never trains).

:func:`write_report` gathers every chapter's ``metrics.json``, tables and
figures into one Markdown page with a paragraph per chapter that says what ran,
in which profile and on which device. A profile other than ``full`` is flagged
on the page: smoke and quick numbers show the pipeline, not results.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from . import paths
from .io import atomic_write_text

# ------------------------------------------------------------------ REPORT.md

REPORT_SECTIONS: tuple[tuple[str, str, str], ...] = (
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
    if metrics.get("convergence_note"):
        bits.append(metrics["convergence_note"])
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
    for folder_name, title, what in REPORT_SECTIONS:
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
        for table in sorted(t for t in folder.glob("table*.md") if not t.stem.endswith("_full")):
            lines += [f"**{table.stem}** ([CSV]({_rel(table.with_suffix('.csv'), base)}))", "",
                      table.read_text().strip(), ""]
        figs = sorted(folder.glob("*.png"))
        lines += [f"![{p.stem}]({_rel(p, base)})" for p in figs] + [""]
    if profiles - {"full"}:
        lines.insert(2, f"> **Profiles in this report: {', '.join(sorted(p for p in profiles if p))}.** Only "
                        "`full`-profile numbers are results; the others show the pipeline.")
        lines.insert(3, "")
    out = base / "REPORT.md"
    atomic_write_text(out, "\n".join(lines).rstrip() + "\n")
    return out
