"""Shipped weights: the generators of a full GPU run, committed with the suite and checked by sha256.

The project commits the final checkpoints of one ``full``-profile run under
``results/weights/``; the notebooks and commands load them instead of training
when asked to (the notebooks' ``WEIGHTS`` parameter, :func:`resolve`). A user's
own training writes to its own run folders (``results/<chapter>/runs/...``),
never here: only :func:`ship` writes into this folder, and it refuses a folder
that lies inside a run folder.

Layout::

    results/weights/                 weights_root(): GANKD_WEIGHTS, else <GANKD_RESULTS>/weights
      MANIFEST.json                  what is shipped and the sha256 of every file (below)
      SHA256SUMS                     the same sums for `sha256sum -c SHA256SUMS` (run inside the folder)
      <dataset>/<model>/G.safetensors + G.json    the generator, a gankd checkpoint
      <dataset>/<model>/D.safetensors + D.json    the discriminator, when shipped for fine-tunes
      <dataset>/<model>/history.json              its training curves (the run's losses per step), when kept
      <dataset>/<model>/quality.json              its snapshots' scores, when a chapter scored them (convergence)
      <dataset>/<model>.seedN/G.safetensors + G.json   a student's run with another seed (seed_name), G alone
      <dataset>/classifier/<dataset>cls_<id>.safetensors + .json   the run's evaluator classifier

``MANIFEST.json``::

    {"format": "gankd-weights/1", "profile": "full", "device": "...", "created": "<UTC ISO time>",
     "files":  {"mnist/cdcgan_c32_kd/G.safetensors": {"sha256": "<64 hex>", "bytes": 270000}, ...},
     "models": {"mnist/cdcgan_c32_kd": {"dataset": "mnist", "model": "cdcgan_c32_kd",
                                        "files": ["mnist/cdcgan_c32_kd/G.json",
                                                  "mnist/cdcgan_c32_kd/G.safetensors"],
                                        "seed": 0, "steps": 23450, "params": 67196, "note": ""}, ...}}

File paths are relative to the folder, with ``/``. Checkpoints are
``NAME.safetensors`` + ``NAME.json`` (:mod:`gankd_utils.checkpoint`): nothing
shipped is ever unpickled. Every load checks the sha256 of the files it reads
first (:func:`verify`); a file that was altered, truncated, or left as a
git-lfs pointer gives a :class:`ShippedWeightsError` naming it and the remedy.
Hashes are cached per process, keyed by the file's path, size, mtime and inode.

From a shell: ``python -m gankd_utils weights verify [KEY]`` (one line per file,
exit status 1 on any mismatch) and ``python -m gankd_utils weights list``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from torch import nn

from . import checkpoint, paths
from .metrics.size import count_params
from .io import atomic_write_bytes, atomic_write_text, sha256_file

FORMAT = "gankd-weights/1"
MANIFEST = "MANIFEST.json"
SUMS = "SHA256SUMS"
HISTORY = "history.json"  # a run's losses per step: shipped beside its checkpoints, so its curves travel with it
QUALITY = "quality.json"  # its snapshots' scores (evaluation.snapshot_curves): the convergence check travels too
CURVE_FILES = (HISTORY, QUALITY)  # a run's files beside its checkpoints that ship and come back with them
CHOICES = ("auto", "shipped", "train")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_LFS_MAGIC = b"version https://git-lfs"
# A file modified this recently may change again within the same mtime tick: hash it, but do not cache it.
_RACY_S = 2.0
_HASHES: dict[tuple[str, int, int, int], str] = {}


class ShippedWeightsError(FileNotFoundError):
    """Shipped weights are absent, altered or not listed; the message names the file and the remedy."""


class ManifestError(ShippedWeightsError, ValueError):
    """``MANIFEST.json`` is not valid JSON or not in the ``gankd-weights/1`` format."""


# ---------------------------------------------------------------- where

def weights_root() -> Path:
    """The shipped weights folder: ``GANKD_WEIGHTS``, else ``paths.results_root()/"weights"``."""
    env = paths.setting("GANKD_WEIGHTS")
    return Path(env).expanduser() if env else paths.results_root() / "weights"


def _root(root: str | Path | None) -> Path:
    return Path(root).expanduser() if root is not None else weights_root()


def _show(p: Path) -> str:
    """``p`` relative to the repository when it lies inside it (``results/weights/...``), else as is."""
    try:
        return Path(p).resolve().relative_to(paths.REPO_ROOT).as_posix()
    except ValueError:
        return str(p)


def _restore_hint(root: Path) -> str:
    """How to get a damaged or missing shipped file back: git restores the repository's own folder; a folder
    elsewhere (GANKD_WEIGHTS) is no part of the repository, so git cannot, and its files are copied back."""
    try:
        Path(root).resolve().relative_to(paths.REPO_ROOT)
    except ValueError:
        return (f"copy the shipped files back into {_show(root)} (from the repository's results/weights, or from "
                f'wherever that folder was filled), or set WEIGHTS = "train" to train your own')
    return (f"restore it with `git checkout -- {_show(root)}` (and `git lfs pull` if the repository uses "
            f'git-lfs) or set WEIGHTS = "train" to train your own')


def _split_key(key: str) -> tuple[str, str]:
    parts = key.split("/") if isinstance(key, str) else []
    if len(parts) != 2 or not all(_NAME.match(p) and p not in (".", "..") for p in parts):
        raise ValueError(f"a shipped model is named 'dataset/model' (letters, digits, _ . + -), got {key!r}")
    return parts[0], parts[1]


def _safe_rel(rel: str) -> bool:
    p = PurePosixPath(rel)
    return (isinstance(rel, str) and bool(rel) and "\\" not in rel and not p.is_absolute()
            and all(part not in ("", ".", "..") for part in rel.split("/")))


# ---------------------------------------------------------------- manifest

def manifest(root: str | Path | None = None) -> dict[str, Any] | None:
    """The parsed ``MANIFEST.json`` of ``root``; None when there is none.

    Raises :class:`ManifestError` when it is not valid JSON or not a ``gankd-weights/1`` manifest.
    """
    root = _root(root)
    f = root / MANIFEST
    if not f.is_file():
        return None
    where = _show(f)
    try:
        m = json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"{where} is not valid JSON ({e}): restore it with `git checkout -- {where}`, "
                            'or set WEIGHTS = "train" to train your own') from e
    return check_manifest(m, where)


def check_manifest(m: Any, where: str) -> dict[str, Any]:
    """``m`` when it is a well-formed ``gankd-weights/1`` manifest (:func:`manifest` reads one from disk, :func:`merge`
    is handed them); else :class:`ManifestError` naming ``where`` it came from and what is wrong."""
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        got = m.get("format") if isinstance(m, dict) else type(m).__name__
        raise ManifestError(f"{where} is not a shipped-weights manifest: format {got!r}, expected {FORMAT!r} "
                            "(was it written by a newer gankd? update the package)")
    files, models = m.get("files"), m.get("models")
    if not isinstance(files, dict) or not isinstance(models, dict):
        raise ManifestError(f"{where} lacks its 'files' and 'models' tables (format {FORMAT})")
    for rel, e in files.items():
        if not _safe_rel(rel):
            raise ManifestError(f"{where} lists {rel!r}: file paths must be relative, with '/', inside the folder")
        if (not isinstance(e, dict) or not isinstance(e.get("sha256"), str) or not _SHA.match(e["sha256"])
                or not isinstance(e.get("bytes"), int) or isinstance(e["bytes"], bool) or e["bytes"] < 0):
            raise ManifestError(f"{where}: the entry of {rel} needs a 64-hex 'sha256' and a 'bytes' count, got {e!r}")
    for key, e in models.items():
        try:
            _split_key(key)
        except ValueError as err:
            raise ManifestError(f"{where}: {err}") from None
        if not isinstance(e, dict) or not isinstance(e.get("files"), list):
            raise ManifestError(f"{where}: the model {key} needs a 'files' list")
        unknown = [r for r in e["files"] if not isinstance(r, str) or r not in files]
        if unknown:
            raise ManifestError(f"{where}: the model {key} names files without a sha256 entry: {unknown}")
    return m


def _need_manifest(root: Path) -> dict[str, Any]:
    m = manifest(root)
    if m is None:
        raise ShippedWeightsError(
            f"no shipped weights: {_show(root / MANIFEST)} does not exist. Check out the repository's "
            f'results/weights (or point GANKD_WEIGHTS at a copy), or set WEIGHTS = "train" to train your own')
    return m


def available(dataset: str | None = None, root: str | Path | None = None) -> list[str]:
    """The shipped models as sorted ``"dataset/model"`` keys (of one ``dataset`` if given); no hashing."""
    m = manifest(root)
    if m is None:
        return []
    return sorted(k for k in m["models"] if dataset is None or k.split("/", 1)[0] == dataset)


def has(dataset: str, model: str, root: str | Path | None = None) -> bool:
    """True when the manifest lists ``dataset/model`` (the files are checked when loaded)."""
    return f"{dataset}/{model}" in available(root=root)


def shipped_seed(dataset: str, model: str, root: str | Path | None = None) -> int | None:
    """The seed the shipped ``dataset/model`` was trained with (None: not shipped, or not recorded); no hashing."""
    m = manifest(root)
    seed = (m or {}).get("models", {}).get(f"{dataset}/{model}", {}).get("seed")
    return None if seed is None else int(seed)


def seed_name(model: str, seed: int) -> str:
    """The shipped name of ``model``'s run with another ``seed`` than the one shipped as ``model`` itself.

    A full run trains each student with several seeds (mean and spread over seeds); the first
    ships as ``dataset/model``, the others as ``dataset/model.seedN`` (the generator alone).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"a seed is an integer >= 0, got {seed!r}")
    return f"{model}.seed{seed}"


