"""Black-box KD (TinyGAN losses from a teacher set), EMA and DiffAugment in the training loop."""
import pytest
import torch

from gankd_utils import config, data, repro
from gankd_utils.models import ProjectionDiscriminator, ResNetGenerator
from gankd_utils.models.layers import init_weights
from gankd_utils.train import train_blackbox, train_gan


def teacher_set(n=48, z_dim=128, seed=0) -> data.ImageSet:
    g = torch.Generator().manual_seed(seed)
    return data.ImageSet(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(n) % 10,
                         data.CIFAR10_CLASSES, "teacher-set", torch.randn(n, z_dim, generator=g))


def pair(seed=0):
    G = init_weights(ResNetGenerator(ch=4), repro.generator(seed, "init"))
    D = init_weights(ProjectionDiscriminator(ch=8), repro.generator(seed + 1, "init"))
    return G, D


def cfg(**kw):
    return config.get("train", "smoke", **{**config.TINYGAN, "dataset": "cifar10", "n_train": None, "batch_size": 8,
                                           "ckpt_every": 2, "n_fixed": 10, "w_pixel": 0.2, **kw})


def test_blackbox_losses_compose_as_tinygan(tmp_path):
    G, D = pair()
    res = train_blackbox(G, D, teacher_set(), cfg(max_steps=2), tmp_path / "r", "cpu", progress=False)
    h = res["history"]
    # step 0 is adversarial (0 % 5 == 0), step 1 is not
    assert h["g_loss"][0] == pytest.approx(h["kd_dfeat"][0] + 0.2 * h["kd_pixel"][0] + 0.01 * h["g_adv"][0], rel=1e-4)
    assert h["g_loss"][1] == pytest.approx(h["kd_dfeat"][1] + 0.2 * h["kd_pixel"][1], rel=1e-4)
    assert all(v > 0 for v in h["kd_pixel"])


def test_pixel_weight_decays_per_epoch_not_per_step(tmp_path):
    G, D = pair()
    res = train_blackbox(G, D, teacher_set(), cfg(epochs=3, w_pixel=0.2, pixel_decay=0.05), tmp_path / "r", "cpu",
                         progress=False)
    h = res["history"]
    per_epoch = {}
    for e, w in zip(h["epoch"], h["w_pixel"]):
        per_epoch.setdefault(int(e), set()).add(round(w, 6))
    assert per_epoch == {0: {0.2}, 1: {0.15}, 2: {0.1}}


def test_real_branch_and_diffaugment(tmp_path):
    G, D = pair()
    real = teacher_set(seed=5)
    real = data.ImageSet(real.images, real.labels, real.classes, "real")
    res = train_blackbox(G, D, teacher_set(), cfg(max_steps=1, diffaug="color,translation,cutout"), tmp_path / "r",
                         "cpu", real=real, progress=False)
    h = res["history"]
    assert h["d_loss"][0] == pytest.approx(h["d_kd"][0] + 0.2 * h["d_realbranch"][0], rel=1e-4)
    assert "g_realbranch" in h


def test_blackbox_needs_z(tmp_path):
    G, D = pair()
    s = teacher_set()
    with pytest.raises(ValueError, match="teacher set with z"):
        train_blackbox(G, D, data.ImageSet(s.images, s.labels, s.classes, "no-z"), cfg(), tmp_path, "cpu")


def test_blackbox_resume_matches_uninterrupted(tmp_path):
    G1, D1 = pair()
    train_blackbox(G1, D1, teacher_set(), cfg(max_steps=8, epochs=2), tmp_path / "a", "cpu", progress=False)
    G2, D2 = pair()
    train_blackbox(G2, D2, teacher_set(), cfg(max_steps=3, epochs=2), tmp_path / "b", "cpu", progress=False)
    G3, D3 = pair(7)
    res = train_blackbox(G3, D3, teacher_set(), cfg(max_steps=8, epochs=2), tmp_path / "b", "cpu", progress=False)
    assert res["resumed"] and res["steps"] == 8
    for a, b in zip(G1.state_dict().values(), G3.state_dict().values()):
        assert torch.equal(a, b)


def test_ema_is_saved_and_differs_from_raw_weights(tmp_path):
    from gankd_utils import checkpoint

    G, D = pair()
    s = teacher_set()
    real = data.ImageSet(s.images, s.labels, s.classes, "real")
    c = config.get("train", "smoke", **{**config.SNGAN, "n_train": None, "batch_size": 8, "n_fixed": 10,
                                        "max_steps": 3, "ema_decay": 0.5, "diffaug": "translation"})
    train_gan(G, D, real, c, tmp_path / "g", "cpu", progress=False)
    side = checkpoint.read_sidecar(tmp_path / "g" / "G")
    assert side["ema"] is True
    ema = checkpoint.load_weights(tmp_path / "g" / "state" / "G_ema")
    saved = checkpoint.load_weights(tmp_path / "g" / "G")
    raw = checkpoint.load_weights(tmp_path / "g" / "state" / "G")
    k = next(k for k in saved if k.endswith("weight") and saved[k].ndim > 1)
    assert torch.equal(saved[k], ema[k]) and not torch.equal(saved[k], raw[k])
