"""Metrics (gankd_utils.metrics): protocol names, the Evaluator, extractors, FID / KID / PR, size, speed."""
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy import linalg

from gankd_utils import metrics
from gankd_utils.data import to_float
from gankd_utils.metrics import extractors, feature_stats, frechet_distance, kid
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


def test_size_report():
    G = CondDCGANGenerator(32)
    r = metrics.size_report(G)
    assert r["params"] == metrics.count_params(G) and r["nonzero_params"] <= r["params"]
    assert r["mb_fp32"] == metrics.state_bytes(G, "fp32") / 1e6
    assert r["mb_int8"] < r["mb_fp16"] < r["mb_fp32"]
    assert r["macs"] == metrics.count_macs(G, torch.randn(2, 100), torch.zeros(2, dtype=torch.int64))


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
    logits = ex.logits(f)  # the checkpoint's 1008-way fc layer gives the Inception Score's logits (no bias)
    # random weights give every image the same features: an IS of 1, to the last digit either way
    assert logits.shape == (4, 1008) and 1.0 - 1e-9 <= metrics.inception_score(logits, splits=2)[0] <= 1008
    w = torch.load(inception_shaped_checkpoint, weights_only=True)["fc.weight"].numpy()
    assert np.allclose(logits, f @ w.T, rtol=1e-4, atol=1e-4)


def test_inception_score_logits_leave_out_the_fc_bias():
    """The IS logits are pool3 @ W.T, without the fc layer's bias, as the original code and torch-fidelity's
    ``logits_unbiased`` compute them; with the bias the score is another number."""
    ex = object.__new__(metrics.InceptionExtractor)  # its fc layer alone: no Inception network needed
    ex.fc = nn.Linear(6, 5)
    with torch.no_grad():
        ex.fc.bias.copy_(torch.tensor([3.0, -2.0, 0.5, 1.0, -4.0]))
    feats = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    want = feats @ ex.fc.weight.detach().numpy().T
    got = ex.logits(feats)
    assert got.shape == (40, 5) and np.allclose(got, want, atol=1e-5)
    assert metrics.inception_score(got, splits=2)[0] == pytest.approx(metrics.inception_score(want, splits=2)[0])
    assert metrics.inception_score(got, splits=2)[0] != pytest.approx(
        metrics.inception_score(want + ex.fc.bias.detach().numpy(), splits=2)[0])


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


def test_inception_without_pytorch_fid_is_unavailable_not_a_crash(monkeypatch):
    """On a machine with torch alone the Inception protocol is skipped with a note; the classifier scores run."""
    monkeypatch.setitem(sys.modules, "pytorch_fid.inception", None)  # import fails as if not installed
    with pytest.raises(metrics.WeightsUnavailable, match="pytorch-fid is not installed"):
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


# ---------------------------------------------------------------------------------------------------------------
# Frechet distance, KID


def _scipy_reference(mu1, s1, mu2, s2):
    # the textbook formula with scipy's sqrtm, no regularisation
    covmean = np.real(linalg.sqrtm(s1 @ s2))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


def _random_stats(rng, d, n=400, shift=0.0, scale=1.0):
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * scale + shift
    return feature_stats(x)


def test_matches_scipy_reference():
    rng = np.random.default_rng(0)
    a, b = _random_stats(rng, 16), _random_stats(rng, 16, shift=0.3, scale=1.5)
    assert frechet_distance(*a, *b) == pytest.approx(_scipy_reference(*a, *b), rel=1e-6)


def test_properties():
    rng = np.random.default_rng(1)
    a, b = _random_stats(rng, 8), _random_stats(rng, 8, shift=1.0)
    assert frechet_distance(*a, *a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(*a, *b) == pytest.approx(frechet_distance(*b, *a), rel=1e-6)
    assert frechet_distance(*a, *b) > 0
    # a pure translation by t adds |t|^2
    t = np.full(8, 0.5)
    assert frechet_distance(a[0], a[1], a[0] + t, a[1]) == pytest.approx(8 * 0.25, rel=1e-6)


def test_one_dimensional_closed_form():
    # d^2 = (mu1 - mu2)^2 + (sd1 - sd2)^2 in one dimension
    d = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-1.0]), np.array([[9.0]]))
    assert d == pytest.approx(4.0 + 1.0)


