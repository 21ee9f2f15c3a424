"""Scoring a set of models with one pipeline, and the ``metrics.json`` every chapter saves.

- :func:`evaluators`: a chapter's evaluation pipelines: the project's own classifier
  (works offline; its FID is not comparable with published ones), plus pytorch-fid's
  Inception network when its weights can be had (else the skip is recorded and said).
- :func:`evaluate_models`: one row per generator: size, compression against its
  family's teacher, every evaluator's metrics, and speed measured for all models
  together (:func:`metrics.speed_table`: interleaved rounds, fixed threads, spread).
- :func:`kd_gap_closed`: the share of the scratch-to-teacher gap each KD student closed.
- :func:`save_chapter_metrics`: ``<chapter folder>/metrics.json`` (:func:`paths.chapter_dir`) with the profile,
  seed, device, protocols and skips that REPORT.md reads.
"""
from __future__ import annotations

import copy
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from . import checkpoint, data, metrics, paths, repro, runlog, runs, tables, train, viz, weights
from .config import Settings
from .io import atomic_write_text
from .runs import Trained, base_name, planned_steps, train_or_load
from .zoo import Entry, family_teacher, scratch_twin


def evaluator_classifier(settings: Settings, device="auto", weights_: str = "auto",
                         say=print) -> metrics.ClassifierExtractor:
    """The evaluator classifier of ``settings.dataset``: the shipped one of the full run, or the profile's own.

    With ``weights_`` "auto" (where shipped) or "shipped", every profile scores with the
    full run's classifier (sha256-checked), so its numbers are measured as the report's are;
    otherwise the profile's classifier is trained once and cached (``metrics.get_classifier``).
    """
    ds, ev = settings.dataset, settings.eval
    if weights.resolve(weights_, ds, "classifier") == "shipped":
        part = weights.parts_of(ds, "classifier")[0]
        clf = metrics.load_classifier(weights.path(ds, "classifier", part), device)
        say(f"Evaluator classifier: the full run's, shipped ({paths.shown(weights.weights_root())}), "
            f"test accuracy {clf.test_accuracy:.2%}.")
        return clf
    return metrics.get_classifier(ds, epochs=ev.cls_epochs, n_train=ev.cls_n_train, width=ev.cls_width,
                                  device=device, seed=settings.seed)


def evaluators(settings: Settings, real: data.ImageSet, device="auto", where: str = "",
               reference: str | None = None, classifier: bool = True, say=print,
               weights_: str = "auto") -> list[metrics.Evaluator]:
    """The evaluation pipelines of a chapter on ``real`` (the reference set).

    ``classifier``: the project's own ``settings.dataset`` classifier (:func:`evaluator_classifier`: the
    shipped one, or trained once and cached); Inception FID / IS are added when pytorch-fid's
    weights are available, else the skip is recorded under ``where`` and ``say`` tells the
    user. ``reference``: the Inception protocol's reference name (default ``<dataset>train``).
    ``weights_``: the notebook's ``WEIGHTS`` (auto | shipped | train).
    """
    ev = settings.eval
    out = []
    if classifier:
        clf = evaluator_classifier(settings, device, weights_, say)
        out.append(metrics.Evaluator(clf, real, ev.n_samples, seed=settings.seed, batch_size=ev.batch_size,
                                     n_ref=ev.n_ref))
    try:
        out.append(metrics.Evaluator(metrics.InceptionExtractor(device), real, ev.n_samples, seed=settings.seed,
                                     reference=reference or f"{settings.dataset}train", batch_size=100,
                                     n_ref=ev.n_ref))
    except metrics.WeightsUnavailable as e:
        say(runlog.note_skipped(where, "Inception FID / IS", str(e)))  # the message says how to enable it
    return out


def metric_columns(evs: Sequence[metrics.Evaluator]) -> list[str]:
    """Every protocol column the evaluators fill (class accuracy only from classifiers)."""
    cols: list[str] = []
    for ev in evs:
        cols += [v for k, v in ev.names().items() if k != "acc" or ev.extractor.name != "inception"]
    return cols


