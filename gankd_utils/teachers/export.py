"""Export a teacher's (z, y, image) triples to a shard folder: resumable, atomic, parallel.

The black-box distillation of TinyGAN (Chang & Lu, "TinyGAN: Distilling BigGAN
for Conditional Image Generation", ACCV 2020) and of the CIFAR-10 chapter
trains the student on a fixed set of teacher inputs and outputs. This module
writes that set in the shard format of ``gankd_utils.data`` (uint8 images,
never JPEG; int64 labels; float32 z) with a manifest naming the teacher,
handle, resolution, truncation, seeds, classes, counts and per-shard sha256.

Layout of a request (so that every shard depends on (request, shard index) only):

- items are (class, sample) pairs in class-major order: item k is class
  ``classes[k // per_class]``, sample ``k % per_class``;
- shard i holds items ``[i * shard_size, (i + 1) * shard_size)``;
- z of class c is the first ``per_class`` rows drawn from a CPU
  ``torch.Generator`` seeded with ``repro.purpose_seed(seed, f"export:{c}")``:
  every class has its own noise (no seed shared across classes), and a shard
  redone after a crash gets exactly the z it had;
- images are generated in batches that restart at each shard's first item.

Resume and atomicity: a shard is written to a temporary file and renamed, so
the folder only ever holds whole shards; a rerun with the same arguments keeps
them (after checking their sha256) and redoes the rest, and the final manifest
holds no time stamps, so an interrupted-then-resumed export is byte-identical
to an uninterrupted one. A folder whose manifest disagrees with the request is
refused, never mixed.

Workers: worker k of n writes shards k, k + n, ...; each finishes by checking
whether the whole set is there (:func:`finalize`), and the last one marks the
manifest complete. Readers (``shards.check_complete``, ``shards.ShardDataset``)
refuse an incomplete set.

Generation and disk writes overlap: one background thread writes shard i
while the teacher generates shard i + 1 (a bounded queue keeps at most two
shards in memory), so the export runs at the teacher's own speed.
"""
from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from .. import repro
from ..classes import check_class_ids
from ..io import sha256_file
from ..shards import (MANIFEST, ShardError, load_shard, read_manifest, shard_name, tmp_owner, write_manifest,
                      write_shard)
from .biggan import check_truncation, load_biggan
from .torch_teacher import TorchTeacher

# The request fields a resumed export (or another worker) must agree on.
COMPARED = ("teacher", "teacher_kind", "teacher_sha256", "resolution", "channels", "z_dim", "noise",
            "truncation", "seed", "classes", "per_class", "shard_size")
_STALE_TMP_S = 600.0  # a temp file (shard or manifest) not written to for this long belongs to a killed process


class Teacher(Protocol):
    """What the export needs of a teacher (BigGAN and TorchTeacher both provide it)."""

    name: str
    kind: str
    n_classes: int
    z_dim: int

    def identity(self) -> dict[str, Any]: ...

    def default_classes(self) -> tuple[int, ...]: ...

    def class_names(self) -> tuple[str, ...]: ...

    def sample_z(self, n: int, truncation: float, generator: torch.Generator) -> np.ndarray: ...

    def generate_uint8(self, z: np.ndarray, labels: np.ndarray, truncation: float) -> np.ndarray: ...


# ---------------------------------------------------------------- planning

