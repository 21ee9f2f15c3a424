"""The training loop: every recipe, one loop (from scratch, online KD, black-box KD).

:func:`fit` picks the recipe's step function once (:mod:`gankd_utils.recipes`),
keeps the run's state in a :class:`runstate.RunState`, and owns the progress
bar, the history, fixed-z sample sheets and checkpoints every ``ckpt_every``
steps, from which a run resumes (:func:`checkpoint.load_resume`): on the CPU
exactly (same batches, same noise, same weights as if it had never stopped).
:func:`train_gan`, :func:`train_online_kd` and :func:`train_blackbox` say which
kind of run is meant and check that the config agrees.

Run folder layout::

    RUN/config.json          settings of the run
    RUN/G.safetensors/.json  final generator (+ D.*)
    RUN/samples/epoch_000.png  fixed-z sample sheets
    RUN/state/               resume state: G, D, optimizers, RNG, step counters (written whole:
                             into state.new/, which then replaces it; see checkpoint.save_resume)
    RUN/history.json         per-step losses
    RUN/metrics.jsonl        one JSON line every ``log_every`` steps (losses, step, epoch, seconds of training
                             since the run began, over its resumes)
    RUN/previous/            where a fresh start (``resume=False``, a retrain) moves the finished result it
                             replaces (G.*, D.*, history.json, quality.json) before training begins, so that a
                             retrain cut off part way never leaves the old generator counted as finished beside
                             the new run's history; removed once the new run finishes

A run's ``G.json``/``D.json`` (and its resume state's ``progress.json``) record how it was
trained: ``training`` lists one segment per process that trained it (steps, seconds, device),
so a run begun on one machine and finished on another says so
(:meth:`runstate.RunState.training_record`).

Data parallel (``dist``, see :mod:`gankd_utils.dist`): every rank runs this loop
on its own slice of each batch with its own noise stream; gradients are averaged
before every optimizer step, logged values are averaged over ranks, and only
rank 0 writes (checkpoints hold every rank's RNG state, so a resumed run with
the same number of processes continues exactly).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from tqdm import tqdm

from . import checkpoint, recipes, repro
from .config import TrainConfig, save_json
from .data import Batches, ImageSet
from .dist import Dist
from .io import atomic_write_text
from .runstate import RunState, fast_enabled
from .viz import save_sample_sheet


def _trim_jsonl(path: Path, step: int) -> None:
    """Drop metrics.jsonl lines logged after the checkpoint being resumed (a crash between the two)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    atomic_write_text(path, "".join(ln + "\n" for ln in keep))


def _batch_source(data, cfg: TrainConfig, device: torch.device, dist: Dist, on_device: bool):
    """Batches of an in-memory :class:`ImageSet`, or a streamed source with ``Batches``' interface as it is."""
    if isinstance(data, ImageSet):
        data = data.subset(cfg.n_train, seed=cfg.seed)
        return Batches(data, cfg.batch_size, seed=cfg.seed, device=device, rank=dist.rank, world=dist.world,
                       on_device=on_device), data.z is not None
    if cfg.n_train is not None:
        raise ValueError("n_train subsets an in-memory ImageSet; a streamed batch source reads every item "
                         "(set n_train to None, or export fewer images)")
    return data, True


def _items(data) -> int | None:
    """How many items the training data holds: an :class:`ImageSet`'s images (before ``n_train``), a streamed
    source's whole set (its ``dataset``); None where it cannot say."""
    if isinstance(data, ImageSet):
        return len(data)
    ds = getattr(data, "dataset", None)
    return len(ds) if ds is not None and hasattr(ds, "__len__") else None


