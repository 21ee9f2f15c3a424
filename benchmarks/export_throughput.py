"""Does the teacher export run at the teacher's own speed?

Prints export throughput / bare generation throughput (images per second):
the export overlaps generation with shard writes on a background thread, so
the ratio should be about 1 (target >= 0.9).

- bare: ``teacher.generate_uint8`` over the same (z, y) in the same batches
  (the device-to-host copy and uint8 conversion included: an export cannot
  skip them), nothing written;
- export: ``gankd_utils.teachers.export`` of the same request into a fresh
  folder (noise drawing, shard writes with sha256 and fsync, manifest updates).

Teachers: an untrained class-conditional DCGAN generator (default; its speed
is what matters here, not its images) of width ``--width`` with 3-channel
output, a gankd checkpoint (``--checkpoint``), or BigGAN-deep (``--handle``).

    python benchmarks/export_throughput.py --device cuda --per-class 2000
    python benchmarks/export_throughput.py --handle /path/to/biggan-deep-128 --per-class 20
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gankd_utils  # noqa: E402,F401  (torchvision before tensorflow)
import torch  # noqa: E402

from gankd_utils import checkpoint, repro, teachers  # noqa: E402
from gankd_utils.models import CondDCGANGenerator  # noqa: E402
from gankd_utils.teachers.export import _ClassNoise, plan_export, shard_inputs  # noqa: E402


def build_teacher(args, tmp: Path):
    if args.handle:
        return teachers.load_biggan(args.handle, device=args.device)
    path = args.checkpoint
    if path is None:
        torch.manual_seed(0)
        G = CondDCGANGenerator(c=args.width, n_classes=10, out_channels=3)  # untrained: only its speed matters
        path = checkpoint.save_model(tmp / "bench_generator", G)
    return teachers.TorchTeacher.from_checkpoint(path, args.device)


def bare_rate(teacher, plan: dict, batch_size: int) -> float:
    """Images per second of generation alone, over the export's own (z, y) batches."""
    noise = _ClassNoise(teacher, plan)
    inputs = [shard_inputs(plan, i, noise) for i in range(plan["n_shards"])]
    t0 = time.perf_counter()
    n = 0
    for z, y in inputs:
        for b in range(0, len(z), batch_size):
            n += len(teacher.generate_uint8(z[b:b + batch_size], y[b:b + batch_size], plan["truncation"]))
    return n / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--handle", default=None, help="benchmark BigGAN-deep from this handle instead")
    ap.add_argument("--checkpoint", default=None, help="a gankd generator checkpoint (default: an untrained DCGAN)")
    ap.add_argument("--width", type=int, default=256, help="width c of the default DCGAN generator")
    ap.add_argument("--classes", default=None, help="class ids, e.g. 0-9 (default: the teacher's default classes)")
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--shard-size", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--truncation", type=float, default=1.0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3, help="alternating bare / export runs; the best of each is kept")
    ap.add_argument("--out", default=None, help="folder for the exports (default: a temporary folder)")
    args = ap.parse_args(argv)
    if args.device == "auto" and not args.handle:
        args.device = str(repro.get_device("auto"))

    tmp = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="gankd_bench_"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        teacher = build_teacher(args, tmp)
        from gankd_utils.cli import parse_classes

        classes = parse_classes(args.classes, teacher.n_classes) if args.classes else None
        plan = plan_export(teacher, classes, args.per_class, args.truncation, 0, args.shard_size)
        z, y = shard_inputs(plan, 0, _ClassNoise(teacher, plan))
        teacher.generate_uint8(z[:args.batch_size], y[:args.batch_size], args.truncation)  # warm-up
        bare, export = [], []
        for r in range(args.repeats):
            bare.append(bare_rate(teacher, plan, args.batch_size))
            folder = tmp / f"export_{r}"
            t0 = time.perf_counter()
            res = teachers.export(teacher, folder, classes=classes, per_class=args.per_class,
                                  truncation=args.truncation, seed=0, shard_size=args.shard_size,
                                  batch_size=args.batch_size, progress=False)
            export.append(res["images_written"] / (time.perf_counter() - t0))
            shutil.rmtree(folder)
        b, e = max(bare), max(export)
        print(f"teacher {teacher.name} on {args.device}: {plan['count']} images "
              f"({plan['n_shards']} shards of {args.shard_size}), batch {args.batch_size}")
        print(f"bare generation {b:,.0f} img/s | export {e:,.0f} img/s | "
              f"export / bare = {e / b:.3f} (target >= 0.9)")
    finally:
        if not args.out:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
