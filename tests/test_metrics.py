import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

from gankd_utils import metrics
from gankd_utils.metrics import extractors
from gankd_utils.models import CondDCGANGenerator, IITGNGenerator


def test_counts_and_bytes():
    G = CondDCGANGenerator(32)
    n = metrics.count_params(G)
    assert n == 67_196
    nz = metrics.count_nonzero(G)  # BatchNorm biases start at zero
    with torch.no_grad():
        G.out.weight.zero_()
    assert metrics.count_nonzero(G) == nz - G.out.weight.numel()
    assert metrics.count_params(G) == n  # zeros still count (and still cost bytes)
    b32, b16, b8 = (metrics.state_bytes(G, d) for d in ("fp32", "fp16", "int8"))
    assert b32 > 4 * n and b16 < 0.55 * b32 and b8 < 0.6 * b16
    with pytest.raises(ValueError, match="dtype"):
        metrics.state_bytes(G, "int4")


def test_macs_of_known_layers():
    lin = nn.Linear(10, 20)
    assert metrics.count_macs(lin, torch.randn(3, 10)) == 200
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert metrics.count_macs(conv, torch.randn(2, 3, 5, 5)) == 8 * 5 * 5 * 3 * 9
    convt = nn.ConvTranspose2d(4, 2, 4, 2, 1)
    assert metrics.count_macs(convt, torch.randn(1, 4, 3, 3)) == 4 * 3 * 3 * 2 * 16
    t, s = IITGNGenerator("teacher"), IITGNGenerator("student")
    z = torch.randn(2, 100)
    assert metrics.count_macs(t, z) > 5 * metrics.count_macs(s, z)


def test_precision_recall_properties():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 4))
    p, r = metrics.precision_recall(real, rng.normal(size=(400, 4)))
    assert p > 0.8 and r > 0.8  # same distribution
    p, r = metrics.precision_recall(real, rng.normal(size=(400, 4)) * 0.1)  # collapsed onto the mode
    assert p > 0.9 and r < 0.3
    p, r = metrics.precision_recall(real, rng.normal(size=(400, 4)) + 10)  # off the real manifold
    assert p == 0 and r == 0
    with pytest.raises(ValueError, match="same D"):
        metrics.precision_recall(real, real[:, :3])


def test_speed_report_fields():
    r = metrics.generator_speed(CondDCGANGenerator(32), "cpu", batch_size=8, repeats=2)
    assert r["latency_ms_b1"] > 0 and r["images_per_s"] > 0


def test_protocol_names():
    assert metrics.protocol_name("fid", 10_000, "inception", "cifar10train") == "fid10k_inception_cifar10train"
    assert metrics.protocol_name("fid", 500, "mnistcls") == "fid500_mnistcls"


def test_classifier_cache_round_trip_and_evaluator(mnist_train, mnist_test, data_root):
    kw = dict(epochs=2, n_train=3000, device="cpu", progress=False, root=data_root, width=8)
    ex = metrics.get_classifier("mnist", **kw)
    assert 0.5 < ex.test_accuracy <= 1.0  # a tiny classifier on 3k images: a sanity bound, not the 99% target
    again = metrics.get_classifier("mnist", **kw)
    assert again.test_accuracy == ex.test_accuracy  # loaded from results/classifiers, not retrained
    for a, b in zip(ex.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())
    ev = metrics.Evaluator(ex, mnist_train, n_samples=300, n_ref=1000, batch_size=300)
    real = mnist_test.subset(300)
    from gankd_utils.data import to_float

    good = ev.score_images(to_float(real.images), real.labels)
    noise = ev.score_images(torch.rand(300, 1, 28, 28) * 2 - 1, real.labels)
    assert good["fid300_mnistcls"] < noise["fid300_mnistcls"]
    assert good["acc300_mnistcls"] > 0.5 > noise["acc300_mnistcls"]
    assert good["kid300_mnistcls"] < noise["kid300_mnistcls"]
    # statistics were cached on disk and are reused
    assert ev._cache_path().exists()
    ev2 = metrics.Evaluator(ex, mnist_train, n_samples=300, n_ref=1000, batch_size=300)
    assert np.array_equal(ev2.real_stats()[0], ev.real_stats()[0])
    assert good["precision300_mnistcls"] > noise["precision300_mnistcls"]
    out = ev(CondDCGANGenerator(32))  # a conditional generator gets class-balanced labels
    assert set(out) == {"fid300_mnistcls", "kid300_mnistcls", "acc300_mnistcls", "precision300_mnistcls",
                        "recall300_mnistcls"}


