"""One step function per training recipe (the habit of BigGAN-PyTorch's ``train_fns.py``).

A recipe is ``TrainConfig.kd``; :func:`step_for` maps it to its step once, and
:func:`check` says what the recipe needs before a run starts:

| ``kd``      | step                   | G's loss                                               | needs |
|-------------|------------------------|--------------------------------------------------------|-------|
| ``none``    | :func:`gan_step`       | adversarial                                            | real images |
| ``feature`` | :func:`feature_kd_step`| w_adv adversarial + w_feat MSE(adapter(f_s), f_t) (IITGN) | real images, a teacher (online KD) |
| ``pixel``   | :func:`pixel_kd_step`  | w_adv adversarial + w_pixel L1(G(z, y), T(z, y)) (Columbia) | real images, a teacher (online KD) |
| ``distill`` | :func:`distill_step`   | w_pixel L1(G(z, y), T(z, y)) alone; D is never updated  | a teacher (online KD) |
| ``blackbox``| :func:`blackbox_kd_step` | D-feature L1 + pixel L1 (+ adversarial) (TinyGAN)    | a teacher set (z, y, image) |

Online KD calls a frozen teacher on the student's own (z, y) at every step;
black-box KD (TinyGAN, Chang & Lu 2020) never calls the teacher, only its
exported images. Each step takes a :class:`runstate.RunState`, a batch and
whether G updates this step, and returns its logged values as device tensors.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from . import losses
from .config import TrainConfig
from .data import to_float
from .runstate import RunState

Step = Callable[[RunState, tuple, bool], dict[str, torch.Tensor]]


def _d_step(run: RunState, x: torch.Tensor, y_real, z: torch.Tensor, y_fake) -> dict[str, torch.Tensor]:
    """One D update on real ``x`` against G's images for (z, y_fake)."""
    G, D = run.g, run.d
    with run.autocast():
        with torch.no_grad():
            fake = G(z, y_fake)
        real_logits, fake_logits = D(run.aug(x), y_real), D(run.aug(fake), y_fake)
        d_loss = run.d_loss_fn(real_logits.float(), fake_logits.float())
    run.backward_step(d_loss, run.opt_d)
    return {"d_loss": d_loss, "d_real": real_logits.mean(), "d_fake": fake_logits.mean()}


def _online(run: RunState, batch: tuple, update_g: bool,
            kd_term: Callable[[RunState, torch.Tensor, torch.Tensor, torch.Tensor, object], dict] | None):
    x, y = batch[0], batch[1]
    z, y_fake = run.sample_zy(len(x))
    out = _d_step(run, x, y if run.cond else None, z, y_fake)
    if update_g:
        with run.autocast():
            fake, feat = run.g(z, y_fake, return_features=True)
            g_adv = run.g_loss_fn(run.d(run.aug(fake), y_fake).float())
            g_loss = run.cfg.w_adv * g_adv
            out["g_adv"] = g_adv
            if kd_term is not None:
                term = kd_term(run, fake, feat, z, y_fake)
                g_loss = g_loss + term.pop("weighted")
                out.update(term)
        run.backward_step(g_loss, run.opt_g)
        run.update_ema()
        out["g_loss"] = g_loss
    return out


def _teacher(run: RunState, z: torch.Tensor, y) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return run.teacher(z, y, return_features=True)


def _pixel_term(run: RunState, fake, feat, z, y) -> dict[str, torch.Tensor]:
    t_img, _ = _teacher(run, z, y)
    kd = losses.pixel_l1(fake.float(), t_img.float())
    return {"weighted": run.cfg.w_pixel * kd, "kd_pixel": kd}


def _feature_term(run: RunState, fake, feat, z, y) -> dict[str, torch.Tensor]:
    _, t_feat = _teacher(run, z, y)
    kd = losses.feature_mse(feat, t_feat, run.adapter)
    return {"weighted": run.cfg.w_feat * kd, "kd_feat": kd}


def gan_step(run: RunState, batch: tuple, update_g: bool) -> dict[str, torch.Tensor]:
    """From scratch: one D update on a real batch ``(x, y)`` and, when ``update_g``, one adversarial G update."""
    return _online(run, batch, update_g, None)


def pixel_kd_step(run: RunState, batch: tuple, update_g: bool) -> dict[str, torch.Tensor]:
    """Online KD, Columbia project: G's loss adds ``w_pixel`` x L1 to the teacher's image for the same (z, y)."""
    return _online(run, batch, update_g, _pixel_term)


def distill_step(run: RunState, batch: tuple, update_g: bool) -> dict[str, torch.Tensor]:
    """Online KD by distillation alone (``config.DISTILL``): ``w_pixel`` x L1 to the teacher's image for the same (z, y).

    No discriminator takes part and no real image is seen (``batch`` only sets the batch size), so
    the step costs one teacher forward and one student update; the noise stream is the one the
    Columbia recipe draws, so the two students see the same (z, y) at every step.
    """
    z, y = run.sample_zy(len(batch[0]))
    with run.autocast():
        fake = run.g(z, y)
        kd = _pixel_term(run, fake, None, z, y)
    run.backward_step(kd["weighted"], run.opt_g)
    run.update_ema()
    return {"kd_pixel": kd["kd_pixel"], "g_loss": kd["weighted"]}