def name_for_seed(dataset: str, model: str, seed: int, root: str | Path | None = None) -> str | None:
    """The shipped name that holds ``model``'s run of ``seed``: ``model`` (where its recorded seed is
    ``seed``, or none is recorded), else :func:`seed_name` where that is shipped; None if neither. No hashing."""
    models = (manifest(root) or {}).get("models", {})
    own = models.get(f"{dataset}/{model}")
    if own is not None and own.get("seed") in (None, seed):
        return model
    other = seed_name(model, seed)
    return other if models.get(f"{dataset}/{other}", {}).get("seed", -1) == seed else None


# ---------------------------------------------------------------- verify

def _hash(p: Path, st: os.stat_result) -> str:
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    sha = _HASHES.get(key)
    if sha is None:
        sha = sha256_file(p)
        if time.time() - st.st_mtime > _RACY_S:
            _HASHES[key] = sha
    return sha


def _is_lfs_pointer(p: Path) -> bool:
    with open(p, "rb") as f:
        return f.read(len(_LFS_MAGIC)) == _LFS_MAGIC


def _check(root: Path, rel: str, entry: Mapping[str, Any]) -> str:
    """The sha256 of ``root/rel`` when it matches ``entry``; else :class:`ShippedWeightsError`."""
    p = root / rel
    if not p.is_file():
        raise ShippedWeightsError(f"{_show(p)} is missing (MANIFEST.json lists it): {_restore_hint(root)}")
    st = p.stat()
    if st.st_size != entry["bytes"]:
        if _is_lfs_pointer(p):
            raise ShippedWeightsError(f"{_show(p)} is a git-lfs pointer, not the weights: run `git lfs pull`, "
                                      'or set WEIGHTS = "train" to train your own')
        raise ShippedWeightsError(f"{_show(p)} does not match MANIFEST.json: {st.st_size:,} bytes, expected "
                                  f"{entry['bytes']:,}; the file was truncated or altered: {_restore_hint(root)}")
    sha = _hash(p, st)
    if sha != entry["sha256"]:
        raise ShippedWeightsError(f"{_show(p)} does not match its sha256 in MANIFEST.json (got {sha[:12]}..., "
                                  f"expected {entry['sha256'][:12]}...): the file was altered or is a git-lfs "
                                  f"pointer; {_restore_hint(root)}")
    return sha


