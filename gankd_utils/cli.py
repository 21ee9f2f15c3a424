"""``python -m gankd_utils COMMAND``: the long jobs, with the same code as the notebooks.

Commands:
  sample   images from any saved generator to an .npz (uint8 N x H x W x C + labels)
  train    train or resume one model of a chapter in resumable chunks (--max-steps)
  score    finished models (shipped or trained, any seeds) scored as their chapter scores them (--paused: and
           runs still training, at their last checkpoint)
  export   a teacher's (z, y, image) triples to a shard folder (BigGAN or a torch checkpoint)
  distill  TinyGAN-style distillation of a student from a teacher's shard folder (one GPU or many)
  run      execute the numbered notebooks (what ``make run`` calls)
  full-run the full-profile walk in resumable stages (one GPU, short windows), packed to carry
  report   write REPORT.md from what the chapters saved (results/, or results/<profile>/ for smoke and quick)
  datapack CIFAR-10 as small lossless parts to carry to a machine without network, and back
  weights  the shipped weights: verify checks every file's sha256, list says what each model is and where it trained
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from . import (checkpoint, config, data, datapack, distill, evaluation, fullrun, nbrun, paths, repro, runs, shards, tables,
               teachers, viz, weights)
from .classes import parse_classes
from .data import to_uint8
from .dist import from_env
from .io import atomic_write, atomic_write_text
from .models import generate
from .report import write_report
from .teachers.export import check_export, check_out, check_request
from .zoo import zoo


def cmd_sample(args: argparse.Namespace) -> int:
    # every check that needs no model comes first: a bad value fails at once, and nothing is written
    out = Path(args.out)
    if out.suffix != ".npz":
        raise ValueError(f"--out must end in .npz, got {out}")
    if out.is_dir():
        raise FileExistsError(f"--out {out} is a folder: give a file name ending in .npz")
    if out.exists() and not args.force:
        raise FileExistsError(f"--out {out} exists already: give another name, or --force to replace it")
    for opt, v in (("--per-class", args.per_class), ("--n", args.n), ("--batch-size", args.batch_size)):
        if v is not None and v < 1:
            raise ValueError(f"{opt} must be >= 1, got {v}")
    if args.classes:
        parse_classes(args.classes)  # its form now; its range once the model says how many classes it has
    _check_device(args.device)
    device = repro.get_device(args.device)
    G = checkpoint.load_model(args.checkpoint, device)
    if G.n_classes:
        classes = parse_classes(args.classes or f"0-{G.n_classes - 1}", G.n_classes)
        if args.n is not None:
            raise SystemExit("error: --n is for unconditional generators; this one is conditional: use --per-class")
        # each class gets its own noise stream: no z shared across classes
        imgs, labels = [], []
        for c in classes:
            y = torch.full((args.per_class,), c, dtype=torch.int64)
            z = repro.noise(args.per_class, G.z_dim, args.seed, f"sample:{c}")
            imgs.append(generate(G, labels=y, z=z, device=device, batch_size=args.batch_size))
            labels.append(y)
        x, y = torch.cat(imgs), torch.cat(labels)
    else:
        if args.classes:
            raise SystemExit("error: this generator is unconditional: drop --classes and give --n (how many images)")
        n = args.n if args.n is not None else args.per_class
        x = generate(G, n=n, seed=args.seed, purpose="sample", device=device, batch_size=args.batch_size)
        y = torch.full((n,), -1, dtype=torch.int64)
    images = to_uint8(x).permute(0, 2, 3, 1).numpy()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, images=images, labels=y.numpy())

    atomic_write(out, write)
    print(f"wrote {len(images)} images {images.shape[1:]} to {out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or resume) one model of a dataset's zoo, in the folder the notebook reads."""
    entries = zoo(args.chapter, ablations=True)
    if args.model not in entries:
        raise ValueError(f"unknown model {args.model!r} for {args.chapter}: choose one of {sorted(entries)}")
    entry = entries[args.model]
    overrides = {"max_steps": args.max_steps} if args.max_steps is not None else {}
    settings = config.settings(args.chapter, args.profile, args.seed, speed=config.speed_of(args),
                               **({"distill": {"train": overrides}} if entry.base == "distill" else {"train": overrides}))
    device = repro.get_device(args.device)
    real = data.load_dataset(args.chapter, train=True)
    teachers_, teacher_set = {}, None
    if entry.kd == "blackbox":
        if not args.teacher_set:
            raise ValueError(f"{args.model} learns from an exported teacher set: pass --teacher-set DIR "
                             "(python -m gankd_utils export --teacher checkpoint ...)")
        teacher_set = shards.load_shards(args.teacher_set)
    elif entry.teacher is not None:  # online KD: the finished teacher, shipped or from its run folder
        teacher_settings = settings if args.teacher_seed is None else settings.for_seed(args.teacher_seed)
        teachers_[entry.teacher] = runs.load_trained(entries[entry.teacher], teacher_settings, device, args.weights).G
    t0 = time.perf_counter()
    ends = [time.monotonic() + args.budget_s] if args.budget_s is not None else []
    if args.deadline_at is not None:  # a wall-clock time: a parent's deadline, start-up included
        ends.append(time.monotonic() + (args.deadline_at - time.time()))
    deadline = min(ends) if ends else None
    t = runs.train_or_load(entry, settings, real, teachers_, teacher_set, device, retrain=args.retrain,
                           progress=not args.quiet, deadline=deadline, weights_=args.weights)
    state = ("loaded (shipped weights)" if t.loaded and runs.weights_choice(entry, settings, args.weights) == "shipped"
             else "loaded (already finished)" if t.loaded else ("finished" if t.finished else "paused"))
    print(f"{args.model}: {state} at step {t.steps} in {time.perf_counter() - t0:.0f} s -> {t.run_dir}")
    return 0