def test_singular_covariances_are_handled():
    mu = np.zeros(4)
    s = np.diag([1.0, 1.0, 0.0, 0.0])
    assert np.isfinite(frechet_distance(mu, s, mu + 1, s))


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_kid_properties():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 8))
    same = kid(a, rng.normal(size=(300, 8)), n_subsets=10, subset_size=200)[0]
    shifted = kid(a, rng.normal(size=(300, 8)) + 1.0, n_subsets=10, subset_size=200)[0]
    assert abs(same) < 0.05 < shifted


@pytest.mark.parametrize("n_a, n_b, subset", [(40, 60, 25), (40, 60, 40), (30, 30, 50)])
def test_kid_is_the_unbiased_mmd_of_the_cubic_kernel_over_the_same_subsets(n_a, n_b, subset):
    # the textbook formula, term by term, on the subsets kid draws (its seed): the kernel sums kid reuses
    # where a subset is its whole set reordered (the second and third cases) change nothing but rounding
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(n_a, 5)), rng.normal(size=(n_b, 5)) + 0.3
    draw, m, vals = np.random.default_rng(7), min(subset, n_a, n_b), []

    def k(u, v):
        return (u @ v.T / 5 + 1) ** 3

    def off_diagonal_mean(kk):
        return (kk.sum() - np.trace(kk)) / (m * (m - 1))

    for _ in range(6):
        x, y = a[draw.choice(n_a, m, replace=False)], b[draw.choice(n_b, m, replace=False)]
        vals.append(off_diagonal_mean(k(x, x)) + off_diagonal_mean(k(y, y)) - 2 * k(x, y).mean())
    got = kid(a, b, n_subsets=6, subset_size=subset, seed=7)
    assert got == pytest.approx((np.mean(vals), np.std(vals)), rel=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# speed: one measurement for every table


class Recorder:
    """A generator-like callable that records each call: (name, batch size, torch's thread count)."""

    def __init__(self, name, log, n_classes=10, fail=False):
        self.name, self.log, self.z_dim, self.n_classes, self.fail = name, log, 4, n_classes, fail

    def __call__(self, z, y=None):
        if self.fail:
            raise RuntimeError("broken model")
        assert z.shape[1] == 4 and (y is None) == (not self.n_classes)
        self.log.append((self.name, len(z), torch.get_num_threads()))
        return torch.zeros(len(z), 1, 2, 2)


def test_speed_table_interleaves_rounds_and_restores_threads():
    log = []
    models = {n: Recorder(n, log, n_classes=0 if n == "c" else 10) for n in "abc"}
    threads = torch.get_num_threads()
    want = 1 if threads != 1 else 2
    out = metrics.speed_table(models, "cpu", batch_size=5, rounds=3, warmup=1, threads=want)
    assert torch.get_num_threads() == threads
    assert set(out) == {"a", "b", "c"}
    warm, timed = log[:6], log[6:]
    assert [(n, b) for n, b, _ in warm] == [("a", 1), ("a", 5), ("b", 1), ("b", 5), ("c", 1), ("c", 5)]
    assert [n for n, b, _ in timed if b == 5] == list("abc" "bca" "cab")  # the order rotates every round
    # each model's batch-1 call is made twice in a row, the first untimed, so that the timed one never runs
    # straight after another model's call (cold caches would stick to whichever model follows a stranger)
    assert [(n, b) for n, b, _ in timed] == [(n, b) for n in "abc" "bca" "cab" for b in (1, 1, 5)]
    assert all(t == want for *_, t in log)
    for r in out.values():
        assert r["ms_b1"] > 0 and r["img_per_s"] > 0 and r["ms_b1_spread_pct"] >= 0 and r["img_per_s_spread_pct"] >= 0
        assert (r["batch_size"], r["rounds"], r["threads"], r["device"]) == (5, 3, want, "cpu")


def test_speed_table_restores_threads_after_a_failure():
    threads = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="broken model"):
        metrics.speed_table({"x": Recorder("x", [], fail=True)}, "cpu", threads=1 if threads != 1 else 2)
    assert torch.get_num_threads() == threads


def test_speed_table_reports_the_fastest_round_and_the_spread(monkeypatch):
    ticks = iter(range(10_000))
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(ticks)))  # every call takes one tick
    out = metrics.speed_table({"a": Recorder("a", [])}, "cpu", batch_size=4, rounds=4, warmup=0)
    assert out["a"]["ms_b1"] == 1000.0 and out["a"]["img_per_s"] == 4.0
    assert out["a"]["ms_b1_spread_pct"] == 0.0 and out["a"]["threads"] == torch.get_num_threads()


