"""What one training run carries between steps: models, optimizers, noise, counters, history.

:class:`RunState` is the state; the step functions of :mod:`gankd_utils.recipes`
act on it, and the loop of :mod:`gankd_utils.train` drives them. Its resume
state goes to disk through :func:`gankd_utils.checkpoint.save_resume`.

The fast path (``TrainConfig.fast``: on by default with CUDA) changes how a step
runs, not what it computes: bf16 autocast (fp16 with a gradient scaler where the
GPU has no bf16), TF32 matrix products, fused Adam, noise and DiffAugment draws
from a generator on the device, the data set held on the device, and logged
values kept on the device until every ``log_every`` steps, so no step waits for
the host. On the CPU (the default there) every draw comes from a CPU generator
and a resumed run is bit-identical to an uninterrupted one; on CUDA a resumed run
continues the same data order and the same noise streams, but bitwise equality
is not promised (cuDNN and autocast choose kernels freely). A run that moves to
another kind of machine (or switches the fast path) resumes too: a CPU noise state
keeps its CPU generator, and a GPU one that cannot be restored where the run now is
is reseeded from the seed and the step, which the run says (:meth:`RunState.set_rng_state`).

Two more switches, off by default until ``benchmarks/train_speed.py`` shows they pay
on a given GPU: ``TrainConfig.compile = "on"`` runs G's and D's forward passes
through ``torch.compile`` (the step functions call :attr:`RunState.g` and
:attr:`RunState.d`; if compiling fails the run warns once and goes on eagerly;
a spectrally normalised D, as in chapters 04 and 05, always runs eagerly: its
power iteration updates buffers in place, which a compiled backward cannot follow),
and ``channels_last = True`` keeps G, D and a teacher in channels-last memory
format, on any path: on 2 CPU cores it makes a CIFAR-10 training step 1.3-1.6x as
fast in fp32 (the laptop profiles switch it on for CIFAR-10), while the small MNIST
DCGANs gain nothing. Neither changes what a step computes, only how its sums are
rounded: a run may resume with either switched, and is then no longer bit-identical
to one that was not.
"""
from __future__ import annotations

import contextlib
import copy
import sys
import time
import warnings
from typing import Any

import torch
import torch.nn as nn
from torch._functorch import config as functorch_config

from . import losses, repro
from .augment import diff_augment
from .config import TrainConfig
from .data import ImageSet
from .dist import Dist
from .models import standing_stats
from .models.layers import dcgan_init, spectral_norm_modules

STANDING_BATCHES = 8
"""Training batches of fixed inputs over which a weight average's BatchNorm statistics are re-estimated
(:meth:`RunState.model`): 1,024 images for the CIFAR-10 models at batch 128."""


def standing_model(average: nn.Module, cfg: TrainConfig, device: torch.device | str = "cpu",
                   precision: contextlib.AbstractContextManager | None = None) -> nn.Module:
    """A copy of the weight average of a run of ``cfg``, its BatchNorm statistics re-estimated on its own
    activations (:func:`models.standing_stats`), in eval mode: the model such a run samples and saves.

    The average's running statistics are the live G's (:meth:`RunState.update_ema` copies them),
    which do not fit its weights. The inputs are fixed, ``STANDING_BATCHES`` batches of noise and
    cycled classes from the run's seed (not its noise stream, which this leaves untouched), so two
    calls on the same weights give the same model. ``precision``: the autocast to run in (None: fp32).
    """
    G = copy.deepcopy(average)
    z, y = repro.latents(STANDING_BATCHES * cfg.batch_size, G.z_dim, getattr(G, "n_classes", 0), cfg.seed,
                         "standing", device=device)
    with precision or contextlib.nullcontext():
        return standing_stats(G, z, y, cfg.batch_size)


def history_upto(history: dict[str, list[float]], step: int) -> dict[str, list[float]]:
    """A run's logged history up to ``step``: the history is saved just before the resume state it goes with
    is swapped in, so a save cut off between the two leaves it ahead of its checkpoint."""
    if "step" not in history:
        return history
    keep = sum(1 for s in history["step"] if s <= step)
    return {k: v[:keep] for k, v in history.items()}