def feature_kd_step(run: RunState, batch: tuple, update_g: bool) -> dict[str, torch.Tensor]:
    """Online KD, IITGN project: G's loss adds ``w_feat`` x MSE to the teacher's intermediate features."""
    return _online(run, batch, update_g, _feature_term)


def blackbox_kd_step(run: RunState, batch: tuple, update_g: bool) -> dict[str, torch.Tensor]:
    """One step of black-box KD from a teacher set (TinyGAN, Chang & Lu 2020, sec. 3).

    ``batch`` = (x_t, y, z): the teacher's images (N, C, H, W) in [-1, 1] for noise z
    (N, z_dim) and classes y (N,). D learns teacher images against student images (plus,
    with real images, a ``w_real`` real-data branch); G learns, every step, D-feature L1
    and pixel L1 to the teacher's image for the same (z, y), and, when ``update_g``
    (every ``n_critic``-th step), the hinge adversarial terms.
    """
    x_t, y, z = batch
    G, D, cfg = run.g, run.d, run.cfg
    real = None
    if run.real is not None and cfg.w_real:
        idx = run.randint(len(run.real), len(x_t)).to(run.real.images.device)
        real = (to_float(run.real.images[idx]).to(run.device), run.real.labels[idx].to(run.device),
                run.randn(len(x_t), run.G.z_dim))
    for p in run.D.parameters():
        p.requires_grad_(True)
    with run.autocast():
        with torch.no_grad():
            fake = G(z, y)
        t_logits, f_logits = D(run.aug(x_t), y), D(run.aug(fake), y)
        d_loss = run.d_loss_fn(t_logits.float(), f_logits.float())
        out = {"d_kd": d_loss, "d_teacher": t_logits.mean(), "d_fake": f_logits.mean()}
        if real is not None:
            x_r, y_r, z_r = real
            with torch.no_grad():
                fake_r = G(z_r, y_r)
            d_real = run.d_loss_fn(D(run.aug(x_r), y_r).float(), D(run.aug(fake_r), y_r).float())
            d_loss = d_loss + cfg.w_real * d_real
            out["d_realbranch"] = d_real
    run.backward_step(d_loss, run.opt_d)
    out["d_loss"] = d_loss

    for p in run.D.parameters():  # G's step: no gradient into D
        p.requires_grad_(False)
    with run.autocast():
        fake = G(z, y)
        f_logits, f_feats = D(fake, y, return_features=True)
        with torch.no_grad():
            _, t_feats = D(x_t, y, return_features=True)
        kd_dfeat = losses.d_feature_l1([f.float() for f in f_feats], [t.float() for t in t_feats], cfg.dfeat_decay)
        kd_pixel = losses.pixel_l1(fake.float(), x_t)
        w_pix = run.pixel_weight()
        g_loss = cfg.w_dfeat * kd_dfeat + w_pix * kd_pixel
        out.update(kd_dfeat=kd_dfeat, kd_pixel=kd_pixel, w_pixel=torch.full((), w_pix, device=run.device))
        if update_g:
            g_adv = run.g_loss_fn((D(run.aug(fake), y) if cfg.diffaug else f_logits).float())
            g_loss = g_loss + cfg.w_adv * g_adv
            out["g_adv"] = g_adv
            if real is not None:
                x_r, y_r, z_r = real
                g_real = run.g_loss_fn(D(run.aug(G(z_r, y_r)), y_r).float())
                g_loss = g_loss + cfg.w_real * cfg.w_adv * g_real
                out["g_realbranch"] = g_real
    run.backward_step(g_loss, run.opt_g)
    for p in run.D.parameters():
        p.requires_grad_(True)
    run.update_ema()
    out["g_loss"] = g_loss
    return out


RECIPES: dict[str, Step] = {"none": gan_step, "feature": feature_kd_step, "pixel": pixel_kd_step,
                            "distill": distill_step, "blackbox": blackbox_kd_step}
ONLINE_KD = ("feature", "pixel", "distill")  # the recipes that call a teacher generator at every step
NO_CRITIC = ("distill",)  # the recipes whose step never calls the discriminator: nothing of it to ship or continue


def step_for(cfg: TrainConfig) -> Step:
    """The step function of ``cfg.kd``."""
    if cfg.kd not in RECIPES:
        raise ValueError(f"unknown kd {cfg.kd!r}: choose one of {', '.join(RECIPES)}")
    return RECIPES[cfg.kd]


def check(cfg: TrainConfig, teacher=None, has_z: bool = False) -> None:
    """Refuse a run that lacks what its recipe needs (a teacher for online KD, z for black-box KD)."""
    step_for(cfg)
    if cfg.kd in ONLINE_KD and teacher is None:
        raise ValueError(f"kd={cfg.kd!r} is online KD: it needs a teacher generator (train_online_kd(..., teacher=))")
    if cfg.kd not in ONLINE_KD and teacher is not None:
        raise ValueError(f"kd={cfg.kd!r} calls no teacher: drop it, or use an online-KD recipe "
                         "(config.IITGN / config.COLUMBIA)")
    if cfg.kd == "blackbox" and not has_z:
        raise ValueError("black-box KD needs a teacher set with z (a shard export of the teacher)")