def _check_each(root: Path, m: Mapping[str, Any], rels: Iterable[str]) -> list[tuple[str, str | None, str | None]]:
    """``(file, sha256, None)`` for each file that matches, ``(file, None, why)`` for each that does not."""
    rows: list[tuple[str, str | None, str | None]] = []
    for rel in sorted(rels):
        try:
            rows.append((rel, _check(root, rel, m["files"][rel]), None))
        except ShippedWeightsError as e:
            rows.append((rel, None, str(e)))
    return rows


def _check_all(root: Path, m: Mapping[str, Any], rels: Iterable[str]) -> dict[str, str]:
    rows = _check_each(root, m, rels)
    errors = [why for _, _, why in rows if why is not None]
    if errors:
        more = f" (and {len(errors) - 1} more file(s) failed; `python -m gankd_utils weights verify` lists them)"
        raise ShippedWeightsError(errors[0] + (more if len(errors) > 1 else ""))
    return {rel: sha for rel, sha, _ in rows}


def _model_entry(m: Mapping[str, Any], key: str, root: Path) -> Mapping[str, Any]:
    if key not in m["models"]:
        listed = ", ".join(sorted(m["models"])) or "none"
        raise ShippedWeightsError(f"{key} is not shipped in {_show(root)} (MANIFEST.json lists: {listed}); "
                                  'set WEIGHTS = "train" to train it')
    return m["models"][key]


