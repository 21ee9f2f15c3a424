"""The full-profile walk in stages that fit short GPU windows (``python -m gankd_utils full-run``).

A stage trains what one part of the walk needs, runs that chapter's notebook on
the finished models (which then only load them), ships the final generator
weights under ``results/weights/`` (:mod:`gankd_utils.weights`), with the evaluator
classifier of its dataset (the ``mnist`` and ``cifar10-students`` stages), and packs what it
made into archives of at most 16 MiB, to be carried off a remote machine:

| stage              | trains                                                | notebook |
|--------------------|-------------------------------------------------------|----------|
| ``mnist``          | the 10 MNIST models (students with every seed; resumable) | 03     |
| ``cifar10-teacher``| chapter 04's teacher (resumable over several commands) | -        |
| ``cifar10-students``| the teacher set export, the four CIFAR-10 students (side by side on a GPU) | 04 |
| ``tinygan``        | the TinyGAN student (resumable)                        | 05       |
| ``compare``        | nothing: every shipped model, one pipeline            | 06       |
| ``compress``       | chapter 07's KD fine-tunes of the pruned students      | 07       |

``compare`` and ``compress`` leave out a model no earlier stage has shipped (their notebooks say which), so
they can run before the walk is complete and again when it is. ``compress --no-notebook`` runs chapter 07's
fine-tunes alone (:func:`compress_finetunes`), without papermill: on a GPU lent for minutes they train there,
and notebook 07 on another machine (``--unpack``, then the stage again) loads them and scores every step.

``--only NAME[,NAME]`` trains and ships only those models of a stage (a KD student's teacher is
trained or loaded too, but not shipped), without the notebook: a model at a time on a small
machine, e.g. the MNIST c=512 teacher on a laptop's CPU (its manifest entry names that machine).
With ``--student-seeds 1`` such a command trains a student with its first seed only, and the
stage's full command trains the other seeds beside the notebook. Every finished seed ships (the
first as ``dataset/model``, the others as ``dataset/model.seedN``, :func:`weights.seed_name`).

A stage's notebook scores its runs' snapshots (quality over training) and saves each curve in its run
folder; the stage then ships those curves beside the weights (``weights.QUALITY``), so a later run of the
chapter from the shipped weights still says which models had converged. The ``cifar10-teacher`` stage scores
the teacher's snapshots itself, as chapter 04 does, since chapter 04 may run on another machine, and ships the
best of the teacher's generators on chapter 04's classifier-FID (:func:`evaluation.keep_best`).

Every stage is resumable: ``--budget-s`` pauses a training at a checkpoint when its
time is up (the command says "paused"; run it again to go on), and a stage whose
models are finished loads them. Stages read what earlier stages shipped: on a fresh
machine the shipped weights are copied back into their run folders
(:func:`weights.restore`), so a walk one machine began, another continues.

Archives (``--pack DIR``): ``<stage>.results.tar.gz`` (tables, figures, metrics.json,
the executed notebook, REPORT.md, the shipped weights of the stage) and, while a
training is paused, ``<stage>.resume.tar.gz`` (its run folders with resume state, less a finished result a
retrain set aside in ``previous/``: never committed, only carried to the next machine); ``compress.finetunes.tar.gz``: chapter 07's
fine-tuned students (:data:`study.FINETUNED`; carried, never committed); a larger archive is split into
``.partNN`` files of at most 16 MiB. ``--unpack DIR`` puts them back in place.
"""
from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import config, data, evaluation, metrics, nbrun, paths, recipes, repro, runs, study, train, weights, zoo

STAGES = ("mnist", "cifar10-teacher", "cifar10-students", "tinygan", "compare", "compress")
PART_BYTES = 16 * 2 ** 20  # the most one carried file may hold
NOTEBOOK = {"mnist": "03", "cifar10-students": "04", "tinygan": "05", "compare": "06", "compress": "07"}
RESULTS = {"mnist": ["03_mnist"], "cifar10-teacher": [], "cifar10-students": ["04_cifar10"],
           "tinygan": ["05_tinygan"], "compare": ["06_compare"], "compress": ["07_compress"]}
SHIPS = {"mnist": ("mnist/",), "cifar10-teacher": ("cifar10/cgan_teacher",),
         "cifar10-students": ("cifar10/cgan_student", "cifar10/classifier"), "tinygan": ("cifar10/tinygan_student",),
         "compare": (), "compress": ()}  # the weights a stage ships (path prefixes under results/weights)