def plan_export(teacher: Teacher, classes: Sequence[int] | None = None, per_class: int = 100,
                truncation: float = 1.0, seed: int = 0, shard_size: int = 1000) -> dict[str, Any]:
    """The manifest of a fresh export of this request: every shard planned, none done yet."""
    check_request(per_class, truncation, shard_size)
    if classes is None:
        classes = teacher.default_classes()
    if tuple(classes) == (-1,) and teacher.n_classes == 0:
        classes = [-1]  # an unconditional teacher: one group of unlabelled samples
    elif teacher.n_classes == 0:
        raise ValueError(f"{teacher.name} is unconditional: it takes no classes (leave the class list out)")
    else:
        classes = check_class_ids(list(classes), teacher.n_classes).tolist()
        if len(set(classes)) != len(classes):
            raise ValueError("the class list repeats a class id; give each class once (per_class sets how many)")
    names = teacher.class_names()
    count = len(classes) * int(per_class)
    n_shards = -(-count // int(shard_size))
    shards = [{"file": shard_name(i), "count": min(shard_size, count - i * shard_size), "sha256": None}
              for i in range(n_shards)]
    return {
        **teacher.identity(),
        "truncation": float(truncation),
        "seed": int(seed),
        "classes": [int(c) for c in classes],
        "class_names": ["all" if c < 0 else names[c] for c in classes],
        "class_seeds": [repro.purpose_seed(int(seed), f"export:{c}") for c in classes],
        "per_class": int(per_class),
        "count": count,
        "shard_size": int(shard_size),
        "n_shards": n_shards,
        "layout": "class-major: item k is class classes[k // per_class], sample k % per_class; "
                  "shard i holds items [i * shard_size, (i + 1) * shard_size)",
        "noise_rule": "z of class c: the first per_class rows drawn from a CPU torch.Generator seeded with "
                      "class_seeds[c] = repro.purpose_seed(seed, 'export:<c>')",
        "arrays": {"images": "uint8 (N, H, W, C)", "labels": "int64 (N,) teacher class ids (-1: unconditional)",
                   "z": "float32 (N, z_dim), as fed to the teacher"},
        "shards": shards,
        "complete": False,
    }


def check_request(per_class: int, truncation: float, shard_size: int, worker: int = 0, workers: int = 1) -> None:
    """Clear errors for request values that cannot work (before any teacher is loaded)."""
    if int(per_class) < 1:
        raise ValueError(f"--per-class must be >= 1, got {per_class}")
    if int(shard_size) < 1:
        raise ValueError(f"--shard-size must be >= 1, got {shard_size}")
    check_truncation(truncation)
    if int(workers) < 1 or not 0 <= int(worker) < int(workers):
        raise ValueError(f"worker must lie in 0..workers-1, got --worker {worker} --workers {workers}")


def check_out(out: str | os.PathLike) -> None:
    """The export's folder must be a folder (or not exist yet): a file there is refused, and left as it is."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a folder: give --out a new folder (or the folder of "
                              "this export, to resume it); the file is left as it is")


def _describe(key: str, value: Any) -> str:
    if isinstance(value, list) and len(value) > 6:
        return f"{len(value)} ids {value[0]}..{value[-1]}"
    return repr(value)


def _open_folder(out: Path, plan: dict[str, Any]) -> dict[str, Any]:
    """The folder's manifest, created from ``plan`` if new; refuse a folder holding another export."""
    if (out / MANIFEST).exists():
        have = read_manifest(out)
        diffs = [f"{k}: {_describe(k, have.get(k))} there, {_describe(k, plan.get(k))} asked"
                 for k in COMPARED if have.get(k) != plan.get(k)]
        if diffs:
            raise ShardError(f"{out} already holds a different export ({'; '.join(diffs)}). It is refused rather than "
                             f"mixed: export into another folder (--out), or delete {out} to start over.")
        return have
    strays = sorted(p.name for p in out.glob("shard_*.npz")) if out.exists() else []
    if strays:
        raise ShardError(f"{out} holds shards ({strays[0]}, ...) but no {MANIFEST}: they were not written by this "
                         "export and are refused rather than mixed; use another folder or empty this one")
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, plan)
    return read_manifest(out)


def _record(out: Path, index: int, entry: dict[str, Any]) -> None:
    # read-modify-write so that entries other workers recorded are kept; a
    # rare lost update only costs finalize() one hash of that shard
    m = read_manifest(out)
    m["shards"][index] = {**m["shards"][index], **entry}
    write_manifest(out, m)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _clean_stale(out: Path, mine: Sequence[int]) -> None:
    """Remove the temp files of processes that are gone; keep those other workers are writing right now.

    Shards and the manifest are written through temp files named by host and process (``shards.owned_tmp``):
    one of this host whose process has ended, or any not written to for ``_STALE_TMP_S``, is a killed run's.
    A temp of another name (an older version's) is removed only for this worker's own shards.
    """
    host, now = socket.gethostname(), time.time()
    my_names = {shard_name(i) for i in mine}
    temps = [(t, t.name[1:].split(".npz.", 1)[0] + ".npz") for t in out.glob(".shard_*.npz.*.tmp")]
    for tmp, name in temps + [(t, MANIFEST) for t in out.glob(f".{MANIFEST}.*.tmp")]:  # no other file is touched
        owner = tmp_owner(tmp, name)
        try:
            if owner is None:
                dead = name in my_names or now - tmp.stat().st_mtime > _STALE_TMP_S
            else:
                dead = owner[0] == host and not _pid_alive(owner[1]) or now - tmp.stat().st_mtime > _STALE_TMP_S
            if dead:
                tmp.unlink(missing_ok=True)
        except FileNotFoundError:  # its writer renamed or removed it meanwhile
            pass