class FeatureAdapter(nn.Module):
    """A learned 1x1 conv from the student's feature width to the teacher's (trained with G)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.hparams = {"c_in": c_in, "c_out": c_out}
        self.proj = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.proj(f)


def noise_kind(rng: dict[str, Any]) -> str:
    """The device type ("cpu" or "cuda") of the noise generator whose state ``rng`` (:meth:`RunState.rng_state`)
    holds: as recorded, else (a state saved before the kind was recorded) told by its size, a CPU generator's
    state (Mersenne Twister) being thousands of bytes and a GPU's (Philox: a seed and an offset) 16."""
    kind = rng.get("noise_kind")
    if isinstance(kind, str) and kind:
        return kind
    return "cpu" if rng["noise"].numel() == _CPU_STATE_BYTES else "cuda"


_CPU_STATE_BYTES = torch.Generator().get_state().numel()


def fast_enabled(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether ``cfg.fast`` ("auto" | "on" | "off") turns the fast path on for ``device``."""
    if cfg.fast not in ("auto", "on", "off"):
        raise ValueError(f"fast must be 'auto', 'on' or 'off', got {cfg.fast!r}")
    return cfg.fast == "on" or (cfg.fast == "auto" and device.type == "cuda")


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a run of ``cfg`` on ``device``: None (fp32) off the fast path; on it bf16, or
    fp16 on a CUDA device without bf16 (with a gradient scaler, :class:`RunState`)."""
    if not fast_enabled(cfg, device):
        return None
    if device.type == "cuda" and not cuda_bf16(device):
        return torch.float16
    return torch.bfloat16


def cuda_bf16(device: torch.device) -> bool:
    """Whether the CUDA ``device`` computes in bf16 natively (compute capability 8.0 on: A100, H100...).

    Not ``torch.cuda.is_bf16_supported()``: by default it also says yes on older GPUs (T4, V100), which only
    emulate bf16 (slowly, and some kernels not at all), and it asks about the current device, not this one.
    """
    if torch.version.hip:  # ROCm: its own answer, for this device
        with torch.cuda.device(device):
            return torch.cuda.is_bf16_supported()
    return torch.cuda.get_device_capability(device)[0] >= 8


def autocast_in(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``'s kind (a no-op for None: fp32)."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def tf32(on: bool):
    """TF32 matmuls and convolutions on CUDA inside the block when ``on``; the earlier settings after it."""
    if not on:
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _backward_compiled_now() -> contextlib.AbstractContextManager:
    """Compile a graph's backward with its forward, where torch can (else at the first backward, by default):
    a backward that fails to compile then fails inside :class:`Compiled`'s call, which falls back to eager,
    not in ``loss.backward()``, where nothing catches it."""
    if hasattr(functorch_config, "force_non_lazy_backward_lowering"):  # not in every torch release
        return functorch_config.patch(force_non_lazy_backward_lowering=True)
    return contextlib.nullcontext()


class Compiled:
    """``module``'s forward through ``torch.compile``; eager from the first call whose compiling fails.

    A call that fails eagerly too raises its own error (a real bug is never hidden).
    """

    def __init__(self, module: nn.Module, name: str):
        self.module, self.name = module, name
        self.compiled = torch.compile(module)
        self.failed: str | None = None

    def __call__(self, *args, **kwargs):
        if self.failed is None:
            try:
                with _backward_compiled_now():
                    return self.compiled(*args, **kwargs)
            except Exception as e:  # a graph-capture or backend failure: the eager module computes the same
                out = self.module(*args, **kwargs)  # a wrong call raises its own error here
                self.failed = f"{type(e).__name__}: {e}"
                warnings.warn(f"torch.compile of {self.name} failed ({self.failed[:300]}); it runs eagerly from "
                              "now on (set compile='off' to skip compiling)", RuntimeWarning, stacklevel=2)
                return out
        return self.module(*args, **kwargs)


def compile_enabled(cfg: TrainConfig) -> bool:
    """Whether ``cfg.compile`` ("on" | "off") asks for torch.compile."""
    if cfg.compile not in ("on", "off"):
        raise ValueError(f"compile must be 'on' or 'off', got {cfg.compile!r}")
    return cfg.compile == "on"


class RunState:
    """G, D (and EMA of G, a feature adapter), their optimizers, the noise stream, counters and history.

    ``teacher``: a frozen generator for online KD; ``real``: real images for
    black-box KD's real branch; ``dist``: the data-parallel context.
    """

    def __init__(self, G: nn.Module, D: nn.Module, cfg: TrainConfig, device: torch.device,
                 teacher: nn.Module | None = None, real: ImageSet | None = None, dist: Dist | None = None,
                 adapter: bool = False):
        self.G, self.D, self.cfg, self.device, self.teacher = G, D, cfg, device, teacher
        self.dist = dist or Dist()
        self.cond = bool(getattr(G, "n_classes", 0))
        self.d_loss_fn, self.g_loss_fn = losses.adversarial(cfg.loss)
        self.fast = fast_enabled(cfg, device)
        if cfg.channels_last:
            for m in (G, D, teacher):
                if m is not None:
                    m.to(memory_format=torch.channels_last)
        self.adapter = None
        if adapter and teacher is not None and G.feature_channels != teacher.feature_channels:
            self.adapter = dcgan_init(FeatureAdapter(G.feature_channels, teacher.feature_channels),
                                      cfg.seed + 1).to(device)
        g_params = list(G.parameters()) + (list(self.adapter.parameters()) if self.adapter else [])
        opt_kw = {"fused": True} if self.fast and device.type == "cuda" else {}
        self.opt_g = torch.optim.Adam(g_params, lr=cfg.lr_g, betas=tuple(cfg.betas), **opt_kw)
        self.opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=tuple(cfg.betas), **opt_kw)
        # rank 0 draws the noise a single-process run draws; other ranks their own stream
        self._purpose = "train" if self.dist.rank == 0 else f"train:rank{self.dist.rank}"
        noise_device = device if self.fast and device.type == "cuda" else torch.device("cpu")
        self.noise = torch.Generator(device=noise_device)
        self.noise.manual_seed(repro.purpose_seed(cfg.seed, self._purpose))
        # what draws from the global RNG (dropout in a critic) starts from the seed too, not from the process's
        # random initial seed, so that two fresh runs of one seed agree; a resume restores it (set_rng_state)
        torch.manual_seed(repro.purpose_seed(cfg.seed, f"global:rank{self.dist.rank}"))
        self.amp_dtype = amp_dtype(cfg, device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        if self.fast:
            if device.type != "cuda":
                lacks = repro.cpu_bf16() is False  # a CPU that emulates bf16 is told so: it costs several times
                warnings.warn("fast='on' on the CPU runs bf16 autocast, which pays only on a CPU with bf16 "
                              + ("instructions, and this one lists none (avx512_bf16, amx_bf16 or bf16 in "
                                 "/proc/cpuinfo): it emulates them, several times slower than fp32 (4-25x on one "
                                 "2-core machine; a CIFAR-10 student's step 10x on a 2-core AMD EPYC without "
                                 "them). Train with fast='auto' or 'off' (--fast off) here" if lacks else
                                 "instructions: on one 2-core machine it was 4-25x slower than fp32, on a 2-core "
                                 "AMD EPYC with AVX512-BF16 1.3-2.2x faster, on a 2-core Intel Xeon with AMX 2.2x; "
                                 "fast='auto' keeps fp32 off CUDA, and benchmarks/train_speed.py --device cpu "
                                 "shows both on yours"), stacklevel=2)
        self.step, self.epoch, self.batch = 0, 0, 0
        self.history: dict[str, list[float]] = {}
        # the processes that trained the run before this one (a resume reads them) and this one's
        self.segments: list[dict[str, Any]] = []
        self._segment: dict[str, Any] | None = None  # this process's device and world size, from begin_segment
        self._from, self._began = 0, 0.0  # the step and clock this process began at
        self._pending: list[tuple[float, float, list[str], torch.Tensor]] = []
        self.real = real  # black-box KD: optional real images for the real-data GAN branch
        if real is not None and self.fast and device.type == "cuda":
            self.real = ImageSet(real.images.to(device), real.labels.to(device), real.classes, real.name)
        # the forward passes the step functions call: compiled, or the modules themselves. A module with
        # spectral norm runs eagerly: its power iteration updates buffers in place during the forward, and a
        # compiled graph saves those buffers for a backward that runs after the next forward has changed them
        self.g = Compiled(G, "G") if compile_enabled(cfg) and not spectral_norm_modules(G) else G
        self.d = Compiled(D, "D") if compile_enabled(cfg) and not spectral_norm_modules(D) else D
        self.G_ema = None
        self._standing: nn.Module | None = None  # model() of the average as it is (reset when it changes)
        if cfg.ema_decay:
            self.G_ema = copy.deepcopy(G).eval()
            for p in self.G_ema.parameters():
                p.requires_grad_(False)

    # ------------------------------------------------------------- per step
    def precision(self) -> contextlib.AbstractContextManager:
        """The run's matmul precision while it trains: TF32 on a GPU's fast path, the process's settings restored
        after, so that what runs later in the process (scoring, timing, an export) computes as it would have
        without the training."""
        return tf32(self.fast and self.device.type == "cuda")

    def autocast(self):
        """The forward passes' precision context (a no-op off the fast path)."""
        return autocast_in(self.amp_dtype, self.device)

    def backward_step(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        """zero_grad, backward, average gradients over ranks, step (through the scaler with fp16)."""
        opt.zero_grad(set_to_none=True)
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        if self.dist.enabled:
            # before the scaler looks for inf/NaN: every rank then sees the same averaged gradients and skips
            # (or takes) the step alike, where each rank's own check would let a rank that found none step on
            # the inf another rank's overflow brought into the average
            self.dist.sync_grads(p for group in opt.param_groups for p in group["params"])
        if self.scaler is not None:
            self.scaler.step(opt)  # unscales first, and skips the step on inf/NaN
            self.scaler.update()
        else:
            opt.step()

    def aug(self, x: torch.Tensor) -> torch.Tensor:
        """DiffAugment of D's input (identity when ``cfg.diffaug`` is empty)."""
        return diff_augment(x, self.cfg.diffaug, generator=self.noise) if self.cfg.diffaug else x

    def randn(self, n: int, dim: int) -> torch.Tensor:
        """Standard-normal (n, dim) from the run's noise stream, on the training device."""
        return torch.randn(n, dim, generator=self.noise, device=self.noise.device).to(self.device)

    def randint(self, high: int, n: int) -> torch.Tensor:
        return torch.randint(0, high, (n,), generator=self.noise, device=self.noise.device).to(self.device)

    def sample_zy(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Noise and (for a conditional G) uniform class ids for ``n`` fake images."""
        z = self.randn(n, self.G.z_dim)
        return z, (self.randint(self.G.n_classes, n) if self.cond else None)

    def forget_model(self) -> None:
        """The average changed outside a step (a resume loaded it): :meth:`model` makes its copy afresh."""
        self._standing = None

    def update_ema(self) -> None:
        if self.G_ema is None:
            return
        self.forget_model()
        with torch.no_grad():
            ema, live = list(self.G_ema.parameters()), list(self.G.parameters())
            torch._foreach_lerp_(ema, live, 1.0 - self.cfg.ema_decay)
            for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
                be.copy_(b)

    def model(self) -> nn.Module:
        """The generator as the run samples and saves it: the live G; with EMA, a copy of the weight average
        with BatchNorm statistics of its own (:func:`standing_model`), under the run's autocast.

        The copy is made once per update of the average: the calls of one step (the last step's snapshot,
        sample sheet and saved G) share it, so read it, never change it.
        """
        if self.G_ema is None:
            return self.G
        if self._standing is None:  # reset by update_ema and a resume (forget_model)
            self._standing = standing_model(self.G_ema, self.cfg, self.device, self.autocast())
        return self._standing

    def pixel_weight(self) -> float:
        """w_pixel for the current epoch: decayed per epoch (TinyGAN), never per step."""
        return max(0.0, self.cfg.w_pixel - self.cfg.pixel_decay * self.epoch)

    # ------------------------------------------------------------- logging
    def log(self, out: dict[str, torch.Tensor]) -> None:
        """Keep one step's logged values on the device (read in :meth:`flush`, not now: no host sync)."""
        vals = torch.stack([v.detach().float().reshape(()).to(self.device) for v in out.values()])
        self._pending.append((float(self.step), float(self.epoch), list(out), vals))

    def flush(self) -> list[dict[str, float]]:
        """Copy the pending steps' values to the host (one copy), append them to the history, return them."""
        if not self._pending:
            return []
        stacked = torch.cat([v for *_, v in self._pending])
        if self.dist.enabled:
            self.dist.mean(stacked)
        flat, rows, i = stacked.tolist(), [], 0
        for step, epoch, keys, vals in self._pending:
            row = {"step": step, "epoch": epoch, **dict(zip(keys, flat[i:i + len(keys)]))}
            i += len(keys)
            n = len(self.history.get("step", []))
            for k in row.keys() - self.history.keys():  # a key first seen now (e.g. g_loss with n_critic > 1)
                self.history[k] = [float("nan")] * n
            for k, col in self.history.items():
                col.append(row.get(k, float("nan")))
            rows.append(row)
        self._pending = []
        return rows

    # ------------------------------------------------------------- time
    def begin_segment(self, images: int | None = None) -> None:
        """Start timing this process's share of the run, from the current step (after a resume: the step it
        resumed at). ``images``: how many items the data it trains on held (before a ``n_train`` subset), so
        that a run trained on a data root holding part of a data set says so wherever it is shipped."""
        self._segment = {"device": repro.describe_device(self.device), "world_size": self.dist.world,
                         **({"images": int(images)} if images is not None else {})}
        self._from, self._began = self.step, time.perf_counter()

    def training_record(self) -> dict[str, Any]:
        """How the run came to be trained: ``{"seconds", "segments"}``, one segment per process that trained
        it (``steps`` [from, to], its wall-clock ``seconds`` of training, the ``device``, ``world_size`` and the
        ``images`` its data held),
        this one up to the current step. ``seconds`` sums them; None where a segment's time was not recorded
        (a state saved before the record was kept resumes with its steps so far as one unrecorded segment).
        """
        segs = [dict(s) for s in self.segments]
        if self._segment is not None and self.step > self._from:
            segs.append({"steps": [self._from, self.step], "seconds": round(time.perf_counter() - self._began, 3),
                         **self._segment})
        times = [s.get("seconds") for s in segs]
        total = None if any(t is None for t in times) else round(sum(times), 3)
        return {"seconds": total, "segments": segs}

    def seconds_so_far(self) -> float:
        """Seconds of training since the run began, over every process whose time was recorded."""
        done = sum(s.get("seconds") or 0.0 for s in self.segments)
        return done + (time.perf_counter() - self._began if self._segment is not None else 0.0)

    # ------------------------------------------------------------- resume
    def rng_state(self) -> dict[str, Any]:
        """The RNG states a resume restores; ``noise_kind``: the device type of the noise generator ("cpu" or
        "cuda"), whose states do not fit each other's generators."""
        s = {"noise": self.noise.get_state(), "noise_kind": self.noise.device.type, "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            s["cuda"] = torch.cuda.get_rng_state(self.device)
        return s

    def set_rng_state(self, s: dict[str, Any], step: int | None = None) -> None:
        """Restore :meth:`rng_state` ``s``, saved at ``step`` (the step the run resumes at).

        A run may move between machines (begun on a CPU, continued on a GPU, or the other way round), and
        the fast path keeps the noise generator on the GPU: a state of the other kind than this run's
        generator continues where it can. A CPU state (a run begun on a CPU, or off the fast path) keeps
        drawing from a CPU generator, so the noise stream continues exactly; a CUDA state keeps a CUDA
        generator on a CUDA training device. Elsewhere (a GPU run continued on a CPU) no generator can
        take the state: a new one of this run's kind is seeded from (seed, step), so the resumed run is
        still deterministic, and one line says that the noise changes from this step on (the data order
        and the weights continue exactly).
        """
        kind = noise_kind(s)
        if kind != self.noise.device.type:
            if kind == "cpu" or kind == self.device.type:
                self.noise = torch.Generator(device="cpu" if kind == "cpu" else self.device)
            else:
                at = "?" if step is None else step
                self.noise = torch.Generator(device=self.noise.device)
                self.noise.manual_seed(repro.purpose_seed(self.cfg.seed, f"{self._purpose}:from{at}"))
                if self.dist.is_main:
                    print(f"{self.cfg.name}: the noise stream was saved on a {kind} generator, which this "
                          f"{self.device.type} run cannot continue: the noise changes from step {at} on "
                          "(reseeded from the seed and the step; the data order and the weights continue "
                          "exactly)", file=sys.stderr, flush=True)
                kind = ""  # nothing to restore
        if kind:
            self.noise.set_state(s["noise"])
        torch.set_rng_state(s["torch"])
        if "cuda" in s and self.device.type == "cuda":
            torch.cuda.set_rng_state(s["cuda"], self.device)

    def trim_history(self) -> None:
        """Drop history logged after the step being resumed (:func:`history_upto`)."""
        self.history = history_upto(self.history, self.step)