SHEET_N = 40  # images per model on score's sample sheet: four rows of ten, as chapter 03 draws its students


def cmd_score(args: argparse.Namespace) -> int:
    """``python -m gankd_utils score``: finished models (shipped, or from their run folders) scored as the
    chapter scores them: the same evaluators, samples, noise and reference set for every model and seed."""
    entries = zoo(args.chapter, ablations=True)
    names = [n for n in ",".join(args.model).split(",") if n]
    unknown = [n for n in names if n not in entries]
    if unknown or not names:
        raise ValueError(f"unknown model(s) {unknown} for {args.chapter}: choose from {sorted(entries)}")
    if any(s < 0 for s in args.seeds):
        raise ValueError(f"seeds are whole numbers >= 0, got {args.seeds}")
    if args.figure and Path(args.figure).suffix.lower() not in ("", ".png", ".pdf"):
        raise ValueError(f"--figure takes a path without suffix (it writes .png and .pdf), got {args.figure!r}")
    device = repro.get_device(args.device)
    settings = config.settings(args.chapter, args.profile, args.eval_seed)
    if args.n_samples is not None:
        if args.n_samples < 2:
            raise ValueError(f"--n-samples must be at least 2, got {args.n_samples}")
        settings = dataclasses.replace(settings, eval=dataclasses.replace(settings.eval, n_samples=args.n_samples))
    models, sources = {}, {}
    for name in names:  # every model loads (or fails) before the slow scoring starts
        for seed in args.seeds:
            entry, s = entries[name], settings.for_seed(seed)
            own = runs.weights_choice(entry, s, args.weights) == "train"  # its run folder, not the shipped files
            if args.paused and own and not runs.has_finished(entry, s):
                t = runs.load_paused(entry, s, device)
            else:
                t = runs.load_trained(entry, s, device, args.weights)
            key = runs.seed_key(name, seed, args.eval_seed)
            models[key], sources[key] = t.G.eval(), (t.steps, t.finished, paths.shown(t.run_dir))
    real = data.load_dataset(args.chapter, train=True)
    evs = evaluation.evaluators(settings, real, device, where="score", weights_=args.weights)
    cols = evaluation.metric_columns(evs)
    rows = []
    for key, G in models.items():
        row = {"model": key, "steps": sources[key][0], "finished": sources[key][1]}
        for ev in evs:
            row.update(ev(G))
        row["from"] = sources[key][2]
        rows.append(row)
    print(f"{args.profile} profile; {settings.eval.n_samples} samples per model, noise and labels from seed "
          f"{args.eval_seed}; {repro.describe_device(device)}")
    shown = [{**r, "steps": f"{r['steps']} (paused)" if not r["finished"] else r["steps"]} for r in rows]
    print(tables.markdown_table(shown, columns=["model", "steps", *cols, "from"]))
    paused = sorted(r["model"] for r in rows if not r["finished"])
    if paused:
        print(f"paused: {', '.join(paused)}, scored at the last checkpoint (the weight average where the "
              "recipe keeps one); not a result until the run finishes")
    for gone in evaluation.collapsed_runs(rows, next((c for c in cols if c.startswith("recall")), "")):
        print(f"{gone['model']}: recall {gone['recall']:.3f}, collapsed")
    if args.json:
        atomic_write_text(args.json, json.dumps(
            {"profile": args.profile, "eval_seed": args.eval_seed, "n_samples": settings.eval.n_samples,
             "device": repro.describe_device(device), "rows": rows}, indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.figure:
        # the chapter's sample sheet: 40 images per model, one column per class, the same (z, y) for all
        grids = {}
        for key, G in models.items():
            z, y = repro.latents(SHEET_N, G.z_dim, getattr(G, "n_classes", 0), args.eval_seed, "fixed")
            grids[key] = generate(G, n=SHEET_N, labels=y, z=z)
        title = f"the same noise and labels (seed {args.eval_seed}) for every model; name@k: the run of seed k"
        viz.show_grids(grids, nrow=10, title=title, path_stem=args.figure)
        print(f"wrote {', '.join(paths.shown(Path(args.figure).with_suffix(e)) for e in ('.png', '.pdf'))}")
    return 0


def _check_device(name: str) -> None:
    """``--device`` checked before any model is loaded, with the names to use (torch's own errors would be
    tracebacks: an unknown name, or CUDA on a machine without it)."""
    try:
        dev = torch.device(name) if name != "auto" else None
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"--device {name!r} is not a device: use auto (a GPU where there is one, else the CPU), "
                         "cpu or cuda (cuda:1 for the second GPU)") from None
    if dev is not None and dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} was asked for but CUDA is not available here; use auto or cpu")


