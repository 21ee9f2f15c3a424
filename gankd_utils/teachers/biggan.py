"""BigGAN-deep from TF-Hub: loading by handle, noise, class names, generation, interpolation.

The model is BigGAN-deep of Brock, Donahue & Simonyan, "Large Scale GAN
Training for High Fidelity Natural Image Synthesis" (ICLR 2019), as DeepMind
published it on TF-Hub (``deepmind/biggan-deep-{128,256,512}/1``). The helpers
follow the names of the TF-Hub BigGAN colab (``truncated_z_sample``,
``one_hot``, ``interpolate``) so its readers find their way.

The published modules are in the TF1 Hub format. ``tensorflow_hub`` 0.16 has
no ``hub.Module``; ``hub.load`` returns a non-callable object whose
``signatures['default'](y=, z=, truncation=)`` returns ``{'default': images}``.
A TF2 SavedModel saved with a ``default`` signature looks the same through that
door, so both load through one code path (:func:`load_biggan`).

This is the only module of the package that imports TensorFlow, and only inside
functions, when BigGAN is asked for: ``import gankd_utils`` has already loaded
torchvision (see the package docstring for why the order matters).

Arrays: z float32 (N, 128) in [-2 t, 2 t] for truncation t; y one-hot float32
(N, 1000) or class ids int (N,); images uint8 (N, H, W, 3) at rest, float32
(N, 3, H, W) in [-1, 1] as torch tensors for the GAN code.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import paths, repro, runlog, viz
from ..classes import check_class_ids, imagenet_classes

N_CLASSES = 1000  # ImageNet-1k
Z_DIM = 128  # BigGAN-deep's latent size at every resolution
RESOLUTIONS = (128, 256, 512)
ANIMAL_CLASSES = tuple(range(398))  # ImageNet ids 0 (tench) .. 397 (puffer): TinyGAN's 398 animal classes
HANDLE_ENV = "GANKD_BIGGAN_HANDLE"
Z_BOUND = 2.0  # truncated normal support [-2, 2] before scaling, as in the BigGAN paper's truncation trick


class HandleUnavailable(FileNotFoundError):
    """A BigGAN handle could not be fetched; the message names it and how to use a local copy."""


# ---------------------------------------------------------------- class names

def class_name(class_id: int) -> str:
    """Name of ImageNet class ``class_id`` (0..999)."""
    return imagenet_classes()[int(check_class_ids([class_id])[0])]


def find_class(query: str, within: Iterable[int] | None = None) -> list[tuple[int, str]]:
    """Classes whose name contains ``query`` (case-insensitive), exact matches first.

    >>> find_class("golden retriever")
    [(207, 'golden retriever')]
    """
    q = query.strip().lower()
    names = imagenet_classes()
    ids = range(N_CLASSES) if within is None else within
    hits = [(i, names[i]) for i in ids if q in names[i].lower()]
    return sorted(hits, key=lambda h: (h[1].lower() != q, h[0]))


def class_id(spec: int | str) -> int:
    """A class id from an id or a name (exact, else a unique substring)."""
    if isinstance(spec, (int, np.integer)):
        return int(check_class_ids([spec])[0])
    hits = find_class(str(spec))
    if hits and hits[0][1].lower() == str(spec).strip().lower():
        return hits[0][0]
    if len(hits) == 1:
        return hits[0][0]
    if not hits:
        raise ValueError(f"no ImageNet class name contains {spec!r}; teachers.find_class('...') searches the names")
    shown = ", ".join(f"{i} {n!r}" for i, n in hits[:8])
    raise ValueError(f"{spec!r} matches {len(hits)} classes ({shown}{', ...' if len(hits) > 8 else ''}): "
                     "give the id or the full name")


def check_truncation(truncation: float) -> float:
    """``truncation`` as a float in (0, 1], or a ValueError that says what it does."""
    try:
        t = float(truncation)
    except (TypeError, ValueError):
        raise ValueError(f"truncation must be a number in (0, 1], got {truncation!r}") from None
    if not (0.0 < t <= 1.0) or math.isnan(t):
        raise ValueError(f"truncation must lie in (0, 1], got {truncation}: small values (e.g. 0.2) trade diversity "
                         "for quality, 1 keeps BigGAN's full diversity")
    return t


# ---------------------------------------------------------------- noise and labels

def _as_generator(seed: int | torch.Generator | None, purpose: str) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    if seed is None:
        g = torch.Generator()
        g.seed()  # fresh entropy: a new picture each call, as with the colab's seed=None
        return g
    return repro.generator(int(seed), purpose)


def truncated_z_sample(batch_size: int, truncation: float = 1.0, seed: int | torch.Generator | None = 0,
                       z_dim: int = Z_DIM, purpose: str = "biggan") -> np.ndarray:
    """Truncated-normal noise for BigGAN: float32 (batch_size, z_dim) in [-2 t, 2 t].

    Each entry is a standard normal restricted to [-2, 2], then scaled by the
    truncation t (Brock et al. 2019, section 3.1). It is drawn by inverting the
    normal CDF on a uniform draw from a CPU ``torch.Generator`` (seeded per
    ``purpose`` when ``seed`` is an int), so one seed gives the same z on any
    machine and every truncation scales the same underlying draw.
    """
    t = check_truncation(truncation)
    if int(batch_size) < 0:
        raise ValueError(f"batch_size must be >= 0, got {batch_size}")
    g = _as_generator(seed, purpose)
    u = torch.rand(int(batch_size), int(z_dim), generator=g, dtype=torch.float64)
    lo = 0.5 * math.erfc(Z_BOUND / math.sqrt(2.0))  # Phi(-2)
    z = torch.special.ndtri(lo + u * (1.0 - 2.0 * lo)).clamp_(-Z_BOUND, Z_BOUND)
    return (z * t).numpy().astype(np.float32)


def one_hot(ids: Any, n_classes: int = N_CLASSES) -> np.ndarray:
    """One-hot labels: class ids (N,) -> float32 (N, n_classes)."""
    ids = check_class_ids(ids, n_classes)
    out = np.zeros((len(ids), n_classes), np.float32)
    out[np.arange(len(ids)), ids] = 1.0
    return out


def interpolate(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """Linear interpolation from ``a`` to ``b`` (same shape S): (steps, *S), ends included."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.shape != b.shape:
        raise ValueError(f"cannot interpolate between shapes {a.shape} and {b.shape}")
    if steps < 2:
        raise ValueError(f"an interpolation needs steps >= 2 (both ends), got {steps}")
    alpha = np.linspace(0.0, 1.0, steps, dtype=np.float32).reshape((steps,) + (1,) * a.ndim)
    return (1.0 - alpha) * a[None] + alpha * b[None]


