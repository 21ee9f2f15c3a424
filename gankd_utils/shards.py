"""The shard format: one module owns it (teacher exports and offline copies of real data).

A shard folder holds ``shard_XXXXX.npz`` files, each with ``images`` uint8
(N, H, W, C), ``labels`` int64 (N,) and optionally ``z`` float32 (N, z_dim),
plus ``manifest.json``. Here live:

- writing: :func:`write_shard` (atomic, byte-reproducible: fixed zip time stamps)
  and :func:`write_manifest` (atomic; safe with several export workers);
- reading: :func:`read_manifest`, :func:`load_shard` (sha256-checked), :func:`load_shards`
  (a whole small set as a :class:`data.ImageSet`);
- the one definition of a **complete** set (:func:`check_complete`): the manifest lists
  shards, every listed shard is on disk with its sha256 recorded, and the manifest does not
  say ``"complete": false`` (an export marks itself complete when its last shard lands);
- :func:`teacher_info`: what a student distilled from an export must match;
- datasets over shards: :class:`ShardDataset` (lazy, verified, LRU-cached shards),
  :class:`ShardShuffleSampler` (shuffles across shards a few at a time, the shuffle-buffer
  idea of WebDataset-style loaders) and :class:`ShardBatches` (mini-batches streamed from
  disk, with :class:`data.Batches`' interface, for teacher sets too large for memory).

Items and batches are ``(image, label, z)``: images float32 in [-1, 1] (or uint8 with
``output="uint8"``), labels the teacher's class ids, z the noise each image was drawn from.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from . import repro
from .data import ImageSet, to_float
from .io import atomic_write, sha256_file

SHARD_FORMAT = "gankd-shards/1"
MANIFEST = "manifest.json"


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.npz"


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    # A zip with fixed time stamps and no compression: the same arrays always
    # give the same bytes (np.savez stamps the current time), so an export
    # resumed after a crash is byte-identical to an uninterrupted one.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arrays[key]), allow_pickle=False)
    return buf.getvalue()


def write_shard(folder: str | Path, index: int, images: np.ndarray, labels: np.ndarray,
                z: np.ndarray | None = None) -> dict:
    """Write one shard atomically; return its manifest entry (file, count, sha256).

    ``images`` uint8 (N, H, W, C); ``labels`` int (N,); ``z`` float32 (N, zdim) or None.
    """
    images = np.asarray(images)
    labels = np.asarray(labels).astype(np.int64)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"shard images must be uint8 (N, H, W, C) with C in (1, 3), got {images.dtype} {images.shape}")
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
    arrays = {"images": images, "labels": labels}
    if z is not None:
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or len(z) != len(images):
            raise ValueError(f"z must be (N, zdim) with N={len(images)}, got {z.shape}")
        arrays["z"] = z
    data = _npz_bytes(arrays)
    name = shard_name(index)
    _write_owned(Path(folder) / name, data)
    return {"file": name, "count": int(len(images)), "sha256": hashlib.sha256(data).hexdigest()}


def owned_tmp(path: Path) -> Path:
    """The temp file beside ``path`` that this process and thread write it through: ``.NAME.HOST.PID.THREAD.tmp``.

    The name lets a later export tell a temp file left by a killed process (same host, process gone) from one
    another worker is writing right now (:func:`tmp_owner`).
    """
    return path.parent / f".{path.name}.{socket.gethostname()}.{os.getpid()}.{threading.get_ident()}.tmp"


def tmp_owner(tmp: Path, name: str) -> tuple[str, int] | None:
    """(host, pid) of an :func:`owned_tmp` temp file of the file ``name``, or None for another kind of name."""
    prefix = f".{name}."
    if not (tmp.name.startswith(prefix) and tmp.name.endswith(".tmp")):
        return None
    parts = tmp.name[len(prefix):-len(".tmp")].rsplit(".", 2)  # a host name may hold dots itself
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1])


def _write_owned(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, through its :func:`owned_tmp` temp file."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), tmp=owned_tmp(path))


class ShardError(ValueError):
    """A shard folder is incomplete, corrupted or does not match the request."""


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise ShardError(f"{folder} has no {MANIFEST}: it is not a shard folder (or the export never started)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ShardError(f"{path} is not valid JSON ({e}); delete the folder and export again") from e
    if manifest.get("format") != SHARD_FORMAT:
        raise ShardError(f"{path}: format {manifest.get('format')!r}, expected {SHARD_FORMAT!r}")
    return manifest


def load_shard(folder: str | Path, entry: dict, verify: bool = True) -> dict[str, np.ndarray]:
    """Arrays of one shard; with ``verify`` its sha256 is checked against the manifest entry."""
    path = Path(folder) / entry["file"]
    if not path.exists():
        raise ShardError(f"shard {path} is listed in the manifest but missing; run the export again to redo it")
    if verify:
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            raise ShardError(f"shard {path} is corrupted or was changed (sha256 {digest[:12]}..., manifest says "
                             f"{entry['sha256'][:12]}...); delete it and run the export again to redo it")
    try:
        with np.load(path, allow_pickle=False) as f:
            out = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ShardError(f"shard {path} is truncated or not a shard ({e}); delete it and export again") from e
    if len(out.get("images", ())) != entry["count"]:
        raise ShardError(f"shard {path} holds {len(out.get('images', ()))} images, the manifest says {entry['count']}")
    return out


def write_manifest(folder: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` atomically, through a temp file named by host, process and thread.

    The name lets a later export tell a temp file left by a killed process (same
    host, process gone) from one another worker is writing right now.
    """
    text = json.dumps({**manifest, "format": SHARD_FORMAT}, indent=2, sort_keys=True)
    _write_owned(Path(folder) / MANIFEST, text.encode("utf-8"))


