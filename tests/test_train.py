import json

import pytest
import torch

from gankd_utils import checkpoint, config, data, repro
from gankd_utils.checkpoint import CheckpointError
from gankd_utils.models import CondDCGANDiscriminator, CondDCGANGenerator, IITGNDiscriminator, IITGNGenerator
from gankd_utils.train import dcgan_init, is_finished, train_distill, train_gan


def tiny_set(n=96, seed=0) -> data.ImageSet:
    g = torch.Generator().manual_seed(seed)
    return data.ImageSet(torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g),
                         torch.arange(n) % 10, data.MNIST_CLASSES, "tiny")


def cfg(**kw):
    return config.get("train", "smoke", n_train=None, batch_size=16, ckpt_every=2, n_fixed=10, **kw)


def cond_pair(seed=0):
    return dcgan_init(CondDCGANGenerator(32), seed), dcgan_init(CondDCGANDiscriminator(4), seed + 1)


def test_same_seed_same_images():
    G1, _ = cond_pair(3)
    G2, _ = cond_pair(3)
    y = torch.arange(10)
    z1 = repro.noise(10, 100, seed=7, purpose="fixed")
    z2 = repro.noise(10, 100, seed=7, purpose="fixed")
    assert torch.equal(G1.eval()(z1, y), G2.eval()(z2, y))
    assert not torch.equal(z1, repro.noise(10, 100, seed=7, purpose="eval"))
    assert not torch.equal(z1, repro.noise(10, 100, seed=8, purpose="fixed"))


def test_one_step_changes_parameters_and_stays_finite(tmp_path):
    G, D = cond_pair()
    before = [p.detach().clone() for p in G.parameters()]
    res = train_gan(G, D, tiny_set(), cfg(max_steps=1), tmp_path / "run", "cpu", progress=False)
    assert res["steps"] == 1
    assert all(torch.isfinite(p).all() for p in G.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters()))
    assert all(torch.isfinite(torch.tensor(v)).all() for v in res["history"].values())


def test_distill_step_uses_teacher_features(tmp_path):
    T = dcgan_init(IITGNGenerator("teacher"), 0)
    G, D = dcgan_init(IITGNGenerator("student"), 1), dcgan_init(IITGNDiscriminator(), 2)
    res = train_distill(G, D, T, tiny_set(), cfg(max_steps=2, **config.IITGN), tmp_path / "kd", "cpu",
                        progress=False)
    h = res["history"]
    assert len(h["kd_feat"]) == 2 and all(v > 0 for v in h["kd_feat"])
    # G loss = 0.5 adversarial + 0.5 feature MSE
    assert h["g_loss"][0] == pytest.approx(0.5 * h["g_adv"][0] + 0.5 * h["kd_feat"][0], rel=1e-5)
    assert res["adapter"] is not None  # 64 -> 128 channels


def test_pixel_kd_loss_is_l1_to_teacher(tmp_path):
    T = dcgan_init(CondDCGANGenerator(64), 5)
    G, D = cond_pair()
    res = train_distill(G, D, T, tiny_set(), cfg(max_steps=1, **config.COLUMBIA), tmp_path / "kd", "cpu",
                        progress=False)
    h = res["history"]
    assert h["g_loss"][0] == pytest.approx(h["g_adv"][0] + 1.0 * h["kd_pixel"][0], rel=1e-5)


def test_wrong_trainer_for_recipe(tmp_path):
    G, D = cond_pair()
    with pytest.raises(ValueError, match="train_distill"):
        train_gan(G, D, tiny_set(), cfg(**config.COLUMBIA), tmp_path, "cpu")
    with pytest.raises(ValueError, match="kd="):
        train_distill(G, D, G, tiny_set(), cfg(), tmp_path, "cpu")


def test_resume_matches_uninterrupted_run(tmp_path):
    # uninterrupted: 7 steps (crosses an epoch boundary: 6 batches per epoch)
    G1, D1 = cond_pair()
    full = train_gan(G1, D1, tiny_set(), cfg(max_steps=7, epochs=2), tmp_path / "a", "cpu", progress=False)
    # interrupted after 4 steps, then resumed in a fresh process-like state
    G2, D2 = cond_pair()
    part = train_gan(G2, D2, tiny_set(), cfg(max_steps=4, epochs=2), tmp_path / "b", "cpu", progress=False)
    assert part["steps"] == 4 and not part["finished"]
    torch.manual_seed(12345)  # disturb the global RNG: resume must restore it
    G3, D3 = cond_pair(99)  # other initial weights: they must be replaced by the checkpoint's
    res = train_gan(G3, D3, tiny_set(), cfg(max_steps=7, epochs=2), tmp_path / "b", "cpu", progress=False)
    assert res["resumed"] and res["steps"] == 7
    for a, b in zip(G1.state_dict().values(), G3.state_dict().values()):
        assert torch.equal(a, b)
    assert full["history"]["d_loss"] == res["history"]["d_loss"]


def test_resume_refuses_other_settings(tmp_path):
    G, D = cond_pair()
    train_gan(G, D, tiny_set(), cfg(max_steps=2), tmp_path / "r", "cpu", progress=False)
    with pytest.raises(ValueError, match="other settings"):
        train_gan(*cond_pair(), tiny_set(), cfg(max_steps=2, lr_g=1e-3), tmp_path / "r", "cpu", progress=False)


def test_checkpoint_round_trip(tmp_path):
    G, D = cond_pair()
    train_gan(G, D, tiny_set(), cfg(max_steps=2, epochs=1), tmp_path / "run", "cpu", progress=False)
    assert not is_finished(tmp_path / "run")  # paused by max_steps after 2 of 6 steps
    G2 = checkpoint.load_model(tmp_path / "run" / "G.safetensors")
    assert type(G2) is CondDCGANGenerator and G2.hparams == G.hparams
    z, y = torch.randn(4, 100), torch.arange(4)
    assert torch.equal(G.eval()(z, y), G2(z, y))
    side = checkpoint.read_sidecar(tmp_path / "run" / "G")
    assert side["step"] == 2 and side["config"]["max_steps"] == 2


def test_finished_run_is_marked(tmp_path):
    G, D = cond_pair()
    train_gan(G, D, tiny_set(32), cfg(epochs=1), tmp_path / "run", "cpu", progress=False)
    assert is_finished(tmp_path / "run")
    assert (tmp_path / "run" / "samples" / "epoch_000.png").exists()


def test_corrupt_and_foreign_checkpoints(tmp_path):
    G, _ = cond_pair()
    checkpoint.save_model(tmp_path / "G", G)
    # truncated weights
    w = tmp_path / "G.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        checkpoint.load_model(tmp_path / "G")
    # weights of another width under this spec
    checkpoint.save_model(tmp_path / "H", CondDCGANGenerator(64))
    side = json.loads((tmp_path / "H.json").read_text())
    side["model"]["kwargs"]["c"] = 32
    (tmp_path / "H.json").write_text(json.dumps(side))
    with pytest.raises(CheckpointError, match="does not fit CondDCGANGenerator"):
        checkpoint.load_model(tmp_path / "H")
    # a safetensors file without our sidecar
    (tmp_path / "H.json").unlink()
    with pytest.raises(CheckpointError, match="not saved by gankd"):
        checkpoint.load_model(tmp_path / "H")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoint.load_model(tmp_path / "missing")


def test_resume_state_is_never_unpickled(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "state.pt"
    torch.save({"x": Evil()}, p)
    with pytest.raises(CheckpointError, match="not a gankd resume state"):
        checkpoint.load_state(p)