def verify(key: str | None = None, root: str | Path | None = None) -> dict[str, str]:
    """Check the sha256 of every file of one model (``"dataset/model"``), or of all; ``{file: sha256}``.

    Raises :class:`ShippedWeightsError` naming the first missing or altered file.
    """
    root = _root(root)
    m = _need_manifest(root)
    rels = m["files"] if key is None else _model_entry(m, key, root)["files"]
    return _check_all(root, m, rels)


def check_files(key: str | None = None, root: str | Path | None = None) -> tuple[list[tuple[str, str | None,
                                                                                         str | None]], str]:
    """Every file of one model (``"dataset/model"``), or of all, checked against MANIFEST.json without stopping at
    the first failure (``python -m gankd_utils weights verify``): ``([(file, sha256 or None, error or None)],
    the manifest as shown)``. Raises :class:`ShippedWeightsError` where there is no manifest or no such model."""
    root = _root(root)
    m = _need_manifest(root)
    return _check_each(root, m, m["files"] if key is None else _model_entry(m, key, root)["files"]), \
        _show(root / MANIFEST)


def quality_file(folder: str | Path, root: str | Path | None = None) -> Path | None:
    """``folder``'s scored snapshots (``QUALITY``), or None when it has none. In a shipped model's folder the
    file is first checked against MANIFEST.json (:class:`ShippedWeightsError` when altered or not listed)."""
    folder = Path(folder)
    f = folder / QUALITY
    if not f.is_file():
        return None
    r = _root(root)
    try:
        key = folder.resolve().relative_to(r.resolve()).as_posix()
    except ValueError:
        return f  # a run folder: the project's own file
    m = _need_manifest(r)
    if f"{key}/{QUALITY}" not in m["files"]:
        raise ShippedWeightsError(f"{_show(f)} is not listed in MANIFEST.json: it did not come with the shipped "
                                  f"weights; delete it, or {_restore_hint(r)}")
    _check_all(r, m, [f"{key}/{QUALITY}"])
    return f


def path(dataset: str, model: str, part: str = "G", root: str | Path | None = None) -> Path:
    """The verified checkpoint stem ``root/dataset/model/part`` (for :func:`checkpoint.load_model`)."""
    root = _root(root)
    m = _need_manifest(root)
    key = f"{dataset}/{model}"
    entry = _model_entry(m, key, root)
    mine = [f"{key}/{part}.safetensors", f"{key}/{part}.json"]
    if not all(r in entry["files"] for r in mine):
        parts = sorted({PurePosixPath(r).stem for r in entry["files"] if r.endswith(".safetensors")})
        raise ShippedWeightsError(f"{key} is shipped without {part} (parts shipped: {', '.join(parts) or 'none'}); "
                                  f'set WEIGHTS = "train" to train your own')
    _check_all(root, m, mine)
    return root / dataset / model / part


