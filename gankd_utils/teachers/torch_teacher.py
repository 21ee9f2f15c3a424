"""Any torch generator as a teacher, with the interface the export uses for BigGAN.

The CIFAR-10 and TinyGAN chapters distil from a generator the project trained
itself (a gankd checkpoint: ``NAME.safetensors`` + ``NAME.json``). Wrapped in
:class:`TorchTeacher` it exports (z, y, image) triples exactly as BigGAN does:
per-class noise from a CPU generator, uint8 images, one manifest.

Noise: standard normal z (N, z_dim), as these generators were trained with;
a truncation t < 1 asks for the truncation trick instead, the truncated normal
on [-2, 2] scaled by t of :func:`gankd_utils.teachers.biggan.truncated_z_sample`.
Images: the generator's float (N, C, H, W) in [-1, 1] become uint8 (N, H, W, C).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .. import checkpoint, repro
from ..classes import check_class_ids, class_names
from ..data import to_uint8
from ..io import sha256_file
from ..models import inference_layout
from .biggan import check_truncation, truncated_z_sample


class TorchTeacher:
    """A torch generator ``G(z, y) -> (N, C, H, W) in [-1, 1]`` seen as a teacher.

    ``G`` needs ``z_dim`` and ``n_classes`` attributes (0 for an unconditional
    model, which gets no labels); ``img_shape`` (C, H, W) is read when present,
    else measured with one sample.
    """

    kind = "checkpoint"

    def __init__(self, G: nn.Module, device: str | torch.device = "auto", name: str | None = None,
                 source: str | None = None, weights_sha256: str | None = None,
                 names: tuple[str, ...] | None = None):
        if not hasattr(G, "z_dim"):
            raise TypeError(f"{type(G).__name__} has no z_dim attribute: a teacher generator must say its noise size")
        self.device = repro.get_device(device)
        self.G = G.to(self.device).eval()
        self.z_dim = int(G.z_dim)
        self.n_classes = int(getattr(G, "n_classes", 0) or 0)
        shape = getattr(G, "img_shape", None)
        if shape is None:
            with torch.no_grad():
                y = torch.zeros(1, dtype=torch.int64, device=self.device) if self.n_classes else None
                shape = tuple(G(torch.zeros(1, self.z_dim, device=self.device), y).shape[1:])
        self.channels, self.height, self.width = (int(s) for s in shape)
        self.resolution = self.height
        self.name = name or type(G).__name__
        self.handle = source
        self.weights_sha256 = weights_sha256
        if names is not None and len(names) != self.n_classes:
            raise ValueError(f"{len(names)} class names for a generator of {self.n_classes} classes")
        self._names = tuple(names) if names is not None else tuple(str(i) for i in range(self.n_classes))

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "auto") -> "TorchTeacher":
        """Load a gankd generator checkpoint (``NAME.safetensors`` with ``NAME.json`` beside it).

        The class names come from the dataset the generator was trained on (its sidecar's config).
        """
        weights = Path(path)
        if weights.suffix != ".safetensors":
            weights = weights.with_suffix(".safetensors")
        G = checkpoint.load_model(weights, repro.get_device(device))
        dataset = checkpoint.read_sidecar(weights).get("config", {}).get("dataset")
        names = class_names(dataset) if dataset in ("mnist", "cifar10") and G.n_classes == 10 else None
        return cls(G, device, name=f"{type(G).__name__}:{weights.stem}", source=str(path),
                   weights_sha256=sha256_file(weights), names=names)

    def __repr__(self) -> str:
        return f"TorchTeacher({self.name}, {self.channels}x{self.height}x{self.width}, classes={self.n_classes})"

    @property
    def conditional(self) -> bool:
        return self.n_classes > 0

    def class_names(self) -> tuple[str, ...]:
        """Names of the generator's classes, indexed by class id (ids as text when unknown)."""
        return self._names

    def default_classes(self) -> tuple[int, ...]:
        """Every class of a conditional generator; ``(-1,)`` (one unlabelled group) otherwise."""
        return tuple(range(self.n_classes)) if self.conditional else (-1,)

    def identity(self) -> dict[str, Any]:
        """What an export manifest records (and compares) about this teacher."""
        return {"teacher": self.name, "teacher_kind": self.kind, "handle": self.handle,
                "teacher_sha256": self.weights_sha256, "resolution": self.resolution, "channels": self.channels,
                "z_dim": self.z_dim, "n_classes": self.n_classes,
                "noise": "normal (truncated_normal[-2,2]*truncation when truncation < 1)"}

    def sample_z(self, n: int, truncation: float, generator: torch.Generator) -> np.ndarray:
        """float32 (n, z_dim): standard normal, or truncated when ``truncation`` < 1."""
        t = check_truncation(truncation)
        if t < 1.0:
            return truncated_z_sample(n, t, generator, self.z_dim)
        return torch.randn(n, self.z_dim, generator=generator).numpy()

    def _labels(self, labels: Any, n: int) -> torch.Tensor | None:
        if not self.conditional:
            return None
        ids = check_class_ids(labels, self.n_classes)
        if len(ids) != n:
            raise ValueError(f"{len(ids)} class ids for {n} noise vectors: give one class per z")
        return torch.from_numpy(ids).to(self.device)

    def generate(self, z: Any, labels: Any = None, truncation: float = 1.0, batch_size: int = 256,
                 output: str = "float") -> torch.Tensor | np.ndarray:
        """Images for every (z, y): torch float (N, C, H, W) in [-1, 1] on the CPU, or uint8 (N, H, W, C).

        ``truncation`` is only checked here: it acts through z (see :meth:`sample_z`).
        """
        check_truncation(truncation)
        if output not in ("float", "uint8"):
            raise ValueError(f"output must be 'float' or 'uint8', got {output!r}")
        z = torch.as_tensor(np.asarray(z.cpu() if isinstance(z, torch.Tensor) else z, np.float32))
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (N, {self.z_dim}) for {self.name}, got {tuple(z.shape)}")
        y = self._labels(labels, len(z))
        parts = []
        with torch.no_grad(), inference_layout(self.G):
            for i in range(0, len(z), max(1, batch_size)):
                zb = z[i:i + batch_size].to(self.device)
                yb = y[i:i + batch_size] if y is not None else None
                x = self.G(zb, yb)
                parts.append(to_uint8(x).permute(0, 2, 3, 1).cpu() if output == "uint8" else x.float().cpu())
        if not parts:
            shape = (0, self.height, self.width, self.channels) if output == "uint8" else (0, self.channels,
                                                                                              self.height, self.width)
            return np.zeros(shape, np.uint8) if output == "uint8" else torch.zeros(shape)
        out = torch.cat(parts)
        return out.numpy() if output == "uint8" else out

    def generate_uint8(self, z: np.ndarray, labels: np.ndarray, truncation: float) -> np.ndarray:
        """One batch as uint8 (N, H, W, C): the call the export makes."""
        return self.generate(z, labels, truncation, batch_size=len(z), output="uint8")