def _fixed_inputs(G: nn.Module, cfg: TrainConfig, data, batches, device) -> tuple[torch.Tensor, Any, int]:
    """The fixed (z, y) of the sample sheets: 10 per class (or 10 of many classes), and the sheet's row length."""
    cond = bool(getattr(G, "n_classes", 0))
    fixed_z = repro.noise(cfg.n_fixed, G.z_dim, cfg.seed, "fixed", device)
    if not cond:
        return fixed_z, None, 10
    if G.n_classes > 20:  # many classes (ImageNet): 10 of the trained classes, 10 images each
        present = (torch.unique(data.labels) if isinstance(data, ImageSet)
                   else torch.as_tensor(getattr(getattr(batches, "dataset", None), "classes", range(G.n_classes))))
        ids = present[torch.linspace(0, len(present) - 1, min(10, len(present))).long()]
        fixed_y = ids.repeat_interleave(max(1, cfg.n_fixed // len(ids))).to(device)[:cfg.n_fixed]
    else:
        fixed_y = repro.class_grid_labels(G.n_classes, max(1, cfg.n_fixed // G.n_classes), device)[:cfg.n_fixed]
    return fixed_z[: len(fixed_y)], fixed_y, (G.n_classes if G.n_classes <= 20 else 10)


RESULT = ("G.json", "G.safetensors", "D.json", "D.safetensors", "history.json", "quality.json")
"""A run folder's result: its final checkpoints and the curves that describe them; ``G.json`` first, as the sidecar
that says the run finished."""
PREVIOUS = "previous"


def set_aside_result(run_dir: str | Path) -> Path | None:
    """Before a fresh start of a run (a retrain) begins: move the result of the run it replaces out of the way,
    into ``run_dir/previous/``, so that the folder no longer holds a finished generator (nor curves or scores
    of it) until the new run writes its own. Returns the folder it went to, or None (nothing there).

    A finished result replaces an earlier ``previous/``; an unfinished one (the final save of a paused run,
    whose resume state a fresh start discards) is removed where ``previous/`` holds a finished one already
    (a retrain of a retrain cut off part way), else it is kept there. The move goes through ``previous.new/``,
    which a move cut off part way leaves behind; the next call completes it first.
    """
    run_dir = Path(run_dir)
    prev, staging = run_dir / PREVIOUS, run_dir / f"{PREVIOUS}.new"

    def move_into(folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        for name in RESULT:  # G.json first: the folder stops counting as finished at once
            if (run_dir / name).exists():
                os.replace(run_dir / name, folder / name)
        if prev.exists():
            shutil.rmtree(prev)
        os.replace(folder, prev)

    moved = None
    if staging.exists():  # a move cut off part way: what is left beside it belongs to it
        move_into(staging)
        moved = prev
    found = [run_dir / name for name in RESULT if (run_dir / name).exists()]
    if not found:
        return moved
    try:
        finished = checkpoint.is_finished(run_dir)
    except checkpoint.CheckpointError:  # a damaged sidecar counts as unfinished
        finished = False
    if not finished and (prev / "G.json").exists():
        for f in found:
            f.unlink()
        return prev
    move_into(staging)
    return prev


def snapshot_steps(total: int, snapshots: int) -> set[int]:
    """The steps at which a run of ``total`` steps keeps a copy of its generator: ``snapshots`` evenly spaced
    points, the last of which is the finished run itself (its ``G``, not a snapshot)."""
    return {round(total * (i + 1) / snapshots) for i in range(snapshots - 1)} - {0, total} if snapshots > 1 else set()


def snapshot_path(run_dir: str | Path, step: int) -> Path:
    """``run_dir/snapshots/G_<step>``: the checkpoint stem of the generator kept at ``step``."""
    return Path(run_dir) / "snapshots" / f"G_{step:07d}"


def snapshots(run_dir: str | Path) -> list[tuple[int, Path]]:
    """The ``(step, checkpoint stem)`` of every generator snapshot a run kept, by step."""
    folder = Path(run_dir) / "snapshots"
    found = [(int(p.stem.split("_", 1)[1]), p.with_suffix("")) for p in folder.glob("G_*.safetensors")]
    return sorted(found)


class StopRequest:
    """While a run trains in one process: SIGINT (Ctrl-C, a notebook's interrupt) and SIGTERM (``terminate()``,
    a scheduler's stop) let the run finish its step and save as at a pause, then take effect as they would have.

    The same signal again takes effect at once, without saving; the other one, while it saves, is ignored (a
    Ctrl-C reaches a whole process group, and a parent then sends its runs SIGTERM). Inside ``with``,
    :attr:`signum` is the signal caught (None: none); :meth:`deliver` hands it on once the run has saved (with
    the handlers the process had before: KeyboardInterrupt by default, the process's end for SIGTERM). Off the
    main thread, where Python cannot catch signals, and for data-parallel runs, whose ranks would have to agree
    on the step, it does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, name: str, enabled: bool = True):
        self.name = name
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._said = False

    def __enter__(self) -> StopRequest:
        if self.enabled:
            for s in self.SIGNALS:
                previous = signal.getsignal(s)
                # a signal the process ignores stays ignored; None: a handler set outside Python (not restorable)
                if previous not in (None, signal.SIG_IGN):
                    self._previous[s] = previous
                    signal.signal(s, self._catch)
        return self

    def _catch(self, signum: int, frame) -> None:
        # records only: printing here could re-enter a write to stderr under way (a progress bar) and raise
        if self.signum is not None:  # the other kind while saving (Ctrl-C reached a process group, whose parent
            return                   # then sends SIGTERM): it is stopping already
        self.signum = signum
        signal.signal(signum, self._previous.pop(signum))  # the same signal again stops the run at once

    def requested(self) -> bool:
        """Whether a signal was caught; says so (once) for the user, who waits for the save."""
        if self.signum is not None and not self._said:
            self._said = True
            print(f"\n{self.name}: {signal.Signals(self.signum).name}: saving at the end of this step, then "
                  "stopping (send it again to stop at once, unsaved)", file=sys.stderr, flush=True)
        return self.signum is not None

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self._restore()

    def deliver(self, saved: str = "saved") -> None:
        """The caught signal, handed on to the handlers the process had before (call it after saving);
        ``saved`` says where the run stands, for the message."""
        if self.signum is not None:
            self._restore()
            self.requested()  # a signal caught after the last step was not announced yet
            print(f"{self.name}: {saved}", file=sys.stderr, flush=True)
            signal.raise_signal(self.signum)


def fit(G: nn.Module, D: nn.Module, data, cfg: TrainConfig, run_dir: str | Path, device: str | torch.device = "auto",
        teacher: nn.Module | None = None, real: ImageSet | None = None, resume: bool = True, progress: bool = True,
        dist: Dist | None = None, deadline: float | None = None) -> dict[str, Any]:
    """Train ``G`` and ``D`` with ``cfg``'s recipe; returns ``{"history", "run_dir", "steps", "finished", ...}``.

    ``data``: an :class:`ImageSet` (real images; a teacher set with z for black-box KD), or a
    streamed batch source with ``Batches``' interface (``len()``, ``epoch(e, skip)``;
    e.g. ``shards.ShardBatches``). ``teacher``: the frozen generator of online KD.
    ``real``: real images for black-box KD's real branch. Resumes from ``run_dir/state``
    when a checkpoint of the same settings is there (``resume=False`` starts afresh).
    ``deadline``: a ``time.monotonic()`` time after which the run saves and pauses (a time
    budget for short GPU windows); run it again to go on. An interrupt (Ctrl-C, a notebook's
    stop button) or SIGTERM saves the same way at the end of the step, then stops (:class:`StopRequest`).
    """
    dist = dist or Dist()
    main = dist.is_main
    device = repro.get_device(device)
    step = recipes.step_for(cfg)
    run_dir = Path(run_dir)
    _refuse_weights_folder(run_dir)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    on_device = fast_enabled(cfg, device) and device.type == "cuda"  # the data set moves to the GPU once
    batches, has_z = _batch_source(data, cfg, device, dist, on_device)
    recipes.check(cfg, teacher, has_z)
    G.to(device).train()
    D.to(device).train()
    dist.broadcast_module(G)
    dist.broadcast_module(D)
    if teacher is not None:
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    run = RunState(G, D, cfg, device, teacher, real, dist, adapter=cfg.kd == "feature")
    if not resume:  # a fresh start: the result it replaces goes aside with its curves, then the state goes
        dist.barrier()
        if main:
            set_aside_result(run_dir)
            checkpoint.clear_state(run_dir)
            for f in ("history.json", "metrics.jsonl"):
                (run_dir / f).unlink(missing_ok=True)
        dist.barrier()
    resumed = resume and checkpoint.load_resume(run_dir, run)
    jsonl = run_dir / "metrics.jsonl"
    if main:
        if resumed:
            _trim_jsonl(jsonl, run.step)
            for step_, stem in snapshots(run_dir):  # kept after the checkpoint resumed from: made again
                if step_ > run.step:
                    for f in (stem.with_suffix(".safetensors"), stem.with_suffix(".json")):
                        f.unlink(missing_ok=True)
        else:
            jsonl.unlink(missing_ok=True)
            shutil.rmtree(run_dir / "snapshots", ignore_errors=True)  # a fresh run keeps no older run's generators
            if resume:  # nothing to resume from: nor its finished G (resume=False set that aside above already)
                set_aside_result(run_dir)
        save_json(cfg, run_dir / "config.json")
    fixed_z, fixed_y, nrow = _fixed_inputs(G, cfg, data, batches, device)

    def sample_sheet(name: str) -> None:
        if not main:
            return
        model = run.model()  # the live G, or the weight average with its own BatchNorm statistics
        was = model.training
        model.eval()
        with torch.no_grad():
            save_sample_sheet(model(fixed_z, fixed_y), run_dir / "samples" / name, nrow=nrow)
        model.train(was)

    def save() -> None:  # collective: every rank calls it, rank 0 writes
        flush()
        rngs = dist.gather(run.rng_state())
        if main:
            checkpoint.save_resume(run_dir, run, rngs)

    t0 = time.perf_counter()
    run.begin_segment(images=_items(data))

    def flush() -> None:
        rows = run.flush()
        if not main or not rows:
            return
        lines = [json.dumps({"step": int(r["step"]), "epoch": int(r["epoch"]),
                             "seconds": round(run.seconds_so_far(), 3),
                             **{k: v for k, v in r.items() if k not in ("step", "epoch")}})
                 for r in rows if cfg.log_every and int(r["step"]) % cfg.log_every == 0]
        if lines:
            with open(jsonl, "a") as f:
                f.write("\n".join(lines) + "\n")
        bar.set_postfix({k: f"{rows[-1][k]:.3f}" for k in ("d_loss", "g_loss") if k in rows[-1]})

    total = cfg.epochs * len(batches)
    limit = min(total, cfg.max_steps) if cfg.max_steps is not None else total
    snap_at = snapshot_steps(total, cfg.snapshots)
    bar = tqdm(total=limit, initial=min(run.step, limit), desc=cfg.name, disable=not (progress and main), leave=False)
    flush_every = max(1, cfg.log_every or 50)
    stop = StopRequest(cfg.name, enabled=not dist.enabled)
    with stop, run.precision():
        done_early = stopped = False
        while run.epoch < cfg.epochs and run.step < limit and not stopped:
            for i, batch in enumerate(batches.epoch(run.epoch, skip=run.batch), start=run.batch):
                vals = step(run, batch, i % cfg.n_critic == 0)
                run.batch = i + 1
                run.step += 1
                run.log(vals)
                bar.update(1)
                if run.step % flush_every == 0:
                    flush()
                if cfg.sample_every and run.step % cfg.sample_every == 0:
                    sample_sheet(f"step_{run.step:07d}.png")
                if run.step in snap_at and main:
                    checkpoint.save_model(snapshot_path(run_dir, run.step), run.model(), step=run.step, snapshot=True)
                if run.step % cfg.ckpt_every == 0:
                    save()
                stopped = (deadline is not None and time.monotonic() >= deadline) or stop.requested()
                if run.step >= limit or stopped:
                    done_early = run.batch < len(batches)
                    break
            if not done_early:
                sample_sheet(f"epoch_{run.epoch:03d}.png")
                run.epoch += 1
                run.batch = 0
                save()
        bar.close()
        save()
        if dist.enabled:  # averaged gradients keep the ranks' weights identical; check before saving rank 0's
            sums = dist.gather([float(p.detach().double().sum()) for p in G.parameters()])
            if any(s != sums[0] for s in sums[1:]):
                raise RuntimeError("the ranks' generators diverged; report this with the launch command used")
        finished = run.step >= total
        meta = {"config": cfg.to_dict(), "step": run.step, "finished": finished, "ema": run.G_ema is not None,
                "world_size": dist.world, "training": run.training_record()}
        if run.G_ema is not None:
            # the average is the model (BigGAN's habit), with BatchNorm statistics of its own
            G.load_state_dict(run.model().state_dict())
        if main:
            # D first, G (whose sidecar says finished) last: a save cut off between leaves no finished G with
            # another run's D
            checkpoint.save_model(run_dir / "D", D, **meta)
            checkpoint.save_model(run_dir / "G", G, **meta)
            if finished:  # the result a fresh start set aside is superseded now
                shutil.rmtree(run_dir / PREVIOUS, ignore_errors=True)
        dist.barrier()
    G.eval()
    # a signal caught above takes effect now that the run is saved
    stop.deliver(f"finished, saved in {run_dir}" if finished else
                 f"saved at step {run.step} in {run_dir}; run it again to go on")
    return {"history": run.history, "run_dir": str(run_dir), "steps": run.step, "resumed": resumed,
            "finished": finished, "seconds": time.perf_counter() - t0, "adapter": run.adapter, "fast": run.fast}


def _refuse_weights_folder(run_dir: Path) -> None:
    """A training never writes into the shipped weights folder (``results/weights``): those files are checked
    against its MANIFEST.json, and only :func:`weights.ship` writes there."""
    from . import weights  # here: importing it at the top would load the metrics package with every training
    root = weights.weights_root().resolve()
    d = run_dir.resolve()
    if d == root or root in d.parents:
        raise ValueError(f"refusing to train in {run_dir}: it lies in the shipped weights folder {root}; train in "
                         "a run folder of its own (results/<chapter>/runs/...), and ship finished runs from there "
                         "(weights.ship)")


def _expect(cfg: TrainConfig, kinds: tuple[str, ...], fn: str, hint: str) -> None:
    if cfg.kd not in kinds:
        raise ValueError(f"{fn} needs cfg.kd in {kinds}, got {cfg.kd!r}; {hint}")


def train_gan(G: nn.Module, D: nn.Module, data: ImageSet, cfg: TrainConfig, run_dir: str | Path,
              device: str | torch.device = "auto", resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Train G and D from scratch on ``data`` (``cfg.kd='none'``); see :func:`fit`."""
    _expect(cfg, ("none",), "train_gan", "KD recipes train with train_online_kd or train_blackbox")
    return fit(G, D, data, cfg, run_dir, device, resume=resume, progress=progress)


def train_online_kd(G: nn.Module, D: nn.Module, teacher: nn.Module, data: ImageSet, cfg: TrainConfig,
                    run_dir: str | Path, device: str | torch.device = "auto", resume: bool = True,
                    progress: bool = True) -> dict[str, Any]:
    """Online KD: student G (with its own D) on ``data`` plus a KD term to a frozen ``teacher`` called every step.

    ``cfg.kd='feature'``: G loss = w_adv * adversarial + w_feat * MSE(adapter(f_s), f_t) (IITGN).
    ``cfg.kd='pixel'``: G loss = w_adv * adversarial + w_pixel * L1(G(z, y), T(z, y)) (Columbia).
    ``cfg.kd='distill'``: G loss = w_pixel * L1(G(z, y), T(z, y)) alone; D is never updated.
    Teacher and student see the same (z, y) at every step.
    """
    _expect(cfg, recipes.ONLINE_KD, "train_online_kd", "see config.IITGN / config.COLUMBIA / config.DISTILL; for a "
            "teacher set use train_blackbox")
    return fit(G, D, data, cfg, run_dir, device, teacher=teacher, resume=resume, progress=progress)


def train_blackbox(G: nn.Module, D: nn.Module, teacher_set, cfg: TrainConfig, run_dir: str | Path,
                   device: str | torch.device = "auto", real: ImageSet | None = None, resume: bool = True,
                   progress: bool = True, dist: Dist | None = None) -> dict[str, Any]:
    """Black-box KD: student G from a teacher's exported (z, y, image) set, never calling the teacher.

    ``teacher_set``: an :class:`ImageSet` with ``z`` (``shards.load_shards`` of an export), or
    a streamed ``shards.ShardBatches`` for sets too large for memory.
    ``real``: optional real images of the same classes for the ``w_real`` GAN branch.
    ``dist``: data-parallel context (``dist.setup()``); None for one process.
    Losses and defaults: ``config.TINYGAN``.
    """
    _expect(cfg, ("blackbox",), "train_blackbox", "see config.TINYGAN")
    return fit(G, D, teacher_set, cfg, run_dir, device, real=real, resume=resume, progress=progress, dist=dist)