def load(dataset: str, model: str, part: str = "G", device: str = "cpu",
         root: str | Path | None = None) -> nn.Module:
    """The shipped ``part`` of ``dataset/model``, sha256-checked, rebuilt from its sidecar; in eval mode."""
    return checkpoint.load_model(path(dataset, model, part, root), device)


def restore(key: str, run_dir: str | Path, parts: Sequence[str] = ("G",), root: str | Path | None = None) -> Path:
    """Copy the shipped checkpoint(s) of ``key`` ("dataset/model") into ``run_dir``, after checking them.

    The run folder then holds a finished run, so ``runs.train_or_load`` loads it instead of
    training: how a later stage of the full walk, on a fresh machine, continues from what an
    earlier stage committed. The training curves come back too, where they were shipped (a
    chapter's loss plots then show the model), and so do its scored snapshots (its convergence check).
    Files already there with the same bytes are left alone. ``G.json``, which says the run finished, is
    written last (and one of other bytes is removed first): a copy cut off part way leaves no folder that
    counts as finished without all of its files.
    """
    dataset, model = _split_key(key)
    run_dir = Path(run_dir)
    r = _root(root)
    m = _need_manifest(r)
    entry = _model_entry(m, key, r)
    copies: list[tuple[Path, Path]] = []  # (source, destination), every one checked before anything is written
    for part in parts:
        stem = path(dataset, model, part, root)
        copies += [(stem.with_name(stem.name + suffix), run_dir / (stem.name + suffix))
                   for suffix in (".safetensors", ".json")]
    for name in CURVE_FILES:  # its training curves (loss plots) and scored snapshots (convergence)
        rel = f"{key}/{name}"
        if rel in entry["files"]:
            _check_all(r, m, [rel])
            copies.append((r / rel, run_dir / name))
    marker = run_dir / "G.json"
    copies.sort(key=lambda c: c[1] == marker)  # the finished mark last
    new_mark = next((src for src, dst in copies if dst == marker), None)
    if new_mark is not None and marker.is_file() and marker.read_bytes() != new_mark.read_bytes():
        marker.unlink()  # another model's mark: the folder no longer counts as finished until every file is in
    for src, dst in copies:
        _write_if_changed(dst, src.read_bytes())
    return run_dir


def parts_of(dataset: str, model: str, root: str | Path | None = None) -> list[str]:
    """The checkpoint names shipped for ``dataset/model`` (``["D", "G"]``, a classifier's cache name); no hashing."""
    m = _need_manifest(_root(root))
    entry = _model_entry(m, f"{dataset}/{model}", _root(root))
    return sorted(PurePosixPath(r).stem for r in entry["files"] if r.endswith(".safetensors"))


def resolve(choice: str, dataset: str, model: str, root: str | Path | None = None) -> str:
    """The notebooks' ``WEIGHTS`` parameter: ``"shipped"`` or ``"train"``.

    ``"auto"``: shipped weights when the manifest lists the model, else train;
    ``"shipped"``: the shipped weights or a :class:`ShippedWeightsError`;
    ``"train"``: train (or load the user's own finished run), never read the shipped folder.
    """
    c = choice.strip().lower() if isinstance(choice, str) else choice
    if c not in CHOICES:
        raise ValueError(f"WEIGHTS must be one of {', '.join(repr(x) for x in CHOICES)}, got {choice!r}")
    if c == "train":
        return "train"
    if has(dataset, model, root):
        return "shipped"
    if c == "auto":
        return "train"
    r = _root(root)
    m = _need_manifest(r)
    listed = ", ".join(sorted(m["models"])) or "none"
    raise ShippedWeightsError(f"WEIGHTS = \"shipped\" but {dataset}/{model} is not shipped in {_show(r)} "
                              f'(MANIFEST.json lists: {listed}); set WEIGHTS = "train" (or "auto") to train it')