TRAINS = ("mnist", "cifar10-students", "tinygan")  # stages whose notebook reads the run folders, not the shipped copies
CLASSIFIER_STAGE = {"mnist": "mnist", "cifar10-students": "cifar10"}  # the stage that ships each evaluator classifier
CURVE_TEACHER = {"cifar10-students": ("cgan_teacher",)}  # trained by an earlier stage, scored by this one's notebook


def _shipped_parts(entry: zoo.Entry) -> tuple[str, ...]:
    """G for every model; D too for KD students with a critic (chapter 07's fine-tunes continue it)."""
    return ("G", "D") if entry.role == "kd" and entry.kd not in recipes.NO_CRITIC else ("G",)


def restore_shipped(dataset: str, settings: config.Settings, names: Sequence[str] | None = None) -> list[str]:
    """Copy the shipped runs of ``dataset`` (those of ``names``; None: all), every seed the profile trains
    (:func:`weights.name_for_seed`), into their run folders, where none is finished; returns their keys.
    Only their files are read: a machine may hold only those."""
    done = []
    for name, e in zoo.zoo(dataset).items():
        if names is not None and name not in names:
            continue
        for seed in settings.seeds(e.role):
            shipped = weights.name_for_seed(dataset, name, seed)
            folder = runs.run_dir(e, settings.for_seed(seed))
            if shipped is None or runs.finished_sidecar(folder) is not None:
                continue
            key = f"{dataset}/{shipped}"
            weights.restore(key, folder, [p for p in _shipped_parts(e) if _has_part(key, p)])
            done.append(key)
    return done


def restore_classifier(settings: config.Settings) -> bool:
    """Copy the shipped evaluator classifier of ``settings`` into the classifier cache, where it is missing.

    A stage's notebook reads the run folders (``WEIGHTS = "train"``); on a fresh machine it then
    scores with the very classifier the walk shipped instead of training another. True if copied.
    """
    ds, ev = settings.dataset, settings.eval
    if not weights.has(ds, "classifier"):
        return False
    stem, _ = metrics.classifier_path(ds, ev.cls_epochs, ev.cls_n_train, settings.seed, ev.cls_width)
    if stem.name not in weights.parts_of(ds, "classifier") or stem.with_suffix(".safetensors").exists():
        return False
    weights.restore(f"{ds}/classifier", stem.parent, parts=(stem.name,))
    return True


def _has_part(key: str, part: str) -> bool:
    m = weights.manifest() or {}
    return f"{key}/{part}.safetensors" in m.get("models", {}).get(key, {}).get("files", [])


def _ship(dataset: str, names: Sequence[str], settings: config.Settings, device: str) -> list[str]:
    """Ship every finished run of ``names``, each seed the profile trains; returns the keys shipped.

    The settings' own seed ships as ``dataset/model`` with its critic (KD students) and curves; a
    student's other seeds as ``dataset/model.seedN``, the generator alone (what the seed's row of the
    chapter's table needs), so that a fresh machine scores every seed without training it again.
    """
    entries, shipped, where = zoo.zoo(dataset), [], repro.describe_device(device)
    for n in names:
        e = entries[n]
        for seed in settings.seeds(e.role):
            folder = runs.run_dir(e, settings.for_seed(seed))
            if runs.finished_sidecar(folder) is None:
                continue  # paused or not started: ships when it finishes
            own = seed == settings.seed
            key = f"{dataset}/{n if own else weights.seed_name(n, seed)}"
            weights.ship({key: folder}, parts=_shipped_parts(e) if own else ("G",), profile=settings.profile,
                         device=where, history=own)
            shipped.append(key)
    return shipped


def ship_classifier(settings: config.Settings, device) -> str:
    """Ship the evaluator classifier of ``settings`` (trained now if not cached); returns its part name.

    Every later chapter, and the smaller profiles, then score with this very classifier.
    """
    ds = settings.dataset
    if weights.has(ds, "classifier"):  # already shipped (a rerun of the stage, or a later machine)
        return weights.parts_of(ds, "classifier")[0]
    clf = evaluation.evaluator_classifier(settings, device, "train")  # the cached one, or trained now
    ev = settings.eval
    stem, _ = metrics.classifier_path(ds, ev.cls_epochs, ev.cls_n_train, settings.seed, ev.cls_width)
    weights.ship({f"{ds}/classifier": stem.parent}, parts=(stem.name,), profile=settings.profile,
                 device=repro.describe_device(device),
                 note=f"evaluator classifier, test accuracy {clf.test_accuracy:.4f}")
    return stem.name


