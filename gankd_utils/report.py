"""``REPORT.md``: every chapter's tables and figures on one page (it reads files; it never trains).

:func:`write_report` gathers every chapter's ``metrics.json``, tables and
figures into one Markdown page with a paragraph per chapter that says what ran,
in which profile and on which device. A profile other than ``full`` is flagged
on the page: smoke and quick numbers show the pipeline, not results. The full
run's report is ``results/REPORT.md``; a smoke or quick walk writes its own,
``results/<profile>/REPORT.md``, from the chapters beside it.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from . import checkpoint, evaluation, paths, tables, weights
from .data import FULL_SIZES
from .io import atomic_write_text

# ------------------------------------------------------------------ REPORT.md

REPORT_SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("01_biggan", "01 · BigGAN-deep from TF-Hub", "BigGAN-deep 128 samples, truncation sweep and interpolation."),
    ("03_mnist", "03 · MNIST: DCGAN teachers and students",
     "IITGN pair (feature-MSE KD) and Columbia conditional DCGAN (pixel-L1 KD); students from scratch and with KD, "
     "and the c=64 and c=32 students by distillation alone (the Columbia recipe without its adversarial term)."),
    ("04_cifar10", "04 · CIFAR-10: class-conditional teacher and lightweight students",
     "ResNet cGAN teacher (hinge, EMA, DiffAugment); students from scratch and by black-box KD from the "
     "exported teacher set."),
    ("05_tinygan", "05 · TinyGAN distillation",
     "TinyGAN student distilled from a teacher's exported set (pixel, adversarial and D-feature losses)."),
    ("06_compare", "06 · Every model, one evaluation pipeline",
     "Size, speed and quality of every model of chapters 03-05 under the same protocol: seed 0 of each model (the run "
     "that ships). Chapter 03's table gives each MNIST student's mean and spread over its seeds, so its numbers "
     "differ from these (most where a seed collapsed)."),
    ("07_compress", "07 · Beyond KD: pruning, quantization, ONNX",
     "Structured pruning with a KD fine-tune, fp16 and int8 files, ONNX Runtime against torch."),
)


# The quality bars, each read from a chapter's metrics.json: (chapter, bar, model or None for the
# evaluator classifier, protocol metric, target). Accuracy targets are shares; "at least" for every one.
BARS: tuple[tuple[str, str, str | None, str, float], ...] = (
    ("03_mnist", "MNIST evaluator classifier: test accuracy", None, "classifier", 0.99),
    ("04_cifar10", "CIFAR-10 evaluator classifier: test accuracy", None, "classifier", 0.90),
    ("03_mnist", "cDCGAN c=512 teacher: class accuracy", "cdcgan_c512_teacher", "acc", 0.97),
    ("03_mnist", "cDCGAN c=64 KD student: class accuracy", "cdcgan_c64_kd", "acc", 0.90),
    ("03_mnist", "cDCGAN c=32 KD student: class accuracy", "cdcgan_c32_kd", "acc", 0.90),
    ("03_mnist", "cDCGAN c=64 KD student by distillation alone: class accuracy", "cdcgan_c64_distill", "acc", 0.90),
    ("03_mnist", "cDCGAN c=32 KD student by distillation alone: class accuracy", "cdcgan_c32_distill", "acc", 0.90),
    ("04_cifar10", "CIFAR-10 teacher: class accuracy", "cgan_teacher", "acc", 0.60),
)
MNIST_SEEDS = 3  # the MNIST students' seeds the issue asks for, so that KD vs scratch has a spread
CHAPTER_DATASET = {"03_mnist": "mnist", "04_cifar10": "cifar10"}  # the chapters whose models ship, by dataset


def _metrics(base: Path, chapter: str) -> dict[str, Any] | None:
    f = base / chapter / "metrics.json"
    return json.loads(f.read_text()) if f.exists() else None


def _classifier_protocol(m: dict[str, Any]) -> dict[str, Any] | None:
    return next((p for p in m.get("protocols", []) if p.get("classifier_test_accuracy") is not None), None)


def _bar_row(bar: str, target: str, measured: str, met: bool | None, m: dict[str, Any] | None,
             chapter: str) -> dict[str, str]:
    if m is None:
        return {"bar": bar, "target": target, "measured": "-", "verdict": "not measured yet", "from": chapter}
    verdict = "n/a" if met is None else "met" if met else "missed"
    if m.get("profile") != "full":
        verdict += f" ({m.get('profile')} profile: not a result)"
    return {"bar": bar, "target": target, "measured": measured, "verdict": verdict,
            "from": f"{chapter} ({m.get('profile')}, {m.get('machine') or m.get('device')})"}


def _shipped_classifier(chapter: str, root: Path) -> tuple[float, str] | None:
    """The evaluator classifier of ``chapter``'s dataset shipped in ``root``: (test accuracy, its source), or None."""
    dataset = CHAPTER_DATASET[chapter]
    m = weights.manifest(root)
    if m is None or not weights.has(dataset, "classifier", root) or m.get("profile") != "full":
        return None
    entry = m["models"][f"{dataset}/classifier"]
    part = weights.parts_of(dataset, "classifier", root)[0]
    side = checkpoint.read_sidecar(weights.path(dataset, "classifier", part, root))
    if not isinstance(side.get("test_accuracy"), (int, float)):
        return None
    return float(side["test_accuracy"]), f"{_shipped_from(m, entry)})"