def trained_on(training: Mapping[str, Any], default: str = "") -> str:
    """Where a run was trained, from its training record (:meth:`runstate.RunState.training_record`): the
    device, or each device with its steps where several processes on different machines trained it
    (``"cpu (...) steps 0-4000; cuda:0 (...) steps 4000-11700"``); ``default`` where none is recorded."""
    spans: list[list[Any]] = []  # [device, first step, last step], consecutive segments of one device merged
    for seg in training.get("segments") or []:
        dev, (a, b) = seg.get("device") or "unrecorded", seg.get("steps", (0, 0))
        if spans and spans[-1][0] == dev and spans[-1][2] == a:
            spans[-1][2] = b
        else:
            spans.append([dev, a, b])
    if not spans or all(dev == "unrecorded" for dev, *_ in spans):
        return default
    if len(spans) == 1:
        return spans[0][0]
    return "; ".join(f"{dev} steps {a}-{b}" for dev, a, b in spans)


def summary(root: str | Path | None = None, required: bool = False) -> list[dict[str, Any]]:
    """One row per shipped model for a notebook table: key, params, MB and sha256[:12] (of G, or of a classifier's
    one file), steps, the step of the generator shipped where the run kept an earlier one than its last
    (``kept_step``, else None: ``runs.keep_generator``), hours of training (where recorded), device. No rows
    where nothing is shipped, or :class:`ShippedWeightsError` with ``required``."""
    m = _need_manifest(_root(root)) if required else manifest(root)
    if m is None:
        return []
    rows = []
    for key in sorted(m["models"]):
        e = m["models"][key]
        main = f"{key}/G.safetensors" if f"{key}/G.safetensors" in e["files"] else next(
            (r for r in e["files"] if r.endswith(".safetensors")), None)  # a generator's G, a classifier's one file
        g = m["files"].get(main) if main else None
        rows.append({"key": key, "params": e.get("params"),
                     "MB": round(g["bytes"] / 1e6, 3) if g else None,
                     "sha256": g["sha256"][:12] if g else None, "steps": e.get("steps"),
                     "kept_step": e.get("kept_step"),
                     "hours": _hours(e.get("training")), "device": e.get("device") or m.get("device") or None})
    return rows


def _hours(training: Any) -> float | None:
    """A run's recorded training time in hours (None: not recorded, or not in full)."""
    sec = training.get("seconds") if isinstance(training, dict) else None
    return round(sec / 3600, 2) if isinstance(sec, (int, float)) else None


# ---------------------------------------------------------------- ship

def _looks_like_run(folder: Path) -> bool:
    """A folder a training writes to: it holds a checkpoint ``G.json`` or a resume state (``state/G.json``, or
    one of a save under way or cut off)."""
    return (folder / "G.json").is_file() or any((folder / d / "G.json").is_file()
                                                for d in ("state", "state.new", "state.old"))


def _refuse_overlap(root: Path, runs: Mapping[str, Path]) -> None:
    r = root.resolve()
    for key, run in runs.items():
        d = run.resolve()
        if r == d or d in r.parents:
            raise ValueError(f"refusing to ship into {root}: it lies inside the run folder of {key} ({run}); "
                             "shipped weights go to results/weights (GANKD_WEIGHTS), apart from any run")
        if r in d.parents:
            raise ValueError(f"refusing to ship {key} from {run}: that folder lies inside the weights folder "
                             f"{root}; ship from the run folder the training wrote")
    for parent in (r, *r.parents):
        if _looks_like_run(parent):
            raise ValueError(f"refusing to ship into {root}: {parent} is a run folder (it holds a checkpoint); "
                             "shipped weights go to results/weights (GANKD_WEIGHTS), apart from any run")


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def _write_if_changed(p: Path, data: bytes) -> None:
    if p.is_file() and p.stat().st_size == len(data) and p.read_bytes() == data:
        return
    atomic_write_bytes(p, data)


def _trained_files(files: Mapping[str, Any]) -> dict[str, Any]:
    """``files`` without the scored snapshots (``QUALITY``): what the training itself wrote."""
    return {rel: v for rel, v in files.items() if not rel.endswith("/" + QUALITY)}