def _notebook(stage: str, profile: str, seed: int, speed: dict[str, Any] | None = None) -> Path:
    try:
        import papermill  # noqa: F401
    except ImportError as e:
        raise RuntimeError(f"stage {stage} executes notebook {NOTEBOOK[stage]}, which needs papermill, nbclient and "
                           "ipykernel: pip install papermill nbclient ipykernel (or carry their wheels and pip "
                           "install --no-index --find-links WHEELS papermill nbclient ipykernel)") from e
    nb = nbrun.notebooks([NOTEBOOK[stage]])[0]
    params: dict[str, Any] = {"PROFILE": profile, "SEED": seed}
    if stage in TRAINS:  # the run folders it just trained: their histories, sample sheets and snapshots
        params["WEIGHTS"] = "train"
    else:  # compare and compress use what earlier stages shipped: a model not trained yet is left out, not trained
        params["TRAIN_MISSING"] = False  # here (a CIFAR-10 student in full would take hours on a CPU)
    if stage == "compress" and speed:  # chapter 07's fine-tunes compute as the command asked (--compile, ...)
        params["SPEED"] = dict(speed)
    return nbrun.run_notebook(nb, paths.chapter_dir("executed", profile) / nb.name, params)


COMPRESS_STUDENTS = ("mnist/cdcgan_c32_kd", "cifar10/cgan_student_s_kd", "cifar10/tinygan_student")
"""The students chapter 07 compresses (notebook 07's ``STUDENTS``)."""


def compress_finetunes(profile: str = "full", seed: int = 0, device="auto", speed: dict[str, Any] | None = None,
                       say=print) -> list[str]:
    """Chapter 07's KD fine-tunes of every shipped student of :data:`COMPRESS_STUDENTS`, as notebook 07 runs them
    (its default parameters), without scoring or timing them (:func:`study.finetunes`): the ``compress`` stage
    with ``--no-notebook``, for a GPU lent for minutes, where papermill may be missing. Notebook 07 (the stage
    run again, after ``--unpack`` on another machine) then loads them. Returns the students fine-tuned."""
    device = repro.get_device(device)
    found = runs.collect(profile, seed, device, train_missing=False, say=say, weights_="auto",
                         only=list(COMPRESS_STUDENTS), speed=speed or {})
    sizes = config.settings("mnist", profile, seed).compress  # notebook 07's: one set of sizes for every dataset
    done = []
    for key in COMPRESS_STUDENTS:
        ds, name = key.split("/")
        if name not in found[ds]["models"]:
            say(f"stage compress: {key} left out (not trained yet)")
            continue
        study.finetunes(name, found[ds]["models"][name], found[ds], paths.chapter_dir("07_compress", profile), device,
                        sizes.amounts, sizes.finetune_steps, min_channels=sizes.min_channels)
        done.append(key)
    return done


def stage_models(stage: str) -> list[str]:
    """The models ``stage`` trains and ships (its ``--only`` choices)."""
    if stage == "mnist":
        return list(zoo.mnist_zoo())
    entries = zoo.cifar10_zoo()
    return {"cifar10-teacher": ["cgan_teacher"], "tinygan": ["tinygan_student"],
            "cifar10-students": [n for n, e in entries.items() if e.chapter == "04_cifar10" and e.role != "teacher"]
            }.get(stage, [])


def _pick(entries: dict[str, zoo.Entry], only: Sequence[str]) -> dict[str, zoo.Entry]:
    """``only`` and the teachers its online-KD students learn from (teachers first)."""
    want = set(only) | {entries[n].teacher for n in only if entries[n].kd in recipes.ONLINE_KD}
    return {n: e for n, e in entries.items() if n in want}


