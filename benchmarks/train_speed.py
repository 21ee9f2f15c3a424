"""Training speed of every model of the walk: the plain fp32 eager path and the fast path side by side.

    .venv/bin/python benchmarks/train_speed.py [--device auto] [--steps 20] [--profile full] [--only mnist]
                                               [--models NAME ...] [--switches compile channels_last]
                                               [--concurrent 1 2 4]

For each model of chapters 03-05 (the zoo), in one process: milliseconds per
training step (one D update, plus the G update every ``n_critic``-th step, as the
recipe runs it) and images per second, with ``fast="off"`` (fp32, eager, noise
from a CPU generator) and ``fast="on"`` (bf16 autocast, TF32, fused Adam, noise
on the device, no host sync per step); the ratio is the figure. ``--switches``
adds, per switch, the fast path with ``compile="on"`` (torch.compile of G and D)
or ``channels_last=True``, its ratio to the plain fast path and its warm-up time
(compiling included): they are on in a profile only where this shows they pay. Batches are
random images of the right shape: a step's cost does not depend on what the
images show. The last table multiplies each model's step cost by the steps the
profile plans for it (seeds included) and estimates the training time of the walk, on the path
a run takes by default on that device (the fast path on CUDA, fp32 eager elsewhere).
``--concurrent 1 2 4`` then times n processes side by side, each training one model
(as ``runs.train_all`` runs the independent runs on a GPU): the aggregate throughput
against one process alone says how many runs the GPU has room for.
It prints figures; it is not a test.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import dataclasses
import time

import torch

import gankd_utils  # noqa: F401
from gankd_utils import config, recipes, repro, runs, zoo
from gankd_utils.data import ImageSet
from gankd_utils.runstate import RunState, fast_enabled

DATASET_SIZE = {"mnist": 60_000, "cifar10": 50_000}
SWITCHES = {"compile": {"compile": "on"}, "channels_last": {"channels_last": True}}  # TrainConfig settings


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_ms(entry, settings, device, fast: str, steps: int, teacher=None, **switches) -> tuple[float, float]:
    """Mean milliseconds per training step over ``steps`` steps, and the seconds of the 3 warm-up steps before.

    ``switches``: more TrainConfig settings of the path (compile="on", channels_last=True).
    """
    cfg = dataclasses.replace(zoo.train_config(entry, settings), fast=fast, **switches)
    G, D = zoo.build(entry, settings)
    G, D = G.to(device).train(), D.to(device).train()
    shape = (1, 28, 28) if entry.dataset == "mnist" else (3, 32, 32)
    g = repro.generator(0, "bench")
    n = cfg.batch_size
    x = torch.rand(n, *shape, generator=g).mul(2).sub(1).to(device)
    y = torch.randint(0, 10, (n,), generator=g).to(device)
    z = torch.randn(n, G.z_dim, generator=g).to(device)
    real = None
    if entry.kd == "blackbox":
        real = ImageSet(torch.randint(0, 256, (4 * n, *shape), dtype=torch.uint8, generator=g),
                        torch.randint(0, 10, (4 * n,), generator=g), tuple(str(i) for i in range(10)), "bench")
    run = RunState(G, D, cfg, device, teacher=teacher, real=real, adapter=cfg.kd == "feature")
    step = recipes.step_for(cfg)
    batch = (x, y, z) if entry.kd == "blackbox" else (x, y)
    t_warm = time.perf_counter()
    for i in range(3):
        run.log(step(run, batch, i % cfg.n_critic == 0))
    run.flush()
    _sync(device)
    warm_s = time.perf_counter() - t_warm
    t0 = time.perf_counter()
    for i in range(steps):
        run.log(step(run, batch, i % cfg.n_critic == 0))
    _sync(device)
    ms = 1000 * (time.perf_counter() - t0) / steps
    run.flush()
    for fn in (run.g, run.d):
        if getattr(fn, "failed", None):
            print(f"  ({entry.name}: compile failed, eager instead: {fn.failed[:120]})")
    return ms, warm_s


def _entry(name: str, profile: str):
    for ds in DATASET_SIZE:
        if name in zoo.zoo(ds):
            return zoo.zoo(ds)[name], config.settings(ds, profile)
    raise SystemExit(f"unknown model {name!r}: a zoo name of {', '.join(DATASET_SIZE)}")


def worker(name: str, profile: str, device: torch.device, steps: int) -> None:
    """One model's fast path in a process of its own (for --concurrent): prints ``WORKER_MS <ms per step>``."""
    e, s = _entry(name, profile)
    teacher = None
    if e.kd in recipes.ONLINE_KD:
        teacher = zoo.build(zoo.zoo(e.dataset)[e.teacher], s)[0].to(device).eval()
    ms, _ = step_ms(e, s, device, "on", steps, teacher)
    print(f"WORKER_MS {ms:.4f}", flush=True)