def _shipped_from(m: dict[str, Any], entry: dict[str, Any]) -> str:
    """The start of a shipped model's source: its profile and the machine that trained it (closed by the caller)."""
    return f"shipped weights ({m['profile']}, {entry.get('device') or m.get('device') or '?'}"


def _shipped_score(chapter: str, model: str, metric: str, root: Path) -> tuple[float, str] | None:
    """``metric`` (``"acc"``) of ``chapter``'s model as shipped in ``root`` by a full run: the score its
    ``quality.json`` holds for the generator shipped (the step the run kept, else its last), with its source; None
    when the model is not shipped from a full run or its shipped step was not scored."""
    dataset = CHAPTER_DATASET.get(chapter)
    m = weights.manifest(root)
    if dataset is None or m is None or m.get("profile") != "full" or not weights.has(dataset, model, root):
        return None
    entry = m["models"][f"{dataset}/{model}"]
    f = weights.quality_file(weights.path(dataset, model, "G", root).parent, root)
    step = entry.get("kept_step") or entry.get("steps")
    if f is None or step is None:
        return None
    point = next((p for p in json.loads(f.read_text()).get("points", []) if p.get("step") == step), {})
    key = next((k for k in sorted(point) if re.fullmatch(rf"{metric}\d+k?_\w+", k)), None)
    if key is None or not isinstance(point[key], (int, float)):
        return None
    where = f"{_shipped_from(m, entry)}; step {step:,}"
    if entry.get("steps") not in (None, step):
        where += f" of {entry['steps']:,}"
    return float(point[key]), f"{where}, `{key}`)"


def trained_on_subset(root: Path | None = None) -> list[str]:
    """The models shipped from a full run whose training data held fewer images than their data set's whole
    training split (a data root with a class-balanced subset, say on a machine that could not hold it all), as
    ``"`dataset/model` (N of M images)"``: their scores are not the full run's, whatever data scored them.
    Models whose training record does not say how many images it saw are not listed."""
    m = weights.manifest(root)
    if m is None or m.get("profile") != "full":
        return []
    out = []
    for key, entry in sorted(m.get("models", {}).items()):
        whole = FULL_SIZES.get(f"{entry.get('dataset')}-train")
        held = [s["images"] for s in (entry.get("training") or {}).get("segments") or []
                if isinstance(s.get("images"), int)]
        fewest = min(held, default=None)
        if whole and fewest is not None and fewest < whole:
            out.append(f"`{key}` ({fewest:,} of {whole:,} images)")
    return out


def _folders(results: str | Path | None, profile: str) -> tuple[Path, Path]:
    """The results folder a report reads (``results``, else ``profile``'s folder) and the shipped weights that go
    with it: GANKD_WEIGHTS (or results/weights) for the results root in use and its profile folders, else the
    folder's own ``weights/``."""
    if results is None:
        return paths.profile_root(profile), weights.weights_root()
    base = Path(results)
    ours = base.resolve() == paths.results_root().resolve() or _profile_folder(base)
    return base, weights.weights_root() if ours else base / "weights"


def _profile_folder(base: Path) -> bool:
    """True for a profile's own folder of the results root in use (``results/quick/``)."""
    return base.resolve().parent == paths.results_root().resolve()