def cmd_export(args: argparse.Namespace) -> int:
    """``python -m gankd_utils export ...``: check the request, load the teacher, export, say what happened.

    ``--check`` only says whether the set in ``--out`` is complete and whole (:func:`teachers.export.check_export`):
    it loads no teacher and generates nothing, so it is safe to run while workers are still writing.
    """
    if args.check:
        res = check_export(args.out)

        def names(files: list[str]) -> str:
            return ", ".join(files[:10]) + (" ..." if len(files) > 10 else "")

        if res["complete"] and not res["damaged"]:
            print(f"{args.out}: complete")
            return 0
        if res["missing"]:
            print(f"{args.out}: incomplete, {len(res['missing'])} shard(s) missing: {names(res['missing'])}")
        if res["damaged"]:
            print(f"{args.out}: {len(res['damaged'])} shard(s) damaged: {names(res['damaged'])}; delete them and run "
                  "the export again (the worker of each) to redo them")
        return 1
    missing = [o for o, v in (("--teacher", args.teacher), ("--per-class", args.per_class)) if v is None]
    if missing:
        raise ValueError(f"export needs {' and '.join(missing)} (or --check to only check the set in --out)")
    check_request(args.per_class, args.truncation, args.shard_size, args.worker, args.workers)
    check_out(args.out)
    _check_device(args.device)
    if args.teacher == "biggan" and args.classes is not None:
        parse_classes(args.classes, 1000)  # fail on a bad list before the slow model load
    teacher = teachers.load_teacher(args.teacher, args.handle, args.checkpoint, args.device)
    classes = None
    if args.classes is not None:
        if teacher.n_classes == 0:
            raise ValueError(f"{teacher.name} is unconditional: drop --classes (--per-class sets how many images)")
        classes = parse_classes(args.classes, teacher.n_classes)
    res = teachers.export(teacher, args.out, classes=classes, per_class=args.per_class, truncation=args.truncation,
                          seed=args.seed, shard_size=args.shard_size, batch_size=args.batch_size,
                          worker=args.worker, workers=args.workers)
    state = ("complete" if res["complete"] else
             f"incomplete: {len(res['missing'])} shards still to come from other workers "
             f"(check with: python -m gankd_utils export --check --out {res['out']})")
    rate = f", {res['images_per_s']:.1f} img/s" if res["images_written"] else ""
    print(f"{res['out']}: {res['n_shards']} shards, {state}; this run wrote {len(res['written'])} "
          f"({res['images_written']} images{rate}), kept {len(res['kept'])}"
          + (f", redid {len(res['redone'])} damaged" if res["redone"] else ""))
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    """``python -m gankd_utils distill``: the command line around :func:`distill.run`."""
    cfg = distill.load_config(args.config, args.overrides)
    if not cfg.teacher_set:
        raise ValueError("teacher_set is not set: put it in the config file or pass teacher_set=PATH")
    res = distill.run(cfg, progress=not args.quiet, resume=not args.restart)
    d = from_env()
    if d.is_main:
        state = "finished" if res.finished else "paused"
        print(f"{cfg.name}: {state} at step {res.steps} ({d.world} process(es), "
              f"{res.seconds:.0f} s) -> {res.run_dir}")
    return 0


