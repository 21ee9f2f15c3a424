"""One step function per recipe (gankd_utils.recipes): the losses each recipe composes and what it needs."""
import math
import pytest
import torch
from builders import bb_cfg, bb_pair, cfg, cond_pair, teacher_set, tiny_set

from gankd_utils import config, data, recipes
from gankd_utils.models import (
    CondDCGANGenerator,
    IITGNDiscriminator,
    IITGNGenerator,
)
from gankd_utils.models.layers import dcgan_init
from gankd_utils.runstate import RunState
from gankd_utils.train import train_blackbox, train_online_kd


def test_step_for_maps_every_recipe():
    assert recipes.step_for(cfg()) is recipes.gan_step
    assert recipes.step_for(cfg(**config.IITGN)) is recipes.feature_kd_step
    assert recipes.step_for(cfg(**config.COLUMBIA)) is recipes.pixel_kd_step
    assert recipes.step_for(cfg(**config.DISTILL)) is recipes.distill_step
    assert recipes.step_for(bb_cfg()) is recipes.blackbox_kd_step
    assert set(recipes.RECIPES) == {"none", "feature", "pixel", "distill", "blackbox"}
    assert recipes.ONLINE_KD == ("feature", "pixel", "distill")
    with pytest.raises(ValueError, match="unknown kd 'magic'"):
        recipes.step_for(cfg(kd="magic"))


def test_check_says_what_a_recipe_needs():
    G = CondDCGANGenerator(32)
    recipes.check(cfg())
    recipes.check(cfg(**config.COLUMBIA), teacher=G)
    recipes.check(bb_cfg(), has_z=True)
    with pytest.raises(ValueError, match="online KD: it needs a teacher generator"):
        recipes.check(cfg(**config.IITGN))
    with pytest.raises(ValueError, match="online KD: it needs a teacher generator"):
        recipes.check(cfg(**config.COLUMBIA), teacher=None)
    with pytest.raises(ValueError, match="kd='distill' is online KD: it needs a teacher generator"):
        recipes.check(cfg(**config.DISTILL))
    with pytest.raises(ValueError, match="kd='none' calls no teacher"):
        recipes.check(cfg(), teacher=G)
    with pytest.raises(ValueError, match="kd='blackbox' calls no teacher"):
        recipes.check(bb_cfg(), teacher=G, has_z=True)
    with pytest.raises(ValueError, match="teacher set with z"):
        recipes.check(bb_cfg(), has_z=False)
    with pytest.raises(ValueError, match="unknown kd"):
        recipes.check(cfg(kd="magic"))


def test_gan_step_returns_device_tensors_and_skips_g_between_critic_steps():
    G, D = cond_pair()
    run = RunState(G.train(), D.train(), cfg(), torch.device("cpu"))
    x, y = next(data.Batches(tiny_set(), 16).epoch(0))
    out = recipes.gan_step(run, (x, y), True)
    assert set(out) == {"d_loss", "d_real", "d_fake", "g_adv", "g_loss"}
    assert all(isinstance(v, torch.Tensor) and v.ndim == 0 and torch.isfinite(v) for v in out.values())
    g_before = [p.detach().clone() for p in G.parameters()]
    out = recipes.gan_step(run, (x, y), False)  # a critic-only step: D learns, G does not
    assert set(out) == {"d_loss", "d_real", "d_fake"}
    assert all(torch.equal(a, b) for a, b in zip(g_before, G.parameters()))


def test_feature_kd_uses_teacher_features(tmp_path):
    T = dcgan_init(IITGNGenerator("teacher"), 0)
    G, D = dcgan_init(IITGNGenerator("student"), 1), dcgan_init(IITGNDiscriminator(), 2)
    res = train_online_kd(G, D, T, tiny_set(), cfg(max_steps=2, **config.IITGN), tmp_path / "kd", "cpu",
                          progress=False)
    h = res["history"]
    assert len(h["kd_feat"]) == 2 and all(v > 0 for v in h["kd_feat"])
    # G loss = 0.5 adversarial + 0.5 feature MSE
    assert h["g_loss"][0] == pytest.approx(0.5 * h["g_adv"][0] + 0.5 * h["kd_feat"][0], rel=1e-5)
    assert res["adapter"] is not None  # 64 -> 128 channels
    assert not any(p.requires_grad for p in T.parameters())  # the teacher stays frozen


def test_pixel_kd_loss_is_l1_to_teacher(tmp_path):
    T = dcgan_init(CondDCGANGenerator(64), 5)
    G, D = cond_pair()
    res = train_online_kd(G, D, T, tiny_set(), cfg(max_steps=1, **config.COLUMBIA), tmp_path / "kd", "cpu",
                          progress=False)
    h = res["history"]
    assert h["g_loss"][0] == pytest.approx(h["g_adv"][0] + 1.0 * h["kd_pixel"][0], rel=1e-5)
    assert res["adapter"] is None and h["kd_pixel"][0] > 0