def quality_bars(results: str | Path | None = None, profile: str = "full") -> list[dict[str, str]]:
    """The quality bars the report is held to, one row each: target, measured value, met or missed, source.

    Read from the chapters' ``metrics.json`` in ``results`` (else in ``profile``'s results folder); a chapter
    that has not run says "not measured yet", and a number from a profile other than ``full`` is labelled as not
    a result. An evaluator classifier shipped with the full run's weights is read from there (every profile
    scores with it); so is a model's bar where its chapter has no full result but a full run shipped the model
    with its scored snapshots (the score of the generator shipped).
    """
    base, wroot = _folders(results, profile)
    rows = []
    for chapter, bar, model, metric, target in BARS:
        m = _metrics(base, chapter)
        # the full run's own classifier: its accuracy is a result whatever the chapter ran; a model shipped by the
        # full run, scored there: a result where this chapter has none
        shipped = (_shipped_classifier(chapter, wroot) if model is None
                   else _shipped_score(chapter, model, metric, wroot) if (m or {}).get("profile") != "full" else None)
        if shipped is not None:
            value, where = shipped
            rows.append({"bar": bar, "target": f">= {target:.0%}", "measured": f"{value:.2%}",
                         "verdict": "met" if value >= target else "missed", "from": where})
            continue
        proto = _classifier_protocol(m) if m else None
        value = None
        if proto is not None and model is None:
            value = proto["classifier_test_accuracy"]
        elif proto is not None:
            value = (m.get("models", {}).get(model) or {}).get(proto["metrics"].get(metric))
        shown = "-" if value is None else f"{value:.2%}"
        rows.append(_bar_row(bar, f">= {target:.0%}", shown, None if value is None else value >= target, m, chapter))
    # the CIFAR-10 teacher's classifier-FID below every student's (chapter 04's students and chapter 05's)
    for chapter in ("04_cifar10", "05_tinygan"):
        m = _metrics(base, chapter)
        proto = _classifier_protocol(m) if m else None
        fid = proto["metrics"].get("fid") if proto else None
        models = (m or {}).get("models", {})
        teacher = (models.get("cgan_teacher") or {}).get(fid) if fid else None
        students = {k: r.get(fid) for k, r in models.items() if r.get("role") != "teacher" and r.get(fid) is not None}
        best = min(students, key=students.get) if students else None
        known = teacher is not None and best is not None
        shown = f"teacher {teacher:.3g}; best student {best} {students[best]:.3g}" if known else "-"
        met = teacher < students[best] if known else None
        rows.append(_bar_row(f"CIFAR-10 teacher: classifier-FID below every student's ({chapter[:2]})",
                             "teacher < every student", shown, met, m, chapter))
    m = _metrics(base, "03_mnist")
    seeds = [r.get("seeds") for r in (m or {}).get("models", {}).values() if r.get("role") != "teacher"]
    rows.append(_bar_row("MNIST students: seeds each (mean and spread)", f">= {MNIST_SEEDS}",
                         "-" if not seeds else f"{min(seeds)}", None if not seeds else min(seeds) >= MNIST_SEEDS,
                         m, "03_mnist"))
    # KD against scratch: no target, reported whatever its sign
    for chapter in ("03_mnist", "04_cifar10"):
        m = _metrics(base, chapter)
        for g in (m or {}).get("kd_gap_closed", []):
            share = g.get("gap_closed")  # None where there is no gap to close (evaluation.kd_gap_closed's note)
            shown = f"{share:+.2f}" if share is not None else f"- ({g.get('note') or 'no gap to close'})"
            rows.append(_bar_row(f"{g['student']}: share of the scratch-to-teacher gap KD closed",
                                 "reported, whatever its sign", shown, None, m, chapter))
    return rows


def _rel(p: Path, base: Path) -> str:
    return p.relative_to(base).as_posix() if p.is_relative_to(base) else p.as_posix()


def _seeds_said(metrics: dict[str, Any]) -> str:
    """What the chapter's scores are: the mean over several seeds (:func:`evaluation.mean_over_seeds`'s ``seeds``)
    with its spread, or one seed's run of each model."""
    seed = metrics.get("seed", "?")
    seeds = [r.get("seeds") for r in (metrics.get("models") or {}).values()
             if isinstance(r, dict) and isinstance(r.get("seeds"), int)]
    if max(seeds, default=1) <= 1:
        return f" Each model's scores are its seed-{seed} run's."
    many = sorted({n for n in seeds if n > 1}, reverse=True)
    counts = " or ".join(str(n) for n in many)
    one = " (a model with one seed, such as a teacher: that run's scores)" if 1 in seeds else ""
    kept = " under `per_seed`" if metrics.get("per_seed") else ""
    return (f" Each model's scores are the mean over its {counts} seeds{one}, with their "
            f"spread in the `*_std` columns (sample standard deviation over seeds); each seed's own scores are in "
            f"this chapter's `metrics.json`{kept}.")


