"""Data-parallel training on one GPU or many, without a framework.

A run started by ``torchrun --nproc_per_node N`` or ``accelerate launch`` finds
RANK / WORLD_SIZE / LOCAL_RANK in its environment; :func:`setup` then joins
the process group (NCCL on GPUs, gloo on CPUs). A plain ``python`` run is one
process and nothing here does anything.

GAN steps call D several times before one backward pass (teacher images, student
images, the real branch, then again for G's losses), which DistributedDataParallel's
one-forward-one-backward bookkeeping does not expect. So, as StyleGAN2-ADA does, the
models stay plain modules: every rank starts from rank 0's weights, and gradients are
averaged with one all-reduce per optimizer step (:meth:`Dist.sync_grads`). Identical
weights and identical averaged gradients keep the ranks identical, spectral-norm power
iterations included; only BatchNorm running statistics differ, and rank 0's are saved.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from . import repro


@dataclass(frozen=True)
class Dist:
    """Where this process stands: ``rank`` of ``world`` processes (``world == 1``: not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes files."""
        return self.rank == 0

    def _group(self):
        import torch.distributed as td

        return td

    def broadcast_module(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers to every rank."""
        if not self.enabled:
            return
        td = self._group()
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                td.broadcast(t.data, src=0)

    def sync_grads(self, params: Iterable[torch.Tensor]) -> None:
        """Average the gradients of ``params`` over ranks (one all-reduce of a flat buffer)."""
        if not self.enabled:
            return
        params = [p for p in params if p.grad is not None]
        if not params:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        self._group().all_reduce(flat)
        flat.div_(self.world)
        offset = 0
        for p in params:
            n = p.grad.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The mean of ``t`` over ranks (in place; returns it)."""
        if self.enabled:
            self._group().all_reduce(t)
            t.div_(self.world)
        return t

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        self._group().all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            self._group().barrier()


def from_env() -> Dist:
    """The :class:`Dist` the launcher describes (RANK, WORLD_SIZE, LOCAL_RANK), without joining anything."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Dist(rank=int(os.environ.get("RANK", "0")), world=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def setup(device: str = "auto") -> tuple[Dist, torch.device]:
    """Join the process group when launched with several processes; return (Dist, this rank's device).

    ``device``: "auto" (this rank's GPU when CUDA is present, else the CPU), "cpu",
    or "cuda". Each rank uses GPU ``LOCAL_RANK``.
    """
    d = from_env()
    dev = repro.get_device(device)
    if dev.type == "cuda":
        if d.enabled and d.local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {d.local_rank} but only {torch.cuda.device_count()} GPU(s) are visible: "
                               "launch at most that many processes per node")
        dev = torch.device("cuda", d.local_rank if d.enabled else (dev.index or 0))
        torch.cuda.set_device(dev)
    if d.enabled:
        import torch.distributed as td

        if not td.is_initialized():
            td.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return d, dev


def teardown(d: Dist, ok: bool = True) -> None:
    """Leave the process group when one was joined: after a final barrier when this rank succeeded (``ok``).

    A rank that failed (``ok=False``) leaves without the barrier: the other ranks wait in their next
    collective, not in a barrier, so a barrier here would hang this rank before it reports its error;
    leaving at once lets it exit with its traceback, and the launcher (torchrun) then stops the others.
    """
    if d.enabled:
        import torch.distributed as td

        if td.is_initialized():
            if ok:
                td.barrier()
            td.destroy_process_group()