def _shard_ok(out: Path, entry: dict[str, Any]) -> str | None:
    """sha256 of a whole, valid shard on disk, else None (missing, truncated, changed)."""
    path = out / entry["file"]
    if not path.exists():
        return None
    digest = sha256_file(path)
    if entry.get("sha256"):
        return digest if digest == entry["sha256"] else None
    try:  # written, but the manifest never heard of it (killed between rename and record)
        load_shard(out, {**entry, "sha256": digest}, verify=False)
    except ShardError:
        return None
    return digest


# ---------------------------------------------------------------- completion

def finalize(out: str | os.PathLike) -> dict[str, Any]:
    """Mark the export complete if every planned shard is on disk; return ``{"complete", "missing"}``.

    Shards whose sha256 the manifest lacks are hashed now. Any worker (or a
    plain rerun of the export) may call it; it is idempotent.
    """
    out = Path(out)
    m = read_manifest(out)
    before = dict(m, shards=[dict(e) for e in m["shards"]])
    missing = [e["file"] for e in m["shards"] if not (out / e["file"]).exists()]
    if not missing:
        for e in m["shards"]:
            if not e.get("sha256"):
                e["sha256"] = sha256_file(out / e["file"])
    m["complete"] = not missing
    if m != before:
        write_manifest(out, m)
    return {"complete": not missing, "missing": missing}


def check_export(out: str | os.PathLike) -> dict[str, Any]:
    """What ``export --check`` says: :func:`finalize`, then every shard on disk checked whole against the
    manifest; ``{"complete", "missing", "damaged"}`` (file names). Generates nothing, so it is safe while
    workers are still writing."""
    out = Path(out)
    fin = finalize(out)
    on_disk = [e for e in read_manifest(out)["shards"] if (out / e["file"]).exists()]
    damaged = [e["file"] for e in on_disk if _shard_ok(out, e) is None]
    return {**fin, "damaged": damaged}


# ---------------------------------------------------------------- the export

class _ClassNoise:
    """z of one class, drawn whole once and sliced (shards may split a class)."""

    def __init__(self, teacher: Teacher, plan: dict[str, Any]):
        self.teacher, self.plan = teacher, plan
        self._cache: dict[int, np.ndarray] = {}

    def __call__(self, ci: int) -> np.ndarray:
        if ci not in self._cache:
            if len(self._cache) > 2:
                self._cache.pop(next(iter(self._cache)))
            g = torch.Generator(device="cpu")
            g.manual_seed(self.plan["class_seeds"][ci])
            z = self.teacher.sample_z(self.plan["per_class"], self.plan["truncation"], g)
            self._cache[ci] = np.ascontiguousarray(z, dtype=np.float32)
        return self._cache[ci]


