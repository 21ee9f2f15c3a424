"""Scores kept on disk (gankd_utils.metrics.scorecache): a generator is scored once per pipeline, and only the
very same generator, scored by the very same pipeline, gets the kept scores."""
import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.nn.utils import prune
from test_evaluation import tiny_evaluator

from gankd_utils import metrics
from gankd_utils.metrics import scorecache
from gankd_utils.models import CondDCGANGenerator, IITGNGenerator, ResNetGenerator
from gankd_utils.models.cgan import ProjectionDiscriminator
from gankd_utils.models.layers import dcgan_init


@pytest.fixture
def counted(monkeypatch):
    """How many times an evaluator really scored (drew samples and computed features)."""
    calls = []
    real = metrics.Evaluator.score_images

    def score_images(self, x, y=None):
        calls.append(len(x))
        return real(self, x, y)

    monkeypatch.setattr(metrics.Evaluator, "score_images", score_images)
    return calls


def test_a_generator_is_scored_once_per_pipeline_and_again_when_it_changes(counted):
    G = dcgan_init(CondDCGANGenerator(32), 11).eval()
    first = tiny_evaluator()(G)
    assert len(counted) == 1 and first["acc32_tinycls"] >= 0
    # another chapter: a new evaluator of the same protocol, a copy of the same generator in channels-last
    again = tiny_evaluator()(copy.deepcopy(G).to(memory_format=torch.channels_last))
    assert again == first and len(counted) == 1
    with torch.no_grad():
        G.body[0].weight[0, 0, 0, 0] += 0.5  # one weight changed: another generator
    changed = tiny_evaluator()(G)
    assert len(counted) == 2 and changed != first
    tiny_evaluator(n=16)(G)  # fewer samples: another protocol
    assert len(counted) == 3
    ev = tiny_evaluator()
    ev.cache_scores = False
    assert ev(G) == changed and len(counted) == 4  # scored anew, and the same numbers as kept


def test_the_features_own_weights_are_part_of_the_pipeline(counted):
    G = dcgan_init(IITGNGenerator("student"), 12).eval()
    first = tiny_evaluator()(G)
    ev = tiny_evaluator()  # the same classifier id, but retrained: other weights
    with torch.no_grad():
        for p in ev.extractor.model.parameters():
            p.mul_(1.5)
    assert ev(G) != first and len(counted) == 2


def test_the_reference_statistics_are_those_of_the_features_own_weights():
    """Two classifiers of the same settings id (one retrained) never share cached reference statistics: each
    evaluator's FID is the one computed with its own classifier's statistics of the real images."""
    G = dcgan_init(CondDCGANGenerator(32), 16).eval()
    first = tiny_evaluator()
    first(G)  # caches the reference statistics of the first classifier
    ev = tiny_evaluator()  # the same classifier id ("tiny0"), but retrained: other weights
    with torch.no_grad():
        for p in ev.extractor.model.parameters():
            p.mul_(1.5)
    ev.cache_scores = False
    assert ev.extractor.weights_id == first.extractor.weights_id and ev._cache_path() != first._cache_path()
    assert ev._cache_path().name.startswith("tinycls_")  # readable: the extractor's name, then a hash
    got = ev(G)["fid32_tinycls"]
    real = ev.extractor.features(metrics.to_float(ev.real.images))
    x, _ = ev.samples(G)
    fake = ev.extractor.features(x)
    assert got == pytest.approx(metrics.frechet_distance(*metrics.feature_stats(fake), *metrics.feature_stats(real)),
                                rel=1e-6)
    assert np.array_equal(tiny_evaluator().real_stats()[0], first.real_stats()[0])  # the first's are still read


def test_an_edit_of_the_code_computes_the_reference_statistics_again(monkeypatch):
    before = tiny_evaluator()._cache_path()
    monkeypatch.setattr(scorecache, "code_id", lambda: "edited")
    assert tiny_evaluator()._cache_path() != before


def test_a_damaged_kept_score_is_scored_again_and_rewritten(counted):
    G = dcgan_init(CondDCGANGenerator(32), 13).eval()
    ev = tiny_evaluator()
    first = ev(G)
    kept = list((Path(metrics.paths.results_root()) / "cache" / "scores").glob("*.json"))
    mine = [p for p in kept if scorecache.fingerprint(G) in p.read_text()]
    assert len(mine) == 1
    mine[0].write_text('{"protocol": "cut sho')
    assert tiny_evaluator()(G) == first and len(counted) == 2
    assert tiny_evaluator()(G) == first and len(counted) == 2  # the file was written again


def test_scores_that_are_not_finite_are_not_kept(counted, monkeypatch):
    G = dcgan_init(CondDCGANGenerator(32), 14).eval()
    real = metrics.Evaluator.score_images
    monkeypatch.setattr(metrics.Evaluator, "score_images",
                        lambda self, x, y=None: {**real(self, x, y), "fid32_tinycls": float("nan")})
    assert math.isnan(tiny_evaluator()(G)["fid32_tinycls"])
    assert math.isnan(tiny_evaluator()(G)["fid32_tinycls"])
    assert len(counted) == 2


class _Foreign(nn.Linear):
    """A module from outside torch.nn and gankd_utils (as a quantized or compiled one is)."""


def test_fingerprint_names_what_a_generator_computes():
    G = dcgan_init(CondDCGANGenerator(32), 0).eval()
    f = scorecache.fingerprint(G)
    assert f == scorecache.fingerprint(copy.deepcopy(G).to(memory_format=torch.channels_last))
    other = copy.deepcopy(G)
    other.z_dim = G.z_dim + 1  # a setting, not a weight
    assert scorecache.fingerprint(other) != f
    other = copy.deepcopy(G)
    next(m for m in other.modules() if isinstance(m, nn.BatchNorm2d)).running_mean += 1  # a buffer
    assert scorecache.fingerprint(other) != f
    # the CIFAR-10 generator, and a spectrally normalised net (torch's parametrizations), are fingerprinted
    assert scorecache.fingerprint(ResNetGenerator(ch=8, z_dim=16, n_classes=10)) is not None
    assert scorecache.fingerprint(ProjectionDiscriminator(ch=8, n_classes=10)) is not None
    # what a fingerprint cannot see is never kept: a forward hook (a pruning mask), a module from elsewhere,
    # an attribute that is not plain data (an ONNX generator's file and session)
    hooked = copy.deepcopy(G)
    prune.l1_unstructured(hooked.body[0], "weight", amount=0.5)
    assert scorecache.fingerprint(hooked) is None
    prune.remove(hooked.body[0], "weight")
    assert scorecache.fingerprint(hooked) not in (None, f)
    assert scorecache.fingerprint(nn.Sequential(copy.deepcopy(G), _Foreign(4, 4))) is None
    assert scorecache.fingerprint(nn.Sequential(copy.deepcopy(G), nn.Linear(4, 4))) is not None
    with_file = copy.deepcopy(G)
    with_file.path = Path("G.onnx")
    assert scorecache.fingerprint(with_file) is None


def test_an_edit_of_the_code_scores_again(tmp_path, counted, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "models.py").write_text("def forward(x):\n    return x\n")
    before = scorecache.code_id(pkg)
    (pkg / "models.py").write_text("def forward(x):\n    return -x\n")
    scorecache.code_id.cache_clear()  # read once per process: a new process reads the edit
    assert scorecache.code_id(pkg) != before
    G = dcgan_init(CondDCGANGenerator(32), 15).eval()
    tiny_evaluator()(G)
    monkeypatch.setattr(scorecache, "code_id", lambda: "edited")
    tiny_evaluator()(G)
    assert len(counted) == 2