def ship(run_dirs: Mapping[str, str | Path], root: str | Path | None = None, parts: Sequence[str] = ("G",),
         profile: str = "full", device: str = "", note: str = "", history: bool = True) -> Path:
    """Copy the final checkpoints of finished runs into the shipped layout; returns the weights folder.

    ``run_dirs`` maps ``"dataset/model"`` to a run folder holding ``PART.safetensors`` + ``PART.json``
    (a sidecar saying ``"finished": true``) for every name in ``parts``, and its ``history.json`` (the
    training curves) and ``quality.json`` (its scored snapshots) when the run kept them and ``history`` is
    True. Models already shipped in ``root`` and not named here are kept; a model named here replaces its earlier files.
    Every file is written atomically; ``MANIFEST.json`` last. Shipping the same files again
    changes nothing but the manifest's ``created`` time: a model whose files are byte for byte
    those already shipped keeps its entry, so its ``device`` still names the machine that trained
    it, not the one that ran the stage again (``device`` and ``note`` describe this call's new files).
    """
    root = _root(root)
    parts = tuple(parts)
    names_ok = all(isinstance(p, str) and _NAME.match(p) for p in parts)
    if not parts or len(set(parts)) != len(parts) or not names_ok:
        raise ValueError(f"parts must name distinct checkpoints (a generator's 'G', its 'D'; an evaluator "
                         f"classifier's cache name), got {parts!r}")
    if not run_dirs:
        raise ValueError("nothing to ship: run_dirs is empty")
    runs = {key: Path(d).expanduser() for key, d in run_dirs.items()}
    for key in runs:
        _split_key(key)
    _refuse_overlap(root, runs)

    # 1. check every run before writing anything
    plan: dict[str, dict[str, Any]] = {}
    for key, run in sorted(runs.items()):
        dataset, model = _split_key(key)
        # each model says where it was trained: the stages of one walk may run on different machines
        entry: dict[str, Any] = {"dataset": dataset, "model": model, "files": [], "note": note, "device": device}
        sources: dict[str, Path] = {}
        for part in parts:
            try:
                side = checkpoint.read_sidecar(run / part)
            except checkpoint.CheckpointError as e:
                raise checkpoint.CheckpointError(f"cannot ship {key}: {e}") from e
            if side.get("finished") is not True:
                raise ValueError(f"{run / part}.json is not a finished run (step {side.get('step')}, finished "
                                 f"{side.get('finished')!r}): finish the training (run the same command again "
                                 f"until it prints 'finished') before shipping {key}")
            net = checkpoint.load_model(run / part)  # readable, and rebuilds from its spec
            if part == ("G" if "G" in parts else parts[0]):  # the model's own numbers: G's for a generator
                cfg = next((side[k] for k in ("config", "settings") if isinstance(side.get(k), dict)), {})
                entry.update(seed=cfg.get("seed"), steps=side.get("step"), params=count_params(net))
                if isinstance(side.get(checkpoint.KEPT), dict):  # G is a generator the run kept before its last step
                    entry.update(kept_step=side[checkpoint.KEPT].get("step"))
                if isinstance(side.get("training"), dict):  # a run of several machines names each
                    entry.update(training=side["training"], device=trained_on(side["training"], device))
            for ext in (".safetensors", ".json"):
                sources[f"{key}/{part}{ext}"] = run / f"{part}{ext}"
        for name in CURVE_FILES if history else ():  # the curves of the training that made it
            if (run / name).is_file():
                sources[f"{key}/{name}"] = run / name
        entry["files"] = sorted(sources)
        plan[key] = {"entry": entry, "sources": sources}

    old = manifest(root)
    if old is not None and old.get("profile") != profile:
        raise ValueError(f"{_show(root / MANIFEST)} holds {old.get('profile')!r}-profile weights; shipping "
                         f"{profile!r}-profile ones beside them would mix profiles: ship to another folder "
                         "(root=..., GANKD_WEIGHTS) or remove the old ones first")
    files: dict[str, dict[str, Any]] = dict(old["files"]) if old else {}
    models: dict[str, Any] = dict(old["models"]) if old else {}

    # 2. copy (bytes read once: the sha256 is that of what is written)
    stale: set[str] = set()
    changed = False
    for key, item in plan.items():
        before = {rel: files.get(rel) for rel in models[key]["files"]} if key in models else None
        if key in models:
            stale |= set(models[key]["files"]) - set(item["entry"]["files"])
        for rel, src in item["sources"].items():
            data = src.read_bytes()
            _write_if_changed(root / rel, data)
            files[rel] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        now = {rel: files[rel] for rel in item["entry"]["files"]}
        if before != now:  # new, or other bytes: this call's entry
            same_model = before is not None and _trained_files(before) == _trained_files(now)
            # only its scored snapshots are new (a later chapter run scored them): it was still trained where
            # its entry says
            models[key] = {**models[key], "files": item["entry"]["files"]} if same_model else item["entry"]
            changed = True
    for rel in stale:
        files.pop(rel, None)

    # 3. the sums, then the manifest (the commit point)
    sums = "".join(f"{files[rel]['sha256']}  {rel}\n" for rel in sorted(files))
    _write_if_changed(root / SUMS, sums.encode("utf-8"))
    m = {"format": FORMAT, "profile": profile, "device": device if changed or old is None else old.get("device", ""),
         "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
         "files": {rel: files[rel] for rel in sorted(files)}, "models": {k: models[k] for k in sorted(models)}}
    atomic_write_text(root / MANIFEST, _dump(m))
    for rel in sorted(stale):  # files a re-shipped model no longer has (e.g. a D shipped before)
        (root / rel).unlink(missing_ok=True)
    return root


