"""``python -m gankd_utils COMMAND``: the long jobs, with the same code as the notebooks.

Commands:
  sample   images from any saved generator to an .npz (uint8 N x H x W x C + labels)
  train    train or resume one model of a chapter in resumable chunks (--max-steps)
  export   a teacher's (z, y, image) triples to a shard folder (BigGAN or a torch checkpoint)
  distill  TinyGAN-style distillation of a student from a teacher's shard folder (one GPU or many)
  run      execute the numbered notebooks (what ``make run`` calls)
  report   write results/REPORT.md from what the chapters saved
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence


def parse_classes(spec: str, n_classes: int | None = None) -> list[int]:
    """``"0-9"``, ``"1,3,5-7"`` -> sorted unique class ids, checked against ``n_classes``."""
    ids: set[int] = set()
    for part in str(spec).replace(" ", "").split(","):
        if not part:
            continue
        m = re.fullmatch(r"(-?\d+)(?:-(-?\d+))?", part)
        if not m or (m.group(2) is not None and int(m.group(1)) > int(m.group(2))):
            raise ValueError(f"cannot read class list {spec!r} at {part!r}: use ids and ranges like '0-9' or '1,3,5-7'")
        lo = int(m.group(1))
        ids.update(range(lo, int(m.group(2)) + 1) if m.group(2) is not None else [lo])
    if not ids:
        raise ValueError(f"the class list {spec!r} is empty: give at least one class id")
    bad = sorted(i for i in ids if i < 0 or (n_classes is not None and i >= n_classes))
    if bad:
        top = f"0..{n_classes - 1}" if n_classes is not None else ">= 0"
        raise ValueError(f"class ids out of range {top}: {bad[:10]}")
    return sorted(ids)


def cmd_sample(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import torch

    from . import checkpoint, repro
    from .data import to_uint8
    from .io import atomic_write
    from .models import generate

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
    out = Path(args.out)
    if out.suffix != ".npz":
        raise SystemExit(f"error: --out must end in .npz, got {out}")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, images=images, labels=y.numpy())

    atomic_write(out, write)
    print(f"wrote {len(images)} images {images.shape[1:]} to {out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or resume) one model of a chapter's zoo, in the folder the notebook reads."""
    import time

    from . import config, data, experiments, repro

    zoo = experiments.ZOOS[args.chapter]()
    if args.model not in zoo:
        raise ValueError(f"unknown model {args.model!r} for chapter {args.chapter}: choose one of {sorted(zoo)}")
    spec = zoo[args.model]
    overrides = {"seed": args.seed}
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    cfg = config.get("train", args.profile, chapter=args.chapter if args.chapter in config.CHAPTERS else None,
                     **overrides)
    device = repro.get_device(args.device)
    real = data.load_dataset(args.chapter, train=True)
    root = experiments.run_root(args.chapter, args.profile, args.seed)
    teacher_sets, teachers = {}, {}
    if spec.teacher is not None:
        if spec.recipe.get("kd") == "blackbox":
            if not args.teacher_set:
                raise ValueError(f"{args.model} learns from an exported teacher set: pass --teacher-set DIR "
                                 "(python -m gankd_utils export --teacher checkpoint ...)")
            teacher_sets[spec.teacher] = data.load_shards(args.teacher_set)
        else:
            from . import checkpoint

            teachers[spec.teacher] = checkpoint.load_model(root / spec.teacher / "G", device)
    t0 = time.perf_counter()
    _, info = experiments.train_or_load(spec, cfg, real, root, teachers, device, retrain=args.retrain,
                                        progress=not args.quiet, teacher_sets=teacher_sets)
    steps = len(info["history"].get("step", []))
    state = "loaded (already finished)" if info["loaded"] else ("finished" if info.get("finished") else "paused")
    print(f"{args.model}: {state} at step {steps} in {time.perf_counter() - t0:.0f} s -> {info['run_dir']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .teachers.export import export_from_args

    return export_from_args(args)


def cmd_distill(args: argparse.Namespace) -> int:
    from .distill import main_from_args

    return main_from_args(args)


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    print(f"wrote {write_report(args.results)}")
    return 0


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
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("export", help="a teacher's (z, y, image) triples to shards")
    e.add_argument("--teacher", required=True, choices=["biggan", "checkpoint"])
    e.add_argument("--handle", default=None, help="BigGAN TF-Hub handle, URL or local folder")
    e.add_argument("--checkpoint", default=None, help="torch generator checkpoint (--teacher checkpoint)")
    e.add_argument("--classes", default=None, help="class ids (default: BigGAN's 398 animals 0-397, all for a checkpoint)")
    e.add_argument("--per-class", type=int, required=True)
    e.add_argument("--truncation", type=float, default=1.0)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", required=True)
    e.add_argument("--shard-size", type=int, default=1000)
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--worker", type=int, default=0)
    e.add_argument("--workers", type=int, default=1)
    e.add_argument("--device", default="auto")
    e.set_defaults(func=cmd_export)

    t = sub.add_parser("train", help="train or resume one model of a chapter (same code and folders as the notebook)")
    t.add_argument("--chapter", required=True, choices=["mnist", "cifar10"])
    t.add_argument("--model", required=True, help="a model name of the chapter's zoo, e.g. cgan_teacher")
    t.add_argument("--profile", default="full", choices=["smoke", "quick", "full"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-steps", type=int, default=None,
                   help="pause after this many steps in all (a chunk of a long run); run again to go on")
    t.add_argument("--teacher-set", default=None, help="exported teacher shard folder (black-box KD students)")
    t.add_argument("--device", default="auto")
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

    r = sub.add_parser("report", help="write results/REPORT.md from the chapters' saved tables and figures")
    r.add_argument("--results", default=None, help="results folder (default: GANKD_RESULTS, else results/)")
    r.set_defaults(func=cmd_report)

    sub.add_parser("run", help="execute the numbered notebooks (make run); see 'run --help'")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:  # the notebook runner has its own options
        from .nbrun import main as run_main

        return run_main(argv[1:])
    if argv[:1] == ["distill"]:  # key=value overrides may come before or after the options
        settings = [a for a in argv[1:] if "=" in a and not a.startswith("-")]
        argv = [a for a in argv if a not in settings] + settings
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