def run_stage(stage: str, profile: str = "full", seed: int = 0, budget_s: float | None = None, device="auto",
              notebook: bool = True, say=print, only: Sequence[str] | None = None,
              student_seeds: int | None = None, parallel: int | None = None,
              speed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one stage; returns ``{"stage", "finished", "paused", "seconds", "trained"}``.

    ``budget_s``: seconds after which a training pauses at a checkpoint (None: no limit).
    ``notebook``: also execute the stage's notebook when its models are finished.
    ``only``: train and ship only these models of the stage (:func:`stage_models`); no notebook, no classifier.
    ``student_seeds``: with ``only``, train students with this many seeds instead of the profile's (1: the
    shipped seed alone); None: the profile's.
    ``parallel``: how many runs of the ``mnist`` and ``cifar10-students`` stages train at once, each in a
    process of its own with its share of the cores (:func:`runs.train_all`); None: 4 on CUDA, else 1.
    ``speed``: :data:`config.SPEED` settings over every training of the stage (``Settings.speed``; e.g.
    ``{"fast": "on", "channels_last": True}`` on a CPU with bf16 instructions); None: the profile's.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: choose one of {', '.join(STAGES)}")
    if only is not None:
        only = list(only)
        wrong = [n for n in only if n not in stage_models(stage)]
        if not only or wrong:
            raise ValueError(f"--only {','.join(wrong) or '(nothing)'}: stage {stage} trains "
                             f"{', '.join(stage_models(stage)) or 'no model'}; name some of those")
    dataset = "mnist" if stage == "mnist" else "cifar10"
    seeds = config.settings(dataset, profile, seed).student_seeds
    if student_seeds is not None and (only is None or not 1 <= student_seeds <= seeds):
        raise ValueError(f"student_seeds={student_seeds}: give it with --only, between 1 and the {profile} "
                         f"profile's {seeds} (the stage's full command trains every seed for its notebook)")
    over = {"speed": speed or {}, **({} if student_seeds is None else {"student_seeds": student_seeds})}
    if parallel is not None and parallel < 1:
        raise ValueError(f"parallel={parallel}: give how many runs train at once, 1 or more")
    t0 = time.monotonic()
    deadline = t0 + budget_s if budget_s is not None else None  # 0: no time at all, as train --budget-s 0
    device = repro.get_device(device)
    out: dict[str, Any] = {"stage": stage}
    got: dict[str, runs.Trained] = {}  # what the stage trained or loaded, by seed key
    if stage == "mnist":
        s = config.settings("mnist", profile, seed, **over)
        restore_shipped("mnist", s)
        restore_classifier(s)
        entries = zoo.mnist_zoo() if only is None else _pick(zoo.mnist_zoo(), only)
        got = runs.train_all(entries, s, data.load_mnist(train=True), device=device, deadline=deadline,
                             parallel=parallel)
        _ship("mnist", list(entries) if only is None else only, s, str(device))
    elif stage in ("cifar10-teacher", "cifar10-students", "tinygan"):
        s = config.settings("cifar10", profile, seed, **over)
        entries = zoo.cifar10_zoo()
        # what this stage trains beside the teacher (the teacher stage: the teacher alone)
        names = [] if stage == "cifar10-teacher" else [n for n in stage_models(stage) if only is None or n in only]
        restore_shipped("cifar10", s, ["cgan_teacher", *names])  # the teacher, and what this stage trains
        restore_classifier(s)
        cifar = data.load_cifar10(train=True)
        if stage == "cifar10-teacher":
            got = {"cgan_teacher": runs.train_or_load(entries["cgan_teacher"], s, cifar, device=device,
                                                      deadline=deadline)}
            if got["cgan_teacher"].finished and evaluation.kept_snapshots(got["cgan_teacher"]):
                # its snapshots, scored as chapter 04 scores them, and the best of its generators made the teacher
                # (chapter 04 does the same): the curve ships with it, should chapter 04 run on another machine
                # (a fresh one restores the weights, not the snapshots)
                ev = evaluation.evaluators(s, cifar, device, where="04_cifar10", say=lambda m: None)[0]
                got["cgan_teacher"] = evaluation.keep_best(got["cgan_teacher"], ev)
            _ship("cifar10", ["cgan_teacher"], s, str(device))  # ships only what has finished
        elif stage in ("cifar10-students", "tinygan"):
            teacher = entries["cgan_teacher"]
            if runs.finished_sidecar(runs.run_dir(teacher, s), zoo.train_config(teacher, s)) is None:
                raise FileNotFoundError("the CIFAR-10 teacher is not finished (nor shipped): run the cifar10-teacher "
                                        "stage until it says finished, then this one")
            # the teacher's exported set, when a KD student is among them (``--only`` scratch students need none)
            ts = (runs.cifar10_teacher_set(s, device, real=cifar) if any(entries[n].teacher for n in names)
                  else {"set": None, "folder": None})
            # the four students train side by side on a GPU (runs.train_all's processes)
            got = runs.train_all({n: entries[n] for n in names}, s, cifar, teacher_set=ts["set"],
                                 teacher_set_dir=ts["folder"], device=device, deadline=deadline, parallel=parallel)
            _ship("cifar10", names, s, str(device))
    elif stage == "compress" and not notebook:  # chapter 07's fine-tunes alone, for the notebook to load later
        out["finetuned"] = compress_finetunes(profile, seed, device, speed, say)
    # compare, compress: their notebooks read the shipped weights themselves (WEIGHTS = "auto"), and compress
    # only its students' and their teachers' files: a machine needs no others
    out["trained"] = [k for k, t in got.items() if not t.loaded and t.steps]
    out["paused"] = [k for k, t in got.items() if not t.finished]
    out["finished"] = not out["paused"]
    if not out["paused"] and stage in CLASSIFIER_STAGE and only is None:
        ship_classifier(config.settings(CLASSIFIER_STAGE[stage], profile, seed), device)
    if out["paused"]:
        say(f"stage {stage}: paused ({', '.join(out['paused'])}) after {time.monotonic() - t0:.0f} s; "
            "run the same command again to go on")
    elif only is not None:
        say(f"stage {stage}: {', '.join(only)} finished and shipped (no notebook: the stage's other models are "
            "not part of this command)")
    elif notebook and stage in NOTEBOOK:
        _notebook(stage, profile, seed, speed)
        if stage in TRAINS:  # the notebook scored the runs' snapshots: their curves ship with the weights
            _ship(dataset, [*CURVE_TEACHER.get(stage, ()), *stage_models(stage)],
                  config.settings(dataset, profile, seed), str(device))
    out["seconds"] = time.monotonic() - t0
    return out