@pytest.fixture
def inception_shaped_checkpoint(tmp_path, monkeypatch):
    """A checkpoint with the FID Inception's architecture (random weights) in a temporary TORCH_HOME."""
    import pytorch_fid.inception as pfi

    captured = {}

    def grab(url, *a, **k):
        # called inside pytorch-fid's fid_inception_v3 after it built the network: take its own state
        captured["state"] = sys._getframe(1).f_locals["inception"].state_dict()
        return captured["state"]

    monkeypatch.setattr(pfi, "load_state_dict_from_url", grab)
    pfi.fid_inception_v3()
    monkeypatch.undo()
    home = tmp_path / "torch_home"
    path = home / "hub" / "checkpoints" / extractors.INCEPTION_FILE
    path.parent.mkdir(parents=True)
    torch.save(captured["state"], path)
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return path


def test_pytorch_fid_path_with_an_inception_shaped_checkpoint(inception_shaped_checkpoint, monkeypatch):
    monkeypatch.setenv("GANKD_OFFLINE", "1")  # must be found locally, never downloaded
    ex = metrics.InceptionExtractor("cpu")
    assert ex.weights_path == inception_shaped_checkpoint
    assert not ex.standard_weights  # random weights: reported as non-standard
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    f = ex.features(x, batch_size=2)
    assert f.shape == (4, 2048) and np.isfinite(f).all()
    mu, s = metrics.feature_stats(f)
    assert metrics.frechet_distance(mu, s, mu, s) == pytest.approx(0, abs=1e-6)
    logits = ex.logits(f)  # the checkpoint's 1008-way fc layer gives the Inception Score's logits
    assert logits.shape == (4, 1008) and 1.0 <= metrics.inception_score(logits, splits=2)[0] <= 1008


def test_inception_score_by_hand():
    assert metrics.inception_score(np.zeros((50, 10)))[0] == pytest.approx(1.0)  # one flat p(y|x): IS 1
    sharp = np.full((48, 4), -50.0)
    sharp[np.arange(48), np.arange(48) % 4] = 50.0  # confident and spread evenly over 4 classes: IS 4
    assert metrics.inception_score(sharp, splits=4)[0] == pytest.approx(4.0, rel=1e-6)
    one = np.full((40, 4), -50.0)
    one[:, 2] = 50.0  # confident but always the same class: IS 1
    assert metrics.inception_score(one)[0] == pytest.approx(1.0, rel=1e-6)


def test_inception_weights_by_environment_variable(inception_shaped_checkpoint, monkeypatch, tmp_path):
    moved = tmp_path / "elsewhere.pth"
    inception_shaped_checkpoint.rename(moved)
    monkeypatch.setenv("GANKD_INCEPTION_WEIGHTS", str(moved))
    assert extractors.inception_weights() == moved
    monkeypatch.setenv("GANKD_INCEPTION_WEIGHTS", str(tmp_path / "missing.pth"))
    with pytest.raises(metrics.WeightsUnavailable, match="does not name a file"):
        extractors.inception_weights()


def test_inception_weights_missing_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("GANKD_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("GANKD_OFFLINE", "1")
    with pytest.raises(metrics.WeightsUnavailable, match="GANKD_INCEPTION_WEIGHTS"):
        metrics.InceptionExtractor("cpu")


def test_inception_download_failure_is_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("GANKD_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("GANKD_OFFLINE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)

    def no_network(url, dst, *a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(metrics.WeightsUnavailable, match="download .* failed"):
        extractors.inception_weights()
