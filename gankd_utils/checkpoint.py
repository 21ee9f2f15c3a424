"""Checkpoints: safetensors weights + a JSON sidecar; resume state read with weights_only.

A saved model is two files: ``NAME.safetensors`` (the weights, nothing
executable) and ``NAME.json`` (``{"gankd": 1, "model": {"arch", "kwargs"},
...metadata}``), so a generator can be rebuilt from its spec. Optimizer and RNG
state for resuming go to a ``.pt`` file that is only ever read with
``torch.load(weights_only=True)``: no file is unpickled.

Resume I/O of a training run lives here too (:func:`save_resume` /
:func:`load_resume`, layout ``RUN/state/``), with :func:`resume_key`: the
settings that must agree for a run, or a finished checkpoint, to count as the
same training. A resume state is written whole or not at all: into
``RUN/state.new/``, which then takes the place of ``RUN/state/`` (:func:`state_dir`
finds the older one where a save was cut off between the two renames).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import models
from .io import atomic_write, atomic_write_text

if TYPE_CHECKING:
    from .runstate import RunState

FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or was not written by gankd for this model."""


def _paths(path: str | Path) -> tuple[Path, Path]:
    """``NAME.safetensors`` and ``NAME.json`` of a checkpoint named by its stem or either file. The suffixes are
    appended to the whole name: a name with a dot of its own (``cls_v1.5``) is never cut short (to ``cls_v1``,
    another checkpoint's name)."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def save_model(path: str | Path, model: nn.Module, **meta: Any) -> Path:
    """Save ``model``'s weights and spec; ``meta`` (config, step, metrics...) goes into the sidecar."""
    weights, sidecar = _paths(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(weights, lambda tmp: save_file(state, tmp))
    write_sidecar(sidecar, {"gankd": FORMAT, "model": models.spec_of(model), **meta})
    return weights


def write_sidecar(path: str | Path, side: dict[str, Any]) -> Path:
    """Write a checkpoint's sidecar (``NAME.json`` of ``path``), atomically, in the one layout every sidecar has."""
    _, sidecar = _paths(path)
    return atomic_write_text(sidecar, json.dumps(side, indent=2, sort_keys=True, default=_jsonable))


KEPT = "kept"
"""The key of a finished run's ``G.json`` that says which of its generators ``G`` is, when not its last one
(:func:`gankd_utils.runs.keep_generator`): ``{"step": ..., and why}``."""


def read_sidecar(path: str | Path) -> dict[str, Any]:
    weights, sidecar = _paths(path)
    if not weights.exists():
        raise CheckpointError(f"no checkpoint at {weights}: train the model first, or check the path")
    if not sidecar.exists():
        raise CheckpointError(f"{weights} has no sidecar {sidecar.name}: it was not saved by gankd "
                              "(gankd checkpoints are NAME.safetensors + NAME.json)")
    try:
        side = json.loads(sidecar.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:  # a binary file is not UTF-8 text to begin with
        raise CheckpointError(f"{sidecar} is not valid JSON ({e}); the checkpoint is damaged, train again") from e
    if not isinstance(side, dict) or side.get("gankd") != FORMAT or "model" not in side:
        raise CheckpointError(f"{sidecar} is not a gankd checkpoint sidecar (format {FORMAT} with a 'model' spec)")
    return side


def tensor_bytes(t: torch.Tensor) -> bytes:
    """A tensor's values as raw bytes in logical order, whatever its dtype, device or memory format: what a hash of
    a model's weights reads (:func:`study.start_fingerprint`, :func:`metrics.scorecache.fingerprint`)."""
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    weights, _ = _paths(path)
    try:
        return load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights} is not a readable safetensors file ({e}); it is truncated or corrupt: "
                              "delete it and train again") from e


