"""CIFAR-10 in small lossless parts, to carry to a machine without network (``python -m gankd_utils datapack``).

A GPU node without internet, or a hosted notebook that caps each upload, cannot download CIFAR-10
(170 MB as the npz shards the loader reads). ``pack`` writes it as parts of at most ``part_mib`` MiB:
every image compressed on its own as lossless WebP (about 1.75 kB against 3,072 raw bytes), so a
decoded image is the original, bit for bit (each part records the sha256 of its decoded pixels and
labels, and ``unpack`` checks it). ``unpack`` decodes the parts it finds into the data root's
``cifar10/train_XX.npz`` + ``test.npz``, in the original order when every part is there.

Classes are interleaved in the training parts (image k of each class before image k+1 of any), so
the first parts alone are a class-balanced subset: the loader then warns that it holds a subset,
and REPORT.md flags what was trained or scored on it. A part is an ``.npz`` of plain arrays (no
pickles): ``data`` uint8 (every image's WebP bytes, one after another), ``offsets`` int64 (N + 1,),
``labels`` int64 (N,), ``index`` int64 (N,: each image's position in its split). ``datapack.json``
lists the parts with their sha256 sums.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from . import data, paths
from .io import atomic_write, atomic_write_text, sha256_file

MANIFEST = "datapack.json"
SHARD = 5_000  # images per written cifar10/train_XX.npz, as the original shards
FORMAT = 1


def _encode(image: np.ndarray) -> bytes:
    """(32, 32, 3) uint8 -> lossless WebP bytes (method 2: within 1% of the smallest, 100x faster than 6)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "WEBP", lossless=True, quality=100, method=2)
    return buf.getvalue()


