"""Metrics named by protocol (the habit of stylegan3's ``metrics/metric_main.py``).

A protocol name says what was measured, on how many samples, with which
features: ``fid2k_mnistcls`` is the Frechet distance of 2,000 generated
images to the MNIST training set in the features of the project's own MNIST
classifier; ``fid10k_inception_cifar10train`` uses pytorch-fid's Inception
against the CIFAR-10 training set. Real-data statistics are cached on disk,
keyed by a hash of (the extractor's own weights, the real images, the batch,
the code), and so are a generator's scores (:mod:`.scorecache`: keyed by the
pipeline and the generator's fingerprint), so each model is scored once per
pipeline.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from .. import paths
from ..data import ImageSet, to_float
from ..io import atomic_write, atomic_write_text
from ..models import generate
from .extractors import (ClassifierExtractor, InceptionExtractor, WeightsUnavailable, classifier_accuracy,
                         classifier_path, get_classifier, inception_weights, load_classifier, train_classifier)
from .frechet import feature_stats, frechet_distance
from .kid import kid
from . import scorecache
from .prdc import precision_recall
from .size import count_keras_style, count_macs, count_nonzero, count_params, size_report, state_bytes
from .speed import generator_speed, speed_table

KID_REF_ROWS = 10_000  # real feature rows kept in the cache for KID


def count_tag(n: int) -> str:
    """10000 -> '10k', 500 -> '500'."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def protocol_name(kind: str, n: int, extractor: str, reference: str | None = None) -> str:
    """e.g. ``protocol_name('fid', 10000, 'inception', 'cifar10train') == 'fid10k_inception_cifar10train'``."""
    return f"{kind}{count_tag(n)}_{extractor}" + (f"_{reference}" if reference else "")


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), mean and std over ``splits``.

    ``logits`` (N, classes) from the FID Inception network's fc layer (1008 classes,
    the TF graph the original IS used).
    """
    logits = np.asarray(logits, np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    scores = []
    for part in np.array_split(p, max(1, min(splits, len(p)))):
        py = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + 1e-12) - np.log(py + 1e-12))).sum(1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


class Evaluator:
    """One evaluation pipeline for every model of a chapter.

    Same number of samples, same noise (from ``seed``), same feature
    extractor and same reference set for each generator it scores.
    Conditional generators get class-balanced labels, and their class
    accuracy is measured when the extractor is a classifier. A generator
    it has scored before, here or in another chapter, gets the scores kept
    then (:mod:`.scorecache`; ``cache_scores=False`` scores every time).
    """

    def __init__(self, extractor, real: ImageSet, n_samples: int, seed: int = 0, reference: str | None = None,
                 batch_size: int = 500, n_ref: int | None = None, cache_scores: bool = True):
        self.extractor, self.n, self.seed, self.batch_size = extractor, n_samples, seed, batch_size
        self.real = real.subset(n_ref, seed)
        self.reference = reference
        self.cache_scores = cache_scores
        self.kept_scores_read = 0  # how many calls read kept scores instead of scoring
        self._stats = None
        self._reference_id = None
        self._features_id = None
        self._score_key = None

    def names(self) -> dict[str, str]:
        ex = self.extractor.name
        ref = self.reference if ex == "inception" else None
        return {"fid": protocol_name("fid", self.n, ex, ref), "kid": protocol_name("kid", self.n, ex, ref),
                "precision": protocol_name("precision", self.n, ex, ref),
                "recall": protocol_name("recall", self.n, ex, ref), "acc": protocol_name("acc", self.n, ex),
                **({"is": protocol_name("is", self.n, ex)} if ex == "inception" else {})}

    def _reference_set_id(self) -> str:
        if self._reference_id is None:  # the reference set's hash, once: it reads every image
            self._reference_id = self.real.fingerprint()
        return self._reference_id

    def _reference_key(self) -> str:
        """The features (extractor and its weights id) and the reference set, as :meth:`protocol_id` names them."""
        return f"{self.extractor.name}_{self.extractor.weights_id}_{self._reference_set_id()}"

    def protocol_id(self) -> str:
        """What makes two scorings comparable: the features (extractor and its weights), the reference set,
        the number of samples and the noise seed. Equal ids, equal numbers for the same generator."""
        return f"{self._reference_key()}_n{self.n}_seed{self.seed}"

    def features_id(self) -> str:
        """The features' own weights: the extractor model's fingerprint (:func:`scorecache.fingerprint`), else its
        ``weights_id``. A classifier's ``weights_id`` names its training settings only: one retrained with the same
        settings (``retrain=True``, or a profile's own beside the shipped one) has other weights and other features."""
        if self._features_id is None:
            own = scorecache.fingerprint(self.extractor.model) if hasattr(self.extractor, "model") else None
            self._features_id = own or self.extractor.weights_id
        return self._features_id

    def _cache_path(self) -> Path:
        """The reference statistics' file: named by the extractor, keyed by what they are computed from (the
        features' own weights, the reference set, the batch, which can change the last digits) and by the code
        (:func:`scorecache.code_id`), so that neither another classifier of the same settings nor an edit of the
        feature extraction reads statistics of other features."""
        key = f"{self.features_id()}|{self._reference_set_id()}|b{self.batch_size}|code{scorecache.code_id()}"
        name = f"{self.extractor.name}_{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
        return paths.results_dir("cache", "stats") / name

    def real_stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mu, sigma, feature rows for KID) of the reference set, cached on disk."""
        if self._stats is not None:
            return self._stats
        p = self._cache_path()
        if p.exists():
            with np.load(p, allow_pickle=False) as f:
                self._stats = (f["mu"], f["sigma"], f["feats"])
            return self._stats
        feats = []
        for i in range(0, len(self.real), self.batch_size):
            feats.append(self.extractor.features(to_float(self.real.images[i:i + self.batch_size])))
        feats = np.concatenate(feats)
        mu, sigma = feature_stats(feats)
        keep = feats[np.random.default_rng(0).permutation(len(feats))[:KID_REF_ROWS]].astype(np.float32)
        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, mu=mu, sigma=sigma, feats=keep)

        atomic_write(p, write)
        self._stats = (mu, sigma, keep)
        return self._stats

    def labels(self, n_classes: int) -> torch.Tensor:
        return torch.arange(self.n) % n_classes

    def samples(self, G) -> tuple[torch.Tensor, torch.Tensor | None]:
        y = self.labels(G.n_classes) if getattr(G, "n_classes", 0) else None
        x = generate(G, n=self.n, labels=y, seed=self.seed, purpose="eval", batch_size=self.batch_size)
        return x, y

    def __call__(self, G) -> dict[str, float]:
        """Score one generator; returns ``{protocol name: value}``: kept from an earlier scoring of the same
        generator by this pipeline where there is one (:mod:`.scorecache`), else scored now and kept."""
        model = scorecache.fingerprint(G) if self.cache_scores else None
        protocol = self._score_protocol() if model is not None else None
        if protocol is not None and (kept := scorecache.load(protocol, model)) is not None:
            self.kept_scores_read += 1
            return kept
        x, y = self.samples(G)
        out = {k: float(v) for k, v in self.score_images(x, y).items()}
        if protocol is not None:
            scorecache.store(protocol, model, out)
        return out

    def _score_protocol(self) -> str:
        """What kept scores are keyed by besides the generator: :meth:`protocol_id`, the batch (it can change the
        last digits), the features' own weights (a classifier's id names its training settings, and a
        retrained one may differ) and the code (:func:`scorecache.code_id`)."""
        if self._score_key is None:
            self._score_key = f"{self.protocol_id()}_b{self.batch_size}_{self.features_id()}_code{scorecache.code_id()}"
        return self._score_key

    def score_images(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, float]:
        """Score generated images ``x`` (N, C, H, W) in [-1, 1], asked-for classes ``y`` (N,) or None."""
        mu_r, sig_r, feats_r = self.real_stats()
        if isinstance(self.extractor, ClassifierExtractor):
            feats, logits = self.extractor.features_and_logits(x, self.batch_size)
        else:
            feats, logits = self.extractor.features(x), None
            inc_logits = self.extractor.logits(feats) if hasattr(self.extractor, "logits") else None
        mu, sig = feature_stats(feats)
        names = self.names()
        prec, rec = precision_recall(feats_r[:len(feats)], feats)  # equal set sizes, as the paper compares
        out = {names["fid"]: frechet_distance(mu, sig, mu_r, sig_r),
               names["kid"]: kid(feats, feats_r, n_subsets=20, subset_size=min(1000, len(feats)))[0],
               names["precision"]: prec, names["recall"]: rec}
        if logits is not None and y is not None:
            out[names["acc"]] = float((logits.argmax(1) == y.numpy()).mean())
        if logits is None and inc_logits is not None:
            out[names["is"]] = inception_score(inc_logits)[0]
        return out

    def describe(self) -> dict:
        """What the protocol is, for metrics.json."""
        ex = self.extractor
        d = {"extractor": ex.name, "n_samples": self.n, "reference": self.reference or self.real.name,
             "n_reference": len(self.real), "seed": self.seed, "metrics": self.names()}
        if isinstance(ex, ClassifierExtractor):
            d["classifier_test_accuracy"] = ex.test_accuracy
            d["note"] = "features of gankd's own classifier: not comparable with published Inception FIDs"
        else:
            d["standard_inception_weights"] = getattr(ex, "standard_weights", None)
        return d


def save_metrics(path: str | Path, metrics: dict) -> Path:
    """Write ``metrics.json`` atomically (NaN-free JSON)."""
    def clean(o):
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, (np.floating, np.integer)):
            o = o.item()
        if isinstance(o, float) and not np.isfinite(o):
            return None
        return o

    return atomic_write_text(path, json.dumps(clean(metrics), indent=2, sort_keys=True))


__all__ = ["Evaluator", "inception_score", "ClassifierExtractor", "InceptionExtractor", "WeightsUnavailable", "get_classifier",
           "classifier_path", "load_classifier", "train_classifier", "classifier_accuracy", "inception_weights", "feature_stats", "frechet_distance",
           "kid", "precision_recall", "count_params", "count_nonzero", "count_keras_style", "count_macs", "state_bytes",
           "size_report", "generator_speed", "speed_table", "protocol_name", "count_tag", "save_metrics"]
