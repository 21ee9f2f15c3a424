"""Class ids and class names: one parser, one check, one table of names per dataset.

Every module that takes class ids from a user (the ``export`` and ``sample``
commands, the teachers, the models' inputs, the explorer) checks them here, so
the same mistake always gets the same message:

- :func:`parse_classes`: ``"0-9"`` / ``"1,3,5-7"`` from a command line or a notebook;
- :func:`check_class_ids`: ids as int64 (N,) in ``0..n_classes-1`` (lists, arrays, tensors);
- :func:`check_labels`: a model's ``y`` tensor of class ids against its batch size;
- :func:`class_names`: the names of a dataset's classes (``"cifar10"`` -> airplane ... truck).
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

MNIST_CLASSES = tuple(str(i) for i in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGENET_N_CLASSES = 1000
_IMAGENET_FILE = Path(__file__).parent / "teachers" / "imagenet_classes.txt"


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet class names in the standard index order (0 tench ... 999 toilet tissue)."""
    names = tuple(line.strip() for line in _IMAGENET_FILE.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(names) != IMAGENET_N_CLASSES:
        raise RuntimeError(f"{_IMAGENET_FILE} holds {len(names)} names, expected {IMAGENET_N_CLASSES}: "
                           "the package is damaged; reinstall it")
    return names


def class_names(dataset: str) -> tuple[str, ...]:
    """Names of ``dataset``'s classes, indexed by class id: ``mnist``, ``cifar10`` or ``imagenet``."""
    tables = {"mnist": lambda: MNIST_CLASSES, "cifar10": lambda: CIFAR10_CLASSES, "imagenet": imagenet_classes}
    if dataset not in tables:
        raise ValueError(f"no class names for dataset {dataset!r}: choose one of {sorted(tables)}")
    return tables[dataset]()


def parse_classes(spec: str, n_classes: int | None = None) -> list[int]:
    """``"0-9"``, ``"1,3,5-7"`` -> sorted unique class ids, checked against ``n_classes``."""
    ids: set[int] = set()
    for part in str(spec).replace(" ", "").split(","):
        if not part:
            continue
        m = re.fullmatch(r"(-?\d+)(?:-(-?\d+))?", part)
        if not m or (m.group(2) is not None and int(m.group(1)) > int(m.group(2))):
            raise ValueError(f"cannot read class list {spec!r} at {part!r}: use ids and ranges like '0-9' or '1,3,5-7'")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if n_classes is not None and (lo < 0 or hi >= n_classes):  # before expanding: '0-20000000' is one check
            raise ValueError(f"class ids out of range 0..{n_classes - 1}: {part!r} in {spec!r}")
        ids.update(range(lo, hi + 1))
    if not ids:
        raise ValueError(f"the class list {spec!r} is empty: give at least one class id")
    return check_class_ids(sorted(ids), n_classes).tolist()


def check_class_ids(ids: Any, n_classes: int | None = IMAGENET_N_CLASSES) -> np.ndarray:
    """Class ids as int64 (N,), with a clear error for an empty list, non-integers or ids out of range.

    ``n_classes`` None checks only that the ids are integers >= 0.
    """
    top = f"0..{n_classes - 1}" if n_classes is not None else ">= 0"
    arr = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids)
    if arr.size == 0:
        raise ValueError(f"the class list is empty: give at least one class id in {top}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"class ids must be integers in {top}, got {arr.dtype} values")
    arr = arr.astype(np.int64).reshape(-1)
    bad = arr[(arr < 0) | ((arr >= n_classes) if n_classes is not None else False)]
    if bad.size:
        raise ValueError(f"class ids out of range {top}: {sorted(set(bad.tolist()))[:10]}")
    return arr


def check_labels(y: torch.Tensor | None, n: int, n_classes: int) -> None:
    """A class-conditional model's ``y``: int class ids of shape (n,) in ``0..n_classes-1``."""
    if y is None:
        raise ValueError(f"this model is class-conditional: pass y, class ids in 0..{n_classes - 1}")
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},) to match the batch, got {tuple(y.shape)}")
    if y.dtype.is_floating_point:
        raise ValueError("y must hold integer class ids, not floats")
    # the range check reads the values: done on the CPU only (on a GPU it would stall every training step;
    # an out-of-range id there fails in the embedding lookup instead)
    if len(y) and y.device.type == "cpu" and not torch.compiler.is_compiling() \
            and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"class ids must lie in 0..{n_classes - 1}, got {int(y.min())}..{int(y.max())}")
