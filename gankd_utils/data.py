"""Datasets and the shard format.

- MNIST: read from ``<data root>/MNIST/raw/*.gz`` when the four original files
  are there (checked against torchvision's md5 sums; no unpacking, so a
  read-only root works), else fetched with ``torchvision.datasets.MNIST(...,
  download=True)`` into the data root.
- CIFAR-10: the npz shards ``<data root>/cifar10/train_XX.npz`` + ``test.npz``
  when present, else torchvision's ``cifar-10-batches-py`` (downloaded with
  ``download=True`` when absent).
- Image folders (``folder/<class>/<image>``): real images for TinyGAN's real branch.
- The shard format (teacher exports) lives in :mod:`gankd_utils.shards`.

Images inside the package are tensors (N, C, H, W): uint8 in [0, 255] at rest,
float in [-1, 1] once batched for a GAN.
"""
from __future__ import annotations

import gzip
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from PIL import Image
from torchvision.datasets import CIFAR10, MNIST
from torchvision.datasets.utils import check_integrity

from . import paths
from .classes import CIFAR10_CLASSES, MNIST_CLASSES

# the sizes of the whole sets: a data root that holds fewer images is a subset, and the report says so
FULL_SIZES = {"mnist-train": 60_000, "mnist-test": 10_000, "cifar10-train": 50_000, "cifar10-test": 10_000}



class DatasetUnavailable(FileNotFoundError):
    """A dataset is neither on disk nor downloadable; the message says where we looked."""


@dataclass
class ImageSet:
    """A whole dataset in memory: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str
    z: torch.Tensor | None = None  # teacher sets: the noise each image was drawn from (N, z_dim)

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        if self.z is not None and len(self.z) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.z)} noise vectors")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, n: int | None, seed: int = 0) -> "ImageSet":
        """A class-balanced random subset of exactly ``n`` images (``None``, or ``n`` >= the set: everything).

        Each class present gets ``n // k`` images (the first ``n % k`` classes one more). A class with fewer
        images than its share gives all it has, and its shortfall is shared out the same way among the
        others, so the subset is as balanced as the class sizes allow and never smaller than asked.
        """
        if n is not None and int(n) < 0:
            raise ValueError(f"a subset needs n >= 0 images (or None for all), got {n}")
        if n is None or n >= len(self):
            return self
        g = torch.Generator().manual_seed(seed)
        present = torch.unique(self.labels).tolist()  # teacher sets may hold a subset of class ids
        members = [torch.nonzero(self.labels == c).flatten() for c in present]
        idx = [m[torch.randperm(len(m), generator=g)[:take]] for m, take in zip(members, _quotas(
            [len(m) for m in members], int(n)))]
        idx = torch.cat(idx).sort().values
        return ImageSet(self.images[idx], self.labels[idx], self.classes, f"{self.name}[{n}]",
                        None if self.z is None else self.z[idx])

    def fingerprint(self) -> str:
        """sha256 of the pixels and labels: keys cached statistics of this set."""
        h = hashlib.sha256()
        h.update(self.images.numpy().tobytes())
        h.update(self.labels.numpy().tobytes())
        if self.z is not None:
            h.update(self.z.numpy().tobytes())
        return h.hexdigest()[:16]


def _quotas(sizes: Sequence[int], n: int) -> list[int]:
    """Images to take from each class: ``n`` (<= the sum of ``sizes``) shared as evenly as ``sizes`` allow.

    Classes too small for an even share are taken whole, the rest shared again among the others; with no
    class too small this is ``n // k`` each and one more for the first ``n % k`` (the split subsets always had).
    """
    take = [0] * len(sizes)
    open_ = list(range(len(sizes)))
    left = n
    while open_:
        share, extra = divmod(left, len(open_))
        want = {c: share + (1 if j < extra else 0) for j, c in enumerate(open_)}
        short = [c for c in open_ if sizes[c] < want[c]]
        if not short:
            for c in open_:
                take[c] = want[c]
            break
        for c in short:  # taken whole; what they lack goes round again
            take[c] = sizes[c]
            left -= sizes[c]
        open_ = [c for c in open_ if c not in short]
    return take


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1], any shape."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255] (clamped, rounded), any shape."""
    return images.detach().float().add(1.0).mul(127.5).round().clamp_(0, 255).to(torch.uint8)


# ---------------------------------------------------------------- MNIST