# ------------------------------------------------------------------ archives

def _check_weights_root() -> None:
    if weights.weights_root().resolve() != (paths.results_root() / "weights").resolve():
        raise ValueError("archives keep the shipped weights under the results folder (results/weights): unset "
                         "GANKD_WEIGHTS to pack or unpack")


def _tree(root: Path, rel: Path, exclude_runs: bool = False) -> list[tuple[Path, str]]:
    """(file, its name in an archive) for the file ``root/rel`` or every file below that folder, named
    relative to ``root``; nothing where it does not exist. ``exclude_runs``: not what lies in a ``runs``
    folder (run folders: resume state, checkpoints)."""
    p = root / rel
    if not p.exists():
        return []
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    named = [(f, f.relative_to(root)) for f in files]
    return [(f, r.as_posix()) for f, r in named if not (exclude_runs and "runs" in r.parts)]


def _tarball(members: Sequence[tuple[Path, str]]) -> bytes:
    """A gzipped tar of ``members``, (file, name in the archive) pairs, in memory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f, name in members:
            tar.add(f, arcname=name, recursive=False)
    return buf.getvalue()


def _write_split(blob: bytes, stem: Path) -> list[Path]:
    """``stem`` itself when small enough, else ``stem.part00``, ``stem.part01``, ... of PART_BYTES each."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    for old in [stem, *stem.parent.glob(f"{stem.name}.part[0-9][0-9]")]:  # an earlier pack of the same stage
        old.unlink(missing_ok=True)
    if len(blob) <= PART_BYTES:
        stem.write_bytes(blob)
        return [stem]
    parts = []
    for i in range(0, len(blob), PART_BYTES):
        p = stem.with_name(f"{stem.name}.part{i // PART_BYTES:02d}")
        p.write_bytes(blob[i:i + PART_BYTES])
        parts.append(p)
    return parts


