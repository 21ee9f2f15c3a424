"""Teachers: BigGAN-deep from TF-Hub, any torch generator, and their export to shards.

The only place in gankd that touches TF-Hub or teacher weights. Importing this
package does not import TensorFlow: that happens inside :func:`load_biggan`
(after torchvision, with GPU memory growth on), so a torch-only user never
pays for it.

- :mod:`.biggan`: ``load_biggan`` / ``try_load_biggan``, ``truncated_z_sample``,
  ``one_hot``, ImageNet class names and search, ``BigGAN.generate`` /
  ``.sample`` / ``.interpolate`` / ``.truncation_sweep``, the ``explorer``.
- :mod:`.torch_teacher`: ``TorchTeacher`` (a gankd generator checkpoint as a teacher).
- :mod:`.export`: ``export`` (resumable, atomic, multi-worker) and ``check_complete``.
- :mod:`.dataset`: ``ShardDataset`` and ``ShardShuffleSampler`` for the distillation chapters.
"""
from __future__ import annotations

from .biggan import (ANIMAL_CLASSES, HANDLE_ENV, N_CLASSES, RESOLUTIONS, Z_DIM, BigGAN, HandleUnavailable,
                     check_class_ids, check_truncation, class_id, class_name, default_handle, explorer, find_class,
                     imagenet_classes, interpolate, load_biggan, one_hot, resolve_handle, truncated_z_sample,
                     try_load_biggan)
from .dataset import ShardBatches, ShardDataset, ShardShuffleSampler
from .export import check_complete, export, finalize, load_teacher, plan_export
from .torch_teacher import TorchTeacher

__all__ = [
    "ANIMAL_CLASSES", "HANDLE_ENV", "N_CLASSES", "RESOLUTIONS", "Z_DIM", "BigGAN", "HandleUnavailable",
    "check_class_ids", "check_truncation", "class_id", "class_name", "default_handle", "explorer", "find_class",
    "imagenet_classes", "interpolate", "load_biggan", "one_hot", "resolve_handle", "truncated_z_sample",
    "try_load_biggan", "ShardBatches", "ShardDataset", "ShardShuffleSampler", "check_complete", "export", "finalize",
    "load_teacher", "plan_export", "TorchTeacher",
]