def merge(others: Sequence[Mapping[str, Any]], root: str | Path | None = None,
          sources: Sequence[str] | None = None) -> Path | None:
    """Fold the manifests ``others`` (e.g. from archives of several stages) into ``root``'s, oldest first.

    A model listed in a newer manifest replaces the older entry; the files must already be in
    place (they are checked now). Returns the manifest's path, or None when there was nothing.
    Each manifest is checked as :func:`manifest` checks the one on disk before anything is written
    (:class:`ManifestError` naming it: by ``sources``, e.g. the archives they came from, where given).
    """
    root = _root(root)
    others = list(others)
    if sources is not None and len(sources) != len(others):
        raise ValueError(f"merge: {len(sources)} sources named for {len(others)} manifests")
    wheres = ([f"the {MANIFEST} of {name}" for name in sources] if sources is not None else
              [f"the manifest {i + 1} of {len(others)} given to merge" for i in range(len(others))])
    checked = [check_manifest(dict(m) if isinstance(m, Mapping) else m, where) for m, where in zip(others, wheres) if m]
    current = manifest(root)
    ms = sorted(checked + ([current] if current else []), key=lambda m: str(m.get("created", "")))
    if not ms:
        return None
    profiles = {m.get("profile") for m in ms}
    if len(profiles) > 1:
        raise ManifestError(f"cannot merge weights of several profiles ({sorted(map(str, profiles))}) into "
                            f"{_show(root)}")
    files: dict[str, Any] = {}
    models: dict[str, Any] = {}
    for m in ms:
        for key, entry in m.get("models", {}).items():
            for rel in models.get(key, {}).get("files", []):
                files.pop(rel, None)
            models[key] = entry
            files.update({rel: m["files"][rel] for rel in entry["files"]})
    _check_all(root, {"files": files}, sorted(files))
    sums = "".join(f"{files[rel]['sha256']}  {rel}\n" for rel in sorted(files))
    _write_if_changed(root / SUMS, sums.encode("utf-8"))
    newest = ms[-1]
    m = {"format": FORMAT, "profile": newest.get("profile"), "device": newest.get("device", ""),
         "created": newest.get("created", ""), "files": {rel: files[rel] for rel in sorted(files)},
         "models": {k: models[k] for k in sorted(models)}}
    return atomic_write_text(root / MANIFEST, _dump(m))