def evaluate_models(models: Mapping[str, nn.Module], entries: Mapping[str, Entry], evs: Sequence[metrics.Evaluator],
                    speed_batch: int = 64, rounds: int = 10, threads: int | None = None,
                    progress: bool = True, budget_s: float | None = None) -> list[dict[str, Any]]:
    """One row per model: size, compression against its family's teacher, every evaluator's metrics, speed.

    Every model is scored by the same evaluators (same samples, features and reference).
    CPU speed is measured for all models together on the CPU (on copies); GPU throughput where
    a model sits on a GPU (every model timed there, then left where it was). ``rounds`` and ``budget_s``:
    how long each model is timed (:func:`metrics.speed_table`; the profile's ``timing_repeats`` and
    ``timing_budget_s``).
    """
    rows = []
    cols = metric_columns(evs)
    read_before = sum(ev.kept_scores_read for ev in evs)
    for name, G in tqdm(list(models.items()), desc="evaluate", disable=not progress, leave=False):
        e = entries[base_name(name)]  # "name@seed": another seed of the same model
        t_name = family_teacher(entries, e.name)
        size = metrics.size_report(G)
        row: dict[str, Any] = {"model": name, "family": e.family, "role": e.role, "params": size["params"],
                               "nonzero_params": size["nonzero_params"], "mb_fp32": size["mb_fp32"],
                               "mb_fp16": size["mb_fp16"], "mb_int8": size["mb_int8"],
                               "compression_x": (metrics.count_params(models[t_name]) / size["params"]
                                                 if t_name in models else None),
                               "macs_m": size["macs"] / 1e6}
        row.update({c: None for c in cols})
        for ev in evs:
            got = ev(G)
            if not getattr(G, "n_classes", 0):
                got = {k: v for k, v in got.items() if not k.startswith("acc")}
            row.update(got)
        rows.append(row)
    read = sum(ev.kept_scores_read for ev in evs) - read_before
    if read and progress:
        print(f"{read} of {len(models) * len(evs)} scorings read from {paths.shown(metrics.scorecache.folder())}: "
              "the same generators, scored by the same pipeline before (delete that folder to score them again).")
    cpu = metrics.speed_table({n: copy.deepcopy(G).cpu() for n, G in models.items()}, "cpu", speed_batch, rounds,
                              threads=threads, budget_s=budget_s)
    gpu_dev = _timing_gpu(models)
    gpu = {}
    if gpu_dev is not None:
        with _left_as_they_are(models):  # speed_table moves them to the GPU; the caller's stay where they were
            gpu = metrics.speed_table(dict(models), gpu_dev, 1024, rounds, budget_s=budget_s)
    for row in rows:
        c = cpu[row["model"]]
        row.update(cpu_latency_ms_b1=c["ms_b1"], cpu_latency_spread_pct=c["ms_b1_spread_pct"],
                   cpu_img_per_s=c["img_per_s"], gpu_img_per_s=gpu.get(row["model"], {}).get("img_per_s"))
    return rows


def _timing_gpu(models: Mapping[str, nn.Module]) -> torch.device | None:
    """The GPU :func:`evaluate_models` times the models on: the first a model sits on, else None (no GPU timing)."""
    devices = {next(G.parameters()).device for G in models.values()}
    return next((d for d in devices if d.type == "cuda"), None)


@contextmanager
def _left_as_they_are(models: Mapping[str, Any]):
    """Puts every torch module of ``models`` back as it was on leaving: its very parameter, gradient and buffer
    tensors (device, dtype, memory layout) and every submodule's train / eval mode.

    :func:`metrics.speed_table` moves the modules it times to its device, in place: a notebook's teacher kept on
    the CPU would sit on the GPU afterwards. Deep copies would hold a second copy of a large teacher on the
    host; the tensors kept here are the ones the modules held already (nothing is copied, nor copied back).
    """
    kept = []
    for G in models.values():
        if not isinstance(G, nn.Module):
            continue
        for m in G.modules():
            params = {k: (p, p.data, p.grad, None if p.grad is None else p.grad.data)
                      for k, p in m._parameters.items() if p is not None}
            kept.append((m, m.training, params, dict(m._buffers)))
    try:
        yield
    finally:
        with torch.no_grad():
            for m, training, params, buffers in kept:
                for k, (p, data, grad, grad_data) in params.items():
                    p.data = data  # the tensor moved in place (Module._apply sets .data) ...
                    if grad is not None:
                        grad.data = grad_data
                    p.grad = grad
                    m._parameters[k] = p  # ... or replaced by a new Parameter
                m._buffers.update(buffers)
                m.training = training


