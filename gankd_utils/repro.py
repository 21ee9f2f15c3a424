"""Reproducibility: seeds, device choice and per-purpose noise.

Noise is drawn on the CPU from a ``torch.Generator`` seeded per purpose and only
then moved to the device, so the teacher and the student see the same z on any
machine, CPU or GPU (STYLE.md: never hard-code "cuda").
"""
from __future__ import annotations

import hashlib
import os
import platform
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch



def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def get_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA if present, else Apple MPS, else CPU; anything else is passed to torch, and a name torch
    does not know (``"gpu"``) is refused with the names to use."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):  # torch's own message lists every device type it knows
        raise ValueError(f"DEVICE={device!r} is not a device: use 'auto' (a GPU where there is one, else the CPU), "
                         "'cpu' or 'cuda' (or 'cuda:1' for the second GPU)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"DEVICE={device!r} was asked for but CUDA is not available here; use 'auto' or 'cpu'")
    return dev


def describe_device(device: str | torch.device = "auto") -> str:
    """The machine a number came from, for metrics.json and the shipped weights' manifest.

    ``"cuda:0 (NVIDIA H100 80GB HBM3)"``, ``"cpu (Intel(R) Xeon(R) ..., 2 cores)"``; the CPU's model
    name is read from /proc/cpuinfo where there is one, else from :mod:`platform`.
    """
    dev = get_device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if dev.type != "cpu":
        return str(dev)
    name = _cpuinfo(("model name",)) or platform.processor() or platform.machine() or "unknown CPU"
    return f"cpu ({name}, {os.cpu_count()} cores)"


# the CPU flags (/proc/cpuinfo) of instructions that run bf16 arithmetic natively: x86 (AVX512-BF16, AMX) and Arm
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def _cpuinfo(keys: Sequence[str], cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """The value of the first line of ``cpuinfo`` whose key is one of ``keys`` (the first CPU's); None where
    there is no such line or no such file."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in keys:
            return value.strip()
    return None


def cpu_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool | None:
    """Whether this CPU lists bf16 instructions (``CPU_BF16_FLAGS``): True, False, or None where it cannot
    tell (no ``cpuinfo``, or one without flags). Without them bf16 autocast is emulated and runs several
    times slower than fp32, so ``fast="on"`` on such a CPU is a mistake worth a clear warning."""
    flags = _cpuinfo(("flags", "Features"), cpuinfo)
    return None if flags is None else bool(set(flags.split()) & CPU_BF16_FLAGS)


def purpose_seed(seed: int, purpose: str | int) -> int:
    """A stable 63-bit seed for (seed, purpose).

    Purposes ('train', 'fixed', 'eval', 'export', a class id, ...) keep streams
    apart: the fixed sample sheet never shifts when training draws more noise.
    """
    key = f"{seed}:{purpose}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") >> 1


def generator(seed: int, purpose: str | int = "train") -> torch.Generator:
    """A CPU ``torch.Generator`` for one purpose of one seed."""
    g = torch.Generator(device="cpu")
    g.manual_seed(purpose_seed(seed, purpose))
    return g


def noise(n: int, z_dim: int, seed: int | torch.Generator, purpose: str | int = "fixed",
          device: str | torch.device = "cpu") -> torch.Tensor:
    """Standard-normal z of shape (n, z_dim), drawn on the CPU, then moved to ``device``."""
    g = seed if isinstance(seed, torch.Generator) else generator(seed, purpose)
    return torch.randn(n, z_dim, generator=g).to(device)


def labels(n: int, n_classes: int, seed: int | torch.Generator, purpose: str | int = "fixed",
           device: str | torch.device = "cpu") -> torch.Tensor:
    """Uniform class ids of shape (n,), drawn on the CPU like :func:`noise`."""
    g = seed if isinstance(seed, torch.Generator) else generator(seed, purpose)
    return torch.randint(0, n_classes, (n,), generator=g).to(device)


def latents(n: int, z_dim: int, n_classes: int = 0, seed: int | torch.Generator = 0, purpose: str | int = "fixed",
            classes: Sequence[int] | None = None, layout: str = "cycle",
            device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor | None]:
    """The one way to draw a batch of generator inputs: ``(z (n, z_dim), y (n,) or None)``.

    z comes from (seed, purpose) as in :func:`noise`, so two models called with the same
    arguments see the same noise. For a conditional model (``n_classes`` > 0) y runs
    through ``classes`` (default: all): ``layout="cycle"`` gives classes[i % k] (one class
    per column of a grid ``k`` wide), ``"rows"`` gives each class n // k times in a row.
    """
    z = noise(n, z_dim, seed, purpose, device)
    if not n_classes:
        return z, None
    ids = torch.as_tensor(list(classes) if classes is not None else range(n_classes), dtype=torch.int64)
    if layout == "cycle":
        y = ids[torch.arange(n) % len(ids)]
    elif layout == "rows":
        y = ids.repeat_interleave(max(1, -(-n // len(ids))))[:n]
    else:
        raise ValueError(f"layout must be 'cycle' or 'rows', got {layout!r}")
    return z, y.to(device)


def class_grid_labels(n_classes: int, per_class: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """0,0,...,1,1,...: ``per_class`` of each class, row-major for a sample sheet."""
    return torch.arange(n_classes).repeat_interleave(per_class).to(device)