def diversity(images: torch.Tensor) -> float:
    """Mean pairwise RMS pixel distance of float images (N, C, H, W) in [-1, 1]: a crude diversity measure."""
    x = images.flatten(1).float()
    if len(x) < 2:
        return 0.0
    d = torch.cdist(x, x) / math.sqrt(x.shape[1])
    n = len(x)
    return float(d.sum() / (n * (n - 1)))


def to_uint8_hwc(images: np.ndarray) -> np.ndarray:
    """float (N, H, W, C) in [-1, 1] -> uint8 (N, H, W, C), rounded as data.to_uint8 rounds."""
    x = np.asarray(images, np.float32)
    return np.clip(np.rint((x + np.float32(1.0)) * np.float32(127.5)), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- handles

def default_handle(resolution: int = 128) -> str:
    """The public TF-Hub handle of BigGAN-deep at ``resolution`` (128, 256 or 512)."""
    if int(resolution) not in RESOLUTIONS:
        raise ValueError(f"BigGAN-deep comes at resolutions {RESOLUTIONS}, got {resolution}")
    return f"https://tfhub.dev/deepmind/biggan-deep-{int(resolution)}/1"


def resolve_handle(handle: str | os.PathLike | None = None, resolution: int = 128) -> str:
    """The handle to load: ``handle`` if given, else ``$GANKD_BIGGAN_HANDLE``, else the public one.

    A TF-Hub shorthand ``deepmind/biggan-deep-128/1`` becomes its tfhub.dev URL
    (the form TF-Hub caches under); URLs and local folders pass unchanged.
    """
    h = str(handle) if handle is not None else os.environ.get(HANDLE_ENV, "").strip() or default_handle(resolution)
    if not _is_url(h) and _SHORTHAND.fullmatch(h) and not Path(h).expanduser().exists():
        h = f"https://tfhub.dev/{h}"
    return h


_SHORTHAND = re.compile(r"[A-Za-z0-9_-]+/[A-Za-z0-9_.-]+/[0-9]+")  # owner/model/version on tfhub.dev


def _is_url(handle: str) -> bool:
    return "://" in handle  # http(s)://, gs://: everything else is a local folder


def local_copy_help(resolution: int = 128) -> str:
    """How to point gankd at a local copy of the module (for messages and skip notes)."""
    return (f"set {HANDLE_ENV}=/path/to/biggan-deep-{resolution} (a folder holding the module's saved_model.pb, e.g. "
            f"the unpacked .tar.gz of {default_handle(resolution)}?tf-hub-format=compressed), or pass "
            "handle=... / HANDLE=... in a notebook's parameters cell / --handle to the export command, "
            "or set TFHUB_CACHE_DIR to a TF-Hub cache that already holds it")


def _unavailable(handle: str, reason: str, resolution: int = 128) -> HandleUnavailable:
    return HandleUnavailable(
        f"BigGAN-deep handle {handle!r} could not be fetched: {reason}. Either this machine is offline or the "
        f"handle is wrong. To use a local copy, {local_copy_help(resolution)}.")


def _tfhub_cache_dir() -> Path:
    # the cache tensorflow_hub uses: $TFHUB_CACHE_DIR, else <tmp>/tfhub_modules
    return Path(os.environ.get("TFHUB_CACHE_DIR") or Path(tempfile.gettempdir()) / "tfhub_modules")


def cached_module_dir(handle: str) -> Path | None:
    """The TF-Hub cache folder of a URL handle if it is already filled (tensorflow_hub's layout), else None."""
    d = _tfhub_cache_dir() / hashlib.sha1(handle.encode("utf8")).hexdigest()
    return d if d.is_dir() and any(d.iterdir()) else None


@functools.lru_cache(maxsize=1)
def import_tensorflow():
    """Import TensorFlow the safe way and keep it from taking all GPU memory; return the module.

    torchvision must be loaded first (``import gankd_utils`` did it); memory
    growth on every GPU lets torch allocate beside TensorFlow in one process.
    """
    if "torchvision" not in sys.modules:  # pragma: no cover - gankd_utils/__init__ imports it
        import torchvision  # noqa: F401
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ info/warning logs drown the notebook
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # the GPU is already initialised: growth can no longer change (it is set by then)
            pass
    return tf


@functools.lru_cache(maxsize=1)
def _import_hub():
    import_tensorflow()
    with warnings.catch_warnings():  # tensorflow_hub 0.16 imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        import tensorflow_hub as hub
    return hub


def fetch_module(handle: str, resolution: int = 128) -> str:
    """A local folder holding the module of ``handle``: the folder itself, or TF-Hub's cached download.

    With ``GANKD_OFFLINE=1`` nothing is downloaded: a URL handle must already be in the TF-Hub cache.
    """
    if not _is_url(handle):
        p = Path(handle).expanduser()
        if not p.is_dir():
            raise _unavailable(handle, "that local folder does not exist", resolution)
        if not ((p / "saved_model.pb").exists() or (p / "saved_model.pbtxt").exists()):
            raise _unavailable(handle, "that folder holds no saved_model.pb (not a TF-Hub module or SavedModel)",
                               resolution)
        return str(p)
    if paths.offline():
        cached = cached_module_dir(handle)
        if cached is not None:
            return str(cached)
        raise _unavailable(handle, f"downloads are off (GANKD_OFFLINE=1) and the TF-Hub cache "
                                   f"({_tfhub_cache_dir()}) holds no copy", resolution)
    hub = _import_hub()
    try:
        return str(hub.resolve(handle))
    except Exception as e:  # URLError, HTTPError, OSError, tf.errors.*: all mean "not fetched"
        raise _unavailable(handle, f"{type(e).__name__}: {e}", resolution) from e


# ---------------------------------------------------------------- the model

class BigGAN:
    """A loaded BigGAN-deep generator: (z, y, truncation) -> images.

    ``module`` is what ``hub.load`` returned (TF1 Hub format or TF2
    SavedModel); only its ``signatures['default']`` is used. The sizes are read
    from the signature: ``z_dim`` (128), ``n_classes`` (1000), ``resolution``.
    """

    kind = "biggan"
    channels = 3

    def __init__(self, module: Any, handle: str, device: str | None = "auto", fingerprint: str | None = None):
        sigs = getattr(module, "signatures", None)
        if sigs is None or "default" not in sigs:
            found = sorted(sigs.keys()) if sigs is not None else []
            raise ValueError(f"{handle!r} is not a BigGAN-deep module: it has no 'default' signature "
                             f"(signatures: {found})")
        self._module = module  # keeps the variables the signature reads alive
        self._fn = sigs["default"]
        self.handle = handle
        self.device = device
        self.fingerprint = fingerprint
        _, spec = self._fn.structured_input_signature
        if not {"y", "z", "truncation"} <= set(spec):
            raise ValueError(f"{handle!r} is not a BigGAN-deep module: its 'default' signature takes {sorted(spec)}, "
                             "expected y, z and truncation")
        self.z_dim = int(spec["z"].shape[-1])
        self.n_classes = int(spec["y"].shape[-1])
        outs = self._fn.structured_outputs
        self._out_key = "default" if "default" in outs else next(iter(outs))
        shape = outs[self._out_key].shape
        self.resolution = int(shape[1]) if shape.rank == 4 and shape[1] is not None else None
        if self.resolution is None:  # dynamic output size: ask the module once
            self.resolution = int(self(truncated_z_sample(1, 1.0, 0, self.z_dim), [0], 1.0).shape[1])

    @property
    def name(self) -> str:
        return f"biggan-deep-{self.resolution}"

    def __repr__(self) -> str:
        return f"BigGAN({self.name}, handle={self.handle!r})"

    def class_names(self) -> tuple[str, ...]:
        """The 1000 ImageNet class names, indexed by class id."""
        return imagenet_classes()

    def default_classes(self) -> tuple[int, ...]:
        return ANIMAL_CLASSES

    def identity(self) -> dict[str, Any]:
        """What an export manifest records (and compares) about this teacher."""
        return {"teacher": self.name, "teacher_kind": self.kind, "handle": self.handle,
                "teacher_sha256": self.fingerprint, "resolution": self.resolution, "channels": self.channels, "z_dim": self.z_dim,
                "n_classes": self.n_classes, "noise": "truncated_normal[-2,2]*truncation"}

    def _tf_device(self):
        tf = import_tensorflow()
        d = "auto" if self.device is None else str(self.device)
        if d == "auto":
            return contextlib.nullcontext()
        if d == "cpu":
            return tf.device("/CPU:0")
        if d.startswith("cuda"):
            return tf.device(f"/GPU:{d.split(':')[1] if ':' in d else 0}")
        return tf.device(d)

    def _labels(self, y: Any, n: int) -> np.ndarray:
        arr = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
        if arr.ndim == 2:  # one-hot or a soft mixture (interpolation)
            if arr.shape != (n, self.n_classes):
                raise ValueError(f"y must be class ids (N,) or one-hot ({n}, {self.n_classes}), got {arr.shape}")
            return arr.astype(np.float32)
        ids = check_class_ids(arr, self.n_classes)
        if len(ids) != n:
            raise ValueError(f"{len(ids)} class ids for {n} noise vectors: give one class per z")
        return one_hot(ids, self.n_classes)

    def _check_z(self, z: Any) -> np.ndarray:
        arr = np.asarray(z.cpu() if isinstance(z, torch.Tensor) else z, np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (N, {self.z_dim}) for this BigGAN, got {tuple(arr.shape)}; "
                             f"draw it with truncated_z_sample(N, truncation, seed)")
        return arr

    def __call__(self, z: Any, y: Any, truncation: float = 1.0) -> np.ndarray:
        """One batch: float32 (N, H, W, 3) in [-1, 1]. ``y``: ids (N,) or one-hot (N, 1000)."""
        tf = import_tensorflow()
        z = self._check_z(z)
        t = check_truncation(truncation)
        y = self._labels(y, len(z))
        with self._tf_device():
            out = self._fn(y=tf.constant(y), z=tf.constant(z), truncation=tf.constant(t, tf.float32))
        return out[self._out_key].numpy()

    def generate(self, z: Any, y: Any, truncation: float = 1.0, batch_size: int = 16,
                 output: str = "float") -> torch.Tensor | np.ndarray:
        """Images for every (z, y) in batches.

        ``output="float"``: torch float32 (N, 3, H, W) in [-1, 1] (for the GAN code);
        ``output="uint8"``: numpy uint8 (N, H, W, 3) (for export and display).
        """
        if output not in ("float", "uint8"):
            raise ValueError(f"output must be 'float' or 'uint8', got {output!r}")
        z = self._check_z(z)
        y = self._labels(y, len(z))
        t = check_truncation(truncation)
        parts = [self(z[i:i + batch_size], y[i:i + batch_size], t) for i in range(0, len(z), max(1, batch_size))]
        x = np.concatenate(parts) if parts else np.zeros((0, self.resolution, self.resolution, 3), np.float32)
        if output == "uint8":
            return to_uint8_hwc(x)
        return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()

    # the teacher interface export.py uses
    def sample_z(self, n: int, truncation: float, generator: torch.Generator) -> np.ndarray:
        return truncated_z_sample(n, truncation, generator, self.z_dim)

    def generate_uint8(self, z: np.ndarray, labels: np.ndarray, truncation: float) -> np.ndarray:
        return to_uint8_hwc(self(z, labels, truncation))

    def sample(self, classes: Sequence[int | str], per_class: int = 4, truncation: float = 0.5, seed: int = 0,
               batch_size: int = 16) -> torch.Tensor:
        """A class-by-noise sheet: float (len(classes) * per_class, 3, H, W) in [-1, 1], class-major.

        Every class row uses the same ``per_class`` noise vectors, so a column
        shows what the class label alone changes.
        """
        ids = check_class_ids([class_id(c) for c in classes], self.n_classes)
        z = truncated_z_sample(per_class, truncation, seed, self.z_dim, purpose="sample")
        return self.generate(np.tile(z, (len(ids), 1)), np.repeat(ids, per_class), truncation, batch_size)

    def interpolate(self, start: tuple[int | str, int], end: tuple[int | str, int], steps: int = 8,
                    truncation: float = 0.5, batch_size: int = 16) -> torch.Tensor:
        """Images along the straight line from (class, seed) ``start`` to ``end`` in (z, y): (steps, 3, H, W)."""
        (ca, sa), (cb, sb) = start, end
        za = truncated_z_sample(1, truncation, sa, self.z_dim, purpose="interp")[0]
        zb = truncated_z_sample(1, truncation, sb, self.z_dim, purpose="interp")[0]
        ya = one_hot([class_id(ca)], self.n_classes)[0]
        yb = one_hot([class_id(cb)], self.n_classes)[0]
        return self.generate(interpolate(za, zb, steps), interpolate(ya, yb, steps), truncation, batch_size)

    def sampler(self):
        """``fn(n, class_id, seed, truncation) -> images``: what ``viz.explorer`` draws from."""
        def fn(n: int, c: int, sd: int, t: float) -> torch.Tensor:
            return self.generate(truncated_z_sample(n, t, sd, self.z_dim, purpose="explore"), [c] * n, t)

        return fn

    def truncation_sweep(self, cls: int | str, truncations: Sequence[float] = (0.2, 0.4, 0.6, 0.8, 1.0),
                         n: int = 8, seed: int = 0, batch_size: int = 16) -> dict[float, torch.Tensor]:
        """Samples of one class at each truncation, from one noise draw (so only t changes).

        Returns ``{t: images (n, 3, H, W) in [-1, 1]}``; lower t, higher
        fidelity and less variety (Brock et al. 2019, figure 2 and section 3.1).
        """
        cid = class_id(cls)
        return {float(t): self.generate(truncated_z_sample(n, t, seed, self.z_dim, purpose="sweep"), [cid] * n, t,
                                        batch_size)
                for t in truncations}


def load_biggan(handle: str | os.PathLike | None = None, resolution: int | None = None,
                device: str | None = "auto") -> BigGAN:
    """Load BigGAN-deep by handle (see :func:`resolve_handle`); TF1 Hub format or TF2 SavedModel.

    ``resolution`` picks the public module when neither ``handle`` nor ``$GANKD_BIGGAN_HANDLE`` is
    given (None: 128). A module named by a handle has its own resolution, which wins: one asked for
    explicitly that differs gives a ``UserWarning`` naming both (a warning, not an error, because a
    notebook's resolution setting is meant for the public module and a local copy may be another size).

    Raises :class:`HandleUnavailable` (naming the handle and how to use a local
    copy) when the module cannot be fetched, ``ValueError`` when what was
    fetched is not a BigGAN-shaped module.
    """
    asked = None if resolution is None else int(resolution)
    resolution = 128 if asked is None else asked
    h = resolve_handle(handle, resolution)
    local = fetch_module(h, resolution)
    hub = _import_hub()
    try:
        module = hub.load(local)
    except Exception as e:  # a damaged or foreign folder
        raise ValueError(f"BigGAN handle {h!r} was fetched to {local} but could not be loaded as a TF-Hub module "
                         f"or SavedModel ({type(e).__name__}: {e}). Delete the folder (or the TF-Hub cache entry) "
                         "and fetch it again, or point at another copy.") from e
    bg = BigGAN(module, h, device, fingerprint=module_fingerprint(local))
    if asked is not None and bg.resolution != asked:
        named = f"BigGAN handle {h!r}" if handle is not None else f"{HANDLE_ENV}={h}"
        warnings.warn(f"{named} is a {bg.resolution} px module, so resolution={asked} is not used: pass "
                      f"resolution=None to take the module's own, or a handle of a {asked} px module"
                      + ("" if handle is not None else f" (or unset {HANDLE_ENV} for the public one)"),
                      UserWarning, stacklevel=2)
    return bg


def module_fingerprint(folder: str | os.PathLike) -> str:
    """sha256 over a SavedModel's graph and variable index: names the weights without reading them.

    The variable index stores a checksum of every tensor, so two copies of one
    module (a mirror, a cache, a local folder) agree, and any other module differs.
    """
    h = hashlib.sha256()
    remote = "://" in str(folder)  # gs://: read through TensorFlow's file system layer
    gfile = import_tensorflow().io.gfile if remote else None
    for rel in ("saved_model.pb", "saved_model.pbtxt", "variables/variables.index"):
        p = f"{str(folder).rstrip('/')}/{rel}"
        if (gfile.exists(p) if remote else Path(p).exists()):
            h.update(rel.encode())
            if remote:
                with gfile.GFile(p, "rb") as f:
                    h.update(f.read())
            else:
                h.update(Path(p).read_bytes())
    return h.hexdigest()


def try_load_biggan(handle: str | os.PathLike | None = None, resolution: int | None = None,
                    device: str | None = "auto",
                    where: str = "notebook", what: str = "BigGAN-deep parts") -> tuple[BigGAN | None, str | None]:
    """:func:`load_biggan`, or ``(None, message)`` with the skip recorded for the run summary.

    For notebooks that must go on offline: the message says which handle
    failed, why, and the setting that points at a local copy.
    """
    try:
        return load_biggan(handle, resolution, device), None
    except HandleUnavailable as e:
        return None, runlog.note_skipped(where, what, str(e))  # the message says how to point at a local copy
    except ImportError as e:
        return None, runlog.note_skipped(where, what, f"TensorFlow / tensorflow_hub are not installed ({e})",
                                         setting="pip install 'gankd-utils[tf]'")


# ---------------------------------------------------------------- figures

def grid_scale(resolution: int) -> float:
    """``viz.show_grids`` scale that keeps a grid of ``resolution``-pixel images about page-sized."""
    return 15.0 / max(int(resolution), 16)


def show(grids: dict[str, torch.Tensor], nrow: int = 8, path_stem: str | os.PathLike | None = None,
         title: str | None = None):
    """``viz.show_grids`` at a scale fit for BigGAN's large images; saved as PNG + PDF with ``path_stem``."""
    res = int(next(iter(grids.values())).shape[-1])
    return viz.show_grids(grids, nrow=nrow, title=title, path_stem=path_stem, scale=grid_scale(res))


def sweep_figure(sweep: dict[float, torch.Tensor], title: str = "", path_stem: str | os.PathLike | None = None):
    """Quality against diversity: one image column per truncation, and diversity against truncation.

    ``sweep``: :meth:`BigGAN.truncation_sweep`'s ``{t: images (n, 3, H, W)}``.
    """
    plt = viz._plt()
    ts = list(sweep)
    n = len(next(iter(sweep.values())))
    fig = plt.figure(figsize=(1.3 * len(ts) + 3.2, 1.3 * n + 0.9))
    gs = fig.add_gridspec(1, len(ts) + 1, width_ratios=[1] * len(ts) + [2.2], wspace=0.08)
    for k, t in enumerate(ts):
        ax = fig.add_subplot(gs[0, k])
        ax.imshow(viz.image_grid(sweep[t], nrow=1))
        ax.set_title(f"t = {t:g}", fontsize=9)
        ax.axis("off")
    ax = fig.add_subplot(gs[0, -1])
    ax.plot(ts, [diversity(sweep[t]) for t in ts], "o-")
    ax.set_xlabel("truncation t")
    ax.set_ylabel("diversity: mean pairwise RMS distance\n(pixels on the [-1, 1] scale)")
    ax.set_box_aspect(1)
    ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    if path_stem is not None:
        viz.save_figure(fig, path_stem)
    return fig


def noise_figure(truncations: Sequence[float] = (0.25, 0.5, 1.0), n: int = 20000, seed: int = 0,
                 path_stem: str | os.PathLike | None = None):
    """Histograms of :func:`truncated_z_sample` entries at a few truncations (support [-2 t, 2 t])."""
    plt = viz._plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    bins = np.linspace(-2.1, 2.1, 85)
    for t in truncations:
        ax.hist(truncated_z_sample(max(1, n // Z_DIM), t, seed).ravel(), bins=bins, histtype="step", density=True,
                label=f"t = {t:g}")
    ax.set_xlabel("z entry")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path_stem is not None:
        viz.save_figure(fig, path_stem)
    return fig
