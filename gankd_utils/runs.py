"""Run folders, train-or-load, and the teacher sets of black-box KD.

Every model of the walk (a :class:`zoo.Entry`) trains in its run folder,
``results/<chapter>/runs/<profile>-seed<seed>/<name>/``; :func:`train_or_load`
loads its finished generator when one of the same settings is there, else
trains (or resumes) it. Returns a :class:`Trained`, whatever happened.

:func:`cifar10_teacher_set` is chapter 04's teacher exported to shards, the
training set of chapter 04's KD students and of chapter 05; :func:`collect`
gathers every model of a profile for the comparison and compression chapters.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from . import checkpoint, config, data, paths, recipes, repro, shards, teachers, weights
from .config import Settings, TrainConfig
from .io import atomic_write, sha256_file
from .runstate import amp_dtype, autocast_in, history_upto, standing_model
from .train import fit, snapshot_path, snapshots
from .zoo import Entry, build, family_teacher, train_config, zoo


@dataclass
class Trained:
    """A generator and how it came to be: loaded from a finished run, or trained (or resumed) now."""

    G: nn.Module
    name: str
    run_dir: Path
    loaded: bool
    steps: int
    finished: bool
    config: TrainConfig | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """A table row: loaded or trained, steps, finished, seconds, run folder (relative to the results root
        where it lies in it, so that saved tables and metrics name no machine's folders)."""
        run_dir = Path(self.run_dir)
        try:
            run_dir = run_dir.resolve().relative_to(paths.results_root().resolve())
        except ValueError:
            pass
        return {"model": self.name, "loaded": self.loaded, "steps": self.steps, "finished": self.finished,
                "seconds": round(self.seconds, 1), "run_dir": run_dir.as_posix()}


def run_root(chapter: str, profile: str, seed: int = 0) -> Path:
    """``results/<chapter>/runs/<profile>-seed<seed>``: where notebooks and commands keep a chapter's runs."""
    return paths.results_dir(chapter, "runs", f"{profile}-seed{seed}")


def run_dir(entry: Entry, settings: Settings) -> Path:
    return run_root(entry.chapter, settings.profile, settings.seed) / entry.name


def _history(folder: Path, upto: int | None = None) -> dict[str, list[float]]:
    """The run's logged history; ``upto``: only its steps up to this one (a paused run's checkpoint:
    :func:`runstate.history_upto`)."""
    hist = folder / "history.json"
    h = json.loads(hist.read_text()) if hist.exists() else {}
    return h if upto is None else history_upto(h, upto)


def finished_sidecar(folder: str | Path, cfg: TrainConfig | None = None) -> dict[str, Any] | None:
    """The sidecar of ``folder``'s finished generator (with ``cfg``: only when trained with the same settings).

    Reads the JSON only, so asking whether a run is done costs no weights.
    """
    folder = Path(folder)
    if not (folder / "G.json").exists():
        return None
    side = checkpoint.read_sidecar(folder / "G")
    if not side.get("finished"):
        return None
    if cfg is not None and checkpoint.resume_key(side.get("config", {})) != checkpoint.resume_key(cfg):
        return None
    return side


def kept_record(folder: str | Path) -> dict[str, Any] | None:
    """What ``folder``'s ``G.json`` says of the generator ``G`` is, when a run hands on one it kept before its last
    step (:func:`keep_generator`; a run folder or a shipped model's folder): ``{"step", and why}``; else None."""
    if not (Path(folder) / "G.json").exists():
        return None
    kept = checkpoint.read_sidecar(Path(folder) / "G").get(checkpoint.KEPT)
    return kept if isinstance(kept, dict) and "step" in kept else None


def kept_step(folder: str | Path) -> int | None:
    """The step of the generator ``folder``'s ``G`` is, when not the run's last (:func:`kept_record`), else None."""
    kept = kept_record(folder)
    return None if kept is None else int(kept["step"])


def keep_generator(folder: str | Path, step: int, why: Mapping[str, Any] | None = None) -> Path:
    """Make the generator that ``folder``'s finished run kept at ``step`` its model ``G`` (a teacher's best:
    :func:`evaluation.keep_best`); ``step`` = the run's last step puts the last generator back.

    The last generator stays in the run, as the snapshot of the last step (``snapshots/G_<last step>``), so
    the whole run can still be scored. ``G.json`` keeps the run's settings, steps (the run's length) and
    training record, and says in ``kept`` which generator ``G`` is, with ``why``. The weights are copied every
    time, so a call cut off part way is mended by the next one. Returns the ``G`` stem.
    """
    folder = Path(folder)
    side = checkpoint.read_sidecar(folder / "G")
    if not side.get("finished"):
        raise ValueError(f"{folder} holds no finished run (step {side.get('step')}): a run hands on one of its "
                         "generators only once it has finished; train it to its end first")
    last, step = int(side["step"]), int(step)
    final = snapshot_path(folder, last)
    if checkpoint.KEPT not in side and not final.with_suffix(".safetensors").exists():
        # G is the last generator: keep a copy of it among the snapshots first (once: a later call may have been
        # cut off after G was replaced, before its sidecar said so)
        atomic_write(final.with_suffix(".safetensors"),
                     lambda tmp: shutil.copyfile(folder / "G.safetensors", tmp))
        checkpoint.write_sidecar(final, {"gankd": side["gankd"], "model": side["model"], "snapshot": True,
                                         "step": last})
    source = snapshot_path(folder, step).with_suffix(".safetensors")
    if not source.exists():
        have = [s for s, _ in snapshots(folder)]
        raise FileNotFoundError(f"{folder} kept no generator at step {step} (it has {have or 'none'}): name one "
                                "of those")
    if step == last:
        side.pop(checkpoint.KEPT, None)
    else:
        side[checkpoint.KEPT] = {"step": step, **dict(why or {})}
    atomic_write(folder / "G.safetensors", lambda tmp: shutil.copyfile(source, tmp))
    checkpoint.write_sidecar(folder / "G", side)
    return folder / "G"


def has_finished(entry: Entry, settings: Settings) -> bool:
    """True when ``entry``'s run folder in ``settings`` holds its finished generator (reads the sidecar only)."""
    return finished_sidecar(run_dir(entry, settings), train_config(entry, settings)) is not None


def load_finished(folder: str | Path, cfg: TrainConfig | None = None, device="cpu") -> Trained | None:
    """The finished generator of ``folder`` (with ``cfg``: only when trained with the same settings), else None."""
    folder = Path(folder)
    side = finished_sidecar(folder, cfg)
    if side is None:
        return None
    G = checkpoint.load_model(folder / "G", repro.get_device(device))
    return Trained(G, folder.name, folder, True, int(side.get("step", 0)), True, cfg, _history(folder))


def load_run(folder: str | Path, device="cpu") -> Trained:
    """The generator of any run folder, finished or paused (its last checkpoint, ``state/G``)."""
    folder = Path(folder)
    for stem, finished in ((folder / "G", None), (checkpoint.state_dir(folder) / "G", False)):
        if stem.with_suffix(".safetensors").exists():
            side = checkpoint.read_sidecar(stem)
            G = checkpoint.load_model(stem, repro.get_device(device))
            done = bool(side.get("finished")) if finished is None else False
            step = int(side.get("step") or 0)
            return Trained(G.eval(), folder.name, folder, True, step, done, None, _history(folder, step))
    raise FileNotFoundError(f"{folder} holds no generator checkpoint (G.safetensors or state/G.safetensors): "
                            "give a run folder that a notebook, `train` or `distill` wrote")


def weights_choice(entry: Entry, settings: Settings, choice: str = "auto") -> str:
    """``"shipped"`` or ``"train"`` for ``entry``: a notebook's ``WEIGHTS`` (auto | shipped | train).

    The full profile takes every shipped run of its own seed (a student's other seeds ship as
    ``model.seedN``, :func:`weights.seed_name`; a seed that is not shipped trains); the smaller
    profiles take the shipped teachers and train their students at the profile's own budget,
    from scratch and with KD alike, so that the comparison stays fair.
    """
    if choice == "train" or (settings.profile != "full" and entry.role != "teacher"):
        return "train"
    got = weights.resolve(choice, entry.dataset, entry.name)
    if got == "shipped" and settings.profile == "full" and _shipped_name(entry, settings) is None:
        return "train"  # a shipped model stands for the full run of its own seed only
    return got


def _shipped_name(entry: Entry, settings: Settings) -> str | None:
    """The shipped name of ``entry``'s run in ``settings``: its seed's in the full profile (None: that seed is
    not shipped), else the model's."""
    if settings.profile != "full":
        return entry.name
    return weights.name_for_seed(entry.dataset, entry.name, settings.seed)


def weights_note(entries: Mapping[str, Entry], settings: Settings, choice: str = "auto") -> str:
    """One line for a notebook: which of ``entries`` come from the shipped weights, and what that means."""
    shipped = [n for n, e in entries.items() if weights_choice(e, settings, choice) == "shipped"]
    if shipped:
        return (f"Shipped weights ({paths.shown(weights.weights_root())}): {', '.join(shipped)}; every other model "
                f"trains now in the {settings.profile} profile.")
    if settings.profile == "full":
        return "Every model trains now (full profile)."
    return (f"No shipped generators here: this {settings.profile} run trains its own teachers at the "
            f"{settings.profile} budget, so its pictures and numbers will look like noise, not results.")


def load_shipped(entry: Entry, settings: Settings, device="cpu") -> Trained:
    """``entry``'s shipped generator (sha256-checked), as a :class:`Trained` whose run folder is the weights'.

    In the full profile, the run of ``settings.seed`` (a student's other seeds ship apart); else the model's."""
    name = _shipped_name(entry, settings) or entry.name  # not shipped: weights.path says so
    stem = weights.path(entry.dataset, name)
    side = checkpoint.read_sidecar(stem)
    G = weights.load(entry.dataset, name, device=str(repro.get_device(device)))
    return Trained(G, entry.name, stem.parent, True, int(side.get("step") or 0), True, train_config(entry, settings))


def load_trained(entry: Entry, settings: Settings, device="cpu", weights_: str = "train") -> Trained:
    """The finished generator of ``entry`` in ``settings``: shipped (see :func:`weights_choice`) or from its run
    folder (a KD student's teacher, a model to score).

    Never trains: a model that has not finished gives an error that says how to train it.
    """
    if weights_choice(entry, settings, weights_) == "shipped":
        return load_shipped(entry, settings, device)
    folder = run_dir(entry, settings)
    done = load_finished(folder, train_config(entry, settings), device)
    if done is None:
        other = ", or learn from the shipped teacher (--weights auto)" if entry.role == "teacher" else ""
        raise ValueError(f"{entry.name} has not finished in {folder} ({settings.profile} profile, seed "
                         f"{settings.seed}): train it first ({_train_command(entry, settings)}){other}")
    done.name = entry.name
    return done


def _train_command(entry: Entry, settings: Settings) -> str:
    return (f"python -m gankd_utils train --dataset {entry.dataset} --model {entry.name} --profile {settings.profile} "
            f"--seed {settings.seed}")


def load_paused(entry: Entry, settings: Settings, device="cpu") -> Trained:
    """The generator of the last checkpoint of ``entry``'s run in ``settings`` that has not finished: a long run
    looked at while it trains (``score --paused``).

    The weight average where the recipe keeps one, with BatchNorm statistics of its own (what
    the run saves as its model: :func:`runstate.standing_model`, in the run's precision), else the live generator;
    ``steps`` is the step of that checkpoint, ``finished`` False. Only a run folder whose
    training settings agree with ``settings`` (:func:`checkpoint.resume_key`) is taken; a
    finished run is :func:`load_trained`'s.
    """
    cfg = train_config(entry, settings)
    folder = run_dir(entry, settings)
    state = checkpoint.state_dir(folder)
    if not (state / "progress.json").exists():
        raise ValueError(f"{entry.name} has no checkpoint in {folder} ({settings.profile} profile, seed "
                         f"{settings.seed}): start it first ({_train_command(entry, settings)})")
    progress = json.loads((state / "progress.json").read_text())
    if checkpoint.resume_key(progress.get("config", {})) != checkpoint.resume_key(cfg):
        raise ValueError(f"the checkpoint in {folder} was trained with other settings than {entry.name} of the "
                         f"{settings.profile} profile has now: the run continues (and can be scored) only with the "
                         "settings it began with")
    device = repro.get_device(device)
    if (state / "G_ema.safetensors").exists():
        # with BatchNorm statistics of its own, in the precision the run last trained in (the checkpoint says;
        # one from before it did: its fast setting, bookkeeping and not in the key above): the model it saves
        if "autocast" in progress:
            dtype = getattr(torch, progress["autocast"]) if progress["autocast"] else None
        else:
            dtype = amp_dtype(replace(cfg, fast=progress["config"].get("fast", cfg.fast)), device)
        G = standing_model(checkpoint.load_model(state / "G_ema", device), cfg, device, autocast_in(dtype, device))
    else:
        G = checkpoint.load_model(state / "G", device).eval()
    step = int(progress["step"])
    return Trained(G, entry.name, folder, True, step, False, cfg, _history(folder, step))


def train_or_load(entry: Entry, settings: Settings, real: data.ImageSet | None = None,
                  teachers_: Mapping[str, nn.Module] | None = None, teacher_set=None, device="auto",
                  retrain: bool = False, progress: bool = True, folder: str | Path | None = None,
                  deadline: float | None = None, weights_: str = "train") -> Trained:
    """Train ``entry`` in ``settings`` (or resume it), or load its finished generator of the same settings.

    What the recipe learns from: ``real`` (the real training set: the data of a GAN and of
    online KD, the real branch of black-box KD), ``teachers_[entry.teacher]`` (online KD)
    and ``teacher_set`` (black-box KD: an exported set with z). ``folder`` overrides the
    run folder (default :func:`run_dir`). ``deadline``: pause (saved, resumable) at this
    ``time.monotonic()`` time (see :func:`train.fit`). ``weights_``: ``"auto"`` / ``"shipped"``
    load the shipped generator instead (see :func:`weights_choice`); a user's own training
    always writes to its run folder, never over the shipped files.
    """
    if weights_choice(entry, settings, weights_) == "shipped":
        return load_shipped(entry, settings, device)
    cfg = train_config(entry, settings)
    folder = Path(folder) if folder is not None else run_dir(entry, settings)
    device = repro.get_device(device)
    if not retrain:
        done = load_finished(folder, cfg, device)
        if done is not None:
            done.name = entry.name
            return done
    G, D = build(entry, settings)
    t0 = time.perf_counter()
    teacher = None
    if entry.kd in recipes.ONLINE_KD:
        if not teachers_ or entry.teacher not in teachers_:
            raise ValueError(f"{entry.name} learns online from {entry.teacher}: train or load it first and pass it "
                             "in teachers_")
        teacher = teachers_[entry.teacher]
    if entry.kd == "blackbox":
        if teacher_set is None:
            raise ValueError(f"{entry.name} learns from {entry.teacher}'s exported set: pass teacher_set "
                             "(runs.cifar10_teacher_set, or shards.load_shards of an export)")
        res = fit(G, D, teacher_set, cfg, folder, device, real=real, resume=not retrain, progress=progress,
                  deadline=deadline)
    else:
        if real is None:
            raise ValueError(f"{entry.name} trains on real images: pass real")
        res = fit(G, D, real, cfg, folder, device, teacher=teacher, resume=not retrain, progress=progress,
                  deadline=deadline)
    return Trained(G.eval(), entry.name, folder, False, res["steps"], res["finished"], cfg, res["history"],
                   time.perf_counter() - t0)


def planned_steps(entry: Entry, settings: Settings, n_items: int) -> int:
    """The training steps ``settings`` plan for ``entry`` on a training set of ``n_items`` images."""
    cfg = train_config(entry, settings)
    per_epoch = min(cfg.n_train, n_items) if cfg.n_train else n_items  # a subset never exceeds its set
    total = cfg.epochs * (per_epoch // cfg.batch_size)
    return min(total, cfg.max_steps) if cfg.max_steps else total


def seed_key(name: str, seed: int, base_seed: int) -> str:
    """``name`` for the settings' own seed, ``name@seed`` for a student's extra seeds."""
    return name if seed == base_seed else f"{name}@{seed}"


def base_name(key: str) -> str:
    """The zoo name of a :func:`seed_key`."""
    return key.split("@", 1)[0]


def _left_as_is(entry: Entry, settings: Settings, device) -> Trained:
    """A run that the deadline leaves unfinished: its last checkpoint if it has one, else an untrained G."""
    folder, cfg = run_dir(entry, settings), train_config(entry, settings)
    if (checkpoint.state_dir(folder) / "G.safetensors").exists():
        paused = load_run(folder, device)
        paused.name, paused.config = entry.name, cfg
        return paused
    return Trained(build(entry, settings)[0].eval(), entry.name, folder, False, 0, False, cfg)


def _launch(entry: Entry, settings: Settings, teacher_seed: int, teacher_set_dir: Path | None, device: str,
            weights_: str, budget_s: float | None, threads: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gankd_utils", "train", "--dataset", entry.dataset, "--model", entry.name,
           "--profile", settings.profile, "--seed", str(settings.seed), "--teacher-seed", str(teacher_seed),
           "--weights", weights_, "--device", device, "--quiet", *config.speed_flags(settings.speed)]
    if teacher_set_dir is not None:
        cmd += ["--teacher-set", str(teacher_set_dir)]
    if budget_s is not None:  # a time on the clock, not a length: the run's start-up (imports, data, CUDA) counts
        cmd += ["--deadline-at", f"{time.time() + budget_s:.3f}"]
    env = os.environ.copy()
    env.setdefault("OMP_NUM_THREADS", str(threads))  # the runs side by side share the cores, not each all of them
    return subprocess.Popen(cmd, env=env)


class _Terminated(Exception):
    """SIGTERM reached a process that has runs of its own to stop first."""


@contextlib.contextmanager
def _sigterm_raises():
    """SIGTERM to this process (``kill``, a scheduler's stop) raises :class:`_Terminated` inside, so that the runs it
    started are stopped (and save) first; then the signal takes effect as it would have. Only where Python
    handles it (the main thread, a signal not ignored)."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or previous in (None, signal.SIG_IGN):
        yield
        return

    def raise_(signum, frame):
        raise _Terminated()

    signal.signal(signal.SIGTERM, raise_)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, previous)
        signal.raise_signal(signal.SIGTERM)
        raise  # a handler of the process's own that returned
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _stopping(running: list[subprocess.Popen]):
    """However the caller ends (a stopped notebook, Ctrl-C, SIGTERM), the runs still going get SIGTERM, save at the
    end of their step, and are waited for: no training is left behind on the GPU."""
    try:
        yield
    finally:
        for p in running:
            if p.poll() is None:
                p.terminate()
        for p in running:
            p.wait()


def _train_in_processes(jobs: list[tuple[Entry, Settings]], waits_for_teacher: set[str], teacher_seed: int,
                        teacher_set_dir: str | Path | None, device: str, weights_: str, parallel: int,
                        deadline: float | None) -> set[tuple[str, int]]:
    """Run ``jobs`` as ``train`` commands, ``parallel`` at a time; the online KD students whose teacher trains
    too (``waits_for_teacher``, names) start once every other job has ended. Returns the (name, seed) started
    (none once ``deadline`` has come)."""
    running: list[subprocess.Popen] = []
    started: set[tuple[str, int]] = set()
    threads = max(1, (os.cpu_count() or 1) // parallel)
    with _sigterm_raises(), _stopping(running):
        for wave in ([j for j in jobs if j[0].name not in waits_for_teacher],
                     [j for j in jobs if j[0].name in waits_for_teacher]):
            for e, s in wave:
                while len(running) >= parallel:
                    time.sleep(0.2)
                    running[:] = [p for p in running if p.poll() is None]  # in place: _stopping holds it
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                ts_dir = Path(teacher_set_dir) if e.kd == "blackbox" and teacher_set_dir is not None else None
                running.append(_launch(e, s, teacher_seed, ts_dir, device, weights_, left, threads))
                started.add((e.name, s.seed))
            for p in running:  # a run that failed there trains again in the caller, here, and raises its error
                p.wait()
            running.clear()
    return started


def train_all(entries: Mapping[str, Entry], settings: Settings, real: data.ImageSet | None = None,
              teacher_set=None, teacher_set_dir: str | Path | None = None, device="auto", retrain: bool = False,
              progress: bool = True, parallel: int | None = None, weights_: str = "train",
              deadline: float | None = None) -> dict[str, Trained]:
    """Train (or load) every entry with every seed its role asks for (``settings.seeds``); teachers first.

    Returns ``{seed_key: Trained}``. ``parallel``: how many independent runs train at once in
    their own processes (the ``train`` command), so that small models do not leave a GPU idle
    behind Python; default 4 on CUDA, 1 (all in this process) elsewhere. The online KD students
    whose teacher trains too start after the other runs; black-box KD students (they learn from
    an exported set) start with the rest. Parallel runs need the profile's own settings (what the
    command line rebuilds; ``settings.speed`` goes along) and, for black-box KD, the teacher set's
    folder (``teacher_set_dir``); otherwise they train here. ``deadline`` (a ``time.monotonic()``
    time): every run pauses, saved, when it comes; what is not finished then has ``finished`` False
    (run again to go on).
    """
    device = repro.get_device(device)
    if parallel is None:
        parallel = 4 if device.type == "cuda" else 1
    # what the command line rebuilds: the profile's settings, with the speed settings it forwards
    default = config.settings(settings.dataset, settings.profile, settings.seed, speed=settings.speed)
    jobs = [(n, e, k) for n, e in entries.items() for k in settings.seeds(e.role)]
    to_train = [(e, settings.for_seed(k)) for n, e, k in jobs
                if weights_choice(e, settings.for_seed(k), weights_) == "train"]
    if parallel > 1 and settings == default and not retrain:
        todo = [(e, s) for e, s in to_train if finished_sidecar(run_dir(e, s), train_config(e, s)) is None]
        training = {e.name for e, _ in todo}
        waits = {e.name for e, _ in todo if e.kd in recipes.ONLINE_KD and e.teacher in training}
        launched = _train_in_processes(todo, waits, settings.seed, teacher_set_dir, str(device), weights_, parallel,
                                       deadline)
    else:
        launched = set()
    out: dict[str, Trained] = {}
    teachers_: dict[str, nn.Module] = {}
    for n, e, k in jobs:
        s = settings.for_seed(k)
        if (deadline is not None and time.monotonic() >= deadline and not retrain and weights_choice(e, s, weights_)
                == "train" and finished_sidecar(run_dir(e, s), train_config(e, s)) is None):
            t = _left_as_is(e, s, device)  # no time left: not started, or left at its checkpoint
        else:
            t = train_or_load(e, s, real, teachers_, teacher_set, device, retrain, progress, deadline=deadline,
                              weights_=weights_)
        if (e.name, k) in launched:
            t.loaded = False  # trained by this call (in a process of its own), not found finished
        out[seed_key(n, k, settings.seed)] = t
        if e.role == "teacher" and t.finished:  # a paused teacher teaches nobody
            teachers_[n] = t.G
    return out


# ------------------------------------------------------------------ teacher sets

def teacher_set_per_class(settings: Settings, root: str | Path | None = None) -> int:
    """Images per class of the CIFAR-10 teacher set: the profile's ``export.per_class``, or fewer where
    the data root holds a smaller part of CIFAR-10 than that (a class-balanced subset of shards).

    A black-box KD student's epoch runs over the teacher set and its scratch twin's over the real
    images: capped so, the two sets hold as many images, and KD and scratch train as many steps.
    """
    per_class = settings.export.per_class
    if settings.dataset != "cifar10" or settings.export.classes is not None:
        return per_class
    return max(1, min(per_class, data.cifar10_train_size(root) // len(data.CIFAR10_CLASSES)))


def export_teacher(ckpt: str | Path, settings: Settings, device="auto", progress: bool = True) -> dict[str, Any]:
    """Export a trained teacher checkpoint to its shard folder under ``paths.teachers_dir()``.

    The folder name carries the profile, seed and the checkpoint's hash, so a
    retrained teacher never mixes with an old export; a rerun keeps whole shards.
    Returns the export summary plus ``folder``.
    """
    ckpt = Path(ckpt)
    sizes = settings.export
    per_class = teacher_set_per_class(settings)
    teacher = teachers.TorchTeacher.from_checkpoint(ckpt, device)
    name = f"{settings.dataset}_cgan_teacher_{settings.profile}_s{settings.seed}_{sha256_file(ckpt)[:8]}"
    if per_class != sizes.per_class:  # a smaller data root's set: never mixed with a whole-size export
        name += f"_n{per_class}"
    info = teachers.export(teacher, paths.teachers_dir() / name, classes=sizes.classes, per_class=per_class,
                           seed=settings.seed, shard_size=sizes.shard_size, batch_size=sizes.batch_size,
                           progress=progress)
    return {**info, "folder": paths.teachers_dir() / name}


def cifar10_teacher_set(settings: Settings, device="auto", retrain: bool = False, progress: bool = True,
                        real: data.ImageSet | None = None, weights_: str = "train") -> dict[str, Any]:
    """Chapter 04's teacher and its exported set, for every chapter that distils it (04, 05, 06, 07).

    Loads the finished teacher of ``settings`` (or trains it now, in that profile,
    when chapter 04 has not) and exports it unless the export exists. Returns
    ``{"teacher": Trained, "folder", "set": ImageSet, "trained": bool, "export": {...}}``.
    """
    entry = zoo("cifar10")["cgan_teacher"]
    real = real if real is not None else data.load_cifar10(train=True)
    t = train_or_load(entry, settings, real, device=device, retrain=retrain, progress=progress, weights_=weights_)
    exported = export_teacher(t.run_dir / "G.safetensors", settings, device, progress)
    return {"teacher": t, "folder": exported["folder"], "set": shards.load_shards(exported["folder"]),
            "trained": not t.loaded, "export": exported}


# ------------------------------------------------------------------ every model of a profile

def collect(profile: str, seed: int = 0, device="auto", train_missing: bool = True, progress: bool = True,
            say: Callable[[str], None] = print, weights_: str = "train",
            only: Collection[str] | None = None, speed: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Every model of chapters 03-05 for ``profile`` / ``seed``: ``{dataset: {"models", "entries", "sources",
    "run_dirs", "settings", "left_out"}}``.

    ``only``: ``"dataset/model"`` keys: just these models and the teachers of the KD students among them
    (chapter 07 needs no more, and then reads only their shipped files); None: every model.

    With ``weights_`` "auto" or "shipped", a shipped model is taken from the shipped weights
    (whatever the profile: chapters 06 and 07 compare and compress the full run's models).
    Otherwise a model is loaded from its run folder when finished there (whatever settings it was
    trained with: the comparison compares what exists); otherwise, with ``train_missing``,
    it is trained now in ``profile`` (and ``say`` tells the user), else left out (named in ``left_out``).
    ``speed``: :data:`config.SPEED` settings for every training that follows from these settings (a model trained
    now, chapter 07's fine-tunes): how fast they compute, never what they learn.
    """
    device = repro.get_device(device)
    shipped_in = paths.shown(weights.weights_root())
    out: dict[str, dict[str, Any]] = {}
    for dataset in ("mnist", "cifar10"):
        s = config.settings(dataset, profile, seed, speed=dict(speed or {}))
        entries = zoo(dataset)
        models: dict[str, nn.Module] = {}
        sources: dict[str, str] = {}
        dirs = {name: run_dir(e, s) for name, e in entries.items()}
        real, teacher_set, left_out = None, None, []
        wanted = None if only is None else {k.split("/", 1)[1] for k in only if k.split("/", 1)[0] == dataset}
        if wanted is not None:
            wanted |= {family_teacher(entries, n) for n in wanted if n in entries and entries[n].role == "kd"} - {None}
        for name, e in entries.items():
            if wanted is not None and name not in wanted:
                continue
            if weights_ != "train" and weights.has(dataset, name):
                t = load_shipped(e, s, device)
                models[name], sources[name], dirs[name] = t.G, f"shipped ({shipped_in})", t.run_dir
                continue
            if weights_ == "shipped":
                raise weights.ShippedWeightsError(f"{dataset}/{name} is not shipped; set WEIGHTS = \"train\" (or "
                                                  "\"auto\") to use the profile's own runs")
            done = load_finished(dirs[name], None, device)
            if done is not None:
                models[name], sources[name] = done.G, f"loaded from {paths.shown(dirs[name])}"
                continue
            if not train_missing:
                say(f"{name}: no finished checkpoint in {paths.shown(dirs[name])}; left out")
                left_out.append(name)
                continue
            say(f"{name}: no finished checkpoint in {paths.shown(dirs[name])}; training it now "
                f"({profile} profile)")
            real = real if real is not None else data.load_dataset(dataset, train=True)
            if e.kd == "blackbox" and teacher_set is None:
                teacher_set = cifar10_teacher_set(s, device, progress=progress, real=real, weights_=weights_)["set"]
            models[name] = train_or_load(e, s, real, models, teacher_set, device, progress=progress).G
            sources[name] = f"trained now ({profile} profile)"
        out[dataset] = {"models": models, "entries": entries, "sources": sources, "run_dirs": dirs, "settings": s,
                        "left_out": left_out}
    return out