def load_into(model: nn.Module, path: str | Path) -> nn.Module:
    """Load saved weights into an existing ``model``, with a clear error if they do not fit."""
    weights, _ = _paths(path)
    state = load_weights(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(x for x in (
            f"missing {missing[:4]}{'...' if len(missing) > 4 else ''}" if missing else "",
            f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}" if unexpected else "",
            f"wrong shape {wrong[:4]}" if wrong else "") if x)
        raise CheckpointError(f"{weights} does not fit {type(model).__name__}: {detail}. "
                              "Is it a checkpoint of another model or width?")
    model.load_state_dict(state)
    return model


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from its sidecar spec and load its weights; returned in eval mode."""
    side = read_sidecar(path)
    spec = side["model"]
    if not isinstance(spec, dict) or not isinstance(spec.get("kwargs", {}), dict):
        raise CheckpointError(f"cannot rebuild the model of {path}: its sidecar's 'model' is {spec!r}, not "
                              "{'arch': ..., 'kwargs': {...}}; the sidecar is damaged or was not written by gankd: "
                              "train again")
    try:
        model = models.build(spec)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"cannot rebuild the model of {path}: {e}") from e
    return load_into(model, path).to(device).eval()


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Resume state (optimizer state dicts, RNG states, counters, history) as a tensor-only .pt."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | Path) -> dict[str, Any]:
    """Read resume state with ``weights_only=True``: plain tensors and containers only."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for foreign objects, RuntimeError/EOFError for damage
        raise CheckpointError(f"{path} is not a gankd resume state ({type(e).__name__}: {e}). "
                              "Delete the run folder's state/ to start the run afresh.") from e


def _jsonable(o: Any) -> Any:
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"cannot store {type(o).__name__} in a checkpoint sidecar")


# ------------------------------------------------------------------ training runs

# settings that say when to pause, save, log or draw samples, where to write, or how fast to run; not what to train
BOOKKEEPING = frozenset({"name", "max_steps", "ckpt_every", "log_every", "sample_every", "snapshots", "fast",
                         "compile", "channels_last"})


def resume_key(cfg: Any) -> dict[str, Any]:
    """The settings of a training config (a TrainConfig or its dict) that define the training itself.

    A run resumes, and a finished checkpoint is reused, only when these agree.
    """
    d = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    return {k: v for k, v in json.loads(json.dumps(d, default=_jsonable)).items() if k not in BOOKKEEPING}


def is_finished(run_dir: str | Path) -> bool:
    """True when ``run_dir`` holds a finished generator (the notebooks then load instead of training)."""
    p = Path(run_dir) / "G.json"
    if not p.exists():
        return False
    try:
        side = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{p} is not valid JSON ({e}); the run's checkpoint is damaged: train it again "
                              "(RETRAIN=True in a notebook, --retrain on the command line)") from e
    if not isinstance(side, dict):
        raise CheckpointError(f"{p} holds a JSON {type(side).__name__}, not a gankd checkpoint sidecar (an object); "
                              "the run's checkpoint is damaged: train it again (RETRAIN=True in a notebook, "
                              "--retrain on the command line)")
    return bool(side.get("finished"))


def state_dir(run_dir: str | Path) -> Path:
    """The folder of the last whole resume state of a run: ``run_dir/state`` (which may not exist: nothing
    saved yet), or ``state.old`` where a save was cut off between its two renames.

    A save cut off anywhere (a crash, a second Ctrl-C) leaves the state before it whole. Reading
    only: the run's own resume (:func:`load_resume`) puts ``state.old`` back, so that a reader
    (``score --paused``) never renames what a training is writing.
    """
    sd, old = Path(run_dir) / "state", Path(run_dir) / "state.old"
    return old if not sd.exists() and old.exists() else sd


def clear_state(run_dir: str | Path) -> None:
    """Remove a run's resume state, with what a cut-off save left beside it."""
    for name in ("state.old", "state.new", "state"):  # "state" last: a state.old is never left alone
        shutil.rmtree(Path(run_dir) / name, ignore_errors=True)


