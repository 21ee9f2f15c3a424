"""Training loops: a GAN from scratch (``train_gan``) or distilled from a teacher (``train_distill``).

One step function per recipe (the habit of BigGAN-PyTorch's ``train_fns.py``):
each takes a batch and returns a dict of floats. The loop around it owns the
progress bar, the history dict, the fixed-z sample sheet of every epoch, and
checkpoints every ``ckpt_every`` steps from which a run resumes exactly: same
batches, same noise, same weights as if it had never stopped.

Run folder layout::

    RUN/config.json          settings of the run
    RUN/G.safetensors/.json  final generator (+ D.*)
    RUN/samples/epoch_000.png  fixed-z sample sheets
    RUN/state/               resume state: G, D, optimizers, RNG, step counters
    RUN/history.json         per-step losses
    RUN/metrics.jsonl        one JSON line every ``log_every`` steps (losses, step, epoch, seconds)

Data parallel (``dist``, see :mod:`gankd_utils.dist`): every rank runs this loop
on its own slice of each batch with its own noise stream; gradients are averaged
before every optimizer step, logged values are averaged over ranks, and only
rank 0 writes (checkpoints hold every rank's RNG state, so a resumed run with
the same number of processes continues exactly).
"""
from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from . import checkpoint, losses, repro
from .dist import Dist
from .config import TrainConfig, save_json
from .augment import diff_augment
from .data import Batches, ImageSet, to_float
from .io import atomic_write_text


def dcgan_init(model: nn.Module, seed: int) -> nn.Module:
    """DCGAN initialisation (conv weights N(0, 0.02), BN scale N(1, 0.02), bias 0), from a CPU seed.

    For the DCGAN-family models; spectral-norm and conditional-BN models
    (``models.cgan``, ``models.tinygan``) initialise themselves
    (``models.layers.init_weights``), and this function refuses them.
    """
    from torch.nn.utils import parametrize

    if any(parametrize.is_parametrized(m) for m in model.modules()):
        raise TypeError(f"{type(model).__name__} uses spectral norm: initialise it with models.layers.init_weights")
    g = repro.generator(seed, "init")
    with torch.no_grad():
        for m in model.modules():
            if getattr(m, "weight", None) is None:
                continue
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.02)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.copy_(1.0 + torch.randn(m.weight.shape, generator=g) * 0.02)
                m.bias.zero_()
    return model