def _missing(x: Any) -> bool:
    """True for a score that is not there: None, or NaN (a score that failed)."""
    return x is None or (isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isnan(x))


def _number(x: Any) -> bool:
    """True for a score: a real number (Python's or NumPy's, not a bool), and not NaN."""
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_)) and not _missing(x)


def mean_over_seeds(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per model from rows of several seeds (``name@seed``): numbers averaged, with ``<col>_std``
    (sample standard deviation over seeds) beside each quality column and ``seeds`` (how many).

    A seed without a number in a column (None or NaN: not scored, or a score that failed) is left out of that
    column's mean and spread, and the row's ``note`` says how many seeds the column holds ("fid...: 2 of 3
    seeds"); a column that only one seed filled gives that seed's number, no spread, and the note says so.
    A column no seed filled is None.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(base_name(r["model"]), []).append(r)
    out = []
    for name, rs in groups.items():
        row: dict[str, Any] = {"model": name, "seeds": len(rs)}
        short: list[str] = []
        for k in dict.fromkeys(k for r in rs for k in r):
            if k in ("model",):
                continue
            vals = [r.get(k) for r in rs]
            nums = [float(x) for x in vals if _number(x)]
            if not nums or any(not _number(x) and not _missing(x) for x in vals):
                row[k] = vals[0]  # words (family, role), or nothing to average
            elif len(nums) == len(rs) and all(x == vals[0] for x in vals):
                row[k] = vals[0]  # the same for every seed (size, compression)
            else:
                row[k] = float(np.mean(nums))
                quality = re.match(r"(fid|kid|acc|precision|recall|is)\d", k)
                if quality and len(nums) > 1:
                    row[f"{k}_std"] = float(np.std(nums, ddof=1))
                if len(nums) < len(rs):
                    short.append(f"{k}: {len(nums)} of {len(rs)} seeds"
                                 + (" (that seed's number, not a mean)" if len(nums) == 1 else ""))
        if short:
            row["note"] = "; ".join(short)
        out.append(row)
    return out


def learning_curves(entries: Mapping[str, Entry], settings: Settings, evaluator: metrics.Evaluator,
                    real: data.ImageSet | None = None, teachers_: Mapping[str, nn.Module] | None = None,
                    teacher_set=None, points: int = 4, device="auto",
                    progress: bool = True) -> dict[str, list[dict[str, Any]]]:
    """KD against scratch early in training: each student trained in ``points`` equal chunks, scored after each.

    Every chunk resumes the run where the last one paused (``max_steps`` is bookkeeping), so
    the last point is the finished run that :func:`runs.train_or_load` loads afterwards.
    Returns ``{name: [{"step": ..., <protocol>: ...}, ...]}`` for every non-teacher entry.
    """
    curves: dict[str, list[dict[str, Any]]] = {}
    for name, e in entries.items():
        if e.role == "teacher":
            continue
        n_items = len(teacher_set) if e.kd == "blackbox" and teacher_set is not None else len(real)
        total = planned_steps(e, settings, n_items)
        marks = sorted({max(1, round(total * (i + 1) / points)) for i in range(points)})
        curves[name] = []
        for k in marks:
            t = train_or_load(e, settings.paused_at(k), real, teachers_, teacher_set, device, progress=progress)
            curves[name].append({"step": t.steps, **evaluator(t.G)})
    return curves


def kept_snapshots(t: Trained) -> list[tuple[int, Path]]:
    """The generators ``t``'s run kept before its last step (``TrainConfig.snapshots``): ``[(step, stem), ...]``."""
    return [(s, stem) for s, stem in train.snapshots(t.run_dir) if s < t.steps]


def saved_curve(t: Trained, evaluator: metrics.Evaluator) -> list[dict[str, Any]] | None:
    """The curve :func:`snapshot_curves` saved for ``t``'s run (``weights.QUALITY``, shipped with its weights)
    when it was scored by this very pipeline (:meth:`metrics.Evaluator.protocol_id`) and ends at the run's
    last step; else None. How a model from the shipped weights, whose snapshots stayed on the machine that
    trained it, still shows whether it had converged."""
    f = weights.quality_file(t.run_dir)  # checked against MANIFEST.json in a shipped model's folder
    if f is None:
        return None
    try:
        saved = json.loads(f.read_text())
        pts = saved["points"]
        ok = (saved.get("protocol") == evaluator.protocol_id() and len(pts) >= 2
              and all(isinstance(p, dict) and isinstance(p.get("step"), int) for p in pts))
    except (ValueError, KeyError, TypeError):
        return None  # a damaged file counts as none: the curve is scored again where snapshots exist
    return pts if ok and pts[-1]["step"] == t.steps else None


def last_generator(t: Trained) -> nn.Module:
    """The generator of ``t``'s last step: ``t.G``, or, where the run hands on one it kept earlier
    (:func:`keep_best`), the copy of its last one among its snapshots."""
    kept = runs.kept_step(t.run_dir)
    if kept is None:
        return t.G
    stem = train.snapshot_path(t.run_dir, t.steps)
    if not stem.with_suffix(".safetensors").exists():
        raise FileNotFoundError(f"{t.run_dir}: G is the generator of step {kept}, but the run's "
                                f"last one ({stem.name}) is gone: train the run again to score its last step")
    return checkpoint.load_model(stem, next(t.G.parameters()).device)


def snapshot_curves(trained: Mapping[str, Trained], evaluator: metrics.Evaluator,
                    progress: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Quality over the whole training: every generator a run kept (``TrainConfig.snapshots``), then the finished one.

    Returns ``{key: [{"step": ..., <protocol>: ...}, ...]}``. Each curve scored is saved in its run folder
    (``weights.QUALITY``, with the pipeline's :meth:`~metrics.Evaluator.protocol_id`), and ships with the
    weights; a run that kept no snapshots (a model loaded from the shipped weights) gives its saved curve
    when that came from the same pipeline (:func:`saved_curve`), else it is left out.
    """
    curves: dict[str, list[dict[str, Any]]] = {}
    kept = {k: kept_snapshots(t) for k, t in trained.items()}
    for key, snaps in tqdm([(k, v) for k, v in kept.items() if v], desc="snapshots", disable=not progress,
                           leave=False):
        t = trained[key]
        device = next(t.G.parameters()).device
        pts = [{"step": s, **evaluator(checkpoint.load_model(stem, device))} for s, stem in snaps]
        curves[key] = pts + [{"step": t.steps, **evaluator(last_generator(t))}]
        atomic_write_text(Path(t.run_dir) / weights.QUALITY, json.dumps(
            {"protocol": evaluator.protocol_id(), "points": curves[key]}, indent=1, default=float) + "\n")
    for key, t in trained.items():
        if key not in curves and (saved := saved_curve(t, evaluator)) is not None:
            curves[key] = saved
    return {k: curves[k] for k in trained if k in curves}


def keep_best(t: Trained, evaluator: metrics.Evaluator, progress: bool = False) -> Trained:
    """The teacher a finished run hands on: of every generator it kept (its snapshots and its last), the one with
    the lowest classifier-FID on ``evaluator``, the chapter's own pipeline (the latest of equals).

    A GAN's quality does not only rise with training: a run can pass its best and fall off (BigGAN's authors
    kept the checkpoints with the best FID for this reason, and a teacher is worth only its samples). The
    run's curve is scored once (:func:`snapshot_curves`, or the one saved by the same pipeline) and ``G``
    becomes the best generator (:func:`runs.keep_generator`: its ``G.json`` says which, by how much, and what
    the last one scored); every later reader (the teacher set, the KD students, the shipped weights, the
    chapter's tables) then takes that one. The choice is made on the same samples that then score it: with
    the 10,000 samples of ``full``, their noise is far below the gaps between a run's generators. A run that
    kept no snapshots (a model from the shipped weights) or has not finished is returned as it is.
    """
    if not t.finished or not kept_snapshots(t):
        return t
    curve = saved_curve(t, evaluator) or snapshot_curves({t.name: t}, evaluator, progress).get(t.name)
    if not curve:
        return t
    fid = evaluator.names()["fid"]
    best = min(curve, key=lambda p: (p[fid], -p["step"]))
    runs.keep_generator(t.run_dir, best["step"], {
        "by": fid, fid: best[fid], "protocol": evaluator.protocol_id(), "of": [p["step"] for p in curve],
        "last": {"step": curve[-1]["step"], fid: curve[-1][fid]}})
    G = checkpoint.load_model(Path(t.run_dir) / "G", next(t.G.parameters()).device)
    return Trained(G, t.name, t.run_dir, t.loaded, t.steps, t.finished, t.config, t.history, t.seconds)


def kept_note(trained: Mapping[str, Trained]) -> str:
    """One sentence per run whose ``G`` is a generator it kept before its last step (:func:`keep_best`), for a
    chapter and REPORT.md; "" when there is none."""
    said = []
    for key, t in trained.items():
        kept = runs.kept_record(t.run_dir)
        if kept is None:
            continue
        step, fid, last = int(kept["step"]), kept.get("by"), kept.get("last", {})
        if fid in kept and fid in last:
            said.append(f"{key} is the generator of step {step:,} of its {t.steps:,}-step run, the best of the "
                        f"{len(kept.get('of', []))} it kept on {fid} ({kept[fid]:.4g}; its last step scored "
                        f"{last[fid]:.4g}); its curve is the whole run's.")
        else:
            said.append(f"{key} is the generator of step {step:,} of its {t.steps:,}-step run.")
    return " ".join(said)


CONVERGED_WITHIN = 0.05
"""A run counts as converged when its metric moved less than this share over its last stretch of training."""

COLLAPSED_RECALL = 0.05
"""A run counts as collapsed when its recall at the end is below this: its samples lie near almost none of
the real images (mode collapse). A full-profile c=32 MNIST student that collapsed ended at recall 0.000 and
chance-level class accuracy; the healthy runs of chapter 03 end between 0.36 and 0.89."""


def convergence(curves: Mapping[str, Sequence[Mapping[str, Any]]], metric: str, lower_is_better: bool = True,
                within: float = CONVERGED_WITHIN, recall: str | None = None,
                collapsed_below: float = COLLAPSED_RECALL) -> list[dict[str, Any]]:
    """Whether each run had converged when its training ended, from its last two points on ``metric``.

    One row per run: the metric at its last two points, the relative change between them
    (positive = better), and a verdict: ``converged`` (changed less than ``within``),
    ``still improving`` (better by more: longer training would likely help), or ``got worse``
    (worse by more: unstable at the end). Runs with fewer than two scored points are left out.
    ``recall``: the name of the recall metric in ``curves``; a run whose last point has a recall below
    ``collapsed_below`` gets the verdict ``collapsed`` whatever ``metric`` did (a collapsed generator's
    FID can still fall), and its row gives that recall. Name it for full-budget runs only (as
    :func:`collapsed_runs`): a smoke or quick run ends early in training, covering few real images without
    having collapsed.
    """
    rows = []
    for key, pts in curves.items():
        pts = [p for p in pts if p.get(metric) is not None]
        if len(pts) < 2:
            continue
        (s0, a), (s1, b) = (pts[-2]["step"], pts[-2][metric]), (pts[-1]["step"], pts[-1][metric])
        gain = (a - b if lower_is_better else b - a) / max(abs(a), 1e-12)
        verdict = "converged" if abs(gain) < within else "still improving" if gain > 0 else "got worse"
        row = {"model": key, "metric": metric, "from_step": s0, "from": a, "to_step": s1, "to": b,
               "change": round(gain, 4), "verdict": verdict}
        end_recall = pts[-1].get(recall) if recall else None
        if end_recall is not None:
            row["recall_end"] = end_recall
            if end_recall < collapsed_below:
                row["verdict"] = "collapsed"
        rows.append(row)
    return rows


def convergence_note(rows: Sequence[Mapping[str, Any]]) -> str:
    """One or two sentences for a chapter and REPORT.md: the runs that had collapsed, the runs that had not
    converged, or that all had."""
    if not rows:
        return ""
    metric = rows[0]["metric"]
    last = (f"over the last stretch of training (next-to-last scored point to the end, "
            f"{CONVERGED_WITHIN:.0%} or less counts as converged)")
    gone = [r for r in rows if r["verdict"] == "collapsed"]
    open_ = [r for r in rows if r["verdict"] not in ("converged", "collapsed")]
    said = []
    if gone:
        said.append(_collapsed_sentence([(r["model"], r["recall_end"]) for r in gone],
                                        "do not read its other numbers as a result"))
    if open_:
        told = "; ".join(f"{r['model']} {r['verdict']} ({r['change']:+.0%})" for r in open_)
        said.append(f"Not converged on {metric} {last}: {told}.")
    elif not gone:
        said.append(f"Every run had converged on {metric} {last}.")
    elif len(gone) < len(rows):  # where every run collapsed, there is no other run to speak of
        said.append(f"Every other run had converged on {metric} {last}.")
    return " ".join(said)


def collapsed_runs(rows: Sequence[Mapping[str, Any]], recall: str,
                   below: float = COLLAPSED_RECALL) -> list[dict[str, Any]]:
    """The rows (one per run, e.g. every seed of :func:`evaluate_models`) whose ``recall`` is below ``below``:
    ``[{"model", "recall"}]``. Meant for finished runs of a real budget: a run early in training (``smoke``,
    ``quick``) also covers few real images, without having collapsed."""
    return [{"model": r["model"], "recall": r[recall]} for r in rows
            if isinstance(r.get(recall), (int, float)) and r[recall] < below]


def _collapsed_sentence(runs: Sequence[tuple[str, float]], caution: str) -> str:
    """``Collapsed (...): model (recall r); ...`` for :func:`convergence_note` and :func:`collapse_note`."""
    told = "; ".join(f"{model} (recall {recall:.3f})" for model, recall in runs)
    return (f"Collapsed (recall below {COLLAPSED_RECALL} at the end: its samples cover almost none of the real "
            f"images; {caution}): {told}.")


def collapse_note(gone: Sequence[Mapping[str, Any]]) -> str:
    """One sentence on :func:`collapsed_runs`, or "" when there are none."""
    if not gone:
        return ""
    return _collapsed_sentence([(g["model"], g["recall"]) for g in gone],
                               "the means over seeds include it; each seed's own scores are in the chapter's "
                               "`metrics.json`, under `per_seed`")


def _profile_of(trained: Mapping[str, Trained]) -> str:
    """The profile of ``trained``'s runs, from their folders (:func:`runs.run_root`: ``<profile>-seed<n>``):
    ``full`` when every run is a full one or comes from the shipped weights (trained by a full run), else the
    first other profile found."""
    for t in trained.values():
        got = re.fullmatch(r"(.+)-seed\d+", Path(t.run_dir).parent.name)
        if got and got.group(1) != "full":
            return got.group(1)
    return "full"


def quality_over_training(trained: Mapping[str, Trained], evaluator: metrics.Evaluator, out_dir: str | Path,
                          labels: Mapping[str, str], colors: Mapping[str, tuple] | None = None,
                          progress: bool = True, profile: str | None = None) -> dict[str, Any]:
    """Chapters 03-05: score each model's snapshots, draw ``quality_over_training`` and write ``table_convergence``.

    One run per model (``trained`` may hold every seed, keyed as :func:`runs.seed_key`): its first seed that
    kept snapshots. The first seed's run normally has; where it came from the shipped weights (which keep
    no snapshots) and a later seed was trained here, that seed's run stands for the model, named
    ``model@seed`` in the table and "(seed N)" in the figure. ``labels`` is by model name, ``colors`` by label
    (:func:`viz.palette`).
    Returns ``{"curves", "convergence", "note", "figure"}`` (:func:`snapshot_curves`,
    :func:`convergence` on the classifier-FID, :func:`convergence_note` with :func:`kept_note`, the figure);
    all empty when no run kept snapshots (models from the shipped weights, or ``quick``). ``profile``: the runs'
    profile (default: read from their run folders, :func:`_profile_of`); only a ``full`` run can be called
    ``collapsed`` (:func:`convergence`).
    """
    chosen: dict[str, str] = {}
    for key, t in trained.items():
        if base_name(key) not in chosen and (kept_snapshots(t) or saved_curve(t, evaluator) is not None):
            chosen[base_name(key)] = key
    curves = snapshot_curves({key: trained[key] for key in chosen.values()}, evaluator, progress)
    if not curves:
        return {"curves": {}, "convergence": [], "note": "", "figure": None}
    names = evaluator.names()
    has_acc = any(p.get(names["acc"]) is not None for pts in curves.values() for p in pts)

    def label(key: str) -> str:
        return labels[base_name(key)] + (f" (seed {key.split('@', 1)[1]})" if "@" in key else "")
    figure = viz.metric_curves(curves, [names["fid"]] + ([names["acc"]] if has_acc else []),
                               colors={label(k): colors[labels[base_name(k)]] for k in curves if
                                       labels[base_name(k)] in colors} if colors else None,
                               labels={k: label(k) for k in curves}, path_stem=Path(out_dir) / "quality_over_training")
    full = (profile or _profile_of({k: trained[k] for k in curves})) == "full"
    rows = convergence(curves, names["fid"], recall=names["recall"] if full else None)
    tables.write_table(rows, Path(out_dir) / "table_convergence", lead=None)
    note = " ".join(x for x in (convergence_note(rows), kept_note({k: trained[k] for k in curves})) if x)
    return {"curves": curves, "convergence": rows, "note": note, "figure": figure}


GAP_TOLERANCE = 1e-6
"""A scratch-to-teacher gap at most this share of the larger of the two values (or of 1) counts as none."""


def kd_gap_closed(rows: Sequence[Mapping[str, Any]], metric: str,
                  lower_is_better: bool = True) -> list[dict[str, Any]]:
    """For each KD student: the share of its scratch twin's gap to the teacher that KD closed.

    ``(scratch - kd) / (scratch - teacher)`` on ``metric``: 1 means as good as the teacher, 0 no better
    than scratch, negative worse. The share only means that where the teacher is better than the scratch
    twin (lower on a lower-is-better ``metric``); otherwise ``gap_closed`` is None and ``note`` says why:
    a value missing, the teacher no better than scratch (a gap within :data:`GAP_TOLERANCE` of the values
    would turn rounding into a share of millions), or the teacher worse than scratch (the share's sign
    would flip, and a KD student that beat its scratch twin would read as worse).
    """
    by = {r["model"]: r for r in rows}
    teacher = {r["family"]: r for r in rows if r["role"] == "teacher"}
    out = []
    for r in rows:
        twin = by.get(scratch_twin(r["model"]) or "") if r["role"] == "kd" else None
        t = teacher.get(r["family"])
        if twin is None or t is None or r.get(metric) is None:
            continue
        tv, sv, kv = t.get(metric), twin.get(metric), r[metric]
        row = {"student": r["model"], "compression_x": r.get("compression_x"), "teacher": tv, "scratch": sv,
               "kd": kv, "gap_closed": None}
        if tv is None or sv is None:
            row["note"] = f"no {metric} for the {'teacher' if tv is None else 'scratch twin'}"
        else:
            gap = sv - tv if lower_is_better else tv - sv  # > 0: the teacher is better than scratch
            tol = GAP_TOLERANCE * max(abs(sv), abs(tv), 1.0)
            if gap > tol:
                row["gap_closed"] = (sv - kv) / (sv - tv)
            else:
                row["note"] = "teacher no better than scratch" if gap >= -tol else "teacher worse than scratch"
        out.append(row)
    return out


def save_chapter_metrics(chapter: str, settings: Settings, device: str | torch.device,
                         evs: Sequence[metrics.Evaluator] = (), **extra: Any) -> Path:
    """``<profile's results>/<chapter>/metrics.json`` (:func:`paths.chapter_dir`): profile, seed, device (and the
    machine it names), protocols, skips, then ``extra``."""
    return metrics.save_metrics(paths.chapter_dir(chapter, settings.profile) / "metrics.json", {
        "chapter": chapter, "profile": settings.profile, "seed": settings.seed, "device": str(device),
        "machine": repro.describe_device(device), "cpu": repro.describe_device("cpu"),  # CPU timings' machine
        "protocols": [ev.describe() for ev in evs], **extra,
        "skipped": [{k: v for k, v in e.items() if k != "process"} for e in runlog.read_skipped(this_process=True)
                    if e["where"] == chapter],  # this run's skips, not an earlier run's
    })