def _read_idx_gz(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic >> 8 != 0x08:  # type code 0x08 = unsigned byte
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (magic {magic:#x})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: header says {dims}, found {arr.size} values")
    return arr.reshape(dims)


def load_mnist(train: bool = True, root: str | Path | None = None, download: bool = True) -> ImageSet:
    """MNIST as an :class:`ImageSet` of (N, 1, 28, 28) uint8 images."""
    root = Path(root) if root is not None else paths.data_root()
    raw = root / "MNIST" / "raw"
    prefix = "train" if train else "t10k"
    wanted = {name: md5 for name, md5 in MNIST.resources if name.startswith(prefix)}
    if not all(check_integrity(str(raw / n), md5) for n, md5 in wanted.items()):
        damaged = [raw / n for n, md5 in wanted.items()
                   if (raw / n).exists() and not check_integrity(str(raw / n), md5)]
        if damaged and (not download or paths.offline()):  # there, but not the original file: no download mends it
            raise DatasetUnavailable(
                f"{', '.join(map(str, damaged))} failed {'its' if len(damaged) == 1 else 'their'} md5 checksum "
                f"(torchvision's sums of the original MNIST files): {'it is' if len(damaged) == 1 else 'they are'} "
                "damaged or another file. Copy the original file again into that folder (or delete it and allow "
                "the download: GANKD_OFFLINE unset, network access).")
        if not download or paths.offline():
            raise DatasetUnavailable(_missing_msg("MNIST", raw, sorted(wanted), download))
        try:
            ds = MNIST(str(root), train=train, download=True)
        except Exception as e:  # torchvision raises RuntimeError/URLError/OSError offline
            raise DatasetUnavailable(_missing_msg("MNIST", raw, sorted(wanted), download, e)) from e
        return ImageSet(ds.data.unsqueeze(1).contiguous(), ds.targets.long(), MNIST_CLASSES, f"mnist-{prefix}")
    img_file = next(n for n in wanted if "images" in n)
    lbl_file = next(n for n in wanted if "labels" in n)
    images = torch.from_numpy(_read_idx_gz(raw / img_file).copy()).unsqueeze(1)
    labels = torch.from_numpy(_read_idx_gz(raw / lbl_file).astype(np.int64))
    return ImageSet(images, labels, MNIST_CLASSES, f"mnist-{prefix}")


def _missing_msg(name: str, where: Path, files: list[str], download: bool, err: Exception | None = None) -> str:
    why = (f"the download failed ({type(err).__name__}: {err})" if err is not None
           else "downloads are off (GANKD_OFFLINE=1)" if paths.offline() and download
           else "download=False")
    return (f"{name} was not found: looked in {where} for {', '.join(files)}, and {why}. "
            f"Either put the files there, or set GANKD_DATA_ROOT to the folder that holds them "
            f"(now {where.parents[1] if name == 'MNIST' else where.parent}), or allow the download "
            f"(network access, GANKD_OFFLINE unset).")


# ---------------------------------------------------------------- CIFAR-10

def _cifar10_npz(root: Path, train: bool) -> list[Path]:
    """The npz shards of one CIFAR-10 split under ``root`` (empty when the data root has none)."""
    npz_dir = root / "cifar10"
    # train_00.npz .. train_99.npz exactly: a stray copy ("train_03 (copy).npz") would add its images twice
    files = sorted(npz_dir.glob("train_[0-9][0-9].npz")) if train else [npz_dir / "test.npz"]
    return [f for f in files if f.exists()]


def _cifar10_part(f: Path, images: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """(images uint8 (N, 32, 32, 3) or None, labels int64 (N,) in 0..9) of one npz part, checked; a damaged or
    foreign file is a ValueError naming it and what to do (nothing on disk is changed)."""
    fix = ("copy it again from where it came from (or run `python -m gankd_utils datapack unpack` again), "
           "or move it out of the folder")
    try:
        with np.load(f, allow_pickle=False) as z:
            if "labels" not in z.files or (images and "images" not in z.files):
                raise ValueError(f"{f} holds the arrays {z.files}, not 'images' and 'labels': it is not a CIFAR-10 "
                                 f"part; {fix}")
            x = z["images"] if images else None
            y = z["labels"]
    except ValueError:
        raise
    except Exception as e:  # BadZipFile, EOFError, OSError: a truncated or damaged file
        raise ValueError(f"{f} cannot be read ({type(e).__name__}: {e}): it is damaged or not an npz file; "
                         f"{fix}") from e
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{f}: labels must be whole numbers (N,), got {y.dtype} {y.shape}; {fix}")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"{f}: labels must lie in 0..9 (CIFAR-10's classes), found {int(y.min())}..{int(y.max())}; "
                         f"{fix}")
    if x is not None:
        if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8:
            raise ValueError(f"{f}: expected uint8 images (N, 32, 32, 3), got {x.dtype} {x.shape}; {fix}")
        if len(x) != len(y):  # checked per file: two wrong parts could otherwise add up and shift the labels
            raise ValueError(f"{f} holds {len(x)} images but {len(y)} labels; {fix}")
    return x, y.astype(np.int64)


def _check_size(files: list[Path], n: int, split: str) -> None:
    full = FULL_SIZES[f"cifar10-{split}"]
    if n > full:
        raise ValueError(f"{files[0].parent} holds {n:,} {split} images in {', '.join(f.name for f in files)}, "
                         f"more than CIFAR-10's {full:,}: some are there twice (a copied part?); keep each part once")


def load_cifar10(train: bool = True, root: str | Path | None = None, download: bool = True) -> ImageSet:
    """CIFAR-10 as an :class:`ImageSet` of (N, 3, 32, 32) uint8 images.

    Looks for the npz shards ``cifar10/train_XX.npz`` / ``cifar10/test.npz``
    under the data root first, then torchvision's ``cifar-10-batches-py``.
    """
    root = Path(root) if root is not None else paths.data_root()
    npz_dir = root / "cifar10"
    files = _cifar10_npz(root, train)
    split = "train" if train else "test"
    if files:
        parts = [_cifar10_part(f) for f in files]
        _check_size(files, sum(len(y) for _, y in parts), split)
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        images = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        if len(images) < FULL_SIZES[f"cifar10-{split}"]:
            warnings.warn(f"{npz_dir} holds {len(images):,} of CIFAR-10's {FULL_SIZES[f'cifar10-{split}']:,} {split} "
                          f"images ({', '.join(f.name for f in files)}): whatever trains or is scored on them is "
                          "on that subset, and REPORT.md says so", stacklevel=2)
        return ImageSet(images, torch.from_numpy(y), CIFAR10_CLASSES, f"cifar10-{split}")
    batches = root / "cifar-10-batches-py"
    if not batches.exists() and (not download or paths.offline()):
        raise DatasetUnavailable(
            f"CIFAR-10 was not found: looked for {npz_dir}/train_XX.npz + test.npz and for {batches}, "
            f"and {'downloads are off (GANKD_OFFLINE=1)' if download else 'download=False'}. Set "
            f"GANKD_DATA_ROOT to a folder holding cifar10/ or cifar-10-batches-py/ (now {root}), or allow the download.")
    try:
        ds = CIFAR10(str(root), train=train, download=download and not batches.exists())
    except Exception as e:
        if batches.exists():  # no download was tried: the folder there is what failed
            raise DatasetUnavailable(
                f"{batches} is there but could not be read as CIFAR-10 ({type(e).__name__}: {e}): it is damaged or "
                "incomplete. Copy it again (or move it away and allow the download, or give the npz parts "
                "cifar10/train_XX.npz + test.npz).") from e
        raise DatasetUnavailable(
            f"CIFAR-10 was not found under {root} (cifar10/*.npz or cifar-10-batches-py/) and could not be "
            f"downloaded ({type(e).__name__}: {e}). Set GANKD_DATA_ROOT to a folder that holds it.") from e
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, torch.tensor(ds.targets, dtype=torch.int64), CIFAR10_CLASSES, f"cifar10-{split}")


def cifar10_train_size(root: str | Path | None = None) -> int:
    """How many CIFAR-10 training images the data root holds (its npz shards' labels alone are read).

    50,000 for torchvision's folder, or where nothing is on disk yet (then the whole set is downloaded).
    """
    files = _cifar10_npz(Path(root) if root is not None else paths.data_root(), train=True)
    if not files:
        return FULL_SIZES["cifar10-train"]
    n = sum(len(_cifar10_part(f, images=False)[1]) for f in files)
    _check_size(files, n, "train")
    return n


def load_dataset(name: str, train: bool = True, root: str | Path | None = None, download: bool = True) -> ImageSet:
    """``'mnist'`` or ``'cifar10'`` by name."""
    loaders = {"mnist": load_mnist, "cifar10": load_cifar10}
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}: choose one of {sorted(loaders)}")
    return loaders[name](train=train, root=root, download=download)


class Batches:
    """Shuffled mini-batches of an :class:`ImageSet`, float in [-1, 1], reproducible per epoch.

    The order of epoch ``e`` depends only on (seed, e), so a run resumed at
    step ``s`` of epoch ``e`` sees exactly the batches an uninterrupted run
    would (``epoch(e, skip=s)``). The last incomplete batch is dropped.
    Batches are ``(x, y)``, or ``(x, y, z)`` for a teacher set that carries z.

    Data parallel: with ``world`` > 1 processes, global batch i is the
    ``batch_size * world`` items after ``i * batch_size * world`` of the epoch's
    permutation and rank ``rank`` takes its own ``batch_size`` of them, so the
    ranks see disjoint data and every rank has ``len(self)`` batches.

    ``on_device``: keep the whole uint8 set on ``device`` (a GPU) and gather each batch
    there; the order still comes from the CPU generator, so it is the same stream.
    """

    def __init__(self, data: ImageSet, batch_size: int, seed: int = 0, device: str | torch.device = "cpu",
                 rank: int = 0, world: int = 1, on_device: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world:
            raise ValueError(f"rank must lie in 0..{world - 1}, got {rank}")
        if len(data) < batch_size * world:
            raise ValueError(f"the dataset has {len(data)} images, fewer than one batch of {batch_size}"
                             + (f" for each of {world} processes" if world > 1 else ""))
        self.data, self.batch_size, self.seed, self.device = data, batch_size, seed, torch.device(device)
        self.rank, self.world = rank, world
        # on_device: the uint8 set is copied to the device once and indexed there (no copy per batch)
        self.images = data.images.to(self.device) if on_device else data.images
        self.labels = data.labels.to(self.device) if on_device else data.labels
        self.z = None if data.z is None else (data.z.to(self.device) if on_device else data.z)

    def __len__(self) -> int:
        return len(self.data) // (self.batch_size * self.world)

    def epoch(self, e: int, skip: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + e)
        # on the device the images are indexed on, once an epoch: a copy per batch from the host would wait there
        perm = torch.randperm(len(self.data), generator=g).to(self.images.device)
        for i in range(skip, len(self)):
            start = (i * self.world + self.rank) * self.batch_size
            idx = perm[start:start + self.batch_size]
            x = to_float(self.images[idx]).to(self.device, non_blocking=True)
            y = self.labels[idx].to(self.device, non_blocking=True)
            if self.z is None:
                yield x, y
            else:
                yield x, y, self.z[idx].to(self.device, non_blocking=True)


# ------------------------------------------------------------ image folders

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def load_image_folder(folder: str | Path, resolution: int, class_ids: Sequence[int] | None = None,
                      max_per_class: int | None = None) -> ImageSet:
    """Real images from an ImageFolder tree (``folder/<class>/<image>``), centre-cropped and resized.

    Class folders named by integers (``207/``) carry their class id. Other names
    (e.g. WordNet ids ``n02085620/``) are sorted, as torchvision's ImageFolder sorts
    them, and matched in order to ``class_ids`` (the teacher's class ids, e.g. an
    export manifest's ``classes``). Images become uint8 (N, 3, resolution, resolution).
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"real-image folder {root} does not exist: give an ImageFolder tree "
                                "(one sub-folder per class) or leave the setting empty to train without real images")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not subdirs:
        raise ValueError(f"{root} has no class sub-folders: an ImageFolder tree is folder/<class>/<image files>")
    if all(p.name.isdigit() for p in subdirs):
        ids = [int(p.name) for p in subdirs]
        if class_ids is not None and not set(ids) <= set(int(c) for c in class_ids):
            raise ValueError(f"{root} holds classes {sorted(set(ids) - set(int(c) for c in class_ids))[:10]} that "
                             "the teacher set lacks: keep only the distilled classes")
    else:
        if class_ids is None or len(class_ids) != len(subdirs):
            raise ValueError(f"{root} has {len(subdirs)} class folders with non-numeric names; name them by class "
                             f"id (e.g. 207/), or pass class_ids with exactly one id per folder in sorted order "
                             f"(got {None if class_ids is None else len(class_ids)})")
        ids = [int(c) for c in class_ids]
    images, labels = [], []
    for d, cid in zip(subdirs, ids):
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:max_per_class]
        for f in files:
            with Image.open(f) as im:
                im = im.convert("RGB")
                s = min(im.size)
                left, top = (im.width - s) // 2, (im.height - s) // 2
                im = im.crop((left, top, left + s, top + s)).resize((resolution, resolution), Image.BICUBIC)
                images.append(np.asarray(im, dtype=np.uint8))
            labels.append(cid)
    if not images:
        raise ValueError(f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    n_cls = max(ids) + 1
    return ImageSet(x, torch.tensor(labels, dtype=torch.int64), tuple(str(i) for i in range(n_cls)),
                    f"folder:{root.name}")