def incomplete_reason(folder: str | os.PathLike, manifest: dict[str, Any]) -> str | None:
    """Why the set is not complete, or None when it is (the one definition, see the module docstring)."""
    folder = Path(folder)
    entries = manifest.get("shards") or []
    if not entries:
        return "the manifest lists no shards"
    missing = [e["file"] for e in entries if not (folder / e["file"]).exists()]
    if missing:
        return (f"{len(missing)} of {len(entries)} shards are missing ({', '.join(missing[:4])}"
                f"{', ...' if len(missing) > 4 else ''})")
    if manifest.get("complete") is False or any(not e.get("sha256") for e in entries):
        return "the export was not finalized"
    return None


def check_complete(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a complete shard folder, or a :class:`ShardError` saying what is missing and what to do."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ShardError(f"{folder} does not exist: export a teacher there first (notebook 02, or "
                         "`python -m gankd_utils export ...`)")
    m = read_manifest(folder)
    reason = incomplete_reason(folder, m)
    if reason:
        raise ShardError(f"{folder} is not a complete export: {reason}. Run the export again with the same arguments "
                         "(it keeps the whole shards and redoes the rest), or wait for the other workers to finish.")
    return m


def load_shards(folder: str | os.PathLike, verify: bool = True) -> ImageSet:
    """Every shard of a complete folder as one :class:`ImageSet` (for sets that fit in memory)."""
    manifest = check_complete(folder)
    parts = [load_shard(folder, e, verify) for e in manifest["shards"]]
    x = np.concatenate([p["images"] for p in parts])
    y = np.concatenate([p["labels"] for p in parts])
    z = np.concatenate([p["z"] for p in parts]) if all("z" in p for p in parts) else None
    # class names indexed by label (labels are the teacher's class ids, possibly a subset)
    ids = [int(c) for c in manifest.get("classes", [])] or sorted(set(int(v) for v in np.unique(y)))
    names = manifest.get("class_names") or [str(c) for c in ids]
    by_id = dict(zip(ids, names))
    classes = tuple(str(by_id.get(i, i)) for i in range(max(ids) + 1))
    return ImageSet(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y), classes,
                    f"shards:{Path(folder).name}", None if z is None else torch.from_numpy(z))


def teacher_info(folder: str | os.PathLike) -> dict[str, Any]:
    """What a student of this teacher export must match: resolution, z_dim, n_classes, classes, count, bytes."""
    folder = Path(folder)
    if not str(folder) or not folder.is_dir():
        raise FileNotFoundError(f"teacher set {folder} does not exist: export one first (notebook 02, or "
                                "`python -m gankd_utils export ...`) and set teacher_set to its folder")
    m = check_complete(folder)
    missing = [k for k in ("resolution", "z_dim", "n_classes", "count") if k not in m]
    if missing:
        raise ValueError(f"{folder}/manifest.json lacks {missing}: it is not a teacher export (real-data shards "
                         "carry no z); export the teacher with gankd_utils' exporter")
    if int(m["n_classes"]) < 1:
        raise ValueError(f"{folder} comes from an unconditional teacher; the TinyGAN student is class-conditional")
    side = int(m["resolution"])
    return {"resolution": side, "z_dim": int(m["z_dim"]), "n_classes": int(m["n_classes"]),
            "classes": [int(c) for c in m["classes"]], "class_names": list(m.get("class_names") or []),
            "count": int(m["count"]), "bytes": int(m["count"]) * side * side * int(m.get("channels", 3)),
            "teacher": m.get("teacher", "?")}