def shard_inputs(plan: dict[str, Any], index: int, noise: _ClassNoise) -> tuple[np.ndarray, np.ndarray]:
    """(z float32 (n, z_dim), labels int64 (n,)) of shard ``index`` of a planned export."""
    k, p = plan["shard_size"], plan["per_class"]
    first, stop = index * k, min((index + 1) * k, plan["count"])
    zs, ys = [], []
    for ci in range(first // p, (stop - 1) // p + 1):
        lo, hi = max(first, ci * p) - ci * p, min(stop, (ci + 1) * p) - ci * p
        zs.append(noise(ci)[lo:hi])
        ys.append(np.full(hi - lo, plan["classes"][ci], np.int64))
    return np.concatenate(zs), np.concatenate(ys)


class _Writer(threading.Thread):
    """Writes queued shards and records them in the manifest, while the teacher generates the next."""

    def __init__(self, out: Path):
        super().__init__(daemon=True, name="gankd-shard-writer")
        self.out = out
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None:
                continue  # drain after a failure; the main thread re-raises
            i, x, y, z = item
            try:
                _record(self.out, i, write_shard(self.out, i, x, y, z))
            except BaseException as e:  # disk full, permissions: hand it to the main thread
                self.error = e

    def put(self, item) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        self.queue.put(None)
        self.join()
        if self.error is not None:
            raise self.error


def export(teacher: Teacher, out: str | os.PathLike, classes: Sequence[int] | None = None, per_class: int = 100,
           truncation: float = 1.0, seed: int = 0, shard_size: int = 1000, batch_size: int = 64,
           worker: int = 0, workers: int = 1, progress: bool = True) -> dict[str, Any]:
    """Export ``teacher``'s triples for ``classes`` x ``per_class`` into ``out`` (worker ``worker`` of ``workers``).

    ``classes``: teacher class ids (None: the teacher's default, BigGAN's 398
    animals 0..397 or all of a torch generator's classes). Returns a summary:
    ``{"out", "n_shards", "written", "kept", "redone", "images_written",
    "seconds", "images_per_s", "complete", "missing"}``.
    """
    check_request(per_class, truncation, shard_size, worker, workers)
    if int(batch_size) < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    out = Path(out)
    check_out(out)
    plan = plan_export(teacher, classes, per_class, truncation, seed, shard_size)
    manifest = _open_folder(out, plan)
    mine = [i for i in range(plan["n_shards"]) if i % workers == worker]
    _clean_stale(out, mine)

    kept, todo, redone = [], [], []
    for i in mine:
        entry = manifest["shards"][i]
        digest = _shard_ok(out, entry)
        if digest is None:
            todo.append(i)
            if (out / entry["file"]).exists():
                redone.append(i)  # truncated or changed since it was written: generated again
        else:
            kept.append(i)
            if entry.get("sha256") != digest:
                _record(out, i, {"sha256": digest})

    noise = _ClassNoise(teacher, plan)
    total = sum(plan["shards"][i]["count"] for i in mine)
    done_before = sum(plan["shards"][i]["count"] for i in kept)
    bar = tqdm(total=total, initial=done_before, unit="img", disable=not progress, smoothing=0.1,
               desc=f"export {teacher.name}" + (f" [worker {worker}/{workers}]" if workers > 1 else ""))
    writer = _Writer(out)
    writer.start()
    t0 = time.perf_counter()
    written = 0
    try:
        for i in todo:
            z, y = shard_inputs(plan, i, noise)
            images = []
            for b in range(0, len(z), batch_size):
                images.append(teacher.generate_uint8(z[b:b + batch_size], y[b:b + batch_size], plan["truncation"]))
                bar.update(len(images[-1]))
            writer.put((i, np.concatenate(images), y, z))
            written += len(z)
    finally:
        bar.close()
        writer.close()  # waits for the last shard on disk (also after Ctrl-C: whole shards only)
    seconds = time.perf_counter() - t0
    fin = finalize(out)
    return {"out": str(out), "teacher": teacher.name, "n_shards": plan["n_shards"], "worker": worker,
            "workers": workers, "written": todo, "kept": kept, "redone": redone, "images_written": written,
            "seconds": seconds, "images_per_s": written / seconds if seconds > 0 and written else 0.0, **fin}


# ---------------------------------------------------------------- teachers by kind

def load_teacher(kind: str, handle: str | None = None, checkpoint: str | None = None, device: str = "auto"):
    """A teacher by kind: ``"biggan"`` (TF-Hub handle) or ``"checkpoint"`` (a gankd torch generator)."""
    if kind == "biggan":
        if checkpoint:
            raise ValueError("--checkpoint is for --teacher checkpoint; BigGAN is chosen with --handle")
        return load_biggan(handle, device=device)
    if kind == "checkpoint":
        if not checkpoint:
            raise ValueError("--teacher checkpoint needs --checkpoint NAME.safetensors (a gankd generator checkpoint)")
        if handle:
            raise ValueError("--handle is for --teacher biggan; a torch teacher is chosen with --checkpoint")
        return TorchTeacher.from_checkpoint(checkpoint, device)
    raise ValueError(f"unknown teacher {kind!r}: choose 'biggan' or 'checkpoint'")