class Clocked(Recorder):
    """A Recorder whose every call moves a fake clock on by ``cost`` seconds per image."""

    def __init__(self, name, log, cost, clock):
        super().__init__(name, log)
        self.cost, self.clock = cost, clock

    def __call__(self, z, y=None):
        self.clock[0] += self.cost * len(z)
        return super().__call__(z, y)


def test_speed_table_time_budget_stops_a_slow_model_after_min_rounds(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    log = []
    models = {"big": Clocked("big", log, 0.1, clock), "small": Clocked("small", log, 0.001, clock)}
    # a round of "big" times 0.1 s (batch 1) + 1.0 s (batch 10): over the 2 s budget after two rounds, so it
    # stops after min_rounds = 3; "small" (0.011 s a round) stays under it and gets all 8
    out = metrics.speed_table(models, "cpu", batch_size=10, rounds=8, warmup=0, budget_s=2.0, min_rounds=3)
    assert (out["big"]["rounds"], out["small"]["rounds"]) == (3, 8)
    assert [n for n, b, _ in log if b == 10] == ["big", "small", "small", "big", "big", "small"] + ["small"] * 5
    assert out["big"]["ms_b1"] == pytest.approx(100.0) and out["big"]["img_per_s"] == pytest.approx(10.0)
    assert out["small"]["ms_b1"] == pytest.approx(1.0) and out["small"]["img_per_s"] == pytest.approx(1000.0)
    log.clear()  # every model over the budget: the rounds end when the last one is done
    out = metrics.speed_table(models, "cpu", batch_size=10, rounds=8, warmup=0, budget_s=0.001, min_rounds=2)
    assert (out["big"]["rounds"], out["small"]["rounds"]) == (2, 2) and len(log) == 2 * 2 * 3
    log.clear()  # no budget: every model every round
    out = metrics.speed_table(models, "cpu", batch_size=10, rounds=8, warmup=0)
    assert (out["big"]["rounds"], out["small"]["rounds"]) == (8, 8)
    for bad in ({"budget_s": 0}, {"budget_s": -1.0}, {"rounds": 0}, {"min_rounds": 0}):
        with pytest.raises(ValueError, match="budget_s|rounds"):
            metrics.speed_table(models, "cpu", **bad)


def test_evaluate_models_times_each_model_within_the_profile_budget(monkeypatch):
    seen = []

    def fake_speed_table(models, device, batch_size, rounds, **kw):
        seen.append((str(device), batch_size, rounds, kw.get("budget_s")))
        return {n: {"ms_b1": 1.0, "ms_b1_spread_pct": 0.0, "img_per_s": 1.0} for n in models}

    monkeypatch.setattr(metrics, "speed_table", fake_speed_table)
    from gankd_utils import config, evaluation, zoo
    entries = zoo.mnist_zoo()
    S = config.settings("mnist", "quick")
    assert (S.eval.timing_repeats, S.eval.timing_budget_s) == (10, 5.0)
    assert config.settings("mnist", "full").eval.timing_budget_s is None  # the report times every round
    models = {"cdcgan_c32_scratch": CondDCGANGenerator(32)}
    evaluation.evaluate_models(models, entries, [], speed_batch=8, rounds=S.eval.timing_repeats,
                               budget_s=S.eval.timing_budget_s, progress=False)
    assert seen == [("cpu", 8, 10, 5.0)]


def test_speed_table_of_torch_modules_and_generator_speed():
    G = CondDCGANGenerator(32).train()
    out = metrics.speed_table({"g": G, "u": IITGNGenerator("student")}, "cpu", batch_size=8, rounds=2)
    assert not G.training and set(out) == {"g", "u"}  # torch modules are timed in eval mode
    # and in one memory layout: a model trained in channels-last (chapter 07's fine-tunes) is not timed in it
    # while its parent, loaded from a file, is timed in the default one
    C = CondDCGANGenerator(32).to(memory_format=torch.channels_last)
    w = C.body[3].weight
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    metrics.speed_table({"c": C, "g": G}, "cpu", batch_size=8, rounds=1)
    assert all(p.is_contiguous() for p in C.parameters())
    r = metrics.generator_speed(CondDCGANGenerator(32), "cpu", batch_size=8, rounds=2)
    assert r["ms_b1"] > 0 and r["img_per_s"] > 0 and r["batch_size"] == 8 and r["rounds"] == 2