class FeatureAdapter(nn.Module):
    """A learned 1x1 conv from the student's feature width to the teacher's (trained with G)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.hparams = {"c_in": c_in, "c_out": c_out}
        self.proj = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.proj(f)


class _Run:
    """Everything one training run carries between steps."""

    def __init__(self, G, D, cfg: TrainConfig, device, teacher=None, real: ImageSet | None = None,
                 dist: Dist | None = None):
        self.G, self.D, self.cfg, self.device, self.teacher = G, D, cfg, device, teacher
        self.dist = dist or Dist()
        self.cond = bool(getattr(G, "n_classes", 0))
        self.d_loss_fn, self.g_loss_fn = losses.adversarial(cfg.loss)
        self.adapter = None
        if cfg.kd == "feature":
            if teacher is None:
                raise ValueError("kd='feature' needs a teacher")
            if G.feature_channels != teacher.feature_channels:
                self.adapter = dcgan_init(FeatureAdapter(G.feature_channels, teacher.feature_channels),
                                          cfg.seed + 1).to(device)
        elif cfg.kd == "pixel":
            if teacher is None:
                raise ValueError("kd='pixel' needs a teacher")
        elif cfg.kd not in ("none", "blackbox"):
            raise ValueError(f"unknown kd {cfg.kd!r}: choose 'none', 'feature', 'pixel' or 'blackbox'")
        g_params = list(G.parameters()) + (list(self.adapter.parameters()) if self.adapter else [])
        self.opt_g = torch.optim.Adam(g_params, lr=cfg.lr_g, betas=tuple(cfg.betas))
        self.opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=tuple(cfg.betas))
        # rank 0 draws the noise a single-process run draws; other ranks their own stream
        self.noise = repro.generator(cfg.seed, "train" if self.dist.rank == 0 else f"train:rank{self.dist.rank}")
        self.step, self.epoch, self.batch = 0, 0, 0
        self.history: dict[str, list[float]] = {}
        self.real = real  # black-box KD: optional real images for the real-data GAN branch
        self.G_ema = None
        if cfg.ema_decay:
            self.G_ema = copy.deepcopy(G).eval()
            for p in self.G_ema.parameters():
                p.requires_grad_(False)

    def opt_step(self, opt: torch.optim.Optimizer) -> None:
        """``opt.step()`` after averaging its gradients over ranks (data parallel)."""
        if self.dist.enabled:
            self.dist.sync_grads(p for group in opt.param_groups for p in group["params"])
        opt.step()

    def aug(self, x: torch.Tensor) -> torch.Tensor:
        """DiffAugment of D's input (identity when ``cfg.diffaug`` is empty)."""
        return diff_augment(x, self.cfg.diffaug, generator=self.noise) if self.cfg.diffaug else x

    def update_ema(self) -> None:
        if self.G_ema is None:
            return
        with torch.no_grad():
            for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
                pe.lerp_(p, 1.0 - self.cfg.ema_decay)
            for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
                be.copy_(b)

    @property
    def sampler(self) -> nn.Module:
        """The generator to sample and save: the weight average when EMA is on."""
        return self.G_ema if self.G_ema is not None else self.G

    def pixel_weight(self) -> float:
        """w_pixel for the current epoch: decayed per epoch (TinyGAN), never per step."""
        return max(0.0, self.cfg.w_pixel - self.cfg.pixel_decay * self.epoch)

    # --------------------------------------------------------------- one step
    def sample_zy(self, n: int):
        z = torch.randn(n, self.G.z_dim, generator=self.noise).to(self.device)
        y = torch.randint(0, self.G.n_classes, (n,), generator=self.noise).to(self.device) if self.cond else None
        return z, y

    def train_step(self, x: torch.Tensor, y: torch.Tensor, update_g: bool) -> dict[str, float]:
        """One D update and, when ``update_g``, one G update on a real batch ``x`` (N, C, H, W) in [-1, 1]."""
        G, D, cfg = self.G, self.D, self.cfg
        y_real = y if self.cond else None
        z, y_fake = self.sample_zy(len(x))
        with torch.no_grad():
            fake = G(z, y_fake)
        real_logits, fake_logits = D(self.aug(x), y_real), D(self.aug(fake), y_fake)
        d_loss = self.d_loss_fn(real_logits, fake_logits)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_step(self.opt_d)
        out = {"d_loss": d_loss, "d_real": real_logits.mean(), "d_fake": fake_logits.mean()}
        if update_g:
            fake, feat = G(z, y_fake, return_features=True)
            g_adv = self.g_loss_fn(D(self.aug(fake), y_fake))
            g_loss = cfg.w_adv * g_adv
            out["g_adv"] = g_adv
            if cfg.kd != "none":
                with torch.no_grad():
                    t_img, t_feat = self.teacher(z, y_fake, return_features=True)
                if cfg.kd == "pixel":
                    kd = losses.pixel_l1(fake, t_img)
                    g_loss = g_loss + cfg.w_pixel * kd
                    out["kd_pixel"] = kd
                else:
                    kd = losses.feature_mse(feat, t_feat, self.adapter)
                    g_loss = g_loss + cfg.w_feat * kd
                    out["kd_feat"] = kd
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            self.opt_step(self.opt_g)
            self.update_ema()
            out["g_loss"] = g_loss
        return _floats(out, self.dist)

    def blackbox_step(self, x_t: torch.Tensor, y: torch.Tensor, z: torch.Tensor, adversarial: bool) -> dict[str, float]:
        """One step of black-box KD from a teacher set (TinyGAN, Chang & Lu 2020, sec. 3).

        ``x_t`` (N, C, H, W) in [-1, 1]: the teacher's images for noise ``z`` (N, z_dim) and
        classes ``y`` (N,). D learns teacher images against student images (plus, with real
        images, a ``w_real`` real-data branch); G learns, every step, D-feature L1 and pixel
        L1 to the teacher's image for the same (z, y), and, when ``adversarial``, the hinge
        adversarial terms.
        """
        G, D, cfg = self.G, self.D, self.cfg
        real = None
        if self.real is not None and cfg.w_real:
            idx = torch.randint(0, len(self.real), (len(x_t),), generator=self.noise)
            real = (to_float(self.real.images[idx]).to(self.device), self.real.labels[idx].to(self.device),
                    torch.randn(len(x_t), G.z_dim, generator=self.noise).to(self.device))
        for p in D.parameters():
            p.requires_grad_(True)
        with torch.no_grad():
            fake = G(z, y)
        t_logits, f_logits = D(self.aug(x_t), y), D(self.aug(fake), y)
        d_loss = self.d_loss_fn(t_logits, f_logits)
        out = {"d_kd": d_loss, "d_teacher": t_logits.mean(), "d_fake": f_logits.mean()}
        if real is not None:
            x_r, y_r, z_r = real
            with torch.no_grad():
                fake_r = G(z_r, y_r)
            d_real = self.d_loss_fn(D(self.aug(x_r), y_r), D(self.aug(fake_r), y_r))
            d_loss = d_loss + cfg.w_real * d_real
            out["d_realbranch"] = d_real
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_step(self.opt_d)
        out["d_loss"] = d_loss

        for p in D.parameters():  # G's step: no gradient into D
            p.requires_grad_(False)
        fake = G(z, y)
        f_logits, f_feats = D(fake, y, return_features=True)
        with torch.no_grad():
            _, t_feats = D(x_t, y, return_features=True)
        kd_dfeat = losses.d_feature_l1(f_feats, t_feats, cfg.dfeat_decay)
        kd_pixel = losses.pixel_l1(fake, x_t)
        w_pix = self.pixel_weight()
        g_loss = cfg.w_dfeat * kd_dfeat + w_pix * kd_pixel
        out.update(kd_dfeat=kd_dfeat, kd_pixel=kd_pixel, w_pixel=torch.tensor(w_pix))
        if adversarial:
            g_adv = self.g_loss_fn(D(self.aug(fake), y) if cfg.diffaug else f_logits)
            g_loss = g_loss + cfg.w_adv * g_adv
            out["g_adv"] = g_adv
            if real is not None:
                x_r, y_r, z_r = real
                g_real = self.g_loss_fn(D(self.aug(G(z_r, y_r)), y_r))
                g_loss = g_loss + cfg.w_real * cfg.w_adv * g_real
                out["g_realbranch"] = g_real
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_step(self.opt_g)
        for p in D.parameters():
            p.requires_grad_(True)
        self.update_ema()
        out["g_loss"] = g_loss
        return _floats(out, self.dist)

    # ----------------------------------------------------------- checkpointing
    def rng_state(self) -> dict[str, torch.Tensor]:
        s = {"noise": self.noise.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            s["cuda"] = torch.cuda.get_rng_state(self.device)
        return s

    def save(self, run_dir: Path) -> None:
        """Write the resume state (collective: every rank calls it, rank 0 writes)."""
        rngs = self.dist.gather(self.rng_state())
        if not self.dist.is_main:
            return
        sd = run_dir / "state"
        checkpoint.save_model(sd / "G", self.G, step=self.step)
        checkpoint.save_model(sd / "D", self.D, step=self.step)
        if self.G_ema is not None:
            checkpoint.save_model(sd / "G_ema", self.G_ema, step=self.step)
        adapter = {k: v.cpu() for k, v in self.adapter.state_dict().items()} if self.adapter else {}
        checkpoint.save_state(sd / "state.pt", {
            "step": self.step, "epoch": self.epoch, "batch": self.batch,
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "rng": rngs[0], "rng_ranks": rngs[1:], "world": self.dist.world, "adapter": adapter,
        })
        atomic_write_text(sd / "progress.json", json.dumps(
            {"step": self.step, "epoch": self.epoch, "batch": self.batch, "config": self.cfg.to_dict()}, indent=2))
        atomic_write_text(run_dir / "history.json", json.dumps(self.history))

    def load(self, run_dir: Path) -> bool:
        sd = run_dir / "state"
        if not (sd / "state.pt").exists():
            return False
        prog = json.loads((sd / "progress.json").read_text())
        if _resumable_settings(prog.get("config", {})) != _resumable_settings(self.cfg.to_dict()):
            raise ValueError(f"{run_dir} holds a run with other settings; resume it with the same config, "
                             "or start afresh (RETRAIN=True in a notebook, --retrain / --restart on the command "
                             "line) or use another run folder")
        checkpoint.load_into(self.G, sd / "G")
        checkpoint.load_into(self.D, sd / "D")
        if self.G_ema is not None:
            checkpoint.load_into(self.G_ema, sd / "G_ema")
        st = checkpoint.load_state(sd / "state.pt")
        saved_world = int(st.get("world", 1))
        if saved_world != self.dist.world:
            raise ValueError(f"{run_dir} was saved by a run of {saved_world} process(es), this one has "
                             f"{self.dist.world}: resume with the same number of processes (an exact resume "
                             "needs every rank's noise stream), or start afresh in another folder")
        if self.dist.rank > 0:
            st["rng"] = st["rng_ranks"][self.dist.rank - 1]
        self.opt_g.load_state_dict(st["opt_g"])
        self.opt_d.load_state_dict(st["opt_d"])
        if self.adapter is not None:
            self.adapter.load_state_dict(st["adapter"])
        self.noise.set_state(st["rng"]["noise"])
        torch.set_rng_state(st["rng"]["torch"])
        if "cuda" in st["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(st["rng"]["cuda"], self.device)
        self.step, self.epoch, self.batch = int(st["step"]), int(st["epoch"]), int(st["batch"])
        hist = run_dir / "history.json"
        self.history = json.loads(hist.read_text()) if hist.exists() else {}
        # drop history logged after the checkpoint (a crash between the two)
        if "step" in self.history:
            keep = sum(1 for s in self.history["step"] if s <= self.step)
            self.history = {k: v[:keep] for k, v in self.history.items()}
        return True

    def log(self, vals: dict[str, float]) -> None:
        row = {"step": float(self.step), "epoch": float(self.epoch), **vals}
        n = len(self.history.get("step", []))
        for k in row.keys() - self.history.keys():  # a key first seen now (e.g. g_loss with n_critic > 1)
            self.history[k] = [float("nan")] * n
        for k, col in self.history.items():
            col.append(row.get(k, float("nan")))


def _floats(out: dict[str, torch.Tensor], dist: Dist | None = None) -> dict[str, float]:
    # one device-to-host copy for all logged values (averaged over ranks when data parallel)
    vals = torch.stack([v.detach().float().reshape(()).to(out["d_loss"].device) for v in out.values()])
    if dist is not None and dist.enabled:
        dist.mean(vals)
    return dict(zip(out.keys(), vals.tolist()))


# settings that say when to pause, save, log or draw samples, not how to train
_BOOKKEEPING = {"max_steps", "ckpt_every", "log_every", "sample_every"}


def _resumable_settings(cfg: dict) -> dict:
    return {k: v for k, v in json.loads(json.dumps(cfg)).items() if k not in _BOOKKEEPING}


def _trim_jsonl(path: Path, step: int) -> None:
    """Drop metrics.jsonl lines logged after the checkpoint being resumed (a crash between the two)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    atomic_write_text(path, "".join(ln + "\n" for ln in keep))


def _fit(G: nn.Module, D: nn.Module, data, cfg: TrainConfig, run_dir: str | Path,
         device: str | torch.device = "auto", teacher: nn.Module | None = None, resume: bool = True,
         progress: bool = True, real: ImageSet | None = None, dist: Dist | None = None) -> dict[str, Any]:
    """The loop shared by every trainer. ``data``: an :class:`ImageSet`, or a batch source with
    ``Batches``' interface (``len()``, ``epoch(e, skip)``, ``batch_size``; e.g. ``teachers.ShardBatches``)."""
    from .viz import save_sample_sheet

    dist = dist or Dist()
    main = dist.is_main
    device = repro.get_device(device)
    run_dir = Path(run_dir)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(data, ImageSet):
        data = data.subset(cfg.n_train, seed=cfg.seed)
        if cfg.kd == "blackbox" and data.z is None:
            raise ValueError(f"black-box KD needs a teacher set with z (a shard export), but {data.name} has none")
        batches = Batches(data, cfg.batch_size, seed=cfg.seed, device=device, rank=dist.rank, world=dist.world)
    else:
        if cfg.n_train is not None:
            raise ValueError("n_train subsets an in-memory ImageSet; a streamed batch source reads every item "
                             "(set n_train to None, or export fewer images)")
        batches = data
    G.to(device).train()
    D.to(device).train()
    dist.broadcast_module(G)
    dist.broadcast_module(D)
    if teacher is not None:
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    run = _Run(G, D, cfg, device, teacher, real, dist)
    if not resume and (run_dir / "state").exists():
        dist.barrier()
        if main:
            shutil.rmtree(run_dir / "state")
            for f in ("history.json", "metrics.jsonl"):
                (run_dir / f).unlink(missing_ok=True)
        dist.barrier()
    resumed = resume and run.load(run_dir)
    jsonl = run_dir / "metrics.jsonl"
    if main:
        if resumed:
            _trim_jsonl(jsonl, run.step)
        else:
            jsonl.unlink(missing_ok=True)
        save_json(cfg, run_dir / "config.json")
    n_fixed = cfg.n_fixed
    fixed_z = repro.noise(n_fixed, G.z_dim, cfg.seed, "fixed", device)
    fixed_y = (repro.class_grid_labels(G.n_classes, max(1, n_fixed // G.n_classes), device)[:n_fixed]
               if run.cond else None)
    if run.cond and G.n_classes > 20:  # many classes (ImageNet): 10 of the trained classes, 10 images each
        present = (torch.unique(data.labels) if isinstance(data, ImageSet)
                   else torch.as_tensor(getattr(getattr(batches, "dataset", None), "classes", range(G.n_classes))))
        ids = present[torch.linspace(0, len(present) - 1, min(10, len(present))).long()]
        fixed_y = ids.repeat_interleave(max(1, n_fixed // len(ids))).to(device)[:n_fixed]
    if run.cond and len(fixed_y) < n_fixed:
        fixed_z = fixed_z[: len(fixed_y)]
    nrow = G.n_classes if run.cond and G.n_classes <= 20 else 10

    def sample_sheet(name: str) -> None:
        if not main:
            return
        sampler = run.sampler
        was = sampler.training
        sampler.eval()
        with torch.no_grad():
            save_sample_sheet(sampler(fixed_z, fixed_y), run_dir / "samples" / name, nrow=nrow)
        sampler.train(was)

    total = cfg.epochs * len(batches)
    limit = min(total, cfg.max_steps) if cfg.max_steps is not None else total
    bar = tqdm(total=limit, initial=min(run.step, limit), desc=cfg.name, disable=not (progress and main), leave=False)
    t0 = time.perf_counter()
    done_early = False
    while run.epoch < cfg.epochs and run.step < limit:
        for i, batch in enumerate(batches.epoch(run.epoch, skip=run.batch), start=run.batch):
            if cfg.kd == "blackbox":
                vals = run.blackbox_step(*batch, adversarial=(i % cfg.n_critic == 0))
            else:
                vals = run.train_step(batch[0], batch[1], update_g=(i % cfg.n_critic == 0))
            run.batch = i + 1
            run.step += 1
            run.log(vals)
            bar.update(1)
            if main and cfg.log_every and run.step % cfg.log_every == 0:
                line = {"step": run.step, "epoch": run.epoch, "seconds": round(time.perf_counter() - t0, 3), **vals}
                with open(jsonl, "a") as f:
                    f.write(json.dumps(line) + "\n")
            if run.step % 20 == 0:
                bar.set_postfix({k: f"{v:.3f}" for k, v in vals.items() if k in ("d_loss", "g_loss")})
            if cfg.sample_every and run.step % cfg.sample_every == 0:
                sample_sheet(f"step_{run.step:07d}.png")
            if run.step % cfg.ckpt_every == 0:
                run.save(run_dir)
            if run.step >= limit:
                done_early = run.batch < len(batches)
                break
        if not done_early:
            sample_sheet(f"epoch_{run.epoch:03d}.png")
            run.epoch += 1
            run.batch = 0
            run.save(run_dir)
    bar.close()
    run.save(run_dir)
    if dist.enabled:  # averaged gradients keep the ranks' weights identical; check before saving rank 0's
        sums = dist.gather([float(p.detach().double().sum()) for p in G.parameters()])
        if any(s != sums[0] for s in sums[1:]):
            raise RuntimeError("the ranks' generators diverged; report this with the launch command used")
    finished = run.step >= total
    meta = {"config": cfg.to_dict(), "step": run.step, "finished": finished, "ema": run.G_ema is not None,
            "world_size": dist.world}
    if run.G_ema is not None:
        G.load_state_dict(run.G_ema.state_dict())  # the average is the model (BigGAN's habit)
    if main:
        checkpoint.save_model(run_dir / "G", G, **meta)
        checkpoint.save_model(run_dir / "D", D, **meta)
    dist.barrier()
    G.eval()
    return {"history": run.history, "run_dir": str(run_dir), "steps": run.step, "resumed": resumed,
            "finished": finished, "seconds": time.perf_counter() - t0, "adapter": run.adapter}


def train_gan(G: nn.Module, D: nn.Module, data: ImageSet, cfg: TrainConfig, run_dir: str | Path,
              device: str | torch.device = "auto", resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Train G and D from scratch on ``data``; returns ``{"history": {...}, "steps": ..., ...}``.

    Resumes from ``run_dir/state`` when a checkpoint of the same settings is there.
    """
    if cfg.kd != "none":
        raise ValueError(f"train_gan trains from scratch; kd={cfg.kd!r} needs train_distill(..., teacher=...)")
    return _fit(G, D, data, cfg, run_dir, device, None, resume, progress)


def train_blackbox(G: nn.Module, D: nn.Module, teacher_set, cfg: TrainConfig, run_dir: str | Path,
                   device: str | torch.device = "auto", real: ImageSet | None = None, resume: bool = True,
                   progress: bool = True, dist: Dist | None = None) -> dict[str, Any]:
    """Black-box KD: train student G from a teacher's exported (z, y, image) set, never calling the teacher.

    ``teacher_set``: an :class:`ImageSet` with ``z`` (``data.load_shards`` of an export), or
    a streamed ``teachers.ShardBatches`` for sets too large for memory.
    ``real``: optional real images of the same classes for the ``w_real`` GAN branch.
    ``dist``: data-parallel context (``dist.setup()``); None for one process.
    Losses and defaults: ``config.TINYGAN``.
    """
    if cfg.kd != "blackbox":
        raise ValueError("train_blackbox needs cfg.kd='blackbox' (see config.TINYGAN)")
    return _fit(G, D, teacher_set, cfg, run_dir, device, None, resume, progress, real, dist)


def train_distill(G: nn.Module, D: nn.Module, teacher: nn.Module, data: ImageSet, cfg: TrainConfig,
                  run_dir: str | Path, device: str | torch.device = "auto", resume: bool = True,
                  progress: bool = True) -> dict[str, Any]:
    """Train student G (with its own D) on ``data`` plus a KD term to a frozen ``teacher``.

    ``cfg.kd='feature'``: G loss = w_adv * adversarial + w_feat * MSE(adapter(f_s), f_t) (IITGN).
    ``cfg.kd='pixel'``: G loss = w_adv * adversarial + w_pixel * L1(G(z, y), T(z, y)) (Columbia).
    Teacher and student see the same (z, y) at every step.
    """
    if cfg.kd not in ("feature", "pixel"):
        raise ValueError("train_distill needs cfg.kd='feature' or 'pixel' (see config.IITGN / config.COLUMBIA); "
                         "for a teacher set use train_blackbox")
    return _fit(G, D, data, cfg, run_dir, device, teacher, resume, progress)


def is_finished(run_dir: str | Path) -> bool:
    """True when ``run_dir`` holds a finished generator (the notebooks then load instead of training)."""
    p = Path(run_dir) / "G.json"
    return p.exists() and bool(json.loads(p.read_text()).get("finished"))
