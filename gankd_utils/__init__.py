"""gankd_utils: the thin shared package behind the gankd notebooks.

Import order matters: in one process, importing torchvision after TensorFlow
crashes the interpreter (segfault) with the pinned wheels. This package imports
torchvision eagerly and TensorFlow only lazily (inside ``gankd_utils.teachers``),
so ``import gankd_utils`` first makes every later import safe.
"""
from __future__ import annotations

import os
import sys

if "tensorflow" in sys.modules and "torchvision" not in sys.modules:
    raise ImportError(
        "gankd_utils was imported after tensorflow. Loading torchvision after "
        "tensorflow crashes this Python process, so gankd_utils refuses to go on. "
        "Restart the kernel and import gankd_utils (or torchvision) before "
        "tensorflow; gankd_utils.teachers imports tensorflow for you when BigGAN "
        "is asked for."
    )

# Progress bars are plain text (tqdm, not widgets): they survive a saved and reopened notebook,
# where widget bars show "model not found". One refresh a second keeps saved outputs short
# (tqdm reads TQDM_* defaults when it is first imported).
os.environ.setdefault("TQDM_MININTERVAL", "1")

import torchvision  # noqa: E402,F401  (must precede any tensorflow import)

from . import paths  # noqa: E402

__version__ = "0.1.0"

__all__ = ["paths", "__version__"]