def _paragraph(folder: Path, metrics: dict[str, Any], shipped: frozenset[str] = frozenset()) -> str:
    """What a chapter ran, where and with what, from its ``metrics``; ``shipped``: the shipped models' keys (a model
    the chapter left out that has shipped since is named as such, with the remedy)."""
    prof = metrics.get("profile", "?")
    where = metrics.get("machine") or metrics.get("device", "?")
    bits = [f"Run in the **{prof}** profile on **{where}**." + _seeds_said(metrics)]
    if metrics.get("cpu") and metrics["cpu"] != where:
        bits.append(f"CPU timings on {metrics['cpu']}.")
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
        whole = FULL_SIZES.get(str(proto.get("reference")))
        if prof == "full" and whole and isinstance(proto.get("n_reference"), int) and proto["n_reference"] < whole:
            bits.append(f"**On a subset:** the data held {proto['n_reference']:,} of the {whole:,} images of "
                        f"{proto['reference']}: the scores use that subset as their reference, and whatever trained on "
                        "real images in this run trained on it too"
                        + (" (the teacher set was cut to its size, so that KD and scratch students trained as many "
                           "steps)." if str(proto["reference"]).startswith("cifar10") else "."))
    if metrics.get("amounts"):  # chapter 07: what was pruned, and how it was fine-tuned
        floor = f" (no layer under {metrics['min_channels']} channels)" if metrics.get("min_channels") else ""
        bits.append(f"Channel pruning by {' / '.join(f'{a:.0%}' for a in metrics['amounts'])}{floor}, each followed "
                    f"by {metrics.get('finetune_steps', '?')} KD fine-tune steps"
                    + (" (distillation alone: no adversarial term)" if metrics.get("finetune_adversarial") is False
                       else "")
                    + (f"; CPU timings with {metrics['cpu_threads']} threads." if metrics.get("cpu_threads") else "."))
    if metrics.get("left_out"):
        since = [k for k in metrics["left_out"] if k in shipped]
        still = [k for k in metrics["left_out"] if k not in shipped]
        if still:
            bits.append(f"**Partial:** left out, as not trained yet: {', '.join(still)}.")
        if since:
            bits.append(f"**Partial:** left out, as not trained when the chapter ran, and shipped since: "
                        f"{', '.join(since)} (run the chapter again to include {'it' if len(since) == 1 else 'them'}).")
    if metrics.get("convergence_note"):
        bits.append(metrics["convergence_note"])
    # said again from the runs it names (evaluation.collapse_note), so that its words say where each seed's scores are
    collapse = (evaluation.collapse_note(metrics["collapsed"]) if isinstance(metrics.get("collapsed"), list)
                else metrics.get("collapse_note"))
    if collapse:
        bits.append(collapse)
    left_out = set(metrics.get("left_out") or [])  # named once, in the sentence above
    skipped = [s for s in metrics.get("skipped") or [] if s.get("what") not in left_out]
    for what, why in dict.fromkeys((s.get("what"), s.get("why")) for s in skipped):  # once each (06 has 2 datasets)
        bits.append(f"Skipped: {what} ({why}).")
    return " ".join(bits)


def _ran(folder: Path, base: Path) -> bool:
    """Whether a chapter without ``metrics.json`` ran: its folder holds outputs besides ``runs/`` (the training
    runs, which other chapters and commands write there too), or the chapter's executed notebook is under
    ``base/executed/``."""
    outputs = folder.is_dir() and any(p.name != "runs" for p in folder.iterdir())
    return outputs or any((base / "executed").glob(f"{folder.name[:2]}_*.ipynb"))


def _protocol_said(table: Path, metrics: dict[str, Any]) -> str:
    """For a table whose quality column is a bare ``fid`` (chapter 07's steps, one table per student): the protocol
    it was measured with, from the dataset its name holds (``table_mnist_...``); for ``targets``, that each
    student's FID is its dataset's. "" for the other tables, whose columns name their protocol."""
    protos = {p["metrics"]["fid"]: str(p.get("reference", "")) for p in metrics.get("protocols", [])
              if isinstance(p.get("metrics"), dict) and p["metrics"].get("fid")}
    if table.stem == "targets":  # study.INT8_TARGET: an older table's wording names neither batch size
        said = ("the chapter's verdict on its targets (the int8 target asks for 2x at batch 1 and at batch 64 "
                "alike)")
        return said + ("; each FID is measured with the student's dataset's protocol ("
                       + ", ".join(f"`{fid}`" for fid in protos) + ")" if protos else "")
    header = table.read_text().split("\n", 1)[0]
    if "| fid |" not in header:
        return ""
    words = table.stem.split("_")
    found = [fid for fid, ref in protos.items() if ref.split("-")[0] in words]
    return f"`fid` is `{found[0]}` (the protocol above)" if found else ""