def save_resume(run_dir: str | Path, run: RunState, rngs: list[dict[str, Any]]) -> None:
    """Write ``run``'s resume state to ``run_dir/state`` as a whole (``rngs``: every rank's RNG state, rank 0
    first): into ``state.new``, which then replaces ``state``; a save cut off anywhere leaves the last whole one."""
    run_dir = Path(run_dir)
    sd = run_dir / "state.new"
    shutil.rmtree(sd, ignore_errors=True)  # what a cut-off save left
    save_model(sd / "G", run.G, step=run.step)
    save_model(sd / "D", run.D, step=run.step)
    if run.G_ema is not None:
        save_model(sd / "G_ema", run.G_ema, step=run.step)
    adapter = {k: v.cpu() for k, v in run.adapter.state_dict().items()} if run.adapter else {}
    # "scaler": fp16's gradient scaler (a dict of numbers), so a resume goes on with its scale, not 65536 again
    scaler = run.scaler.state_dict() if run.scaler is not None else {}
    save_state(sd / "state.pt", {
        "step": run.step, "epoch": run.epoch, "batch": run.batch,
        "opt_g": run.opt_g.state_dict(), "opt_d": run.opt_d.state_dict(),
        "rng": rngs[0], "rng_ranks": rngs[1:], "world": run.dist.world, "adapter": adapter, "scaler": scaler,
    })
    # "autocast": the precision the run computes in (its BatchNorm statistics of the average too), "" for fp32;
    # "training": the processes that trained it so far, with their time and device (RunState.training_record)
    atomic_write_text(sd / "progress.json", json.dumps(
        {"step": run.step, "epoch": run.epoch, "batch": run.batch, "config": run.cfg.to_dict(),
         "autocast": str(run.amp_dtype).removeprefix("torch.") if run.amp_dtype is not None else "",
         "training": run.training_record()}, indent=2, default=_jsonable))
    # the history first: one longer than the state it goes with is cut back to it on resume (trim_history)
    atomic_write_text(run_dir / "history.json", json.dumps(run.history))
    current, old = run_dir / "state", run_dir / "state.old"
    if current.exists():
        if old.exists():  # what an earlier save could not remove (raises if it still cannot: nothing lost)
            shutil.rmtree(old)
        os.replace(current, old)
    os.replace(sd, current)
    shutil.rmtree(old, ignore_errors=True)


def resumed_segments(progress: dict[str, Any], step: int, world: int = 1) -> list[dict[str, Any]]:
    """The segments of a saved state's training record (:meth:`RunState.training_record`); a state saved
    before the record was kept gives its steps so far as one segment of unrecorded time and device."""
    rec = progress.get("training")
    if isinstance(rec, dict) and isinstance(rec.get("segments"), list):
        return [dict(s) for s in rec["segments"]]
    return [{"steps": [0, step], "seconds": None, "device": None, "world_size": world}] if step else []


def _progress(path: Path) -> dict[str, Any]:
    """A resume state's ``progress.json``, or a :class:`CheckpointError` saying what to do when it is damaged."""
    try:
        prog = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing beside its state.pt: the resume state is damaged. Delete the run "
                              "folder's state/ to start the run afresh (or start afresh: RETRAIN=True in a notebook, "
                              "--retrain / --restart on the command line)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        prog = e
    if not isinstance(prog, dict) or not isinstance(prog.get("config", {}), dict):
        why = (f"({prog})" if isinstance(prog, Exception) else f"(a JSON {type(prog).__name__}, not an object)"
               if not isinstance(prog, dict) else "(its 'config' is not an object)")
        raise CheckpointError(f"{path} is not a resume state's progress {why}: the resume state is damaged. Delete "
                              "the run folder's state/ to start the run afresh (or start afresh: RETRAIN=True in a "
                              "notebook, --retrain / --restart on the command line)")
    return prog


