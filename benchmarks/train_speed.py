"""Training speed of every model of the walk: the plain fp32 eager path and the fast path side by side.

    .venv/bin/python benchmarks/train_speed.py [--device auto] [--steps 20] [--profile full] [--only mnist]
                                               [--models NAME ...] [--switches compile channels_last[+compile]]
                                               [--base default|fp32|fast] [--concurrent 1 2 4]

For each model of chapters 03-05 (the zoo), in one process: milliseconds per
training step (one D update, plus the G update every ``n_critic``-th step, as the
recipe runs it) and images per second, with ``fast="off"`` (fp32, eager, noise
from a CPU generator) and ``fast="on"`` (bf16 autocast, TF32, fused Adam, noise
on the device, no host sync per step); the ratio is the figure. ``--switches``
adds, per switch, the device's default path (the fast path on CUDA, fp32 eager
elsewhere; ``--base fp32`` or ``--base fast`` picks another) with ``compile="on"``
(torch.compile of G and D) or ``channels_last=True``, its ratio to that path in the
default layout and its warm-up time (compiling included): they are on in a profile
only where this shows they pay (channels_last: CIFAR-10 in the laptop profiles, from
its CPU figures); on a CPU with bf16 instructions ``--base fast`` shows what
``--fast on --channels-last on`` buys there. Batches are
random images of the right shape: a step's cost does not depend on what the
images show. The last table multiplies each model's step cost by the steps the
profile plans for it (seeds included) and estimates the training time of the walk, on the path
a run takes by default on that device (the fast path on CUDA, fp32 eager elsewhere). Timed pieces
then price what the stages do besides training (evaluator classifiers, scoring, the teacher-set
exports, chapter 07's fine-tunes), so the last line estimates the whole walk (``beyond_training``).
``--concurrent 1 2 4`` then times n processes side by side, each training one model on the path
a run takes there (or the one ``--base`` names; as ``runs.train_all`` runs the independent runs on a
GPU, and ``--parallel`` on a CPU): the aggregate throughput against one process alone says how many
runs the device has room for.
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
import torch.nn.functional as F

import gankd_utils  # noqa: F401
from gankd_utils import config, metrics, recipes, repro, runs, zoo
from gankd_utils.data import ImageSet
from gankd_utils.models import ConvClassifier
from gankd_utils.runstate import RunState, fast_enabled

DATASET_SIZE = {"mnist": 60_000, "cifar10": 50_000}
COMPRESSED = ("mnist/cdcgan_c32_kd", "cifar10/cgan_student_s_kd", "cifar10/tinygan_student")  # notebook 07's STUDENTS
# the GPU stages that score each dataset, each on a fresh machine that computes the reference statistics again
# (compare trains nothing and runs on a CPU: it is left out)
SCORING_STAGES = {"mnist": ("mnist", "compress"), "cifar10": ("cifar10-students", "tinygan", "compress")}
EXPORTS = 3  # the CIFAR-10 teacher set is exported by the cifar10-students, tinygan and compress stages
SWITCHES = {"compile": {"compile": "on"}, "channels_last": {"channels_last": True}}  # TrainConfig settings


def switch_settings(name: str) -> dict:
    """The TrainConfig settings of a ``--switches`` entry: one switch, or several joined by ``+``
    (``channels_last+compile``: both at once, as a run given both flags trains)."""
    parts = name.split("+")
    wrong = [p for p in parts if p not in SWITCHES]
    if wrong:
        raise argparse.ArgumentTypeError(f"unknown switch {'+'.join(wrong)!r} in {name!r}: choose from "
                                         f"{', '.join(SWITCHES)}, or several joined by '+'")
    return {k: v for p in parts for k, v in SWITCHES[p].items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_ms(entry, settings, device, fast: str, steps: int, teacher=None, **switches) -> tuple[float, float]:
    """Mean milliseconds per training step over ``steps`` steps, and the seconds of the 3 warm-up steps before.

    ``switches``: more TrainConfig settings of the path (compile="on", channels_last=True).
    """
    # the plain columns time the default layout and eager G/D whatever the profile sets; the switches add theirs
    cfg = dataclasses.replace(zoo.train_config(entry, settings), fast=fast,
                              **{"compile": "off", "channels_last": False, **switches})
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
    with run.precision():  # TF32 on a GPU's fast path, as a training runs
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


def _seconds(fn, device: torch.device, reps: int = 2) -> float:
    """Mean seconds of ``fn()`` after one warm-up call."""
    fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / reps


def beyond_training(profile: str, device: torch.device, datasets, step_cost: dict[str, float]) -> dict[str, float]:
    """Seconds of what the walk's GPU stages do besides training, from timed pieces (an estimate).

    Evaluator classifiers: their training steps (batch 128, as metrics.train_classifier) x the profile's
    epochs. Scoring: per model and seed (and per snapshot), its n_samples images generated and scored
    (classifier features, FID, KID, precision/recall), plus the reference statistics once per stage; chapter
    07 scores each compressed student 6 + 3 x amounts times (ONNX variants priced as torch ones). Exports:
    the CIFAR-10 teacher set (per_class x 10 images). Fine-tunes: chapter 07's steps x the student's step cost.
    """
    out = dict.fromkeys(("evaluator classifiers", "teacher-set exports", "scoring", "chapter 07 fine-tunes"), 0.0)
    for ds in datasets:
        s = config.settings(ds, profile)
        ev, comp = s.eval, s.compress
        c, hw = (1, 28) if ds == "mnist" else (3, 32)
        g = repro.generator(0, "bench-extra")
        cl = torch.channels_last  # as metrics.train_classifier trains it
        clf = ConvClassifier(c, 10, width=ev.cls_width).to(device, memory_format=cl)
        opt = torch.optim.Adam(clf.parameters(), lr=1e-3)
        x = torch.rand(128, c, hw, hw, generator=g).mul(2).sub(1).to(device).contiguous(memory_format=cl)
        y = torch.randint(0, 10, (128,), generator=g).to(device)

        def clf_step():
            loss = F.cross_entropy(clf(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        n_train = ev.cls_n_train or DATASET_SIZE[ds]
        out["evaluator classifiers"] += _seconds(clf_step, device, 5) * ev.cls_epochs * (n_train // 128)
        ex = metrics.ClassifierExtractor(clf.to(memory_format=torch.contiguous_format).eval(), f"{ds}cls", 0.0, "bench")
        batch = torch.rand(ev.batch_size, c, hw, hw, generator=g).mul(2).sub(1)
        per_image = _seconds(lambda: ex.features(batch, ev.batch_size), device) / ev.batch_size
        n_ref = ev.n_ref or DATASET_SIZE[ds]
        real = ImageSet(torch.zeros(0, c, hw, hw, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64),
                        tuple(str(i) for i in range(10)), "bench")
        scorer = metrics.Evaluator(ex, real, ev.n_samples, batch_size=ev.batch_size)
        ref = torch.rand(min(n_ref, metrics.KID_REF_ROWS), c, hw, hw, generator=g).mul(2).sub(1)
        feats = ex.features(ref, ev.batch_size)
        scorer._stats = (*metrics.feature_stats(feats), feats)  # the reference statistics, not written to the cache
        fake = torch.rand(ev.n_samples, c, hw, hw, generator=g).mul(2).sub(1)
        score = _seconds(lambda: scorer.score_images(fake, torch.arange(ev.n_samples) % 10), device, 1)
        out["scoring"] += per_image * n_ref * len(SCORING_STAGES[ds])
        for n, e in zoo.zoo(ds).items():
            G = zoo.build(e, s)[0].to(device).eval()
            zb = torch.randn(ev.batch_size, G.z_dim, generator=g).to(device)
            yb = (torch.arange(ev.batch_size) % 10).to(device) if G.n_classes else None
            with torch.no_grad():
                gen = _seconds(lambda: G(zb, yb), device) / ev.batch_size * ev.n_samples
            snaps = max(zoo.train_config(e, s).snapshots - 1, 0)
            key = f"{ds}/{n}"
            times = len(s.seeds(e.role)) + snaps + (6 + 3 * len(comp.amounts) if key in COMPRESSED else 0)
            out["scoring"] += (gen + score) * times
            if e.role == "teacher" and ds == "cifar10":
                out["teacher-set exports"] += gen / ev.n_samples * s.export.per_class * 10 * EXPORTS
            if key in COMPRESSED and n in step_cost:
                # one per amount, and the control's (the unpruned student fine-tuned alike)
                out["chapter 07 fine-tunes"] += (len(comp.amounts) + 1) * comp.finetune_steps * step_cost[n] / 1000
    return out


def _entry(name: str, profile: str):
    for ds in DATASET_SIZE:
        if name in zoo.zoo(ds):
            return zoo.zoo(ds)[name], config.settings(ds, profile)
    raise SystemExit(f"unknown model {name!r}: a zoo name of {', '.join(DATASET_SIZE)}")


def worker(name: str, profile: str, device: torch.device, steps: int, fast: str = "on") -> None:
    """One model's training steps (``fast``: "on" the fast path, "off" fp32 eager) in a process of its own (for
    --concurrent): prints ``WORKER_MS <ms per step>``."""
    e, s = _entry(name, profile)
    teacher = None
    if e.kd in recipes.ONLINE_KD:
        teacher = zoo.build(zoo.zoo(e.dataset)[e.teacher], s)[0].to(device).eval()
    ms, _ = step_ms(e, s, device, fast, steps, teacher)
    print(f"WORKER_MS {ms:.4f}", flush=True)


def concurrent(names: list[str], counts: list[int], profile: str, device: torch.device, steps: int,
               fast: str = "on") -> None:
    """Independent runs side by side (what runs.train_all does on a GPU): n processes train the same model at
    once, each on the path ``fast`` names ("on": the fast path, "off": fp32 eager); the figure is the aggregate
    throughput against one process alone."""
    path = "the fast path" if fast == "on" else "fp32 eager"
    print(f"\nside by side: n processes, each {steps} timed steps of {path} (as runs.train_all launches them)")
    print(f"{'model':26s} {'n':>3s} {'ms/step each':>12s} {'agg. steps/s':>12s} {'vs n=1':>7s}")
    for name in names:
        e, s = _entry(name, profile)
        base = None
        for n in counts:
            cmd = [sys.executable, __file__, "--worker", name, "--profile", profile, "--device", str(device),
                   "--steps", str(steps), "--base", "fast" if fast == "on" else "fp32"]
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
    ap.add_argument("--switches", nargs="*", default=[], metavar="SWITCH",
                    help=f"also time the device's default path with each of these switched on ({', '.join(SWITCHES)}, "
                         "or several joined by '+', e.g. channels_last+compile; its own columns: ms, ratio to that "
                         "path, warm-up seconds, which include compiling)")
    ap.add_argument("--base", default="default", choices=["default", "fp32", "fast"],
                    help="the path the --switches columns switch on and compare with: the device's default (the "
                         "fast path on CUDA, fp32 eager elsewhere), fp32 eager, or the fast path (e.g. bf16 + "
                         "channels_last on a CPU with bf16 instructions: --device cpu --base fast --switches "
                         "channels_last)")
    ap.add_argument("--concurrent", nargs="*", type=int, default=[],
                    help="also time n processes side by side training one model each, e.g. --concurrent 1 2 4 "
                         "(the --models given, else one MNIST and one CIFAR-10 KD student)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        switches = {sw: switch_settings(sw) for sw in args.switches}
    except argparse.ArgumentTypeError as err:
        ap.error(str(err))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = repro.get_device(args.device)
    # the path a run takes here (TrainConfig.fast = "auto": the fast path on CUDA only), or the one --base names
    default_fast = fast_enabled(config.TrainConfig(), device)
    on = default_fast if args.base == "default" else args.base == "fast"
    if args.worker:
        return worker(args.worker, args.profile, device, args.steps, "on" if on else "off")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device={device} ({name}) torch={torch.__version__} profile={args.profile} steps={args.steps}")
    extra = "".join(f" {sw + ' ms':>{len(sw) + 3}s} {'vs base':>7s} {'warm s':>6s}" for sw in args.switches)
    print(f"{'model':26s} {'batch':>5s} {'fp32 eager ms':>13s} {'fast ms':>8s} {'ratio':>6s} "
          f"{'fast img/s':>10s} {'planned steps':>13s} {'runs':>4s} {'est. s':>7s}{extra}")
    total = 0.0
    step_cost: dict[str, float] = {}  # ms per step on the default path, by model
    # the estimate prices each step on the path a run takes by default here (default_fast)
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
            base, base_ms = ("on", fast) if on else ("off", slow)
            for sw in args.switches:
                ms, warm = step_ms(e, s, device, base, args.steps, teacher, **switches[sw])
                cols += f" {ms:>{len(sw) + 3}.2f} {base_ms / ms:>6.2f}x {warm:>6.1f}"
            bs = zoo.train_config(e, s).batch_size
            n_items = s.export.per_class * 10 if e.kd == "blackbox" else DATASET_SIZE[ds]  # teacher set or real
            planned = runs.planned_steps(e, s, n_items)
            seeds = len(s.seeds(e.role))
            step_cost[n] = fast if default_fast else slow
            est = planned * step_cost[n] / 1000 * seeds
            total += est
            print(f"{n:26s} {bs:>5d} {slow:>13.2f} {fast:>8.2f} {slow / fast:>5.2f}x {bs / fast * 1000:>10.0f} "
                  f"{planned:>13,d} {seeds:>4d} {est:>7.0f}{cols}")
    if total:
        path = "the fast path" if default_fast else "the fp32 eager path (the default off CUDA)"
        print(f"estimated training time of the {args.profile} walk, models one after another on {path}: "
              f"{total / 60:.1f} min")
        if not args.models:  # the whole walk: what the stages do besides training, from timed pieces
            extra = beyond_training(args.profile, device, args.only, step_cost)
            print("besides training (estimated from timed pieces; what each counts: beyond_training's docstring):")
            for what, sec in extra.items():
                print(f"  {what:26s} {sec / 60:7.1f} min")
            print(f"estimated time of the {args.profile} walk's stages ({', '.join(args.only)}), one run at a time: "
                  f"{(total + sum(extra.values())) / 60:.1f} min (compare, which runs on a CPU, not included)")
    if args.concurrent:
        concurrent(args.models or ["cdcgan_c32_kd", "cgan_student_xs_kd"], args.concurrent, args.profile, device,
                   args.steps, "on" if on else "off")


if __name__ == "__main__":
    main()