def pack(stage: str, out_dir: str | Path, paused: Sequence[str] = (), profile: str = "full",
         say=print) -> list[Path]:
    """Archives of what ``stage`` made in ``profile`` (see the module docstring); returns the files written.
    ``say``: where a note on an oversized resume archive goes.

    Names in the archives are relative to the results root, so a smoke or quick walk's chapters unpack into
    their profile's folder (:func:`paths.profile_root`), never over the full run's."""
    _check_weights_root()
    root = paths.results_root()
    mine = paths.profile_root(profile).relative_to(root)  # "." for full
    out_dir = Path(out_dir)
    members = [m for chapter in RESULTS[stage] for m in _tree(root, mine / chapter, exclude_runs=True)]
    if stage in NOTEBOOK:
        members += [m for nb in nbrun.notebooks([NOTEBOOK[stage]]) for m in _tree(root, mine / "executed" / nb.name)]
    members += _tree(root, mine / "REPORT.md")
    wroot = weights.weights_root()
    if SHIPS[stage] and wroot.is_dir():  # this stage's weights and the manifest of all
        for f, rel in _tree(wroot, Path(".")):
            if rel.startswith(SHIPS[stage]) or "/" not in rel:
                members.append((f, f"weights/{rel}"))
    files = _write_split(_tarball(members), out_dir / f"{stage}.results.tar.gz")
    runs_07 = root / mine / "07_compress" / "runs"
    tuned = sorted(runs_07.glob(f"*/finetune_*/{study.FINETUNED}.*")) if stage == "compress" else []
    if tuned:  # chapter 07's fine-tunes, for the notebook on another machine to load
        blob = _tarball([(f, f.relative_to(root).as_posix()) for f in tuned])
        files += _write_split(blob, out_dir / f"{stage}.finetunes.tar.gz")
    if paused:
        names = {runs.base_name(key) for key in paused}  # a student's seeds share one name: each folder once
        members = []
        for chapter in ("04_cifar10", "05_tinygan", "03_mnist"):
            runs_dir = root / chapter / "runs"
            for folder in sorted({f for n in names for f in runs_dir.glob(f"*/{n}")}):
                # not the finished result a retrain set aside (train.PREVIOUS): this machine keeps it, and the
                # run carried on elsewhere neither reads it nor needs it to finish
                members += [(f, rel) for f, rel in _tree(root, folder.relative_to(root))
                            if train.PREVIOUS not in f.relative_to(folder).parts[:1]]
        blob = _tarball(members)
        if len(blob) > 64 * 2 ** 20:
            say(f"note: the resume archive is {len(blob) / 2 ** 20:.0f} MiB; where a remote machine takes at most "
                "64 MiB in, finish this stage there (run it again) rather than carrying it to another one")
        files += _write_split(blob, out_dir / f"{stage}.resume.tar.gz")
    return files


def unpack(in_dir: str | Path) -> list[str]:
    """Extract every archive (joining ``.partNN`` files) of ``in_dir`` into the results folder.

    The weights' manifests of the archives are merged (:func:`weights.merge`), newest model
    entries winning, whatever order the archives come in.
    """
    _check_weights_root()
    in_dir = Path(in_dir)
    root = paths.results_root()
    wrel = weights.weights_root().resolve()
    stems = sorted({p.name.split(".part")[0] for p in in_dir.glob("*.tar.gz*")})
    manifests, sources, done = [], [], []  # sources: the archive each manifest came from, for its errors
    for stem in stems:
        whole = in_dir / stem
        blob = whole.read_bytes() if whole.exists() else b"".join(
            p.read_bytes() for p in sorted(in_dir.glob(f"{stem}.part[0-9][0-9]")))
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            members = []
            for m in tar.getmembers():
                target = (root / m.name).resolve()
                if not m.isfile() or not target.is_relative_to(root.resolve()):
                    raise ValueError(f"{stem}: refusing {m.name!r} (not a plain file inside the results folder)")
                if target.parent == wrel and target.name == weights.MANIFEST:
                    try:
                        manifests.append(json.loads(tar.extractfile(m).read()))
                    except (UnicodeDecodeError, json.JSONDecodeError) as e:
                        raise ValueError(f"{stem}: its {m.name} is not JSON ({e}); pack the stage again") from e
                    sources.append(stem)
                elif not (target.parent == wrel and target.name == weights.SUMS):
                    members.append(m)
            tar.extractall(root, members=members, filter="data")
        done.append(stem)
    weights.merge(manifests, sources=sources)
    return done
