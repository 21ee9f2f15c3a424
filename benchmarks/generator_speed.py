"""Teacher vs student generator speed, side by side in one run (prints figures; not a test).

    .venv/bin/python benchmarks/generator_speed.py [--device cpu] [--batch 64] [--repeats 20] [--budget-s 5]
    .venv/bin/python benchmarks/generator_speed.py --only cifar10 --repeats 10 --budget-s 5 --vs-no-budget

Speed does not depend on the weights, so untrained generators of every architecture
of chapters 03-05 (MNIST DCGANs, the CIFAR-10 ResNet cGANs, the 32x32 TinyGAN
student) are timed together with ``metrics.speed_table`` (interleaved rounds, a
fixed thread count, the fastest round and the spread), the measurement every table uses.
``--budget-s`` times each model as the ``quick`` tables do (``EvalConfig.timing_budget_s``: no more rounds
once a model has had three and its timed calls took that long); ``--vs-no-budget`` then times the same
models again with every round, in the same run, and prints both timings' figures and wall time side by side.
"""
from __future__ import annotations

import argparse
import time

import torch

import gankd_utils  # noqa: F401
from gankd_utils import config, zoo
from gankd_utils.metrics import count_params, speed_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20, help="interleaved timing rounds")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="stop timing a model after 3 rounds once its timed calls took this long (quick: 5)")
    ap.add_argument("--vs-no-budget", action="store_true", help="with --budget-s: time every round too, after it")
    ap.add_argument("--only", choices=sorted(zoo.ZOOS), default=None, help="one dataset's architectures")
    args = ap.parse_args()
    if args.vs_no_budget and args.budget_s is None:
        ap.error("--vs-no-budget compares against --budget-s: give both")
    entries = {**zoo.mnist_zoo(), **zoo.cifar10_zoo()}
    settings = {"mnist": config.settings("mnist", "full"), "cifar10": config.settings("cifar10", "full")}
    # a KD student has its scratch twin's architecture; the TinyGAN student is the one KD-only architecture
    gens = {n: e.make_g(settings[e.dataset]) for n, e in entries.items()
            if (e.role != "kd" or n == "tinygan_student") and args.only in (None, e.dataset)}
    threads = args.threads or torch.get_num_threads()
    for budget in [args.budget_s] + ([None] if args.vs_no_budget else []):  # with the budget first, then without
        t0 = time.perf_counter()
        r = speed_table(gens, args.device, args.batch, args.repeats, threads=threads, budget_s=budget)
        took = time.perf_counter() - t0
        print(f"device={args.device} batch={args.batch} threads={threads} rounds<={args.repeats} "
              f"budget_s={budget} torch={torch.__version__}: the timing took {took:.1f} s")
        print(f"{'model':28s} {'params':>10s} {'img/s (batch)':>14s} {'spread':>7s} {'latency b=1 ms':>15s} "
              f"{'spread':>7s} {'speed-up':>9s} {'rounds':>7s}")
        base = {}
        for name, G in gens.items():
            fam, s_ = entries[name].family, r[name]
            if entries[name].role == "teacher":
                base[fam] = s_["img_per_s"]
            up = s_["img_per_s"] / base[fam] if fam in base else float("nan")
            print(f"{name:28s} {count_params(G):>10,d} {s_['img_per_s']:>14.0f} {s_['img_per_s_spread_pct']:>6.0f}% "
                  f"{s_['ms_b1']:>15.2f} {s_['ms_b1_spread_pct']:>6.0f}% {up:>8.1f}x {s_['rounds']:>7d}")


if __name__ == "__main__":
    main()