def write_report(results: str | Path | None = None, profile: str = "full") -> Path:
    """Write ``REPORT.md`` from what the chapters saved in ``results`` (else in ``profile``'s results folder:
    ``results/`` for full, ``results/<profile>/`` for the others); returns its path.

    Each chapter with a ``metrics.json`` gets a paragraph (what ran, profile,
    device, protocol, skips), its tables and its figures (PNG links; the PDFs sit
    beside them). Chapters that did not run are listed as such.
    """
    base, wroot = _folders(results, profile)
    try:
        shown = "results/" + base.resolve().relative_to(paths.results_root().resolve()).as_posix()
    except ValueError:
        shown = base.name
    shown = shown.rstrip("/.") + "/"
    lines = ["# gankd report", "",
             f"Written by `report.write_report` (notebooks 06 and 07 call it, as does `python -m gankd_utils "
             f"report`) on {time.strftime('%Y-%m-%d %H:%M')} from "
             f"the files under `{shown}`. "
             "Every FID-like number is named by its protocol: `*_mnistcls` / `*_cifar10cls` use the project's own "
             "classifiers (not comparable with published FIDs); `*_inception_*` uses pytorch-fid's Inception "
             "weights.", ""]
    bars = quality_bars(base)
    lines += ["## Quality bars", "",
              "What the report is held to, measured by the project's own evaluators (a row per bar; KD's effect "
              "is reported whatever its sign: 1 = as good as the teacher, 0 = no better than scratch, "
              "negative = worse).", "", tables.markdown_table(bars), ""]
    profiles, waiting, partial = set(), [], []
    shipped = frozenset(weights.available(root=wroot))  # read once: a left-out model shipped since is named so
    for folder_name, title, what in REPORT_SECTIONS:
        folder = base / folder_name
        lines += [f"## {title}", "", what, ""]
        mfile = folder / "metrics.json"
        if not mfile.exists():
            waiting.append(title.split(" · ")[0])
            ran = _ran(folder, base)
            lines += ["_Not run (no `metrics.json`)._" if not ran else
                      "_Ran without writing `metrics.json` (see the executed notebook)._", ""]
            if ran:
                lines += [f"![{p.stem}]({_rel(p, base)})" for p in sorted(folder.glob("*.png"))] + [""]
            continue
        m = json.loads(mfile.read_text())
        profiles.add(m.get("profile"))
        if m.get("left_out"):
            partial.append(title.split(" · ")[0])
        lines += [_paragraph(folder, m, shipped), ""]
        verdict = [folder / "targets.md"] if (folder / "targets.md").exists() else []  # chapter 07's targets
        for table in verdict + sorted(t for t in folder.glob("table*.md") if not t.stem.endswith("_full")):
            said = _protocol_said(table, m)
            head = f"**{table.stem}** ([CSV]({_rel(table.with_suffix('.csv'), base)}))"
            lines += [head + (f": {said}" if said else ""), "", table.read_text().strip(), ""]
        figs = sorted(folder.glob("*.png"))
        lines += [f"![{p.stem}]({_rel(p, base)})" for p in figs] + [""]
    subset = trained_on_subset(wroot)
    if subset:
        lines.insert(2, f"> **Trained on a subset:** {', '.join(subset)}: each trained on part of its training set "
                        "(its data root held a class-balanced subset), so its numbers are not the full run's.")
        lines.insert(3, "")
    if partial:
        lines.insert(2, f"> **Partial: chapters {', '.join(partial)}**: they leave out models not trained yet (their "
                        "sections name them).")
        lines.insert(3, "")
    if waiting:
        lines.insert(2, f"> **Not in this report yet: chapters {', '.join(waiting)}** (no `metrics.json`: not run, "
                        "or run without writing one). Their sections below say so, and their quality bars read "
                        "\"not measured yet\".")
        lines.insert(3, "")
    if _profile_folder(base):
        lines.insert(2, f"> This is the **{base.name}** walk's report, kept apart from the `full` run's: that one is "
                        "`results/REPORT.md`, with its chapters beside it.")
        lines.insert(3, "")
    if profiles - {"full"}:
        lines.insert(2, f"> **Profiles in this report: {', '.join(sorted(p for p in profiles if p))}.** Only "
                        "`full`-profile numbers are results; the others show the pipeline.")
        lines.insert(3, "")
    out = base / "REPORT.md"
    atomic_write_text(out, "\n".join(lines).rstrip() + "\n")
    return out
