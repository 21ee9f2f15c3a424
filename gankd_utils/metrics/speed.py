"""Generator speed: one measurement for every table (chapters 03-07 and the benchmarks).

A busy machine makes single timings lie: a model timed while another job runs
can look many times slower than its identical twin timed a second later. So
:func:`speed_table` times all the models of a table together, interleaved:

- a fixed thread count (``threads``; restored afterwards), the same for every model;
- one memory layout for every torch module (the default, contiguous one): a model trained in
  channels-last keeps that layout in its weights, and on 2 CPU cores a TinyGAN student fine-tuned
  so timed 2.2x the images/s of its identical parent loaded from a file;
- every model warmed up first, then ``rounds`` rounds, each timing one batch-1 call
  and one batch-``batch_size`` call of every model, the model order rotating per round;
- each timed batch-1 call follows an untimed one of the same model: a model's first call after
  another model's runs on cold caches, and since the rotation leaves each model the same
  predecessor, that cost stuck to some models only (identical c=64 twins timed 1.15 and 0.68
  ms on 2 CPU cores, the slower one always following a different architecture);
- the fastest round is the figure (other jobs only ever add time, so the minimum
  is the least disturbed measurement), and the spread (25th to 75th percentile, as a
  share of the median) is reported beside it, so a reader sees how much the
  machine disturbed the timing.
- with a time budget (``budget_s``), a model leaves the rounds once it has had ``min_rounds``
  of them and its timed calls took ``budget_s`` seconds in all (``torch.utils.benchmark`` stops on
  a run time in the same way): a large model on a small CPU (the CIFAR-10 teacher's batch of 64
  takes about 2 s on 2 cores) no longer costs ``rounds`` times its slowest call in every table,
  while the small ones, whose rounds are cheap and whose timings swing most, still get every round.
  The rounds each model had are in its row.

Any generator-like callable ``G(z, y)`` with ``z_dim`` and ``n_classes`` attributes
works: torch modules, and the ONNX Runtime wrapper of :mod:`gankd_utils.compress`.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .. import repro


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _inputs(G: nn.Module, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    return repro.latents(n, G.z_dim, int(getattr(G, "n_classes", 0) or 0), 0, "speed", device=device)


def speed_table(models: Mapping[str, Any], device: str | torch.device = "cpu", batch_size: int = 64,
                rounds: int = 10, warmup: int = 2, threads: int | None = None, budget_s: float | None = None,
                min_rounds: int = 3) -> dict[str, dict[str, float]]:
    """``{name: {"ms_b1", "ms_b1_spread_pct", "img_per_s", "img_per_s_spread_pct", ...}}`` for every model.

    Torch modules are moved to ``device``, put in eval mode and in the default memory layout (pass copies
    when the caller's must stay as they are); an ONNX wrapper computes on the CPU whatever the
    device. ``threads``: torch's CPU thread count while timing (None: leave it as it is).
    ``budget_s``: a model is timed for at most ``rounds`` rounds, and for no more once it has had
    ``min_rounds`` and its timed calls took ``budget_s`` seconds (None: every model ``rounds`` rounds).
    """
    if rounds < 1 or min_rounds < 1:
        raise ValueError(f"speed_table needs rounds >= 1 and min_rounds >= 1, got rounds={rounds}, "
                         f"min_rounds={min_rounds}")
    if budget_s is not None and not budget_s > 0:
        raise ValueError(f"budget_s is a time in seconds > 0 (or None: no budget), got {budget_s!r}")
    device = torch.device(device)
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        prepared = {}
        for name, G in models.items():
            if isinstance(G, nn.Module):  # every model in one layout, whatever the one it was trained in
                G = G.to(device).to(memory_format=torch.contiguous_format).eval()
            prepared[name] = (G, _inputs(G, 1, device), _inputs(G, batch_size, device))
        lat: dict[str, list[float]] = {n: [] for n in prepared}
        thr: dict[str, list[float]] = {n: [] for n in prepared}
        names = list(prepared)

        def timed_enough(name: str) -> bool:
            return (budget_s is not None and len(lat[name]) >= min_rounds
                    and sum(lat[name]) + sum(thr[name]) >= budget_s)

        with torch.no_grad():
            for name in names:
                G, a1, ab = prepared[name]
                for _ in range(warmup):
                    G(*a1)
                    G(*ab)
            _sync(device)
            for r in range(rounds):
                k = r % len(names)
                todo = [name for name in names[k:] + names[:k] if not timed_enough(name)]
                if not todo:
                    break
                for name in todo:
                    G, a1, ab = prepared[name]
                    G(*a1)  # untimed: the timed call below then finds this model's weights and kernels warm
                    _sync(device)
                    t0 = time.perf_counter()
                    G(*a1)
                    _sync(device)
                    t1 = time.perf_counter()
                    G(*ab)
                    _sync(device)
                    t2 = time.perf_counter()
                    lat[name].append(t1 - t0)
                    thr[name].append(t2 - t1)
    finally:
        torch.set_num_threads(old_threads)
    out = {}
    for name in names:
        lq = np.percentile(lat[name], [25, 50, 75])
        tq = np.percentile(thr[name], [25, 50, 75])
        out[name] = {"ms_b1": 1000 * min(lat[name]), "ms_b1_spread_pct": 100 * (lq[2] - lq[0]) / lq[1],
                     "img_per_s": batch_size / min(thr[name]), "img_per_s_spread_pct": 100 * (tq[2] - tq[0]) / tq[1],
                     "batch_size": batch_size, "rounds": len(lat[name]), "threads": threads or old_threads,
                     "device": str(device)}
    return out


def generator_speed(G: Any, device: str | torch.device = "cpu", batch_size: int = 64, rounds: int = 10,
                    threads: int | None = None) -> dict[str, float]:
    """:func:`speed_table` of one model (a benchmark's single figure)."""
    return speed_table({"G": G}, device, batch_size, rounds, threads=threads)["G"]
