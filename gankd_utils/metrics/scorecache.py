"""Scores kept on disk, keyed by the pipeline and the generator: a model is scored once per protocol.

Every chapter scores its models, and the later ones score many of them again with the same pipeline:
chapter 06 compares every model of chapters 03-05, chapter 05 scores chapter 04's teacher beside its
student, chapter 07 its students before pruning, and the last point of a chapter's curve is the
finished model its table scores. The pipeline is deterministic (:meth:`Evaluator.protocol_id`: the
same features, reference set, sample count and noise give the same numbers for the same generator),
so a score is kept under ``results/cache/scores/`` and read back when the same generator meets the
same pipeline again: the numbers are those a scoring would give, and every table that shows a model
shows the same ones.

The pipeline includes the code (:func:`code_id`): any change to this package's source, or another numpy
or torch, scores everything again, so an edited ``forward`` or metric is never answered from before.

"The same generator" is :func:`fingerprint`: the class of every module, its settings and the bytes of
every parameter and buffer. A model with a forward hook (a pruning mask still attached), a module from
outside ``torch.nn`` and this package (a quantized or compiled module) or an attribute that is not plain
data (an ONNX generator's file) has none and is always scored.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .. import checkpoint, paths
from ..io import atomic_write_text

# modules whose forward is their class, their settings, parameters and buffers (torch's parametrizations,
# such as spectral norm, included); anything else (quantized, compiled, foreign) is not fingerprinted
_KNOWN_MODULES = ("torch.nn.modules.", "torch.nn.utils.parametrize", "torch.nn.utils.parametrizations",
                  "gankd_utils.")


def _plain(v, depth: int = 0):
    """A module attribute as text, for the fingerprint; None where it cannot be put so."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return repr(v)
    if depth < 4 and isinstance(v, (tuple, list)):
        parts = [_plain(x, depth + 1) for x in v]
        return None if None in parts else f"{type(v).__name__}({', '.join(parts)})"
    if depth < 4 and isinstance(v, dict):
        parts = [(_plain(k, depth + 1), _plain(x, depth + 1)) for k, x in v.items()]
        return None if any(None in p for p in parts) else "{" + ", ".join(f"{a}: {b}" for a, b in sorted(parts)) + "}"
    if isinstance(v, torch.dtype):
        return str(v)
    if callable(v) and getattr(v, "__module__", None) and getattr(v, "__qualname__", None):
        return f"{v.__module__}.{v.__qualname__}"  # a function or class kept as a setting (an activation)
    return None


def _update_tensor(h, t: torch.Tensor) -> None:
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(checkpoint.tensor_bytes(t))  # in logical order: the memory format is not part of the model


def fingerprint(G: nn.Module) -> str | None:
    """sha256 of what a generator computes: every module's class and settings, every parameter and buffer,
    the device kind (torch's version is in :func:`code_id`). None for a model that cannot be fingerprinted
    so (a module from outside ``torch.nn`` and this package, a forward hook, an attribute that is neither
    plain data nor a tensor): such a model is always scored."""
    h = hashlib.sha256()
    try:
        device = next(G.parameters()).device.type
    except StopIteration:
        return None
    h.update(f"on {device}\n".encode())
    for name, m in G.named_modules():
        cls = type(m)
        if not cls.__module__.startswith(_KNOWN_MODULES) or m._forward_hooks or m._forward_pre_hooks:
            return None
        h.update(f"{name}: {cls.__module__}.{cls.__qualname__}({m.extra_repr()})\n".encode())
        for k, v in sorted(vars(m).items()):
            if k.startswith("_") or k == "training":
                continue
            if isinstance(v, torch.Tensor):  # a tensor kept as a plain attribute, not a buffer
                h.update(f"{k}=tensor".encode())
                _update_tensor(h, v)
                continue
            text = _plain(v)
            if text is None:
                return None
            h.update(f"{k}={text}\n".encode())
    for kind, items in (("param", G.named_parameters()), ("buffer", G.named_buffers())):
        for k, t in items:
            h.update(f"{kind} {k}".encode())
            _update_tensor(h, t)
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def code_id(package: Path = Path(__file__).resolve().parents[1]) -> str:
    """sha256 of the package's Python source (every ``.py`` file under ``package``, by relative path) and of
    numpy's and torch's versions: what draws the samples and computes the numbers. Read once per process."""
    h = hashlib.sha256(f"numpy {np.__version__} torch {torch.__version__}\n".encode())
    for f in sorted(package.rglob("*.py")):
        h.update(f"{f.relative_to(package).as_posix()}\n".encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def folder() -> Path:
    """Where the scores are kept: ``results/cache/scores`` (delete it to score every model again)."""
    return paths.results_root() / "cache" / "scores"


def _path(protocol: str, model: str) -> Path:
    return folder() / f"{hashlib.sha256(f'{protocol}|{model}'.encode()).hexdigest()[:32]}.json"


def load(protocol: str, model: str) -> dict[str, float] | None:
    """The scores kept for (``protocol``, ``model``'s fingerprint), or None (none kept, or a damaged file)."""
    p = _path(protocol, model)
    try:
        saved = json.loads(p.read_text())
        ok = saved["protocol"] == protocol and saved["model"] == model and isinstance(saved["scores"], dict)
        scores = {str(k): float(v) for k, v in saved["scores"].items()} if ok else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # a damaged file counts as none: the model is scored again and the file rewritten
    return scores


def store(protocol: str, model: str, scores: dict[str, float]) -> None:
    """Keep ``scores`` for (``protocol``, ``model``); scores that are not all finite are not kept (scored again)."""
    if not all(math.isfinite(v) for v in scores.values()):
        return
    kept = {"protocol": protocol, "model": model, "scores": scores}
    atomic_write_text(_path(protocol, model), json.dumps(kept, indent=1) + "\n")