# ---------------------------------------------------------------- datasets over shards

def _labels_of(folder: Path, entry: dict[str, Any]) -> np.ndarray:
    path = folder / entry["file"]
    if not path.exists():
        raise ShardError(f"shard {path} is listed in the manifest but missing; run the export again to redo it")
    try:
        with np.load(path, allow_pickle=False) as f:
            labels = f["labels"]
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as e:
        raise ShardError(f"shard {path} is truncated or not a shard ({type(e).__name__}: {e}); delete it and run "
                         "the export again to redo it") from e
    if len(labels) != entry["count"]:
        raise ShardError(f"shard {path} holds {len(labels)} labels, the manifest says {entry['count']}; it was "
                         "changed or is damaged: delete it and run the export again")
    return labels.astype(np.int64)


class ShardDataset(Dataset):
    """``(image, label, z)`` items of a shard folder, optionally only some classes.

    ``folder``: a folder with ``manifest.json`` and ``shard_*.npz`` (a teacher
    export or an offline copy of real data). ``classes``: keep only these
    label values. ``verify``: check each shard's sha256 when it is first read.
    ``cache_shards``: how many decoded shards to keep in memory.
    """

    def __init__(self, folder: str | os.PathLike, classes: Sequence[int] | None = None, verify: bool = True,
                 cache_shards: int = 2, output: str = "float"):
        if output not in ("float", "uint8"):
            raise ValueError(f"output must be 'float' or 'uint8', got {output!r}")
        self.folder = Path(folder)
        self.manifest = check_complete(self.folder)  # also says so when the folder does not exist
        self.entries = list(self.manifest.get("shards") or [])
        if not self.entries:
            raise ShardError(f"{self.folder / MANIFEST} lists no shards")
        self.verify, self.output = verify, output
        self.cache_shards = max(1, int(cache_shards))
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        labels = [_labels_of(self.folder, e) for e in self.entries]
        shard = np.concatenate([np.full(len(lb), s, np.int64) for s, lb in enumerate(labels)])
        offset = np.concatenate([np.arange(len(lb), dtype=np.int64) for lb in labels])
        all_labels = np.concatenate(labels)
        if classes is not None:
            wanted = np.asarray(list(classes), np.int64)
            if wanted.size == 0:
                raise ValueError("the class subset is empty: give at least one class, or None for all")
            keep = np.isin(all_labels, wanted)
            absent = sorted(set(wanted.tolist()) - set(all_labels[keep].tolist()))
            if absent:
                raise ValueError(f"classes {absent[:10]} are not in {self.folder} (it holds "
                                 f"{len(np.unique(all_labels))} classes, e.g. {np.unique(all_labels)[:6].tolist()})")
            shard, offset, all_labels = shard[keep], offset[keep], all_labels[keep]
        self.shard_of, self.offset_of, self.labels = shard, offset, torch.from_numpy(all_labels)
        self.classes = sorted(np.unique(all_labels).tolist())

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_shards(self) -> int:
        return len(self.entries)

    def indices_of_shard(self, s: int) -> np.ndarray:
        """Dataset indices whose items live in shard ``s``."""
        return np.nonzero(self.shard_of == s)[0]

    def _shard(self, s: int) -> dict[str, np.ndarray]:
        if s in self._cache:
            self._cache.move_to_end(s)
            return self._cache[s]
        arrays = load_shard(self.folder, self.entries[s], verify=self.verify)
        self._cache[s] = arrays
        while len(self._cache) > self.cache_shards:
            self._cache.popitem(last=False)
        return arrays

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} items")
        idx = int(idx) % len(self)
        arrays = self._shard(int(self.shard_of[idx]))
        o = int(self.offset_of[idx])
        x = torch.from_numpy(np.ascontiguousarray(arrays["images"][o])).permute(2, 0, 1)
        if self.output == "float":
            x = to_float(x)
        z = torch.from_numpy(arrays["z"][o].copy()) if "z" in arrays else torch.zeros(0)
        return x, torch.tensor(int(arrays["labels"][o])), z

    def loader(self, batch_size: int, shuffle: bool = True, seed: int = 0, num_workers: int = 0,
               drop_last: bool = True, **kwargs: Any) -> DataLoader:
        """A DataLoader; with ``shuffle`` the order is a :class:`ShardShuffleSampler`'s (call its set_epoch)."""
        sampler = ShardShuffleSampler(self, seed=seed) if shuffle else None
        return DataLoader(self, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                          drop_last=drop_last, **kwargs)