# how an optimizer computes, not what it learned: the resuming run's own choice (fused Adam on a GPU's fast path)
_IMPLEMENTATION = ("fused", "foreach", "capturable", "differentiable")


def load_optimizer(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``opt.load_state_dict(state)``, keeping how ``opt`` was built to compute and its parameters' layout.

    ``load_state_dict`` takes every setting of the saved param groups, ``fused`` included, so a state saved by
    a run without fused Adam (a CPU, ``fast="off"``) turned a GPU run's fused Adam off, and under fp16 the
    gradient scaler then failed on it. The moments keep the strides they were saved with, so a run resumed with
    the other ``channels_last`` setting paired channels-last parameters with contiguous moments, which CUDA's
    fused Adam refuses: each moment takes its parameter's layout again (same values).
    """
    built = [{k: g[k] for k in _IMPLEMENTATION if k in g} for g in opt.param_groups]
    opt.load_state_dict(state)
    for group, own in zip(opt.param_groups, built):
        group.update(own)
        # torch placed each step count by the saved group's kind: fused or capturable Adam keeps it on the
        # parameter's device (float32), the others on the CPU
        on_device = bool(own.get("fused") or own.get("capturable"))
        for p in group["params"]:
            st = opt.state.get(p, {})
            for k, v in st.items():
                if not torch.is_tensor(v):
                    continue
                if k == "step":
                    st[k] = v.to(device=p.device if on_device else "cpu", dtype=torch.float32)
                elif v.shape == p.shape and v.stride() != p.stride():
                    st[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


def load_resume(run_dir: str | Path, run: RunState) -> bool:
    """Restore ``run`` from ``run_dir/state``; False when there is nothing to resume.

    Refuses (ValueError, saying what to do) a run of other settings or of another number of processes.
    """
    run_dir = Path(run_dir)
    sd = state_dir(run_dir)
    if sd.name == "state.old":  # a save cut off between its renames: its older state is the run's again
        try:
            os.replace(sd, run_dir / "state")
        except FileNotFoundError:  # another rank of a data-parallel run put it back first
            pass
        sd = run_dir / "state"
    if not (sd / "state.pt").exists():
        return False
    prog = _progress(sd / "progress.json")
    if resume_key(prog.get("config", {})) != resume_key(run.cfg):
        raise ValueError(f"{run_dir} holds a run with other settings; resume it with the same config, "
                         "or start afresh (RETRAIN=True in a notebook, --retrain / --restart on the command "
                         "line) or use another run folder")
    st = load_state(sd / "state.pt")
    saved_world = int(st.get("world", 1))
    if saved_world != run.dist.world:
        raise ValueError(f"{run_dir} was saved by a run of {saved_world} process(es), this one has "
                         f"{run.dist.world}: resume with the same number of processes (an exact resume "
                         "needs every rank's noise stream), or start afresh in another folder")
    load_into(run.G, sd / "G")
    load_into(run.D, sd / "D")
    if run.G_ema is not None:
        load_into(run.G_ema, sd / "G_ema")
        run.forget_model()
    load_optimizer(run.opt_g, st["opt_g"])
    load_optimizer(run.opt_d, st["opt_d"])
    if run.adapter is not None:
        run.adapter.load_state_dict(st["adapter"])
    if run.scaler is not None and st.get("scaler"):  # a state saved without it: the scaler starts afresh
        run.scaler.load_state_dict(st["scaler"])
    run.set_rng_state(st["rng"] if run.dist.rank == 0 else st["rng_ranks"][run.dist.rank - 1], int(st["step"]))
    run.step, run.epoch, run.batch = int(st["step"]), int(st["epoch"]), int(st["batch"])
    run.segments = resumed_segments(prog, run.step, saved_world)
    hist = run_dir / "history.json"
    run.history = json.loads(hist.read_text()) if hist.exists() else {}
    run.trim_history()
    return True