def _decode(blob: bytes) -> np.ndarray:
    from PIL import Image
    with Image.open(io.BytesIO(blob)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _savez(path: str, **arrays: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object, so numpy adds no ".npz" to the temporary name
        np.savez(f, **arrays)


def _pixels_sha(images: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def interleave(labels: np.ndarray) -> np.ndarray:
    """Indices ordered so that classes take turns: image k of every class comes before image k+1 of any.

    Any prefix is then class-balanced to within one image per class. Stable: within a class, the
    original order is kept.
    """
    labels = np.asarray(labels)
    rank = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        rank[where] = np.arange(len(where))
    return np.lexsort((labels, rank))  # by rank within the class, then by class


def pack(out: str | Path, part_mib: float = 48.0, root: str | Path | None = None,
         splits: tuple[str, ...] = ("train", "test")) -> dict:
    """Write CIFAR-10 from the data root as lossless parts of at most ``part_mib`` MiB under ``out``.

    Returns the manifest (also written to ``out/datapack.json``). Parts are named
    ``cifar10-<split>.partNN.npz``. Refuses a folder that already holds a pack (nothing is overwritten).
    """
    if part_mib < 0.01:
        raise ValueError(f"part_mib must be at least 0.01 MiB (got {part_mib}): a part holds at least one image")
    unknown = set(splits) - {"train", "test"}
    if unknown or not splits:
        raise ValueError(f"splits must be train and/or test, got {list(splits)}")
    out = Path(out)
    if (out / MANIFEST).exists() or list(out.glob("cifar10-*.part*.npz")):
        raise FileExistsError(f"{out} already holds a CIFAR-10 pack: pack into an empty folder, "
                              "or remove the old pack first")
    out.mkdir(parents=True, exist_ok=True)
    budget = int(part_mib * 2**20) - 4096  # the npz's own headers
    manifest = {"format": FORMAT, "dataset": "cifar10", "encoding": "webp-lossless", "part_mib": part_mib,
                "splits": {}, "parts": []}
    for split in splits:
        ds = data.load_cifar10(train=split == "train", root=root, download=False)
        images = ds.images.permute(0, 2, 3, 1).contiguous().numpy()  # (N, 32, 32, 3)
        labels = ds.labels.numpy().astype(np.int64)
        manifest["splits"][split] = {"count": int(len(images)), "sha256": _pixels_sha(images, labels)}
        order = interleave(labels) if split == "train" else np.arange(len(images))
        blobs: list[bytes] = []
        idx: list[int] = []
        size = 0

        def flush():
            k = sum(p["split"] == split for p in manifest["parts"])
            name = f"cifar10-{split}.part{k:02d}.npz"
            index = np.asarray(idx, dtype=np.int64)
            offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
            atomic_write(out / name, lambda tmp: _savez(
                tmp, data=np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets=offsets,
                labels=labels[index], index=index))
            manifest["parts"].append({"file": name, "split": split, "count": int(len(index)),
                                      "bytes": (out / name).stat().st_size, "sha256": sha256_file(out / name),
                                      "pixels_sha256": _pixels_sha(images[index], labels[index])})

        for i in order:
            blob = _encode(images[i])
            if blobs and size + len(blob) + 24 > budget:
                flush()
                blobs, idx, size = [], [], 0
            blobs.append(blob)
            idx.append(int(i))
            size += len(blob) + 24  # its bytes, its offset, label and index (int64 each)
        if blobs:
            flush()
    # the manifest last and whole: a pack cut off while writing it leaves none, so it reads as unfinished, not damaged
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def _read_part(path: Path, entry: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if sha256_file(path) != entry["sha256"]:
        raise ValueError(f"{path}: its sha256 does not match {MANIFEST} (the file is damaged or from another "
                         "pack): copy it again from the machine that packed it")
    with np.load(path, allow_pickle=False) as z:
        blob, offsets, labels, index = z["data"].tobytes(), z["offsets"], z["labels"], z["index"]
    images = np.stack([_decode(blob[offsets[k]:offsets[k + 1]]) for k in range(len(index))])
    if images.shape[1:] != (32, 32, 3) or _pixels_sha(images, labels) != entry["pixels_sha256"]:
        raise ValueError(f"{path}: its decoded images differ from the packed ones: copy it again, or pack again")
    return images, labels, index


def unpack(folder: str | Path, root: str | Path | None = None) -> dict:
    """Decode the parts under ``folder`` into ``<root>/cifar10/`` (``root``: the data root by default).

    Every part is sha256-checked before it is decoded, and its decoded pixels after. With every
    training part present the shards hold the original images in the original order (checked against
    the whole split's sha256); with some, a class-balanced subset. Refuses a data root that already
    holds CIFAR-10 shards. Returns ``{split: number of images written}``.
    """
    folder = Path(folder)
    mpath = folder / MANIFEST
    if not mpath.exists():
        raise FileNotFoundError(f"{folder} holds no {MANIFEST}: point unpack at the folder `datapack pack` wrote "
                                "(its parts and the manifest beside them)")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{mpath} is not valid JSON ({e}): copy the pack's {MANIFEST} again, or pack again") from e
    if not isinstance(manifest, dict):
        raise ValueError(f"{mpath} does not hold a pack manifest (a JSON object): copy it again, or pack again")
    if manifest.get("format") != FORMAT or manifest.get("dataset") != "cifar10":
        raise ValueError(f"{mpath}: not a CIFAR-10 pack of format {FORMAT}: pack it again with this version")
    dest = (Path(root) if root is not None else paths.data_root()) / "cifar10"
    if list(dest.glob("train_*.npz")) or (dest / "test.npz").exists():
        raise FileExistsError(f"{dest} already holds CIFAR-10 shards: unpack into another data root "
                              "(--root), or move those shards away first")
    present = [p for p in manifest["parts"] if (folder / p["file"]).exists()]
    if not present:
        raise FileNotFoundError(f"none of the {len(manifest['parts'])} parts listed in {mpath} is in {folder}")
    decoded = {}  # every part is read and checked before anything is written
    for split, info in manifest["splits"].items():
        parts = [p for p in present if p["split"] == split]
        if not parts:
            continue
        got = [_read_part(folder / p["file"], p) for p in parts]
        images = np.concatenate([g[0] for g in got])
        labels = np.concatenate([g[1] for g in got])
        index = np.concatenate([g[2] for g in got])
        if len(images) == info["count"]:  # complete: the original order, and the whole split's checksum
            order = np.argsort(index, kind="stable")
            images, labels = images[order], labels[order]
            if _pixels_sha(images, labels) != info["sha256"]:
                raise ValueError(f"{folder}: the {split} parts decode to a set that differs from the packed one: "
                                 "pack again")
        decoded[split] = (images, labels)
    dest.mkdir(parents=True, exist_ok=True)
    for split, (images, labels) in decoded.items():
        chunks = ([(f"train_{k // SHARD:02d}.npz", slice(k, k + SHARD)) for k in range(0, len(images), SHARD)]
                  if split == "train" else [("test.npz", slice(0, len(images)))])
        for name, sl in chunks:
            atomic_write(dest / name, lambda tmp, sl=sl: _savez(tmp, images=images[sl], labels=labels[sl]))
    return {split: int(len(images)) for split, (images, _) in decoded.items()}