def test_distill_step_is_l1_to_the_teacher_alone_and_leaves_d_untouched(tmp_path):
    T = dcgan_init(CondDCGANGenerator(64), 5)
    G, D = cond_pair()
    d_before = {k: v.clone() for k, v in D.state_dict().items()}
    res = train_online_kd(G, D, T, tiny_set(), cfg(max_steps=3, **config.DISTILL), tmp_path / "d", "cpu",
                          progress=False)
    h = res["history"]
    assert set(h) >= {"kd_pixel", "g_loss"} and not set(h) & {"d_loss", "g_adv"}  # no discriminator in the loss
    assert h["g_loss"] == pytest.approx(h["kd_pixel"]) and all(v > 0 for v in h["kd_pixel"])
    assert all(torch.equal(v, D.state_dict()[k]) for k, v in d_before.items())  # D never updated


def test_distill_student_sees_the_noise_of_its_columbia_twin(tmp_path):
    """Same seed, same data: the distillation-only and the Columbia students draw the same (z, y) at every
    step, so the two differ by the adversarial term alone. With the adversarial weight at 0, the Columbia
    recipe's G therefore ends where the distillation-only G does (its D still learns, but reaches G
    through nothing)."""
    T = dcgan_init(CondDCGANGenerator(64), 5)
    out = {}
    for name, recipe in (("distill", config.DISTILL), ("pixel_no_adv", {**config.COLUMBIA, "w_adv": 0.0})):
        G, D = cond_pair()
        res = train_online_kd(G, D, T, tiny_set(), cfg(max_steps=3, **recipe), tmp_path / name, "cpu",
                              progress=False)
        out[name] = (G, res["history"]["kd_pixel"])
    assert out["distill"][1] == pytest.approx(out["pixel_no_adv"][1], rel=1e-5)
    g1, g2 = out["distill"][0], out["pixel_no_adv"][0]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g1.parameters(), g2.parameters()))


def test_blackbox_losses_compose_as_tinygan(tmp_path):
    G, D = bb_pair()
    res = train_blackbox(G, D, teacher_set(), bb_cfg(max_steps=2), tmp_path / "r", "cpu", progress=False)
    h = res["history"]
    # step 0 is adversarial (0 % 5 == 0), step 1 is not
    assert h["g_loss"][0] == pytest.approx(h["kd_dfeat"][0] + 0.2 * h["kd_pixel"][0] + 0.01 * h["g_adv"][0], rel=1e-4)
    assert h["g_loss"][1] == pytest.approx(h["kd_dfeat"][1] + 0.2 * h["kd_pixel"][1], rel=1e-4)
    assert all(v > 0 for v in h["kd_pixel"])


def test_real_branch_and_diffaugment(tmp_path):
    G, D = bb_pair()
    real = teacher_set(seed=5)
    real = data.ImageSet(real.images, real.labels, real.classes, "real")
    res = train_blackbox(G, D, teacher_set(), bb_cfg(max_steps=1, diffaug="color,translation,cutout"), tmp_path / "r",
                         "cpu", real=real, progress=False)
    h = res["history"]
    assert h["d_loss"][0] == pytest.approx(h["d_kd"][0] + 0.2 * h["d_realbranch"][0], rel=1e-4)
    assert "g_realbranch" in h


def test_blackbox_needs_z(tmp_path):
    G, D = bb_pair()
    s = teacher_set()
    with pytest.raises(ValueError, match="teacher set with z"):
        train_blackbox(G, D, data.ImageSet(s.images, s.labels, s.classes, "no-z"), bb_cfg(), tmp_path, "cpu")


# ---------------------------------------------------------------- compile / channels_last switches

def _history_of(tmp_path, name, **kw):
    G, D = bb_pair()
    res = train_blackbox(G, D, teacher_set(), bb_cfg(max_steps=2, **kw), tmp_path / name, "cpu", progress=False)
    return res["history"], G


def test_compiled_steps_compute_what_eager_steps_do(tmp_path, monkeypatch):
    # the "eager" backend: dynamo captures G's and D's graphs (return_features, no_grad, requires_grad
    # toggles) without the C++ compile that inductor needs; the numbers must be those of the eager run
    monkeypatch.setattr(torch, "compile", lambda m: torch._dynamo.optimize("eager")(m))
    torch._dynamo.reset()
    eager, G0 = _history_of(tmp_path, "eager")
    compiled, G1 = _history_of(tmp_path, "compiled", compile="on")
    for k in ("d_loss", "g_loss", "kd_pixel", "kd_dfeat"):
        assert compiled[k] == pytest.approx(eager[k], rel=1e-5, abs=1e-6), k
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(G0.parameters(), G1.parameters()))


