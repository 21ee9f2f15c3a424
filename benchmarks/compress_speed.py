"""fp32 torch vs fp32 ONNX Runtime vs int8 ONNX Runtime for the KD students, on the CPU (prints figures; not a test).

    .venv/bin/python benchmarks/compress_speed.py [--threads 1] [--batch 64] [--repeats 10] [--models dc32,xs]

Speed and file size do not depend on what the weights learned, so every
student is randomly initialised (seeded); its BatchNorm running statistics are
first set from a few training-mode batches, so the int8 calibration sees
activation ranges like a trained model's. The int8 error column is measured on
these random weights: a sanity check, not the quality cost (notebook 07
measures that with FID on trained students). Everything runs in one process,
one model after the other, with the same thread count for torch and ORT.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime
import torch

import gankd_utils  # noqa: F401
from gankd_utils import compress
from gankd_utils.config import CompressConfig
from gankd_utils.metrics import speed_table
from gankd_utils.models import CGAN_PRESETS, CondDCGANGenerator, ResNetGenerator, TinyGANGenerator
from gankd_utils.models.layers import init_weights

ZOO = {
    "dc64": lambda: CondDCGANGenerator(c=64),
    "dc32": lambda: CondDCGANGenerator(c=32),
    "s": lambda: ResNetGenerator(**CGAN_PRESETS["student_s"]),
    "xs": lambda: ResNetGenerator(**CGAN_PRESETS["student_xs"]),
    "tiny32": lambda: TinyGANGenerator(resolution=32),
}
LABEL = {"dc64": "CondDCGAN c=64", "dc32": "CondDCGAN c=32", "s": "cGAN student_s", "xs": "cGAN student_xs",
         "tiny32": "TinyGAN 32px"}


@torch.no_grad()
def settled(G: torch.nn.Module, seed: int = 0, batches: int = 10) -> torch.nn.Module:
    """Seeded weights and BatchNorm running statistics averaged over a few training-mode batches."""
    if not isinstance(G, CondDCGANGenerator):  # DCGAN keeps torch's default init, seeded globally below
        init_weights(G, torch.Generator().manual_seed(seed))
    for m in G.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    G.train()
    for i in range(batches):
        G(*compress.example_inputs(G, 64, seed + i, "bn-stats"))
    for m in G.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.1
    return G.eval()


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for torch and ORT (default 1)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--models", default=",".join(ZOO), help=f"comma-separated, from {','.join(ZOO)}")
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"CPU, threads={args.threads}, batch={args.batch}, fastest of {args.repeats} interleaved rounds after 2 "
          f"warm-up calls; torch={torch.__version__} onnxruntime={onnxruntime.__version__}")
    print("randomly initialised students (seeded, BN statistics from 10 training-mode batches): "
          "speed and bytes are real, the int8 error is only a sanity check")
    head = (f"{'model':16s} {'variant':18s} {'file bytes':>11s} {'params':>9s} {'MACs/img':>11s} "
            f"{'ms b=1':>8s} {'img/s b=' + str(args.batch):>11s} {'int8 err':>9s}")
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for key in args.models.split(","):
            G = settled(ZOO[key]())
            fp32 = compress.export_onnx(G, d / f"{key}.onnx")
            int8 = compress.quantize_onnx_int8(fp32, d / f"{key}.int8.onnx", compress.calibration_batches(G, 8, 32))
            fp16 = compress.to_fp16_safetensors(G, d / f"{key}.fp16")
            pruned = compress.prune_channels(G, 0.5, min_channels=CompressConfig.min_channels)  # as chapter 07
            pruned_path = compress.export_onnx(pruned, d / f"{key}.pruned.onnx")
            z, y = compress.example_inputs(G, 64, 123, "eval")
            x32 = compress.onnx_generate(compress.ort_session(fp32), z, y)
            x8 = compress.onnx_generate(compress.ort_session(int8), z, y)
            err = float(np.abs(x8 - x32).mean())
            variants = {"fp32 torch": (compress.compression_row("", G), G),
                        "fp16 safetensors": (compress.compression_row("", G, file_path=fp16), None),
                        "fp32 ONNX": (compress.compression_row("", G, onnx_path=fp32),
                                      compress.OnnxGenerator(fp32, G, args.threads)),
                        "int8 ONNX": (compress.compression_row("", G, onnx_path=int8),
                                      compress.OnnxGenerator(int8, G, args.threads)),
                        "pruned 50% ONNX": (compress.compression_row("", pruned, onnx_path=pruned_path),
                                            compress.OnnxGenerator(pruned_path, pruned, args.threads))}
            speed = speed_table({k: m for k, (_, m) in variants.items() if m is not None}, "cpu", args.batch,
                                args.repeats, threads=args.threads)
            for variant, (r, _) in variants.items():
                s_ = speed.get(variant, {})
                print(f"{LABEL[key]:16s} {variant:18s} {r['file_bytes']:>11,d} {r['params']:>9,d} {r['macs']:>11,d} "
                      f"{fmt(s_.get('ms_b1'), '8.2f'):>8s} {fmt(s_.get('img_per_s'), '11.0f'):>11s} "
                      f"{(f'{err:9.4f}' if variant == 'int8 ONNX' else ''):>9s}")
            kernels = compress.onnx_op_counts(int8, optimized=True)
            conv_like = {k: v for k, v in kernels.items() if any(s in k for s in ("Conv", "Gemm"))}
            print(f"{'':16s} int8 weights in: {compress.quantized_ops(int8)}; ORT runs: {conv_like}")


if __name__ == "__main__":
    main()
