"""Teacher vs student generator speed, side by side in one run (prints figures; not a test).

    .venv/bin/python benchmarks/generator_speed.py [--device cpu] [--batch 64] [--repeats 20]

Speed does not depend on the weights, so untrained generators of every architecture
of chapters 03-05 (MNIST DCGANs, the CIFAR-10 ResNet cGANs, the 32x32 TinyGAN
student) are timed; every model runs in the same process, one after the other.
"""
from __future__ import annotations

import argparse

import torch

import gankd_utils  # noqa: F401
from gankd_utils import experiments
from gankd_utils.metrics import count_params, generator_speed
from gankd_utils.models import TinyGANGenerator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    zoo = {**experiments.mnist_zoo(), **experiments.cifar10_zoo(),
           "tinygan_student": experiments.Spec("tinygan_student", "cifar10", "scratch",
                                               lambda: TinyGANGenerator(resolution=32, n_classes=10), None)}
    seen = {}
    for name, spec in zoo.items():
        if spec.role == "kd":
            continue  # same architecture as the scratch twin
        seen[name] = spec.make_g()
    print(f"device={args.device} batch={args.batch} threads={torch.get_num_threads()} torch={torch.__version__}")
    print(f"{'model':28s} {'params':>10s} {'img/s (batch)':>14s} {'latency b=1 ms':>15s} {'speed-up':>9s}")
    base = {}
    for name, G in seen.items():
        fam = zoo[name].family
        r = generator_speed(G, args.device, args.batch, args.repeats)
        if zoo[name].role == "teacher":
            base[fam] = r["images_per_s"]
        up = r["images_per_s"] / base[fam] if fam in base else float("nan")
        print(f"{name:28s} {count_params(G):>10,d} {r['images_per_s']:>14.0f} {r['latency_ms_b1']:>15.2f} {up:>8.1f}x")


if __name__ == "__main__":
    main()