def test_a_failed_compile_runs_eagerly_and_says_so(tmp_path, monkeypatch):
    def broken(module):
        def call(*a, **kw):
            raise RuntimeError("backend exploded")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    eager, _ = _history_of(tmp_path, "eager")
    with pytest.warns(RuntimeWarning, match=r"torch.compile of G failed \(RuntimeError: backend exploded\); it runs "
                                             r"eagerly"):
        fell_back, _ = _history_of(tmp_path, "fallback", compile="on")
    assert fell_back["g_loss"] == pytest.approx(eager["g_loss"], rel=1e-6)


def test_a_real_error_is_not_hidden_by_the_fallback(monkeypatch):
    from gankd_utils.runstate import Compiled

    monkeypatch.setattr(torch, "compile", lambda m: m)  # "compiled" = the module: the same error both ways
    G, _ = bb_pair()
    call = Compiled(G, "G")
    with pytest.raises(ValueError, match=r"z must have shape \(N, 128\)"):  # eager fails too: its error is raised
        call(torch.randn(2, 7), torch.zeros(2, dtype=torch.long))
    assert call.failed is None  # and compiling is not blamed


def test_a_backward_that_fails_to_compile_falls_back_to_eager_too(monkeypatch):
    # torch compiles a graph's backward at its first backward call by default: a failure there came from
    # loss.backward(), outside the fallback, and stopped the run
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch import config as functorch_config

    from gankd_utils.runstate import Compiled

    if not hasattr(functorch_config, "force_non_lazy_backward_lowering"):
        pytest.skip("this torch compiles a backward only when it first runs")

    def no_backward(gm, example_inputs):
        raise RuntimeError("backward lowering exploded")

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda m: real_compile(m, backend=aot_autograd(
        fw_compiler=lambda gm, ex: gm.forward, bw_compiler=no_backward)))
    torch._dynamo.reset()
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    call = Compiled(net, "G")
    with pytest.warns(RuntimeWarning, match=r"(?s)torch.compile of G failed .*backward lowering exploded"):
        out = call(torch.randn(3, 4))
    out.sum().backward()  # the eager graph's
    assert call.failed and all(p.grad is not None for p in net.parameters())
    torch._dynamo.reset()


def test_switch_values_are_checked_and_leave_the_resume_key_alone():
    from gankd_utils import checkpoint
    from gankd_utils.runstate import compile_enabled

    with pytest.raises(ValueError, match="compile must be 'on' or 'off', got 'yes'"):
        compile_enabled(bb_cfg(compile="yes"))
    assert checkpoint.resume_key(bb_cfg(compile="on", channels_last=True)) == checkpoint.resume_key(bb_cfg())


def test_channels_last_on_the_fast_path_trains_saves_and_reloads(tmp_path):
    G, D = bb_pair()
    run = RunState(G, D, bb_cfg(fast="on", channels_last=True), torch.device("cpu"))
    w = next(p for p in G.parameters() if p.ndim == 4)
    assert w.is_contiguous(memory_format=torch.channels_last)
    hist, G1 = _history_of(tmp_path, "cl", fast="on", channels_last=True)
    assert all(math.isfinite(v) for v in hist["g_loss"])
    from gankd_utils import checkpoint
    back = checkpoint.load_model(tmp_path / "cl" / "G")  # safetensors needs contiguous tensors: saved as such
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), G1.state_dict().values()))
    plain = RunState(*bb_pair(), bb_cfg(channels_last=True), torch.device("cpu"))  # the fp32 path too (CPU)
    w = next(p for p in plain.G.parameters() if p.ndim == 4)
    assert w.is_contiguous(memory_format=torch.channels_last) and run.fast and not plain.fast
    default = RunState(*bb_pair(), bb_cfg(channels_last=False), torch.device("cpu"))
    assert next(p for p in default.G.parameters() if p.ndim == 4).is_contiguous()


def test_compile_skips_a_spectrally_normalised_discriminator(monkeypatch):
    from gankd_utils.runstate import Compiled

    monkeypatch.setattr(torch, "compile", lambda m: m)
    plain = RunState(*cond_pair(), cfg(compile="on"), torch.device("cpu"))  # DCGAN D: no spectral norm
    assert isinstance(plain.g, Compiled) and isinstance(plain.d, Compiled)
    G, D = bb_pair()
    sn = RunState(G, D, bb_cfg(compile="on"), torch.device("cpu"))
    assert isinstance(sn.g, Compiled) and sn.d is D