def concurrent(names: list[str], counts: list[int], profile: str, device: torch.device, steps: int) -> None:
    """Independent runs side by side (what runs.train_all does on a GPU): n processes train the same model at
    once; the figure is the aggregate throughput against one process alone."""
    print(f"\nside by side: n processes, each {steps} timed steps of the fast path (as runs.train_all launches them)")
    print(f"{'model':26s} {'n':>3s} {'ms/step each':>12s} {'agg. steps/s':>12s} {'vs n=1':>7s}")
    for name in names:
        e, s = _entry(name, profile)
        base = None
        for n in counts:
            cmd = [sys.executable, __file__, "--worker", name, "--profile", profile, "--device", str(device),
                   "--steps", str(steps)]
            env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // n))}
            procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(n)]
            outs = [p.communicate()[0] for p in procs]
            ms = [float(line.split()[1]) for out in outs for line in out.splitlines() if line.startswith("WORKER_MS")]
            if len(ms) != n:
                print(f"{name:26s} {n:>3d}  a worker failed (exit codes {[p.returncode for p in procs]})")
                continue
            agg = sum(1000 / m for m in ms)
            base = base or (agg if n == 1 else None)
            vs = f"{agg / base:>6.2f}x" if base else f"{'-':>7s}"
            print(f"{name:26s} {n:>3d} {sum(ms) / n:>12.2f} {agg:>12.1f} {vs}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per model and path")
    ap.add_argument("--profile", default="full", help="whose batch sizes and planned steps to use")
    ap.add_argument("--only", nargs="*", default=["mnist", "cifar10"], help="datasets")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--models", nargs="*", default=None, help="only these zoo names (default: every model)")
    ap.add_argument("--switches", nargs="*", default=[], choices=list(SWITCHES),
                    help="also time the fast path with each of these switched on (its own columns: ms, ratio to "
                         "the fast path, warm-up seconds, which include compiling)")
    ap.add_argument("--concurrent", nargs="*", type=int, default=[],
                    help="also time n processes side by side training one model each, e.g. --concurrent 1 2 4 "
                         "(the --models given, else one MNIST and one CIFAR-10 KD student)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = repro.get_device(args.device)
    if args.worker:
        return worker(args.worker, args.profile, device, args.steps)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device={device} ({name}) torch={torch.__version__} profile={args.profile} steps={args.steps}")
    extra = "".join(f" {sw + ' ms':>{len(sw) + 3}s} {'vs fast':>7s} {'warm s':>6s}" for sw in args.switches)
    print(f"{'model':26s} {'batch':>5s} {'fp32 eager ms':>13s} {'fast ms':>8s} {'ratio':>6s} "
          f"{'fast img/s':>10s} {'planned steps':>13s} {'runs':>4s} {'est. s':>7s}{extra}")
    total = 0.0
    # the estimate prices each step on the path a run takes by default here (TrainConfig.fast = "auto")
    default_fast = fast_enabled(config.TrainConfig(), device)
    for ds in args.only:
        s = config.settings(ds, args.profile)
        entries = zoo.zoo(ds)
        teachers = {}
        for n, e in entries.items():
            if e.role == "teacher":
                teachers[n] = zoo.build(e, s)[0].to(device).eval()
        for n, e in entries.items():
            if args.models and n not in args.models:
                continue
            teacher = teachers.get(e.teacher) if e.kd in recipes.ONLINE_KD else None
            slow, _ = step_ms(e, s, device, "off", args.steps, teacher)
            fast, _ = step_ms(e, s, device, "on", args.steps, teacher)
            cols = ""
            for sw in args.switches:
                ms, warm = step_ms(e, s, device, "on", args.steps, teacher, **SWITCHES[sw])
                cols += f" {ms:>{len(sw) + 3}.2f} {fast / ms:>6.2f}x {warm:>6.1f}"
            bs = zoo.train_config(e, s).batch_size
            n_items = s.export.per_class * 10 if e.kd == "blackbox" else DATASET_SIZE[ds]  # teacher set or real
            planned = runs.planned_steps(e, s, n_items)
            seeds = len(s.seeds(e.role))
            est = planned * (fast if default_fast else slow) / 1000 * seeds
            total += est
            print(f"{n:26s} {bs:>5d} {slow:>13.2f} {fast:>8.2f} {slow / fast:>5.2f}x {bs / fast * 1000:>10.0f} "
                  f"{planned:>13,d} {seeds:>4d} {est:>7.0f}{cols}")
    if total:
        path = "the fast path" if default_fast else "the fp32 eager path (the default off CUDA)"
        print(f"estimated training time of the {args.profile} walk, models one after another on {path}: "
              f"{total / 60:.1f} min (evaluation, export and chapter 07's fine-tunes not included)")
    if args.concurrent:
        concurrent(args.models or ["cdcgan_c32_kd", "cgan_student_xs_kd"], args.concurrent, args.profile, device,
                   args.steps)


if __name__ == "__main__":
    main()