def _profile(args: argparse.Namespace) -> str:
    """``--profile``, else $PROFILE, else the machine's default; a name that is no profile is refused before
    anything is made for it (it would leave a results/<name>/ folder behind)."""
    profile = args.profile or os.environ.get("PROFILE") or config.default_profile()
    if profile not in config.PROFILE_NAMES:
        raise ValueError(f"PROFILE={profile!r} is not a profile: choose one of {', '.join(config.PROFILE_NAMES)}")
    return profile


def cmd_report(args: argparse.Namespace) -> int:
    profile = _profile(args)
    print(f"wrote {write_report(args.results, profile)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``python -m gankd_utils run`` (``make run``): the numbered notebooks in order, then a summary."""
    profile = _profile(args)
    unmatched = [o for o in args.only or () if not nbrun.notebooks([o])]
    if unmatched:  # a typo would otherwise run nothing, or less than asked, and still report success
        names = ", ".join(p.name for p in nbrun.notebooks())
        raise ValueError(f"--only {' '.join(unmatched)} matches no notebook; the notebooks are {names} (give the "
                         "start of a name, e.g. --only 03)")
    res = nbrun.run_all(profile, args.only, args.out, args.keep_going, say=lambda m: print(m, flush=True))
    print("\n[gankd] summary")
    print(f"  profile: {profile}; executed notebooks in {res['out_dir']}; tables, figures and REPORT.md in "
          f"{paths.profile_root(profile)}")
    for name, minutes in res["minutes"].items():
        print(f"  {name}: {minutes:.1f} min" + (" (FAILED)" if name in res["failed"] else ""))
    print(f"  in all: {sum(res['minutes'].values()):.1f} min")
    if res["skipped"]:
        print(f"  skipped ({len(res['skipped'])}):")
        for line in res["skipped"]:
            print("   - " + line)
    else:
        print("  nothing was skipped")
    if res["failed"]:
        print(f"  FAILED: {', '.join(res['failed'])}")
        return 1
    return 0


def cmd_full_run(args: argparse.Namespace) -> int:
    """``python -m gankd_utils full-run``: one stage of the full walk (:mod:`gankd_utils.fullrun`), packed to carry."""
    if args.unpack:
        print(f"unpacked: {', '.join(fullrun.unpack(args.unpack)) or 'nothing'}")
    if not args.stage:
        if args.unpack:
            return 0
        raise ValueError("give --stage (or --unpack DIR)")
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only is not None else None
    res = fullrun.run_stage(args.stage, args.profile, args.seed, args.budget_s, args.device, not args.no_notebook,
                            only=only, student_seeds=args.student_seeds, parallel=args.parallel,
                            speed=config.speed_of(args))
    state = "finished" if res["finished"] else "paused"
    print(f"stage {args.stage}: {state} in {res['seconds']:.0f} s; trained now: {', '.join(res['trained']) or 'none'}")
    if "finetuned" in res:
        print(f"stage {args.stage}: fine-tuned {', '.join(res['finetuned']) or 'nothing'} (notebook 07 loads them)")
    if args.pack:
        for f in fullrun.pack(args.stage, args.pack, res["paused"], args.profile):
            print(f"packed {f} ({f.stat().st_size / 2 ** 20:.1f} MiB)")
    return 0


def cmd_datapack(args: argparse.Namespace) -> int:
    """``python -m gankd_utils datapack pack|unpack``: CIFAR-10 as small lossless parts, and back."""
    if args.what == "pack":
        m = datapack.pack(args.out, args.part_mib, args.root, tuple(s for s in args.splits.split(",") if s))
        for part in m["parts"]:
            print(f"{part['file']}: {part['count']:,} images, {part['bytes'] / 2**20:.1f} MiB")
        print(f"{len(m['parts'])} parts and {datapack.MANIFEST} in {args.out}; the training parts in order are "
              "class-balanced subsets")
        return 0
    got = datapack.unpack(args.folder, args.root)
    dest = (Path(args.root) if args.root else paths.data_root()) / "cifar10"
    for split, n in got.items():
        full = data.FULL_SIZES[f"cifar10-{split}"]
        print(f"{split}: {n:,} images to {dest}" + ("" if n == full else f" (a subset of {full:,})"))
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    """``python -m gankd_utils weights verify|list``: the shipped weights, checked file by file, or listed."""
    try:
        if args.what == "list":
            rows = weights.summary(args.root, required=True)
            for row in rows:
                if args.dataset is None or row["key"].split("/", 1)[0] == args.dataset:
                    print(f"{row['key']:<40} params {row['params'] if row['params'] is not None else '?':>10}  "
                          f"{row['MB'] if row['MB'] is not None else '?':>8} MB  steps {row['steps']}"
                          + (f" (G: step {row['kept_step']})" if row.get("kept_step") is not None else "") + "  "
                          f"sha256 {row['sha256']}  trained on {row['device'] or '?'}"
                          + (f" in {row['hours']} h" if row["hours"] is not None else ""))
            return 0
        checked, where = weights.check_files(args.key, args.root)
    except weights.ShippedWeightsError as e:
        print(e, file=sys.stderr)
        return 1
    for rel, sha, error in checked:
        print(f"OK      {sha[:12]}  {rel}" if error is None else f"FAILED  {rel}: {error}")
    failed = sum(error is not None for _, _, error in checked)
    print(f"{len(checked) - failed} of {len(checked)} files match {where}", file=sys.stderr)
    return 1 if failed else 0


def speed_arguments(ap: argparse.ArgumentParser) -> None:
    """--fast, --compile and --channels-last (each default: the profile's; :func:`config.speed_of` reads them)."""
    ap.add_argument("--fast", default=None, choices=config.SPEED["fast"],
                    help="bf16 autocast, TF32, fused Adam, noise on the device (default auto: on on CUDA only; on "
                         "a CPU with bf16 instructions, on can pay: benchmarks/train_speed.py --device cpu)")
    ap.add_argument("--compile", default=None, choices=config.SPEED["compile"], help="torch.compile G and D")
    ap.add_argument("--channels-last", default=None, choices=tuple(config.SWITCH),
                    help="G, D and a teacher in channels_last memory format")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m gankd_utils", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sample", help="images from a saved generator to an .npz")
    s.add_argument("--checkpoint", required=True, help="NAME.safetensors (with NAME.json beside it)")
    s.add_argument("--classes", default=None, help="class ids, e.g. 0-9 or 1,3,5 (conditional models)")
    s.add_argument("--per-class", type=int, default=10, help="images per class (conditional models)")
    s.add_argument("--n", type=int, default=None, help="number of images (unconditional models)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output .npz: images uint8 (N, H, W, C), labels int64 (N,)")
    s.add_argument("--device", default="auto")
    s.add_argument("--batch-size", type=int, default=500)
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("export", help="a teacher's (z, y, image) triples to shards")
    e.add_argument("--teacher", default=None, choices=["biggan", "checkpoint"], help="required unless --check")
    e.add_argument("--handle", default=None, help="BigGAN TF-Hub handle, URL or local folder")
    e.add_argument("--checkpoint", default=None, help="torch generator checkpoint (--teacher checkpoint)")
    e.add_argument("--classes", default=None, help="class ids (default: BigGAN's 398 animals 0-397, all for a checkpoint)")
    e.add_argument("--per-class", type=int, default=None, help="required unless --check")
    e.add_argument("--truncation", type=float, default=1.0)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", required=True)
    e.add_argument("--shard-size", type=int, default=1000)
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--worker", type=int, default=0)
    e.add_argument("--workers", type=int, default=1)
    e.add_argument("--device", default="auto")
    e.add_argument("--check", action="store_true",
                   help="only say whether the set in --out is complete and every shard whole (exit status 1 if "
                        "not); loads no teacher and generates nothing, so it is safe while workers run")
    e.set_defaults(func=cmd_export)

    t = sub.add_parser("train", help="train or resume one model of a dataset's zoo (same code and folders as the notebook)")
    t.add_argument("--dataset", "--chapter", dest="chapter", required=True, choices=["mnist", "cifar10"],
                   help="the dataset whose models the chapter trains")
    t.add_argument("--model", required=True, help="a model name of the dataset's zoo, e.g. cgan_teacher")
    t.add_argument("--profile", default="full", choices=["smoke", "quick", "full"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-steps", type=int, default=None,
                   help="pause after this many steps in all (a chunk of a long run); run again to go on")
    t.add_argument("--budget-s", type=float, default=None,
                   help="pause, saved, after this many seconds of training; run again to go on")
    t.add_argument("--deadline-at", type=float, default=None, metavar="UNIX_TIME",
                   help="pause, saved, at this time (seconds since the epoch, as time.time()); with --budget-s, "
                        "whichever comes first")
    t.add_argument("--teacher-set", default=None, help="exported teacher shard folder (black-box KD students)")
    t.add_argument("--teacher-seed", type=int, default=None,
                   help="the seed of the teacher's run an online KD student learns from (default: --seed; the "
                        "notebooks train one teacher, with the first seed, for every student seed)")
    t.add_argument("--weights", default="auto", choices=list(weights.CHOICES),
                   help="as the notebooks' WEIGHTS: auto takes the shipped teacher (and, in the full profile, the "
                        "shipped model of this seed) where results/weights has it; train never reads them")
    t.add_argument("--device", default="auto")
    speed_arguments(t)
    t.add_argument("--retrain", action="store_true", help="discard an existing run of this model and start afresh")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    d = sub.add_parser("distill", help="TinyGAN distillation from a teacher shard folder (torchrun / accelerate ok)",
                       description="Train a TinyGAN student from a teacher's exported (z, y, image) shards. "
                                   "Overrides are key=value, dotted for tables: train.epochs=3 generator.ch=16.")
    d.add_argument("--config", default=None, help="JSON file of DistillConfig keys (see gankd_utils.distill)")
    d.add_argument("overrides", nargs="*", help="key=value settings over the file, e.g. teacher_set=DIR train.epochs=2")
    d.add_argument("--restart", action="store_true", help="discard the run folder's resume state and start afresh")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_distill)

    sc = sub.add_parser("score", help="score finished models (shipped or trained) as their chapter does")
    sc.add_argument("--dataset", "--chapter", dest="chapter", required=True, choices=["mnist", "cifar10"],
                    help="the dataset whose models to score")
    sc.add_argument("--model", required=True, action="append",
                    help="model name(s) of the dataset's zoo, comma-separated or repeated, e.g. "
                         "cdcgan_c32_kd,cdcgan_c32_scratch")
    sc.add_argument("--seeds", type=int, nargs="+", default=[0], help="the runs' seeds (default: 0)")
    sc.add_argument("--profile", default="full", choices=["smoke", "quick", "full"])
    sc.add_argument("--weights", default="auto", choices=["auto", "shipped", "train"],
                    help="auto: the shipped run of each seed where there is one, else its run folder; "
                         "train: run folders only")
    sc.add_argument("--paused", action="store_true",
                    help="also score runs that have not finished, at their last checkpoint (a long run, while it "
                         "trains); the steps column says where each stands")
    sc.add_argument("--eval-seed", type=int, default=0,
                    help="seed of the evaluation noise and labels, the same for every model (chapter 03: its SEED)")
    sc.add_argument("--n-samples", type=int, default=None, help="samples per model (default: the profile's)")
    sc.add_argument("--json", default=None, help="also write the rows to this JSON file")
    sc.add_argument("--figure", default=None, metavar="STEM",
                    help="also save each model's sample sheet side by side, as chapter 03 draws it (40 images, "
                         "one column per class, the same noise and labels for every model) to STEM.png and STEM.pdf")
    sc.add_argument("--device", default="auto")
    sc.set_defaults(func=cmd_score)

    r = sub.add_parser("report", help="write REPORT.md from the chapters' saved tables and figures")
    r.add_argument("--profile", default=None, choices=config.PROFILE_NAMES,
                   help="whose chapters: full reads results/, smoke and quick results/<profile>/ (default: as "
                        "'run': PROFILE, else full with CUDA, else quick)")
    r.add_argument("--results", default=None, help="read this results folder instead (its REPORT.md is written there)")
    r.set_defaults(func=cmd_report)

    n = sub.add_parser("run", help="execute the numbered notebooks (make run)", description=nbrun.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    n.add_argument("--profile", default=None, choices=config.PROFILE_NAMES,
                   help="default: PROFILE, else full with CUDA, else quick")
    n.add_argument("--only", nargs="*", help="run only notebooks whose names start with these prefixes (e.g. 03)")
    n.add_argument("--out", default=None, help="folder for executed copies (default: results/executed for full, "
                                               "results/<profile>/executed for smoke and quick)")
    n.add_argument("--keep-going", action="store_true", help="run the rest when one notebook fails")
    n.set_defaults(func=cmd_run)

    f = sub.add_parser("full-run", help="the full-profile walk in resumable stages for short GPU windows",
                       description=fullrun.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("--stage", choices=fullrun.STAGES, help="the stage to run")
    f.add_argument("--profile", default="full", choices=config.PROFILE_NAMES)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--budget-s", type=float, default=None, help="pause a training at a checkpoint after this long")
    f.add_argument("--device", default="auto")
    speed_arguments(f)
    f.add_argument("--no-notebook", action="store_true",
                   help="train and ship only; do not execute the notebook (compress: its fine-tunes alone, for the "
                        "notebook to load on another machine)")
    f.add_argument("--only", default=None, metavar="NAME[,NAME]",
                   help="train and ship only these models of the stage (no notebook)")
    f.add_argument("--student-seeds", type=int, default=None, metavar="N",
                   help="with --only: train students with N seeds instead of the profile's (1: the shipped one)")
    f.add_argument("--parallel", type=int, default=None, metavar="N",
                   help="mnist, cifar10-students: train N runs at once, each in its own process with its share of "
                        "the cores (default: 4 on CUDA, else 1); e.g. 2 on a 2-core CPU, one thread each")
    f.add_argument("--pack", default=None, help="folder for the stage's archives (parts of at most 16 MiB)")
    f.add_argument("--unpack", default=None, help="extract archives of earlier stages from this folder first")
    f.set_defaults(func=cmd_full_run)

    p = sub.add_parser("datapack", help="CIFAR-10 as small lossless parts for a machine without network, and back",
                       description=datapack.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_subparsers(dest="what", required=True)
    pp = what.add_parser("pack", help="CIFAR-10 from the data root into lossless parts of at most --part-mib MiB")
    pp.add_argument("--out", required=True, help="an empty folder for the parts and datapack.json")
    pp.add_argument("--part-mib", type=float, default=48.0, help="the largest part, in MiB (default 48)")
    pp.add_argument("--root", default=None, help="the data root to read (default: GANKD_DATA_ROOT, else data/)")
    pp.add_argument("--splits", default="train,test", help="train, test or train,test (default)")
    pu = what.add_parser("unpack", help="the parts in a folder into <data root>/cifar10/ as the loader's shards")
    pu.add_argument("folder", help="the folder holding datapack.json and the parts (all of them, or the first few)")
    pu.add_argument("--root", default=None, help="the data root to write (default: GANKD_DATA_ROOT, else data/)")
    p.set_defaults(func=cmd_datapack)

    w = sub.add_parser("weights", help="the shipped weights: check every file's sha256, or list the models",
                       description=weights.__doc__.split("\n")[0])
    w.add_argument("--root", help="the weights folder (default: GANKD_WEIGHTS, else results/weights)")
    what = w.add_subparsers(dest="what", required=True)
    wv = what.add_parser("verify", help="check every shipped file's sha256 (exit status 1 on a mismatch)")
    wv.add_argument("key", nargs="?", help="one model, dataset/model (default: all)")
    wl = what.add_parser("list", help="the shipped models, with where and how long each was trained")
    wl.add_argument("--dataset")
    w.set_defaults(func=cmd_weights)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["distill"]:  # key=value overrides may come before or after the options
        settings = [a for a in argv[1:] if "=" in a and not a.startswith("-")]
        argv = [a for a in argv if a not in settings] + settings
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
