"""Generators, discriminators, their layers and the registry (gankd_utils.models).

MNIST: the IITGN pair and the Columbia conditional DCGAN; CIFAR-10: the ResNet cGAN; TinyGAN's student and
discriminator at 32-128 px; the evaluator classifier; layers (spectral norm, conditional BN, DCGAN init).
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from gankd_utils import losses, repro
from gankd_utils.augment import diff_augment
from gankd_utils.metrics import count_keras_style, count_macs, count_params
from gankd_utils.models import (REGISTRY, CondDCGANDiscriminator, CondDCGANGenerator, ConvClassifier,
                                IITGNDiscriminator, IITGNGenerator, build, generate, register, spec_of,
                                standing_stats)
from gankd_utils.models.cgan import CGAN_PRESETS, ProjectionDiscriminator, ResNetGenerator
from gankd_utils.models.layers import (ConditionalBatchNorm2d, DepthwiseSeparableConv2d, UpBlock, dcgan_init,
                                       init_weights, is_spectral_normed, spectral_norm_modules, weight_matrix)
from gankd_utils.models.tinygan import TinyGANDiscriminator, TinyGANGenerator

GENERATORS = [lambda: IITGNGenerator("teacher"), lambda: IITGNGenerator("student"),
              lambda: CondDCGANGenerator(512), lambda: CondDCGANGenerator(64), lambda: CondDCGANGenerator(32)]


@pytest.mark.parametrize("make", GENERATORS)
def test_mnist_generator_shapes_and_range(make):
    G = make().eval()
    z = torch.randn(5, G.z_dim) * 3  # large z pushes tanh towards its bounds
    y = torch.arange(5) if G.n_classes else None
    x, f = G(z, y, return_features=True)
    assert x.shape == (5, 1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1
    assert f.shape[:2] == (5, G.feature_channels)


def test_seed_parameter_counts():
    # the IITGN seed counted as Keras does (BatchNorm moving stats included)
    assert count_keras_style(IITGNGenerator("teacher")) == 1_961_728
    assert count_keras_style(IITGNGenerator("student")) == 784_640
    assert count_params(IITGNGenerator("teacher")) == 1_961_728 - 2 * (7 * 7 * 256 + 128 + 64)
    # Columbia family: the c=32 student is >= 50x smaller than the c=512 teacher
    assert count_params(CondDCGANGenerator(512)) / count_params(CondDCGANGenerator(32)) >= 50


def test_features_align_for_kd():
    t, s = IITGNGenerator("teacher"), IITGNGenerator("student")
    z = torch.randn(2, 100)
    assert t(z, return_features=True)[1].shape[2:] == s(z, return_features=True)[1].shape[2:] == (14, 14)


def test_one_hot_conditioning_changes_output():
    G = CondDCGANGenerator(64).eval()
    z = torch.randn(1, 100).repeat(10, 1)
    x = G(z, torch.arange(10))
    # same z, different class: every pair of images differs
    diffs = (x[:, None] - x[None]).abs().flatten(2).amax(-1)
    assert (diffs + torch.eye(10)).min() > 0


@pytest.mark.parametrize("D,cond", [(IITGNDiscriminator(), False), (CondDCGANDiscriminator(64), True),
                                    (CondDCGANDiscriminator(4), True)])
def test_mnist_discriminator_shapes(D, cond):
    out = D(torch.rand(6, 1, 28, 28) * 2 - 1, torch.arange(6) if cond else None)
    assert out.shape == (6,) and torch.isfinite(out).all()


def test_classifier_shapes():
    C = ConvClassifier(in_channels=3, n_classes=10, width=16)
    x = torch.randn(4, 3, 32, 32)
    assert C(x).shape == (4, 10) and C.features(x).shape == (4, 256)


@pytest.mark.parametrize("bad,match", [
    (dict(z=torch.randn(3, 99)), r"z must have shape \(N, 100\)"),
    (dict(y=torch.tensor([0, 1, 10])), r"class ids must lie in 0\.\.9"),
    (dict(y=torch.tensor([-1, 0, 1])), r"class ids must lie in 0\.\.9"),
    (dict(y=torch.tensor([0, 1])), r"y must have shape \(3,\)"),
    (dict(y=None), "class-conditional: pass y"),
    (dict(y=torch.tensor([0.0, 1.0, 2.0])), "integer class ids"),
])
def test_mnist_generator_bad_inputs(bad, match):
    G = CondDCGANGenerator(32)
    args = {"z": torch.randn(3, 100), "y": torch.tensor([0, 1, 2]), **bad}
    with pytest.raises(ValueError, match=match):
        G(args["z"], args["y"])


def test_mnist_bad_constructor_arguments():
    with pytest.raises(ValueError, match="multiple of 8"):
        CondDCGANGenerator(30)
    with pytest.raises(ValueError, match="role"):
        IITGNGenerator("teaching-assistant")


def test_output_bias_option_round_trips_and_survives_pruning(tmp_path):
    from gankd_utils import checkpoint, compress
    plain = CondDCGANGenerator(32)
    assert plain.out.bias is None and "out_bias" not in plain.hparams  # the walk's sidecars stay as they were
    G = CondDCGANGenerator(32, out_bias=True)
    assert G.hparams["out_bias"] is True and G.out.bias.shape == (1,)
    with torch.no_grad():
        G.out.bias.fill_(-3.0)
    G.eval()
    z, y = torch.randn(4, 100), torch.arange(4)
    # the bias is where a dark background can come from when every channel is off
    with torch.no_grad():
        zeroed = G.out.weight.clone()
        G.out.weight.zero_()
        assert torch.allclose(G(z, y), torch.full((4, 1, 28, 28), math.tanh(-3.0)))
        G.out.weight.copy_(zeroed)
    checkpoint.save_model(tmp_path / "G", G)
    back = checkpoint.load_model(tmp_path / "G", "cpu")
    assert back.out.bias.item() == -3.0 and torch.equal(back(z, y), G(z, y))
    small = compress.prune_channels(G, 0.5, min_channels=1)
    assert small.hparams["out_bias"] is True and small.out.bias.item() == -3.0


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_spec_round_trip(name):
    m = REGISTRY[name]()
    m2 = build(spec_of(m))
    assert type(m2) is type(m) and m2.hparams == m.hparams


def test_unknown_arch_is_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        build({"arch": "os.system", "kwargs": {}})


# ---------------------------------------------------------------------------------------------------------------
# CIFAR-10 ResNet cGAN and TinyGAN

for _cls in (ResNetGenerator, ProjectionDiscriminator, TinyGANGenerator, TinyGANDiscriminator):
    register(_cls)

G_SPECS = {f"cgan_{k}": (ResNetGenerator, v) for k, v in CGAN_PRESETS.items()}
G_SPECS.update({f"tinygan_{r}": (TinyGANGenerator, {"resolution": r}) for r in (32, 64, 128)})

# exact counts (torch's: BN running stats excluded), quoted in the model docstrings and CGAN_PRESETS
EXPECTED_PARAMS = {"cgan_teacher": 4_304_387, "cgan_student_s": 375_683, "cgan_student_xs": 105_683,
                   "tinygan_32": 614_339, "tinygan_64": 1_280_195, "tinygan_128": 3_070_659}


@pytest.fixture(scope="module")
def generators():
    torch.manual_seed(0)
    return {name: cls(**kw).eval() for name, (cls, kw) in G_SPECS.items()}


def _labels(G, n):
    return torch.arange(n) * (G.n_classes // n)  # spread over the class range, last class below n_classes


@pytest.mark.parametrize("name", sorted(G_SPECS))
def test_generator_shapes_and_range(generators, name):
    G = generators[name]
    z = torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(1)) * 3  # large z pushes tanh to its bounds
    with torch.no_grad():
        x, f = G(z, _labels(G, 3), return_features=True)
    res = G.img_shape[1]
    assert G.img_shape == (3, res, res) and res == (32 if name.startswith("cgan") else int(name.split("_")[1]))
    assert x.shape == (3, *G.img_shape) and x.dtype == torch.float32
    assert torch.isfinite(x).all() and x.min() >= -1 and x.max() <= 1
    assert f.shape == (3, G.feature_channels, res, res)


def test_parameter_counts(generators):
    counts = {name: count_params(G) for name, G in generators.items()}
    assert counts == EXPECTED_PARAMS
    assert 3.8e6 <= counts["cgan_teacher"] <= 4.5e6                      # about 4M
    assert 0.36e6 <= counts["cgan_student_s"] <= 0.44e6                  # about 0.4M
    assert 0.09e6 <= counts["cgan_student_xs"] <= 0.11e6                 # about 0.1M
    assert abs(counts["tinygan_128"] / 3.07e6 - 1) < 0.03                # TinyGAN's 3.07M (1000-row class table)
    # the 398 animal classes only: 77,056 fewer embedding rows, still within 3% of the paper
    assert abs(count_params(TinyGANGenerator(128, n_classes=398)) / 3.07e6 - 1) < 0.03
    assert 0.7e6 <= count_params(ProjectionDiscriminator()) <= 1.0e6


def test_macs_per_image(generators):
    macs = {}
    for name, G in generators.items():
        macs[name] = count_macs(G, torch.randn(1, G.z_dim), _labels(G, 1))  # eval mode: one image is a batch
        assert macs[name] > count_params(G) // 2  # every weight is used at least once per image
    assert macs["cgan_teacher"] > 10 * macs["cgan_student_s"] > 10 * macs["cgan_student_xs"]
    assert macs["tinygan_128"] > macs["tinygan_64"] > macs["tinygan_32"]


@pytest.mark.parametrize("name", ["cgan_teacher", "cgan_student_xs", "tinygan_32", "tinygan_128"])
def test_classes_change_output_for_the_same_z(generators, name):
    G = generators[name]
    n = 4
    z = torch.randn(1, G.z_dim).repeat(n, 1)
    with torch.no_grad():
        x = G(z, _labels(G, n))
    diffs = (x[:, None] - x[None]).abs().flatten(2).amax(-1)
    assert (diffs + torch.eye(n)).min() > 0


@pytest.mark.parametrize("make,res", [(lambda: ProjectionDiscriminator(), 32),
                                      (lambda: ProjectionDiscriminator(32, n_down=2, n_plain=2), 32),
                                      (lambda: TinyGANDiscriminator(32, 10, ch=16), 32),
                                      (lambda: TinyGANDiscriminator(64, 398, ch=8), 64),
                                      (lambda: TinyGANDiscriminator(128, 1000, ch=4), 128)])
def test_discriminator_logits_and_features(make, res):
    D = make()
    x = torch.rand(4, 3, res, res) * 2 - 1
    y = torch.tensor([0, 1, 2, D.n_classes - 1])
    logits, feats = D(x, y, return_features=True)
    assert logits.shape == (4,) and torch.isfinite(logits).all()
    assert torch.equal(D.eval()(x, y), D(x, y))  # the plain call returns the same logits
    if isinstance(D, TinyGANDiscriminator):
        n = {32: 3, 64: 4, 128: 5}[res]
        ch = D.hparams["ch"]
        assert [f.shape for f in feats] == [(4, ch * 2 ** i, res >> (i + 1), res >> (i + 1)) for i in range(n)]
    else:
        sides = [16, 8, 4] if D.n_down == 3 else [16, 8, 8, 8]
        assert [f.shape for f in feats] == [(4, D.hparams["ch"], s, s) for s in sides]
    # the list feeds TinyGAN's feature loss as it is
    assert torch.isfinite(losses.d_feature_l1(feats, [f + 1 for f in feats]))


def test_projection_term_uses_the_class():
    D = ProjectionDiscriminator(32).eval()
    x = torch.randn(1, 3, 32, 32).repeat(10, 1, 1, 1)
    logits = D(x, torch.arange(10))
    assert logits.unique().numel() == 10


@pytest.mark.parametrize("make,res", [(lambda: ProjectionDiscriminator(32), 8),  # any multiple of 8 will do
                                      (lambda: TinyGANDiscriminator(64, 10, ch=8), 64)])
def test_spectral_norm_is_applied(make, res):
    torch.manual_seed(0)
    D = make().train()
    layers = spectral_norm_modules(D)
    weighted = (torch.nn.Conv2d, torch.nn.Linear, torch.nn.Embedding)
    convs_and_linears = [m for m in D.modules() if isinstance(m, weighted)]
    assert convs_and_linears and all(is_spectral_normed(m) for m in convs_and_linears)
    with torch.no_grad():
        for _, m in layers:  # a raw weight 10x too large must still come out with norm 1
            m.parametrizations.weight.original.mul_(10)
        x, y = torch.randn(2, 3, res, res), torch.tensor([0, 1])
        for _ in range(25):  # one power iteration per training forward: the estimate converges as training runs
            D(x, y)
        sigmas = [torch.linalg.matrix_norm(weight_matrix(m), 2).item() for _, m in layers]
    assert len(sigmas) == len(convs_and_linears)
    assert all(abs(s - 1) < 0.03 for s in sigmas), sigmas


@pytest.mark.parametrize("name", ["cgan_student_xs", "tinygan_32"])
@pytest.mark.parametrize("bad,match", [
    (dict(z=torch.randn(3, 100)), r"z must have shape \(N, 128\)"),
    (dict(z=torch.randn(3, 128, 1)), r"z must have shape \(N, 128\)"),
    (dict(y="too_high"), r"class ids must lie in 0\.\."),
    (dict(y=torch.tensor([-1, 0, 1])), r"class ids must lie in 0\.\."),
    (dict(y=torch.tensor([0, 1])), r"y must have shape \(3,\)"),
    (dict(y=None), "class-conditional: pass y"),
    (dict(y=torch.tensor([0.0, 1.0, 2.0])), "integer class ids"),
])
def test_generator_bad_inputs(generators, name, bad, match):
    G = generators[name]
    y = bad.get("y", torch.tensor([0, 1, 2]))
    if isinstance(y, str):
        y = torch.tensor([0, 1, G.n_classes])
    with pytest.raises(ValueError, match=match):
        G(bad.get("z", torch.randn(3, G.z_dim)), y)


@pytest.mark.parametrize("D,x,y,match", [
    (ProjectionDiscriminator(16), torch.randn(2, 3, 32, 32), torch.tensor([0, 10]), r"class ids must lie in 0\.\.9"),
    (ProjectionDiscriminator(16), torch.randn(2, 3, 30, 30), torch.tensor([0, 1]), "multiples of 8"),
    (ProjectionDiscriminator(16), torch.randn(2, 1, 32, 32), torch.tensor([0, 1]), r"\(N, 3, H, W\)"),
    (ProjectionDiscriminator(16), torch.randn(2, 3, 32, 32), None, "class-conditional: pass y"),
    (TinyGANDiscriminator(32, 10, ch=8), torch.randn(2, 3, 64, 64), torch.tensor([0, 1]), "takes 32x32 images"),
    (TinyGANDiscriminator(32, 10, ch=8), torch.randn(2, 3, 32, 32), torch.tensor([0, 1, 2]),
     r"y must have shape \(2,\)"),
])
def test_discriminator_bad_inputs(D, x, y, match):
    with pytest.raises(ValueError, match=match):
        D(x, y)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="resolution must be one of"):
        TinyGANGenerator(96)
    with pytest.raises(ValueError, match="resolution must be one of"):
        TinyGANDiscriminator(256)
    with pytest.raises(ValueError, match="cond must be"):
        TinyGANGenerator(32, cond="z")
    with pytest.raises(ValueError, match="class-conditional"):
        ResNetGenerator(n_classes=0)
    with pytest.raises(ValueError, match="exactly one of"):
        ConditionalBatchNorm2d(8)


def test_tinygan_embedding_paths(generators):
    G = generators["tinygan_32"]
    z, y = torch.randn(2, 128), torch.tensor([3, 397])
    with torch.no_grad():
        assert torch.equal(G(z, y), G.from_embedding(z, G.embed(y)))
        mid = G.from_embedding(z, 0.5 * (G.embed(y) + G.embed(y.flip(0))))  # halfway between two classes
    assert mid.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="class embedding must have shape"):
        G.set_class_embedding(torch.zeros(10, 128))
    Gz = TinyGANGenerator(32, n_classes=10, cond="embed+z").eval()
    assert count_params(Gz) - count_params(TinyGANGenerator(32, n_classes=10)) == 2 * 128 * sum(
        cin + cout for cin, cout in zip(Gz.widths[:-1], Gz.widths[1:]))
    assert Gz(z, torch.tensor([0, 9])).shape == (2, 3, 32, 32)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    for G, D in ((ResNetGenerator(**CGAN_PRESETS["student_xs"]), ProjectionDiscriminator(16)),
                 (TinyGANGenerator(32, n_classes=10, ch=8), TinyGANDiscriminator(32, 10, ch=8))):
        z, y = torch.randn(4, G.z_dim), torch.tensor([0, 1, 2, 9])
        x = diff_augment(G(z, y), generator=torch.Generator().manual_seed(0))
        logits, feats = D(x, y, return_features=True)
        (losses.g_hinge(logits) + sum(f.abs().mean() for f in feats)).backward()
        for model in (G, D):
            missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
            assert not missing, missing


def test_registry_round_trip_and_state_dict():
    torch.manual_seed(0)
    for model in (ResNetGenerator(**CGAN_PRESETS["student_xs"]), ProjectionDiscriminator(16, n_classes=4),
                  TinyGANGenerator(32, n_classes=10, ch=8), TinyGANDiscriminator(32, 10, ch=8)):
        spec = spec_of(model)
        twin = build(spec)
        assert type(twin) is type(model) and twin.hparams == model.hparams
        twin.load_state_dict(model.state_dict())  # strict: SN's u, v and original weights included
        model.eval(), twin.eval()
        n = 2
        if hasattr(model, "z_dim"):
            args = (torch.randn(n, model.z_dim), torch.tensor([0, 1]))
        else:
            args = (torch.randn(n, 3, 32, 32), torch.tensor([0, 1]))
        with torch.no_grad():
            assert torch.equal(model(*args), twin(*args))


def test_generate_helper_works_with_the_new_generators(generators):
    x = generate(generators["cgan_student_xs"], labels=torch.arange(10), seed=3, batch_size=4)
    assert x.shape == (10, 3, 32, 32)


def test_init_weights_is_reproducible_from_a_seed():
    a = init_weights(ProjectionDiscriminator(16), repro.generator(5, "init"))
    b = init_weights(ProjectionDiscriminator(16), repro.generator(5, "init"))
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and any(k.endswith("_u") for k in sa)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    ga, gb = TinyGANGenerator(32, n_classes=10, ch=8), TinyGANGenerator(32, n_classes=10, ch=8)
    ga.reset_parameters(repro.generator(1, "init"))
    gb.reset_parameters(repro.generator(1, "init"))
    assert all(torch.equal(p, q) for p, q in zip(ga.parameters(), gb.parameters()))


# ---------------------------------------------------------------------------------------------------------------
# layers


def test_conditional_bn_modes():
    torch.manual_seed(0)
    x = torch.randn(4, 8, 5, 5)
    cbn = ConditionalBatchNorm2d(8, n_classes=3).eval()
    y = torch.tensor([0, 1, 2, 1])
    assert torch.allclose(cbn(x, y), cbn(x, F.one_hot(y, 3).float()), atol=1e-6)  # one-hot == class id
    vec = ConditionalBatchNorm2d(8, cond_dim=16)
    assert vec(x, torch.randn(4, 16)).shape == x.shape
    with pytest.raises(ValueError, match=r"shape \(4, 16\)"):
        vec(x, torch.randn(4, 15))
    with pytest.raises(ValueError, match=r"shape \(4, 3\)"):
        cbn(x, torch.randn(4, 2))


def test_depthwise_separable_conv():
    conv = DepthwiseSeparableConv2d(16, 32, 3)
    assert conv(torch.randn(2, 16, 9, 9)).shape == (2, 32, 9, 9)
    assert count_params(conv) == 16 * 9 + 16 + 16 * 32 + 32
    assert count_params(DepthwiseSeparableConv2d(16, 32, 3, stride=2, bias=False)) == 16 * 9 + 16 * 32
    with pytest.raises(ValueError, match="odd"):
        DepthwiseSeparableConv2d(4, 4, 2)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_shortcut_conv_commutes_with_upsampling(mode):
    # UpBlock convolves its shortcut before upsampling to save MACs; the result must be the same
    block = UpBlock(6, 5, n_classes=2, upsample=mode)
    x = torch.randn(2, 6, 7, 7)
    with torch.no_grad():
        conv_then_up = block._up(block.shortcut(x))
        up_then_conv = block.shortcut(block._up(x))
    assert torch.allclose(conv_then_up, up_then_conv, atol=1e-5)


def test_dcgan_init_is_seeded_and_refuses_spectral_norm_models():
    a, b = dcgan_init(CondDCGANGenerator(32), 3), dcgan_init(CondDCGANGenerator(32), 3)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    c = dcgan_init(CondDCGANGenerator(32), 4)
    assert not torch.equal(a.out.weight, c.out.weight)
    w = torch.cat([m.weight.flatten() for m in a.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))])
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002  # N(0, 0.02)
    bn = [m for m in a.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn and all(torch.all(m.bias == 0) for m in bn) and all((m.weight - 1).abs().max() < 0.1 for m in bn)
    with pytest.raises(TypeError, match="uses spectral norm: initialise it with models.layers.init_weights"):
        dcgan_init(ProjectionDiscriminator(16), 0)


def test_generate_draws_the_same_noise_for_every_model():
    a, b = dcgan_init(CondDCGANGenerator(32), 0), dcgan_init(CondDCGANGenerator(32), 0)
    x = generate(a, labels=[0, 1, 2], seed=4, batch_size=2)
    assert x.shape == (3, 1, 28, 28) and torch.equal(x, generate(b, labels=torch.tensor([0, 1, 2]), seed=4, batch_size=2))
    assert a.training  # the training mode is given back
    u = generate(IITGNGenerator("student"), n=5, seed=1, batch_size=2)
    assert u.shape == (5, 1, 28, 28)
    with pytest.raises(ValueError, match="needs labels"):
        generate(a, n=3)
    with pytest.raises(ValueError, match="needs n"):
        generate(IITGNGenerator("student"))


def test_standing_stats_fit_the_weights_they_describe():
    """A weight average samples in eval mode with running statistics; copied from another G they do not fit its
    weights. Re-estimated on one batch, eval mode draws what train mode (that batch's statistics) draws."""
    torch.manual_seed(0)
    G = ResNetGenerator(ch=4, z_dim=16, n_classes=10)
    live = copy.deepcopy(G)
    with torch.no_grad():
        for p in live.parameters():
            p.mul_(1.5).add_(0.1)  # the live G has moved on from the average
        live.train()
        live(torch.randn(64, 16), torch.arange(64) % 10)  # and its running statistics with it
    for b, lb in zip(G.buffers(), live.buffers()):
        b.copy_(lb)  # what an EMA update does with buffers
    z, y = torch.randn(64, 16), torch.arange(64) % 10
    with torch.no_grad():
        want = G.train()(z, y)
        stale = G.eval()(z, y)
    off = (stale - want).abs().max()
    assert off > 0.05  # the copied statistics draw other images
    momenta = [m.momentum for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert standing_stats(G, z, y, batch_size=64) is G and not G.training
    with torch.no_grad():
        got = G(z, y)
    err = (got - want).abs().max()
    assert err < 1e-2 and err < off / 20, (err, off)  # biased vs unbiased variance: a hair apart
    assert [m.momentum for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)] == momenta
    with pytest.raises(ValueError, match="z and y must be as long"):
        standing_stats(G, z, y[:10])
