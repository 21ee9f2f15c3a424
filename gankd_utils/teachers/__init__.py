"""Teachers: BigGAN-deep from TF-Hub, any torch generator, and their export to shards.

The only place in gankd that touches TF-Hub or teacher weights. Importing this
package does not import TensorFlow: that happens inside :func:`load_biggan`
(after torchvision, with GPU memory growth on), so a torch-only user never
pays for it.

- :mod:`.biggan`: ``load_biggan`` / ``try_load_biggan``, ``truncated_z_sample``,
  ``one_hot``, ImageNet class search, ``BigGAN.generate`` / ``.sample`` /
  ``.interpolate`` / ``.truncation_sweep``.
- :mod:`.torch_teacher`: ``TorchTeacher`` (a gankd generator checkpoint as a teacher).
- :mod:`.export`: ``export`` (resumable, atomic, multi-worker), ``plan_export``, ``finalize``.

The shard format the export writes, and the datasets that read it, live in
:mod:`gankd_utils.shards`.
"""
from __future__ import annotations

from .biggan import (ANIMAL_CLASSES, HANDLE_ENV, N_CLASSES, RESOLUTIONS, Z_DIM, BigGAN, HandleUnavailable,
                     check_truncation, class_id, class_name, default_handle, find_class, interpolate, load_biggan,
                     one_hot, resolve_handle, truncated_z_sample, try_load_biggan)
from .export import export, finalize, load_teacher, plan_export
from .torch_teacher import TorchTeacher

__all__ = [
    "ANIMAL_CLASSES", "HANDLE_ENV", "N_CLASSES", "RESOLUTIONS", "Z_DIM", "BigGAN", "HandleUnavailable",
    "check_truncation", "class_id", "class_name", "default_handle", "find_class", "interpolate", "load_biggan",
    "one_hot", "resolve_handle", "truncated_z_sample", "try_load_biggan", "export", "finalize", "load_teacher",
    "plan_export", "TorchTeacher",
]
