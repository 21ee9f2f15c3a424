"""A torch Dataset over a shard folder: the teacher set the distillation chapters train on.

Lazy: the constructor reads the manifest and each shard's labels only (a few
bytes per shard, which also finds a truncated file at once); images are read
one shard at a time, when first asked for, verified against the manifest's
sha256, and kept in a small LRU cache. :class:`ShardShuffleSampler` shuffles
across shards while touching only a few at a time (the shuffle-buffer idea of
WebDataset-style loaders: permute the shard order, then the items of a group
of shards), so an epoch reads every shard once.

Items are ``(image, label, z)``: image float32 (C, H, W) in [-1, 1] (or uint8
with ``output="uint8"``), label int64 (the teacher's class id), z float32
(z_dim,) (empty when the shards hold no z).
"""
from __future__ import annotations

import os
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .. import repro
from ..data import MANIFEST, ShardError, load_shard, read_manifest, to_float


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
        if not self.folder.is_dir():
            raise ShardError(f"{self.folder} does not exist: export a teacher there first (notebook 02 or "
                             "`python -m gankd_utils export ...`)")
        self.manifest = read_manifest(self.folder)
        if "complete" in self.manifest:  # a teacher export: refuse a partial set
            from .export import check_complete

            check_complete(self.folder)
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
