import pytest
import torch

from gankd_utils.metrics import count_keras_style, count_params
from gankd_utils.models import (REGISTRY, CondDCGANDiscriminator, CondDCGANGenerator, ConvClassifier,
                                IITGNDiscriminator, IITGNGenerator, build, spec_of)

GENERATORS = [lambda: IITGNGenerator("teacher"), lambda: IITGNGenerator("student"),
              lambda: CondDCGANGenerator(512), lambda: CondDCGANGenerator(64), lambda: CondDCGANGenerator(32)]


@pytest.mark.parametrize("make", GENERATORS)
def test_generator_shapes_and_range(make):
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
def test_discriminator_shapes(D, cond):
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
def test_bad_inputs_give_clear_errors(bad, match):
    G = CondDCGANGenerator(32)
    args = {"z": torch.randn(3, 100), "y": torch.tensor([0, 1, 2]), **bad}
    with pytest.raises(ValueError, match=match):
        G(args["z"], args["y"])


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="multiple of 8"):
        CondDCGANGenerator(30)
    with pytest.raises(ValueError, match="role"):
        IITGNGenerator("teaching-assistant")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_spec_round_trip(name):
    m = REGISTRY[name]()
    m2 = build(spec_of(m))
    assert type(m2) is type(m) and m2.hparams == m.hparams


def test_unknown_arch_is_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        build({"arch": "os.system", "kwargs": {}})