class ShardShuffleSampler(Sampler[int]):
    """Every index once per epoch, shuffled across shards, ``shards_in_memory`` shards at a time.

    Epoch e permutes the shard order, then shuffles the items of each group of
    ``shards_in_memory`` consecutive shards together; it depends only on
    (seed, e), so a resumed run sees the same order.
    """

    def __init__(self, dataset: ShardDataset, seed: int = 0, shards_in_memory: int | None = None):
        self.dataset, self.seed, self.epoch = dataset, seed, 0
        self.group = max(1, int(shards_in_memory or dataset.cache_shards))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[int]:
        g = repro.generator(self.seed, f"shards:{self.epoch}")
        order = torch.randperm(self.dataset.n_shards, generator=g).tolist()
        for start in range(0, len(order), self.group):
            idx = np.concatenate([self.dataset.indices_of_shard(s) for s in order[start:start + self.group]])
            perm = torch.randperm(len(idx), generator=g).numpy()
            yield from idx[perm].tolist()


class ShardBatches:
    """Mini-batches ``(x, y, z)`` streamed from a shard folder: :class:`data.Batches`' interface for big sets.

    For teacher sets too large for memory (TinyGAN distils from 600k BigGAN
    images, 29 GB as uint8). Epoch e follows :class:`ShardShuffleSampler`'s
    order, which depends only on (seed, e); ``epoch(e, skip)`` resumes mid-epoch.
    With ``world`` processes, rank r takes its ``batch_size`` slice of every
    global batch (disjoint data per rank). x float32 (B, C, H, W) in [-1, 1],
    y int64 (B,), z float32 (B, z_dim).
    """

    def __init__(self, dataset: ShardDataset, batch_size: int, seed: int = 0, device: str | torch.device = "cpu",
                 rank: int = 0, world: int = 1, shards_in_memory: int = 4):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world:
            raise ValueError(f"rank must lie in 0..{world - 1}, got {rank}")
        if len(dataset) < batch_size * world:
            raise ValueError(f"{dataset.folder} holds {len(dataset)} items, fewer than one batch of {batch_size}"
                             + (f" for each of {world} processes" if world > 1 else ""))
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.device, self.rank, self.world = torch.device(device), rank, world
        dataset.cache_shards = max(dataset.cache_shards, shards_in_memory + 1)
        self.sampler = ShardShuffleSampler(dataset, seed=seed, shards_in_memory=shards_in_memory)

    def __len__(self) -> int:
        return len(self.dataset) // (self.batch_size * self.world)

    def epoch(self, e: int, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        self.sampler.set_epoch(e)
        order = np.fromiter(iter(self.sampler), dtype=np.int64, count=len(self.dataset))
        ds = self.dataset
        for i in range(skip, len(self)):
            start = (i * self.world + self.rank) * self.batch_size
            idx = order[start:start + self.batch_size]
            xs, ys, zs = [], [], []
            for s in np.unique(ds.shard_of[idx]):  # gather per shard (a few shards per batch)
                part = idx[ds.shard_of[idx] == s]
                arrays = ds._shard(int(s))
                o = ds.offset_of[part]
                xs.append(arrays["images"][o])
                ys.append(arrays["labels"][o])
                if "z" not in arrays:
                    raise ShardError(f"{ds.folder} holds no z: black-box KD needs the teacher's noise "
                                     "(export it with gankd_utils' exporter)")
                zs.append(arrays["z"][o])
            x = to_float(torch.from_numpy(np.concatenate(xs)).permute(0, 3, 1, 2))
            yield (x.to(self.device, non_blocking=True),
                   torch.from_numpy(np.concatenate(ys).astype(np.int64)).to(self.device),
                   torch.from_numpy(np.concatenate(zs)).to(self.device))
